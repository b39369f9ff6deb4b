"""Posture jitter (inference_server/posture_jitter.py): per-clip constant offsets, in range,
shared by both sides, never on the root channels or the padding, and wired into training."""
from __future__ import annotations

import numpy as np

from inference_server.angles import CHANNELS
from inference_server.posture_jitter import RANGES, jitter_window, posture_offsets
from inference_server.train import TrainingItem, sample_batch

ROOT = [CHANNELS.index(name) for name in ("root_x", "root_y", "root_z", "pelvis_rotation")]


def test_offsets_stay_in_their_ranges_and_leave_the_root_alone():
    rng = np.random.default_rng(0)
    draws = np.stack([posture_offsets(rng) for _ in range(2000)])
    assert np.all(draws[:, ROOT] == 0)
    for name, (low, high, spread) in RANGES.items():
        for channel in ([name.replace("?", side) for side in "rl"] if name.startswith("?_") else [name]):
            column = draws[:, CHANNELS.index(channel)]
            assert low - spread - 1e-9 <= column.min() and column.max() <= high + spread + 1e-9
            assert column.max() - column.min() > 0.8 * (high - low)  # the whole range is used


def test_both_sides_share_the_common_part():
    draws = np.stack([posture_offsets(np.random.default_rng(seed)) for seed in range(500)])
    right, left = draws[:, CHANNELS.index("r_knee_flexion")], draws[:, CHANNELS.index("l_knee_flexion")]
    assert np.all(np.abs(right - left) <= 2 * RANGES["?_knee_flexion"][2] + 1e-9)
    assert np.corrcoef(right, left)[0, 1] > 0.8


def test_scale_zero_is_no_offset_and_scale_multiplies():
    assert not posture_offsets(np.random.default_rng(1), 0.0).any()
    np.testing.assert_allclose(posture_offsets(np.random.default_rng(1), 2.0), 2 * posture_offsets(np.random.default_rng(1)))


def test_only_the_valid_frames_move():
    window = np.zeros((224, len(CHANNELS)), dtype=np.float32)
    offsets = posture_offsets(np.random.default_rng(2))
    std = np.full(len(CHANNELS), 10.0, dtype=np.float32)
    jitter_window(window, 100, offsets, std)
    np.testing.assert_allclose(window[:100], np.tile(offsets / 10.0, (100, 1)), atol=1e-6)
    assert not window[100:].any()


def test_sample_batch_applies_it_per_clip():
    views = [np.zeros((50, len(CHANNELS)), dtype=np.float32)]
    items = [TrainingItem(views, [["a person walks"]], None) for _ in range(4)]
    std = np.ones(len(CHANNELS), dtype=np.float32)
    plain, _, _ = sample_batch(items, [0, 1, 2, 3], np.random.default_rng(3), 0.0)
    jittered, _, _ = sample_batch(items, [0, 1, 2, 3], np.random.default_rng(3), 0.0, (1.0, std))
    assert not plain.any()
    knee = CHANNELS.index("r_knee_flexion")
    assert len(set(np.round(jittered[:, 0, knee], 4))) == 4  # each clip its own offset...
    assert np.all(jittered[:, :50, knee] == jittered[:, :1, knee])  # ...constant over the clip
    assert not jittered[:, 50:].any()
