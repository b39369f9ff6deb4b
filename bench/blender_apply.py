#!/usr/bin/env python3
"""Benchmark the Blender side: retarget + keying, and text -> keyframes end to end.

    python bench/blender_apply.py                      # both parts, writes bench/results/blender_apply.json
    python bench/blender_apply.py --skip-e2e           # retarget + keying only (seconds)
    python bench/blender_apply.py --library synthetic:5000 --preset test --queries 20
    ~/.cache/t2m-bpy-venvs/4.2.23/bin/python bench/blender_apply.py --skip-e2e --out X.json   # another Blender
      (the venvs of scripts/test_blender_versions.sh; the report names the Blender it ran on)

1. Retarget + keys of a 10 s clip (synthetic walk + wave, 20 fps) at 30 fps (301 frames)
   onto a 22-bone Mixamo rig and a 65-bone one (with fingers), through
   blender_addon.retarget.apply_motion (bone map, solve, new action, keys). Target: the
   65-bone rig in <= 100 ms.
2. End to end on CPU: an index of the library built with the given preset (its build
   time is reported), `t2m serve` on it, then per query the add-on's own operators in
   blocking mode: t2m.search, then t2m.apply of the best result (fetch the motion,
   retarget, key) onto the 65-bone rig. Reports p50/p90 of the whole and of each step.
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
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's packages, whatever the environment has installed
RESULTS = ROOT / "bench" / "results" / "blender_apply.json"
QUERIES = ["a person walks forward", "someone waves with the left hand", "a man jumps", "the person bows",
           "a woman runs", "a person kicks with the right leg", "someone claps", "a person sits down",
           "a figure turns left while walking", "the man raises both hands", "a person squats",
           "someone punches with the left hand", "a person walks backwards", "a person jogs slowly",
           "the woman sidesteps to the right", "a person reaches forward with both hands",
           "someone lunges to the left", "a person stands still", "a man waves both hands",
           "a person walks fast"]


def percentiles(values: list[float]) -> dict:
    array = np.asarray(values) * 1000.0
    return {"p50_ms": round(float(np.percentile(array, 50)), 2), "p90_ms": round(float(np.percentile(array, 90)), 2),
            "min_ms": round(float(array.min()), 2), "runs": len(values)}


def bench_retarget(repeats: int) -> dict:
    import bpy

    from blender_addon import compat, retarget, retarget_solver
    from blender_addon.rigs import make_humanoid_rig
    from inference_server.data.synthetic import motion_for

    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = 30
    clip = motion_for(["walk", "wave_left+walk"], seed=1, seconds=5.0)
    report = {"blender": bpy.app.version_string, "actions": compat.describe(),
              "clip_seconds": round(clip.duration, 2), "source_fps": clip.fps, "scene_fps": 30}
    for label, fingers in (("rig_22_bones", False), ("rig_65_bones", True)):
        rig = make_humanoid_rig(label, naming="MIXAMO", pose="A", fingers=fingers, roll_seed=0, y_up=True, scale=0.01)
        bone_map = retarget.resolve_bone_map(rig, None)
        times, solves, frames = [], [], 0
        for _ in range(repeats):
            start = time.perf_counter()
            action = retarget.apply_motion(rig, clip.positions, clip.fps, "bench", bone_map=bone_map)
            times.append(time.perf_counter() - start)
            start = time.perf_counter()
            retarget_solver.solve(retarget.read_rig(rig), clip.positions, clip.fps, 30.0, bone_map)
            solves.append(time.perf_counter() - start)
            frames = int(action.frame_range[1] - action.frame_range[0] + 1)
            bpy.data.actions.remove(action)
        report[label] = {"bones": len(rig.data.bones), "keyed_bones": len(bone_map), "frames": frames,
                         "apply": percentiles(times), "solve_only": percentiles(solves)}
    report["target_65_bones_ms"] = 100
    report["meets_target"] = report["rig_65_bones"]["apply"]["p50_ms"] <= 100
    return report


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# The machine is shared: the model processes get two threads.
ENV = dict(os.environ, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")


def _run(command: list, **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run([str(c) for c in command], check=True, env=ENV, **kwargs)
    return time.perf_counter() - start


def bench_end_to_end(library: str, preset: str, queries: int, work: Path) -> dict:
    import bpy

    import blender_addon
    from blender_addon.rigs import make_humanoid_rig

    checkpoint, index, timings = work / "ckpt", work / "index", work / "build_seconds.json"
    t2m = [sys.executable, "-m", "inference_server"]
    if not timings.exists():  # --work keeps the checkpoint and index of an earlier run
        checkpoint_seconds = _run([sys.executable, "-c", "import sys; from inference_server.model import "
                                   "create_checkpoint; create_checkpoint(sys.argv[1], preset=sys.argv[2])",
                                   checkpoint, preset])
        index_seconds = _run(t2m + ["index", "build", library, "--model", checkpoint, "--out", index])
        timings.write_text(json.dumps({"checkpoint": checkpoint_seconds, "index": index_seconds}))
    build = json.loads(timings.read_text())
    checkpoint_seconds, index_seconds = build["checkpoint"], build["index"]
    address = f"tcp://127.0.0.1:{_free_port()}"
    log = open(work / "server.log", "w")
    server = subprocess.Popen(t2m + ["serve", "--index", str(index), "--model", str(checkpoint), "--bind", address,
                                     "--device", "cpu"], stdout=log, stderr=log, env=ENV)
    try:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        blender_addon.register()
        scene = bpy.context.scene
        scene.render.fps = 30
        scene.t2m.server = address
        _wait_for_server(bpy, server)
        rig = make_humanoid_rig("Character", naming="MIXAMO", pose="A", fingers=True, y_up=True, scale=0.01)
        bpy.context.view_layer.objects.active = rig
        totals, searches, applies = [], [], []
        for query in (QUERIES * (queries // len(QUERIES) + 1))[:queries]:
            start = time.perf_counter()
            bpy.ops.t2m.search(query=query, k=10, blocking=True)
            middle = time.perf_counter()
            bpy.ops.t2m.apply(index=0, blocking=True)
            end = time.perf_counter()
            totals.append(end - start)
            searches.append(middle - start)
            applies.append(end - middle)
        blender_addon.unregister()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    return {"library": library, "preset": preset, "checkpoint_seconds": round(checkpoint_seconds, 1),
            "index_build_seconds": round(index_seconds, 1), "rig_bones": 65,
            "text_to_keyframes": percentiles(totals), "search": percentiles(searches),
            "fetch_retarget_key": percentiles(applies)}


def _wait_for_server(bpy, server) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("t2m serve exited; see its log")
        try:
            bpy.ops.t2m.check_server(blocking=True)
            return
        except RuntimeError:
            continue
    raise SystemExit("t2m serve did not answer within 300 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="runs of the retarget benchmark per rig")
    parser.add_argument("--library", default="synthetic:5000", help="motion library spec for the end-to-end part")
    parser.add_argument("--preset", default="test", choices=["test", "tiny"], help="model preset of the index")
    parser.add_argument("--queries", type=int, default=20, help="text queries timed end to end")
    parser.add_argument("--skip-e2e", action="store_true", help="only the retarget + keying part")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--work", type=Path, help="keep the checkpoint and index here and reuse them")
    args = parser.parse_args()
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "python": platform.python_version()},
              "retarget": bench_retarget(args.repeats)}
    if not args.skip_e2e and args.work is not None:
        args.work.mkdir(parents=True, exist_ok=True)
        report["end_to_end"] = bench_end_to_end(args.library, args.preset, args.queries, args.work)
    elif not args.skip_e2e:
        with tempfile.TemporaryDirectory() as folder:
            report["end_to_end"] = bench_end_to_end(args.library, args.preset, args.queries, Path(folder))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
