"""Action keyframes on every supported Blender: new actions, slots and channelbags (4.4+)
or legacy action fcurves (4.2), fast writes through the compat layer."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon import compat, keyframes  # noqa: E402


@pytest.fixture
def obj():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    empty = bpy.data.objects.new("Thing", None)
    bpy.context.scene.collection.objects.link(empty)
    return empty


def read_keys(fcurve) -> np.ndarray:
    co = np.zeros(2 * len(fcurve.keyframe_points), dtype=np.float32)
    fcurve.keyframe_points.foreach_get("co", co)
    return co.reshape(-1, 2)


def test_action_names_are_prefixed_cut_and_unique(obj):
    assert keyframes.action_name("a person  waves\n") == "T2M a person waves"
    long = keyframes.action_name("x" * 200)
    assert long.startswith("T2M ") and len(long) == 4 + keyframes.MAX_LABEL_CHARS and long.endswith("\u2026")
    assert keyframes.action_name("") == "T2M motion"
    first, _ = keyframes.new_action(obj, "wave")
    second, _ = keyframes.new_action(obj, "wave")
    assert first.name == "T2M wave" and second.name == "T2M wave.001"


def test_new_action_gets_a_slot_and_keeps_the_previous_one(obj):
    obj.location = (1.0, 2.0, 3.0)
    obj.keyframe_insert("location", frame=1)
    previous = obj.animation_data.action
    previous_keys = [tuple(k.co) for fc in compat.first_channelbag(previous).fcurves for k in fc.keyframe_points]
    action, channelbag = keyframes.new_action(obj, "jump")
    assert obj.animation_data.action == action
    if compat.SLOTTED:
        assert obj.animation_data.action_slot == action.slots[0]
        assert action.slots[0].target_id_type == "OBJECT"
        assert channelbag.slot == action.slots[0]
    else:
        assert channelbag == action
    assert previous.use_fake_user and previous.name in bpy.data.actions
    assert keyframes.channelbag_of(obj) == channelbag
    assert [tuple(k.co) for fc in compat.first_channelbag(previous).fcurves for k in fc.keyframe_points] \
        == previous_keys


def test_compat_layer_matches_this_blender():
    assert compat.SLOTTED == ("slots" in bpy.types.Action.bl_rna.properties)
    assert compat.SLOTTED == (bpy.app.version >= (4, 4, 0))
    assert compat.describe().startswith("slotted" if compat.SLOTTED else "legacy")
    assert compat.channelbags(None) == [] and compat.first_channelbag(None) is None


def test_second_action_on_the_same_object_gets_its_own_channels(obj):
    first, first_bag = keyframes.new_action(obj, "one")
    keyframes.write_channels(first_bag, "location", np.array([1.0, 2.0]), np.ones((2, 3)), group="Object")
    second, second_bag = keyframes.new_action(obj, "two")
    keyframes.write_channels(second_bag, "scale", np.array([1.0]), np.ones((1, 3)), group="Object")
    assert {fc.data_path for bag in compat.channelbags(first) for fc in bag.fcurves} == {"location"}
    assert {fc.data_path for bag in compat.channelbags(second) for fc in bag.fcurves} == {"scale"}
    assert keyframes.channelbag_of(obj) == second_bag


def test_write_channels_keys_values_and_replaces_old_curves(obj):
    _, channelbag = keyframes.new_action(obj, "move")
    frames = np.arange(1, 11, dtype=np.float64)
    values = np.stack([frames * 0.5, -frames, np.zeros(10)], axis=1)
    keyframes.write_channels(channelbag, "location", frames, values, group="Object")
    assert len(channelbag.fcurves) == 3
    for index in range(3):
        keys = read_keys(channelbag.fcurves.find("location", index=index))
        np.testing.assert_allclose(keys[:, 0], frames)
        np.testing.assert_allclose(keys[:, 1], values[:, index])
    keyframes.write_channels(channelbag, "location", frames[:2], values[:2], group="Object")
    assert len(channelbag.fcurves) == 3
    assert len(channelbag.fcurves.find("location", index=0).keyframe_points) == 2
    assert channelbag.fcurves.find("location", index=0).group.name == "Object"
    bpy.context.scene.frame_set(2)
    assert tuple(obj.location) == pytest.approx((1.0, -2.0, 0.0))


def test_constant_interpolation_holds_values(obj):
    _, channelbag = keyframes.new_action(obj, "steps")
    keyframes.write_channels(channelbag, "location", np.array([1.0, 11.0]), np.array([[0, 0, 0], [5, 5, 5]]),
                             group="Object", interpolation="CONSTANT")
    curve = channelbag.fcurves.find("location", index=0)
    assert all(point.interpolation == "CONSTANT" for point in curve.keyframe_points)
    assert curve.evaluate(10.9) == pytest.approx(0.0)
    assert curve.evaluate(11.0) == pytest.approx(5.0)


def test_remove_channels_by_prefix_and_suffix(obj):
    _, channelbag = keyframes.new_action(obj, "some")
    frames = np.array([1.0])
    keyframes.write_channels(channelbag, "location", frames, np.zeros((1, 3)), group="a")
    keyframes.write_channels(channelbag, "scale", frames, np.ones((1, 3)), group="a")
    assert keyframes.remove_channels(channelbag, "sca", "le") == 3
    assert {fc.data_path for fc in channelbag.fcurves} == {"location"}


def test_pose_bone_path_escapes_names():
    assert keyframes.pose_bone_path('odd"name', "location") == 'pose.bones["odd\\"name"].location'


def test_undo_removes_a_new_action_and_redo_brings_it_back(obj):
    """What Apply's undo step relies on, on every version: the new action and its keys are
    plain data that memfile undo takes away and gives back; the previous action returns."""
    obj.keyframe_insert("location", frame=1)
    previous = obj.animation_data.action.name
    bpy.ops.ed.undo_push(message="before")
    _, channelbag = keyframes.new_action(obj, "undone")
    keyframes.write_channels(channelbag, "location", np.array([1.0, 2.0]), np.ones((2, 3)), group="Object")
    bpy.ops.ed.undo_push(message="apply")
    bpy.ops.ed.undo()
    assert "T2M undone" not in bpy.data.actions
    assert bpy.data.objects["Thing"].animation_data.action.name == previous
    bpy.ops.ed.redo()
    thing = bpy.data.objects["Thing"]  # undo invalidates Python references: look it up again
    assert thing.animation_data.action.name == "T2M undone"
    assert len(keyframes.channelbag_of(thing).fcurves.find("location", index=0).keyframe_points) == 2
