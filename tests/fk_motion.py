"""A forward-kinematics source motion for the retarget tests (plain numpy + scipy, no bpy)."""
from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from blender_addon.bonemap import SMPL22_PARENTS

# A T-pose skeleton in the source convention (Y up, facing +Z, left +X), offsets from parents.
REST_OFFSETS = np.array([
    [0, 0.93, 0], [0.07, -0.09, 0], [-0.07, -0.09, 0], [0, 0.11, -0.02], [0.03, -0.40, 0],
    [-0.03, -0.40, 0], [0, 0.13, 0.02], [-0.01, -0.42, -0.04], [0.01, -0.42, -0.04], [0, 0.06, 0],
    [0.03, -0.06, 0.12], [-0.03, -0.06, 0.12], [0, 0.21, -0.03], [0.08, 0.12, -0.01],
    [-0.08, 0.12, -0.01], [0, 0.09, 0.05], [0.12, 0.04, -0.01], [-0.12, 0.04, -0.01],
    [0.26, 0, 0], [-0.26, 0, 0], [0.25, 0, 0], [-0.25, 0, 0]])


def fk_motion(frames: int = 50, fps: float = 20.0, seed: int = 0, amplitude: float = 0.7) -> np.ndarray:
    """(frames, 22, 3) Y-up positions: every joint turns smoothly about random axes, the
    body walks forward (+Z) and turns."""
    rng = np.random.default_rng(seed)
    time = np.arange(frames) / fps
    frequency = rng.uniform(0.3, 1.2, (22, 3))
    phase = rng.uniform(0, 2 * np.pi, (22, 3))
    size = rng.uniform(-amplitude, amplitude, (22, 3))
    rotvec = size * np.sin(2 * np.pi * frequency * time[:, None, None] + phase)
    rotvec[:, 0] *= 0.3
    rotvec[:, 0, 1] += 0.6 * time
    positions = np.zeros((frames, 22, 3))
    world = [None] * 22
    for joint, parent in enumerate(SMPL22_PARENTS):
        local = Rotation.from_rotvec(rotvec[:, joint])
        if parent < 0:
            world[joint] = local
            positions[:, 0] = REST_OFFSETS[0] + np.stack([0.1 * time, 0.05 * np.sin(3 * time), 0.8 * time], 1)
        else:
            world[joint] = world[parent] * local
            positions[:, joint] = positions[:, parent] + world[parent].apply(REST_OFFSETS[joint])
    return positions.astype(np.float32)
