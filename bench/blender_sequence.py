#!/usr/bin/env python3
"""Benchmark a sequence in Blender: three clips joined into one action on a 65-bone rig.

    python bench/blender_sequence.py                  # writes bench/results/blender_sequence.json
    python bench/blender_sequence.py --skip-e2e       # parts 1 and 2 only (no model, no server)
    python bench/blender_sequence.py --picture docs/img/sequence_panel.png   # + the README's panel picture

1. Apply: walk, wave_right and sit_down (synthetic, 3 s each at 20 fps) at 30 fps onto the
   65-bone Mixamo rig of bench/blender_apply.py (fingers), through the add-on's own path
   (clips.stitched_positions: resample + bridge.stitch; retarget.apply_motion: bone map,
   solve, new action, keys). Target: <= 150 ms.
2. Joins, measured on the rig (its animation read back as positions, retarget.read_positions:
   scaled to SMPL's size, legs 0.82 m, so centimetres are a person's): at each join the
   root's second difference (how far the hips land from where their last step would
   take them; target <= 1 cm), and the largest second difference of any joint at the joins
   against the largest one inside the clips (target: no larger). For scale, the root at
   the joins when the clips are played one after another unstitched (each from its own
   start).
3. End to end on CPU (skipped by --skip-e2e): the embedded default model over one clip of
   every synthetic action (tests/sequence_library.py), a real `t2m serve`, then the
   add-on's operators: t2m.search of the 3-step prompt as the panel runs it (replies handled
   by the timer's function, polled here), how long after its results the previews of every
   listed motion are loaded, then t2m.apply_sequence (fetch 3 motions, stitch, retarget,
   keys). With --picture, the panel drawn from the scene's data.
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
sys.path.insert(0, str(ROOT / "tests"))  # the sequence library and the join measures
RESULTS = ROOT / "bench" / "results" / "blender_sequence.json"
SCENE_FPS = 30.0
BLEND_FRAMES = 8
TARGET_MS = 150
TARGET_ROOT_JUMP_M = 0.01


def percentiles(values: list[float]) -> dict:
    array = np.asarray(values) * 1000.0
    return {"p50_ms": round(float(np.percentile(array, 50)), 2), "p90_ms": round(float(np.percentile(array, 90)), 2),
            "min_ms": round(float(array.min()), 2), "runs": len(values)}


def source_clips() -> list[tuple[np.ndarray, float]]:
    from inference_server.data.synthetic import motion_for
    from sequence_library import CLIP_SECONDS, STEP_ACTIONS

    clips = [motion_for([action], seed=3, seconds=CLIP_SECONDS) for action in STEP_ACTIONS]
    return [(clip.positions.astype(np.float64), clip.fps) for clip in clips]


def hero_rig():
    import bpy

    from blender_addon.rigs import make_humanoid_rig

    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.context.scene.render.fps = int(SCENE_FPS)
    return make_humanoid_rig("Hero", naming="MIXAMO", pose="A", fingers=True, roll_seed=0, y_up=True, scale=0.01)


def bench_apply(repeats: int) -> tuple[dict, object]:
    """Part 1: the add-on's sequence path, timed; returns the report and the last action."""
    import bpy

    from blender_addon import clips, compat, retarget

    rig = hero_rig()
    parts = source_clips()
    bone_map = retarget.resolve_bone_map(rig, None)
    totals, stitches, action = [], [], None
    for _ in range(repeats):
        if action is not None:
            bpy.data.actions.remove(action)
        start = time.perf_counter()
        positions = clips.stitched_positions(parts, SCENE_FPS, BLEND_FRAMES, in_place=False)
        middle = time.perf_counter()
        action = retarget.apply_motion(rig, positions, SCENE_FPS, "sequence", bone_map=bone_map)
        totals.append(time.perf_counter() - start)
        stitches.append(middle - start)
    first, last = action.frame_range
    report = {"blender": bpy.app.version_string, "actions": compat.describe(), "rig_bones": len(rig.data.bones),
              "keyed_bones": len(bone_map), "clips": [round(len(p) / fps, 2) for p, fps in parts],
              "blend_frames": BLEND_FRAMES, "scene_fps": SCENE_FPS, "frames": int(last - first + 1),
              "apply": percentiles(totals), "stitch_only": percentiles(stitches), "target_ms": TARGET_MS,
              "meets_target": percentiles(totals)["p50_ms"] <= TARGET_MS}
    return report, (rig, action, bone_map)


def bench_joins(rig, action, bone_map) -> dict:
    """Part 2: the joins of the applied action, read back from the rig."""
    from blender_addon import retarget
    from blender_addon.retarget_solver import resample
    from sequence_library import join_smoothness, segment_starts

    first, last = (int(frame) for frame in action.frame_range)
    positions = retarget.read_positions(rig, bone_map, first, last)
    resampled = [resample(clip, fps, SCENE_FPS) for clip, fps in source_clips()]
    lengths = [len(clip) for clip in resampled]
    measured = join_smoothness(positions, segment_starts(lengths, BLEND_FRAMES), BLEND_FRAMES)
    plain = join_smoothness(np.concatenate(resampled), segment_starts(lengths, 0), 0)
    return {"root_jump_cm": [round(100 * jump, 3) for jump in measured["root_jump_m"]],
            "joint_change_at_joins_cm": [round(100 * change, 2) for change in measured["joint_change_at_joins_m"]],
            "joint_change_inside_clips_cm": round(100 * measured["joint_change_inside_m"], 2),
            "unstitched_root_jump_cm": [round(100 * jump, 1) for jump in plain["root_jump_m"]],
            "target_root_jump_cm": 100 * TARGET_ROOT_JUMP_M,
            "meets_root_target": max(measured["root_jump_m"]) <= TARGET_ROOT_JUMP_M,
            "joins_no_rougher_than_clips":
                max(measured["joint_change_at_joins_m"]) <= measured["joint_change_inside_m"]}


def bench_end_to_end(work: Path, picture: Path | None) -> dict:
    """Part 3: search, previews and Apply Sequence through the add-on's operators on a real server."""
    import bpy

    import blender_addon
    from blender_addon import demo, state
    from sequence_library import PROMPT, build_library, serving

    started = time.perf_counter()
    index, model = build_library(work)
    build_seconds = time.perf_counter() - started
    with serving(index, model, work / "server.log") as address:
        rig = hero_rig()
        blender_addon.register()
        try:
            scene = bpy.context.scene
            scene.t2m.server = address
            bpy.context.view_layer.objects.active = rig
            report = _operators(bpy, scene, state, PROMPT)
            if picture is not None:
                demo.save_panel_picture(scene, picture)
                report["picture"] = str(picture.relative_to(ROOT) if picture.is_relative_to(ROOT) else picture)
        finally:
            blender_addon.unregister()
    report["index_build_seconds"] = round(build_seconds, 1)
    return report


def _operators(bpy, scene, state, prompt: str) -> dict:
    """The panel's way (requests sent, replies handled by the timer's function, polled here):
    the search, then the previews of every listed motion; then Apply Sequence, blocking."""
    from blender_addon import messaging

    start = time.perf_counter()
    bpy.ops.t2m.search(query=prompt, k=10)
    _poll(messaging, lambda: scene.t2m.last_query == prompt)
    results = time.perf_counter()
    _poll(messaging, lambda: not state.pending)
    previews = time.perf_counter()
    listed = {item.motion_id for item in scene.t2m.results}
    listed |= {item.motion_id for segment in scene.t2m.segments for item in segment.results}
    bpy.ops.t2m.apply_sequence(blocking=True)
    applied = time.perf_counter()
    action = bpy.context.active_object.animation_data.action
    return {"prompt": prompt, "segments": [segment.text for segment in scene.t2m.segments],
            "picks": [segment.results[segment.result_index].motion_id for segment in scene.t2m.segments],
            "listed_motions": len(listed), "previews": len(state.previews.collection or ()),
            "search_ms": round(1000 * (results - start), 1),
            "previews_ready_after_results_ms": round(1000 * (previews - results), 1),
            "apply_sequence_ms": round(1000 * (applied - previews), 1),
            "action": action.name, "frames": int(action.frame_range[1] - action.frame_range[0] + 1)}


def _poll(messaging, done, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit("no reply from the server in time")
        messaging.poll_replies()
        time.sleep(0.001)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="runs of the apply benchmark")
    parser.add_argument("--skip-e2e", action="store_true", help="no model, no server: parts 1 and 2 only")
    parser.add_argument("--picture", type=Path, help="also draw the panel after the search (part 3) to this PNG")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    report = {"machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                          "python": platform.python_version()}}
    report["apply"], applied = bench_apply(args.repeats)
    report["joins"] = bench_joins(*applied)
    if not args.skip_e2e:
        with tempfile.TemporaryDirectory() as folder:
            report["end_to_end"] = bench_end_to_end(Path(folder), args.picture and args.picture.resolve())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
