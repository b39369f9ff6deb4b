"""The add-on's bone map "auto" (the shared skeleton mapper) on the rig zoo in real bpy:
every convention, T- and A-pose, random bone rolls, object scales 0.01 .. 100, Z-up and
Y-up armatures: all joints mapped as the convention means them, and a motion retargeted
onto the rig follows the source's limb directions."""
from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from rig_zoo import CONVENTIONS, build_armature, make_rig  # noqa: E402
from test_retarget import direction_errors, expected_positions, fk_motion  # noqa: E402

from blender_addon import bonemap, retarget  # noqa: E402
from blender_addon.errors import BoneMapError  # noqa: E402

ZOO = CONVENTIONS + ["nameless"]
VARIANTS = [("T", 1.0, False, 1), ("A", 0.01, True, 2), ("T", 100.0, True, 3), ("A", 0.8, False, 4)]


@pytest.fixture
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = 30
    scene.frame_start = 1
    return scene


@pytest.mark.parametrize("convention", ZOO)
def test_auto_map_and_retarget_on_every_convention(scene, convention):
    positions = fk_motion(frames=30, seed=3)
    all_errors = []
    for pose, scale, y_up, seed in VARIANTS:
        rig = make_rig(convention, pose)
        obj = build_armature(rig, f"{convention}_{pose}_{seed}", scale=scale, y_up=y_up, roll_seed=seed)
        report = bonemap.auto_report(obj.data)
        expected = rig.expected()
        assert {joint: report["table"].get(joint) for joint in expected} == expected, (pose, scale, y_up)
        assert set(report["missing"]) <= {"spine2"}
        bone_map = retarget.resolve_bone_map(obj, None)
        retarget.apply_motion(obj, positions, 20.0, "zoo")
        errors = direction_errors(obj, bone_map, expected_positions(positions, 20.0, scene), scene.frame_start)
        all_errors.append(errors.ravel())
        bpy.data.objects.remove(obj)
    errors = np.concatenate(all_errors)
    assert np.median(errors) <= 3.0 and np.percentile(errors, 95) <= 8.0, (
        f"median {np.median(errors):.2f}, p95 {np.percentile(errors, 95):.2f} deg")


def test_auto_report_says_how(scene):
    obj = build_armature(make_rig("nameless"), "Nameless", roll_seed=0)
    report = bonemap.auto_report(obj.data)
    assert report["source"] == "mapper" and report["how"] == "topology" and report["convention"] == "unknown"
    assert report["table"]["left_elbow"].startswith("Bone.")
    obj = build_armature(make_rig("mixamo"), "Mixamo")
    assert bonemap.auto_report(obj.data)["source"] == "preset MIXAMO"


def test_unmappable_armature_names_the_bones_considered(scene):
    armature = bpy.data.armatures.new("Stick")
    obj = bpy.data.objects.new("Stick", armature)
    scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    for index in range(3):
        bone = armature.edit_bones.new(f"Stick{index}")
        bone.head, bone.tail = (0, 0, index), (0, 0, index + 1)
    bpy.ops.object.mode_set(mode="OBJECT")
    with pytest.raises(BoneMapError, match=r"no bone found for \['pelvis'.*bones considered: Stick0, Stick1, Stick2"):
        retarget.resolve_bone_map(obj, None)


def test_panel_summary_lists_each_joints_bone(scene):
    from blender_addon import panel

    obj = build_armature(make_rig("character_creator"), "CC")
    settings = _settings()
    settings.bone_map = "AUTO"
    summary = panel.bone_map_summary(obj, settings)
    assert summary["error"] == "" and "character_creator" in summary["header"]
    assert dict(summary["rows"])["left_hip"] == "CC_Base_L_Thigh"
    assert dict(summary["rows"])["pelvis"] == "CC_Base_Hip"
    settings.bone_map = "MIXAMO"
    summary = panel.bone_map_summary(obj, settings)
    assert "no bones named as the MIXAMO preset" in summary["error"]


def _settings():
    """A stand-in for scene.t2m with the two bone-map properties the panel reads."""
    class Settings:
        bone_map = "AUTO"
        bone_map_text = None
    return Settings()


def test_blenders_own_human_metarig(scene):
    """Rigify's Human meta-rig (159 bones with face and fingers), as Blender makes it."""
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    bpy.ops.object.armature_human_metarig_add()
    mapped = bonemap.map_armature(bpy.context.active_object.data)
    assert mapped.convention == "blender_metarig" and mapped.missing == []
    expected = {"pelvis": "spine", "spine1": "spine.001", "spine2": "spine.002", "spine3": "spine.003",
                "neck": "spine.004", "head": "spine.006"}
    for side in "LR":
        s = "left" if side == "L" else "right"
        expected.update({f"{s}_hip": f"thigh.{side}", f"{s}_knee": f"shin.{side}", f"{s}_ankle": f"foot.{side}",
                         f"{s}_foot": f"toe.{side}", f"{s}_collar": f"shoulder.{side}",
                         f"{s}_shoulder": f"upper_arm.{side}", f"{s}_elbow": f"forearm.{side}",
                         f"{s}_wrist": f"hand.{side}"})
    assert mapped.table == {joint: expected[joint] for joint in bonemap.SMPL22_JOINTS}
