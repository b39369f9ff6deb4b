"""Join the clips of a sequence into one motion (numpy only: runs in Blender and the server).

Conventions: those of the server's `motion` op (INTERFACES.md), inference_server.motion
and the library readers (inference_server.data.kinematics), so the result goes straight
into the add-on's retarget.apply_motion:
- Y up, metres, right-handed. A library clip is in the canonical placement: floor at
  y = 0, pelvis above the origin at frame 0, facing +Z with the body's left on +X.
  (Blender's Z-up is reached later, in retarget_solver.to_blender_axes.)
- Quaternions are (w, x, y, z), unit length; q rotates a vector v as q v q*. Products
  compose right to left: (a * b) v = a (b v).
- A Clip is per frame, all at one fps (resample before: blender_addon.retarget_solver.resample):
  root_position (T, 3) world metres; root_rotation (T, 4) the root's world rotation;
  rotations (T, J, 4) local rotations, each relative to its parent (rotations[:, 0]
  relative to root_rotation, identity when root_rotation is the root's own rotation).
  stitch() treats the local rotations alike whatever skeleton they belong to.
- Facing is the yaw of root_rotation: its twist about +Y, 2 atan2(q_y, q_w).

How stitch() joins clip B onto clip A, with n = blend frames (N clamped to the clips):
- B overlaps A's last n frames: output frame i of the overlap shows A's frame T_A - n + i
  blended with B's frame i, weight of B (i + 1) / (n + 1); the output has
  sum(T) - sum(n) frames. A clip with a join on both sides gives at most half its frames
  to each; an end clip may give all of them (so a clip shorter than N still blends).
- B is turned about +Y so that its frame 0 faces where A faces at the frame B starts
  over (no pop in facing); B's root velocities turn with it.
- Horizontal root (x, z): the first clip's start, then integrated per-frame root steps:
  each clip's own steps (turned), blended in the overlaps, so every segment starts where
  the last ended. Root height (y) is blended, not integrated: a standing clip after a
  sitting one stands up over the blend instead of floating.
- Rotations: slerp (short way) of root_rotation and of every local rotation.
- n = 0 is a hard cut: the pose switches in one frame; on the floor the root still
  steps on from where A ended (A's last step), facing still carried over; the height
  is B's own from its first frame (a smaller body or a crouch shows as a drop).
- in_place=True removes the horizontal root motion (x, z stay at the first frame's).

The add-on retargets joint positions (the `motion` op's `positions`; `rotations` come
only from sources that have them, none of today's readers do), so stitch_positions()
does the whole job on SMPL-22 positions (T, 22, 3): it turns each clip into a Clip
(root = pelvis; root_rotation from the hips and spine1 axes; each bone's local rotation
is the swing that takes a rest direction onto the bone, relative to its parent bone,
with rest = the mean bone direction over all the clips, so a swing is far from its
180 degree singularity), stitches, and rebuilds positions by forward kinematics with
the bone lengths blended like everything else: one clip comes back as it went in.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .quaternions import quat_mul, quat_rotate
from .skeleton_map import SMPL22_JOINTS, SMPL22_PARENTS

DEFAULT_BLEND_FRAMES = 8
UP = np.array([0.0, 1.0, 0.0])
_J = {name: index for index, name in enumerate(SMPL22_JOINTS)}
_EPS = 1e-9


class StitchError(ValueError):
    """Clips that cannot be joined; the message names the clip and the problem."""


@dataclass
class Clip:
    """One segment's motion (see the module docstring for the conventions)."""
    root_position: np.ndarray  # (T, 3)
    root_rotation: np.ndarray  # (T, 4) wxyz
    rotations: np.ndarray      # (T, J, 4) wxyz, local

    def __post_init__(self):
        self.root_position = np.asarray(self.root_position, dtype=np.float64)
        self.root_rotation = np.asarray(self.root_rotation, dtype=np.float64)
        self.rotations = np.asarray(self.rotations, dtype=np.float64)

    @property
    def num_frames(self) -> int:
        return len(self.root_position)


# ---------------------------------------------------------------- quaternions

def quat_conj(q: np.ndarray) -> np.ndarray:
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def quat_slerp(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Spherical interpolation a -> b the short way; weight (...,) broadcasts."""
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)
    theta = np.arccos(np.clip(np.abs(dot), 0.0, 1.0))
    sine = np.sin(theta)
    weight = np.asarray(weight, dtype=np.float64)[..., None]
    near = sine < 1e-6  # nearly equal: linear is exact enough and avoids 0 / 0
    safe = np.where(near, 1.0, sine)
    wa = np.where(near, 1.0 - weight, np.sin((1.0 - weight) * theta) / safe)
    wb = np.where(near, weight, np.sin(weight * theta) / safe)
    out = wa * a + wb * b
    return out / np.linalg.norm(out, axis=-1, keepdims=True)


def yaw_of(q: np.ndarray) -> np.ndarray:
    """Facing angle (radians about +Y) of rotations q (..., 4): their twist about +Y."""
    return 2.0 * np.arctan2(q[..., 2], q[..., 0])


def yaw_quat(angle: np.ndarray) -> np.ndarray:
    """Rotations about +Y by `angle` radians (...,) -> (..., 4)."""
    half = np.asarray(angle, dtype=np.float64) / 2.0
    zeros = np.zeros_like(half)
    return np.stack([np.cos(half), zeros, np.sin(half), zeros], axis=-1)


def swing(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The smallest rotations (..., 4) taking unit vectors a onto unit vectors b."""
    a, b = np.broadcast_arrays(a, b)
    q = np.concatenate([1.0 + np.sum(a * b, axis=-1, keepdims=True), np.cross(a, b)], axis=-1)
    opposite = q[..., 0] < 1e-9
    if np.any(opposite):  # half a turn about any axis perpendicular to a
        helper = np.where(np.abs(a[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 0.0, 1.0])
        axis = _unit(np.cross(a, helper))
        q[opposite] = np.concatenate([np.zeros(axis.shape[:-1] + (1,)), axis], axis=-1)[opposite]
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def make_continuous(q: np.ndarray) -> np.ndarray:
    """Flip signs along axis 0 so consecutive quaternions never have a negative dot."""
    if len(q) < 2:
        return q
    dots = np.sum(q[1:] * q[:-1], axis=-1)
    signs = np.cumprod(np.where(dots < 0, -1.0, 1.0), axis=0)
    out = q.copy()
    out[1:] *= signs[..., None]
    return out


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), _EPS)


# ---------------------------------------------------------------- the timeline

@dataclass
class _Timeline:
    """Per output frame: the two source frames shown (indices into the clips' frames laid
    end to end) and the weight of the second; pure frames have first == second."""
    first: np.ndarray
    second: np.ndarray
    weight: np.ndarray
    starts: list[int]   # output frame of each clip's frame 0
    blends: list[int]   # frames of overlap at each join


def _timeline(lengths: list[int], blend_frames: int) -> _Timeline:
    blends = [min(blend_frames, _blend_room(lengths, k, "tail"), _blend_room(lengths, k + 1, "head"))
              for k in range(len(lengths) - 1)]
    starts = [0]
    for length, blend in zip(lengths, blends):
        starts.append(starts[-1] + length - blend)
    total = starts[-1] + lengths[-1]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    first, weight = np.empty(total, dtype=int), np.zeros(total)
    for start, offset, length in zip(starts, offsets, lengths):
        first[start:start + length] = offset + np.arange(length)
    second = first.copy()
    for k, blend in enumerate(blends):
        overlap = starts[k + 1] + np.arange(blend)
        first[overlap] = offsets[k] + lengths[k] - blend + np.arange(blend)
        weight[overlap] = (np.arange(blend) + 1.0) / (blend + 1.0)
    return _Timeline(first, second, weight, starts, blends)


def _blend_room(lengths: list[int], k: int, side: str) -> int:
    """Frames clip k can give to one blend: all of them at an end of the sequence, half
    when it is blended on both sides (its two blends must not overlap)."""
    at_end = (k == 0 and side == "tail") or (k == len(lengths) - 1 and side == "head")
    return lengths[k] if at_end else lengths[k] // 2


def _blend_values(values: np.ndarray, timeline: _Timeline) -> np.ndarray:
    weight = timeline.weight.reshape((-1,) + (1,) * (values.ndim - 1))
    return (1.0 - weight) * values[timeline.first] + weight * values[timeline.second]


def _blend_rotations(values: np.ndarray, timeline: _Timeline) -> np.ndarray:
    weight = timeline.weight.reshape((-1,) + (1,) * (values.ndim - 2))
    return make_continuous(quat_slerp(values[timeline.first], values[timeline.second], weight))


# ---------------------------------------------------------------- stitching

def stitch(clips: Sequence[Clip], blend_frames: int = DEFAULT_BLEND_FRAMES, in_place: bool = False) -> Clip:
    """One Clip playing `clips` in order, each blended into the next over `blend_frames`
    frames, root continuous, facing carried over (see the module docstring)."""
    _check_clips(clips, blend_frames)
    timeline = _timeline([clip.num_frames for clip in clips], int(blend_frames))
    turns = _facing_turns(clips, timeline)
    root_rotation = np.concatenate([quat_mul(yaw_quat(turn), clip.root_rotation)
                                    for turn, clip in zip(turns, clips)])
    steps = np.concatenate([quat_rotate(yaw_quat(turn), _root_steps(clip)) for turn, clip in zip(turns, clips)])
    heights = np.concatenate([clip.root_position[:, 1] for clip in clips])
    rotations = np.concatenate([clip.rotations for clip in clips])
    position = _root_path(clips[0].root_position[0], _blend_values(steps, timeline), in_place)
    position[:, 1] = _blend_values(heights, timeline)
    return Clip(position, _blend_rotations(root_rotation, timeline), _blend_rotations(rotations, timeline))


def _facing_turns(clips: Sequence[Clip], timeline: _Timeline) -> list[float]:
    """The yaw (radians) each clip is turned by: its frame 0 faces where the previous
    (turned) clip faces at the frame where the new one starts to blend in."""
    turns = [0.0]
    for k in range(1, len(clips)):
        previous = clips[k - 1]
        meeting = previous.num_frames - timeline.blends[k - 1]
        meeting = min(meeting, previous.num_frames - 1)  # a hard cut meets A's last frame
        facing = turns[-1] + yaw_of(previous.root_rotation[meeting])
        turns.append(float(facing - yaw_of(clips[k].root_rotation[0])))
    return turns


def _root_steps(clip: Clip) -> np.ndarray:
    """(T, 3) horizontal root step from each frame to the next; the last frame repeats
    the step before it (what the clip would do next), a one-frame clip stands still."""
    steps = np.zeros((clip.num_frames, 3))
    if clip.num_frames > 1:
        steps[:-1] = np.diff(clip.root_position, axis=0)
        steps[-1] = steps[-2]
    steps[:, 1] = 0.0
    return steps


def _root_path(start: np.ndarray, steps: np.ndarray, in_place: bool) -> np.ndarray:
    path = np.empty_like(steps)
    path[0] = start
    if in_place:
        path[1:] = start
    else:
        path[1:] = start + np.cumsum(steps[:-1], axis=0)
    return path


def _check_clips(clips: Sequence[Clip], blend_frames) -> None:
    if len(clips) == 0:
        raise StitchError("no clips to stitch")
    if isinstance(blend_frames, bool) or not isinstance(blend_frames, (int, np.integer)) or blend_frames < 0:
        raise StitchError(f"blend_frames must be an integer >= 0, got {blend_frames!r}")
    joints = clips[0].rotations.shape[1:2]
    for index, clip in enumerate(clips):
        count = clip.num_frames
        shapes = {"root_position": (count, 3), "root_rotation": (count, 4), "rotations": (count,) + joints + (4,)}
        for name, shape in shapes.items():
            array = getattr(clip, name)
            if array.shape != shape:
                raise StitchError(f"clip {index}: {name} must have shape {shape}, got {array.shape}")
            if not np.all(np.isfinite(array)):
                raise StitchError(f"clip {index}: {name} contains NaN or infinite values")
        if count == 0:
            raise StitchError(f"clip {index} has no frames")
        norms = np.linalg.norm(np.concatenate([clip.root_rotation[:, None], clip.rotations], axis=1), axis=-1)
        if np.any(np.abs(norms - 1.0) > 1e-3):
            raise StitchError(f"clip {index}: rotations must be unit quaternions (w, x, y, z)")


# ---------------------------------------------------------------- SMPL-22 positions

@dataclass
class _Body:
    """Bone lengths and rest directions that turn a Clip back into SMPL-22 positions."""
    lengths: np.ndarray  # (T, 22) length of the bone from each joint's parent (0 for the root)
    rest: np.ndarray     # (22, 3) unit rest direction of each bone in its parent bone's frame


def stitch_positions(clips: Sequence[np.ndarray], blend_frames: int = DEFAULT_BLEND_FRAMES,
                     in_place: bool = False) -> np.ndarray:
    """SMPL-22 positions (T_k, 22, 3) of each segment, Y-up metres at one fps, in order
    -> the stitched positions (T, 22, 3) float32, ready for retarget.apply_motion."""
    arrays = [_check_positions(clip, index) for index, clip in enumerate(clips)]
    if not arrays:
        raise StitchError("no clips to stitch")
    lengths = [len(array) for array in arrays]
    whole, body = positions_to_clip(np.concatenate(arrays))
    parts = _split_clip(whole, lengths)
    joined = stitch(parts, blend_frames, in_place)
    timeline = _timeline(lengths, int(blend_frames))
    joined_body = _Body(_blend_values(body.lengths, timeline), body.rest)
    return clip_to_positions(joined, joined_body).astype(np.float32)


def positions_to_clip(positions: np.ndarray) -> tuple[Clip, _Body]:
    """SMPL-22 positions (T, 22, 3) -> a Clip (root = pelvis) and the body that rebuilds
    the positions exactly (clip_to_positions). Rest directions: the mean over these frames."""
    positions = np.asarray(positions, dtype=np.float64)
    root_rotation = _pelvis_rotation(positions)
    to_root = quat_conj(root_rotation)
    count = len(positions)
    world = np.zeros((count, 22, 4))  # each bone's rotation in the root frame
    world[..., 0] = 1.0
    rotations = world.copy()
    lengths = np.zeros((count, 22))
    rest = np.zeros((22, 3))
    for joint in range(1, 22):  # parents come first
        parent = SMPL22_PARENTS[joint]
        bone = quat_rotate(to_root, positions[:, joint] - positions[:, parent])
        lengths[:, joint] = np.linalg.norm(bone, axis=-1)
        local = quat_rotate(quat_conj(world[:, parent]), _unit(bone))
        rest[joint] = _mean_direction(local)
        local = np.where(lengths[:, joint, None] > _EPS, local, rest[joint])
        rotations[:, joint] = swing(rest[joint], local)
        world[:, joint] = quat_mul(world[:, parent], rotations[:, joint])
    clip = Clip(positions[:, _J["pelvis"]].copy(), make_continuous(root_rotation), make_continuous(rotations))
    return clip, _Body(lengths, rest)


def clip_to_positions(clip: Clip, body: _Body) -> np.ndarray:
    """Forward kinematics: a Clip made by positions_to_clip (or stitched from such clips)
    -> SMPL-22 positions (T, 22, 3)."""
    count = clip.num_frames
    root = quat_mul(clip.root_rotation, clip.rotations[:, 0])
    world = np.empty((count, 22, 4))
    world[:, 0] = [1.0, 0.0, 0.0, 0.0]
    local_points = np.zeros((count, 22, 3))  # in the root frame, pelvis at 0
    for joint in range(1, 22):
        parent = SMPL22_PARENTS[joint]
        world[:, joint] = quat_mul(world[:, parent], clip.rotations[:, joint])
        bone = quat_rotate(world[:, joint], np.broadcast_to(body.rest[joint], (count, 3)))
        local_points[:, joint] = local_points[:, parent] + bone * body.lengths[:, joint, None]
    return clip.root_position[:, None] + quat_rotate(root[:, None], local_points)


def _pelvis_rotation(positions: np.ndarray) -> np.ndarray:
    """(T, 4) rotation taking the rest frame (left +X, up +Y, forward +Z) onto the
    pelvis frame: left = right hip -> left hip, up = pelvis -> spine1 made perpendicular."""
    left = _unit(positions[:, _J["left_hip"]] - positions[:, _J["right_hip"]])
    spine = positions[:, _J["spine1"]] - positions[:, _J["pelvis"]]
    up = _unit(spine - np.sum(spine * left, axis=-1, keepdims=True) * left)
    turn_left = swing(np.array([1.0, 0.0, 0.0]), left)
    turned_up = quat_rotate(turn_left, np.broadcast_to(UP, left.shape))
    # The twist about the left axis that brings the turned up axis onto the pelvis up.
    angle = np.arctan2(np.sum(np.cross(turned_up, up) * left, axis=-1), np.sum(turned_up * up, axis=-1))
    twist = np.concatenate([np.cos(angle / 2)[:, None], np.sin(angle / 2)[:, None] * left], axis=-1)
    return quat_mul(twist, turn_left)


def _mean_direction(directions: np.ndarray) -> np.ndarray:
    mean = directions.mean(axis=0)
    norm = np.linalg.norm(mean)
    return mean / norm if norm > 1e-3 else directions[0]


def _split_clip(clip: Clip, lengths: list[int]) -> list[Clip]:
    cuts = np.cumsum(lengths)[:-1]
    return [Clip(position, rotation, rotations) for position, rotation, rotations in
            zip(np.split(clip.root_position, cuts), np.split(clip.root_rotation, cuts),
                np.split(clip.rotations, cuts))]


def _check_positions(positions, index: int) -> np.ndarray:
    array = np.asarray(positions, dtype=np.float64)
    if array.ndim != 3 or array.shape[1:] != (22, 3):
        raise StitchError(f"clip {index}: positions must be (frames, 22, 3) SMPL-22 joints, got {array.shape}")
    if len(array) == 0:
        raise StitchError(f"clip {index} has no frames")
    if not np.all(np.isfinite(array)):
        raise StitchError(f"clip {index}: positions contain NaN or infinite values")
    hips = np.linalg.norm(array[:, _J["left_hip"]] - array[:, _J["right_hip"]], axis=-1)
    if np.any(hips < 1e-6):
        frame = int(np.argmax(hips < 1e-6))
        raise StitchError(f"clip {index}, frame {frame}: the hips coincide, the body has no facing")
    return array
