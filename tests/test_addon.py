"""End to end: build the extension zip, install it into a fresh Blender user folder, and
drive it against a real `t2m serve` subprocess (test-preset checkpoint, synthetic index).

bpy can be imported once per process and an extension install changes global state, so
the Blender part runs in a subprocess: this file run as a script (`driver`), which writes
its measurements to JSON; the tests below assert on them.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
LINUX_WHEEL_PREFIX = "pyzmq-"
MAX_ANGLE = 3.0
QUERY = "a person walks forward"
SEQUENCE_QUERY = "a person walks forward, then waves, then sits down"
ADDON = "bl_ext.user_default.text_to_motion"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(command: list, timeout: float, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=timeout,
                          **kwargs)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def addon_zip(tmp_path_factory) -> Path:
    """The extension zip: $T2M_ADDON_ZIP when set (scripts/test_blender_versions.sh builds
    it once and installs the same zip into every Blender version), else built here."""
    if os.environ.get("T2M_ADDON_ZIP"):
        return Path(os.environ["T2M_ADDON_ZIP"])
    out = tmp_path_factory.mktemp("dist")
    command = [sys.executable, ROOT / "build_addon.py", "--platform", "linux-x64", "--no-fetch",
               "--out", out, "--build-dir", out / "build"]
    import tomllib

    manifest = tomllib.loads((ROOT / "blender_addon" / "blender_manifest.toml").read_text(encoding="utf-8"))
    linux = [Path(entry).name for entry in manifest["wheels"] if "manylinux" in entry and "x86_64" in entry]
    cached = all((ROOT / "blender_addon" / "wheels" / name).exists() for name in linux)
    if not cached:
        command.append("--no-wheels")  # offline and nothing cached: this Blender has pyzmq
    run(command, timeout=120)
    zips = sorted(out.glob("text_to_motion-*.zip"))
    assert len(zips) == 1, zips
    return zips[0]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A live server on a free port: test checkpoint, index of 20 synthetic motions."""
    work = tmp_path_factory.mktemp("server")
    checkpoint, index = work / "ckpt", work / "index"
    run([sys.executable, "-c", "import sys; from inference_server.model import create_checkpoint; "
                               "create_checkpoint(sys.argv[1], preset='test')", checkpoint], timeout=180)
    t2m = [sys.executable, "-m", "inference_server"]
    run(t2m + ["index", "build", "synthetic:20", "--model", checkpoint, "--out", index], timeout=300)
    address = f"tcp://127.0.0.1:{free_port()}"
    log = open(work / "server.log", "w")
    process = subprocess.Popen(t2m + ["serve", "--index", str(index), "--model", str(checkpoint),
                                      "--bind", address, "--device", "cpu"], stdout=log, stderr=log)
    try:
        _wait_until_serving(address, process, work / "server.log")
        yield address
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _wait_until_serving(address: str, process, log_path: Path) -> None:
    from bridge.client import Client
    from bridge.protocol import ServerUnreachable

    deadline = time.monotonic() + 120
    with Client(address, timeout=1.0, retries=0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"t2m serve exited: {log_path.read_text()[-2000:]}")
            try:
                # describe answers once the worker process has loaded and embedded its captions
                if client.call("info")[0]["ready"]["describe"]:
                    return
                time.sleep(0.1)
            except ServerUnreachable:
                continue
    pytest.fail("t2m serve did not answer (with describe ready) within 120 s")


@pytest.fixture(scope="module")
def results(addon_zip, server, tmp_path_factory) -> dict:
    work = tmp_path_factory.mktemp("blender")
    out = work / "results.json"
    env = dict(os.environ, BLENDER_USER_RESOURCES=str(work / "user"))
    dead = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there: a stopped server
    done = subprocess.run([sys.executable, __file__, "driver", str(addon_zip), server, dead, str(out)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0 and out.exists(), f"driver failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    data = json.loads(out.read_text())
    data["stderr"] = done.stderr
    return data


def test_zip_installs_enables_and_uses_its_vendored_bridge(results, addon_zip):
    installed = results["install"]
    assert installed["enabled"]
    assert installed["client_module"] == f"{ADDON}.bridge.client"
    assert installed["operators"] == ["apply", "clear_relevance", "describe", "search", "show_relevance"]
    assert installed["undo"] is True


def test_search_fills_results_and_tokens(results):
    search = results["search"]
    assert search["results"] == 5 and search["tokens"]
    assert search["first"]["motion_id"] and search["first"]["duration"] > 0
    assert search["busy_after_send"] is True and search["busy_after_reply"] is False
    assert search["results_after_stale_reply"] == 0 and search["results_after_fresh_reply"] == 5


@pytest.mark.parametrize("rig", ["smpl", "mixamo"])
def test_apply_follows_the_source_motion(results, rig):
    applied = results["apply"][rig]
    assert applied["max_angle"] < MAX_ANGLE, applied
    assert applied["frames"] == applied["expected_frames"] == applied["duration_frames"]
    assert applied["hip_path_error"] < 1e-3
    assert applied["action"].startswith("T2M ")


def test_existing_action_survives(results):
    assert results["apply"]["smpl"]["previous_unchanged"] is True
    assert results["apply"]["smpl"]["previous_fake_user"] is True


def test_relevance_colours_land_on_mapped_bones_and_clear_restores(results):
    colours = results["colours"]
    assert colours["coloured"] == colours["mapped"] == 22
    assert colours["colour_curves"] == 3 * 22
    assert colours["restored"] is True and colours["curves_after_clear"] == 0


def test_describe_returns_captions(results):
    assert results["describe"]["captions"] >= 1


def test_a_sequence_lists_its_steps_shows_previews_and_applies_as_one_action(results):
    sequence = results["sequence"]
    assert sequence["segments"] == ["a person walks forward", "a person waves", "a person sits down"]
    assert sequence["results_per_segment"] == [3, 3, 3]
    assert sequence["preview_sizes"] == [[192, 64]]
    assert sequence["new_action"] and sequence["applied"] == sequence["picked"]
    assert min(sequence["pick_frames"]) >= 16  # long enough for full 8-frame blends on both sides
    assert sequence["frames"] == sum(sequence["pick_frames"]) - 2 * 8


def test_stopped_server_gives_a_clean_error(results):
    stopped = results["stopped"]
    assert stopped["exception"] in (None, "RuntimeError")  # bpy.ops turns an operator's error report into it
    assert stopped["blocking_error"].startswith(f"cannot reach the server at {stopped['address']} within")
    assert stopped["async_error"].startswith(f"cannot reach the server at {stopped['address']} within")
    assert "Traceback" not in results["stderr"]


def test_runs_on_the_expected_blender(results):
    """$T2M_EXPECT_BLENDER (set by scripts/test_blender_versions.sh) names the bpy version
    the driver must have run on: the matrix tests what it says it tests."""
    expected = os.environ.get("T2M_EXPECT_BLENDER")
    if expected:
        assert results["blender"]["version"].split()[0] == expected, results["blender"]
    assert results["blender"]["actions"]


def test_disable_stops_polling(results):
    assert results["disable"]["timer_registered"] is False


# ---------------------------------------------------------------- the Blender side

def expected_world_positions(positions: np.ndarray, fps: float, target_fps: float) -> np.ndarray:
    """The source as a rig should follow it (written independently of retarget.py):
    linear resampling (held at the last frame), Y-up -> Z-up, turned so that frame 0's
    hips face -Y."""
    count = int(np.floor(len(positions) / fps * target_fps + 0.5))  # the clip lasts frames / fps
    times = np.minimum(np.arange(count) / target_fps * fps, len(positions) - 1)
    flat = positions.reshape(len(positions), -1)
    resampled = np.stack([np.interp(times, np.arange(len(positions)), column) for column in flat.T], axis=1)
    y_up = resampled.reshape(count, 22, 3)
    z_up = np.stack([y_up[..., 0], -y_up[..., 2], y_up[..., 1]], axis=-1)
    hips = z_up[0, 1] - z_up[0, 2]
    angle = -np.arctan2(hips[1], hips[0])
    turn = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    return z_up @ turn.T


def driver(zip_path: str, address: str, dead_address: str, out_path: str) -> None:
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    results: dict = {}
    results["install"] = _install(bpy, zip_path)
    package = __import__(ADDON, fromlist=["messaging", "state", "rigs", "retarget", "retarget_solver", "colors",
                                          "wire", "keyframes", "compat", "bonemap", "previews"])
    results["blender"] = {"version": bpy.app.version_string, "actions": package.compat.describe()}
    scene = bpy.context.scene
    scene.render.fps = 30
    scene.t2m.server = address
    results["search"] = _search(bpy, package, scene)
    results["apply"] = _apply(bpy, package, scene, address)
    results["colours"] = _colours(bpy, package, scene)
    bpy.ops.t2m.describe(blocking=True)
    results["describe"] = {"captions": len(scene.t2m.descriptions)}
    results["sequence"] = _sequence(bpy, package, scene)
    results["stopped"] = _stopped(bpy, package, scene, dead_address)
    bpy.ops.preferences.addon_disable(module=ADDON)
    results["disable"] = {"timer_registered": bpy.app.timers.is_registered(package.messaging.poll_replies)}
    Path(out_path).write_text(json.dumps(results, indent=1))


def _install(bpy, zip_path: str) -> dict:
    bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
    import importlib

    wire = importlib.import_module(f"{ADDON}.wire")
    operators = sorted(name for name in dir(bpy.ops.t2m)
                       if name in {"search", "apply", "show_relevance", "clear_relevance", "describe"})
    return {"enabled": ADDON in bpy.context.preferences.addons, "client_module": wire.Client.__module__,
            "operators": operators, "undo": "UNDO" in bpy.types.T2M_OT_apply.bl_options}


def _poll_until(package, done, seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        package.messaging.poll_replies()
        if done():
            return True
        time.sleep(0.02)
    return False


def _search(bpy, package, scene) -> dict:
    settings, pending = scene.t2m, package.state.pending
    bpy.ops.t2m.search(query=QUERY, k=5)
    busy = settings.busy
    _poll_until(package, lambda: not pending)
    report = {"results": len(settings.results), "tokens": [t.text for t in settings.tokens],
              "first": {"motion_id": settings.results[0].motion_id, "duration": settings.results[0].duration},
              "busy_after_send": busy, "busy_after_reply": settings.busy}
    # Two searches in a row: the first one's reply is stale and must not touch the results.
    bpy.ops.t2m.search(query="a person jumps", k=3)
    bpy.ops.t2m.search(query=QUERY, k=5)
    first_id, second_id = list(pending)
    replies: dict = {}
    deadline = time.monotonic() + 30
    while len(replies) < 2 and time.monotonic() < deadline:
        replies.update(package.state.connection.client.poll(0.1))
    settings.results.clear()
    package.messaging.dispatch(first_id, replies[first_id])
    report["results_after_stale_reply"] = len(settings.results)
    package.messaging.dispatch(second_id, replies[second_id])
    report["results_after_fresh_reply"] = len(settings.results)
    return report


def _apply(bpy, package, scene, address) -> dict:
    rigs = package.rigs
    smpl = rigs.make_humanoid_rig("SMPL", naming="SMPL", pose="T")
    smpl.pose.bones["L_Knee"].rotation_quaternion = (0.9, 0.3, 0.0, 0.0)
    smpl.keyframe_insert('pose.bones["L_Knee"].rotation_quaternion', frame=3)
    previous = smpl.animation_data.action
    previous_keys = _keys(package, smpl)
    mixamo = rigs.make_humanoid_rig("Mixamo", naming="MIXAMO", pose="A", roll_seed=5, scale=0.8, y_up=True)
    report = {}
    bpy.context.view_layer.objects.active = smpl
    bpy.ops.t2m.apply(index=0)  # non-blocking: the timer function brings the motion in
    _poll_until(package, lambda: not scene.t2m.busy and not package.state.pending)
    report["smpl"] = _measure(bpy, package, scene, smpl, 0, address)
    report["smpl"]["previous_unchanged"] = _keys(package, smpl, previous) == previous_keys
    report["smpl"]["previous_fake_user"] = previous.use_fake_user
    bpy.context.view_layer.objects.active = mixamo
    bpy.ops.t2m.apply(index=1, blocking=True)
    report["mixamo"] = _measure(bpy, package, scene, mixamo, 1, address)
    return report


def _keys(package, obj, action=None) -> list:
    action = action or obj.animation_data.action
    channelbag = package.compat.first_channelbag(action)
    return [(fc.data_path, fc.array_index, tuple(k.co)) for fc in channelbag.fcurves for k in fc.keyframe_points]


def _measure(bpy, package, scene, obj, index: int, address: str) -> dict:
    motion_id = scene.t2m.results[index].motion_id
    with package.wire.Client(address, timeout=10.0) as client:
        result, arrays = client.call("motion", {"motion_id": motion_id})
    expected = expected_world_positions(arrays["positions"].astype(np.float64), result["fps"], 30.0)
    bone_map = package.retarget.resolve_bone_map(obj, None)
    action = obj.animation_data.action
    first, last = (int(v) for v in action.frame_range)
    pairs = [(j, c) for j, c in package.retarget_solver.PRIMARY_CHILD.items() if j in bone_map and c in bone_map]
    joint = package.bonemap.JOINT_INDEX
    worst, hips = 0.0, []
    for frame in range(len(expected)):
        scene.frame_set(first + frame)
        world = obj.matrix_world
        heads = {j: np.array(world @ obj.pose.bones[b].head) for j, b in bone_map.items()}
        hips.append(heads["pelvis"])
        for parent, child in pairs:
            rig = heads[child] - heads[parent]
            src = expected[frame, joint[child]] - expected[frame, joint[parent]]
            cosine = rig @ src / np.linalg.norm(rig) / np.linalg.norm(src)
            worst = max(worst, float(np.degrees(np.arccos(np.clip(cosine, -1, 1)))))
    hips = np.array(hips)
    ratio = action["t2m_scale"]
    path = hips[:, :2] - hips[0, :2]
    source_path = expected[:, 0, :2] - expected[0, 0, :2]
    duration_frames = int(np.floor(scene.t2m.results[index].duration * 30.0 + 0.5))  # search's duration
    return {"max_angle": worst, "frames": last - first + 1, "expected_frames": len(expected),
            "duration_frames": duration_frames,
            "hip_path_error": float(np.abs(path - ratio * source_path).max()), "action": action.name}


def _colours(bpy, package, scene) -> dict:
    obj = bpy.data.objects["Mixamo"]
    bpy.context.view_layer.objects.active = obj
    before = {pb.name: (pb.color.palette, tuple(pb.color.custom.normal)) for pb in obj.pose.bones}
    bone_map = package.retarget.resolve_bone_map(obj, None)
    bpy.ops.t2m.show_relevance(token=1, animated=True)
    coloured = [name for name in bone_map.values() if obj.pose.bones[name].color.palette == "CUSTOM"]
    curves = [fc for fc in package.keyframes.channelbag_of(obj).fcurves if "color.custom" in fc.data_path]
    colour_curves = len(curves)
    bpy.ops.t2m.clear_relevance()
    after = {pb.name: (pb.color.palette, tuple(pb.color.custom.normal)) for pb in obj.pose.bones}
    left = [fc for fc in package.keyframes.channelbag_of(obj).fcurves if "color.custom" in fc.data_path]
    return {"coloured": len(coloured), "mapped": len(bone_map), "colour_curves": colour_curves,
            "restored": after == before, "curves_after_clear": len(left)}


def _sequence(bpy, package, scene) -> dict:
    """A query of three steps: each step's results, every listed motion's preview, and Apply
    Sequence (blocking) onto the Mixamo rig."""
    bpy.ops.t2m.search(query=SEQUENCE_QUERY, k=3, blocking=True)
    settings = scene.t2m
    listed = {item.motion_id for item in settings.results}
    listed |= {item.motion_id for segment in settings.segments for item in segment.results}
    sizes = {tuple(package.previews.preview(motion_id).image_size) for motion_id in listed}
    obj = bpy.data.objects["Mixamo"]
    bpy.context.view_layer.objects.active = obj
    before = obj.animation_data.action
    bpy.ops.t2m.apply_sequence(blocking=True)
    action = obj.animation_data.action
    picks = [segment.results[segment.result_index] for segment in settings.segments]
    first, last = action.frame_range
    return {"segments": [segment.text for segment in settings.segments],
            "results_per_segment": [len(segment.results) for segment in settings.segments],
            "preview_sizes": sorted(sizes), "new_action": action != before,
            "picked": [pick.motion_id for pick in picks], "applied": [s["motion_id"] for s in
                                                                    json.loads(action["t2m_segments"])],
            "pick_frames": [int(np.floor(pick.duration * 30.0 + 0.5)) for pick in picks],
            "frames": int(last - first + 1)}


def _stopped(bpy, package, scene, dead_address: str) -> dict:
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.timeout, prefs.retries = 0.5, 0
    scene.t2m.server = dead_address
    report = {"address": dead_address, "exception": None}
    try:
        bpy.ops.t2m.search(query="wave", blocking=True)
    except RuntimeError:
        report["exception"] = "RuntimeError"
    except Exception as error:  # anything else is a bug the test reports
        report["exception"] = type(error).__name__
    report["blocking_error"] = scene.t2m.error
    scene.t2m.error = ""
    bpy.ops.t2m.search(query="wave")
    _poll_until(package, lambda: bool(scene.t2m.error), seconds=10)
    report["async_error"] = scene.t2m.error
    return report


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "driver":
        driver(*sys.argv[2:])
    else:
        sys.exit(f"usage: {sys.argv[0]} driver ZIP ADDRESS DEAD_ADDRESS OUT.json")
