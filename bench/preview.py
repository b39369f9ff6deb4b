"""Result previews on this machine -> bench/results/preview.json.

Times the previews of 10 search results (synthetic:10 motions, 2-10 s at 20 fps, in
memory as the server's index holds them) at the panel's size, 256 x 64:
- cold: a fresh PreviewCache renders all 10 (stick figures + PNG encoding);
- cached: the same 10 again, served from the cache.
Wall-clock and CPU (process) time per batch of 10, best and median over the repeats;
the CPU figure is what counts on a machine shared with other work (its load average is
recorded). Target: 10 previews <= 300 ms.

    python bench/preview.py [--repeats R] [--out bench/results/preview.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from inference_server.data import load_spec
from inference_server.preview import DEFAULT_SIZE, PreviewCache

RESULTS = 10
TARGET_MS = 300.0


def time_batch(run) -> tuple[float, float]:
    """(wall ms, CPU ms) of one call of run()."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000


def summary(samples: list[tuple[float, float]]) -> dict:
    walls, cpus = np.array(samples).T
    return {"wall_ms_best": round(float(walls.min()), 1), "wall_ms_median": round(float(np.median(walls)), 1),
            "cpu_ms_best": round(float(cpus.min()), 1), "cpu_ms_median": round(float(np.median(cpus)), 1)}


def bench(repeats: int) -> dict:
    items = load_spec(f"synthetic:{RESULTS}").items
    positions = {item.id: item.motion.positions for item in items}
    cold, cached = [], []
    for _ in range(repeats):
        cache = PreviewCache()

        def previews():
            return [cache.preview(motion_id, DEFAULT_SIZE, positions.__getitem__) for motion_id in positions]
        cold.append(time_batch(previews))
        cached.append(time_batch(previews))
        assert cache.misses == RESULTS and cache.hits == RESULTS
    sizes = [len(cache.preview(motion_id, DEFAULT_SIZE, positions.__getitem__)) for motion_id in positions]
    result = {"previews": RESULTS, "size": list(DEFAULT_SIZE), "repeats": repeats,
              "mean_frames": round(float(np.mean([len(p) for p in positions.values()])), 1),
              "mean_png_bytes": round(float(np.mean(sizes)), 1),
              "cold": summary(cold), "cached": summary(cached), "target_ms": TARGET_MS}
    result["meets_target"] = result["cold"]["cpu_ms_median"] <= TARGET_MS
    return result


def machine() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
            "load_average_1min": round(os.getloadavg()[0], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "preview.json")
    args = parser.parse_args()
    result = {"machine": machine(), "preview": bench(args.repeats)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
