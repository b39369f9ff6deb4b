"""`t2m batch`: prompts in, one animation file per prompt out, through the real command.

Each batch runs as its own `t2m` process (bpy is imported once per process), in-process
retrieval with a random-weight test checkpoint over a small synthetic library, onto a
Mixamo-like rig saved as a .blend. Re-import checks run in a separate bpy process too.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

PROMPTS = ["a person waves with the left hand", "someone walks forward", "a person jumps",
           "a person kicks with the right leg", "a person squats down"]


def run_python(code: str, timeout: float = 120) -> str:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def batch_command(prompts: Path, rig: Path, out: Path, library: dict, *extra: str) -> list[str]:
    return [sys.executable, "-m", "inference_server", "batch", str(prompts), "--rig", str(rig), "--out", str(out),
            "--index", str(library["index"]), "--model", str(library["model"]), "--device", "cpu", "--json",
            *extra]


def run_batch(*args, **kwargs) -> dict:
    done = subprocess.run(batch_command(*args, **kwargs), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout
    return json.loads(lines[0])


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> dict:
    from inference_server.index import build_index
    from inference_server.model import create_checkpoint

    folder = tmp_path_factory.mktemp("batch_library")
    model = create_checkpoint(folder / "model", preset="test")
    build_index("synthetic:24:3", model, folder / "index", storage="fp16", progress=False)
    return {"model": model, "index": folder / "index"}


@pytest.fixture(scope="module")
def rig(tmp_path_factory) -> Path:
    """A Mixamo-named A-pose rig imported Y-up (90 degree X rotation) at 0.8 scale, in a .blend."""
    path = tmp_path_factory.mktemp("rig") / "mixamo_rig.blend"
    run_python(f"""
        import bpy
        from blender_addon.rigs import make_humanoid_rig
        bpy.ops.wm.read_factory_settings(use_empty=True)
        make_humanoid_rig("Hero", naming="MIXAMO", pose="A", scale=0.8, y_up=True, roll_seed=3)
        bpy.ops.wm.save_as_mainfile(filepath={str(path)!r})
    """)
    return path


def outputs(out: Path, suffix: str) -> list[Path]:
    return sorted(path for path in out.glob(f"*{suffix}") if ".partial" not in path.name)


def test_five_prompts_give_five_fbx_files_that_reimport_and_a_rerun_is_a_no_op(tmp_path, library, rig):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    summary = run_batch(prompts, rig, out, library)
    assert summary["done"] == 5 and summary["failed"] == []
    files = outputs(out, ".fbx")
    assert len(files) == 5
    records = json.loads((out / "summary.json").read_text())["records"]
    assert [record["prompt"] for record in records] == PROMPTS
    assert (out / "summary.csv").read_text().count("\n") == 6
    assert not list(out.glob("*.partial*"))

    report = json.loads(run_python(f"""
        import bpy, json
        result = {{}}
        for path in {[str(path) for path in files]!r}:
            bpy.ops.wm.read_factory_settings(use_empty=True)
            bpy.ops.import_scene.fbx(filepath=path)
            arm = [o for o in bpy.context.scene.objects if o.type == "ARMATURE"][0]
            action = arm.animation_data.action
            result[path.rsplit("/", 1)[-1]] = {{"bones": sorted(b.name for b in arm.data.bones),
                                                 "range": list(action.frame_range)}}
        print(json.dumps(result))
    """).strip().splitlines()[-1])
    for record in records:
        imported = report[record["output"]]
        assert "mixamorig:LeftForeArm" in imported["bones"] and "mixamorig:Hips" in imported["bones"]
        start, end = imported["range"]
        assert abs(start - record["frame_start"]) <= 1 and abs(end - record["frame_end"]) <= 1
        assert end - start >= 10

    before = {path.name: path.stat().st_mtime_ns for path in [*files, out / "review.blend"]}
    again = run_batch(prompts, rig, out, library)
    assert {name: out.joinpath(name).stat().st_mtime_ns for name in before} == before
    assert again["done"] == 5
    assert all(record["skipped"] for record in json.loads((out / "summary.json").read_text())["records"])


def test_review_blend_holds_every_clip_as_a_named_strip(tmp_path, library, rig):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS[:2]), encoding="utf-8")
    summary = run_batch(prompts, rig, tmp_path / "out", library, "--format", "bvh")
    assert sorted(path.suffix for path in (tmp_path / "out").glob("*.bvh")) == [".bvh", ".bvh"]
    tracks = json.loads(run_python(f"""
        import bpy, json
        bpy.ops.wm.open_mainfile(filepath={summary['review']!r})
        arm = bpy.data.objects["Hero"]
        print(json.dumps([[s.name for s in t.strips] for t in arm.animation_data.nla_tracks]))
    """).strip().splitlines()[-1])
    assert tracks == [[PROMPTS[0]], [PROMPTS[1]]]


def test_bad_rows_are_reported_and_the_batch_goes_on(tmp_path, library, rig):
    prompts = tmp_path / "prompts.csv"
    prompts.write_text("prompt,name,rank,root_motion\n"
                       "a person waves with the left hand,wave,0,in place\n"
                       ",empty,0,full\n"
                       "a person jumps,jump,first,full\n"
                       "a person squats down,squat,1,full\n"
                       f"{'a person walks ' * 80},too_long,0,full\n", encoding="utf-8")
    summary = run_batch(prompts, rig, tmp_path / "out", library, "--format", "blend")
    assert summary["done"] == 2
    errors = [failure["error"] for failure in summary["failed"]]
    assert len(errors) == 3
    assert "line 3" in errors[0] and "empty prompt" in errors[0]
    assert "line 4" in errors[1] and "rank" in errors[1]
    assert "bad_request" in errors[2] and "1000" in errors[2]  # the server's text limit, from the engine
    assert sorted(path.name for path in (tmp_path / "out").glob("*.blend")) == ["review.blend", "squat.blend",
                                                                               "wave.blend"]


def test_an_interrupted_run_leaves_no_half_file_and_resumes(tmp_path, library, rig):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS * 6), encoding="utf-8")  # 30: enough that Ctrl-C lands mid-run
    out = tmp_path / "out"
    process = subprocess.Popen(batch_command(prompts, rig, out, library), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while len(outputs(out, ".fbx")) < 2 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)  # Ctrl-C
    assert process.wait(timeout=60) == 130
    assert not list(out.glob("*.partial*"))
    first = {path.name: path.stat().st_mtime_ns for path in outputs(out, ".fbx")}
    assert 2 <= len(first) < 30
    (out / "stale.partial.fbx").write_bytes(b"half")  # as a SIGKILLed run would leave

    summary = run_batch(prompts, rig, out, library)
    assert summary["done"] == 30 and summary["failed"] == []
    assert len(outputs(out, ".fbx")) == 30 and not list(out.glob("*.partial*"))
    assert all(out.joinpath(name).stat().st_mtime_ns == mtime for name, mtime in first.items())


def test_python_api_reports_an_unreadable_rig(tmp_path, library):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a person jumps\n", encoding="utf-8")
    done = subprocess.run(batch_command(prompts, tmp_path / "missing.blend", tmp_path / "out", library),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stdout == ""
    assert "missing.blend" in done.stderr and "Traceback" not in done.stderr
