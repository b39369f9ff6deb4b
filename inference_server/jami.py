"""JAMI: the joint-angle motion image layout (rows = time, column bands = body parts).

A 224-frame (11.2 s at 20 fps) window of z-scored joint angles. Each of the 14 body
parts becomes a 16 px band (the model's learned Linear(dof -> 16); `fixed_jami_image`
draws a fixed stand-in for pictures), so a 16 px ViT sees 14 time windows x 14 parts =
196 patches, patch = window * 14 + part in timm's row-major order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference_server.angles import CHANNELS, motion_angles
from inference_server.errors import DataError

BODY_PARTS: list[tuple[str, list[str]]] = [
    ("global", ["root_x", "root_y", "root_z"]),
    ("pelvis", ["pelvis_tilt", "pelvis_list", "pelvis_rotation"]),
    ("r_hip", ["r_hip_flexion", "r_hip_adduction", "r_hip_rotation"]),
    ("l_hip", ["l_hip_flexion", "l_hip_adduction", "l_hip_rotation"]),
    ("r_knee", ["r_knee_flexion"]),
    ("l_knee", ["l_knee_flexion"]),
    ("r_ankle", ["r_ankle_angle"]),
    ("l_ankle", ["l_ankle_angle"]),
    ("lumbar", ["lumbar_extension", "lumbar_bending", "lumbar_rotation"]),
    ("neck", ["neck_flexion", "neck_adduction"]),
    ("r_shoulder", ["r_shoulder_flexion", "r_shoulder_adduction", "r_shoulder_rotation"]),
    ("l_shoulder", ["l_shoulder_flexion", "l_shoulder_adduction", "l_shoulder_rotation"]),
    ("r_elbow", ["r_elbow_flexion"]),
    ("l_elbow", ["l_elbow_flexion"]),
]
PART_NAMES: list[str] = [name for name, _ in BODY_PARTS]
PART_DOF: list[int] = [len(channels) for _, channels in BODY_PARTS]
PART_CHANNEL_INDEX: list[list[int]] = [[CHANNELS.index(c) for c in channels] for _, channels in BODY_PARTS]

FRAMES = 224
BAND = 16
FPS = 20
WINDOWS = FRAMES // BAND
NUM_PATCHES = WINDOWS * len(BODY_PARTS)

# Standard deviation floors: a constant channel must not blow up when z-scored.
_STD_FLOOR_METRES = 0.01
_STD_FLOOR_DEGREES = 1.0
_METRE_CHANNELS = ("root_x", "root_y", "root_z")


@dataclass(frozen=True)
class PatchLayout:
    """Maps ViT patch indices to (time window, body part) and windows to seconds."""
    parts: int = len(BODY_PARTS)
    windows: int = WINDOWS
    band: int = BAND
    fps: int = FPS

    @property
    def num_patches(self) -> int:
        return self.parts * self.windows

    def part(self, patch: int) -> int:
        self._check_patch(patch)
        return patch % self.parts

    def window(self, patch: int) -> int:
        self._check_patch(patch)
        return patch // self.parts

    def patch(self, window: int, part: int) -> int:
        if not (0 <= window < self.windows and 0 <= part < self.parts):
            raise IndexError(f"window {window} / part {part} outside {self.windows} x {self.parts}")
        return window * self.parts + part

    def seconds(self, window: int) -> tuple[float, float]:
        """Start and end time (s) of a window's frames."""
        if not 0 <= window < self.windows:
            raise IndexError(f"window {window} outside 0..{self.windows - 1}")
        return window * self.band / self.fps, (window + 1) * self.band / self.fps

    def _check_patch(self, patch: int) -> None:
        if not 0 <= patch < self.num_patches:
            raise IndexError(f"patch {patch} outside 0..{self.num_patches - 1}")


LAYOUT = PatchLayout()
PATCH_WINDOWS = np.arange(NUM_PATCHES) // len(BODY_PARTS)  # the time window of each patch, in LAYOUT order


def windows_of_frames(frames):
    """Time windows holding a JAMI's first `frames` frames, ceil(frames / 16): of an int, or
    elementwise of an integer numpy or torch array (the rest of the 14 windows is padding)."""
    return (frames + BAND - 1) // BAND


def covered_windows(duration: float) -> int:
    """Windows (1..14) holding at least one frame of a motion lasting `duration` seconds, its
    frames counted as Motion.resample(20 fps) makes them and cropped to the JAMI's 224."""
    return windows_of_frames(min(FRAMES, max(1, round(duration * FPS))))


def crop_or_pad(angles: np.ndarray, rng: np.random.Generator | None = None) -> tuple[np.ndarray, int]:
    """(T, 29) normalised angles -> ((224, 29) float32, valid frames).

    With rng: a random 224-frame crop (training); without: the first 224 frames. Shorter
    motions are zero-padded at the end, which after z-scoring means "the mean pose".
    """
    angles = np.asarray(angles, dtype=np.float32)
    if angles.ndim != 2 or angles.shape[1] != len(CHANNELS):
        raise DataError(f"JAMI needs (T, {len(CHANNELS)}) angles, got {angles.shape}")
    length = angles.shape[0]
    start = 0
    if rng is not None and length > FRAMES:
        start = int(rng.integers(0, length - FRAMES + 1))
    valid = min(length, FRAMES)
    out = np.zeros((FRAMES, len(CHANNELS)), dtype=np.float32)
    out[:valid] = angles[start:start + valid]
    return out, valid


@dataclass
class AngleStats:
    """Per-channel dataset mean and standard deviation for z-scoring joint angles."""
    mean: np.ndarray  # (29,)
    std: np.ndarray  # (29,), already floored

    def __post_init__(self):
        self.mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        self.std = np.maximum(np.asarray(self.std, dtype=np.float32).reshape(-1), _std_floor())
        if self.mean.shape != (len(CHANNELS),) or self.std.shape != (len(CHANNELS),):
            raise DataError(f"angle stats need {len(CHANNELS)} means and stds, "
                            f"got {self.mean.shape} and {self.std.shape}")
        if not (np.isfinite(self.mean).all() and np.isfinite(self.std).all()):
            raise DataError("angle stats contain NaN or infinite values")

    def normalize(self, angles: np.ndarray) -> np.ndarray:
        return ((np.asarray(angles, dtype=np.float32) - self.mean) / self.std).astype(np.float32)

    def to_dict(self) -> dict:
        return {"channels": list(CHANNELS), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> AngleStats:
        channels = data.get("channels", CHANNELS)
        if list(channels) != CHANNELS:
            raise DataError("angle stats were computed for other channels: "
                            f"{list(channels)[:3]}... instead of {CHANNELS[:3]}...")
        try:
            return cls(np.array(data["mean"], dtype=np.float32), np.array(data["std"], dtype=np.float32))
        except (KeyError, TypeError, ValueError) as error:
            raise DataError(f"angle stats are malformed: {error}") from None

    @classmethod
    def compute(cls, arrays: list[np.ndarray]) -> AngleStats:
        """Mean/std over all frames of all (T, 29) arrays (Chan's pairwise update, float64)."""
        count, mean, squares = 0, np.zeros(len(CHANNELS)), np.zeros(len(CHANNELS))
        for index, array in enumerate(arrays):
            array = np.asarray(array, dtype=np.float64)
            if array.ndim != 2 or array.shape[1] != len(CHANNELS):
                raise DataError(f"angle stats: array {index} has shape {array.shape}, "
                                f"expected (T, {len(CHANNELS)})")
            if not len(array):
                continue
            n = len(array)
            batch_mean = array.mean(axis=0)
            batch_squares = ((array - batch_mean) ** 2).sum(axis=0)
            delta = batch_mean - mean
            total = count + n
            mean = mean + delta * n / total
            squares = squares + batch_squares + delta ** 2 * count * n / total
            count = total
        if count == 0:
            raise DataError("cannot compute angle stats from no frames")
        return cls(mean, np.sqrt(squares / count))


def _std_floor() -> np.ndarray:
    return np.array([_STD_FLOOR_METRES if c in _METRE_CHANNELS else _STD_FLOOR_DEGREES
                     for c in CHANNELS], dtype=np.float32)


def jami_input(motion, stats: AngleStats, rng: np.random.Generator | None = None) -> tuple[np.ndarray, int]:
    """A Motion -> ((224, 29) float32 z-scored angles at 20 fps, valid frames)."""
    return crop_or_pad(stats.normalize(motion_angles(motion)), rng)


def _band_columns() -> np.ndarray:
    """For each of the 224 image columns, the channel it shows (channels split a band evenly)."""
    columns = []
    for indices in PART_CHANNEL_INDEX:
        for pixel in range(BAND):
            columns.append(indices[pixel * len(indices) // BAND])
    return np.array(columns)


_BAND_COLUMNS = _band_columns()


def fixed_jami_image(angles: np.ndarray) -> np.ndarray:
    """(224, 29) normalised angles -> (224, 224) float32 picture: each part's channels
    repeated across its 16 px band (for pictures; the model learns its own projection)."""
    angles = np.asarray(angles, dtype=np.float32)
    if angles.ndim != 2 or angles.shape[1] != len(CHANNELS):
        raise DataError(f"JAMI image needs (T, {len(CHANNELS)}) angles, got {angles.shape}")
    return np.ascontiguousarray(angles[:, _BAND_COLUMNS])
