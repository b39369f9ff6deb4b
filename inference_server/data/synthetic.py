"""`synthetic:N[:SEED[:VARIANT]]`: procedural SMPL-22 motions at 20 fps with varied captions.

VARIANT is absent (the plain generator below, whose output is fixed: tests and published
benchmarks depend on it) or `rich` (synthetic_rich: whole-body coupling, mocap-like noise,
time-warps, 1-12 s clips with idle lead-in/out, 1-4 actions, captions with counts, adverbs
and more sentence shapes; item i from SeedSequence([SEED, i, synthetic_rich.RICH_STREAM])).

Each clip is 1-3 segments of actions from synthetic_actions.LIBRARY (locomotion, arm
actions, lower-body actions), possibly an arm action on top of a gait in the same segment
("waves the left hand while walking"); segments cross-fade over 2 x RAMP seconds. Bodies
(synthetic_body) have random proportions; speeds, amplitudes and timings are random.

Determinism: item i draws everything from numpy's SeedSequence([SEED, i]), so it is the
same for any N (synthetic:100:7 item 5 == synthetic:500:7 item 5), and its split (80/10/10)
from SeedSequence([SEED, i, SPLIT_STREAM]). SEED defaults to 0.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from inference_server.data.kinematics import canonicalize
from inference_server.data.synthetic_actions import LIBRARY, Action, smoothstep
from inference_server.data.synthetic_body import CHANNELS, neutral_pose, pose_to_positions, random_body
from inference_server.errors import DataError
from inference_server.motion import Motion, MotionItem

FPS = 20.0
RAMP = 0.3  # seconds of cross-fade on each side of a segment boundary
MIN_SECONDS, MAX_SECONDS = 2.0, 10.0
SPLIT_STREAM = 7919
VARIANTS = ("rich",)  # allowed third fields of the spec
MAX_ITEMS = 10_000_000
SUBJECTS = ("a person", "someone", "a man", "the man", "the person", "a woman", "the woman", "a figure")
_BY_KIND = {kind: [a for a in LIBRARY.values() if a.kind == kind] for kind in ("locomotion", "arms", "lower", "idle")}


@dataclass
class Segment:
    actions: tuple[Action, ...]  # one action, or (arm action, gait) played together
    start: float
    end: float


def parse_arg_variant(arg: str | None) -> tuple[int, int, str | None]:
    """"N[:SEED[:VARIANT]]" -> (N, SEED, VARIANT or None for the plain generator)."""
    parts = (arg or "").split(":")
    try:
        count = int(parts[0])
        seed = int(parts[1]) if len(parts) > 1 and parts[1] != "" else 0
    except ValueError:
        raise DataError(f"synthetic:{arg}: expected synthetic:N[:SEED[:VARIANT]] with integers") from None
    if len(parts) > 3 or not 0 < count <= MAX_ITEMS or seed < 0:
        raise DataError(f"synthetic:{arg}: expected synthetic:N[:SEED[:VARIANT]] with 0 < N <= {MAX_ITEMS}, "
                        "SEED >= 0")
    variant = parts[2] if len(parts) == 3 else None
    if variant is not None and variant not in VARIANTS:
        raise DataError(f"synthetic:{arg}: unknown variant {variant!r} (allowed: {', '.join(VARIANTS)}; "
                        "none for the plain generator)")
    return count, seed, variant


def parse_arg(arg: str | None) -> tuple[int, int]:
    """"N[:SEED[:VARIANT]]" -> (N, SEED); the variant is checked (parse_arg_variant returns it)."""
    count, seed, _ = parse_arg_variant(arg)
    return count, seed


def split_of(seed: int, index: int) -> str:
    draw = np.random.default_rng([seed, index, SPLIT_STREAM]).random()
    return "train" if draw < 0.8 else "val" if draw < 0.9 else "test"


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _segment_actions(rng: np.random.Generator, combined: bool) -> tuple[Action, ...]:
    if combined:
        gaits = [a for a in _BY_KIND["locomotion"] if not a.key.startswith("turn_")]
        return _pick(rng, _BY_KIND["arms"]), _pick(rng, gaits)
    kind = _pick(rng, ("locomotion", "locomotion", "arms", "arms", "lower", "idle"))
    return (_pick(rng, _BY_KIND[kind]),)


def plan_clip(rng: np.random.Generator) -> list[Segment]:
    """1-3 segments with durations; 'final' actions (sitting down) only at the end."""
    count = _pick(rng, (1, 1, 2, 2, 3))
    chosen: list[tuple[Action, ...]] = []
    while len(chosen) < count:
        actions = _segment_actions(rng, combined=rng.random() < (0.45 if count == 1 else 0.2))
        previous = chosen[-1] if chosen else ()
        if any(a.final for a in actions) and len(chosen) < count - 1 or actions == previous:
            continue
        chosen.append(actions)
    durations = np.array([rng.uniform(max(a.duration[0] for a in acts), max(a.duration[1] for a in acts))
                          for acts in chosen])
    total = durations.sum()
    durations *= np.clip(total, MIN_SECONDS, MAX_SECONDS) / total
    edges = np.concatenate([[0.0], np.cumsum(durations)])
    return [Segment(acts, float(edges[k]), float(edges[k + 1])) for k, acts in enumerate(chosen)]


def render(rng: np.random.Generator, segments: list[Segment]) -> np.ndarray:
    """Blend the segments' pose tracks and run the body's kinematics -> (T, 22, 3)."""
    body = random_body(rng)
    frames = int(round(segments[-1].end * FPS))
    t = np.arange(frames) / FPS
    total = np.zeros((frames, len(CHANNELS)))
    weight_sum = np.zeros((frames, len(CHANNELS)))
    for k, segment in enumerate(segments):
        rise = smoothstep((t - segment.start + RAMP) / (2 * RAMP)) if k > 0 else np.ones(frames)
        fall = 1 - smoothstep((t - segment.end + RAMP) / (2 * RAMP)) if k < len(segments) - 1 else np.ones(frames)
        envelope = rise * fall
        active = envelope > 0
        for action in segment.actions:
            tracks, weights = action.make(rng, t[active] - segment.start, segment.end - segment.start)
            blend = envelope[active, None] * weights
            total[active] += blend * tracks
            weight_sum[active] += blend
    epsilon = 1e-3  # channels no action drives stay at the neutral pose
    tracks = (total + epsilon * neutral_pose()) / (weight_sum + epsilon)
    positions = pose_to_positions(body, tracks, FPS)
    return canonicalize(positions, up_rotation=np.array([1.0, 0.0, 0.0, 0.0]))


def _segment_phrase(rng: np.random.Generator, segment: Segment) -> str:
    if len(segment.actions) == 1:
        return _pick(rng, segment.actions[0].phrases)
    arm, gait = segment.actions
    if rng.random() < 0.5:
        return f"{_pick(rng, arm.phrases)} while {_pick(rng, gait.gerunds)}"
    return f"{_pick(rng, gait.phrases)} while {_pick(rng, arm.gerunds)}"


def _caption(rng: np.random.Generator, segments: list[Segment]) -> str:
    subject = _pick(rng, SUBJECTS)
    phrases = [_segment_phrase(rng, segment) for segment in segments]
    if len(phrases) == 1:
        return f"{subject} {phrases[0]}"
    if len(phrases) == 2:
        template = _pick(rng, ("{s} {0}, then {1}", "{s} {0} and then {1}", "{s} first {0}, then {1}",
                               "{s} {0}, after that {1}"))
    else:
        template = _pick(rng, ("{s} {0}, {1}, and then {2}", "{s} {0}, then {1}, then {2}",
                               "{s} first {0}, then {1} and finally {2}"))
    return template.format(*phrases, s=subject)


def captions_for(rng: np.random.Generator, segments: list[Segment], count: int = 3) -> list[str]:
    captions: list[str] = []
    for _ in range(4 * count):
        caption = _caption(rng, segments)
        if caption not in captions:
            captions.append(caption)
        if len(captions) == count:
            break
    return captions


def motion_for(keys: list[str], seed: int = 0, seconds: float = 3.0) -> Motion:
    """A clip playing the named actions one after the other (each `seconds` long); "a+b" plays
    a and b together (e.g. "wave_left+walk"). For tests and demos."""
    try:
        chosen = [tuple(LIBRARY[name] for name in key.split("+")) for key in keys]
    except KeyError as error:
        raise DataError(f"synthetic: unknown action {error.args[0]!r} (known: {', '.join(LIBRARY)})") from None
    segments = [Segment(actions, k * seconds, (k + 1) * seconds) for k, actions in enumerate(chosen)]
    return Motion.smpl22(render(np.random.default_rng([seed]), segments), FPS)


def make_item(index: int, seed: int = 0) -> MotionItem:
    """Item `index` of `synthetic:N:seed`, the same for every N > index."""
    rng = np.random.default_rng([seed, index])
    segments = plan_clip(rng)
    positions = render(rng, segments)
    captions = captions_for(rng, segments, count=int(rng.integers(3, 5)))
    keys = [" + ".join(action.key for action in segment.actions) for segment in segments]
    return MotionItem(id=f"synthetic_{seed}_{index:06d}", name=", then ".join(keys),
                      motion=Motion.smpl22(positions, FPS),
                      captions=captions, source=f"synthetic:{index}:{seed}", split=split_of(seed, index),
                      labels={"actions": keys, "seed": seed, "index": index})


def scan(arg: str | None, progress: bool = False):
    count, seed, variant = parse_arg_variant(arg)
    make = make_item
    if variant == "rich":
        from inference_server.data.synthetic_rich import make_item as make
    items = [make(index, seed) for index in tqdm(range(count), desc="synthetic", unit="motion",
                                                 disable=not progress, leave=False)]
    return items, []
