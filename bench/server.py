#!/usr/bin/env python3
"""Benchmark the ZeroMQ server: the wire's overhead, throughput, and motion fetches.

    python bench/server.py                         # writes bench/results/server.json
    python bench/server.py --device cuda --motions 2000 --preset small

1. Search latency, p50/p99: the same query texts through Engine.search in this process
   and through `t2m serve` (a separate process) over loopback with bridge.Client. The
   median of the paired differences (each query in process, then over the wire) is the
   wire's overhead (target <= 2 ms); `info` round trips give the bare cost of a request
   (framing, JSON, two socket hops, dispatch).
2. Throughput: 1, 4 and 8 clients (threads, one Client each) sending searches back to
   back for a fixed time; requests per second (micro-batching is what lets it scale).
3. Fetching a 10 s motion (`motion` op) at 20, 30 and 120 fps: p50/p99 (target <= 5 ms
   for the 10 s motion at 20/30 fps).

The library is synthetic:N plus three 10 s clips; the model is an untrained checkpoint of
the given preset (speed does not depend on training) unless --model/--index are given.
4. One call of every op (info, search, explain, motion, describe, similar), timed: a smoke
   check of the whole path on the chosen device.

Robustness (issue 16; `--only robustness` runs just these, into server_robustness.json):
5. Slow ops vs search: search p50/p99 of one client while another client keeps sending
   slow ops (similar, describe of a long clip, explain), against the search p50 of the
   same client with the server idle; and 8 clients mixing search, motion, explain,
   describe and similar, each waiting for its reply before the next request (0 lost;
   target: search p99 <= 3x the idle p50), then the same clients pipelining 8 requests
   each (64 in flight; 0 lost, latency reported).
6. Start-up: a describe (answered `busy` while the caption bank embeds) then a search sent
   1 s after `t2m serve` logs that it listens; target: the search answered within 2 s.
7. Pipelined: one client sends 20,000 requests before reading any reply; every request
   must get a reply (`ok` or `busy`).
8. Fuzz: hostile messages of many kinds (lone surrogates, deep JSON, lying array
   headers, absurd fps and shapes, ...); 0 lost, 0 `internal`, server RSS growth, and
   the same search answer after each round.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "server.json"
QUERIES = ["a person walks forward", "someone waves with the left hand", "a man jumps", "the person bows",
           "a woman runs in a circle", "a person kicks with the right leg", "someone claps", "a person sits down",
           "a figure turns left while walking", "the man raises both hands above the head", "a person squats",
           "someone punches with the left hand, then with the right hand", "a person walks backwards"]
TEN_SECOND_FPS = (20.0, 30.0, 120.0)


def stats_ms(seconds: list[float]) -> dict:
    array = np.asarray(seconds) * 1000.0
    return {"p50_ms": round(float(np.percentile(array, 50)), 3), "p99_ms": round(float(np.percentile(array, 99)), 3),
            "mean_ms": round(float(array.mean()), 3), "runs": len(seconds)}


def timed(function, repeats: int, warmup: int = 5) -> list[float]:
    for i in range(warmup):
        function(i)
    times = []
    for i in range(repeats):
        started = time.perf_counter()
        function(i)
        times.append(time.perf_counter() - started)
    return times


def ten_second_items():
    from inference_server.data.synthetic import motion_for
    from inference_server.motion import MotionItem

    clip = motion_for(["walk", "wave_left+walk"], seed=1, seconds=5.0)  # 10 s at 20 fps
    return [MotionItem(id=f"ten_seconds_{fps:g}fps", name=f"10 s walk + wave at {fps:g} fps",
                       motion=clip.resample(fps), captions=["a person walks, then waves with the left hand"],
                       source="bench", split=None) for fps in TEN_SECOND_FPS]


def build_library(folder: Path, motions: int, preset: str, model: Path | None) -> tuple[Path, Path]:
    from inference_server.data import Dataset, load_spec
    from inference_server.index import build_index
    from inference_server.model import create_checkpoint

    model = model or create_checkpoint(folder / "model", preset=preset)
    dataset = load_spec(f"synthetic:{motions}")
    library = Dataset(items=dataset.items + ten_second_items(), spec="bench")
    build_index(library, model, folder / "index", progress=False)
    return model, folder / "index"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_command(model: Path, index: Path, address: str, device: str, extra: tuple[str, ...] = ()) -> list[str]:
    return [sys.executable, "-m", "inference_server", "serve", "--index", str(index), "--model", str(model),
            "--bind", address, "--device", device, *extra]


def start_server(model: Path, index: Path, device: str, threads: int, log_path: Path,
                 extra: tuple[str, ...] = ()) -> tuple[subprocess.Popen, str]:
    from bridge.client import Client
    from bridge.protocol import ServerUnreachable

    address = f"tcp://127.0.0.1:{free_port()}"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    command = serve_command(model, index, address, device, extra)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"), env=env)
    with Client(address, timeout=5, retries=0) as client:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"t2m serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                client.call("info")
                return process, address
            except ServerUnreachable:
                continue
    process.kill()
    raise SystemExit(f"t2m serve did not answer within 300 s:\n{log_path.read_text()[-3000:]}")


def bench_latency(engine, address: str, repeats: int) -> dict:
    """Each query in process, then over the wire, back to back: their paired difference is the
    wire's overhead, robust to the machine's load drifting during the run."""
    from bridge.client import Client

    in_process, wire, info = [], [], []
    with Client(address, timeout=60) as client:
        for i in range(repeats + 5):
            text = QUERIES[i % len(QUERIES)]
            times = [_seconds(engine.search, text, 10),
                     _seconds(client.call, "search", {"text": text, "k": 10}),
                     _seconds(client.call, "info")]
            if i >= 5:  # warm-up
                for series, value in zip((in_process, wire, info), times):
                    series.append(value)
    differences = np.subtract(wire, in_process)
    return {"in_process": stats_ms(in_process), "wire": stats_ms(wire), "info_round_trip": stats_ms(info),
            "overhead_p50_ms": round(float(np.median(differences)) * 1000, 3),
            "overhead_p99_ms": round(float(np.percentile(differences, 99)) * 1000, 3)}


def _seconds(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def bench_throughput(address: str, clients: int, seconds: float) -> dict:
    from bridge.client import Client

    counts = [0] * clients
    stop = threading.Event()

    def worker(slot: int):
        with Client(address, timeout=60) as client:
            i = slot
            while not stop.is_set():
                client.call("search", {"text": QUERIES[i % len(QUERIES)], "k": 10})
                counts[slot] += 1
                i += clients

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    return {"clients": clients, "requests": sum(counts), "seconds": round(elapsed, 2),
            "requests_per_s": round(sum(counts) / elapsed, 1)}


def bench_motion_fetch(engine, address: str, repeats: int) -> list[dict]:
    from bridge.client import Client

    rows = []
    with Client(address, timeout=60) as client:
        for fps in TEN_SECOND_FPS:
            motion_id = f"ten_seconds_{fps:g}fps"
            result, arrays = client.call("motion", {"motion_id": motion_id})
            positions = arrays["positions"]
            rows.append({"motion_id": motion_id, "fps": result["fps"], "frames": int(positions.shape[0]),
                         "seconds": round(positions.shape[0] / result["fps"], 2), "bytes": int(positions.nbytes),
                         "wire": stats_ms(timed(lambda i: client.call("motion", {"motion_id": motion_id}), repeats)),
                         "in_process": stats_ms(timed(lambda i: engine.motion(motion_id), repeats))})
    return rows


def bench_every_op(address: str) -> dict:
    """One call of each op over the wire (a smoke check of the device path), with its time."""
    from bridge.client import Client

    timings = {}
    with Client(address, timeout=60) as client:
        def timed_call(op, args=None, arrays=None):
            started = time.perf_counter()
            result, out = client.call(op, args, arrays)
            timings[op] = round((time.perf_counter() - started) * 1000, 3)
            return result, out

        timed_call("info")
        found, _ = timed_call("search", {"text": QUERIES[1], "k": 10})
        motion_id = found["results"][0]["motion_id"]
        _, relevance = timed_call("explain", {"text": QUERIES[1], "motion_id": motion_id})
        motion, arrays = timed_call("motion", {"motion_id": motion_id})
        described, _ = timed_call("describe", {"fps": motion["fps"], "k": 5}, {"positions": arrays["positions"]})
        similar, _ = timed_call("similar", {"motion_id": motion_id, "k": 10})
    assert relevance["relevance"].shape[1] == 14 and described["captions"] and len(similar["results"]) == 10
    return timings


# ---------------------------------------------------------------- robustness (issue 16)

SLOW_OPS = ("similar", "describe", "explain")


def bench_idle_search(address: str, repeats: int) -> dict:
    from bridge.client import Client

    with Client(address, timeout=60) as client:
        return stats_ms(timed(lambda i: client.call("search", {"text": QUERIES[i % len(QUERIES)], "k": 10}), repeats))


def _slow_request(client, index_ids: list[str], i: int, long_clip: np.ndarray):
    op = SLOW_OPS[i % len(SLOW_OPS)]
    motion_id = index_ids[i % len(index_ids)]
    if op == "similar":
        return client.send("similar", {"motion_id": motion_id, "k": 10})
    if op == "describe":
        return client.send("describe", {"fps": 20.0, "k": 5}, {"positions": long_clip})
    return client.send("explain", {"text": QUERIES[i % len(QUERIES)], "motion_id": motion_id})


def bench_search_under_slow_ops(address: str, index_ids: list[str], seconds: float, slow_clients: int = 1,
                                in_flight: int = 4) -> dict:
    """Search latency of one client while `slow_clients` clients keep `in_flight` slow ops each pending."""
    from bridge.client import Client

    stop = threading.Event()
    long_clip = np.zeros((600, 22, 3), np.float32)  # 30 s at 20 fps
    long_clip[:, :, 1] = np.linspace(0, 1.7, 22)[None]
    counts = {"sent": 0, "ok": 0, "busy": 0, "other": 0, "lost": 0}
    lock = threading.Lock()

    def slow_worker(slot: int):
        with Client(address, timeout=120, retries=0) as client:
            pending, i = set(), slot
            while not stop.is_set() or pending:
                while not stop.is_set() and len(pending) < in_flight:
                    pending.add(_slow_request(client, index_ids, i, long_clip))
                    i += 1
                    with lock:
                        counts["sent"] += 1
                for request_id, reply in client.poll(0.2):
                    pending.discard(request_id)
                    key = "ok" if reply.ok else ("busy" if reply.error_code == "busy" else "other")
                    if reply.error_code == "unreachable":
                        key = "lost"
                    with lock:
                        counts[key] += 1

    workers = [threading.Thread(target=slow_worker, args=(slot,)) for slot in range(slow_clients)]
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # the slow ops are in flight
    latencies, busy = [], 0
    from bridge.protocol import RemoteError
    with Client(address, timeout=60) as client:
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            try:
                client.call("search", {"text": QUERIES[i % len(QUERIES)], "k": 10})
                latencies.append(time.perf_counter() - started)
            except RemoteError as error:
                busy += error.code == "busy"
            i += 1
    stop.set()
    for worker in workers:
        worker.join()
    return {"slow_clients": slow_clients, "slow_in_flight_each": in_flight, "search": stats_ms(latencies),
            "search_busy": busy, "slow_ops": counts}


def bench_mixed_clients(address: str, index_ids: list[str], clients: int, requests: int, in_flight: int) -> dict:
    """`clients` clients, each sending `requests` mixed requests (search, motion, explain,
    describe, similar) with `in_flight` of them pending at a time (1: a user who waits for each
    reply; more: a pipelining script); counts replies per code and search latency."""
    from bridge.client import Client

    long_clip = np.zeros((200, 22, 3), np.float32)
    results = []
    lock = threading.Lock()

    def worker(slot: int):
        ops = ("search", "motion", "search", "explain", "search", "describe", "search", "similar")
        codes, search_times, sent_at = {}, [], {}
        with Client(address, timeout=120, retries=0) as client:
            pending, i = {}, 0
            while i < requests or pending:
                while i < requests and len(pending) < in_flight:
                    op = ops[(i + slot) % len(ops)]
                    motion_id = index_ids[(i * 7 + slot) % len(index_ids)]
                    if op == "search":
                        request_id = client.send("search", {"text": QUERIES[i % len(QUERIES)], "k": 10})
                    elif op == "motion":
                        request_id = client.send("motion", {"motion_id": motion_id})
                    elif op == "describe":
                        request_id = client.send("describe", {"fps": 20.0}, {"positions": long_clip})
                    elif op == "explain":
                        request_id = client.send("explain", {"text": QUERIES[i % len(QUERIES)], "motion_id": motion_id})
                    else:
                        request_id = client.send("similar", {"motion_id": motion_id, "k": 10})
                    pending[request_id] = op
                    sent_at[request_id] = time.perf_counter()
                    i += 1
                for request_id, reply in client.poll(0.2):
                    op = pending.pop(request_id, None)
                    if op is None:
                        continue
                    code = "ok" if reply.ok else reply.error_code
                    codes[code] = codes.get(code, 0) + 1
                    if op == "search" and reply.ok:
                        search_times.append(time.perf_counter() - sent_at[request_id])
        with lock:
            results.append((codes, search_times))

    threads = [threading.Thread(target=worker, args=(slot,)) for slot in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    codes: dict = {}
    for client_codes, _ in results:
        for code, count in client_codes.items():
            codes[code] = codes.get(code, 0) + count
    search_times = [t for _, times in results for t in times]
    return {"clients": clients, "in_flight_each": in_flight, "requests": clients * requests, "replies": codes,
            "lost": clients * requests - sum(codes.values()) + codes.get("unreachable", 0),
            "search_latency": stats_ms(search_times) if search_times else None,
            "seconds": round(time.perf_counter() - started, 2)}


def bench_pipelined(address: str, count: int) -> dict:
    """One raw DEALER sends `count` searches before reading any reply, then reads them all."""
    import zmq

    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, 0)
    sock.connect(address)
    started = time.perf_counter()
    for number in range(count):
        sock.send(json.dumps({"v": 1, "id": f"p{number}", "op": "search",
                              "args": {"text": QUERIES[number % len(QUERIES)], "k": 5}}).encode())
    sent = time.perf_counter() - started
    seen, codes = set(), {}
    deadline = time.monotonic() + 600
    while len(seen) < count and time.monotonic() < deadline:
        if sock.poll(5000):
            reply = json.loads(sock.recv_multipart()[0])
            seen.add(reply["id"])
            code = "ok" if reply["ok"] else reply["error"]["code"]
            codes[code] = codes.get(code, 0) + 1
        else:
            break
    sock.close()
    context.term()
    return {"requests": count, "replies": codes, "lost": count - len(seen), "send_seconds": round(sent, 2),
            "seconds": round(time.perf_counter() - started, 2)}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _children_rss_mb(pid: int) -> float:
    """Resident memory of the server's child processes (the worker process answering explain,
    describe and similar), in MB."""
    children = [int(child) for task in Path(f"/proc/{pid}/task").iterdir()
                for child in (task / "children").read_text().split()]
    return sum(_rss_mb(child) for child in children)


def hostile_messages(rng: np.random.Generator) -> list[tuple[str, list[bytes]]]:
    """One message of each kind (a fresh random variant each call)."""
    def h(**fields) -> bytes:
        return json.dumps({"v": 1, "id": f"f{int(rng.integers(1 << 30))}", "op": "info", "args": {}, **fields}).encode()

    describe = [{"name": "positions", "dtype": "float32", "shape": [30, 22, 3]}]
    return [
        ("random bytes", [rng.bytes(int(rng.integers(1, 400)))]),
        ("random frames", [rng.bytes(int(rng.integers(1, 50))) for _ in range(int(rng.integers(2, 5)))]),
        ("empty frame", [b""]),
        ("json array", [b"[1, 2, 3]"]),
        ("json string", [b'"hello"']),
        ("id not a string", [json.dumps({"v": 1, "id": 7, "op": "info"}).encode()]),
        ("lone surrogate id", [b'{"v": 1, "id": "\ud800", "op": "info", "args": {}}']),
        ("surrogate in text", [b'{"v": 1, "id": "s", "op": "search", "args": {"text": "a \udfff walk"}}']),
        ("deep json", [b'{"v": 1, "id": "d", "op": "info", "args": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"]),
        ("nested args 100", [h(args={"text": json.loads("[" * 100 + "]" * 100)}, op="search")]),
        ("huge int k", [b'{"v": 1, "id": "k", "op": "search", "args": {"text": "a", "k": ' + b"9" * 5000 + b"}}"]),
        ("wrong version", [h(v=int(rng.integers(2, 99)))]),
        ("unknown op", [h(op="format_disk")]),
        ("op not a string", [h(op=["search"])]),
        ("args not an object", [h(args="k=3")]),
        ("missing text", [h(op="search")]),
        ("text too long", [h(op="search", args={"text": "w" * 5000})]),
        ("k out of range", [h(op="search", args={"text": "a walk", "k": int(rng.integers(101, 10 ** 9))})]),
        ("unknown motion", [h(op="motion", args={"motion_id": "nope"})]),
        ("motion id not a string", [h(op="similar", args={"motion_id": {"a": 1}})]),
        ("array frame too short", [h(op="describe", args={"fps": 20}, arrays=describe), b"\0" * 100]),
        ("array described, absent", [h(op="describe", args={"fps": 20}, arrays=describe)]),
        ("lying shape [0, 2**63]", [h(op="describe", args={"fps": 20},
                                      arrays=[{"name": "positions", "dtype": "float32", "shape": [0, 2 ** 63]}]), b""]),
        ("negative shape", [h(arrays=[{"name": "a", "dtype": "uint8", "shape": [-1]}]), b""]),
        ("unknown dtype", [h(arrays=[{"name": "a", "dtype": "object", "shape": [1]}]), b"\0" * 8]),
        ("fps 0.001", [h(op="describe", args={"fps": 0.001}, arrays=describe), bytes(30 * 66 * 4)]),
        ("fps 1e-300", [h(op="describe", args={"fps": 1e-300}, arrays=describe), bytes(30 * 66 * 4)]),
        ("fps NaN-like string", [h(op="describe", args={"fps": "NaN"}, arrays=describe), bytes(30 * 66 * 4)]),
        ("NaN positions", [h(op="describe", args={"fps": 20}, arrays=describe),
                           np.full((30, 22, 3), np.nan, np.float32).tobytes()]),
        ("describe both id and positions", [h(op="describe", args={"fps": 20, "motion_id": "x"}, arrays=describe),
                                            bytes(30 * 66 * 4)]),
        ("too many arrays", [h(arrays=[{"name": f"a{i}", "dtype": "uint8", "shape": [1]} for i in range(20)]),
                             *[b"\0"] * 20]),
        ("header over 256 KB", [h(op="search", args={"text": "a" * 300_000})]),
        ("cut json", [b'{"v": 1, "id": "cut", "op": "sea']),
        ("invalid utf-8", [b'{"v": 1, "id": "\xff\xfe", "op": "info"}']),
    ]


def bench_fuzz(address: str, pid: int, messages: int, check_every: int = 1000) -> dict:
    """Send `messages` hostile messages (all kinds in turn), one reply expected each."""
    import zmq

    from bridge.client import Client

    rng = np.random.default_rng(16)
    kinds = [name for name, _ in hostile_messages(rng)]
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    codes: dict = {}
    lost, checks, internal = 0, [], []
    with Client(address, timeout=60) as client:
        reference, _ = client.call("search", {"text": QUERIES[0], "k": 5})
        rss_start, workers_start = _rss_mb(pid), _children_rss_mb(pid)
        started = time.perf_counter()
        for number in range(messages):
            name, frames = hostile_messages(rng)[number % len(kinds)]
            sock.send_multipart(frames)
            if not sock.poll(30_000):
                lost += 1
                continue
            frames = sock.recv_multipart()
            # A message whose first frame is empty looks like a REQ envelope: the reply comes
            # back in the same envelope, after an empty frame.
            reply = json.loads(frames[1] if len(frames) > 1 and not frames[0] else frames[0])
            code = "ok" if reply["ok"] else reply["error"]["code"]
            codes[code] = codes.get(code, 0) + 1
            if code == "internal":
                internal.append(name)
            if (number + 1) % check_every == 0:
                again, _ = client.call("search", {"text": QUERIES[0], "k": 5})
                checks.append(again["results"] == reference["results"])
        seconds = time.perf_counter() - started
        rss_end, workers_end = _rss_mb(pid), _children_rss_mb(pid)
    sock.close()
    context.term()
    return {"messages": messages, "kinds": len(kinds), "replies": codes, "lost": lost,
            "internal_kinds": sorted(set(internal)), "same_search_after_each_1000": all(checks),
            "checks": len(checks), "server_rss_mb": {"start": round(rss_start, 1), "end": round(rss_end, 1),
                                                     "growth": round(rss_end - rss_start, 1)},
            "worker_rss_mb": {"start": round(workers_start, 1), "end": round(workers_end, 1),
                              "growth": round(workers_end - workers_start, 1)},
            "seconds": round(seconds, 1)}


def bench_startup(model: Path, index: Path, device: str, threads: int, log_path: Path,
                  extra: tuple[str, ...] = ()) -> dict:
    """A describe, then a search, sent 1 s after `t2m serve` logs that it listens."""
    from bridge.client import Client
    from bridge.protocol import RemoteError

    address = f"tcp://127.0.0.1:{free_port()}"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    command = serve_command(model, index, address, device, extra)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(log_path, "w"), env=env)
    try:
        deadline = time.monotonic() + 300
        while "listening on" not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"t2m serve did not start:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.02)
        time.sleep(1.0)
        with Client(address, timeout=30, retries=0) as client:
            ready = client.call("info")[0].get("ready", {})
            started = time.perf_counter()
            describe_code = "ok"
            try:
                found, _ = client.call("search", {"text": QUERIES[0], "k": 1})
                motion_id = found["results"][0]["motion_id"]
                client.call("describe", {"motion_id": motion_id})
            except RemoteError as error:
                describe_code = error.code
            describe_s = time.perf_counter() - started
            started = time.perf_counter()
            client.call("search", {"text": QUERIES[1], "k": 10})
            search_s = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(30)
    return {"describe_ready_at_1s": ready.get("describe"), "describe_code": describe_code,
            "describe_seconds": round(describe_s, 3), "search_seconds": round(search_s, 3)}


def run_robustness(model: Path, index: Path, engine, args, folder: Path) -> dict:
    index_ids = engine.index.ids
    extra = ("--no-worker-process",) if args.no_worker_process else ()
    startup = bench_startup(model, index, args.device, args.threads, folder / "startup.log", extra)
    server, address = start_server(model, index, args.device, args.threads, folder / "serve.log", extra)
    try:
        from bridge.client import Client

        with Client(address, timeout=600) as client:  # the caption bank, for describe
            while not client.call("info")[0].get("ready", {}).get("describe", True):
                time.sleep(0.5)
        idle = bench_idle_search(address, args.repeats)
        under_slow = bench_search_under_slow_ops(address, index_ids, args.seconds * 3, slow_clients=1)
        mixed = bench_mixed_clients(address, index_ids, clients=8, requests=args.mixed_requests, in_flight=1)
        mixed_pipelined = bench_mixed_clients(address, index_ids, clients=8, requests=args.mixed_requests,
                                              in_flight=8)
        pipelined = bench_pipelined(address, args.pipelined)
        fuzz = bench_fuzz(address, server.pid, args.fuzz)
    finally:
        server.terminate()
        server.wait(30)
    idle_p50 = idle["p50_ms"]
    return {
        "idle_search": idle,
        "search_under_slow_ops": under_slow,
        "mixed_8_clients": mixed,
        "mixed_8_clients_pipelined": mixed_pipelined,
        "startup": startup,
        "pipelined": pipelined,
        "fuzz": fuzz,
        "targets": {
            "search_p99_under_slow_ops<=3x_idle_p50": under_slow["search"]["p99_ms"] <= 3 * idle_p50,
            "mixed_search_p99<=3x_idle_p50": bool(mixed["search_latency"])
            and mixed["search_latency"]["p99_ms"] <= 3 * idle_p50,
            "mixed_0_lost": mixed["lost"] == 0 and mixed_pipelined["lost"] == 0,
            "startup_search<=2s": startup["search_seconds"] <= 2.0,
            "pipelined_every_request_answered": pipelined["lost"] == 0
            and set(pipelined["replies"]) <= {"ok", "busy"},
            "fuzz_0_lost_0_internal": fuzz["lost"] == 0 and "internal" not in fuzz["replies"],
            "fuzz_rss_growth<=50MB": fuzz["server_rss_mb"]["growth"] + fuzz["worker_rss_mb"]["growth"] <= 50,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--motions", type=int, default=500, help="synthetic library size (default 500)")
    parser.add_argument("--preset", default="test", help="model preset of the untrained checkpoint (default test)")
    parser.add_argument("--model", type=Path, help="use this checkpoint (alone: the library is built with it)")
    parser.add_argument("--index", type=Path, help="use this index (with --model); needs the 10 s clips for part 3")
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda", "auto"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads in each process (default 2)")
    parser.add_argument("--repeats", type=int, default=300)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each throughput run")
    parser.add_argument("--out", type=Path, default=None,
                        help="default bench/results/server.json (server_robustness.json with --only robustness)")
    parser.add_argument("--only", choices=("all", "wire", "robustness"), default="all",
                        help="wire: parts 1-4; robustness: parts 5-8; all: both")
    parser.add_argument("--mixed-requests", type=int, default=60, help="requests per client in the 8-client mix")
    parser.add_argument("--pipelined", type=int, default=20000, help="requests of the pipelined client")
    parser.add_argument("--fuzz", type=int, default=10000, help="hostile messages")
    parser.add_argument("--no-worker-process", action="store_true",
                        help="robustness: serve with t2m serve --no-worker-process (slow ops in a thread), "
                             "for the comparison with the worker process")
    args = parser.parse_args()
    if args.out is None:
        args.out = RESULTS.with_name("server_robustness.json") if args.only == "robustness" else RESULTS

    import torch

    from inference_server.engine import Engine
    from inference_server.index import MotionIndex
    from inference_server.retriever import Retriever

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="t2m-bench-server-") as tmp:
        folder = Path(tmp)
        if args.index is not None and args.model is None:
            parser.error("--index needs --model")
        model, index = args.model, args.index
        if index is None:
            model, index = build_library(folder, args.motions, args.preset, model)
        retriever = Retriever.load(model, device=args.device)
        engine = Engine(retriever, MotionIndex.load(index, retriever))
        report = {
            "machine": {"platform": platform.platform(), "python": platform.python_version(),
                        "cpus": os.cpu_count(), "device": str(retriever.device),
                        "gpu": torch.cuda.get_device_name(0) if retriever.device.type == "cuda" else None,
                        "torch_threads": args.threads},
            "serve": "t2m serve" + (" --no-worker-process" if args.no_worker_process else ""),
            "library": {"motions": len(engine.index), "model": retriever.name,
                        "preset": None if args.model else args.preset,
                        "captions": engine.info()[0]["library"]["captions"]},
        }
        if args.only in ("all", "wire"):
            server, address = start_server(model, index, args.device, args.threads, folder / "serve.log")
            try:
                latency = bench_latency(engine, address, args.repeats)
                throughput = [bench_throughput(address, clients, args.seconds) for clients in (1, 4, 8)]
                fetch = bench_motion_fetch(engine, address, args.repeats)
                every_op = bench_every_op(address)
            finally:
                server.terminate()
                server.wait(30)
            ten_seconds = [row for row in fetch if row["fps"] in (20.0, 30.0)]
            report.update({
                "search": latency,
                "throughput": throughput,
                "motion_fetch": fetch,
                "every_op_ms": every_op,
                "targets": {"wire_overhead_p50_ms<=2": latency["overhead_p50_ms"] <= 2.0,
                            "fetch_10s_motion_p50_ms<=5": all(row["wire"]["p50_ms"] <= 5.0 for row in ten_seconds)},
            })
        if args.only in ("all", "robustness"):
            report["robustness"] = run_robustness(model, index, engine, args, folder)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
