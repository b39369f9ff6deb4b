"""`t2m batch` with prompts of several steps: one stitched action per prompt, the same path as
the panel's Apply Sequence (clips.stitched_positions, then retarget.apply_motion once).

The real command in its own process (bpy once per process), in-process retrieval with the
embedded default model over one clip of every synthetic action (tests/sequence_library.py),
onto a Mixamo-named rig saved as a .blend; the outputs are read back in another bpy process.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from inference_server.data.synthetic_actions import LIBRARY
from sequence_library import PROMPT, ROOT, STEP_ACTIONS, build_library, fits_steps

pytestmark = pytest.mark.slow

RIG_FPS = 24  # a factory scene's: a 3 s clip is 72 frames
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), str(ROOT / "tests")]))


def run_python(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("sequence_library"))


@pytest.fixture(scope="module")
def rig(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rig") / "hero.blend"
    run_python(f"""
        import bpy
        from blender_addon.rigs import make_humanoid_rig
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.context.scene.render.fps = {RIG_FPS}
        make_humanoid_rig("Hero", naming="MIXAMO", pose="A", scale=0.8, y_up=True, roll_seed=3)
        bpy.ops.wm.save_as_mainfile(filepath={str(path)!r})
        print("saved")
    """)
    return path


def batch(prompts: Path, rig: Path, out: Path, library) -> dict:
    index, model = library
    done = subprocess.run([sys.executable, "-m", "inference_server", "batch", str(prompts), "--rig", str(rig),
                           "--out", str(out), "--format", "blend", "--index", str(index), "--model", str(model),
                           "--device", "cpu", "--json"], capture_output=True, text=True, timeout=600, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def test_a_prompt_of_steps_becomes_one_stitched_action(tmp_path, library, rig):
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("prompt,name,blend_frames,root_motion\n"
                       f"\"{PROMPT}\",sequence,,full\n"
                       "a person sits down,sit,,full\n"
                       f"\"{PROMPT}\",cut,0,in place\n"
                       f"\"{PROMPT}\",bad,-2,full\n", encoding="utf-8")
    out = tmp_path / "out"
    summary = batch(prompts, rig, out, library)
    assert summary["done"] == 3 and len(summary["failed"]) == 1
    assert "blend_frames must be >= 0, got -2" in summary["failed"][0]["error"]
    records = {record["name"]: record for record in json.loads((out / "summary.json").read_text())["records"]}
    sequence, single, cut = records["sequence"], records["sit"], records["cut"]
    picked = [segment["motion_id"] for segment in sequence["segments"]]
    assert fits_steps(picked)
    assert sequence["motion_id"] == " + ".join(picked) and sequence["score"] is None
    assert single["motion_id"] == "sit_down" and "segments" not in single and "whole" not in single
    # the whole prompt's own best hit is recorded next to the stitched steps (JSON and CSV)
    whole = sequence["whole"]
    assert whole["motion_id"] in LIBRARY and len(whole["spans"]) == 3 and whole["score"] > 0
    rows = {row["name"]: row for row in csv.DictReader((out / "summary.csv").read_text().splitlines())}
    assert rows["sequence"]["whole_motion_id"] == whole["motion_id"] and rows["sit"]["whole_motion_id"] == ""
    assert sequence["frame_end"] - sequence["frame_start"] + 1 == 3 * 3 * RIG_FPS - 2 * 8
    assert cut["frame_end"] - cut["frame_start"] + 1 == 3 * 3 * RIG_FPS

    parts = json.loads(run_python(f"""
        import json
        import bpy
        from blender_addon import retarget
        from inference_server.angles import joint_angles
        from sequence_library import looks_like, segment_starts, step_features
        bpy.ops.wm.open_mainfile(filepath={str(out / "sequence.blend")!r})
        obj = bpy.data.objects["Hero"]
        first, last = (int(f) for f in obj.animation_data.action.frame_range)
        angles = joint_angles(retarget.read_positions(obj, retarget.resolve_bone_map(obj, None), first, last))
        starts = segment_starts([{3 * RIG_FPS}] * 3, 8)
        parts = [angles[:starts[1]], angles[starts[1] + 8:starts[2]], angles[starts[2] + 8:]]
        print(json.dumps([looks_like(step_features(part)) for part in parts]))
    """))
    assert parts == STEP_ACTIONS

    strips = json.loads(run_python(f"""
        import json
        import bpy
        bpy.ops.wm.open_mainfile(filepath={str(out / "review.blend")!r})
        print(json.dumps([[s.name for s in t.strips] for t in bpy.data.objects["Hero"].animation_data.nla_tracks]))
    """))
    assert strips == [["sequence"], ["sit"], ["cut"]]

    before = {path.name: path.stat().st_mtime_ns for path in out.glob("*.blend") if path.name != "review.blend"}
    again = batch(prompts, rig, out, library)  # a rerun keeps the outputs and what was chosen
    assert again["done"] == 3
    rerun = {record["name"]: record for record in json.loads((out / "summary.json").read_text())["records"]}
    assert rerun["sequence"]["skipped"] and rerun["sequence"]["segments"] == sequence["segments"]
    assert rerun["sequence"]["whole"] == whole
    assert {name: (out / name).stat().st_mtime_ns for name in before} == before
