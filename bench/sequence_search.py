#!/usr/bin/env python3
"""Search of prompts of several steps, and result previews -> bench/results/sequence_search.json.

    python bench/sequence_search.py                        # synthetic:500:0 indexed with the embedded default
    python bench/sequence_search.py --index INDEX          # an existing index (its recorded model)
    python bench/sequence_search.py --library synthetic:2000:0 --repeats 30

The server's Engine in process (the wire adds framing only):
1. search latency (k = 10) of prompts of one step against prompts of two and three steps,
   which embed every step in the same encoder call, rerank a pool of max(100, 10 k) plain
   hits by order (ordered.py) and search every step alone for `segments`: p50/p90 wall and
   CPU (process) milliseconds per query, over every prompt of the class and every repeat;
2. previews of the 10 results of a search at the panel's size (256 x 64): cold (a fresh
   Engine, so an empty PreviewCache: positions read from the index, drawn, PNG-encoded) and
   cached (the same 10 again). Target: 10 previews <= 300 ms on CPU.
The CPU figures are the ones that count on a machine shared with other work (its load
average is recorded); --threads torch threads (default 2, the development machine).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's packages, whatever the environment has installed

PROMPTS = {
    "one_step": ["a person walks forward", "a person waves with the right hand", "a person sits down",
                 "someone jumps up", "a man squats down"],
    "two_steps": ["a person walks forward, then waves with the right hand", "someone jumps, then claps",
                  "a man squats down and then jumps", "a person waves with the left hand before walking backwards"],
    "three_steps": ["a person walks forward, then waves with the right hand, then sits down",
                    "someone squats, then jumps, then turns left",
                    "1. walk forward 2. kick with the right leg 3. bow"],
}
K = 10
PREVIEWS = 10
TARGET_MS = 300.0


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--library", default="synthetic:500:0", help="data spec indexed with --model (default %(default)s)")
    parser.add_argument("--model", default=None, help="checkpoint (default: the embedded default, or the one --index records)")
    parser.add_argument("--index", type=Path, help="an existing index instead of building --library")
    parser.add_argument("--repeats", type=int, default=15, help="searches of each prompt; preview batches")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "sequence_search.json")
    return parser.parse_args(argv)


def timed(run) -> tuple[float, float]:
    """(wall ms, CPU ms) of one call of run()."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def summary(samples: list[tuple[float, float]]) -> dict:
    walls, cpus = np.array(samples).T
    return {"wall_ms_p50": round(float(np.median(walls)), 2), "wall_ms_p90": round(float(np.percentile(walls, 90)), 2),
            "cpu_ms_p50": round(float(np.median(cpus)), 2), "cpu_ms_p90": round(float(np.percentile(cpus, 90)), 2),
            "samples": len(samples)}


def search_latency(engine, repeats: int) -> dict:
    from bridge.sequence import split_steps

    result = {}
    for kind, prompts in PROMPTS.items():
        for prompt in prompts:
            engine.search(prompt, K)  # warm: first-call allocations, tokenizer caches
        samples = [timed(lambda: engine.search(prompt, K)) for _ in range(repeats) for prompt in prompts]
        result[kind] = {**summary(samples), "prompts": {prompt: len(split_steps(prompt)) for prompt in prompts}}
    return result


def preview_latency(retriever, index, repeats: int) -> dict:
    from inference_server.engine import Engine

    hits = Engine(retriever, index).search(PROMPTS["three_steps"][0], PREVIEWS)[0]["results"]
    ids = [hit["motion_id"] for hit in hits]
    cold, cached, sizes = [], [], []
    for _ in range(repeats):
        engine = Engine(retriever, index)  # a fresh PreviewCache

        def previews(engine=engine):
            sizes[:] = [len(engine.preview(motion_id)[1]["png"]) for motion_id in ids]
        cold.append(timed(previews))
        cached.append(timed(previews))
    result = {"previews": len(ids), "size": [256, 64], "mean_png_bytes": round(float(np.mean(sizes)), 1),
              "cold": summary(cold), "cached": summary(cached), "target_ms": TARGET_MS}
    result["meets_target"] = result["cold"]["cpu_ms_p50"] <= TARGET_MS
    return result


def open_library(args, work: Path):
    from inference_server import default
    from inference_server.index import MotionIndex, build_index
    from inference_server.retriever import Retriever

    if args.index is not None:
        model = default.model_for_index(args.index, args.model)
        retriever = Retriever.load(model, device="cpu")
        return retriever, MotionIndex.load(args.index, retriever), str(args.index)
    retriever = Retriever.load(default.model_dir(args.model), device="cpu")
    build_index(args.library, retriever, work / "index", progress=sys.stderr.isatty())
    return retriever, MotionIndex.load(work / "index", retriever), args.library


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "load_average_1min": round(os.getloadavg()[0], 2)}


def main(argv=None) -> None:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="t2m-sequence-bench-") as work:
        retriever, index, library = open_library(args, Path(work))
        from inference_server.engine import Engine

        result = {"machine": machine(), "library": library, "motions": len(index), "model": retriever.name,
                  "k": K, "search": search_latency(Engine(retriever, index), args.repeats),
                  "preview": preview_latency(retriever, index, args.repeats)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
