"""Joint angles from SMPL-22 positions: poses built with known angles must read back."""
import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from inference_server.angles import CHANNELS, joint_angles, motion_angles
from inference_server.errors import DataError
from inference_server.motion import SMPL22_JOINTS, SMPL22_MIRROR, SMPL22_PARENTS, Motion

J = {name: i for i, name in enumerate(SMPL22_JOINTS)}
C = {name: i for i, name in enumerate(CHANNELS)}

# A person standing straight, facing +Z (left on +X), arms hanging, feet flat and forward.
STANDING = np.array([
    [0, 0.93, 0], [0.07, 0.84, 0], [-0.07, 0.84, 0], [0, 1.04, 0], [0.07, 0.46, 0],
    [-0.07, 0.46, 0], [0, 1.17, 0], [0.07, 0.07, 0], [-0.07, 0.07, 0], [0, 1.23, 0],
    [0.07, 0.07, 0.13], [-0.07, 0.07, 0.13], [0, 1.45, 0], [0.08, 1.38, 0], [-0.08, 1.38, 0],
    [0, 1.6, 0], [0.18, 1.38, 0], [-0.18, 1.38, 0], [0.18, 1.1, 0], [-0.18, 1.1, 0],
    [0.18, 0.85, 0], [-0.18, 0.85, 0],
], dtype=np.float64)


def _subtree(joint: str) -> list[int]:
    root = J[joint]
    members = [root]
    for index, parent in enumerate(SMPL22_PARENTS):
        if parent in members and index not in members:
            members.append(index)
    return members


def rotate(pose: np.ndarray, joint: str, rotvec_degrees, children_of: str | None = None) -> np.ndarray:
    """Rotate the joints below `joint` (its subtree, itself excluded) about it."""
    pose = pose.copy()
    moved = _subtree(joint)[1:] if children_of is None else _subtree(children_of)
    pivot = pose[J[joint]]
    rotation = Rotation.from_rotvec(np.radians(rotvec_degrees))
    pose[moved] = rotation.apply(pose[moved] - pivot) + pivot
    return pose


def angles_of(pose: np.ndarray) -> dict[str, float]:
    values = joint_angles(pose[None])[0]
    return {name: float(values[i]) for i, name in enumerate(CHANNELS)}


def test_standing_pose_reads_neutral():
    angles = angles_of(STANDING)
    assert angles["root_y"] == pytest.approx(0.93, abs=1e-5)
    for name in CHANNELS:
        if name != "root_y":
            assert abs(angles[name]) < 0.5, (name, angles[name])


@pytest.mark.parametrize("bend", [30.0, 60.0, 90.0])
def test_knee_and_elbow_flexion(bend):
    pose = rotate(STANDING, "right_knee", [bend, 0, 0])    # shank swings backward
    pose = rotate(pose, "left_knee", [bend, 0, 0])
    pose = rotate(pose, "right_elbow", [-bend, 0, 0])      # forearm swings forward
    pose = rotate(pose, "left_elbow", [-bend, 0, 0])
    angles = angles_of(pose)
    for name in ["r_knee_flexion", "l_knee_flexion", "r_elbow_flexion", "l_elbow_flexion"]:
        assert angles[name] == pytest.approx(bend, abs=1.0), name
    for name in ["r_hip_flexion", "r_hip_rotation", "r_shoulder_flexion", "l_shoulder_rotation"]:
        assert abs(angles[name]) < 1.0, name


def test_straight_limbs_read_zero():
    angles = angles_of(STANDING)
    for name in ["r_knee_flexion", "l_knee_flexion", "r_elbow_flexion", "l_elbow_flexion"]:
        assert abs(angles[name]) < 0.1


def test_hip_flexion_forward_45_both_legs():
    pose = rotate(STANDING, "right_hip", [-45, 0, 0])   # thigh swings forward (+Z)
    pose = rotate(pose, "left_hip", [-45, 0, 0])
    angles = angles_of(pose)
    for side in "rl":
        assert angles[f"{side}_hip_flexion"] == pytest.approx(45.0, abs=1.0)
        assert abs(angles[f"{side}_hip_adduction"]) < 1.0
        assert abs(angles[f"{side}_hip_rotation"]) < 1.0
        assert abs(angles[f"{side}_knee_flexion"]) < 1.0


def test_hip_adduction_is_positive_toward_the_midline_on_both_sides():
    pose = rotate(STANDING, "right_hip", [0, 0, 20])    # right thigh toward +X = midline
    pose = rotate(pose, "left_hip", [0, 0, -20])        # left thigh toward -X = midline
    angles = angles_of(pose)
    assert angles["r_hip_adduction"] == pytest.approx(20.0, abs=1.0)
    assert angles["l_hip_adduction"] == pytest.approx(20.0, abs=1.0)
    assert abs(angles["r_hip_flexion"]) < 1.0


@pytest.mark.parametrize("knee", [0.0, 90.0])
def test_hip_internal_rotation_with_bent_or_straight_knee(knee):
    pose = rotate(STANDING, "right_knee", [knee, 0, 0])
    pose = rotate(pose, "left_knee", [knee, 0, 0])
    pose = rotate(pose, "right_hip", [0, 25, 0])     # right toes/knee turn toward +X (medial)
    pose = rotate(pose, "left_hip", [0, -25, 0])
    angles = angles_of(pose)
    assert angles["r_hip_rotation"] == pytest.approx(25.0, abs=1.0)
    assert angles["l_hip_rotation"] == pytest.approx(25.0, abs=1.0)


def test_shoulder_abduction_90_reads_minus_90_adduction_on_both_sides():
    pose = rotate(STANDING, "right_shoulder", [0, 0, -90])   # right arm out to -X
    pose = rotate(pose, "left_shoulder", [0, 0, 90])         # left arm out to +X
    angles = angles_of(pose)
    for side in "rl":
        assert angles[f"{side}_shoulder_adduction"] == pytest.approx(-90.0, abs=1.0)
        assert abs(angles[f"{side}_shoulder_flexion"]) < 1.0


def test_shoulder_flexion_and_internal_rotation():
    pose = rotate(STANDING, "right_elbow", [-90, 0, 0])      # forearm forward
    pose = rotate(pose, "right_shoulder", [0, 30, 0])         # forearm swings to the midline
    pose = rotate(pose, "left_shoulder", [-60, 0, 0])         # left arm forward and up
    angles = angles_of(pose)
    assert angles["r_shoulder_rotation"] == pytest.approx(30.0, abs=1.0)
    assert angles["l_shoulder_flexion"] == pytest.approx(60.0, abs=1.0)


def test_ankle_dorsiflexion_is_positive():
    pose = rotate(STANDING, "right_ankle", [-20, 0, 0])   # toes up
    pose = rotate(pose, "left_ankle", [15, 0, 0])         # toes down
    angles = angles_of(pose)
    assert angles["r_ankle_angle"] == pytest.approx(20.0, abs=1.0)
    assert angles["l_ankle_angle"] == pytest.approx(-15.0, abs=1.0)


def test_lumbar_and_neck():
    pose = rotate(STANDING, "spine3", [30, 0, 0])         # chest leans forward
    pose = rotate(pose, "neck", [20, 0, 0])               # head nods forward
    angles = angles_of(pose)
    assert angles["lumbar_extension"] == pytest.approx(-30.0, abs=1.0)
    assert angles["neck_flexion"] == pytest.approx(20.0, abs=1.0)
    assert abs(angles["lumbar_bending"]) < 1.0 and abs(angles["lumbar_rotation"]) < 1.0
    twisted = angles_of(rotate(STANDING, "spine3", [0, 0, 15]))
    assert abs(twisted["lumbar_bending"]) == pytest.approx(15.0, abs=1.0)


def test_heading_is_unwrapped_and_root_is_relative():
    turns = np.linspace(0, 720, 41)
    frames = np.stack([Rotation.from_euler("y", t, degrees=True).apply(STANDING) for t in turns])
    frames[:, :, 0] += 2.0
    angles = joint_angles(frames)
    assert np.allclose(angles[:, C["pelvis_rotation"]], turns, atol=0.5)
    assert np.allclose(angles[:, C["root_x"]], 0, atol=1e-5)
    assert np.all(np.abs(np.diff(angles[:, C["pelvis_rotation"]])) < 20)


def _random_motion(frames: int = 30, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for t in range(frames):
        pose = STANDING.copy()
        for joint in ["right_hip", "left_hip", "right_knee", "left_knee", "spine3", "neck",
                      "right_shoulder", "left_shoulder", "right_elbow", "left_elbow", "right_ankle"]:
            pose = rotate(pose, joint, rng.normal(0, 25, 3))
        pose = Rotation.from_euler("y", 10 * t, degrees=True).apply(pose) + [0.05 * t, 0, 0.1 * t]
        out.append(pose)
    return np.stack(out)


def test_mirroring_swaps_left_and_right_channels():
    positions = _random_motion()
    mirrored = positions[:, SMPL22_MIRROR] * np.array([-1.0, 1.0, 1.0])
    original, flipped = joint_angles(positions), joint_angles(mirrored)
    lateral = {"root_x", "pelvis_list", "pelvis_rotation", "lumbar_bending", "lumbar_rotation",
               "neck_adduction"}
    for i, name in enumerate(CHANNELS):
        twin = {"r_": "l_", "l_": "r_"}.get(name[:2], name[:2]) + name[2:]
        expected = -original[:, i] if name in lateral else original[:, i]
        assert np.allclose(flipped[:, C[twin]], expected, atol=1e-3), name


def test_degenerate_input_never_gives_nan():
    assert np.all(joint_angles(np.zeros((5, 22, 3))) == 0)
    collapsed = _random_motion(8)
    collapsed[:, J["right_elbow"]] = collapsed[:, J["right_shoulder"]]
    collapsed[:, J["right_wrist"]] = collapsed[:, J["right_shoulder"]]
    collapsed[3] = 0.0
    collapsed[5, :, 1] = np.nan
    angles = joint_angles(collapsed)
    assert np.isfinite(angles).all()
    assert angles.dtype == np.float32 and angles.shape == (8, 29)
    # Invalid frames repeat the previous valid frame.
    assert np.array_equal(angles[5, 3:], angles[4, 3:])


def test_pelvis_at_hip_midpoint_falls_back_to_the_spine():
    pose = STANDING.copy()
    pose[J["pelvis"]] = [0, 0.84, 0]
    angles = angles_of(rotate(pose, "right_hip", [-45, 0, 0]))
    assert angles["r_hip_flexion"] == pytest.approx(45.0, abs=1.0)
    assert abs(angles["pelvis_tilt"]) < 1.0


def test_bad_shape_is_a_data_error_and_empty_is_fine():
    with pytest.raises(DataError, match="SMPL-22"):
        joint_angles(np.zeros((4, 21, 3)))
    assert joint_angles(np.zeros((0, 22, 3))).shape == (0, 29)


def test_motion_angles_resamples_to_20_fps():
    motion = Motion.smpl22(np.repeat(STANDING[None], 60, axis=0).astype(np.float32), fps=30)
    angles = motion_angles(motion)
    assert angles.shape == (40, 29)
    assert np.allclose(angles[:, C["root_y"]], 0.93, atol=1e-5)
