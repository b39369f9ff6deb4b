"""The skeleton mapper on a zoo of rig conventions, as plain hierarchies and as BVH files
read by the library reader: every joint mapped, same joint angles as the SMPL original."""
from __future__ import annotations

import json

import numpy as np
import pytest

from bridge.skeleton_map import SkeletonMapError, detect_convention, map_skeleton, normalise
from inference_server.angles import motion_angles
from inference_server.cli import main as t2m_main
from inference_server.data import load_spec
from inference_server.data.bvh import read_mapped
from rig_zoo import CONVENTIONS, base_motion, bvh_text, make_rig

ZOO = CONVENTIONS + ["nameless"]


@pytest.fixture(scope="module")
def motion():
    return base_motion(frames=40, seed=0)


@pytest.fixture(scope="module")
def reference_angles(motion, tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "smpl.bvh"
    path.write_text(bvh_text(make_rig("smpl"), motion))
    return motion_angles(read_mapped(path)[0])


@pytest.mark.parametrize("pose", ["T", "A"])
@pytest.mark.parametrize("convention", ZOO)
def test_every_convention_maps_every_joint(convention, pose):
    rig = make_rig(convention, pose)
    mapping = map_skeleton(rig.names, rig.parents, np.array([bone.head for bone in rig.bones]))
    expected = rig.expected()
    assert {joint: mapping.table.get(joint) for joint in expected} == expected
    assert set(mapping.missing) <= {"spine2"}  # only a two-bone spine lacks a middle bone
    assert mapping.convention == ("unknown" if convention == "nameless" else convention)
    if convention == "nameless":
        assert mapping.how == "topology" and 0.6 < mapping.confidence < 0.8
    elif convention in ("blender_metarig", "rigify"):  # the head is spine.006: found from the topology
        assert mapping.how == "names+topology"
    else:
        assert mapping.how == "names" and mapping.confidence >= 0.97
    report = mapping.report()
    assert json.loads(json.dumps(report)) == report and report["table"] == mapping.table


def test_names_alone_are_enough_for_named_rigs():
    """Without rest positions (no topology fallback) the named conventions still map."""
    for convention in CONVENTIONS:
        if convention in ("blender_metarig", "rigify"):
            continue
        rig = make_rig(convention)
        mapping = map_skeleton(rig.names, rig.parents)
        assert not set(mapping.missing) - {"spine2"}, (convention, mapping.missing)


@pytest.mark.parametrize("convention", ZOO)
def test_bvh_of_every_convention_gives_the_same_joint_angles(convention, motion, reference_angles, tmp_path):
    """T- and A-pose, scales 0.01 .. 100, Y-up and Z-up: angles within 2 degrees of the
    SMPL-named original (root position channels aside: they follow the file's units)."""
    worst = 0.0
    for pose in ("T", "A"):
        rig = make_rig(convention, pose)
        for scale, z_up in ((1.0, False), (100.0, True), (0.01, False), (2.54, True)):
            path = tmp_path / f"{convention}_{pose}_{scale}_{z_up}.bvh"
            path.write_text(bvh_text(rig, motion, pose, scale, z_up))
            angles = motion_angles(read_mapped(path)[0])
            worst = max(worst, float(np.abs(angles[:, 3:] - reference_angles[:, 3:]).max()))
    assert worst <= 2.0


def test_mixed_library_reads_every_file_and_reports_each_skeleton(motion, tmp_path, capsys):
    for convention in ZOO:
        (tmp_path / f"{convention}.bvh").write_text(bvh_text(make_rig(convention), motion))
    dataset = load_spec(f"bvh:{tmp_path}")
    assert len(dataset.items) == len(ZOO) and dataset.skipped == []
    assert {entry["convention"] for entry in dataset.skeletons} == set(CONVENTIONS) | {"unknown"}
    assert t2m_main(["data", "stats", f"bvh:{tmp_path}", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["motions"] == len(ZOO) and stats["skipped"] == []
    mixamo = next(entry for entry in stats["skeletons"] if entry["convention"] == "mixamo")
    assert mixamo["table"]["left_elbow"] == "mixamorig:LeftForeArm" and mixamo["files"] == 1


def test_failure_names_missing_joints_and_bones_considered():
    rig = make_rig("mixamo")
    keep = [i for i, bone in enumerate(rig.bones) if "Arm" not in bone.name and "Hand" not in bone.name
            and "Shoulder" not in bone.name]
    names = [rig.bones[i].name for i in keep]
    parents = [keep.index(rig.bones[i].parent) if rig.bones[i].parent >= 0 else -1 for i in keep]
    mapping = map_skeleton(names, parents)
    assert "left_elbow" in mapping.missing and "left_hip" in mapping.table
    with pytest.raises(SkeletonMapError) as error:
        mapping.require(["left_hip", "left_elbow", "right_wrist"])
    assert error.value.missing == ["left_elbow", "right_wrist"]
    assert "no joint found for left_elbow, right_wrist" in str(error.value)
    assert "mixamorig:LeftUpLeg" in str(error.value)


@pytest.mark.parametrize("name, expected", [
    ("mixamorig:LeftUpLeg", ("left", "upleg")), ("Armature|mixamorig1:RightHand", ("right", "hand")),
    ("thigh_l", ("left", "thigh")), ("DEF-upper_arm.L", ("left", "upperarm")),
    ("DEF-forearm.R.001", ("right", "forearm")), ("Bip01 L Thigh", ("left", "thigh")),
    ("Bip001 R Calf", ("right", "calf")), ("lfemur", ("left", "femur")), ("rhumerus", ("right", "humerus")),
    ("CC_Base_L_Thigh", ("left", "thigh")), ("lThighBend", ("left", "thighbend")),
    ("J_Bip_L_UpperLeg", ("left", "upperleg")), ("LeftUpperLeg", ("left", "upperleg")),
    ("Character1_LeftUpLeg", ("left", "upleg")), ("L_Hip", ("left", "hip")), ("Hand_R", ("right", "hand")),
    ("spine_02", (None, "spine")), ("upper_arm.R", ("right", "upperarm")),
])
def test_name_normalisation(name, expected):
    assert normalise(name) == expected


def test_convention_labels():
    assert detect_convention(["Hips", "LeftUpLeg", "LHipJoint", "LowerBack"]) == "cmu"
    assert detect_convention(["Bone", "Bone.001"]) == "unknown"


@pytest.mark.parametrize("yaw", [0, 90, 180, 270])
@pytest.mark.parametrize("z_up", [False, True])
def test_nameless_rig_sides_come_from_the_rest_pose_whatever_its_facing(yaw, z_up):
    from scipy.spatial.transform import Rotation

    rig = make_rig("nameless", "A")
    turn = Rotation.from_rotvec([0, np.radians(yaw), 0]).as_matrix()
    rest = np.array([bone.head for bone in rig.bones]) @ turn.T
    if z_up:
        rest = rest @ np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]]).T
    mapping = map_skeleton(rig.names, rig.parents, rest * 37.0)
    assert {joint: mapping.table.get(joint) for joint in rig.expected()} == rig.expected()
