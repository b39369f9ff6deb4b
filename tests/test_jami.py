"""JAMI layout: body parts, patch mapping, crop/pad, angle statistics, model input."""
import json

import numpy as np
import pytest

from inference_server.angles import CHANNELS
from inference_server.errors import DataError
from inference_server.jami import (BAND, BODY_PARTS, FPS, FRAMES, LAYOUT, NUM_PATCHES, PART_CHANNEL_INDEX,
                                   PART_DOF, PART_NAMES, PATCH_WINDOWS, WINDOWS, AngleStats, covered_windows,
                                   crop_or_pad, fixed_jami_image, jami_input, windows_of_frames)
from inference_server.motion import SMPL22_PARENTS, Motion, smpl22_skeleton


def t_pose() -> np.ndarray:
    """(22, 3) rest T-pose of the default SMPL-22 skeleton, pelvis 0.9 m up."""
    offsets = smpl22_skeleton().offsets
    pose = np.zeros((22, 3), dtype=np.float32)
    pose[0] = [0, 0.9, 0]
    for joint in range(1, 22):
        pose[joint] = pose[SMPL22_PARENTS[joint]] + offsets[joint]
    return pose


def test_parts_follow_the_paper_order_and_cover_every_channel_once():
    assert PART_NAMES == ["global", "pelvis", "r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle",
                          "lumbar", "neck", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow"]
    assert PART_DOF == [3, 3, 3, 3, 1, 1, 1, 1, 3, 2, 3, 3, 1, 1]
    assert sorted(i for indices in PART_CHANNEL_INDEX for i in indices) == list(range(29))
    for (name, channels), indices in zip(BODY_PARTS, PART_CHANNEL_INDEX):
        assert [CHANNELS[i] for i in indices] == channels


def test_constants():
    assert (FRAMES, BAND, FPS, WINDOWS, NUM_PATCHES) == (224, 16, 20, 14, 196)
    assert LAYOUT.num_patches == NUM_PATCHES


def test_patch_mapping_round_trip():
    seen = set()
    for patch in range(NUM_PATCHES):
        window, part = LAYOUT.window(patch), LAYOUT.part(patch)
        assert LAYOUT.patch(window, part) == patch
        seen.add((window, part))
    assert len(seen) == 196
    assert LAYOUT.patch(1, 0) == 14 and LAYOUT.part(15) == 1 and LAYOUT.window(15) == 1
    assert LAYOUT.seconds(0) == (0.0, 0.8)
    assert LAYOUT.seconds(13) == pytest.approx((10.4, 11.2))
    with pytest.raises(IndexError):
        LAYOUT.part(196)
    with pytest.raises(IndexError):
        LAYOUT.patch(14, 0)


def test_patch_mapping_matches_the_image_pixels():
    # The pixel block of (window, part) in the picture is what timm's patch index covers.
    image = np.zeros((224, 224))
    for window in range(WINDOWS):
        for part in range(len(PART_NAMES)):
            image[window * 16:(window + 1) * 16, part * 16:(part + 1) * 16] = LAYOUT.patch(window, part)
    patches = image.reshape(14, 16, 14, 16).transpose(0, 2, 1, 3).reshape(196, 256)
    assert np.array_equal(patches[:, 0], np.arange(196))


def test_crop_or_pad_short_motion_is_zero_padded():
    angles = np.ones((50, 29), dtype=np.float32)
    out, valid = crop_or_pad(angles)
    assert out.shape == (224, 29) and out.dtype == np.float32 and valid == 50
    assert np.all(out[:50] == 1) and np.all(out[50:] == 0)


def test_crop_or_pad_long_motion_first_window_or_random_crop():
    angles = np.arange(300, dtype=np.float32)[:, None].repeat(29, axis=1)
    first, valid = crop_or_pad(angles)
    assert valid == 224 and first[0, 0] == 0 and first[-1, 0] == 223
    rng = np.random.default_rng(3)
    starts = {int(crop_or_pad(angles, rng)[0][0, 0]) for _ in range(20)}
    assert len(starts) > 5 and min(starts) >= 0 and max(starts) <= 76
    crop = crop_or_pad(angles, np.random.default_rng(1))[0]
    assert np.array_equal(np.diff(crop[:, 0]), np.ones(223))
    with pytest.raises(DataError):
        crop_or_pad(np.zeros((10, 28)))


def test_angle_stats_compute_normalize_and_json_round_trip():
    rng = np.random.default_rng(0)
    arrays = [rng.normal(5, 3, (n, 29)) for n in (7, 40, 113)]
    for array in arrays:
        array[:, 0] = 2.0   # a constant channel: std floored, never a division by zero
    stats = AngleStats.compute(arrays)
    everything = np.concatenate(arrays)
    assert np.allclose(stats.mean, everything.mean(axis=0), atol=1e-4)
    assert np.allclose(stats.std[1:], everything.std(axis=0)[1:], atol=1e-4)
    assert stats.std[0] == pytest.approx(0.01)
    normalised = stats.normalize(everything)
    assert normalised.dtype == np.float32 and np.isfinite(normalised).all()
    assert np.allclose(normalised[:, 1:].mean(axis=0), 0, atol=1e-3)
    restored = AngleStats.from_dict(json.loads(json.dumps(stats.to_dict())))
    assert np.array_equal(restored.mean, stats.mean) and np.array_equal(restored.std, stats.std)
    with pytest.raises(DataError, match="other channels"):
        AngleStats.from_dict({**stats.to_dict(), "channels": CHANNELS[::-1]})
    with pytest.raises(DataError):
        AngleStats.compute([np.zeros((0, 29))])
    with pytest.raises(DataError, match="array 1 has shape"):
        AngleStats.compute([arrays[0], np.zeros((5, 28))])


def test_jami_input_of_a_motion():
    positions = np.repeat(t_pose()[None], 90, axis=0)   # 3 s at 30 fps
    stats = AngleStats(np.zeros(29), np.ones(29))
    image_input, valid = jami_input(Motion.smpl22(positions, 30), stats)
    assert image_input.shape == (224, 29) and valid == 60
    assert image_input[0, CHANNELS.index("root_y")] == pytest.approx(0.9, abs=1e-5)
    assert np.all(image_input[60:] == 0)


def test_fixed_jami_image_repeats_each_part_across_its_band():
    angles = np.tile(np.arange(29, dtype=np.float32), (224, 1))
    image = fixed_jami_image(angles)
    assert image.shape == (224, 224)
    for part, indices in enumerate(PART_CHANNEL_INDEX):
        band = image[0, part * 16:(part + 1) * 16]
        assert set(band.tolist()) == {float(i) for i in indices}
        assert band[0] == indices[0] and band[-1] == indices[-1]


def test_covered_windows():
    assert covered_windows(0.01) == 1 and covered_windows(0.8) == 1 and covered_windows(0.85) == 2
    assert covered_windows(11.2) == 14 and covered_windows(60.0) == 14
    np.testing.assert_array_equal(windows_of_frames(np.array([0, 1, 16, 17, 224])), [0, 1, 1, 2, 14])
    assert [LAYOUT.window(patch) for patch in range(NUM_PATCHES)] == PATCH_WINDOWS.tolist()


@pytest.mark.parametrize("frames", [1, 15, 16, 17, 41, 223, 224, 300])
def test_windows_a_motion_fills_by_its_duration_are_those_its_jami_fills(frames):
    """The one count of filled windows (explain, the index, the model's padding mask): the
    windows holding the JAMI's valid frames."""
    positions = np.repeat(t_pose()[None], frames, axis=0)
    motion = Motion.smpl22(positions, FPS)
    image_input, valid = jami_input(motion, AngleStats(np.zeros(29), np.ones(29)))
    assert covered_windows(motion.duration) == windows_of_frames(valid)
    assert np.any(image_input[(windows_of_frames(valid) - 1) * BAND:] != 0)
