"""Synthetic generator: determinism, independence of N, anatomical sides, kinematics, speed."""
import collections
import time

import numpy as np
import pytest

from inference_server.data import load_spec
from inference_server.data.kinematics import facing_angle
from inference_server.data.synthetic import make_item, motion_for, parse_arg
from inference_server.data.synthetic_actions import LIBRARY
from inference_server.errors import DataError
from inference_server.motion import SMPL22_JOINTS, SMPL22_PARENTS, mirror_caption

J = {name: i for i, name in enumerate(SMPL22_JOINTS)}


def test_same_spec_gives_identical_items():
    first, second = load_spec("synthetic:6:11"), load_spec("synthetic:6:11")
    for a, b in zip(first.items, second.items):
        assert a.id == b.id and a.captions == b.captions and a.split == b.split
        np.testing.assert_array_equal(a.motion.positions, b.motion.positions)
    other = load_spec("synthetic:6:12").items
    assert not np.array_equal(first.items[0].motion.positions[:10], other[0].motion.positions[:10])


def test_item_i_does_not_depend_on_n():
    small, large = load_spec("synthetic:4:7").items, load_spec("synthetic:9:7").items
    for a, b in zip(small, large):
        assert a.captions == b.captions and a.split == b.split
        np.testing.assert_array_equal(a.motion.positions, b.motion.positions)
    assert large[8].id == make_item(8, 7).id == "synthetic_7_000008"


def test_clips_are_plausible_smpl22_motions():
    for index in range(40):
        item = make_item(index, 1)
        p = item.motion.positions
        assert item.motion.fps == 20.0 and 2.0 - 0.05 <= item.motion.duration <= 10.0 + 0.05
        assert np.isfinite(p).all() and p.dtype == np.float32
        bones = np.linalg.norm(p[:, 1:] - p[:, SMPL22_PARENTS[1:]], axis=-1)
        assert bones.std(axis=0).max() < 1e-4, item.name  # rigid skeleton
        lowest = p[:, [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]], 1].min(axis=1)
        assert lowest.min() > -1e-4 and np.median(lowest) < 0.03, item.name  # a foot on the floor
        assert abs(np.degrees(facing_angle(p[0]))) < 1.0 and p[0, J["left_hip"], 0] > 0
        assert len(item.captions) >= 3 and len(set(item.captions)) == len(item.captions)


def test_caption_sides_match_the_actions():
    for index in range(150):
        item = make_item(index, 2)
        keys = " ".join(item.labels["actions"])
        text = " ".join(item.captions)
        for side in ("left", "right"):
            if f"_{side}" not in keys:
                assert side not in text, (keys, text)
            else:
                assert side in text


def arm_heights(keys):
    p = motion_for(keys, seed=4).positions
    return p[:, J["left_wrist"], 1].max() - p[:, J["head"], 1].max(), \
        p[:, J["right_wrist"], 1].max() - p[:, J["head"], 1].max()


@pytest.mark.parametrize("side", ["left", "right"])
def test_arm_actions_move_the_named_arm(side):
    other = "right" if side == "left" else "left"
    for action in (f"wave_{side}", f"raise_{side}"):
        heights = dict(zip(("left", "right"), arm_heights([action])))
        assert heights[side] > 0.05 and heights[other] < -0.4, action
    p = motion_for([f"punch_{side}"], seed=4).positions
    reach = {s: (p[:, J[f"{s}_wrist"], 2] - p[:, J["pelvis"], 2]).max() for s in ("left", "right")}
    assert reach[side] > reach[other] + 0.2
    p = motion_for([f"kick_{side}"], seed=4).positions
    assert p[:, J[f"{side}_foot"], 1].max() > p[:, J[f"{other}_foot"], 1].max() + 0.3


def test_locomotion_directions():
    def displacement(key):
        p = motion_for([key], seed=5, seconds=3.0).positions
        return p[-1, J["pelvis"]] - p[0, J["pelvis"]], np.degrees(facing_angle(p[-1]))
    walk, _ = displacement("walk")
    assert walk[2] > 2.0 and abs(walk[0]) < 0.3  # forward is +Z, about 1.3 m/s
    assert displacement("run")[0][2] > displacement("walk_slow")[0][2] * 3
    assert displacement("walk_backwards")[0][2] < -1.0
    assert displacement("sidestep_left")[0][0] > 0.3  # the body's left is +X
    assert displacement("sidestep_right")[0][0] < -0.3
    assert displacement("turn_left")[1] == pytest.approx(90, abs=5)  # facing turns from +Z towards +X
    assert displacement("turn_right")[1] == pytest.approx(-90, abs=5)
    assert displacement("walk_turn_left")[0][0] > 1.0
    jump = motion_for(["jump"], seed=5).positions
    assert jump[:, [J["left_foot"], J["right_foot"]], 1].min(axis=1).max() > 0.1  # both feet off the floor


@pytest.mark.parametrize("key", ["walk", "walk_slow", "walk_backwards", "walk_turn_left", "turn_right", "jog"])
def test_feet_on_the_floor_do_not_slide(key):
    p = motion_for([key], seed=6, seconds=3.0).positions
    balls = p[:, [J["left_foot"], J["right_foot"]]]
    speed = np.linalg.norm(np.diff(balls[..., [0, 2]], axis=0), axis=-1) * 20
    planted = balls[1:, :, 1] < 0.02
    assert planted.any(axis=1).mean() > 0.5
    assert np.median(speed[planted]) < 0.02 and speed[planted].mean() < 0.25, key


def test_mirrored_left_wave_is_a_right_wave():
    item = next(item for item in map(lambda i: make_item(i, 3), range(500)) if item.labels["actions"] == ["wave_left"])
    mirrored = item.mirrored()
    p = mirrored.motion.positions
    assert p[:, J["right_wrist"], 1].max() > p[:, J["head"], 1].max()
    assert all("right" in text and "left" not in text for text in mirrored.captions)
    assert mirrored.captions == [mirror_caption(text) for text in item.captions]


def test_split_is_seeded_80_10_10():
    dataset = load_spec("synthetic:400:9")
    counts = dataset.splits()
    assert abs(counts["train"] - 320) < 30 and abs(counts["val"] - 40) < 18 and abs(counts["test"] - 40) < 18
    assert len(load_spec("synthetic:400:9@test").items) == counts["test"]


def test_library_covers_the_brief():
    expected = {"walk", "jog", "run", "walk_backwards", "walk_slow", "walk_fast", "sidestep_left", "sidestep_right",
                "turn_left", "turn_right", "wave_left", "wave_right", "wave_both", "raise_left", "raise_right",
                "raise_both", "clap", "punch_left", "punch_right", "reach_both", "kick_left", "kick_right", "squat",
                "jump", "sit_down", "lunge_left", "lunge_right"}
    assert expected <= set(LIBRARY)
    items = [make_item(i, 0) for i in range(120)]
    segments = collections.Counter(len(item.labels["actions"]) for item in items)
    assert segments[1] > 0 and segments[2] > 0 and segments[3] > 0
    combined = [item for item in items if any("+" in key for key in item.labels["actions"])]
    assert combined and all(" while " in " ".join(item.captions) for item in combined)


def test_spec_errors():
    assert parse_arg("5") == (5, 0) and parse_arg("5:3") == (5, 3)
    for arg in ("x", "0", "5:-1", "5:2:1", ""):
        with pytest.raises(DataError, match="synthetic"):
            parse_arg(arg)
    with pytest.raises(DataError, match="unknown action 'moonwalk'"):
        motion_for(["moonwalk"])


def test_generation_speed():
    start = time.process_time()
    for index in range(100):
        make_item(index, 8)
    rate = 100 / (time.process_time() - start)
    assert rate > 200, f"{rate:.0f} motions per CPU second"
