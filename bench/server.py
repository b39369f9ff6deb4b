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


def start_server(model: Path, index: Path, device: str, threads: int, log_path: Path) -> tuple[subprocess.Popen, str]:
    from bridge.client import Client
    from bridge.protocol import ServerUnreachable

    address = f"tcp://127.0.0.1:{free_port()}"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    command = [sys.executable, "-m", "inference_server", "serve", "--index", str(index), "--model", str(model),
               "--bind", address, "--device", device]
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
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

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
    report = {
        "machine": {"platform": platform.platform(), "python": platform.python_version(),
                    "cpus": os.cpu_count(), "device": str(retriever.device),
                    "gpu": torch.cuda.get_device_name(0) if retriever.device.type == "cuda" else None,
                    "torch_threads": args.threads},
        "library": {"motions": len(engine.index), "model": retriever.name,
                    "preset": None if args.model else args.preset, "captions": engine.info()[0]["library"]["captions"]},
        "search": latency,
        "throughput": throughput,
        "motion_fetch": fetch,
        "every_op_ms": every_op,
        "targets": {"wire_overhead_p50_ms<=2": latency["overhead_p50_ms"] <= 2.0,
                    "fetch_10s_motion_p50_ms<=5": all(row["wire"]["p50_ms"] <= 5.0 for row in ten_seconds)},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
