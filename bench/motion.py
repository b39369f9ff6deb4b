"""Motion pipeline throughput on this machine -> bench/results/motion.json.

Measures motions per second for
- BVH parse (Bandai-Namco clips, the data package's parser) alone, and parse + forward
  kinematics + SMPL-22 mapping (inference_server.data.load_file);
- joint angles + JAMI input (jami_input: angles, z-score, crop/pad) from in-memory
  200-frame SMPL-22 motions at 20 fps (real Bandai poses, looped to 200 frames).
Target: >= 300 motions/s for angles + JAMI.

    python bench/motion.py [--data DIR] [--clips N] [--repeats R] [--out bench/results/motion.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

from inference_server.data import load_file
from inference_server.data.bvh import parse_bvh
from inference_server.jami import AngleStats, jami_input
from inference_server.motion import Motion

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bandai-namco"  # ../shared/data
TARGET_JAMI_PER_S = 300.0
MOTION_FRAMES = 200


def best_rate(count: int, run, repeats: int) -> tuple[float, float]:
    """(best, median) items per second over `repeats` timed runs of run()."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        rates.append(count / (time.perf_counter() - start))
    return max(rates), float(np.median(rates))


def bench_parse(files: list[Path], repeats: int) -> dict:
    frames = sum(parse_bvh(path).frames.shape[0] for path in files)  # also warms the file cache
    parse_best, parse_median = best_rate(len(files), lambda: [parse_bvh(path) for path in files], repeats)
    load_best, load_median = best_rate(len(files), lambda: [load_file(path) for path in files], repeats)
    return {"clips": len(files), "mean_frames": frames / len(files),
            "parse_motions_per_s": round(parse_best, 1), "parse_motions_per_s_median": round(parse_median, 1),
            "load_motions_per_s": round(load_best, 1), "load_motions_per_s_median": round(load_median, 1)}


def bench_jami(files: list[Path], repeats: int, count: int) -> dict:
    motions = []
    for path in files:
        positions = load_file(path).motion.resample(20).positions
        motions.append(Motion.smpl22(np.resize(positions, (MOTION_FRAMES, 22, 3)), 20))
    motions = (motions * (count // len(motions) + 1))[:count]
    stats = AngleStats(np.zeros(29), np.ones(29))
    best, median = best_rate(len(motions), lambda: [jami_input(m, stats) for m in motions], repeats)
    return {"motions": len(motions), "frames": MOTION_FRAMES, "fps": 20,
            "motions_per_s": round(best, 1), "motions_per_s_median": round(median, 1),
            "target_motions_per_s": TARGET_JAMI_PER_S, "meets_target": bool(median >= TARGET_JAMI_PER_S)}


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "load_average_1min": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder searched for *.bvh")
    parser.add_argument("--clips", type=int, default=40, help="BVH clips to parse (default 40)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs, best and median kept (default 3)")
    parser.add_argument("--motions", type=int, default=400, help="motions per angles+JAMI run (default 400)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "motion.json")
    args = parser.parse_args(argv)
    every = sorted(args.data.rglob("*.bvh"))
    files = every[::max(1, len(every) // max(1, args.clips))][:args.clips]  # spread over contents/styles
    if not files:
        print(f"bench/motion.py: no .bvh files under {args.data}", file=sys.stderr)
        return 1
    result = {"machine": machine(), "bvh": bench_parse(files, args.repeats),
              "angles_jami": bench_jami(files, args.repeats, args.motions),
              "command": "python bench/motion.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
