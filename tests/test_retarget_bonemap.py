"""Bone maps: presets, name normalisation, the hierarchy fallback, custom JSON tables."""
from __future__ import annotations

import json

import pytest

bpy = pytest.importorskip("bpy")

from blender_addon import bonemap  # noqa: E402
from blender_addon.errors import BoneMapError  # noqa: E402
from blender_addon.rigs import make_humanoid_rig  # noqa: E402

MIXAMO_TO = {
    "UE4": {"Hips": "pelvis", "Spine": "spine_01", "Spine1": "spine_02", "Spine2": "spine_03", "Neck": "neck_01",
            "Head": "head", "Shoulder": "clavicle_{s}", "Arm": "upperarm_{s}", "ForeArm": "lowerarm_{s}",
            "Hand": "hand_{s}", "UpLeg": "thigh_{s}", "Leg": "calf_{s}", "Foot": "foot_{s}", "ToeBase": "ball_{s}"},
    "RIGIFY_DEF": {"Hips": "DEF-spine", "Spine": "DEF-spine.001", "Spine1": "DEF-spine.002",
                   "Spine2": "DEF-spine.003", "Neck": "DEF-spine.004", "Head": "DEF-spine.006",
                   "Shoulder": "DEF-shoulder.{S}", "Arm": "DEF-upper_arm.{S}", "ForeArm": "DEF-forearm.{S}",
                   "Hand": "DEF-hand.{S}", "UpLeg": "DEF-thigh.{S}", "Leg": "DEF-shin.{S}", "Foot": "DEF-foot.{S}",
                   "ToeBase": "DEF-toe.{S}"},
    # Blender metarig-like names: no preset knows them, the hierarchy fallback must.
    "GENERIC": {"Hips": "hips", "Spine": "spine", "Spine1": "spine.001", "Spine2": "chest", "Neck": "neck",
                "Head": "head", "Shoulder": "shoulder.{S}", "Arm": "upper_arm.{S}", "ForeArm": "forearm.{S}",
                "Hand": "hand.{S}", "UpLeg": "thigh.{S}", "Leg": "shin.{S}", "Foot": "foot.{S}", "ToeBase": "toe.{S}"},
}


@pytest.fixture(autouse=True)
def empty_scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)


def renamed_rig(scheme: str):
    """A Mixamo rig whose bones are renamed to another naming scheme."""
    rig = make_humanoid_rig(scheme, naming="MIXAMO", pose="A")
    table = MIXAMO_TO[scheme]
    for bone in list(rig.data.bones):
        core = bone.name.removeprefix("mixamorig:")
        side = "l" if core.startswith("Left") else "r" if core.startswith("Right") else ""
        core = core.removeprefix("Left").removeprefix("Right")
        bone.name = table[core].format(s=side, S=side.upper())
    return rig


def test_normalise_strips_prefixes_and_sides():
    assert bonemap.normalise("mixamorig:LeftUpLeg") == ("left", "upleg")
    assert bonemap.normalise("mixamorig1:RightHand") == ("right", "hand")
    assert bonemap.normalise("thigh_l") == ("left", "thigh")
    assert bonemap.normalise("DEF-upper_arm.L") == ("left", "upperarm")
    assert bonemap.normalise("DEF-forearm.R.001") == ("right", "forearm001")
    assert bonemap.normalise("L_Knee") == ("left", "knee")
    assert bonemap.normalise("lForearmBend") == ("left", "forearmbend")
    assert bonemap.normalise("Armature|Hips") == (None, "hips")
    assert bonemap.normalise("Head") == (None, "head")


@pytest.mark.parametrize("naming", ["SMPL", "SMPL_LOWER", "MIXAMO"])
def test_auto_map_finds_every_joint_of_preset_rigs(naming):
    rig = make_humanoid_rig("Rig", naming=naming)
    mapping = bonemap.auto_map(rig.data)
    assert set(mapping) == set(bonemap.SMPL22_JOINTS)
    expected = bonemap.PRESETS[naming]
    prefix = "mixamorig:" if naming == "MIXAMO" else ""
    assert all(mapping[joint] == prefix + expected[joint] for joint in bonemap.SMPL22_JOINTS)


@pytest.mark.parametrize("scheme", ["UE4", "RIGIFY_DEF", "GENERIC"])
def test_other_namings(scheme):
    rig = renamed_rig(scheme)
    mapping = bonemap.auto_map(rig.data)
    assert set(mapping) == set(bonemap.SMPL22_JOINTS), sorted(set(bonemap.SMPL22_JOINTS) - set(mapping))
    assert mapping["left_shoulder"] == MIXAMO_TO[scheme]["Arm"].format(s="l", S="L")
    assert mapping["right_hip"] == MIXAMO_TO[scheme]["UpLeg"].format(s="r", S="R")
    assert mapping["spine3"] == MIXAMO_TO[scheme]["Spine2"]


def test_group_map_and_its_errors():
    rig = renamed_rig("UE4")
    assert bonemap.group_map(rig.data, "UE")["pelvis"] == "pelvis"
    with pytest.raises(BoneMapError, match="no bones named as the MIXAMO preset"):
        bonemap.group_map(rig.data, "MIXAMO")
    with pytest.raises(BoneMapError, match="unknown bone map preset"):
        bonemap.group_map(rig.data, "VRM")


def test_hierarchy_check_drops_impossible_pairs():
    rig = make_humanoid_rig("Rig", naming="MIXAMO")
    mapping = bonemap.auto_map(rig.data)
    mapping["left_knee"] = "mixamorig:RightLeg"   # not below the left thigh
    mapping["left_ankle"] = mapping["pelvis"]     # used twice
    kept = bonemap.check_hierarchy(rig.data, mapping)
    assert "left_knee" not in kept and "left_ankle" not in kept
    assert kept["right_knee"] == "mixamorig:RightLeg"


def test_custom_table_round_trip_and_errors():
    rig = make_humanoid_rig("Rig", naming="SMPL")
    mapping = bonemap.auto_map(rig.data)
    text = bonemap.to_json({k: v for k, v in mapping.items() if k != "head"})
    table = json.loads(text)
    assert list(table) == bonemap.SMPL22_JOINTS and table["head"] == ""
    assert bonemap.parse_custom(text, "map.json", rig.data) == {k: v for k, v in mapping.items() if k != "head"}
    with pytest.raises(BoneMapError, match="'map.json' is not valid JSON"):
        bonemap.parse_custom("{", "map.json", rig.data)
    with pytest.raises(BoneMapError, match="unknown joints \\['hand'\\]"):
        bonemap.parse_custom('{"hand": "L_Wrist"}', "map.json", rig.data)
    with pytest.raises(BoneMapError, match="lacks: \\['Nope'\\]"):
        bonemap.parse_custom('{"pelvis": "Nope"}', "map.json", rig.data)


def test_require_core_names_what_is_missing():
    rig = make_humanoid_rig("Rig", naming="SMPL")
    with pytest.raises(BoneMapError, match="left_knee"):
        bonemap.require_core(rig.data, {"pelvis": "Pelvis", "left_hip": "L_Hip", "right_hip": "R_Hip",
                                        "right_knee": "R_Knee"})
