"""Relevance colours on bones: colour map, part -> bone mapping, animated keys, exact restore."""
from __future__ import annotations

import json

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon import colors, keyframes, retarget, retarget_solver  # noqa: E402
from blender_addon.rigs import make_humanoid_rig  # noqa: E402

WINDOWS = 4


@pytest.fixture
def rig():
    """An SMPL rig with some user colours, carrying an applied T2M motion of 2 s at 30 fps."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = 30
    obj = make_humanoid_rig("Rig", naming="SMPL")
    obj.pose.bones["L_Knee"].color.palette = "THEME04"
    obj.pose.bones["Head"].color.palette = "CUSTOM"
    obj.pose.bones["Head"].color.custom.normal = (0.1, 0.2, 0.3)
    obj.pose.bones["Head"].color.custom.select = (0.4, 0.5, 0.6)
    obj.pose.bones["Head"].color.custom.active = (0.7, 0.8, 0.9)
    positions = np.zeros((41, 22, 3), dtype=np.float32)
    t_pose = retarget_solver.to_blender_axes(retarget_solver.REST_POSITIONS) @ retarget_solver.Y_UP_TO_Z_UP
    positions[:] = t_pose  # Y-up T-pose
    retarget.apply_motion(obj, positions, 20.0, "stand", start_frame=11)
    return obj


def relevance():
    values = np.linspace(0.0, 1.0, 14 * WINDOWS).reshape(14, WINDOWS) * 0.5 - 0.1
    values[colors.PART_NAMES.index("l_elbow"), 2] = 2.0  # the clear maximum
    return values


def snapshot(obj):
    return {pb.name: (pb.color.palette, *(tuple(round(v, 6) for v in getattr(pb.color.custom, p))
                                        for p in colors.COLOR_PROPS)) for pb in obj.pose.bones}


def color_curves(obj):
    return [fc for fc in keyframes.channelbag_of(obj).fcurves if fc.data_path.endswith("color.custom.normal")]


def test_colormap_is_viridis():
    matplotlib = pytest.importorskip("matplotlib")
    samples = np.linspace(0.0, 1.0, 41)
    reference = matplotlib.colormaps["viridis"](samples)[:, :3]
    np.testing.assert_allclose(colors.colormap(samples), reference, atol=0.025)
    np.testing.assert_allclose(colors.colormap([-1.0, 2.0]), colors.VIRIDIS[[0, -1]])


def test_bone_relevance_maps_parts_to_bones_and_normalises():
    bone_map = {"pelvis": "P", "left_elbow": "LE", "left_wrist": "LW", "spine1": "S1", "spine3": "S3"}
    values = relevance()
    per_bone = colors.bone_relevance(values, bone_map)
    assert set(per_bone) == {"P", "LE", "LW", "S1", "S3"}
    assert per_bone["LE"][2] == pytest.approx(1.0)
    np.testing.assert_allclose(per_bone["LE"], per_bone["LW"])  # both show the l_elbow part
    low, high = values.min(), values.max()
    expected_pelvis = (np.maximum(values[0], values[1]) - low) / (high - low)  # global and pelvis
    np.testing.assert_allclose(per_bone["P"], expected_pelvis)
    with pytest.raises(ValueError, match="14"):
        colors.bone_relevance(np.zeros((13, 2)), bone_map)


def test_static_colours_show_the_maximum(rig):
    bone_map = retarget.resolve_bone_map(rig, None)
    count = colors.show(rig, relevance(), bone_map, animated=False)
    assert count == 22
    elbow = rig.pose.bones["L_Elbow"].color
    assert elbow.palette == "CUSTOM"
    np.testing.assert_allclose(tuple(elbow.custom.normal), colors.VIRIDIS[-1], atol=0.004)  # stored as 8-bit
    assert not color_curves(rig)


def test_animated_colours_are_keyed_per_window(rig):
    bone_map = retarget.resolve_bone_map(rig, None)
    colors.show(rig, relevance(), bone_map, animated=True, window_seconds=0.8, duration=2.0)
    curves = color_curves(rig)
    assert len(curves) == 22 * 3
    elbow = next(fc for fc in curves if '"L_Elbow"' in fc.data_path and fc.array_index == 0)
    frames = [point.co[0] for point in elbow.keyframe_points]
    np.testing.assert_allclose(frames, [11.0, 35.0, 59.0])  # start 11 + w * 0.8 s * 30 fps, 3 windows in 2 s
    assert {point.interpolation for point in elbow.keyframe_points} == {"CONSTANT"}
    scene = bpy.context.scene
    scene.frame_set(60)
    np.testing.assert_allclose(tuple(rig.pose.bones["L_Elbow"].color.custom.normal), colors.VIRIDIS[-1], atol=0.004)  # stored as 8-bit
    scene.frame_set(12)
    assert tuple(rig.pose.bones["L_Elbow"].color.custom.normal) != pytest.approx(tuple(colors.VIRIDIS[-1]))


def test_clear_restores_exactly_and_removes_only_colour_keys(rig):
    before = snapshot(rig)
    motion_curves = len(keyframes.channelbag_of(rig).fcurves)
    bone_map = retarget.resolve_bone_map(rig, None)
    colors.show(rig, relevance(), bone_map, animated=True, duration=2.0)
    colors.show(rig, relevance()[::-1], bone_map, animated=False)  # a second token: originals stay saved
    assert snapshot(rig) != before
    saved = json.loads(rig[colors.SAVED_KEY])
    assert saved["bones"]["L_Knee"]["palette"] == "THEME04"
    assert colors.clear(rig) == 22
    bpy.context.scene.frame_set(40)
    assert snapshot(rig) == before
    assert colors.SAVED_KEY not in rig
    assert not color_curves(rig) and len(keyframes.channelbag_of(rig).fcurves) == motion_curves
    assert colors.clear(rig) == 0


def test_users_own_action_is_never_keyed(rig):
    rig.animation_data.action = None
    rig.keyframe_insert('pose.bones["Pelvis"].location', frame=1)
    users_action = rig.animation_data.action
    curves_before = len(keyframes.channelbag_of(rig).fcurves)
    colors.show(rig, relevance(), retarget.resolve_bone_map(rig, None), animated=True)
    assert rig.animation_data.action == users_action
    assert len(keyframes.channelbag_of(rig).fcurves) == curves_before
    assert rig.pose.bones["L_Elbow"].color.palette == "CUSTOM"
