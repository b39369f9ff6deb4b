"""Forward kinematics and the placement every reader applies (numpy, vectorised over frames).

Canonical placement (what HumanML3D does to its motions): Y up, metres, the lowest joint of
the clip on the floor (y = 0), the pelvis above the origin at frame 0, and the body facing +Z
at frame 0, where forward = up x across and across = (right_hip - left_hip) +
(right_shoulder - left_shoulder). With that forward the body's left (left_hip) lies on +X.
"""
from __future__ import annotations

import numpy as np

from bridge.quaternions import quat_mul, quat_rotate
from inference_server.motion import quat_from_axis_angle

AXES = {"X": np.array([1.0, 0, 0]), "Y": np.array([0, 1.0, 0]), "Z": np.array([0, 0, 1.0])}

# SMPL-22 indices used for the body frame
PELVIS, LEFT_HIP, RIGHT_HIP, NECK, HEAD = 0, 1, 2, 12, 15
LEFT_ANKLE, RIGHT_ANKLE, LEFT_SHOULDER, RIGHT_SHOULDER = 7, 8, 16, 17

# Where SMPL's spine1/spine2/spine3 sit on the pelvis -> neck chain, as fractions of its
# length (from the SMPL neutral rest joints: about 0.12, 0.25 and 0.31 m above the pelvis
# on a 0.53 m pelvis-neck distance).
SPINE_FRACTIONS = (0.22, 0.47, 0.58)


def euler_to_quat(angles_deg: np.ndarray, order: str) -> np.ndarray:
    """(T, k) angles in degrees applied in `order` (e.g. "ZXY": R = Rz Rx Ry) -> (T, 4)."""
    angles = np.radians(np.asarray(angles_deg, dtype=np.float64))
    result = np.zeros(angles.shape[:-1] + (4,))
    result[..., 0] = 1.0
    for column, axis in enumerate(order):
        result = quat_mul(result, quat_from_axis_angle(AXES[axis], angles[..., column]))
    return result


def forward_kinematics(parents: list[int], translations: np.ndarray, rotations: np.ndarray):
    """Local translations (T, J, 3) and rotations (T, J, 4) -> world positions and rotations.

    Joints must be ordered parents first. The root's translation is its world position.
    Joints at the same depth are solved together.
    """
    positions = np.empty(translations.shape)
    world = np.empty(rotations.shape)
    for level in _levels(parents):
        joints = np.array(level)
        parent = np.array([parents[j] for j in level])
        if parent[0] < 0:
            positions[:, joints] = translations[:, joints]
            world[:, joints] = rotations[:, joints]
        else:
            positions[:, joints] = positions[:, parent] + quat_rotate(world[:, parent], translations[:, joints])
            world[:, joints] = quat_mul(world[:, parent], rotations[:, joints])
    return positions, world


def _levels(parents: list[int]) -> list[list[int]]:
    """Joints grouped by depth in the tree (roots first)."""
    depth: list[int] = []
    for joint, parent in enumerate(parents):
        if parent >= joint:
            raise ValueError(f"joint {joint}'s parent {parent} does not come before it")
        depth.append(0 if parent < 0 else depth[parent] + 1)
    return [[j for j, d in enumerate(depth) if d == level] for level in range(max(depth) + 1)]


def interpolate_chain(chain: np.ndarray, fractions) -> np.ndarray:
    """Points at arc-length fractions along a polyline of joints (T, K, 3) -> (T, len(fractions), 3)."""
    segments = np.linalg.norm(np.diff(chain, axis=1), axis=-1)  # (T, K-1)
    cumulative = np.concatenate([np.zeros((chain.shape[0], 1)), np.cumsum(segments, axis=1)], axis=1)
    total = np.maximum(cumulative[:, -1:], 1e-9)
    out = np.empty((chain.shape[0], len(fractions), 3))
    for column, fraction in enumerate(fractions):
        target = fraction * total  # (T, 1)
        segment = np.clip((cumulative[:, 1:] < target).sum(axis=1), 0, chain.shape[1] - 2)
        rows = np.arange(chain.shape[0])
        start = cumulative[rows, segment]
        length = np.maximum(segments[rows, segment], 1e-9)
        weight = np.clip((target[:, 0] - start) / length, 0.0, 1.0)[:, None]
        out[:, column] = chain[rows, segment] * (1 - weight) + chain[rows, segment + 1] * weight
    return out


def up_axis_rotation(smpl_positions: np.ndarray) -> np.ndarray:
    """Quaternion taking the clip's up axis (a signed X/Y/Z axis) to +Y.

    Up is the dominant axis of the median ankles -> head direction over the clip, so a
    standing or walking clip in a Y-up or Z-up file is recognised whatever its rest pose.
    """
    ankles = (smpl_positions[:, LEFT_ANKLE] + smpl_positions[:, RIGHT_ANKLE]) / 2
    body = np.median(smpl_positions[:, HEAD] - ankles, axis=0)
    axis = int(np.argmax(np.abs(body)))
    up = np.zeros(3)
    up[axis] = np.sign(body[axis]) or 1.0
    return rotation_between(up, AXES["Y"])


def rotation_between(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Shortest-arc unit quaternion rotating unit vector a onto unit vector b."""
    cross = np.cross(a, b)
    dot = float(np.dot(a, b))
    if dot < -1 + 1e-9:  # opposite: half turn about any perpendicular axis
        perpendicular = np.cross(a, AXES["X"] if abs(a[0]) < 0.9 else AXES["Z"])
        return np.concatenate([[0.0], perpendicular / np.linalg.norm(perpendicular)])
    q = np.concatenate([[1.0 + dot], cross])
    return q / np.linalg.norm(q)


def facing_angle(smpl_positions_frame: np.ndarray) -> float:
    """Yaw (radians about +Y) of the body's forward direction in one Y-up frame (22, 3)."""
    across = (smpl_positions_frame[RIGHT_HIP] - smpl_positions_frame[LEFT_HIP]
              + smpl_positions_frame[RIGHT_SHOULDER] - smpl_positions_frame[LEFT_SHOULDER])
    forward = np.cross(AXES["Y"], across)
    return float(np.arctan2(forward[0], forward[2]))


def canonical_transform(smpl_positions: np.ndarray, up_rotation: np.ndarray | None = None):
    """(rotation quaternion, translation) that put a SMPL-22 clip in the canonical placement.

    Apply as p' = rotate(rotation, p) + translation. up_rotation=None detects the up axis.
    """
    up = up_axis_rotation(smpl_positions) if up_rotation is None else np.asarray(up_rotation, float)
    upright = quat_rotate(up, smpl_positions)
    yaw = quat_from_axis_angle(AXES["Y"], -facing_angle(upright[0]))
    rotation = quat_mul(yaw, up)
    placed = quat_rotate(rotation, smpl_positions)
    translation = np.array([-placed[0, PELVIS, 0], -placed[..., 1].min(), -placed[0, PELVIS, 2]])
    return rotation, translation


def apply_transform(positions: np.ndarray, rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    return quat_rotate(np.broadcast_to(rotation, positions.shape[:-1] + (4,)), positions) + translation


def canonicalize(smpl_positions: np.ndarray, up_rotation: np.ndarray | None = None) -> np.ndarray:
    """SMPL-22 positions (T, 22, 3) in any placement -> canonical placement, float32."""
    rotation, translation = canonical_transform(smpl_positions, up_rotation)
    return apply_transform(smpl_positions, rotation, translation).astype(np.float32)
