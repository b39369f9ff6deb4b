"""The retarget solver on plain arrays, without Blender: a rig made of numpy arrays (the SMPL
skeleton of fk_motion.py, every bone with a random roll), the solved rotations played back by
forward kinematics written here (Blender's pose rule), compared with the source motion."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from blender_addon import retarget_solver as solver
from blender_addon.bonemap import JOINT_INDEX, SMPL22_JOINTS, SMPL22_PARENTS
from blender_addon.errors import RetargetError
from fk_motion import REST_OFFSETS, fk_motion

MAX_ANGLE = 0.1  # degrees: the swing is exact, only rounding is left
MAP = {joint: joint for joint in SMPL22_JOINTS}


def to_z_up(y_up: np.ndarray) -> np.ndarray:
    """Blender (x, y, z) = (x, -z, y), written here independently of the solver."""
    return np.stack([y_up[..., 0], -y_up[..., 2], y_up[..., 1]], axis=-1)


def plain_rig(roll_seed: int, world: np.ndarray | None = None) -> solver.Rig:
    """SMPL-named bones at the fk_motion rest pose (Blender axes), each bone's Y axis along
    it (towards its main child, leaves along their parent) and turned by a random roll."""
    rng = np.random.default_rng(roll_seed)
    heads = np.zeros((22, 3))
    for joint, parent in enumerate(SMPL22_PARENTS):
        heads[joint] = REST_OFFSETS[joint] + (heads[parent] if parent >= 0 else 0.0)
    heads = to_z_up(heads)
    bones = []
    for joint, name in enumerate(SMPL22_JOINTS):
        owner = name
        while owner not in solver.PRIMARY_CHILD:
            owner = SMPL22_JOINTS[SMPL22_PARENTS[JOINT_INDEX[owner]]]
        y = heads[JOINT_INDEX[solver.PRIMARY_CHILD[owner]]] - heads[JOINT_INDEX[owner]]
        y /= np.linalg.norm(y)
        x = np.cross(y, [0.3, 0.5, 0.8])
        x /= np.linalg.norm(x)
        x = Rotation.from_rotvec(y * rng.uniform(-np.pi, np.pi)).apply(x)
        rest = np.column_stack([x, y, np.cross(x, y)])
        bones.append(solver.RigBone(name, SMPL22_PARENTS[joint], rest, heads[joint], inherit_rotation=True,
                                    local_location=True, connected=False))
    world = np.eye(4) if world is None else world
    return solver.Rig("plain", bones, world, world[:3, :3] / np.linalg.norm(world[:3, :3], axis=0))


def posed_heads(rig: solver.Rig, solution: solver.Solution) -> np.ndarray:
    """World bone heads (T, 22, 3) by Blender's pose rule: pose = parent_pose @ parent_rest^-1
    @ rest @ basis, the basis rotation from the solution, the root moved in its rest frame."""
    count = len(solution.frames)
    rotations, heads = {}, np.zeros((count, len(rig.bones), 3))
    for index, bone in enumerate(rig.bones):
        quaternions = solution.rotations.get(bone.name, np.tile([1.0, 0, 0, 0], (count, 1)))
        basis = Rotation.from_quat(quaternions[:, [1, 2, 3, 0]]).as_matrix()  # wxyz -> xyzw
        if bone.parent < 0:
            rotations[index] = bone.rest @ basis
            location = solution.root_location if bone.name == solution.root_bone else np.zeros((count, 3))
            heads[:, index] = bone.head + location @ bone.rest.T
            continue
        parent = rig.bones[bone.parent]
        to_parent = rotations[bone.parent] @ parent.rest.T
        rotations[index] = to_parent @ bone.rest @ basis
        heads[:, index] = heads[:, bone.parent] + to_parent @ (bone.head - parent.head)
    return heads @ rig.world[:3, :3].T + rig.world[:3, 3]


def source_facing_minus_y(positions: np.ndarray) -> np.ndarray:
    """The source in Blender axes, turned about Z so that frame 0's hips lie along +X."""
    z_up = to_z_up(positions.astype(np.float64))
    hips = z_up[0, JOINT_INDEX["left_hip"]] - z_up[0, JOINT_INDEX["right_hip"]]
    return Rotation.from_rotvec([0, 0, -np.arctan2(hips[1], hips[0])]).apply(z_up.reshape(-1, 3)).reshape(z_up.shape)


def worst_direction_error(a: np.ndarray, b: np.ndarray) -> float:
    """Largest angle (degrees) between the bones joint -> main child of two (T, 22, 3) motions."""
    worst = 0.0
    for joint, child in solver.PRIMARY_CHILD.items():
        u = a[:, JOINT_INDEX[child]] - a[:, JOINT_INDEX[joint]]
        v = b[:, JOINT_INDEX[child]] - b[:, JOINT_INDEX[joint]]
        cosine = np.sum(u * v, axis=1) / np.linalg.norm(u, axis=1) / np.linalg.norm(v, axis=1)
        worst = max(worst, float(np.degrees(np.arccos(np.clip(cosine, -1, 1))).max()))
    return worst


@pytest.mark.parametrize("roll_seed", [0, 1])
def test_solved_bones_follow_the_source_whatever_their_roll(roll_seed):
    rig = plain_rig(roll_seed)
    positions = fk_motion(frames=40, seed=1)
    solution = solver.solve(rig, positions, 20.0, 20.0, MAP)
    assert set(solution.rotations) == set(SMPL22_JOINTS) and solution.frames[0] == 1
    heads = posed_heads(rig, solution)
    expected = source_facing_minus_y(positions)
    assert worst_direction_error(heads, expected) < MAX_ANGLE
    # The hips travel as the source's, scaled by the ratio of leg lengths (the same rest pose: 1).
    assert solution.scale == pytest.approx(solver.target_leg_length(rig, MAP) / solver.leg_length(expected))
    path, source = heads[:, 0, :2] - heads[0, 0, :2], expected[:, 0, :2] - expected[0, 0, :2]
    np.testing.assert_allclose(path, solution.scale * source, atol=1e-9)


def test_the_armature_objects_transform_is_respected():
    """A Y-up armature under a 90 degree X rotation at 0.01 scale, like a Mixamo import."""
    world = np.eye(4)
    world[:3, :3] = 0.01 * Rotation.from_rotvec([np.pi / 2, 0, 0]).as_matrix()
    world[:3, 3] = [2.0, -1.0, 0.5]
    upright = plain_rig(0)
    for bone in upright.bones:  # the same body in the armature's own Y-up space
        turn = Rotation.from_rotvec([-np.pi / 2, 0, 0]).as_matrix() * 100.0
        bone.head = turn @ bone.head
        bone.rest = turn @ bone.rest / 100.0
    rig = solver.Rig("mixamo-like", upright.bones, world, world[:3, :3] / 0.01)
    positions = fk_motion(frames=30, seed=4)
    solution = solver.solve(rig, positions, 20.0, 20.0, MAP)
    heads = posed_heads(rig, solution)
    assert worst_direction_error(heads, source_facing_minus_y(positions)) < MAX_ANGLE
    # The feet's lowest point over the motion stands on the rig's ground (its lowest foot at rest).
    feet = [JOINT_INDEX[j] for j in ("left_ankle", "right_ankle", "left_foot", "right_foot")]
    ground = min(rig.world_heads(MAP)[SMPL22_JOINTS[j]][2] for j in feet)
    assert heads[:, feet, 2].min() == pytest.approx(ground, abs=1e-6)  # float32 source


def test_posed_positions_give_the_source_back_at_smpl_size():
    rig = plain_rig(3)
    positions = fk_motion(frames=25, seed=6)
    heads = posed_heads(rig, solver.solve(rig, positions, 20.0, 20.0, MAP))
    back = solver.posed_positions([dict(zip(SMPL22_JOINTS, frame)) for frame in heads], rig, MAP)
    assert back.shape == (25, 22, 3) and back.dtype == np.float32
    assert solver.leg_length(back) == pytest.approx(solver.SMPL_LEG_LENGTH, rel=1e-3)
    assert worst_direction_error(to_z_up(back), source_facing_minus_y(positions)) < MAX_ANGLE


def test_joints_the_map_lacks_are_placed_between_their_neighbours():
    rig = plain_rig(0)
    heads = {joint: rig.world_heads(MAP)[joint] for joint in SMPL22_JOINTS if joint != "left_knee"}
    back = solver.posed_positions([heads], rig, {j: j for j in heads})
    hip, knee, ankle = (back[0, JOINT_INDEX[f"left_{j}"]] for j in ("hip", "knee", "ankle"))
    np.testing.assert_allclose(knee, (hip + ankle) / 2, atol=1e-6)


def test_swing_is_the_smallest_rotation_even_between_opposite_vectors():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, b = (v / np.linalg.norm(v) for v in rng.normal(size=(2, 3)))
        turn = solver.swing(a, b)
        np.testing.assert_allclose(turn @ a, b, atol=1e-12)
        np.testing.assert_allclose(turn @ np.cross(a, b), np.cross(a, b), atol=1e-12)  # about a x b only
        np.testing.assert_allclose(turn @ turn.T, np.eye(3), atol=1e-12)
    for a in (np.array([0.0, 0.0, 1.0]), np.array([1.0, 0.0, 0.0])):
        half = solver.swing(a, -a)
        np.testing.assert_allclose(half @ a, -a, atol=1e-12)
        assert np.linalg.det(half) == pytest.approx(1.0)


def test_bad_motions_are_refused_with_a_reason():
    rig = plain_rig(0)
    for positions, fps, root_motion, words in [
            (np.zeros((10, 21, 3)), 20.0, "full", "shape"), (np.full((10, 22, 3), np.nan), 20.0, "full", "NaN"),
            (fk_motion(5), 0.0, "full", "fps must be positive"), (fk_motion(5), 20.0, "sideways", "root_motion")]:
        with pytest.raises(RetargetError, match=words):
            solver.solve(rig, positions, fps, 20.0, MAP, root_motion=root_motion)
    legless = {joint: joint for joint in ("pelvis", "spine1", "left_hip", "right_hip")}
    with pytest.raises(RetargetError, match="no complete leg"):
        solver.solve(rig, fk_motion(5), 20.0, 20.0, legless)


def test_resample_keeps_the_duration():
    positions = np.random.default_rng(0).normal(size=(40, 22, 3))
    out = solver.resample(positions, 20.0, 30.0)
    assert len(out) == 60  # 2 s either way
    np.testing.assert_allclose(out[0], positions[0])
    np.testing.assert_allclose(out[3], positions[2])
    np.testing.assert_allclose(out[1], positions[0] + (positions[1] - positions[0]) * 2 / 3)
    np.testing.assert_allclose(out[-1], positions[-1])  # time 59/30 s is past the last sample: held
    assert len(solver.resample(positions, 20.0, 24.0)) == 48
    assert len(solver.resample(positions[:7], 30.0, 24.0)) == 6  # 0.233 s -> 5.6 frames
