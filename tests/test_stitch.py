"""bridge.stitch: segments joined into one motion, on real generated clips (the synthetic
library's walk, wave, sit-down, turning walk) and real Bandai-Namco mocap."""
from __future__ import annotations

import numpy as np
import pytest

from bridge.stitch import (
    Clip, StitchError, clip_to_positions, positions_to_clip, stitch, stitch_positions, yaw_of)
from inference_server.data import load_file
from inference_server.data.synthetic import motion_for

CENTIMETRE = 0.01


def synthetic(action: str, seed: int, seconds: float = 3.0) -> np.ndarray:
    return motion_for([action], seed=seed, seconds=seconds).positions.astype(np.float64)


@pytest.fixture(scope="module")
def walk_wave_sit() -> list[np.ndarray]:
    return [synthetic("walk", 1), synthetic("wave_right", 2), synthetic("sit_down", 3)]


def clips_of(positions: list[np.ndarray]) -> list[Clip]:
    """The Clips stitch_positions makes (one shared rest), split back per segment."""
    whole, _ = positions_to_clip(np.concatenate(positions))
    cuts = np.cumsum([len(p) for p in positions])[:-1]
    return [Clip(*parts) for parts in zip(np.split(whole.root_position, cuts), np.split(whole.root_rotation, cuts),
                                          np.split(whole.rotations, cuts))]


def angular_steps(quaternions: np.ndarray) -> np.ndarray:
    """Angle (radians) between consecutive frames' rotations, (T - 1, ...)."""
    dots = np.abs(np.sum(quaternions[1:] * quaternions[:-1], axis=-1))
    return 2.0 * np.arccos(np.clip(dots, 0.0, 1.0))


def root_velocity_changes(positions: np.ndarray) -> np.ndarray:
    """|step(t) - step(t - 1)| of the pelvis: a root pop is a spike here."""
    return np.linalg.norm(np.diff(positions[:, 0], n=2, axis=0), axis=-1)


def join_frames(lengths: list[int], blend: int) -> list[int]:
    """Output frames where each later segment starts (blends as the clips allow)."""
    starts, start = [], 0
    for length in lengths[:-1]:
        start += length - blend
        starts.append(start)
    return starts


# ---------------------------------------------------------------- identity and round trip

def test_positions_round_trip_exactly(walk_wave_sit):
    for positions in walk_wave_sit:
        clip, body = positions_to_clip(positions)
        np.testing.assert_allclose(clip_to_positions(clip, body), positions, atol=1e-9)


def test_one_clip_is_identity(walk_wave_sit):
    walk = walk_wave_sit[0]
    np.testing.assert_allclose(stitch_positions([walk]), walk, atol=1e-5)
    clip = clips_of([walk])[0]
    joined = stitch([clip])
    for name in ("root_position", "root_rotation", "rotations"):
        np.testing.assert_allclose(getattr(joined, name), getattr(clip, name), atol=1e-9)


# ---------------------------------------------------------------- smooth joins

def test_root_continuous_at_every_join(walk_wave_sit):
    out = stitch_positions(walk_wave_sit, blend_frames=8)
    assert out.shape == (sum(map(len, walk_wave_sit)) - 2 * 8, 22, 3)
    inside = max(root_velocity_changes(p).max() for p in walk_wave_sit)
    for join in join_frames([len(p) for p in walk_wave_sit], 8):
        near = root_velocity_changes(out[join - 10:join + 10])
        assert near.max() <= inside + CENTIMETRE
    # The check can fail: segments laid end to end each start back at the origin.
    naive = np.concatenate(walk_wave_sit)
    assert root_velocity_changes(naive).max() > inside + 0.5


def test_each_segment_starts_where_the_last_ended(walk_wave_sit):
    walk, wave, _ = walk_wave_sit
    out = stitch_positions([walk, wave, walk], blend_frames=8)
    largest_step = max(np.linalg.norm(np.diff(p[:, 0], axis=0), axis=-1).max() for p in walk_wave_sit)
    steps = np.linalg.norm(np.diff(out[:, 0], axis=0), axis=-1)
    assert steps.max() <= largest_step + CENTIMETRE
    # The second walk goes on from where the first one stopped: twice the distance.
    travelled = np.linalg.norm(out[-1, 0, [0, 2]] - out[0, 0, [0, 2]])
    one_walk = np.linalg.norm(walk[-1, 0, [0, 2]] - walk[0, 0, [0, 2]])
    assert travelled == pytest.approx(2 * one_walk, rel=0.1)


def test_joint_angular_velocity_at_joins_within_the_clips(walk_wave_sit):
    clips = clips_of(walk_wave_sit)
    inside = max(angular_steps(clip.rotations).max() for clip in clips)
    joined = stitch(clips, blend_frames=8)
    assert angular_steps(joined.rotations).max() <= inside + 1e-9
    assert angular_steps(joined.root_rotation).max() <= max(angular_steps(c.root_rotation).max() for c in clips) + 1e-9
    # The check can fail: a hard cut switches poses in one frame.
    assert angular_steps(stitch(clips, blend_frames=0).rotations).max() > inside


def test_frames_outside_the_blends_keep_their_poses(walk_wave_sit):
    clips = clips_of(walk_wave_sit)
    joined = stitch(clips, blend_frames=8)
    starts = [0] + join_frames([c.num_frames for c in clips], 8)
    for clip, start in zip(clips, starts):
        pure = slice(8, clip.num_frames - 8)  # neither blended in nor out
        shown = joined.rotations[start + pure.start:start + pure.stop]
        dots = np.abs(np.sum(shown * clip.rotations[pure], axis=-1))
        np.testing.assert_allclose(dots, 1.0, atol=1e-9)


def test_mocap_joins_are_smooth(bandai_root):
    data = bandai_root / "dataset-1" / "data"
    names = ["dataset-1_walk_normal_001.bvh", "dataset-1_bye_normal_001.bvh", "dataset-1_bow_normal_001.bvh"]
    positions = [load_file(data / name).motion.positions.astype(np.float64) for name in names]
    out = stitch_positions(positions, blend_frames=8)
    inside = max(root_velocity_changes(p).max() for p in positions)
    for join in join_frames([len(p) for p in positions], 8):
        assert root_velocity_changes(out[join - 10:join + 10]).max() <= inside + CENTIMETRE
    clips = clips_of(positions)
    assert angular_steps(stitch(clips, 8).rotations).max() <= max(angular_steps(c.rotations).max() for c in clips)


# ---------------------------------------------------------------- facing

def test_facing_is_carried_over_a_turn():
    turn, walk = synthetic("walk_turn_left", 4), synthetic("walk", 5)
    clips = clips_of([turn, walk])
    turned = yaw_of(clips[0].root_rotation[-1]) - yaw_of(clips[0].root_rotation[0])
    assert abs(np.degrees(turned)) > 30  # the first segment really turns
    joined = stitch(clips, blend_frames=8)
    yaw = np.unwrap(yaw_of(joined.root_rotation))
    inside = max(np.abs(np.diff(np.unwrap(yaw_of(c.root_rotation)))).max() for c in clips)
    assert np.abs(np.diff(yaw)).max() <= inside + 1e-9  # no pop in facing
    # After the join the walk goes where the body faces at the end of the turn.
    start = turn.shape[0] - 8
    travel = joined.root_position[-1] - joined.root_position[start + 8]
    heading = np.arctan2(travel[0], travel[2])
    walk_heading = np.arctan2(*(walk[-1, 0, [0, 2]] - walk[0, 0, [0, 2]]))
    expected = yaw[start + 8] + walk_heading - yaw_of(clips[1].root_rotation[0])
    assert np.degrees(abs(np.angle(np.exp(1j * (heading - expected))))) < 5
    # Without the carried facing the walk would go off at the turn's angle.
    assert np.degrees(abs(np.angle(np.exp(1j * (heading - walk_heading))))) > 30


# ---------------------------------------------------------------- options and edge cases

def test_in_place_removes_horizontal_root_motion(walk_wave_sit):
    clips = clips_of(walk_wave_sit)
    moving, still = stitch(clips, 8), stitch(clips, 8, in_place=True)
    start = np.broadcast_to(clips[0].root_position[0, [0, 2]], (still.num_frames, 2))
    np.testing.assert_allclose(still.root_position[:, [0, 2]], start, atol=1e-12)
    np.testing.assert_allclose(still.root_position[:, 1], moving.root_position[:, 1])  # heights kept
    np.testing.assert_allclose(still.rotations, moving.rotations)
    assert np.ptp(moving.root_position[:, 2]) > 1.0
    positions = stitch_positions(walk_wave_sit, 8, in_place=True)
    assert np.ptp(positions[:, 0, 0]) < 1e-6 and np.ptp(positions[:, 0, 2]) < 1e-6


def test_hard_cut_is_still_root_continuous(walk_wave_sit):
    walk, wave, _ = walk_wave_sit
    clips = clips_of([walk, walk])
    joined = stitch(clips, blend_frames=0)
    assert joined.num_frames == 2 * len(walk)
    cut = len(walk)
    step = np.linalg.norm(joined.root_position[cut] - joined.root_position[cut - 1])
    last_step = np.linalg.norm(walk[-1, 0] - walk[-2, 0])
    assert step == pytest.approx(last_step, abs=CENTIMETRE)
    np.testing.assert_allclose(np.abs(np.sum(joined.rotations[cut] * clips[1].rotations[0], axis=-1)), 1.0, atol=1e-9)
    out = stitch_positions([walk, wave], blend_frames=0)
    assert len(out) == len(walk) + len(wave)
    largest_step = max(np.linalg.norm(np.diff(p[:, 0], axis=0), axis=-1).max() for p in (walk, wave))
    # No teleport on the floor; the height is the new clip's (here a smaller body).
    assert np.linalg.norm(out[cut, 0, [0, 2]] - out[cut - 1, 0, [0, 2]]) <= largest_step + CENTIMETRE


def test_clips_shorter_than_the_blend(walk_wave_sit):
    walk, wave, sit = walk_wave_sit
    short, single = wave[:5], wave[10:11]
    out = stitch_positions([walk, short, sit], blend_frames=8)
    assert len(out) == len(walk) + 5 + len(sit) - 2 * 2  # the 5-frame clip gives 2 frames to each side
    assert np.all(np.isfinite(out))
    assert len(stitch_positions([walk, single, sit], blend_frames=8)) == len(walk) + 1 + len(sit)
    assert len(stitch_positions([walk, wave[:3]], blend_frames=8)) == len(walk)  # an end clip blends fully
    assert len(stitch_positions([single, single], blend_frames=8)) == 1
    largest_step = max(np.linalg.norm(np.diff(p[:, 0], axis=0), axis=-1).max() for p in walk_wave_sit)
    assert np.linalg.norm(np.diff(out[:, 0], axis=0), axis=-1).max() <= largest_step + CENTIMETRE


def test_bone_lengths_survive_the_blend(walk_wave_sit):
    out = stitch_positions(walk_wave_sit, blend_frames=8)
    parents = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
    def bones(p):
        return np.linalg.norm(p[:, 1:] - p[:, parents[1:]], axis=-1)
    low = np.min([bones(p).min(axis=0) for p in walk_wave_sit], axis=0)
    high = np.max([bones(p).max(axis=0) for p in walk_wave_sit], axis=0)
    assert np.all(bones(out) >= low - 1e-5) and np.all(bones(out) <= high + 1e-5)


# ---------------------------------------------------------------- bad input

def test_bad_input_is_a_clear_error(walk_wave_sit):
    walk = walk_wave_sit[0]
    clip = clips_of([walk])[0]
    nan = walk.copy()
    nan[3, 5, 1] = np.nan
    cases = [
        (lambda: stitch([]), "no clips"),
        (lambda: stitch_positions([]), "no clips"),
        (lambda: stitch_positions([walk, walk[:, :21]]), r"clip 1: positions must be \(frames, 22, 3\)"),
        (lambda: stitch_positions([walk, nan]), "clip 1: positions contain NaN"),
        (lambda: stitch_positions([walk[:0]]), "clip 0 has no frames"),
        (lambda: stitch_positions([walk], blend_frames=-1), "blend_frames must be an integer >= 0"),
        (lambda: stitch([clip], blend_frames=2.5), "blend_frames must be an integer"),
        (lambda: stitch([clip, Clip(clip.root_position, clip.root_rotation, clip.rotations[:, :5])]),
         r"clip 1: rotations must have shape"),
        (lambda: stitch([Clip(clip.root_position, clip.root_rotation * 2, clip.rotations)]), "unit quaternions"),
        (lambda: stitch([Clip(clip.root_position[:-1], clip.root_rotation, clip.rotations)]),
         "clip 0: root_rotation must have shape"),
    ]
    for call, message in cases:
        with pytest.raises(StitchError, match=message):
            call()
    collapsed = walk.copy()
    collapsed[4, 2] = collapsed[4, 1]
    with pytest.raises(StitchError, match="clip 0, frame 4: the hips coincide"):
        stitch_positions([collapsed])
