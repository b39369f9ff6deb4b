"""The ZeroMQ server end to end over real loopback sockets, with a real Engine.

A test-preset checkpoint (random ViT, the shipped MiniLM) and a small synthetic library
index are built once for the module; the server runs in a thread of this process (and, for
the restart test, as a `t2m serve` subprocess).
"""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest
import torch
import zmq

from bridge.client import Client, read_public_key
from bridge.protocol import MAX_MESSAGE_BYTES, OPS, RemoteError, ServerUnreachable
from inference_server.backend import LocalBackend
from inference_server.cli import main as t2m_main
from inference_server.engine import Engine
from inference_server.index import MotionIndex, build_index
from inference_server.model import create_checkpoint
from inference_server.retriever import Retriever
from inference_server.server import Server, ServerConfigError

pytestmark = pytest.mark.timeout(180)
LIBRARY_SIZE = 16


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    torch.set_num_threads(2)
    folder = tmp_path_factory.mktemp("served")
    retriever = Retriever.load(create_checkpoint(folder / "model", preset="test"), device="cpu")
    build_index(f"synthetic:{LIBRARY_SIZE}:5", retriever, folder / "index", progress=False)
    engine = Engine(retriever, MotionIndex.load(folder / "index", retriever))
    return {"model": folder / "model", "index": folder / "index", "engine": engine, "folder": folder}


def run_in_thread(server: Server) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    assert server.ready.wait(10), "the server did not start"
    return thread


@pytest.fixture(scope="module")
def address(library):
    server = Server(library["engine"], bind="tcp://127.0.0.1:*")
    thread = run_in_thread(server)
    yield server.address
    server.stop()
    thread.join(10)
    assert not thread.is_alive()


@pytest.fixture
def client(address):
    with Client(address, timeout=30, retries=0) as client:
        yield client


def wait_ready(client, op="describe", seconds=120.0) -> None:
    """Until `info` says `op` is ready (describe: once its caption bank is embedded)."""
    deadline = time.monotonic() + seconds
    while not client.call("info")[0]["ready"][op]:
        assert time.monotonic() < deadline, f"{op} not ready after {seconds} s"
        time.sleep(0.1)


# ---------------------------------------------------------------- every op end to end

def test_info(client, library):
    result, arrays = client.call("info")
    assert arrays == {} and result["protocol"] == 1 and result["device"] == "cpu"
    assert result["library"]["motions"] == LIBRARY_SIZE
    assert result["model"]["name"] == library["engine"].retriever.name


def test_search_over_the_wire_equals_in_process(client, library):
    result, _ = client.call("search", {"text": "a person jumps up and down", "k": 4})
    expected, _ = library["engine"].search("a person jumps up and down", 4)
    assert result == json.loads(json.dumps(expected))
    assert len(result["results"]) == 4 and {"motion_id", "name", "score", "duration", "captions"} <= \
        set(result["results"][0])


def test_explain_motion_describe_similar(client, library):
    motion_id = library["engine"].index.ids[3]
    result, arrays = client.call("explain", {"text": "waves the right hand", "motion_id": motion_id})
    assert arrays["relevance"].dtype == np.float32
    assert arrays["relevance"].shape[:2] == (len(result["tokens"]), 14) and len(result["parts"]) == 14

    motion, motion_arrays = client.call("motion", {"motion_id": motion_id})
    assert motion["up"] == "Y" and len(motion["joints"]) == 22 and motion["parents"][0] == -1
    np.testing.assert_array_equal(motion_arrays["positions"], library["engine"].index.motion(3).positions)

    wait_ready(client)
    by_id, _ = client.call("describe", {"motion_id": motion_id, "k": 3})
    by_positions, _ = client.call("describe", {"fps": motion["fps"], "k": 3}, {"positions": motion_arrays["positions"]})
    assert [c["text"] for c in by_id["captions"]] == [c["text"] for c in by_positions["captions"]]

    similar, _ = client.call("similar", {"motion_id": motion_id, "k": 3})
    assert len(similar["results"]) == 3 and motion_id not in [r["motion_id"] for r in similar["results"]]


@pytest.mark.parametrize("op, args, code", [
    ("motion", {"motion_id": "missing"}, "not_found"),
    ("similar", {"motion_id": "missing"}, "not_found"),
    ("search", {"text": "a walk", "k": 0}, "bad_request"),
    ("search", {"text": "a walk", "k": 101}, "bad_request"),
    ("search", {"text": "a walk", "k": "5"}, "bad_request"),
    ("search", {"text": "w" * 1001}, "bad_request"),
    ("search", {"text": 12}, "bad_request"),
    ("search", {}, "bad_request"),
    ("search", {"text": "a walk", "K": 3}, "bad_request"),
    ("explain", {"text": "a walk"}, "bad_request"),
    ("teleport", {}, "unknown_op"),
])
def test_refused_requests_get_the_right_code(client, library, op, args, code):
    with pytest.raises(RemoteError) as caught:
        client.call(op, args)
    assert caught.value.code == code
    assert client.call("info")[0]["protocol"] == 1
    with pytest.raises(RemoteError) as in_process:  # the in-process backend: the same dispatch
        LocalBackend(library["engine"]).call(op, args)
    assert (in_process.value.code, in_process.value.message) == (code, caught.value.message)


def test_replies_carry_what_the_op_table_promises(client, library):
    motion_id = library["engine"].index.ids[2]
    positions = library["engine"].index.motion(2).positions
    requests = {"info": ({}, {}), "search": ({"text": "a person walks"}, {}),
                "explain": ({"text": "a person walks", "motion_id": motion_id}, {}),
                "motion": ({"motion_id": motion_id}, {}), "describe": ({"fps": 20.0}, {"positions": positions}),
                "similar": ({"motion_id": motion_id, "k": 2}, {}),
                "preview": ({"motion_id": motion_id, "width": 64, "height": 32}, {})}
    assert list(requests) == list(OPS)
    wait_ready(client)
    for name, op in OPS.items():
        result, arrays = client.call(name, *requests[name])
        assert set(op.result) <= set(result), name
        specs = {spec.name: spec for spec in op.reply_arrays}
        assert set(arrays) <= set(specs) and {s.name for s in specs.values() if not s.optional} <= set(arrays), name
        for array_name, array in arrays.items():
            spec = specs[array_name]
            assert array.dtype.name == spec.dtype and array.ndim == len(spec.shape), (name, array_name)
            assert all(size == axis for size, axis in zip(array.shape, spec.shape) if isinstance(axis, int))
    assert len(client.call("search", {"text": "a person walks"})[0]["results"]) == OPS["search"].arg("k").default


# ---------------------------------------------------------------- malformed input on a raw socket

def raw_header(**fields) -> bytes:
    return json.dumps({"v": 1, "id": "raw-1", "op": "info", "args": {}, **fields}).encode()


MALFORMED = [
    ("not json", [b"this is not json"], "bad_request", None),
    ("not an object", [b"[1, 2, 3]"], "bad_request", None),
    ("id of the wrong type", [json.dumps({"v": 1, "id": 7, "op": "info"}).encode()], "bad_request", None),
    ("op of the wrong type", [raw_header(op=["info"])], "bad_request", "raw-1"),
    ("args of the wrong type", [raw_header(args="k=3")], "bad_request", "raw-1"),
    ("missing op", [json.dumps({"v": 1, "id": "raw-1"}).encode()], "bad_request", "raw-1"),
    ("missing text", [raw_header(op="search")], "bad_request", "raw-1"),
    ("array frame too short", [raw_header(op="describe", args={"fps": 20},
                                          arrays=[{"name": "positions", "dtype": "float32", "shape": [4, 22, 3]}]),
                               b"\0" * 100], "bad_request", "raw-1"),
    ("array described but absent", [raw_header(arrays=[{"name": "a", "dtype": "uint8", "shape": [1]}])],
     "bad_request", "raw-1"),
    ("unknown dtype", [raw_header(arrays=[{"name": "a", "dtype": "object", "shape": [1]}]), b"\0" * 8],
     "bad_request", "raw-1"),
    ("positions of the wrong shape", [raw_header(op="describe", args={"fps": 20},
                                                 arrays=[{"name": "positions", "dtype": "float32", "shape": [4, 3]}]),
                                      b"\0" * 48], "bad_request", "raw-1"),
    ("unexpected array", [raw_header(op="info", arrays=[{"name": "x", "dtype": "uint8", "shape": [1]}]), b"\0"],
     "bad_request", "raw-1"),
    ("10 MB text", [raw_header(op="search", args={"text": "a" * 10_000_000})], "too_large", "raw-1"),
    ("message over the size limit", [raw_header(arrays=[{"name": "a", "dtype": "uint8",
                                                         "shape": [MAX_MESSAGE_BYTES + 1]}]),
                                     bytes(MAX_MESSAGE_BYTES + 1)], "too_large", "raw-1"),
    ("unknown op", [raw_header(op="format_disk")], "unknown_op", "raw-1"),
    ("wrong version", [raw_header(v=99)], "unsupported_version", "raw-1"),
]


@pytest.fixture
def raw_dealer(address):
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.connect(address)
    yield dealer
    dealer.close()
    context.term()


def exchange(sock, frames, timeout_ms=30_000) -> list[bytes]:
    sock.send_multipart(frames)
    assert sock.poll(timeout_ms), "no reply"
    return sock.recv_multipart()


@pytest.mark.parametrize("name, frames, code, expected_id", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_request_gets_one_error_reply(raw_dealer, client, name, frames, code, expected_id):
    reply = exchange(raw_dealer, frames)
    header = json.loads(reply[0])
    assert len(reply) == 1 and header["v"] == 1 and header["ok"] is False
    assert header["error"]["code"] == code and header["error"]["message"]
    assert header["id"] == expected_id
    assert not raw_dealer.poll(50), "more than one reply"
    assert client.call("info")[0]["protocol"] == 1


def test_req_envelope_is_answered_in_the_same_envelope(address):
    context = zmq.Context()
    req = context.socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(address)
    try:
        req.send(raw_header(id="req-1"))  # REQ adds the empty delimiter frame itself
        assert req.poll(30_000)
        header = json.loads(req.recv())
        assert header["id"] == "req-1" and header["ok"] and header["result"]["protocol"] == 1
        req.send(b"garbage")
        assert req.poll(30_000)
        assert json.loads(req.recv())["error"]["code"] == "bad_request"
    finally:
        req.close()
        context.term()


def test_burst_of_garbage_gets_one_reply_each(raw_dealer, client):
    rng = np.random.default_rng(1)
    count = 200
    for _ in range(count):
        parts = int(rng.integers(1, 4))
        raw_dealer.send_multipart([rng.bytes(int(rng.integers(1, 300))) for _ in range(parts)])
    replies = []
    deadline = time.monotonic() + 60
    while len(replies) < count and time.monotonic() < deadline:
        if raw_dealer.poll(1000):
            replies.append(raw_dealer.recv_multipart())
    assert len(replies) == count
    assert not raw_dealer.poll(100)
    for reply in replies:
        header = json.loads(reply[-1])
        assert header["ok"] is False and header["error"]["code"] in ("bad_request", "unsupported_version")
    assert client.call("info")[0]["protocol"] == 1


# ---------------------------------------------------------------- many clients at once

def test_eight_pipelining_clients_get_every_reply_matched_by_id(address, library):
    index = library["engine"].index
    colours = ["red", "green", "blue", "yellow", "purple", "orange", "black", "white"]
    failures: list[str] = []

    def one_client(worker: int):
        expected = {}
        with Client(address, timeout=120, retries=0) as client:
            for i in range(50):
                row = (worker * 50 + i) % len(index)
                if i % 3 == 0:
                    request_id = client.send("search", {"text": f"the {colours[worker]} figure walks", "k": 1 + i % 5})
                    expected[request_id] = ("search", colours[worker], 1 + i % 5)
                elif i % 3 == 1:
                    expected[client.send("motion", {"motion_id": index.ids[row]})] = ("motion", index.motion(row).num_frames, 0)
                else:
                    expected[client.send("similar", {"motion_id": index.ids[row], "k": 2})] = ("similar", index.ids[row], 2)
            replies = {}
            deadline = time.monotonic() + 150
            while len(replies) < 50 and time.monotonic() < deadline:
                for request_id, reply in client.poll(0.5):
                    replies[request_id] = reply
        if set(replies) != set(expected):
            failures.append(f"client {worker}: {len(replies)} of 50 replies")
        for request_id, reply in replies.items():
            op, fact, k = expected[request_id]
            result, arrays = reply.unwrap()
            if op == "search" and (fact not in result["tokens"] or len(result["results"]) != k):
                failures.append(f"search reply {result['tokens']} for {fact}, k={k}")
            if op == "motion" and arrays["positions"].shape[0] != fact:
                failures.append(f"motion reply of {arrays['positions'].shape[0]} frames, expected {fact}")
            if op == "similar" and (fact in [r["motion_id"] for r in result["results"]] or len(result["results"]) != k):
                failures.append(f"similar reply includes its own motion {fact}")

    threads = [threading.Thread(target=one_client, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(170)
    assert failures == []


# ---------------------------------------------------------------- a client written from INTERFACES.md alone

def test_raw_pyzmq_client_from_the_contract_can_use_every_op(address, library):
    """Only zmq, json and numpy: what a third-party tool would write from INTERFACES.md."""
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)

    def request(op, args=None, arrays=None):
        arrays = arrays or {}
        request_id = uuid.uuid4().hex
        header = {"v": 1, "id": request_id, "op": op, "args": args or {},
                  "arrays": [{"name": n, "dtype": str(a.dtype), "shape": list(a.shape)} for n, a in arrays.items()]}
        frames = [json.dumps(header).encode("utf-8")]
        frames += [np.ascontiguousarray(a, dtype=a.dtype.newbyteorder("<")).tobytes() for a in arrays.values()]
        sock.send_multipart(frames)
        assert sock.poll(30_000), f"no reply to {op}"
        reply_frames = sock.recv_multipart()
        reply = json.loads(reply_frames[0].decode("utf-8"))
        assert reply["v"] == 1 and reply["id"] == request_id and reply["ok"], reply
        decoded = {d["name"]: np.frombuffer(frame, dtype=np.dtype(d["dtype"]).newbyteorder("<")).reshape(d["shape"])
                   for d, frame in zip(reply["arrays"], reply_frames[1:])}
        return reply["result"], decoded

    try:
        info, _ = request("info")
        assert info["library"]["motions"] == LIBRARY_SIZE
        found, _ = request("search", {"text": "someone kicks with the left leg", "k": 3})
        motion_id = found["results"][0]["motion_id"]
        explanation, explained = request("explain", {"text": "someone kicks", "motion_id": motion_id})
        assert explained["relevance"].shape[:2] == (len(explanation["tokens"]), 14)
        motion, arrays = request("motion", {"motion_id": motion_id})
        assert arrays["positions"].shape[1:] == (22, 3)
        while not request("info")[0]["ready"]["describe"]:
            time.sleep(0.1)
        described, _ = request("describe", {"fps": motion["fps"]}, {"positions": arrays["positions"][:40]})
        assert described["captions"] and isinstance(described["captions"][0]["text"], str)
        similar, _ = request("similar", {"motion_id": motion_id, "k": 2})
        assert len(similar["results"]) == 2
    finally:
        sock.close()
        context.term()


# ---------------------------------------------------------------- security

def test_curve_round_trip_with_generated_keys(library, tmp_path, capsys):
    assert t2m_main(["keys", "generate", "--out", str(tmp_path), "--json"]) == 0
    generated = json.loads(capsys.readouterr().out)
    server = Server(library["engine"], bind="tcp://127.0.0.1:*", curve_secret=generated["secret_key_file"])
    thread = run_in_thread(server)
    try:
        public = read_public_key(generated["public_key_file"])
        assert public.decode() == generated["public_key"]
        with Client(server.address, timeout=30, server_key=public) as secure:
            assert secure.call("search", {"text": "a person bows", "k": 2})[0]["results"]
        with Client(server.address, timeout=0.5, retries=0) as plain:
            with pytest.raises(ServerUnreachable):
                plain.call("info")  # no CurveZMQ handshake: the server never sees the request
    finally:
        server.stop()
        thread.join(10)


def test_non_loopback_bind_needs_keys_or_insecure(library, tmp_path):
    with pytest.raises(ServerConfigError, match="t2m keys generate"):
        Server(library["engine"], bind="tcp://0.0.0.0:5599")
    with pytest.raises(ServerConfigError):
        Server(library["engine"], bind="tcp://*:5599")
    Server(library["engine"], bind="tcp://0.0.0.0:5599", insecure=True)  # allowed, not started
    completed = subprocess.run([sys.executable, "-m", "inference_server", "serve", "--bind", "tcp://0.0.0.0:5599"],
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode == 1 and "refusing to bind tcp://0.0.0.0:5599" in completed.stderr
    assert "Traceback" not in completed.stderr


# ---------------------------------------------------------------- a real `t2m serve` process

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_serve(library, address: str, log_path) -> subprocess.Popen:
    command = [sys.executable, "-m", "inference_server", "serve", "--index", str(library["index"]),
               "--model", str(library["model"]), "--bind", address, "--device", "cpu", "--json"]
    env = dict(os.environ, OMP_NUM_THREADS="2")
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=open(log_path, "w"), env=env)


@pytest.mark.slow
def test_killed_and_restarted_server_is_reached_by_the_same_client(library, tmp_path):
    address = f"tcp://127.0.0.1:{free_port()}"
    first = start_serve(library, address, tmp_path / "first.log")
    second = None
    try:
        with Client(address, timeout=20, retries=4) as client:
            assert client.call("info")[0]["library"]["motions"] == LIBRARY_SIZE
            first.kill()
            first.wait(10)
            second = start_serve(library, address, tmp_path / "second.log")
            result, _ = client.call("search", {"text": "a person turns around", "k": 2})
            assert len(result["results"]) == 2
        second.send_signal(signal.SIGTERM)
        out, _ = second.communicate(timeout=30)
        assert second.returncode == 0
        summary = json.loads(out)
        assert summary["replies"] >= 1 and summary["address"] == address
        log = (tmp_path / "second.log").read_text()
        assert "search id=" in log and " ms ok" in log and "Traceback" not in log
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)


# ---------------------------------------------------------------- serve options

def test_qdrant_backend_answers_like_the_local_index(library, tmp_path):
    from inference_server.cli.serve import build_engine
    from inference_server.index.qdrant import open_client, push_index

    client = open_client(f"local:{tmp_path / 'qdrant'}")
    push_index(library["engine"].index, client, "motions", progress=False)
    client.close()
    engine = build_engine(library["model"], library["index"], device="cpu",
                          qdrant=(f"local:{tmp_path / 'qdrant'}", "motions"))
    server = Server(engine, bind="tcp://127.0.0.1:*")
    thread = run_in_thread(server)
    try:
        with Client(server.address, timeout=30) as remote:
            through_qdrant, _ = remote.call("search", {"text": "a person squats", "k": 5})
    finally:
        server.stop()
        thread.join(10)
        engine.searcher.source.close()
    local, _ = library["engine"].search("a person squats", 5)
    assert [r["motion_id"] for r in through_qdrant["results"]] == [r["motion_id"] for r in local["results"]]


@pytest.mark.parametrize("argv, message", [
    (["serve", "--index", "somewhere"], "index somewhere does not exist"),
    (["serve", "--model", "/no/such/ckpt"], "needs --index INDEX"),
    (["serve", "--index", "a", "--model", "b", "--qdrant", "http://localhost:6333"], "go together"),
    (["serve", "--curve-secret", "/nonexistent/server.key_secret"], "cannot read the CurveZMQ key file"),
])
def test_serve_option_errors_are_one_line(argv, message, capsys):
    assert t2m_main(argv) == 1
    assert message in capsys.readouterr().err
