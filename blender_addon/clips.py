"""Fetched motions as the retarget takes them, and a sequence of them joined into one
(numpy only; the operators, the reply handlers and the batch job share these).

A sequence is applied as ONE new action: every segment's clip is resampled to the scene's
frame rate, joined by bridge.stitch.stitch_positions (crossfades over `blend_frames`
frames, each segment starting where the last ended with its facing carried over,
optionally in place), then retargeted once.
"""
from __future__ import annotations

import numpy as np

from .bonemap import SMPL22_JOINTS
from .errors import AddonError
from .retarget_solver import resample
from .wire import StitchError, stitch_positions


def smpl_positions(result: dict, arrays: dict) -> np.ndarray:
    """A `motion` reply -> SMPL-22 positions (T, 22, 3), Y-up metres."""
    joints = result.get("joints", [])
    if list(joints) != SMPL22_JOINTS:
        raise AddonError(f"the server sent a {len(joints)}-joint skeleton; SMPL-22 is needed")
    positions = np.asarray(arrays["positions"], dtype=np.float64)
    if result.get("up", "Y") == "Z":  # Z-up (x, y, z) -> Y-up (x, z, -y)
        positions = positions[..., [0, 2, 1]] * np.array([1.0, 1.0, -1.0])
    return positions


def stitched_positions(parts: list[tuple[np.ndarray, float]], fps: float, blend_frames: int,
                       in_place: bool) -> np.ndarray:
    """The clips (positions (T_k, 22, 3) Y-up, their fps) of a sequence, in order, joined
    into one motion (T, 22, 3) at `fps`."""
    if len(parts) < 2:
        raise AddonError(f"a sequence needs two clips or more, got {len(parts)}")
    resampled = [resample(positions, clip_fps, fps) for positions, clip_fps in parts]
    try:
        return stitch_positions(resampled, int(blend_frames), in_place)
    except StitchError as error:
        raise AddonError(f"cannot join the clips of the sequence: {error}") from None
