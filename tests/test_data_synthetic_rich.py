"""`synthetic:N:SEED:rich`: determinism, spec, durations, whole-body coupling, truthful captions, noise.

Also pins the plain `synthetic:N[:SEED]` output (hash computed from the code before the rich
variant existed).
"""
import hashlib
import re
import time

import numpy as np
import pytest

from inference_server.data import load_spec
from inference_server.data.synthetic import make_item, parse_arg, parse_arg_variant, split_of
from inference_server.data.synthetic_rich import NUMBERS, item_for
from inference_server.data.synthetic_rich import make_item as make_rich
from inference_server.errors import DataError
from inference_server.motion import SMPL22_JOINTS, SMPL22_PARENTS, mirror_caption

J = {name: i for i, name in enumerate(SMPL22_JOINTS)}
PLAIN_HASH = "8e3d8aeb498ded307b78578d783d29d78183660aae0e0e64a086dd19fdf39cc0"


@pytest.fixture(scope="module")
def items():
    return [make_rich(index, 5) for index in range(160)]


def test_plain_output_is_unchanged():
    digest = hashlib.sha256()
    for seed, index in ((0, 0), (0, 1), (0, 7), (3, 2), (11, 25)):
        item = make_item(index, seed)
        digest.update(np.round(item.motion.positions.astype(np.float64), 4).tobytes())
        digest.update(repr((item.id, item.name, item.captions, item.source, item.split, item.labels)).encode())
    for item in load_spec("synthetic:3:5").items:
        digest.update(repr((item.id, item.captions, item.split)).encode())
    assert digest.hexdigest() == PLAIN_HASH


def test_rich_is_deterministic_and_independent_of_n():
    small, large = load_spec("synthetic:3:7:rich").items, load_spec("synthetic:6:7:rich").items
    for a, b in zip(small, large):
        assert a.id == b.id and a.captions == b.captions and a.split == b.split and a.labels == b.labels
        np.testing.assert_array_equal(a.motion.positions, b.motion.positions)
    assert large[4].id == make_rich(4, 7).id == "synthetic_rich_7_000004"
    assert large[4].source == "synthetic:4:7:rich"
    assert [item.split for item in large] == [split_of(7, i) for i in range(6)]
    plain = load_spec("synthetic:3:7").items
    assert all(a.captions != b.captions for a, b in zip(small, plain))
    assert not np.array_equal(make_rich(0, 8).motion.positions[:5], make_rich(0, 7).motion.positions[:5])
    assert len(load_spec("synthetic:20:7:rich@val").items) == sum(split_of(7, i) == "val" for i in range(20))


def test_spec_errors():
    assert parse_arg("5") == (5, 0) and parse_arg("5:3") == (5, 3) and parse_arg("5:3:rich") == (5, 3)
    assert parse_arg_variant("5:3:rich") == (5, 3, "rich") and parse_arg_variant("5:3") == (5, 3, None)
    assert parse_arg_variant("5::rich") == (5, 0, "rich")
    for arg in ("5:2:1", "5:2:", "5:2:Rich", "5:2:rich:x"):
        with pytest.raises(DataError, match="synthetic"):
            parse_arg(arg)
    with pytest.raises(DataError, match="allowed: rich"):
        load_spec("synthetic:5:2:fancy")
    with pytest.raises(DataError, match="unknown action 'moonwalk'"):
        item_for(["moonwalk"])


def test_clips_are_plausible(items):
    durations, counts = [], []
    for item in items:
        p = item.motion.positions
        durations.append(item.motion.duration)
        counts.append(len(item.labels["segments"]))
        assert 1.0 - 1e-6 <= item.motion.duration <= 12.0 + 0.05, item.name
        assert np.isfinite(p).all() and p.dtype == np.float32 and item.motion.fps == 20.0
        assert p[..., 1].min() > -1e-4  # canonical: nothing below the floor
        bones = np.linalg.norm(p[:, 1:] - p[:, SMPL22_PARENTS[1:]], axis=-1)
        assert (bones.std(axis=0) < 0.006).all(), item.name  # rigid up to marker jitter
        assert 3 <= len(item.captions) <= 5 and len(set(item.captions)) == len(item.captions)
    assert min(durations) < 3.0 and max(durations) > 9.0
    assert set(counts) == {1, 2, 3, 4}
    heights = [item.motion.positions[0, J["head"], 1] for item in items]
    assert max(heights) - min(heights) > 0.35  # skeletons vary more than the plain variant's


def _body_frame(p):
    across = p[:, J["left_hip"]] - p[:, J["right_hip"]]
    across[:, 1] = 0
    across /= np.linalg.norm(across, axis=1, keepdims=True)
    return across, np.cross(across, np.array([0.0, 1.0, 0.0]))  # the body's left, forward


def _flexion(p, upper, lower, forward):
    """Forward angle (degrees) of the bone upper -> lower from hanging straight down."""
    v = p[:, J[lower]] - p[:, J[upper]]
    return np.degrees(np.arctan2((v * forward).sum(axis=1), -v[:, 1]))


def _middle(item, p, k=0):
    segment = item.labels["segments"][k]
    return slice(int(segment["start"] * 20) + 8, int(segment["end"] * 20) - 8)


def test_arms_swing_in_counter_phase_while_walking():
    swing = {}
    for key in ("walk_slow", "walk", "walk_fast", "run"):
        item = item_for([key], seed=3)
        p = item.motion.positions
        _, forward = _body_frame(p)
        part = _middle(item, p)
        left = _flexion(p, "left_shoulder", "left_elbow", forward)[part]
        right = _flexion(p, "right_shoulder", "right_elbow", forward)[part]
        left_leg = _flexion(p, "left_hip", "left_knee", forward)[part]
        assert np.corrcoef(left, right)[0, 1] < -0.4, key  # opposite phase left/right
        assert np.corrcoef(left, left_leg)[0, 1] < -0.6, key  # each arm against its own leg
        swing[key] = np.std(left) + np.std(right)
    assert swing["walk_slow"] < swing["walk"] < swing["walk_fast"] < swing["run"]  # grows with speed
    assert swing["walk"] > 2 * 8.0  # at least about +-11 degrees each


def _stride_wobble(signal, frames=15):
    """The signal minus its moving average over about one stride."""
    return signal - np.convolve(np.pad(signal, frames // 2, mode="edge"), np.ones(frames) / frames, mode="valid")


def test_pelvis_turns_with_the_stride_and_the_chest_against_it():
    from inference_server.angles import CHANNELS, motion_angles
    channel = {name: i for i, name in enumerate(CHANNELS)}
    for key in ("walk_slow", "walk", "walk_fast", "jog"):
        for seed in (2, 3):  # clips with a long gait segment
            item = item_for([key], seed=seed)
            angles = motion_angles(item.motion)[_middle(item, item.motion.positions)]
            assert len(angles) > 60, (key, seed)
            heading = angles[:, channel["pelvis_rotation"]]
            wobble = _stride_wobble(heading)
            legs = angles[:, channel["l_hip_flexion"]] - angles[:, channel["r_hip_flexion"]]
            chest = _stride_wobble(angles[:, channel["lumbar_rotation"]])
            assert wobble.std() > 1.5, (key, seed)  # a few degrees each way at the stride...
            assert np.corrcoef(wobble, legs)[0, 1] < -0.6, (key, seed)  # ...turning with the forward leg
            assert np.corrcoef(chest, wobble)[0, 1] < -0.5, (key, seed)  # the chest turns against it
            turned = np.polyfit(np.arange(len(heading)), heading, 1)[0] * len(heading)
            assert abs(turned) < 6, (key, seed)  # and the course stays straight


def test_waves_and_raised_hands_come_in_several_poses():
    from inference_server.angles import CHANNELS, motion_angles
    elbow = CHANNELS.index("r_elbow_flexion")
    held_elbows, wave_heights = [], []
    for seed in range(12):
        item = item_for(["raise_right"], seed=seed)
        held = motion_angles(item.motion)[_middle(item, item.motion.positions)]
        held_elbows.append(np.median(held[:, elbow]))
        item = item_for(["wave_right"], seed=seed)
        p = item.motion.positions[_middle(item, item.motion.positions)]
        wave_heights.append(np.median(p[:, J["right_wrist"], 1] - p[:, J["right_shoulder"], 1]))
    assert min(held_elbows) < 30 and max(held_elbows) > 70  # straight up, and bent with the hand by the head
    assert max(wave_heights) - min(wave_heights) > 0.12  # metres: chin height to above the head
    assert min(wave_heights) > 0.0  # always above the shoulder


def test_waves_sway_wide_or_small():
    """Real waves often hold the hand up with a small sway; the generator's must too, or a
    model trained on it reads them as raised hands (before the sway factor: none under 5 cm)."""
    sways = []
    for seed in range(40):
        p = item_for(["wave_right"], seed=seed).motion.positions
        across, _ = _body_frame(p)
        lateral = ((p[:, J["right_wrist"]] - p[:, J["right_shoulder"]]) * across).sum(axis=1)
        height = p[:, J["right_wrist"], 1] - p[:, J["right_shoulder"], 1]
        sways.append(np.std(_about_running_mean(lateral, seconds=0.6)[height > 0.5 * height.max()]))
    sways = np.array(sways)  # metres, std of the hand's sideways sway while it is up
    assert np.mean(sways < 0.04) >= 0.1, np.round(np.sort(sways), 3)
    assert sways.min() > 0.015 and sways.max() > 0.1  # still a visible wave; wide ones too


def _count_words(text):
    """Counts said in a caption: 'twice', 'three times', 'five steps', '4 times'."""
    words = {"once": 1, "twice": 2}
    found = [words[w] for w in re.findall(r"\b(once|twice)\b", text)]
    for number, unit in re.findall(r"\b(\w+) (?:\w+ )?(times|steps)\b", text):
        if number.isdigit():
            found.append(int(number))
        elif number in NUMBERS:
            found.append(NUMBERS.index(number))
    return found


def _wave_cycles(p):
    """Out-and-back swings of the left hand while it is raised above the shoulder: its sideways
    position about a 0.5 s running mean (raising and lowering the arm move it too), counted
    with hysteresis at 30 % of the sway each way (a small sway still counts, jitter does not)."""
    across, _ = _body_frame(p)
    lateral = ((p[:, J["left_wrist"]] - p[:, J["left_shoulder"]]) * across).sum(axis=1)
    raised = p[:, J["left_wrist"], 1] > p[:, J["left_shoulder"], 1]
    x = _about_running_mean(lateral[raised], seconds=0.5)
    high, low = 0.3 * np.percentile(x, 95), 0.3 * np.percentile(x, 5)
    count, out = 0, False
    for value in x:
        if value > high and not out:
            count, out = count + 1, True
        elif value < low:
            out = False
    return count


def _about_running_mean(x, seconds):
    width = int(seconds * 20) | 1  # frames at the generator's 20 fps, odd
    return x - np.convolve(np.pad(x, width // 2, mode="edge"), np.ones(width) / width, mode="valid")


def test_counts_in_captions_match_the_motion():
    said = 0
    for seed in range(10):
        item = item_for(["wave_left"], seed=seed)
        count = item.labels["segments"][0]["count"]
        assert count == _wave_cycles(item.motion.positions), (seed, count)
        for text in item.captions:
            assert all(n == count for n in _count_words(text)), (text, count)
            said += bool(_count_words(text))
        walk = item_for(["walk"], seed=seed)
        steps = walk.labels["segments"][0]["count"]
        p = walk.motion.positions
        _, forward = _body_frame(p)
        lead = ((p[:, J["left_ankle"]] - p[:, J["right_ankle"]]) * forward).sum(axis=1)
        apart = lead[np.abs(lead) > 0.3 * np.abs(lead).max()]
        switches = int((np.diff(np.sign(apart)) != 0).sum())
        assert steps == switches + 1, (seed, steps, switches)  # the first step leaves the standing pose
        for text in walk.captions:
            assert all(n == steps for n in _count_words(text)), (text, steps)
            said += bool(_count_words(text))
    assert said >= 8


def _entries(flags):
    return int((flags[1:] & ~flags[:-1]).sum() + flags[0])


@pytest.mark.parametrize("seed", range(6))
def test_claps_and_jumps_are_counted_truthfully(seed):
    item = item_for(["clap"], seed=seed)
    p = item.motion.positions
    gap = np.linalg.norm(p[:, J["left_wrist"]] - p[:, J["right_wrist"]], axis=1)
    assert _entries(gap < 0.12) == item.labels["segments"][0]["count"]  # the hands meet once per clap
    item = item_for(["jump"], seed=seed)
    p = item.motion.positions
    lowest = p[:, [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]], 1].min(axis=1)
    assert _entries(lowest > 0.06) == item.labels["segments"][0]["count"]  # airborne once per jump
    for text in item.captions:
        assert all(n == item.labels["segments"][0]["count"] for n in _count_words(text)), text


def test_generated_counts_are_those_of_their_segments(items):
    for item in items:
        counts = {s["count"] for s in item.labels["segments"] if s["count"] is not None}
        for text in item.captions:
            assert set(_count_words(text)) <= counts, (text, item.labels["segments"])


def test_side_words_match_the_moving_arm(items):
    for item in items:
        keys = " ".join(item.labels["actions"])
        text = " ".join(item.captions).lower()
        for side in ("left", "right"):
            assert (side in text) == (f"_{side}" in keys), (keys, text)
        mirrored = item.mirrored()
        for before, after in zip(item.captions, mirrored.captions):
            assert before.lower().count("left") == after.lower().count("right")
            assert before.lower().count("right") == after.lower().count("left")
    for side, other in (("left", "right"), ("right", "left")):
        for key in (f"wave_{side}", f"raise_{side}", f"wave_{side}+walk"):
            item = item_for([key], seed=2)
            p = item.motion.positions
            lift = {s: (p[:, J[f"{s}_wrist"], 1] - p[:, J["head"], 1]).max() for s in ("left", "right")}
            assert lift[side] > 0.0 > lift[other] + 0.3, (key, lift)
            assert all(side in text and other not in text for text in item.captions)
        item = item_for([f"punch_{side}"], seed=2)
        p = item.motion.positions
        _, forward = _body_frame(p)
        reach = {s: ((p[:, J[f"{s}_wrist"]] - p[:, J["pelvis"]]) * forward).sum(axis=1).max()
                 for s in ("left", "right")}
        assert reach[side] > reach[other] + 0.15


# words that name exactly one family in the rich vocabulary
MARKERS = {"wave": r"wav", "clap": r"clap|applau", "squat": r"squat|crouch|knee bend", "kick": r"kick",
           "bow": r"\bbow", "punch": r"punch|jab|box"}


def _family(keys):
    key = keys[0]
    for family in MARKERS:
        if key == family or key.startswith(family + "_"):
            return family
    return None


def test_order_words_match_the_order_of_segments():
    checked = 0
    for index in range(400):
        item = make_rich(index, 6)
        segments = item.labels["segments"]
        if len(segments) != 2 or any(len(s["keys"]) > 1 for s in segments):
            continue
        first, second = (_family(s["keys"]) for s in segments)
        if first is None or second is None or first == second:
            continue
        for text in (t.lower() for t in item.captions):
            a = re.search(MARKERS[first], text).start()
            b = re.search(MARKERS[second], text).start()
            after = re.search(r"\bafter (?!that)", text)
            before = re.search(r"\bbefore\b", text)
            if after:  # the -ing clause after "after" is what happened first
                clause = text[after.end():].split(",")[0]
                assert re.search(MARKERS[first], clause) and not re.search(MARKERS[second], clause), text
            elif before:
                assert a < before.start() < b, text
            else:
                assert a < b, text
            checked += 1
    assert checked >= 20


def test_noise_is_present_but_bounded():
    for keys in (["stand"], ["walk", "wave_right"], ["run"]):
        clean = item_for(keys, seed=4, noise=False).motion.positions
        noisy = item_for(keys, seed=4, noise=True).motion.positions
        assert clean.shape == noisy.shape
        pose = np.linalg.norm((noisy - noisy[:, :1]) - (clean - clean[:, :1]), axis=-1)  # pelvis-relative
        assert 0.004 < pose.mean() < 0.04 and pose.max() < 0.15, (keys, pose.mean(), pose.max())
        path = np.linalg.norm(np.diff(clean[:, 0, [0, 2]], axis=0), axis=-1).sum()
        drift = np.linalg.norm((noisy - clean)[:, 0, [0, 2]], axis=-1).max()
        assert 0.002 < drift < 0.15 + 0.05 * path, (keys, drift, path)  # slight root drift
        jerk = lambda p: np.abs(np.diff(p[:, J["head"]], n=2, axis=0)).mean()  # noqa: E731
        assert jerk(noisy) > jerk(clean)  # per-frame jitter
    still = item_for(["stand"], seed=4, noise=False).motion.positions
    _, forward = _body_frame(still)
    chest = ((still[:, J["spine3"]] - still[:, J["pelvis"]]) * forward).sum(axis=1)
    assert np.ptp(chest) > 0.002  # breathing on idle frames, even without noise


def test_vocabulary_is_varied(items):
    texts = [text for item in items for text in item.captions]
    words = {word for text in texts for word in re.findall(r"[a-z]+", text.lower())}
    assert len(words) > 200
    for phrase in (" then ", " after ", " while ", "first ", " finally ", "slowly", "twice", "steps"):
        assert any(phrase in text.lower() for text in texts), phrase


def test_generation_speed():
    start = time.process_time()
    for index in range(60):
        make_rich(index, 9)
    rate = 60 / (time.process_time() - start)
    assert rate > 40, f"{rate:.0f} rich motions per CPU second"


def test_head_looks_where_the_body_goes():
    for side, sign in (("left", 1), ("right", -1)):
        p = item_for([f"sidestep_{side}"], seed=2).motion.positions
        across, forward = _body_frame(p)
        head = p[:, J["head"]] - p[:, J["neck"]]
        yaw = np.degrees(np.arctan2((head * across).sum(axis=1), (head * forward).sum(axis=1)))
        assert sign * yaw.mean() > 3.0, (side, yaw.mean())
