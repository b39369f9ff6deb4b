"""Anatomical joint angles (29 channels) from SMPL-22 joint positions.

ISB-style segment frames built from positions alone, as MotionColBert does. Every frame
is a right-handed basis with X = forward (anterior), Y = up (superior), Z = the body's
right (lateral for the right side). A vector on the left side is read in the same frame
with Z negated, so both sides share one formula and a mirrored motion swaps the l_/r_
channels with identical values.

Conventions (degrees; root position in metres):
- root_x/root_z: pelvis position relative to the first frame; root_y: pelvis height.
- pelvis tilt/list/rotation: intrinsic Z-X-Y Euler angles of the pelvis frame in the
  world frame facing +Z; rotation (heading) is unwrapped over time.
- hip and shoulder flexion/adduction: the swing of the segment away from hanging
  straight down, as a rotation vector in the parent frame (flexion = forward, adduction
  = toward the midline on both sides). For motion in one plane these are the classic
  angles; unlike Euler angles they stay defined with the arm held out sideways.
- hip/shoulder rotation: twist of the distal segment (shank and foot / forearm) about the
  segment axis after undoing the swing; internal rotation positive.
- knee/elbow flexion: angle between the two segments (0 = straight).
- ankle: angle between shank and foot minus 90 (0 = foot perpendicular to shank,
  dorsiflexion positive).
- lumbar extension/bending/rotation: Z-X-Y Euler angles of the torso frame (spine3->neck,
  collars and shoulders) relative to the pelvis frame; extension = leaning back.
- neck flexion/adduction: the head vector (neck->head) in the torso frame.
Undefined values (zero-length segments, straight limbs for the twist, degenerate frames)
take the previous valid frame's value, or 0 before the first valid frame: never NaN.
"""
from __future__ import annotations

import numpy as np

from inference_server.errors import DataError

CHANNELS: list[str] = [
    "root_x", "root_y", "root_z", "pelvis_tilt", "pelvis_list", "pelvis_rotation",
    "r_hip_flexion", "r_hip_adduction", "r_hip_rotation",
    "l_hip_flexion", "l_hip_adduction", "l_hip_rotation",
    "r_knee_flexion", "l_knee_flexion", "r_ankle_angle", "l_ankle_angle",
    "lumbar_extension", "lumbar_bending", "lumbar_rotation", "neck_flexion", "neck_adduction",
    "r_shoulder_flexion", "r_shoulder_adduction", "r_shoulder_rotation",
    "l_shoulder_flexion", "l_shoulder_adduction", "l_shoulder_rotation",
    "r_elbow_flexion", "l_elbow_flexion",
]
ANGLE_FPS = 20.0

# SMPL-22 joint indices (HumanML3D order).
PELVIS, L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3 = range(10)
L_FOOT, R_FOOT, NECK, L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER = range(10, 18)
L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = range(18, 22)

_MIN_LENGTH = 1e-4      # metres: shorter segments have no direction
# metres: a shorter pelvis->hip-midpoint offset gives no usable up vector. Pelvis and hips
# are rigid in FK data (SMPL, BVH; the Bandai rig has 2.2 cm), so a small offset is exact.
_MIN_PELVIS_UP = 0.005
_MIN_TWIST_ARM = 0.1    # sine of the bend below which the twist reference is unusable
_WORLD_FROM_ISB = (2, 1, 0)  # world axes (z, y, x) giving ISB (forward, up, right) ...
_WORLD_SIGN = np.array([1.0, 1.0, -1.0])  # ... right = -x for a body facing +Z


def joint_angles(positions: np.ndarray) -> np.ndarray:
    """(T, 22, 3) SMPL-22 positions (Y-up, metres) -> (T, 29) float32 channels, no NaN."""
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 3 or positions.shape[1:] != (22, 3):
        raise DataError(f"joint angles need SMPL-22 positions (T, 22, 3), got {positions.shape}")
    out = np.full((positions.shape[0], len(CHANNELS)), np.nan)
    if positions.shape[0] == 0:
        return out.astype(np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        pelvis = _pelvis_frame(positions)
        torso = _torso_frame(positions)
        out[:, 0:3] = _root(positions)
        out[:, 3:6] = _pelvis_euler(pelvis)
        legs = _legs(positions, pelvis)
        out[:, [6, 7, 8, 12, 14]], out[:, [9, 10, 11, 13, 15]] = legs[:, 0], legs[:, 1]
        out[:, 16:19] = _euler_zxy(np.einsum("tji,tjk->tik", pelvis, torso))
        out[:, 19:21] = _neck(positions, torso)
        arms = _arms(positions, torso)
        out[:, [21, 22, 23, 27]], out[:, [24, 25, 26, 28]] = arms[:, 0], arms[:, 1]
    out = _fill_invalid(out)
    out[:, 5] = np.unwrap(out[:, 5], period=360.0)
    return out.astype(np.float32)


def motion_angles(motion) -> np.ndarray:
    """Joint angles of an SMPL-22 Motion, resampled to 20 fps first: (T20, 29) float32."""
    if motion.positions.shape[1] != 22:
        raise DataError(f"joint angles need an SMPL-22 motion, got {motion.positions.shape[1]} joints")
    return joint_angles(motion.resample(ANGLE_FPS).positions)


# ---- frames ----

def _unit(v: np.ndarray) -> np.ndarray:
    """Unit vectors along the last axis; NaN where the vector is (nearly) zero."""
    length = np.linalg.norm(v, axis=-1, keepdims=True)
    return np.where(length > _MIN_LENGTH, v / length, np.nan)


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("...i,...i->...", a, b)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cross product along the last axis (np.cross is several times slower on small arrays)."""
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return np.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], axis=-1)


def _basis(across: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotation with columns (forward, up, right): up orthogonalised against across."""
    right = _unit(across)
    up = _unit(up - _dot(up, right)[:, None] * right)
    forward = _cross(up, right)
    return np.stack([forward, up, right], axis=-1)


def _pelvis_frame(p: np.ndarray) -> np.ndarray:
    across = p[:, R_HIP] - p[:, L_HIP]
    up = p[:, PELVIS] - 0.5 * (p[:, R_HIP] + p[:, L_HIP])
    right = _unit(across)
    offset = np.linalg.norm(up - _dot(up, right)[:, None] * right, axis=-1)
    # Skeletons whose pelvis joint sits at the hip midpoint (many BVH rigs mapped to
    # SMPL-22) give no usable up vector there: take the lower spine for the whole clip.
    finite = offset[np.isfinite(offset)]
    weak = finite.size == 0 or np.median(finite) < _MIN_PELVIS_UP
    degenerate = weak | ~(offset >= _MIN_PELVIS_UP / 2)
    up = np.where(degenerate[:, None], p[:, SPINE1] - p[:, PELVIS], up)
    return _basis(across, up)


def _torso_frame(p: np.ndarray) -> np.ndarray:
    across = (p[:, R_COLLAR] + p[:, R_SHOULDER]) - (p[:, L_COLLAR] + p[:, L_SHOULDER])
    up = p[:, NECK] - p[:, SPINE3]
    return _basis(across, up)


_SIDES = np.array([[1.0, 1.0, 1.0], [1.0, 1.0, -1.0]])  # (right, left): Z negated on the left


def _local(frame: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Coordinates of world vectors v (T, 3) in frame (T, 3, 3)."""
    return np.einsum("tij,ti->tj", frame, v)


def _local_sides(frame: np.ndarray, p: np.ndarray, start: tuple[int, int], end: tuple[int, int]) -> np.ndarray:
    """Unit segment vectors (T, 2, 3) from joints start to end for (right, left) in the
    side-normalised frame (left side read with Z negated)."""
    v = p[:, list(end)] - p[:, list(start)]
    return _unit(np.einsum("tij,tsi->tsj", frame, v) * _SIDES)


# ---- channels ----

def _root(p: np.ndarray) -> np.ndarray:
    root = p[:, PELVIS].copy()
    first = root[np.isfinite(root).all(axis=1)][:1]
    if len(first):
        root[:, [0, 2]] -= first[0, [0, 2]]
    return root


def _euler_zxy(r: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations R = Rz(a) Rx(b) Ry(c) -> (T, 3) degrees (a, b, c)."""
    a = np.arctan2(-r[:, 0, 1], r[:, 1, 1])
    b = np.arcsin(np.clip(r[:, 2, 1], -1.0, 1.0))
    c = np.arctan2(-r[:, 2, 0], r[:, 2, 2])
    return np.degrees(np.stack([a, b, c], axis=-1))


def _pelvis_euler(pelvis: np.ndarray) -> np.ndarray:
    """Pelvis orientation relative to the world axes (forward +Z, up +Y, right -X)."""
    relative = pelvis[:, _WORLD_FROM_ISB, :] * _WORLD_SIGN[:, None]
    return _euler_zxy(relative)


def _segment_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Angle in degrees between unit vectors a and b (0 when aligned)."""
    return np.degrees(np.arctan2(np.linalg.norm(_cross(a, b), axis=-1), _dot(a, b)))


def _swing_twist(direction: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Flexion, adduction and rotation (..., 3) degrees of a segment hanging down at rest.

    direction: unit segment vectors (..., 3) in the parent frame (side-normalised, Z lateral).
    reference: a vector that points forward (+X) when the segment is at rest and not
    rotated; its heading around the segment axis after undoing the swing is the twist.
    """
    x, y, z = direction[..., 0], direction[..., 1], direction[..., 2]
    sine = np.hypot(x, z)
    angle = np.arctan2(sine, -y)
    tilted = sine > 1e-9
    safe_sine = np.where(tilted, sine, 1.0)
    scale = np.degrees(np.where(tilted, angle / safe_sine, 1.0))
    flexion, adduction = scale * x, -scale * z
    # Undo the swing: rotate the reference by -angle about axis = down x direction.
    axis = np.stack([-z, np.zeros_like(z), x], axis=-1) / safe_sine[..., None]
    axis = np.where(tilted[..., None], axis, [0.0, 0.0, 1.0])
    cos, sin = np.cos(angle)[..., None], np.sin(angle)[..., None]
    rest = (reference * cos - _cross(axis, reference) * sin
            + axis * _dot(axis, reference)[..., None] * (1 - cos))
    usable = np.hypot(rest[..., 0], rest[..., 2]) >= _MIN_TWIST_ARM
    rotation = np.where(usable, np.degrees(np.arctan2(-rest[..., 2], rest[..., 0])), np.nan)
    return np.stack([flexion, adduction, rotation], axis=-1)


def _legs(p: np.ndarray, pelvis: np.ndarray) -> np.ndarray:
    """(T, 2 sides, 5): hip flexion, adduction, rotation, knee flexion, ankle angle."""
    thigh = _local_sides(pelvis, p, (R_HIP, L_HIP), (R_KNEE, L_KNEE))
    shank = _local_sides(pelvis, p, (R_KNEE, L_KNEE), (R_ANKLE, L_ANKLE))
    foot = _local_sides(pelvis, p, (R_ANKLE, L_ANKLE), (R_FOOT, L_FOOT))
    # Twist reference: the shank swings backward as the knee bends; for a straight knee
    # the foot (pointing forward) takes over, weighted by the cosine of the knee angle
    # so that a pointed foot under a bent knee cannot flip the reference.
    straightness = np.nan_to_num(np.clip(_dot(thigh, shank), 0.0, 1.0))
    reference = straightness[..., None] * np.nan_to_num(foot) - np.nan_to_num(shank)
    knee_flexion = _segment_angle(thigh, shank)
    ankle_angle = _segment_angle(shank, foot) - 90.0
    return np.concatenate([_swing_twist(thigh, reference), knee_flexion[..., None], ankle_angle[..., None]],
                          axis=-1)


def _arms(p: np.ndarray, torso: np.ndarray) -> np.ndarray:
    """(T, 2 sides, 4): shoulder flexion, adduction, rotation, elbow flexion."""
    upper = _local_sides(torso, p, (R_SHOULDER, L_SHOULDER), (R_ELBOW, L_ELBOW))
    fore = _local_sides(torso, p, (R_ELBOW, L_ELBOW), (R_WRIST, L_WRIST))
    return np.concatenate([_swing_twist(upper, fore), _segment_angle(upper, fore)[..., None]], axis=-1)


def _neck(p: np.ndarray, torso: np.ndarray) -> np.ndarray:
    head = _unit(_local(torso, p[:, HEAD] - p[:, NECK]))
    flexion = np.arctan2(head[:, 0], head[:, 1])
    adduction = np.arctan2(head[:, 2], np.hypot(head[:, 0], head[:, 1]))
    return np.degrees(np.stack([flexion, adduction], axis=-1))


def _fill_invalid(values: np.ndarray) -> np.ndarray:
    """Replace non-finite entries by the previous finite one in their column, else 0."""
    valid = np.isfinite(values)
    if valid.all():
        return values
    rows = np.where(valid, np.arange(len(values))[:, None], -1)
    np.maximum.accumulate(rows, axis=0, out=rows)
    filled = np.take_along_axis(values, np.maximum(rows, 0), axis=0)
    filled[rows < 0] = 0.0
    return filled
