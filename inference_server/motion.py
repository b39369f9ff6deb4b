"""The canonical motion type: joint positions (Y-up, metres, +Z forward) plus skeleton.

SMPL-22 (the HumanML3D joint order) is what retrieval consumes; readers convert every
source to it. Quaternions are (w, x, y, z); arrays are float32 in C order.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import numpy as np

from inference_server.errors import DataError

SMPL22_JOINTS: list[str] = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
]
SMPL22_PARENTS: list[int] = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
SMPL22_MIRROR: list[int] = [0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16, 19, 18, 21, 20]

# Unit bone directions of the SMPL-22 rest pose (a T-pose facing +Z, Y up, the body's
# left on +X). Bone lengths come from the data; see Motion.smpl22.
_SMPL22_REST_DIRECTIONS = np.array([
    [0, 0, 0], [1, -0.8, 0], [-1, -0.8, 0], [0, 1, 0], [0, -1, 0], [0, -1, 0], [0, 1, 0],
    [0, -1, 0], [0, -1, 0], [0, 1, 0], [0, -0.3, 1], [0, -0.3, 1], [0, 1, 0],
    [1, 0.3, 0], [-1, 0.3, 0], [0, 1, 0], [1, 0, 0], [-1, 0, 0],
    [1, 0, 0], [-1, 0, 0], [1, 0, 0], [-1, 0, 0],
], dtype=np.float64)


@dataclass
class Skeleton:
    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # (J, 3) metres, rest offset of each joint from its parent

    def __post_init__(self):
        if not (len(self.names) == len(self.parents) == len(self.offsets)):
            raise ValueError(
                f"skeleton has {len(self.names)} names, {len(self.parents)} parents "
                f"and {len(self.offsets)} offsets")
        self.offsets = np.ascontiguousarray(self.offsets, dtype=np.float32)

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def is_smpl22(self) -> bool:
        return self.names == SMPL22_JOINTS

    def mirror_index(self) -> list[int]:
        """Index of each joint's left/right twin (itself for centre joints)."""
        if self.is_smpl22():
            return list(SMPL22_MIRROR)
        lookup = {name: i for i, name in enumerate(self.names)}
        return [lookup.get(mirror_joint_name(name), i) for i, name in enumerate(self.names)]


@dataclass
class Motion:
    positions: np.ndarray  # (T, J, 3) float32 metres, Y-up
    fps: float
    skeleton: Skeleton
    rotations: np.ndarray | None = None  # (T, J, 4) local quaternions wxyz

    def __post_init__(self):
        positions = np.ascontiguousarray(self.positions, dtype=np.float32)
        if positions.ndim != 3 or positions.shape[2] != 3 or positions.shape[1] != self.skeleton.num_joints:
            raise ValueError(f"positions must be (T, {self.skeleton.num_joints}, 3), got {positions.shape}")
        if self.fps <= 0:
            raise ValueError(f"fps must be positive, got {self.fps}")
        self.positions = positions
        self.fps = float(self.fps)
        if self.rotations is not None:
            self.rotations = np.ascontiguousarray(self.rotations, dtype=np.float32)
            if self.rotations.shape != positions.shape[:2] + (4,):
                raise ValueError(f"rotations must be {positions.shape[:2] + (4,)}, got {self.rotations.shape}")

    @property
    def num_frames(self) -> int:
        return int(self.positions.shape[0])

    @property
    def duration(self) -> float:
        """Seconds covered by the frames (num_frames / fps, the HumanML3D convention)."""
        return self.num_frames / self.fps

    def resample(self, fps: float) -> Motion:
        """Same duration at another frame rate: linear on positions, slerp on rotations."""
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if abs(fps - self.fps) < 1e-9:
            return self
        count = max(1, int(round(self.num_frames * fps / self.fps)))
        source = np.minimum(np.arange(count) * (self.fps / fps), self.num_frames - 1)
        lower = np.floor(source).astype(np.int64)
        upper = np.minimum(lower + 1, self.num_frames - 1)
        weight = (source - lower)[:, None, None]
        positions = self.positions[lower] * (1 - weight) + self.positions[upper] * weight
        rotations = None
        if self.rotations is not None:
            rotations = quat_slerp(self.rotations[lower], self.rotations[upper], weight)
        return Motion(positions, fps, self.skeleton, rotations)

    def mirrored(self) -> Motion:
        """Reflect through the body's sagittal plane: x -> -x and swap left/right joints."""
        twin = self.skeleton.mirror_index()
        positions = self.positions[:, twin] * np.array([-1, 1, 1], dtype=np.float32)
        offsets = self.skeleton.offsets[twin] * np.array([-1, 1, 1], dtype=np.float32)
        names = list(self.skeleton.names)
        skeleton = Skeleton(names, list(self.skeleton.parents), offsets)
        rotations = None
        if self.rotations is not None:
            # A rotation reflected through the x = 0 plane keeps w and x, negates y and z.
            rotations = self.rotations[:, twin] * np.array([1, 1, -1, -1], dtype=np.float32)
        return Motion(positions, self.fps, skeleton, rotations)

    def crop(self, start_s: float, end_s: float) -> Motion:
        """Frames [int(start_s*fps), int(end_s*fps)) like HumanML3D's segment cutting."""
        first = max(0, int(start_s * self.fps))
        last = min(self.num_frames, int(end_s * self.fps))
        if last <= first:
            raise DataError(
                f"crop {start_s:.2f}-{end_s:.2f} s is empty for a {self.duration:.2f} s motion")
        rotations = None if self.rotations is None else self.rotations[first:last]
        return Motion(self.positions[first:last], self.fps, self.skeleton, rotations)

    @staticmethod
    def smpl22(positions: np.ndarray, fps: float) -> Motion:
        """Wrap (T, 22, 3) positions; rest offsets: a T-pose with the clip's median bone lengths."""
        positions = np.asarray(positions, dtype=np.float32)
        if positions.ndim != 3 or positions.shape[1:] != (22, 3):
            raise DataError(f"SMPL-22 positions must be (T, 22, 3), got {positions.shape}")
        return Motion(positions, fps, smpl22_skeleton(positions))


def smpl22_skeleton(positions: np.ndarray | None = None) -> Skeleton:
    """SMPL-22 skeleton; bone lengths from the positions when given, else about 1.7 m tall."""
    parents = np.array(SMPL22_PARENTS[1:])
    if positions is not None and len(positions):
        bones = positions[:, 1:] - positions[:, parents]
        lengths = np.median(np.linalg.norm(bones, axis=-1), axis=0)
    else:
        lengths = np.array([0.11, 0.11, 0.11, 0.38, 0.38, 0.14, 0.40, 0.40, 0.06, 0.13, 0.13,
                            0.21, 0.12, 0.12, 0.09, 0.11, 0.11, 0.26, 0.26, 0.25, 0.25])
    directions = _SMPL22_REST_DIRECTIONS[1:] / np.linalg.norm(_SMPL22_REST_DIRECTIONS[1:], axis=1, keepdims=True)
    offsets = np.zeros((22, 3))
    offsets[1:] = directions * lengths[:, None]
    return Skeleton(list(SMPL22_JOINTS), list(SMPL22_PARENTS), offsets)


@dataclass
class MotionItem:
    id: str  # unique within a Dataset (file stem, HumanML3D id, ...)
    name: str  # human readable
    motion: Motion  # SMPL-22, Y-up, metres, source fps
    captions: list[str]  # natural-language captions (may be empty)
    source: str  # file path or "synthetic:..."
    split: str | None = None  # "train" | "val" | "test" | None
    labels: dict = field(default_factory=dict)  # e.g. {"content": "wave-left-hand", "style": "elderly"}

    def mirrored(self) -> MotionItem:
        """HumanML3D-style mirror copy: 'M'-prefixed id, mirrored motion and captions."""
        return replace(self, id="M" + self.id, name=mirror_caption(self.name) + " (mirrored)",
                       motion=self.motion.mirrored(),
                       captions=[mirror_caption(text) for text in self.captions])


# "left"/"right" as words or word starts (leftward, left-handed) and the turning senses;
# "right now", "right away" and "all right" are not sides, "upright" is not a word start.
_SIDE_WORDS = re.compile(
    r"(?<![a-z])(left|right(?!\s+(?:now|away)\b)|counterclockwise|anticlockwise|clockwise)",
    re.IGNORECASE)
_SIDE_SWAP = {"left": "right", "right": "left", "clockwise": "counterclockwise",
              "counterclockwise": "clockwise", "anticlockwise": "clockwise"}
# Side markers in joint names: Left/Right anywhere, or a lone L/R token (Hand_L, L_Hand, hand.l).
_NAME_SIDES = re.compile(r"Left|Right|LEFT|RIGHT|left|right|(?<![A-Za-z])[LRlr](?![a-z])")


def mirror_caption(text: str) -> str:
    """Swap left/right (and clockwise/counterclockwise) words, keeping their case."""
    def swap(match: re.Match) -> str:
        word = match.group(0)
        if word.lower() == "right" and _preceded_by_all(text, match.start()):
            return word
        return _same_case(_SIDE_SWAP[word.lower()], word)
    return _SIDE_WORDS.sub(swap, text)


def mirror_joint_name(name: str) -> str:
    """The name of a joint's left/right twin by the usual naming schemes (LeftArm, Hand_L)."""
    def swap(match: re.Match) -> str:
        word = match.group(0)
        if len(word) == 1:
            return {"L": "R", "R": "L", "l": "r", "r": "l"}[word]
        return _same_case(_SIDE_SWAP[word.lower()], word)
    return _NAME_SIDES.sub(swap, name)


def _preceded_by_all(text: str, start: int) -> bool:
    return text[:start].rstrip().lower().endswith("all")


def _same_case(word: str, model: str) -> str:
    if model.isupper():
        return word.upper()
    if model[0].isupper():
        return word[0].upper() + word[1:]
    return word


# ---- quaternions (w, x, y, z), vectorised over leading axes; product and rotation: bridge/quaternions.py ----

def quat_from_axis_angle(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Unit axis (..., 3) or (3,), angle in radians (...,) -> quaternions (..., 4)."""
    half = np.asarray(angle, dtype=np.float64)[..., None] / 2
    axis = np.broadcast_to(np.asarray(axis, dtype=np.float64), half.shape[:-1] + (3,))
    return np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1)


def quat_slerp(a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Spherical interpolation a -> b; weight broadcasts against (..., 1)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    dot = np.sum(a * b, axis=-1, keepdims=True)
    b = np.where(dot < 0, -b, b)  # take the short way round
    dot = np.clip(np.abs(dot), 0.0, 1.0)
    theta = np.arccos(dot)
    sin_theta = np.sin(theta)
    small = sin_theta < 1e-6
    safe = np.where(small, 1.0, sin_theta)
    wa = np.where(small, 1 - weight, np.sin((1 - weight) * theta) / safe)
    wb = np.where(small, weight, np.sin(weight * theta) / safe)
    out = wa * a + wb * b
    return out / np.linalg.norm(out, axis=-1, keepdims=True)
