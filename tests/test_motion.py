"""Motion type: SMPL-22 constants, resample, mirror, crop, captions."""
import numpy as np
import pytest

from bridge.quaternions import quat_rotate
from inference_server.errors import DataError
from inference_server.motion import (
    SMPL22_JOINTS, SMPL22_MIRROR, SMPL22_PARENTS, Motion, MotionItem, Skeleton, mirror_caption, mirror_joint_name,
    quat_from_axis_angle, quat_slerp, smpl22_skeleton)


def random_motion(frames=40, fps=20.0, seed=0) -> Motion:
    rng = np.random.default_rng(seed)
    return Motion.smpl22(rng.normal(size=(frames, 22, 3)).astype(np.float32), fps)


def test_smpl22_constants_follow_the_contract():
    assert SMPL22_JOINTS[:4] == ["pelvis", "left_hip", "right_hip", "spine1"]
    assert SMPL22_JOINTS[-2:] == ["left_wrist", "right_wrist"]
    assert SMPL22_PARENTS == [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
    for joint, twin in enumerate(SMPL22_MIRROR):
        assert SMPL22_MIRROR[twin] == joint
        name, twin_name = SMPL22_JOINTS[joint], SMPL22_JOINTS[twin]
        assert twin_name == name.replace("left", "#").replace("right", "left").replace("#", "right")


def test_rest_skeleton_puts_left_joints_on_plus_x():
    skeleton = smpl22_skeleton()
    rest = np.zeros((22, 3))
    for joint, parent in enumerate(SMPL22_PARENTS[1:], start=1):
        rest[joint] = rest[parent] + skeleton.offsets[joint]
    for joint, name in enumerate(SMPL22_JOINTS):
        if name.startswith("left_"):
            assert rest[joint, 0] > 0 and rest[SMPL22_MIRROR[joint], 0] < 0
    assert rest[15, 1] > rest[0, 1] > rest[10, 1]  # head above pelvis above feet


def test_resample_keeps_duration_and_interpolates_linearly():
    motion = random_motion(frames=40, fps=20.0)
    for fps in (30.0, 12.5, 60.0):
        resampled = motion.resample(fps)
        assert resampled.fps == fps
        assert abs(resampled.duration - motion.duration) <= 1.0 / fps
    doubled = motion.resample(40.0)
    np.testing.assert_allclose(doubled.positions[::2], motion.positions, atol=1e-6)
    np.testing.assert_allclose(doubled.positions[1], (motion.positions[0] + motion.positions[1]) / 2, atol=1e-6)


def test_resample_slerps_rotations():
    angles = np.linspace(0, np.pi / 2, 3)
    rotations = quat_from_axis_angle(np.array([0, 1.0, 0]), angles)[:, None, :].repeat(22, axis=1)
    motion = Motion(np.zeros((3, 22, 3)), 10.0, smpl22_skeleton(), rotations)
    halfway = motion.resample(20.0).rotations[1, 0]
    np.testing.assert_allclose(halfway, quat_from_axis_angle(np.array([0, 1.0, 0]), np.pi / 8), atol=1e-5)


def test_mirror_swaps_sides_and_negates_x():
    motion = random_motion()
    mirrored = motion.mirrored()
    left_wrist, right_wrist = SMPL22_JOINTS.index("left_wrist"), SMPL22_JOINTS.index("right_wrist")
    expected = motion.positions[:, right_wrist] * np.array([-1, 1, 1])
    np.testing.assert_allclose(mirrored.positions[:, left_wrist], expected)
    np.testing.assert_allclose(mirrored.mirrored().positions, motion.positions)


def test_mirror_of_rotations_matches_mirrored_positions():
    """Rotating a mirrored vector by the mirrored rotation gives the mirrored result."""
    q = quat_from_axis_angle(np.array([0.3, 0.5, 0.8]) / np.linalg.norm([0.3, 0.5, 0.8]), 1.1)
    v = np.array([0.2, -0.4, 0.7])
    flip = np.array([-1, 1, 1])
    q_mirrored = q * np.array([1, 1, -1, -1])
    np.testing.assert_allclose(quat_rotate(q_mirrored, v * flip), quat_rotate(q, v) * flip, atol=1e-12)


def test_mirror_of_a_named_skeleton_uses_the_names():
    skeleton = Skeleton(["Hips", "UpperLeg_L", "UpperLeg_R"], [-1, 0, 0], np.zeros((3, 3)))
    assert skeleton.mirror_index() == [0, 2, 1]
    assert mirror_joint_name("mixamorig:LeftHand") == "mixamorig:RightHand"
    assert mirror_joint_name("thigh.l") == "thigh.r"


def test_crop_follows_humanml3d_frame_rule():
    motion = random_motion(frames=100)
    cropped = motion.crop(1.0, 2.55)
    assert cropped.num_frames == int(2.55 * 20) - 20
    np.testing.assert_array_equal(cropped.positions[0], motion.positions[20])
    with pytest.raises(DataError, match="empty"):
        motion.crop(6.0, 7.0)


def test_smpl22_rejects_wrong_shapes():
    with pytest.raises(DataError, match=r"\(T, 22, 3\)"):
        Motion.smpl22(np.zeros((10, 21, 3)), 20)


@pytest.mark.parametrize("text, expected", [
    ("a person waves the left hand", "a person waves the right hand"),
    ("Left arm up, RIGHT leg back", "Right arm up, LEFT leg back"),
    ("turns leftward then clockwise", "turns rightward then counterclockwise"),
    ("right now he stands upright, all right", "right now he stands upright, all right"),
    ("brighten the left-handed cleft", "brighten the right-handed cleft"),
])
def test_mirror_caption(text, expected):
    assert mirror_caption(text) == expected


def test_motion_item_mirror_prefixes_id_and_swaps_captions():
    item = MotionItem("000001", "wave", random_motion(), ["waves the left hand"], "x.npy", "train", {})
    mirrored = item.mirrored()
    assert mirrored.id == "M000001"
    assert mirrored.captions == ["waves the right hand"]
    assert mirrored.split == "train"


def test_slerp_endpoints_and_unit_norm():
    a = quat_from_axis_angle(np.array([1.0, 0, 0]), 0.2)
    b = -quat_from_axis_angle(np.array([0, 0, 1.0]), 2.0)  # opposite sign: short way round
    out = quat_slerp(a, b, np.array([[0.0], [0.5], [1.0]]))
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), 1.0)
    np.testing.assert_allclose(out[0], a, atol=1e-9)
    np.testing.assert_allclose(np.abs(out[2]), np.abs(b), atol=1e-9)
