"""Posture jitter: a training augmentation against the posture and rig differences between
data sources.

The same action gives joint angles that differ by a constant offset from one source to the
next: actors stand with soft knees and bent elbows (the generator's body stands straight),
and rigs put joints in different places (SMPL's head joint sits in front of the neck, so a
straight head reads as about 30 degrees of neck flexion; most mocap rigs put it above the
neck). A model trained on one source learns those offsets as if they were the action. Each
training sample gets one constant offset per channel for the whole clip, drawn from the
ranges below (left and right share most of it: the posture is the body's, not a side's), so
the model has to read the motion, not the resting angles.
"""
from __future__ import annotations

import numpy as np

from inference_server.angles import CHANNELS

# channel (both sides for "?_" names) -> (low, high) degrees of the offset common to both
# sides, and the spread (+-degrees) drawn for each side on top of it.
RANGES: dict[str, tuple[float, float, float]] = {
    "pelvis_tilt": (-8, 8, 0), "pelvis_list": (-3, 3, 0),
    "?_hip_flexion": (-8, 8, 2), "?_hip_adduction": (-4, 4, 2), "?_hip_rotation": (-10, 10, 3),
    "?_knee_flexion": (-3, 15, 3), "?_ankle_angle": (-8, 8, 2),
    "lumbar_extension": (-12, 12, 0), "lumbar_bending": (-3, 3, 0), "lumbar_rotation": (-4, 4, 0),
    "neck_flexion": (-25, 25, 0), "neck_adduction": (-4, 4, 0),
    "?_shoulder_flexion": (-12, 12, 3), "?_shoulder_adduction": (-8, 8, 2), "?_shoulder_rotation": (-15, 15, 4),
    "?_elbow_flexion": (-5, 15, 3),
}


def _table() -> list[tuple[int, ...]]:
    """(common low, high, side spread, channel indices) per row of RANGES."""
    rows = []
    for name, (low, high, spread) in RANGES.items():
        names = [name.replace("?", side) for side in ("r", "l")] if name.startswith("?_") else [name]
        rows.append((low, high, spread, [CHANNELS.index(channel) for channel in names]))
    return rows


_TABLE = _table()


def posture_offsets(rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """(29,) degrees to add to every frame of one clip's angles (root channels get 0)."""
    offsets = np.zeros(len(CHANNELS))
    for low, high, spread, indices in _TABLE:
        common = rng.uniform(low, high)
        for index in indices:
            offsets[index] = common + (rng.uniform(-spread, spread) if spread else 0.0)
    return offsets * scale


def jitter_window(window: np.ndarray, valid: int, offsets: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Add `offsets` (degrees) to the valid frames of a z-scored (224, 29) window (in place);
    the zero padding after them stays the mean pose, as at inference."""
    window[:valid] += (offsets / std).astype(window.dtype)
    return window
