"""Sequences and previews in the add-on, end to end: the add-on registered in this process
(real bpy), a real `t2m serve` (the embedded default model over one synthetic clip of every
action, tests/sequence_library.py), and an older server (the source tree of the commit
before `segments` and `preview`, from git) for what the add-on hides from it.

The issue's "done when": "a person walks forward, then waves with the right hand, then sits
down", applied, is one new action whose parts are, from their joint angles, a walk, a
right-hand wave and a sit-down in that order, with smooth joins.
"""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

import blender_addon  # noqa: E402
from blender_addon import compat, messaging, previews, retarget, state  # noqa: E402
from blender_addon.rigs import make_humanoid_rig  # noqa: E402
from bridge.sequence import split_steps  # noqa: E402
from inference_server.angles import joint_angles  # noqa: E402
from inference_server.preview import PNG_SIGNATURE  # noqa: E402
from sequence_library import (PROMPT, ROOT, STEP_ACTIONS, STEP_PICKS, build_library, fits_steps,  # noqa: E402
                              join_smoothness, looks_like, segment_starts, serving, step_features)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("blender_addon_registered")]

SCENE_FPS = 30
CLIP_FRAMES = 90  # a 3 s clip at 30 fps
# The last commit whose server had neither search `segments` nor the `preview` op.
OLDER_SERVER_COMMIT = "532d98a25084879e8d63ba1870181164fa7ba1f3"


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    return build_library(tmp_path_factory.mktemp("sequence_library"))


@pytest.fixture(scope="module")
def server(library, tmp_path_factory):
    with serving(*library, tmp_path_factory.mktemp("server") / "server.log") as address:
        yield address


@pytest.fixture(scope="module")
def older_server(library, tmp_path_factory):
    """The same library served by the server as it was before sequences and previews."""
    tree = tmp_path_factory.mktemp("older_server")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", OLDER_SERVER_COMMIT, "bridge", "inference_server",
                              ":(exclude)inference_server/default"], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    with serving(*library, tree / "server.log", code=tree) as address:
        yield address


@pytest.fixture
def scene():
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = SCENE_FPS, 1.0
    scene.t2m.error = ""
    return scene


def connect(scene, address: str) -> None:
    scene.t2m.server = address
    messaging.client_for(scene).timeout = 120.0  # a loaded CI machine; the server answers in ms otherwise


def hero(scene):
    """The 65-bone rig (fingers), with an action of its own that no apply may touch."""
    obj = bpy.data.objects.get("Hero") or make_humanoid_rig("Hero", naming="MIXAMO", pose="A", fingers=True)
    bpy.context.view_layer.objects.active = obj
    if obj.animation_data is None:
        obj.pose.bones["mixamorig:LeftLeg"].rotation_quaternion = (0.9, 0.3, 0.0, 0.0)
        obj.keyframe_insert('pose.bones["mixamorig:LeftLeg"].rotation_quaternion', frame=3)
        obj.animation_data.action.name = "Hand keyed"
    return obj


def keys(action) -> list:
    channelbag = compat.first_channelbag(action)
    return [(fc.data_path, fc.array_index, tuple(k.co)) for fc in channelbag.fcurves for k in fc.keyframe_points]


def poll_until(done, seconds: float = 120.0) -> None:
    deadline = time.monotonic() + seconds
    while not done() and time.monotonic() < deadline:
        messaging.poll_replies()
        time.sleep(0.02)
    assert done(), "no reply in time"


def search(scene, text: str) -> None:
    bpy.ops.t2m.search(query=text, k=5, blocking=True)
    assert scene.t2m.error == ""


# ---------------------------------------------------------------- the real server

def test_a_prompt_of_steps_lists_each_step_with_its_own_results(scene, server):
    connect(scene, server)
    search(scene, PROMPT)
    settings = scene.t2m
    assert [segment.text for segment in settings.segments] == split_steps(PROMPT)
    assert fits_steps([segment.results[0].motion_id for segment in settings.segments])
    for segment in settings.segments:
        assert len(segment.results) == 5 and segment.result_index == 0 and len(segment.tokens) >= 2
    assert len(settings.results) == 5  # the whole query's ranking, each hit with a span per step
    for result in settings.results:
        starts = [span.start for span in result.spans]
        assert len(starts) == 3 and starts == sorted(starts)
        assert all(span.start < span.end <= result.duration + 0.8 for span in result.spans)
    assert settings.status.endswith("in 3 steps")
    assert bpy.types.T2M_PT_sequence.poll(bpy.context)


def test_every_listed_motion_gets_its_preview_once(scene, server):
    connect(scene, server)
    search(scene, PROMPT)
    settings = scene.t2m
    listed = {item.motion_id for item in settings.results}
    listed |= {item.motion_id for segment in settings.segments for item in segment.results}
    for motion_id in listed:
        preview = previews.preview(motion_id)
        assert preview is not None and tuple(preview.image_size) == previews.SIZE, motion_id
        pixels = np.array(preview.image_pixels_float[:]).reshape(previews.SIZE[1], previews.SIZE[0], 4)
        assert pixels[..., :3].std() > 0.02  # figures drawn on the background, not a blank
    files = sorted(Path(state.previews.folder).glob("*.png"))
    assert len(files) == len(listed) and all(path.read_bytes().startswith(PNG_SIGNATURE) for path in files)
    asked = set(state.previews.asked)
    search(scene, PROMPT)  # cached: nothing asked again
    assert state.previews.asked == asked and not state.pending
    assert previews.available()


def test_apply_sequence_is_one_new_action_walk_then_wave_then_sit(scene, server):
    connect(scene, server)
    search(scene, PROMPT)
    # stitch exactly walk -> wave -> sit (each in its step's list; the pace of the walk the
    # model ranks first varies with the model, and the joins below are measured on these clips)
    for segment, action_id in zip(scene.t2m.segments, STEP_ACTIONS):
        segment.result_index = [result.motion_id for result in segment.results].index(action_id)
    obj = hero(scene)
    before = set(bpy.data.actions)
    hand_keyed = keys(bpy.data.actions["Hand keyed"])
    assert bpy.ops.t2m.apply_sequence() == {"FINISHED"}  # the timer's way: replies polled here
    poll_until(lambda: not scene.t2m.busy)
    assert scene.t2m.error == "", scene.t2m.error
    (action,) = set(bpy.data.actions) - before
    assert obj.animation_data.action == action and action.name.startswith("T2M a person walks forward")
    assert keys(bpy.data.actions["Hand keyed"]) == hand_keyed
    segments = json.loads(action["t2m_segments"])
    assert [segment["motion_id"] for segment in segments] == STEP_ACTIONS
    assert [segment["text"] for segment in segments] == split_steps(PROMPT)
    first, last = (int(frame) for frame in action.frame_range)
    assert last - first + 1 == 3 * CLIP_FRAMES - 2 * 8

    positions = read_back(scene, obj, first, last)
    starts = segment_starts([CLIP_FRAMES] * 3, 8)
    angles = joint_angles(positions)
    parts = [angles[:starts[1]], angles[starts[1] + 8:starts[2]], angles[starts[2] + 8:]]
    assert [looks_like(step_features(part)) for part in parts] == STEP_ACTIONS
    smooth = join_smoothness(positions, starts, 8)
    assert max(smooth["root_jump_m"]) <= 0.01, smooth
    assert max(smooth["joint_change_at_joins_m"]) <= smooth["joint_change_inside_m"], smooth


def read_back(scene, obj, first: int, last: int) -> np.ndarray:
    """The rig's animation as SMPL-22 positions (Y-up metres), evaluated frame by frame."""
    bone_map = retarget.resolve_bone_map(obj, None)
    return retarget.read_positions(obj, bone_map, first, last, scene=scene)


def test_another_pick_for_one_step_and_a_hard_cut_in_place(scene, server):
    connect(scene, server)
    search(scene, PROMPT)
    obj = hero(scene)
    settings = scene.t2m
    settings.segments[1].result_index = 1
    second = settings.segments[1].results[1].motion_id
    settings.blend_frames, settings.root_motion = 0, "in_place"
    earlier = {action.name: keys(action) for action in bpy.data.actions}
    try:
        bpy.ops.t2m.apply_sequence(blocking=True)
    finally:
        settings.blend_frames, settings.root_motion = 8, "full"
    action = obj.animation_data.action
    assert action.name not in earlier
    assert {name: keys(bpy.data.actions[name]) for name in earlier} == earlier  # no action was overwritten
    picked = [segment["motion_id"] for segment in json.loads(action["t2m_segments"])]
    assert picked[0] in STEP_PICKS[0] and picked[1:] == [second, STEP_ACTIONS[2]]
    assert second != STEP_ACTIONS[1] and action["t2m_blend_frames"] == 0
    first, last = (int(frame) for frame in action.frame_range)
    assert last - first + 1 == 3 * CLIP_FRAMES  # a hard cut: no overlap
    pelvis = read_back(scene, obj, first, last)[:, 0]
    assert np.abs(pelvis[:, [0, 2]] - pelvis[0, [0, 2]]).max() < 1e-3  # in place: the hips stay over the start


def test_a_clip_that_cannot_be_fetched_ends_the_apply_with_its_error(scene, server):
    connect(scene, server)
    search(scene, PROMPT)
    hero(scene)
    before = set(bpy.data.actions)
    scene.t2m.segments[2].results[0].motion_id = "no_such_motion"
    bpy.ops.t2m.apply_sequence()
    poll_until(lambda: not state.pending)
    assert "no_such_motion" in scene.t2m.error and not scene.t2m.busy
    assert not state.sequences and set(bpy.data.actions) == before


def test_one_step_prompt_keeps_the_single_list(scene, server):
    connect(scene, server)
    search(scene, "a person sits down")
    settings = scene.t2m
    assert len(settings.segments) == 0 and settings.results[0].motion_id == "sit_down"
    assert len(settings.results[0].spans) == 0
    assert not bpy.types.T2M_PT_sequence.poll(bpy.context)
    hero(scene)
    with pytest.raises(RuntimeError, match="no sequence: search a query of several steps first"):
        bpy.ops.t2m.apply_sequence()


def test_word_colours_name_a_sequence_action(scene, server):
    connect(scene, server)
    search(scene, PROMPT)
    hero(scene)
    bpy.ops.t2m.apply_sequence(blocking=True)
    with pytest.raises(RuntimeError, match="is a sequence of several clips: word colours show on an action of one"):
        bpy.ops.t2m.show_relevance(token=0)


# ---------------------------------------------------------------- a server from before sequences and previews

def test_an_older_server_gets_the_single_list_and_no_previews(scene, older_server):
    connect(scene, older_server)
    assert state.previews.supported is None  # another server: previews forgotten
    bpy.ops.t2m.search(query=PROMPT, k=5)  # the timer's way: unknown_op replies come in here
    poll_until(lambda: not state.pending)
    settings = scene.t2m
    assert settings.error == "" and len(settings.results) == 5 and len(settings.segments) == 0
    assert not previews.available() and previews.preview(settings.results[0].motion_id) is None
    search(scene, PROMPT)  # blocking: no preview asked any more, no error
    assert settings.error == "" and not state.pending
    obj = hero(scene)
    bpy.ops.t2m.apply(index=0, blocking=True)
    assert obj.animation_data.action["t2m_motion_id"] == settings.results[0].motion_id


def test_disabling_the_addon_frees_the_previews(scene, server):
    connect(scene, server)
    search(scene, PROMPT)
    folder = state.previews.folder
    assert state.previews.collection is not None and Path(folder).is_dir()
    blender_addon.unregister()
    try:
        assert state.previews.collection is None and not Path(folder).exists()
    finally:
        blender_addon.register()


def test_the_panel_picture_shows_the_steps_and_their_previews(scene, server, tmp_path):
    from matplotlib.image import imread

    from blender_addon import demo

    connect(scene, server)
    search(scene, PROMPT)
    picture = imread(demo.save_panel_picture(scene, tmp_path / "panel.png"))[..., :3]
    assert picture.shape[1] == demo.PANEL_WIDTH and picture.shape[0] > 4 * 3 * demo.ROW_HEIGHT
    # Where each row's preview is drawn, the figures' blue left and red right sides (preview.py) show.
    previews_column = picture[:, 30:110]
    blue = previews_column[..., 2] - previews_column[..., 0] > 0.3
    red = previews_column[..., 0] - previews_column[..., 2] > 0.3
    rows_with_figures = np.flatnonzero(blue.any(axis=1) & red.any(axis=1))
    assert len(rows_with_figures) > 4 * 3 * 20  # four lists of three rows, each preview ~30 px tall
