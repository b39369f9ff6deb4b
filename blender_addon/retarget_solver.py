"""The retarget solver: SMPL-22 joint positions -> rotations (and a root path) for the bones
of any humanoid armature.

World-space, rest-relative transfer:
1. The source (T, 22, 3) Y-up positions are resampled to the target fps, turned Z-up
   (Blender (x, y, z) = (x, -z, y)) and rotated about the vertical so that the first frame
   faces -Y, the way Blender characters face.
2. Each source joint gets a world rotation W_s per frame, relative to a T-pose rest: the
   swing comes exactly from its bone direction (joint -> child); the twist from
   neighbouring joints (hips/spine from the hip axis, chest/neck/head from the collars,
   upper arm from the elbow bend plane, thigh from the knee plane, foot from the shin),
   falling back to the parent's rotated rest axis when the limb is straight. Leaves
   (head, wrists, toes) turn with their parent.
3. Each mapped target bone gets W_t = W_s @ C @ B_t in armature space, where B_t is its
   rest matrix and C the swing-only rotation taking its rest direction onto the source
   rest direction; so T-pose, A-pose and any bone roll give the same bone directions.
4. Solved parent-first: matrix_basis = (parent_posed @ parent_rest^-1 @ B_t)^-1 @ W_t.
   Unmapped bones keep their rest pose (they are keyed to it where mapped bones hang
   below them) and follow their parent.
5. The pelvis bone gets the source pelvis path, scaled by the ratio of leg lengths
   (target / source), on the rig's ground, in the rig's facing direction (read from its
   rest pose in world space), so the armature object's transform is respected (Mixamo
   imports carry a 90 deg X rotation and 0.01 scale).

The solved rotations are quaternions with hemisphere continuity; retarget.py keys them in
each bone's own rotation mode.

Everything here is numpy on plain arrays: the target armature comes in as a Rig (its bones'
rest matrices and heads, its object matrix), read from Blender by retarget.py. No bpy, no
mathutils: the solver runs, and is tested, in any Python.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .bonemap import JOINT_INDEX, SMPL22_JOINTS, SMPL22_PARENTS
from .errors import RetargetError

ROOT_MOTION_MODES = ("full", "in_place")
EPS = 1e-8

# Blender (x, y, z) = (x, -z, y) for a Y-up point (x, y, z).
Y_UP_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

_J = JOINT_INDEX
# The source rest pose: an SMPL-like T-pose in Blender axes (left +X, facing -Y, up +Z),
# metres from the pelvis. Only its directions matter.
REST_POSITIONS = np.array([
    [0.0, 0.0, 0.0],                                            # pelvis
    [0.07, 0.0, -0.09], [-0.07, 0.0, -0.09], [0.0, 0.0, 0.11],  # hips, spine1
    [0.07, 0.0, -0.49], [-0.07, 0.0, -0.49], [0.0, 0.0, 0.24],  # knees, spine2
    [0.07, 0.0, -0.91], [-0.07, 0.0, -0.91], [0.0, 0.0, 0.30],  # ankles, spine3
    [0.07, -0.12, -0.97], [-0.07, -0.12, -0.97], [0.0, 0.0, 0.51],  # feet, neck
    [0.08, 0.0, 0.42], [-0.08, 0.0, 0.42], [0.0, 0.0, 0.60],    # collars, head
    [0.20, 0.0, 0.45], [-0.20, 0.0, 0.45],                      # shoulders
    [0.46, 0.0, 0.45], [-0.46, 0.0, 0.45],                      # elbows
    [0.71, 0.0, 0.45], [-0.71, 0.0, 0.45],                      # wrists
])

# The child joint whose direction is each joint's bone (None: a leaf, turns with its parent).
PRIMARY_CHILD = {
    "pelvis": "spine1", "spine1": "spine2", "spine2": "spine3", "spine3": "neck", "neck": "head",
    "left_hip": "left_knee", "right_hip": "right_knee", "left_knee": "left_ankle",
    "right_knee": "right_ankle", "left_ankle": "left_foot", "right_ankle": "right_foot",
    "left_collar": "left_shoulder", "right_collar": "right_shoulder",
    "left_shoulder": "left_elbow", "right_shoulder": "right_elbow",
    "left_elbow": "left_wrist", "right_elbow": "right_wrist",
}
_LATERAL, _UP, _FORWARD = np.array([1.0, 0, 0]), np.array([0, 0, 1.0]), np.array([0, -1.0, 0])
# Each joint's secondary (twist) axis in the rest pose.
REST_SECONDARY = {
    "pelvis": _LATERAL, "spine1": _LATERAL, "spine2": _LATERAL, "spine3": _LATERAL, "neck": _LATERAL,
    "left_collar": _UP, "right_collar": _UP, "left_ankle": _UP, "right_ankle": _UP,
    "left_shoulder": _FORWARD, "right_shoulder": _FORWARD, "left_elbow": _FORWARD,
    "right_elbow": _FORWARD, "left_hip": _FORWARD, "right_hip": _FORWARD,
    "left_knee": _FORWARD, "right_knee": _FORWARD,
}
# How strongly a bent neighbour decides the twist, against the parent's rotated rest
# axis: a bend of ~15 degrees already outweighs it.
BEND_WEIGHT = 4.0
# Weight of the parent's rotated rest axis in each joint's twist: full for limbs, whose
# twist is undefined when they are straight; tiny for the trunk, whose hip and collar
# axes are always defined (it only breaks exact ties); none for the root.
FALLBACK_WEIGHT = {name: 1.0 for name in PRIMARY_CHILD}
FALLBACK_WEIGHT.update({"pelvis": 0.0, "spine1": 0.05, "spine2": 0.05, "spine3": 0.05, "neck": 0.05})


@dataclass
class Solution:
    """A solved retarget: per keyed bone the rotation (frames, 4) wxyz quaternions of its
    matrix_basis, the root bone's location (frames, 3), the frame numbers."""
    frames: np.ndarray
    rotations: dict[str, np.ndarray]
    root_bone: str
    root_location: np.ndarray | None
    scale: float


# ---------------------------------------------------------------- source side

def to_blender_axes(positions_y_up: np.ndarray) -> np.ndarray:
    """(..., 3) Y-up points -> Blender Z-up points."""
    return np.asarray(positions_y_up, dtype=np.float64) @ Y_UP_TO_Z_UP.T


def resample(positions: np.ndarray, fps: float, target_fps: float) -> np.ndarray:
    """Linear resampling in time. A clip of T frames lasts T / fps seconds (each frame
    1 / fps, as the server's `duration`) and becomes round(T / fps * target_fps) frames;
    output frame k samples time k / target_fps, held at the last source frame."""
    count = len(positions)
    if count < 2 or abs(fps - target_fps) < 1e-9:
        return np.array(positions, dtype=np.float64)
    out_count = max(1, int(np.floor(count / fps * target_fps + 0.5)))
    source_time = np.minimum(np.arange(out_count) * (fps / target_fps), count - 1)
    lower = np.floor(source_time).astype(int)
    upper = np.minimum(lower + 1, count - 1)
    weight = (source_time - lower)[:, None, None]
    return (1.0 - weight) * positions[lower] + weight * positions[upper]


def face_forward(positions: np.ndarray) -> np.ndarray:
    """Rotate Z-up positions about the vertical so that frame 0 faces -Y (the hip axis,
    right -> left hip, lies along +X)."""
    lateral = positions[0, _J["left_hip"]] - positions[0, _J["right_hip"]]
    angle = np.arctan2(lateral[1], lateral[0])
    return positions @ _rotation_z(-angle).T


def _rotation_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), EPS)


def _perp(v: np.ndarray, axis: np.ndarray) -> np.ndarray:
    """The part of v perpendicular to the unit vector(s) `axis`."""
    return v - np.sum(v * axis, axis=-1, keepdims=True) * axis


def _frame(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """Orthonormal frames (..., 3, 3), columns (primary, secondary, primary x secondary).
    A secondary parallel to the primary is replaced by any perpendicular axis."""
    x = _unit(primary)
    y = _perp(secondary, x)
    small = np.linalg.norm(y, axis=-1) < 1e-6
    if np.any(small):
        helper = np.where(np.abs(x[..., 2:3]) < 0.9, _UP, _LATERAL)
        y = np.where(small[..., None], _perp(helper, x), y)
    y = _unit(y)
    return np.stack([x, y, np.cross(x, y)], axis=-1)


def _twist_hint(name: str, p: np.ndarray) -> np.ndarray:
    """A vector (T, 3) that fixes the joint's twist about its bone, from neighbours."""
    def at(joint):
        return p[:, _J[joint]]

    def lateral(left, right):
        return _unit(at(left) - at(right))

    side = name.split("_")[0]
    if name in ("pelvis", "spine1"):
        return lateral("left_hip", "right_hip")
    if name == "spine2":
        return lateral("left_hip", "right_hip") + lateral("left_collar", "right_collar")
    if name in ("spine3", "neck"):
        return lateral("left_collar", "right_collar")
    if name.endswith("collar"):
        return _unit(at("neck") - at("spine3"))
    if name.endswith("ankle"):
        return _unit(at(f"{side}_knee") - at(f"{side}_ankle"))
    limb = {"shoulder": ("shoulder", "elbow", "wrist", 1.0), "elbow": ("shoulder", "elbow", "wrist", -1.0),
            "hip": ("hip", "knee", "ankle", -1.0), "knee": ("hip", "knee", "ankle", 1.0)}
    top, middle, bottom, sign = limb[name.split("_", 1)[1]]
    upper = _unit(at(f"{side}_{middle}") - at(f"{side}_{top}"))
    lower = _unit(at(f"{side}_{bottom}") - at(f"{side}_{middle}"))
    if name.endswith(("shoulder", "hip")):
        # The upper bone's bend direction: where the lower bone goes (elbows bend forward,
        # knees backward from the T-pose).
        return sign * BEND_WEIGHT * _perp(lower, upper)
    return sign * BEND_WEIGHT * _perp(upper, lower)


def rest_frames() -> dict[str, np.ndarray]:
    """Each non-leaf joint's rest frame (3, 3)."""
    frames = {}
    for name, child in PRIMARY_CHILD.items():
        direction = REST_POSITIONS[_J[child]] - REST_POSITIONS[_J[name]]
        frames[name] = _frame(direction, REST_SECONDARY[name])
    return frames


def rest_direction(joint: str) -> np.ndarray:
    """The unit rest direction of a joint's bone; a leaf continues its parent's."""
    while joint not in PRIMARY_CHILD:
        joint = SMPL22_JOINTS[SMPL22_PARENTS[_J[joint]]]
    child = PRIMARY_CHILD[joint]
    return _unit(REST_POSITIONS[_J[child]] - REST_POSITIONS[_J[joint]])


def source_rotations(positions: np.ndarray) -> np.ndarray:
    """World rotations (T, 22, 3, 3) of the source joints relative to the rest pose, from
    Z-up positions (T, 22, 3)."""
    count = len(positions)
    rest = rest_frames()
    rotations = np.empty((count, 22, 3, 3))
    for index, name in enumerate(SMPL22_JOINTS):  # parents come first
        parent = SMPL22_PARENTS[index]
        parent_rotation = rotations[:, parent] if parent >= 0 else np.broadcast_to(np.eye(3), (count, 3, 3))
        if name not in PRIMARY_CHILD:
            rotations[:, index] = parent_rotation
            continue
        direction = positions[:, _J[PRIMARY_CHILD[name]]] - positions[:, index]
        # The parent's rotated rest axis keeps the twist where neighbours cannot tell it.
        fallback = parent_rotation @ REST_SECONDARY[name]
        hint = _twist_hint(name, positions) + FALLBACK_WEIGHT[name] * fallback
        current = _frame(direction, hint)
        rotations[:, index] = current @ rest[name].T
    return rotations


def leg_length(positions: np.ndarray) -> float:
    """Mean hip-knee-ankle length of both legs over all frames (metres)."""
    total = 0.0
    for side in ("left", "right"):
        hip, knee, ankle = (positions[:, _J[f"{side}_{j}"]] for j in ("hip", "knee", "ankle"))
        total += np.mean(np.linalg.norm(knee - hip, axis=-1) + np.linalg.norm(ankle - knee, axis=-1))
    return total / 2.0


# ---------------------------------------------------------------- target side

@dataclass
class RigBone:
    """A bone of the target armature at rest, in armature space."""
    name: str
    parent: int              # index into Rig.bones, -1 for roots
    rest: np.ndarray         # (3, 3) rotation of its rest matrix (Blender's matrix_local)
    head: np.ndarray         # (3,)
    inherit_rotation: bool
    local_location: bool
    connected: bool          # its head is pinned to its parent's tail: it cannot move


@dataclass
class Rig:
    """The target armature as plain data: bones parents-first, and the armature object's
    world matrix (4, 4) with its rotation alone (3, 3; no scale)."""
    name: str
    bones: list[RigBone]
    world: np.ndarray
    rotation: np.ndarray

    def __post_init__(self):
        self._positions = {bone.name: index for index, bone in enumerate(self.bones)}

    def bone(self, name: str) -> RigBone:
        return self.bones[self._positions[name]]

    def descends(self, name: str, ancestor: str) -> bool:
        """Whether bone `name` lies below bone `ancestor`."""
        parent = self.bone(name).parent
        while parent >= 0:
            if self.bones[parent].name == ancestor:
                return True
            parent = self.bones[parent].parent
        return False

    def world_heads(self, bone_map: dict[str, str]) -> dict[str, np.ndarray]:
        """World rest positions (bone heads) of the mapped joints."""
        return {joint: self.world[:3, :3] @ self.bone(bone).head + self.world[:3, 3]
                for joint, bone in bone_map.items()}


def target_leg_length(rig: Rig, bone_map: dict[str, str]) -> float:
    """Mean hip-knee-ankle length of the rig's legs at rest, in world units."""
    heads = rig.world_heads(bone_map)
    lengths = []
    for side in ("left", "right"):
        joints = [f"{side}_{j}" for j in ("hip", "knee", "ankle")]
        if all(j in heads for j in joints):
            hip, knee, ankle = (heads[j] for j in joints)
            lengths.append(np.linalg.norm(knee - hip) + np.linalg.norm(ankle - knee))
    if not lengths:
        raise RetargetError(f"armature {rig.name!r}: no complete leg (hip, knee, ankle) in the bone map "
                            "to measure its size; give a scale")
    return float(np.mean(lengths))


def facing(rig: Rig, bone_map: dict[str, str]) -> np.ndarray:
    """The rotation about world Z that turns a -Y facing body into the rig's facing."""
    heads = rig.world_heads(bone_map)
    lateral = heads["left_hip"] - heads["right_hip"]
    if np.hypot(lateral[0], lateral[1]) < 1e-9:
        return np.eye(3)
    return _rotation_z(np.arctan2(lateral[1], lateral[0]))


def _ground(rig: Rig, bone_map: dict[str, str]) -> float:
    """World height of the rig's lowest mapped foot joint."""
    heads = rig.world_heads(bone_map)
    feet = [heads[j] for j in ("left_ankle", "right_ankle", "left_foot", "right_foot") if j in heads]
    return float(min(h[2] for h in feet)) if feet else float(rig.world[2, 3])


def swing(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The smallest rotation (3, 3) taking unit vector `source` onto `target` (Rodrigues);
    opposite vectors turn half a circle about an axis perpendicular to them."""
    axis = np.cross(source, target)
    cosine = float(np.dot(source, target))
    if cosine < -1.0 + 1e-12:
        helper = _LATERAL if abs(source[0]) < 0.9 else _UP
        perpendicular = _unit(_perp(helper, source))
        return 2.0 * np.outer(perpendicular, perpendicular) - np.eye(3)
    cross = np.array([[0.0, -axis[2], axis[1]], [axis[2], 0.0, -axis[0]], [-axis[1], axis[0], 0.0]])
    return np.eye(3) + cross + cross @ cross / (1.0 + cosine)


def _target_direction(bone: RigBone, rig: Rig, joint: str, bone_map: dict[str, str]) -> np.ndarray:
    """A mapped bone's rest direction: towards the bone of its primary child joint when
    that one is mapped below it, else along the bone (its Y axis)."""
    child = PRIMARY_CHILD.get(joint)
    if child in bone_map:
        offset = rig.bone(bone_map[child]).head - bone.head
        if np.linalg.norm(offset) > 1e-6 and rig.descends(bone_map[child], bone.name):
            return _unit(offset)
    return bone.rest[:, 1].copy()


def _bones_between(bones: list[RigBone], mapped: set[str]) -> set[str]:
    """Unmapped bones that lie between mapped bones (some mapped ancestor and some mapped
    descendant): they must stay at rest for the solve to hold, so they get rest keys."""
    has_mapped_below = [False] * len(bones)
    for index in range(len(bones) - 1, -1, -1):
        bone = bones[index]
        if (bone.name in mapped or has_mapped_below[index]) and bone.parent >= 0:
            has_mapped_below[bone.parent] = True
    between = set()
    for index, bone in enumerate(bones):
        if bone.name in mapped or not has_mapped_below[index]:
            continue
        parent = bone.parent
        while parent >= 0 and bones[parent].name not in mapped:
            parent = bones[parent].parent
        if parent >= 0:
            between.add(bone.name)
    return between


# ---------------------------------------------------------------- the solve

def check_motion(positions, fps: float, root_motion: str) -> np.ndarray:
    """Positions as float64 (T, 22, 3), or RetargetError naming what is wrong."""
    array = np.asarray(positions, dtype=np.float64)
    if array.ndim != 3 or array.shape[1:] != (22, 3) or len(array) < 1:
        raise RetargetError(f"positions must be (frames, 22, 3) SMPL-22 joints, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise RetargetError("positions contain NaN or infinite values")
    if not fps > 0:
        raise RetargetError(f"fps must be positive, got {fps}")
    if root_motion not in ROOT_MOTION_MODES:
        raise RetargetError(f"root_motion must be one of {ROOT_MOTION_MODES}, got {root_motion!r}")
    return array


def solve(rig: Rig, positions: np.ndarray, fps: float, target_fps: float, bone_map: dict[str, str],
          root_motion: str = "full", scale: float | None = None, start_frame: int = 1) -> Solution:
    """Retarget Y-up SMPL-22 positions (T, 22, 3) at `fps` onto `rig`, resampled to `target_fps`.
    bone_map: {SMPL-22 joint: bone name}, with at least the core joints (bonemap.require_core).
    scale: metres of rig motion per source metre (None: the ratio of leg lengths)."""
    positions = check_motion(positions, fps, root_motion)
    source = face_forward(to_blender_axes(resample(positions, fps, target_fps)))
    if scale is None:
        scale = target_leg_length(rig, bone_map) / max(leg_length(source), EPS)
    turn = facing(rig, bone_map)
    to_armature = rig.rotation.T @ turn  # canonical (source) axes -> armature axes
    world_rotations = source_rotations(source)
    by_bone = {bone: joint for joint, bone in bone_map.items()}
    count = len(source)
    deltas: list[np.ndarray | None] = []  # posed @ rest^-1 per bone (None: identity)
    rotations: dict[str, np.ndarray] = {}
    for bone in rig.bones:
        parent_delta = deltas[bone.parent] if bone.parent >= 0 and bone.inherit_rotation else None
        joint = by_bone.get(bone.name)
        if joint is None:
            deltas.append(parent_delta)
            continue
        source_direction = to_armature @ rest_direction(joint)
        correction = swing(_target_direction(bone, rig, joint, bone_map), source_direction)
        delta = to_armature @ world_rotations[:, _J[joint]] @ to_armature.T @ correction  # (T, 3, 3)
        local = delta if parent_delta is None else np.swapaxes(parent_delta, -1, -2) @ delta
        rotations[bone.name] = matrices_to_quaternions(bone.rest.T @ local @ bone.rest)
        deltas.append(delta)
    identity = np.tile([1.0, 0.0, 0.0, 0.0], (count, 1))
    for name in _bones_between(rig.bones, set(rotations)):
        rotations[name] = identity
    root = rig.bone(bone_map["pelvis"])
    location = _root_location(rig, bone_map, source, scale, root_motion, turn, root)
    frames = start_frame + np.arange(count, dtype=np.float64)
    return Solution(frames, rotations, root.name, location, float(scale))


def _root_location(rig: Rig, bone_map, source, scale, root_motion, turn, root: RigBone) -> np.ndarray | None:
    """matrix_basis locations (T, 3) of the pelvis bone, or None when it cannot move
    (connected to its parent)."""
    if root.connected:
        return None
    pelvis = source[:, _J["pelvis"]].copy()
    feet = source[:, [_J[j] for j in ("left_ankle", "right_ankle", "left_foot", "right_foot")]]
    pelvis[:, 2] -= feet[..., 2].min()
    pelvis[:, :2] -= pelvis[0, :2]
    if root_motion == "in_place":
        pelvis[:, :2] = 0.0
    start = rig.world_heads({"pelvis": root.name})["pelvis"]
    anchor = np.array([start[0], start[1], _ground(rig, bone_map)])
    world = anchor + (scale * pelvis) @ turn.T
    inverse = np.linalg.inv(rig.world)
    armature_space = world @ inverse[:3, :3].T + inverse[:3, 3]
    offset = armature_space - root.head
    # Ancestors of the pelvis bone are never posed, so its parent space is its rest.
    return offset @ root.rest if root.local_location else offset


def matrices_to_quaternions(matrices: np.ndarray) -> np.ndarray:
    """Rotation matrices (N, 3, 3) -> unit quaternions (N, 4) wxyz with continuous signs
    (q -> -q wherever the dot with the previous frame is negative)."""
    m = matrices
    trace = m[:, 0, 0] + m[:, 1, 1] + m[:, 2, 2]
    candidates = np.stack([trace, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]], axis=1)
    case = np.argmax(candidates, axis=1)
    q = np.empty((len(m), 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        s = np.sqrt(np.maximum(1.0 + 2.0 * candidates[np.arange(len(m)), case] - trace, EPS)) * 2.0
    terms = {
        0: (0.25 * s, (m[:, 2, 1] - m[:, 1, 2]) / s, (m[:, 0, 2] - m[:, 2, 0]) / s, (m[:, 1, 0] - m[:, 0, 1]) / s),
        1: ((m[:, 2, 1] - m[:, 1, 2]) / s, 0.25 * s, (m[:, 0, 1] + m[:, 1, 0]) / s, (m[:, 0, 2] + m[:, 2, 0]) / s),
        2: ((m[:, 0, 2] - m[:, 2, 0]) / s, (m[:, 0, 1] + m[:, 1, 0]) / s, 0.25 * s, (m[:, 1, 2] + m[:, 2, 1]) / s),
        3: ((m[:, 1, 0] - m[:, 0, 1]) / s, (m[:, 0, 2] + m[:, 2, 0]) / s, (m[:, 1, 2] + m[:, 2, 1]) / s, 0.25 * s),
    }
    for index, values in terms.items():
        chosen = case == index
        q[chosen] = np.stack(values, axis=1)[chosen]
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return make_continuous(q)


def make_continuous(quaternions: np.ndarray) -> np.ndarray:
    """Flip signs so consecutive quaternions never have a negative dot; frame 0 has w >= 0."""
    q = np.array(quaternions, dtype=np.float64)
    if len(q) == 0:
        return q
    if q[0, 0] < 0:
        q[0] = -q[0]
    dots = np.sum(q[1:] * q[:-1], axis=1)
    signs = np.cumprod(np.where(dots < 0, -1.0, 1.0))
    q[1:] *= signs[:, None]
    return q


# ---------------------------------------------------------------- reading a rig back

def posed_positions(frames: list[dict[str, np.ndarray]], rig: Rig, bone_map: dict[str, str]) -> np.ndarray:
    """SMPL-22 positions (T, 22, 3) Y-up metres from the rig's posed world bone heads per
    frame ({joint: (3,)}), facing +Z at the rig's rest facing and at SMPL size (legs scaled
    to SMPL's). Joints the map lacks are placed between their neighbours."""
    facing_inverse = facing(rig, bone_map).T
    size = SMPL_LEG_LENGTH / target_leg_length(rig, bone_map)
    positions = np.stack([_complete_joints(heads) for heads in frames])
    positions = (positions @ facing_inverse.T) * size
    return (positions @ Y_UP_TO_Z_UP).astype(np.float32)  # Z-up -> Y-up is the transpose


# Hip-knee-ankle length of REST_POSITIONS, the body size read_positions scales rigs to.
SMPL_LEG_LENGTH = 0.82


def _complete_joints(heads: dict[str, np.ndarray]) -> np.ndarray:
    """(22, 3) from the mapped joints; a missing joint goes halfway between its parent
    and its main child, or at its parent plus the rest offset."""
    positions = np.zeros((22, 3))
    known = np.zeros(22, dtype=bool)
    for joint, head in heads.items():
        positions[_J[joint]], known[_J[joint]] = head, True
    for index, name in enumerate(SMPL22_JOINTS):  # parents first
        if known[index]:
            continue
        parent = SMPL22_PARENTS[index]
        child = PRIMARY_CHILD.get(name)
        if child is not None and known[_J[child]] and parent >= 0:
            positions[index] = (positions[parent] + positions[_J[child]]) / 2.0
        elif parent >= 0:
            positions[index] = positions[parent] + REST_POSITIONS[index] - REST_POSITIONS[parent]
        known[index] = True
    return positions
