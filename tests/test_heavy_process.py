"""The heavy lane in a child process (inference_server/heavy_process.py), over real loopback
sockets: the same answers as the in-process engine, readiness through `info`, a lower
priority, and a child that dies costing one `internal` reply, not the server."""
from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest
import torch

from bridge.client import Client
from bridge.codec import Request
from bridge.protocol import INTERNAL, ProtocolError, RemoteError
from inference_server.engine import Engine
from inference_server.heavy_process import EngineRecipe, HeavyProcess
from inference_server.index import MotionIndex, build_index
from inference_server.model import create_checkpoint
from inference_server.retriever import Retriever
from inference_server.server import Server

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    torch.set_num_threads(2)
    folder = tmp_path_factory.mktemp("heavy")
    retriever = Retriever.load(create_checkpoint(folder / "model", preset="test"), device="cpu")
    build_index("synthetic:12:5", retriever, folder / "index", progress=False)
    engine = Engine(retriever, MotionIndex.load(folder / "index", retriever))  # the server's
    reference = Engine(retriever, MotionIndex.load(folder / "index", retriever))  # to compare with
    recipe = EngineRecipe(str(folder / "model"), str(folder / "index"), "cpu")
    return {"engine": engine, "reference": reference, "recipe": recipe, "ids": [engine.index.meta(row)["motion_id"] for row in range(12)]}


@pytest.fixture(scope="module")
def served(library):
    server = Server(library["engine"], bind="tcp://127.0.0.1:*", worker_recipe=library["recipe"])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    assert server.ready.wait(30)
    yield server
    server.stop()
    thread.join(60)
    assert not thread.is_alive()


def _child(server: Server) -> HeavyProcess:
    return server._children["describe"]


def _wait_describe_ready(client: Client, seconds: float = 240.0) -> None:
    deadline = time.monotonic() + seconds
    while not client.call("info")[0]["ready"]["describe"]:
        assert time.monotonic() < deadline, "describe never became ready"
        time.sleep(0.2)


def test_heavy_ops_answer_as_the_engine_does(served, library):
    engine, motion_id = library["reference"], library["ids"][3]
    with Client(served.address, timeout=240, retries=0) as client:
        _wait_describe_ready(client)
        result, arrays = client.call("explain", {"text": "a person waves the left hand", "motion_id": motion_id})
        expected, expected_arrays = engine.explain("a person waves the left hand", motion_id)
        assert result["tokens"] == expected["tokens"]
        np.testing.assert_allclose(arrays["relevance"], expected_arrays["relevance"], atol=1e-5)
        result, _ = client.call("similar", {"motion_id": motion_id, "k": 4})
        expected, _ = engine.similar(motion_id, k=4)
        assert [hit["motion_id"] for hit in result["results"]] == [hit["motion_id"] for hit in expected["results"]]
        result, _ = client.call("describe", {"motion_id": motion_id, "k": 3})
        expected, _ = engine.describe(motion_id=motion_id, k=3)
        assert [c["text"] for c in result["captions"]] == [c["text"] for c in expected["captions"]]


def test_the_server_process_embeds_no_caption_bank(served, library):
    with Client(served.address, timeout=240, retries=0) as client:
        _wait_describe_ready(client)
    # the child embedded it; the server process's own engine never started one
    assert library["engine"].bank_progress()[0] == 0


def test_a_lower_priority_reaches_the_child(library):
    child = HeavyProcess(library["recipe"], nice=5)
    child.start()
    try:
        assert isinstance(child.run(Request(id="n", op="similar", args={"motion_id": library["ids"][0]})), tuple)
        assert os.getpriority(os.PRIO_PROCESS, child.pid) == min(19, os.getpriority(os.PRIO_PROCESS, os.getpid()) + 5)
    finally:
        child.stop()


def test_errors_of_the_child_reach_the_client_with_their_code(served):
    with Client(served.address, timeout=240, retries=0) as client:
        with pytest.raises(RemoteError) as raised:
            client.call("explain", {"text": "a person walks", "motion_id": "no-such-motion"})
    assert raised.value.code == "not_found" and "no-such-motion" in raised.value.message
    with Client(served.address, timeout=240, retries=0) as client:
        with pytest.raises(RemoteError) as raised:  # travels to the worker as a \u escape
            client.call("explain", {"text": "waves \ud800", "motion_id": "x"})
    assert raised.value.code == "bad_request" and "surrogate" in raised.value.message


def test_a_killed_child_is_replaced_at_the_next_request(served, library):
    child = _child(served)
    old = child.pid
    os.kill(old, signal.SIGKILL)
    time.sleep(0.2)
    with Client(served.address, timeout=240, retries=0) as client:
        result, _ = client.call("similar", {"motion_id": library["ids"][0], "k": 2})
    assert len(result["results"]) == 2
    assert child.pid not in (None, old)


def test_a_child_dying_mid_request_costs_one_internal_reply(library):
    child = HeavyProcess(library["recipe"], nice=0)
    child.start()
    request = Request(id="r1", op="similar", args={"motion_id": library["ids"][1], "k": 3})
    assert isinstance(child.run(request), tuple)  # up and answering
    os.kill(child.pid, signal.SIGSTOP)  # it reads the next request but never answers it...
    killer = threading.Timer(0.5, os.kill, (child.pid, signal.SIGKILL))  # ...and then dies
    killer.start()
    outcome = child.run(request)
    killer.join()
    assert isinstance(outcome, ProtocolError) and outcome.code == INTERNAL
    assert "worker process ended while answering similar" in outcome.message
    assert isinstance(child.run(request), tuple)  # a new child answers the next one
    child.stop()


def test_a_child_whose_server_stops_while_it_loads_ends_quietly(library, capfd):
    """A server stopped right after it started (SIGTERM in the first seconds) closes the pipe
    before the child has loaded: the child's hello then meets a closed pipe, a normal end."""
    child = HeavyProcess(library["recipe"], nice=0)
    child.start()
    process = child._process
    child._connection.close()  # what stop() does first, before the child could say hello
    process.join(120)
    assert process.exitcode == 0
    assert "Traceback" not in capfd.readouterr().err


def test_stop_kills_a_child_stuck_on_a_request(library):
    child = HeavyProcess(library["recipe"], nice=0)
    child.start()
    request = Request(id="r2", op="similar", args={"motion_id": library["ids"][2], "k": 3})
    assert isinstance(child.run(request), tuple)
    os.kill(child.pid, signal.SIGSTOP)  # it never answers the next request
    outcomes = []
    worker = threading.Thread(target=lambda: outcomes.append(child.run(request)))
    worker.start()
    time.sleep(0.3)
    started = time.monotonic()
    child.stop()
    worker.join(30)
    assert time.monotonic() - started < 20 and not worker.is_alive()
    assert isinstance(outcomes[0], ProtocolError) and outcomes[0].code == INTERNAL


def _stopped(pid: int, seconds: float = 2.0) -> bool:
    """Whether /proc/PID/stat says "T" (stopped), once a signal sent just now had time to land."""
    deadline = time.monotonic() + seconds
    while True:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rsplit(")", 1)[1].split()[0]
        if state == "T" or time.monotonic() > deadline:
            return state == "T"
        time.sleep(0.01)


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads process states from /proc (Linux)")
def test_pause_holds_the_child_within_its_credit(library):
    from inference_server import heavy_process
    child = HeavyProcess(library["recipe"], nice=0)
    child.start()
    request = Request(id="r3", op="similar", args={"motion_id": library["ids"][0], "k": 2})
    assert isinstance(child.run(request), tuple)
    child.pause()
    assert not _stopped(child.pid, 0.2)  # idle: not worth holding
    child._working = True  # from here on as while run() waits for an answer
    child.pause()
    assert _stopped(child.pid)
    child.pause()  # already held: nothing changes, one resume lets it go
    child.resume()
    assert not _stopped(child.pid, 0.2)
    # held longer than its credit: the next pause right after is skipped...
    child.pause()
    time.sleep(heavy_process.MAX_PAUSE_CREDIT + 0.2)
    child.resume()
    child.pause()
    assert not _stopped(child.pid, 0.2)
    child.resume()
    # ...until it has run PAUSE_RATIO times less than it was held over its credit
    time.sleep(0.3 / heavy_process.PAUSE_RATIO + 0.1)
    child.pause()
    assert _stopped(child.pid)
    child.resume()
    child._working = False
    assert isinstance(child.run(request), tuple)  # it answers as before
    child._working = True
    time.sleep(0.2)  # credit for one more hold
    child.pause()
    assert _stopped(child.pid)
    child.stop()  # stopping a held child resumes it first; it exits on its closed pipe
    assert child.pid is None


def test_slow_ops_still_finish_under_back_to_back_searches(served, library):
    with Client(served.address, timeout=240, retries=0) as client:
        _wait_describe_ready(client)  # the worker is up
    stop = threading.Event()

    def hammer():
        with Client(served.address, timeout=60, retries=0) as client:
            while not stop.is_set():
                client.call("search", {"text": "a person walks forward", "k": 5})

    searchers = [threading.Thread(target=hammer) for _ in range(2)]
    for thread in searchers:
        thread.start()
    try:
        with Client(served.address, timeout=60, retries=0) as client:
            started = time.monotonic()
            for motion_id in library["ids"][:5]:
                client.call("explain", {"text": "a person waves", "motion_id": motion_id})
                client.call("similar", {"motion_id": motion_id, "k": 3})
            seconds = time.monotonic() - started
    finally:
        stop.set()
        for thread in searchers:
            thread.join(60)
    assert seconds < 30
