"""blender_addon/clips.py without Blender: a `motion` reply as SMPL-22 positions, and the
clips of a sequence resampled to the scene's fps and joined (bridge.stitch) into one motion."""
from __future__ import annotations

import numpy as np
import pytest

from blender_addon import clips
from blender_addon.bonemap import JOINT_INDEX, SMPL22_JOINTS
from blender_addon.errors import AddonError
from inference_server.data.synthetic import motion_for

SCENE_FPS = 30.0


def reply_of(positions: np.ndarray, up: str = "Y") -> tuple[dict, dict]:
    return {"joints": list(SMPL22_JOINTS), "parents": [], "fps": 20.0, "up": up}, {"positions": positions}


def test_a_z_up_motion_comes_back_y_up():
    y_up = motion_for(["walk"], seed=2, seconds=1.0).positions
    z_up = np.stack([y_up[..., 0], -y_up[..., 2], y_up[..., 1]], axis=-1).astype(np.float32)
    assert np.allclose(clips.smpl_positions(*reply_of(z_up, "Z")), y_up, atol=1e-6)
    assert np.array_equal(clips.smpl_positions(*reply_of(y_up)), y_up.astype(np.float64))


def test_another_skeleton_is_refused():
    result, arrays = reply_of(np.zeros((5, 22, 3), np.float32))
    result["joints"] = result["joints"][:21]
    with pytest.raises(AddonError, match="21-joint skeleton; SMPL-22 is needed"):
        clips.smpl_positions(result, arrays)


@pytest.fixture(scope="module")
def parts() -> list[tuple[np.ndarray, float]]:
    """walk (20 fps), wave (30 fps) and sit down (20 fps): as three fetched motions."""
    walk = motion_for(["walk"], seed=1, seconds=3.0)
    wave = motion_for(["wave_right"], seed=1, seconds=2.0).resample(30.0)
    sit = motion_for(["sit_down"], seed=1, seconds=3.0)
    return [(clip.positions.astype(np.float64), clip.fps) for clip in (walk, wave, sit)]


def test_the_clips_are_resampled_then_joined_with_blends(parts):
    joined = clips.stitched_positions(parts, SCENE_FPS, 8, in_place=False)
    lengths = [round(len(positions) / fps * SCENE_FPS) for positions, fps in parts]
    assert lengths == [90, 60, 90]
    assert joined.shape == (sum(lengths) - 2 * 8, 22, 3)
    first = parts[0][0]
    # Frame 30 at 30 fps is frame 20 of the 20 fps walk: before the first blend, the walk as it was.
    assert np.abs(joined[30] - first[20]).max() < 1e-4


def test_joins_keep_the_root_continuous(parts):
    joined = clips.stitched_positions(parts, SCENE_FPS, 8, in_place=False)
    pelvis = joined[:, JOINT_INDEX["pelvis"]]
    # Second differences: how far the root lands from where its last step would take it.
    jumps = np.linalg.norm(pelvis[2:] - 2 * pelvis[1:-1] + pelvis[:-2], axis=-1)  # jumps[f - 1]: frame f
    for start in (90 - 8, 90 - 8 + 60 - 8):  # where the wave and the sit-down start blending in
        assert jumps[start - 2:start + 8].max() < 0.01
    assert len(clips.stitched_positions(parts, SCENE_FPS, 0, in_place=False)) == 240  # a hard cut: no overlap


def test_in_place_keeps_the_hips_over_the_start(parts):
    joined = clips.stitched_positions(parts, SCENE_FPS, 8, in_place=True)
    pelvis = joined[:, JOINT_INDEX["pelvis"]]
    assert np.abs(pelvis[:, [0, 2]] - pelvis[0, [0, 2]]).max() < 1e-6
    travelled = clips.stitched_positions(parts, SCENE_FPS, 8, in_place=False)[:, JOINT_INDEX["pelvis"]]
    assert np.linalg.norm(travelled[-1, [0, 2]] - travelled[0, [0, 2]]) > 1.0  # the walk went somewhere


def test_what_cannot_be_joined_is_said_in_one_line(parts):
    with pytest.raises(AddonError, match="a sequence needs two clips or more, got 1"):
        clips.stitched_positions(parts[:1], SCENE_FPS, 8, False)
    broken = parts[1][0].copy()
    broken[3, 5] = np.nan
    with pytest.raises(AddonError, match="cannot join the clips of the sequence: clip 1: positions contain NaN"):
        clips.stitched_positions([parts[0], (broken, parts[1][1])], SCENE_FPS, 8, False)
    with pytest.raises(AddonError, match="blend_frames must be an integer >= 0"):
        clips.stitched_positions(parts, SCENE_FPS, -1, False)
