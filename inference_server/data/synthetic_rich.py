"""`synthetic:N:SEED:rich`: the synthetic generator, closer to real motion capture.

Same action library (synthetic_actions) and body kinematics (synthetic_body) as the plain
variant, with:

* whole-body coupling: the arms swing in counter-phase, each against its own leg (the plain
  variant's gait has them in phase, kept there for its fixed output), and the swing grows
  with speed; the torso and then the head turn ahead of the body on a turn; the pelvis rolls
  onto the stance leg and the trunk leans over it (with the knee-driven bob of the gait);
  the head looks a little down at the path while walking;
* mocap-like noise: smooth (low-pass) joint-angle and arm-target noise, a slow root drift
  and heading drift, breathing where the body is idle, per-frame marker jitter;
* time-warped playback (a per-segment speed plus a slow wobble), skeleton proportions wider
  than the plain variant's, idle lead-in and lead-out frames, 1-4 actions per clip,
  clip durations of 1-12 s;
* repetitive actions play a whole number of cycles (local action time is clamped to
  [start of cycle, start of cycle + n periods]), so captions can count them truthfully
  ("waves twice", "takes five steps forward"); a walk counted in steps starts and ends
  standing (the first step is the one out of the standing pose);
* captions with synonyms, body-part words, speed/amplitude adverbs that match how the
  segment was generated, counts, directions and several sentence shapes ("A, then B",
  "first A, then B", "A, after that B", "A and finally B", "B after A-ing", "after A-ing,
  B", "A before B-ing", "A while B-ing"), 3-5 per clip.

Determinism: item i draws everything from SeedSequence([SEED, i, RICH_STREAM]) (the same
for any N) and its split is the plain variant's split_of(SEED, i).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from inference_server.data.kinematics import canonicalize
from inference_server.data.synthetic_actions import GAITS, LIBRARY, Action, smoothstep
from inference_server.data.synthetic_body import ARM, CH, CHANNELS, SIGN, Body, neutral_pose, pose_to_positions
from inference_server.errors import DataError
from inference_server.motion import Motion, MotionItem

FPS = 20.0
RAMP = 0.3  # seconds of cross-fade on each side of a boundary
MIN_SECONDS, MAX_SECONDS = 1.0, 12.0
RICH_STREAM = 104729
DEG = np.pi / 180

# ---- actions: family, side, how to count them ----

_SIDES = ("left", "right", "both")
GAIT_NAME = {"walk": "walk", "walk_slow": "walk_slow", "walk_fast": "walk_fast", "walk_backwards": "walk",
             "jog": "jog", "run": "run", "walk_turn_left": "walk", "walk_turn_right": "walk"}
STEP_COUNTED = {"walk", "walk_slow", "walk_fast", "walk_backwards"}
# family -> (period from the action's first random draw, start phase as a fraction of a period).
# Each of these actions draws its period (or frequency) first, from a generator of its own here,
# so the period is known before the action is played.
CYCLES = {
    "wave": (lambda g: 1 / g.uniform(1.8, 2.8), 0.75),  # starts and ends with the hand in
    "clap": (lambda g: 1 / g.uniform(1.6, 2.6), 0.0),
    "punch": (lambda g: g.uniform(0.45, 0.7), 0.0),
    "kick": (lambda g: g.uniform(1.1, 1.5), 0.0),
    "squat": (lambda g: g.uniform(2.0, 2.8), 0.0),
    "jump": (lambda g: g.uniform(1.4, 1.8), 0.0),
    "jump_forward": (lambda g: g.uniform(1.4, 1.8), 0.0),
    "lunge": (lambda g: g.uniform(2.2, 3.0), 0.0),
}
MAX_COUNT = {"wave": 6, "clap": 8, "punch": 6, "kick": 3, "squat": 3, "jump": 4, "jump_forward": 3, "lunge": 3}
HELD = {"stand", "sit_down", "raise", "reach"}  # poses held, not played: no speed to speak of
AMPLITUDE_FAMILIES = {"wave", "clap", "punch"}  # arm actions whose amplitude is varied
SPEEDS = {"slow": (0.62, 0.8), "normal": (0.9, 1.1), "fast": (1.22, 1.45)}
AMPLITUDES = {"small": (0.6, 0.78), "normal": (0.92, 1.08), "big": (1.25, 1.45)}


def family(key: str) -> str:
    if key in ("walk", "walk_slow", "walk_fast"):
        return "walk"
    for side in _SIDES:
        if key.endswith("_" + side):
            return key[: -len(side) - 1]
    return key


def side_of(key: str) -> str | None:
    for side in _SIDES:
        if key.endswith("_" + side):
            return side
    return None


def is_gait(key: str) -> bool:
    return key in GAIT_NAME


@dataclass
class RichSegment:
    actions: tuple[Action, ...]  # one action, or (arm action, gait)
    seeds: tuple[int, ...]  # each action draws from default_rng(seed)
    start: float = 0.0  # seconds in the clip
    end: float = 0.0
    speed: str = "normal"  # "slow" | "normal" | "fast"
    rate: float = 1.0  # action seconds per clip second (mean)
    wobble: tuple[float, float, float] = (0.0, 1.0, 0.0)  # relative amplitude, period (s), phase
    amplitude: str = "normal"
    gain: float = 1.0  # arm amplitude factor
    count: int | None = None  # cycles (steps for a walk) played by actions[0]
    span: tuple[float, float] = (0.0, 1.0)  # action-time range of actions[0] (clamped when counted)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(action.key for action in self.actions)

    def action_time(self, u: np.ndarray) -> np.ndarray:
        """Action time (before clamping) at segment time u (seconds since start)."""
        amp, period, phase = self.wobble
        return self.rate * (u + amp * period / (2 * np.pi) * (np.cos(phase) - np.cos(2 * np.pi * u / period + phase)))

    def action_rate(self, u: np.ndarray) -> np.ndarray:
        amp, period, phase = self.wobble
        return self.rate * (1 + amp * np.sin(2 * np.pi * u / period + phase))


@dataclass
class Plan:
    segments: list[RichSegment]
    lead_in: float
    lead_out: float
    final: bool  # the last action holds its end pose (sitting)
    breath: float = 0.25  # Hz

    @property
    def duration(self) -> float:
        return self.segments[-1].end + self.lead_out


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


_BY_KIND = {kind: [a for a in LIBRARY.values() if a.kind == kind] for kind in ("locomotion", "arms", "lower", "idle")}
_CARRIER_GAITS = [a for a in _BY_KIND["locomotion"] if is_gait(a.key) and not a.key.startswith("walk_turn")]


def choose_actions(rng: np.random.Generator) -> list[tuple[Action, ...]]:
    count = _pick(rng, (1, 1, 1, 2, 2, 2, 3, 3, 4))
    chosen: list[tuple[Action, ...]] = []
    while len(chosen) < count:
        if rng.random() < (0.35 if count == 1 else 0.15):
            actions: tuple[Action, ...] = (_pick(rng, _BY_KIND["arms"]), _pick(rng, _CARRIER_GAITS))
        else:
            kind = _pick(rng, ("locomotion", "locomotion", "arms", "arms", "lower", "lower", "idle"))
            actions = (_pick(rng, _BY_KIND[kind]),)
        previous = chosen[-1] if chosen else ()
        if any(a.final for a in actions) and len(chosen) < count - 1 or actions == previous:
            continue
        if previous and family(previous[0].key) == family(actions[0].key):
            continue  # "waves the left hand, then waves the right hand" is fine, but not twice a walk
        chosen.append(actions)
    return chosen


def _period(action: Action, seed: int) -> float | None:
    """The cycle length (action seconds) of a counted action, None when it is not counted."""
    fam = family(action.key)
    if action.key in STEP_COUNTED:
        return 0.5 / np.random.default_rng(seed).uniform(*GAITS[GAIT_NAME[action.key]].frequency)  # one step
    if fam in CYCLES:
        return float(CYCLES[fam][0](np.random.default_rng(seed)))
    return None


def plan_segments(rng: np.random.Generator, chosen: list[tuple[Action, ...]], fit: bool = True) -> Plan:
    """Speeds, amplitudes, counts and timing of the chosen segments (fit: shorten to MAX_SECONDS)."""
    segments = []
    short = len(chosen) == 1 and rng.random() < 0.3  # a brief clip: 1-4 s
    for actions in chosen:
        seeds = tuple(int(rng.integers(2 ** 62)) for _ in actions)
        lead = actions[0]
        if any(is_gait(a.key) for a in actions) and not (lead.kind == "arms"):
            speed = {"walk_slow": "slow", "walk_fast": "fast", "run": "fast"}.get(lead.key, "normal")
            rate = rng.uniform(0.9, 1.1)
        elif lead.kind == "arms" and len(actions) == 2:  # arm action on a gait: the gait sets the pace
            speed, rate = "normal", rng.uniform(0.9, 1.1)
        else:
            speed = _pick(rng, ("slow", "normal", "normal", "fast")) if family(lead.key) not in HELD else "normal"
            rate = rng.uniform(*SPEEDS[speed])
        amplitude = _pick(rng, ("small", "normal", "normal", "big")) if family(lead.key) in AMPLITUDE_FAMILIES \
            else "normal"
        wobble = (rng.uniform(0.03, 0.09), rng.uniform(1.5, 4.0), rng.uniform(0, 2 * np.pi))
        segment = RichSegment(actions, seeds, speed=speed, rate=rate, wobble=wobble, amplitude=amplitude,
                              gain=rng.uniform(*AMPLITUDES[amplitude]))
        period = _period(lead, seeds[0])
        wanted = rng.uniform(*lead.duration) * (0.5 if short else 1.25 if len(chosen) == 1 else 1.0)
        if period is not None:
            if lead.key in STEP_COUNTED:
                steps = int(np.clip(round(wanted * rate / period), 2, 12))
                segment.count = steps
                segment.span = (0.0, (steps - 1) * period)  # the first step is the one out of standing
            else:
                fam = family(lead.key)
                n = int(np.clip(round(wanted * rate / period), 1, MAX_COUNT[fam]))
                segment.count = n
                start = CYCLES[fam][1] * period
                segment.span = (start, start + n * period)
        else:
            segment.span = (0.0, wanted * rate)
        segments.append(segment)
    _uncount_adjacent_gaits(segments)
    longest = 0.5 if short else 1.5
    plan = Plan(segments, lead_in=0.0 if rng.random() < 0.15 else rng.uniform(0.3, longest),
                lead_out=0.0 if rng.random() < 0.15 else rng.uniform(0.3, longest),
                final=chosen[-1][0].final, breath=rng.uniform(0.2, 0.33))
    _lay_out(plan)
    while fit and plan.duration > MAX_SECONDS:
        if len(plan.segments) > 1:
            plan.segments.pop()
            plan.final = plan.segments[-1].actions[0].final
            _uncount_adjacent_gaits(plan.segments)
        else:
            _shorten(plan.segments[0], plan.duration - MAX_SECONDS + 0.05)
        plan.lead_out = min(plan.lead_out, 0.6)
        plan.lead_in = min(plan.lead_in, 0.6)
        _lay_out(plan)
    if plan.duration < MIN_SECONDS:
        plan.lead_out += MIN_SECONDS - plan.duration + 0.05
    return plan


def _uncount_adjacent_gaits(segments: list[RichSegment]) -> None:
    """A counted walk starts and ends standing: no step count next to another gait."""
    for k, segment in enumerate(segments):
        if segment.count is None or segment.keys[0] not in STEP_COUNTED:
            continue
        neighbours = segments[max(0, k - 1):k] + segments[k + 1:k + 2]
        if any(is_gait(a.key) for n in neighbours for a in n.actions):
            segment.count = None


def _shorten(segment: RichSegment, seconds: float) -> None:
    """Drop whole cycles (or time) from a segment so that it lasts about `seconds` less."""
    length = segment.span[1] - segment.span[0]
    keep = max(0.3 * length, length - seconds * segment.rate)
    if segment.count is not None:
        per = length / (segment.count - 1 if segment.keys[0] in STEP_COUNTED else segment.count)
        if segment.keys[0] in STEP_COUNTED:
            segment.count = max(2, int(keep / per) + 1)
            keep = (segment.count - 1) * per
        else:
            segment.count = max(1, int(keep / per))
            keep = segment.count * per
    segment.span = (segment.span[0], segment.span[0] + keep)


def _real_length(segment: RichSegment) -> float:
    """Clip seconds the segment needs to play its action-time span."""
    length = segment.span[1] - segment.span[0]
    u = np.linspace(0, 2.0 * length / segment.rate + 1.0, 400)
    return float(np.interp(length, segment.action_time(u), u))


def _lay_out(plan: Plan) -> None:
    time = plan.lead_in
    for segment in plan.segments:
        segment.start = time
        segment.end = time + max(_real_length(segment), 0.5)
        time = segment.end


# ---- bodies ----

def random_body_rich(rng: np.random.Generator) -> Body:
    """Wider proportions than synthetic_body.random_body: about 1.40-2.05 m, limbs +-10 %, width -15/+20 %."""
    size = rng.uniform(0.82, 1.18)
    leg, arm, torso, foot = size * rng.uniform(0.9, 1.1, size=4)
    width = size * rng.uniform(0.85, 1.2)
    return Body(
        hip=np.array([0.068 * width, -0.09 * torso, 0.0]),
        thigh=0.385 * leg * rng.uniform(0.96, 1.04), shin=0.40 * leg,
        foot=np.array([0.0, -0.05, 0.13]) * foot, ankle_height=0.075 * foot,
        spine=np.array([[0, 0.11, -0.01], [0, 0.135, 0.02], [0, 0.055, 0.0], [0, 0.21, -0.03], [0, 0.09, 0.04]])
        * torso * rng.uniform(0.95, 1.05, size=(5, 1)),
        collar=np.array([0.075 * width, 0.115 * torso, -0.02 * torso]),
        shoulder=np.array([0.10 * width, 0.03 * torso, -0.01 * torso]),
        upper_arm=0.27 * arm * rng.uniform(0.96, 1.04), forearm=0.25 * arm)


# ---- rendering ----

_SPEED_CHANNELS = [CH["yaw_rate"], CH["forward_speed"], CH["side_speed"]]
_ARM_TARGETS = [ARM[s].start + k for s in ("left", "right") for k in range(3)]
_NOISE = np.zeros(len(CHANNELS))  # low-pass noise amplitude per channel (radians / reach units)
for _name, _amp in (("pelvis_pitch", 1.2), ("pelvis_roll", 0.8), ("spine_bend", 1.5), ("spine_side", 1.0),
                    ("spine_twist", 2.0), ("neck_pitch", 2.5), ("l_hip_abd", 0.8), ("r_hip_abd", 0.8),
                    ("l_hip_flex", 1.0), ("r_hip_flex", 1.0), ("l_knee", 1.0), ("r_knee", 1.0)):
    _NOISE[CH[_name]] = _amp * DEG
_NOISE[_ARM_TARGETS] = 0.012
_NOISE[[ARM[s].start + k for s in ("left", "right") for k in range(3, 6)]] = 0.08


def _envelopes(plan: Plan, t: np.ndarray) -> list[np.ndarray]:
    """Each segment's weight over the clip: cross-fades of 2 x RAMP, fades from/to the idle lead frames."""
    envelopes = []
    last = len(plan.segments) - 1
    for k, segment in enumerate(plan.segments):
        ramp_in = RAMP if k > 0 else min(RAMP, plan.lead_in)
        ramp_out = RAMP if k < last else (0.0 if plan.final else min(RAMP, plan.lead_out))
        rise = smoothstep((t - segment.start + ramp_in) / (2 * ramp_in)) if ramp_in > 0 else np.ones_like(t)
        fall = 1 - smoothstep((t - segment.end + ramp_out) / (2 * ramp_out)) if ramp_out > 0 else np.ones_like(t)
        envelopes.append(rise * fall)
    return envelopes


def _play(segment: RichSegment, index: int, t: np.ndarray):
    """One action of a segment at clip times t -> (tracks, weights), time-warped and amplitude-scaled."""
    action = segment.actions[index]
    u = t - segment.start
    tau = segment.action_time(u)
    rate = segment.action_rate(u)
    span = segment.span
    if index == 0 and segment.count is not None:  # a whole number of cycles, held before and after
        rate = rate * ((tau >= 0) & (tau <= span[1] - span[0]))
        tau = np.clip(tau + span[0], span[0], span[1])
    duration = span[1] - span[0]
    tracks, weights = action.make(np.random.default_rng(segment.seeds[index]), tau, duration)
    tracks = tracks.copy()
    tracks[:, _SPEED_CHANNELS] *= rate[:, None]
    if action.kind == "arms" and segment.gain != 1.0:
        playing = (u >= 0) & (u <= segment.end - segment.start)
        if playing.any():
            held = tracks[playing][:, _ARM_TARGETS]
            if family(action.key) == "clap":  # about the hands-together pose: small claps still meet
                reference = held[np.argmin(held[:, 0] - held[:, 3])]
            else:
                reference = held.mean(axis=0)
            tracks[:, _ARM_TARGETS] = reference + segment.gain * (tracks[:, _ARM_TARGETS] - reference)
    if family(action.key) in _ARM_POSE_RANGES:
        _vary_arm_pose(tracks, weights, family(action.key),
                       np.random.default_rng([segment.seeds[index], _ARM_POSE_STREAM]))
    if is_gait(action.key):
        # Arms swing against the same-side leg, i.e. with the other leg: the library's gait has
        # them the other way round, so the sides' swings are swapped here. The swing grows with
        # the pace (the style's own swing, times the time-warp rate).
        style = GAITS[GAIT_NAME[action.key]]
        boost = segment.rate * (0.8 if style.bent_arms else 0.9 + 0.045 / style.arm_swing)
        z = [ARM["left"].start + 2, ARM["right"].start + 2]
        mean = tracks[:, z].mean(axis=0)
        tracks[:, z] = mean + boost * (tracks[:, z[::-1]] - mean[::-1])
    return tracks, weights


_ARM_POSE_STREAM = 27449
# family -> (outward, up, forward) offset ranges of the wrist target (reach units, 0.52 = the
# arm's length), the range of the factor pulling the target toward the shoulder (bends the
# elbow) and the range of the factor on the hand's side-to-side sway: people wave with the
# hand at chin height or above the head, in front or to the side, with a wide sway or a
# small one (the hand held up, barely moving), and raise a hand with a straight arm or with
# the elbow bent, the hand by the head. The small-sway end matches real waves: in Bandai-Namco
# validation waves the wrist's sway about its 0.6 s mean has a std of 0.134 arm lengths
# (median), 0.045 for the lowest quarter; the generator's waves had 0.129 at that quarter,
# so to a model trained on them a real wave with a small sway read as a raised hand. (Only
# these statistics were taken from that data; the weights trained on this generator never
# see it.) The sway is not captioned: the caption's own amplitude word is `gain`'s.
_ARM_POSE_RANGES = {
    "wave": ((-0.08, 0.05), (-0.06, 0.2), (0.0, 0.22), (1.0, 1.0), (0.3, 1.15)),
    "raise": ((-0.04, 0.1), (0.0, 0.0), (0.0, 0.16), (0.62, 1.0), (1.0, 1.0)),
}


def _vary_arm_pose(tracks: np.ndarray, weights: np.ndarray, name: str, rng: np.random.Generator) -> None:
    """Move the wrist targets of the arms this action drives (one draw for both arms)."""
    outward, up, forward, reach, sway = _ARM_POSE_RANGES[name]
    offset = np.array([rng.uniform(*outward), rng.uniform(*up), rng.uniform(*forward)])
    factor = rng.uniform(*reach)
    sway_factor = rng.uniform(*sway)
    for side in ("left", "right"):
        columns = ARM[side]
        if weights[columns.start] <= 0:
            continue
        target = tracks[:, columns.start:columns.start + 3]
        centre = target[:, 0].mean()
        target[:, 0] = centre + sway_factor * (target[:, 0] - centre)
        target += offset * np.array([SIGN[side], 1.0, 1.0])
        target *= factor


def _smooth_noise(rng: np.random.Generator, frames: int, channels: int, knot_seconds: float) -> np.ndarray:
    """(frames, channels) C1-smooth noise of unit scale: random knots every knot_seconds, eased between."""
    step = knot_seconds * FPS
    knots = rng.standard_normal((int(frames / step) + 3, channels))
    position = np.arange(frames) / step
    index = position.astype(int)
    frac = smoothstep(position - index)[:, None]
    return knots[index] * (1 - frac) + knots[index + 1] * frac


def _lead(signal: np.ndarray, seconds: float) -> np.ndarray:
    """The signal `seconds` ahead (held at the end): anticipation."""
    shift = int(round(seconds * FPS))
    if shift <= 0:
        return signal
    return np.concatenate([signal[shift:], np.repeat(signal[-1:], shift, axis=0)])


def _sideways(positions: np.ndarray) -> np.ndarray:
    """How much the pelvis travels to the body's left (+1) or right (-1), smoothed, a little ahead."""
    across = positions[:, 1] - positions[:, 2]  # right hip -> left hip
    across[:, 1] = 0
    across /= np.maximum(np.linalg.norm(across, axis=1, keepdims=True), 1e-9)
    velocity = np.gradient(positions[:, 0], axis=0) * FPS
    width = int(0.6 * FPS)
    lateral = np.convolve(np.pad((velocity * across).sum(axis=1), width // 2, mode="edge"),
                          np.ones(width) / width, mode="valid")[:len(positions)]
    return np.clip(_lead(lateral, 0.25) / 0.35, -1.0, 1.0)


_GAIT_ROTATION_STREAM = 31337


def _gait_rotation(tracks: np.ndarray, locomotion: np.ndarray, rng: np.random.Generator) -> None:
    """The transverse rotations of gait: the pelvis turns with the forward-swinging leg (a few
    degrees each way in a calm walk, 10+ in a lively one) and the chest turns against it, so
    the heading of a straight walk wobbles at the stride while its course does not. Without
    this, a wobbling pelvis only ever came with a turn, and real straight walks read as turns."""
    legs = tracks[:, CH["l_hip_flex"]] - tracks[:, CH["r_hip_flex"]]
    pelvis_yaw = -rng.uniform(0.07, 0.25) * legs * locomotion  # radians; the left leg forward turns it right
    tracks[:, CH["yaw_rate"]] += np.gradient(pelvis_yaw) * FPS
    tracks[:, CH["spine_twist"]] -= rng.uniform(0.6, 1.6) * pelvis_yaw


def render_rich(plan: Plan, body: Body, noise_seed: int, noise: bool = True) -> np.ndarray:
    """Blend, couple, add noise, run the kinematics -> canonical (T, 22, 3) float32."""
    frames = max(int(round(plan.duration * FPS)), int(MIN_SECONDS * FPS))
    t = np.arange(frames) / FPS
    total = np.zeros((frames, len(CHANNELS)))
    weight_sum = np.zeros((frames, len(CHANNELS)))
    cover = np.zeros((frames, len(CHANNELS)))  # how much of each channel the segments drive
    busy = np.zeros(frames)  # how much of the body is doing something (not idle)
    locomotion = np.zeros(frames)
    for segment, envelope in zip(plan.segments, _envelopes(plan, t)):
        active = envelope > 0
        if not active.any():
            continue
        if family(segment.keys[0]) != "stand":
            busy[active] = np.maximum(busy[active], envelope[active])
        for index, action in enumerate(segment.actions):
            tracks, weights = _play(segment, index, t[active])
            blend = envelope[active, None] * weights
            total[active] += blend * tracks
            weight_sum[active] += blend
            cover[active] += envelope[active, None] * (weights > 0)
            if is_gait(action.key):
                locomotion[active] = np.maximum(locomotion[active], envelope[active])
    # the standing pose fills what no segment drives (idle lead-in/out, transitions), but not the speeds
    background = np.clip(1 - cover, 0, 1) + 1e-3
    background[:, _SPEED_CHANNELS] = 1e-3
    neutral = neutral_pose()
    tracks = (total + background * neutral) / (weight_sum + background)

    # whole-body coupling
    yaw_rate = tracks[:, CH["yaw_rate"]]
    tracks[:, CH["spine_twist"]] += 0.16 * _lead(yaw_rate, 0.2)  # the chest turns first...
    stance = np.convolve(np.pad(tracks[:, CH["stance"]], 2, mode="edge"), np.ones(5) / 5, mode="valid")
    stance = np.clip(stance, -1, 1)
    roll = 3.5 * DEG * stance
    tracks[:, CH["pelvis_roll"]] += roll  # the swing-side hip drops
    tracks[:, CH["spine_side"]] -= 1.4 * roll  # the trunk leans over the stance leg
    tracks[:, CH["neck_pitch"]] += 6 * DEG * locomotion  # watching the path ahead
    _gait_rotation(tracks, locomotion, np.random.default_rng([noise_seed, _GAIT_ROTATION_STREAM]))
    idle = 1 - busy

    rng = np.random.default_rng(noise_seed)
    breath = np.sin(2 * np.pi * plan.breath * t + rng.uniform(0, 2 * np.pi))
    tracks[:, CH["spine_bend"]] -= 1.5 * DEG * breath * idle  # the chest rises on the in-breath
    for side in ("left", "right"):
        tracks[:, ARM[side].start + 1] += 0.006 * breath * idle
    if noise:
        tracks += _NOISE * _smooth_noise(rng, frames, len(CHANNELS), rng.uniform(0.25, 0.45))
        tracks[:, CH["yaw_rate"]] += 0.6 * DEG * _smooth_noise(rng, frames, 1, 0.8)[:, 0]
    positions = pose_to_positions(body, tracks, FPS)

    # the head looks where the body goes: ahead of the chest on a turn, toward a sideways path
    head_yaw = 0.14 * _lead(yaw_rate, 0.35) + 0.3 * _sideways(positions)
    neck, head = positions[:, 12], positions[:, 15] - positions[:, 12]
    c, s = np.cos(head_yaw), np.sin(head_yaw)
    positions[:, 15] = neck + np.stack([c * head[:, 0] + s * head[:, 2], head[:, 1],
                                        -s * head[:, 0] + c * head[:, 2]], -1)
    if noise:
        drift = 0.02 * _smooth_noise(rng, frames, 2, 2.5)
        drift -= drift[0]
        positions[:, :, 0] += drift[:, None, 0]
        positions[:, :, 2] += drift[:, None, 1]
        positions += np.clip(rng.normal(0.0, 0.0015, positions.shape), -0.0045, 0.0045)  # marker jitter
    return canonicalize(positions, up_rotation=np.array([1.0, 0.0, 0.0, 0.0]))


# ---- captions ----

# subject, how to refer to them again, possessive, reflexive
SUBJECTS = (("a person", "the person", "their", "themselves"), ("someone", "the person", "their", "themselves"),
            ("the person", "the person", "their", "themselves"), ("a man", "he", "his", "himself"),
            ("the man", "he", "his", "himself"), ("a guy", "he", "his", "himself"),
            ("a woman", "she", "her", "herself"), ("the woman", "she", "her", "herself"),
            ("a figure", "the figure", "its", "itself"), ("a character", "the character", "their", "themselves"),
            ("the actor", "the actor", "their", "themselves"), ("a human", "the human", "their", "themselves"))
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve")
TIMES = {1: "once", 2: "twice"}
SPEED_WORDS = {"slow": ("slowly", "leisurely", "unhurriedly", "at a slow pace", "in slow motion"),
               "fast": ("quickly", "rapidly", "briskly", "at a fast pace", "hurriedly")}
AMPLITUDE_WORDS = {"big": ("energetically", "vigorously", "enthusiastically", "with big movements"),
                   "small": ("gently", "lightly", "softly", "with small movements")}

# (verb phrase, gerund phrase, countable); {pos}: possessive, {refl}: reflexive, {side}: left/right,
# "{n} times" is added to countable ones (steps are phrased by their own templates)
VOCAB: dict[str, list[tuple[str, str, bool]]] = {
    "wave": [("waves {pos} {side} hand", "waving {pos} {side} hand", True),
             ("waves with {pos} {side} hand", "waving with {pos} {side} hand", True),
             ("waves {pos} {side} arm", "waving {pos} {side} arm", True),
             ("raises {pos} {side} hand and waves", "raising {pos} {side} hand and waving", True),
             ("waves hello with {pos} {side} hand", "waving hello with {pos} {side} hand", True),
             ("waves goodbye with the {side} hand", "waving goodbye with the {side} hand", True)],
    "wave_both": [("waves both hands", "waving both hands", True),
                  ("waves with both arms", "waving with both arms", True),
                  ("waves both arms above {pos} head", "waving both arms above {pos} head", True),
                  ("raises both hands and waves", "raising both hands and waving", True)],
    "raise": [("raises {pos} {side} hand", "raising {pos} {side} hand", False),
              ("lifts {pos} {side} arm up", "lifting {pos} {side} arm up", False),
              ("puts {pos} {side} hand up", "putting {pos} {side} hand up", False),
              ("holds the {side} arm up in the air", "holding the {side} arm up in the air", False),
              ("raises the {side} arm overhead", "raising the {side} arm overhead", False)],
    "raise_both": [("raises both hands", "raising both hands", False),
                   ("lifts both arms above {pos} head", "lifting both arms above {pos} head", False),
                   ("puts both hands up in the air", "putting both hands up in the air", False),
                   ("throws both arms up", "throwing both arms up", False)],
    "clap": [("claps", "clapping", True), ("claps {pos} hands", "clapping {pos} hands", True),
             ("claps in front of {pos} chest", "clapping in front of {pos} chest", True),
             ("applauds", "applauding", False), ("brings {pos} hands together in claps", "clapping {pos} hands", True)],
    "punch": [("punches with {pos} {side} hand", "punching with {pos} {side} hand", True),
              ("throws punches with the {side} fist", "throwing punches with the {side} fist", False),
              ("jabs with {pos} {side} arm", "jabbing with {pos} {side} arm", True),
              ("punches forward with the {side} fist", "punching forward with the {side} fist", True),
              ("boxes with the {side} hand", "boxing with the {side} hand", False)],
    "reach": [("reaches forward with {pos} {side} hand", "reaching forward with {pos} {side} hand", False),
              ("stretches {pos} {side} arm out in front", "stretching {pos} {side} arm out in front", False),
              ("extends the {side} arm forward", "extending the {side} arm forward", False)],
    "reach_both": [("reaches forward with both hands", "reaching forward with both hands", False),
                   ("stretches both arms out in front", "stretching both arms out in front", False),
                   ("holds both arms straight out ahead", "holding both arms straight out ahead", False)],
    "kick": [("kicks with {pos} {side} leg", "kicking with {pos} {side} leg", True),
             ("kicks forward with the {side} foot", "kicking forward with the {side} foot", True),
             ("kicks {pos} {side} leg out in front", "kicking {pos} {side} leg out in front", True),
             ("swings the {side} leg up in a kick", "swinging the {side} leg up in a kick", False)],
    "squat": [("squats", "squatting", True), ("squats down and stands back up", "squatting down and standing up", True),
              ("does a deep knee bend", "doing a deep knee bend", False),
              ("crouches down and gets back up", "crouching down and getting back up", True)],
    "jump": [("jumps in place", "jumping in place", True), ("jumps up", "jumping up", True),
             ("hops up and down", "hopping up and down", False), ("jumps on the spot", "jumping on the spot", True),
             ("jumps with both feet", "jumping with both feet", True)],
    "jump_forward": [("jumps forward", "jumping forward", True), ("leaps forward", "leaping forward", True),
                     ("hops forward with both feet", "hopping forward with both feet", True),
                     ("jumps ahead", "jumping ahead", True)],
    "sit_down": [("sits down", "sitting down", False), ("sits down on a chair", "sitting down on a chair", False),
                 ("lowers {refl} into a seat", "lowering {refl} into a seat", False),
                 ("takes a seat", "taking a seat", False)],
    "lunge": [("lunges forward with {pos} {side} leg", "lunging forward with {pos} {side} leg", True),
              ("steps into a lunge with the {side} foot", "stepping into a lunge with the {side} foot", True),
              ("does a lunge with the {side} leg in front", "doing a lunge with the {side} leg in front", False)],
    "bow": [("bows", "bowing", False), ("bows forward", "bowing forward", False),
            ("takes a bow", "taking a bow", False),
            ("bends forward at the waist in a bow", "bending forward at the waist", False),
            ("bows {pos} head and upper body", "bowing {pos} head and upper body", False)],
    "stand": [("stands still", "standing still", False), ("stands in place", "standing in place", False),
              ("waits standing", "waiting", False), ("stands idle", "standing idle", False),
              ("pauses", "pausing", False), ("stays standing and breathes", "standing and breathing", False)],
    "turn": [("turns {side}", "turning {side}", False), ("turns to the {side}", "turning to the {side}", False),
             ("turns around to the {side}", "turning around to the {side}", False),
             ("pivots to the {side}", "pivoting to the {side}", False),
             ("rotates {pos} body to the {side}", "rotating {pos} body to the {side}", False),
             ("turns {side} on the spot", "turning {side} on the spot", False)],
    "walk_turn": [("walks forward and turns {side}", "walking forward and turning {side}", False),
                  ("walks in a curve to the {side}", "walking in a curve to the {side}", False),
                  ("veers {side} while walking", "walking and veering {side}", False),
                  ("walks and bears to the {side}", "walking and bearing to the {side}", False)],
    "sidestep": [("sidesteps to the {side}", "sidestepping to the {side}", False),
                 ("steps sideways to the {side}", "stepping sideways to the {side}", False),
                 ("shuffles sideways to the {side}", "shuffling sideways to the {side}", False),
                 ("moves {side}ward with side steps", "moving {side}ward with side steps", False)],
    "walk_slow": [("walks slowly", "walking slowly", False), ("strolls forward", "strolling forward", False),
                  ("ambles forward", "ambling forward", False), ("walks leisurely", "walking leisurely", False),
                  ("walks forward at a slow pace", "walking forward at a slow pace", False)],
    "walk": [("walks forward", "walking forward", False), ("walks straight ahead", "walking straight ahead", False),
             ("walks", "walking", False), ("walks ahead at a steady pace", "walking ahead at a steady pace", False),
             ("goes forward on foot", "going forward on foot", False)],
    "walk_fast": [("walks quickly", "walking quickly", False), ("walks briskly", "walking briskly", False),
                  ("hurries forward", "hurrying forward", False), ("walks fast", "walking fast", False),
                  ("strides quickly forward", "striding quickly forward", False)],
    "walk_backwards": [("walks backwards", "walking backwards", False), ("steps backward", "stepping backward", False),
                       ("backs up", "backing up", False), ("walks backward", "walking backward", False),
                       ("retreats backwards", "retreating backwards", False)],
    "jog": [("jogs forward", "jogging forward", False), ("jogs", "jogging", False),
            ("runs at a slow jog", "running at a slow jog", False), ("jogs ahead", "jogging ahead", False),
            ("trots forward", "trotting forward", False)],
    "run": [("runs forward", "running forward", False), ("runs fast", "running fast", False),
            ("sprints forward", "sprinting forward", False), ("dashes ahead", "dashing ahead", False),
            ("runs", "running", False)],
}
STEP_WORDS = {"walk_slow": ("slow", "small", "unhurried", ""), "walk": ("", "", "steady"),
              "walk_fast": ("quick", "brisk", "fast", "")}


def _vocab_key(key: str) -> str:
    if key in VOCAB:
        return key
    fam = family(key)
    if side_of(key) == "both" and fam + "_both" in VOCAB:
        return fam + "_both"
    return fam


def _times(rng: np.random.Generator, n: int) -> str:
    if n in TIMES:
        return TIMES[n]
    return f"{NUMBERS[n] if rng.random() < 0.8 else n} times"


def _steps_phrase(rng: np.random.Generator, key: str, n: int, gerund: bool) -> str:
    number = NUMBERS[n] if rng.random() < 0.85 else str(n)
    if key == "walk_backwards":
        verb, ing = _pick(rng, (("takes {n} steps backwards", "taking {n} steps backwards"),
                                ("walks {n} steps backward", "walking {n} steps backward"),
                                ("steps back {n} times", "stepping back {n} times")))
    else:
        adjective = _pick(rng, STEP_WORDS[key])
        steps = f"{adjective} steps" if adjective else "steps"
        verb, ing = _pick(rng, ((f"takes {{n}} {steps} forward", f"taking {{n}} {steps} forward"),
                                (f"walks {{n}} {steps} forward", f"walking {{n}} {steps} forward"),
                                ("walks forward for {n} steps", "walking forward for {n} steps")))
    return (ing if gerund else verb).format(n=number)


def segment_phrase(rng: np.random.Generator, segment: RichSegment, subject: tuple, gerund: bool = False,
                   index: int = 0) -> str:
    """A phrase for one action of a segment (verb phrase, or -ing phrase for 'while'/'after')."""
    action = segment.actions[index]
    key = action.key
    counted = index == 0 and segment.count is not None
    if counted and key in STEP_COUNTED and rng.random() < 0.6:
        return _steps_phrase(rng, key, segment.count, gerund)
    verb, ing, countable = _pick(rng, VOCAB[_vocab_key(key)])
    text = ing if gerund else verb
    side = side_of(key)
    text = text.format(pos=subject[2], refl=subject[3], side=side if side in ("left", "right") else "")
    if counted and countable and key not in STEP_COUNTED and rng.random() < 0.65:
        text += " " + _times(rng, segment.count)
    if index == 0:
        words = AMPLITUDE_WORDS.get(segment.amplitude) if rng.random() < 0.5 else None
        if words is None and not is_gait(key):
            words = SPEED_WORDS.get(segment.speed)
        if words and rng.random() < 0.7:
            adverb = _pick(rng, words)
            if adverb.endswith("ly") and " " not in adverb and rng.random() < 0.4:
                text = f"{adverb} {text}"
            else:
                text = f"{text} {adverb}"
    if family(key) == "stand" and rng.random() < 0.5:
        seconds = segment.end - segment.start
        text += " for a moment" if seconds < 1.5 else f" for about {NUMBERS[int(round(seconds))]} seconds"
    return text


def _phrases(rng: np.random.Generator, segment: RichSegment, subject: tuple, gerund: bool) -> str:
    if len(segment.actions) == 1:
        return segment_phrase(rng, segment, subject, gerund)
    if rng.random() < 0.6:  # "waves the left hand while walking"
        first, second = 0, 1
    else:
        first, second = 1, 0
    main = segment_phrase(rng, segment, subject, gerund, first)
    return f"{main} while {segment_phrase(rng, segment, subject, True, second)}"


def caption(rng: np.random.Generator, segments: list[RichSegment]) -> str:
    subject = _pick(rng, SUBJECTS)
    s, again = subject[0], subject[1]
    n = len(segments)
    p = [_phrases(rng, segment, subject, False) for segment in segments]
    if n == 1:
        text = _pick(rng, ("{s} {0}", "{s} {0}", "{s} just {0}", "in this clip {s} {0}")).format(*p, s=s)
    elif n == 2:
        shape = int(rng.integers(9))
        if shape in (5, 6, 7):
            g = [_phrases(rng, segment, subject, True) for segment in segments]
            text = ("{s} {1} after {g0}", "after {g0}, {s} {1}", "{s} {0} before {g1}")[shape - 5].format(
                *p, s=s, g0=g[0], g1=g[1])
        else:
            text = ("{s} {0}, then {1}", "{s} {0} and then {1}", "{s} first {0}, then {1}",
                    "{s} {0}, after that {a} {1}", "{s} {0} and finally {1}", "{s} {0}. then {a} {1}",
                    "", "", "{s} {0}, and afterwards {1}")[shape].format(*p, s=s, a=again)
    else:
        middle = ", then ".join(p[1:-1])
        shape = int(rng.integers(5))
        if shape == 4:
            g0 = _phrases(rng, segments[0], subject, True)
            text = f"after {g0}, {s} " + ", then ".join(p[1:-1]) + f" and finally {p[-1]}"
        else:
            text = ("{s} {0}, {m}, and then {l}", "{s} first {0}, then {m} and finally {l}",
                    "{s} {0}, then {m}, then {l}", "{s} {0}, after that {a} {m}, and finally {l}")[shape].format(
                p[0], m=", ".join(p[1:-1]) if shape == 0 else middle, l=p[-1], s=s, a=again)
    if rng.random() < 0.3:
        text = text[0].upper() + text[1:] + "."
    return text


def captions_for(rng: np.random.Generator, segments: list[RichSegment], count: int) -> list[str]:
    captions: list[str] = []
    for _ in range(6 * count):
        text = caption(rng, segments)
        if text not in captions:
            captions.append(text)
        if len(captions) == count:
            break
    return captions


# ---- items ----

def _labels(plan: Plan, seed: int | None, index: int | None) -> dict:
    keys = [" + ".join(segment.keys) for segment in plan.segments]
    return {"actions": keys, "seed": seed, "index": index, "variant": "rich",
            "segments": [{"keys": list(segment.keys), "start": round(segment.start, 4), "end": round(segment.end, 4),
                          "count": segment.count, "speed": segment.speed, "amplitude": segment.amplitude,
                          "rate": round(float(segment.rate), 4)} for segment in plan.segments]}


def _build(rng: np.random.Generator, plan: Plan, noise: bool = True):
    body = random_body_rich(rng)
    noise_seed = int(rng.integers(2 ** 62))
    positions = render_rich(plan, body, noise_seed, noise=noise)
    captions = captions_for(rng, plan.segments, count=int(rng.integers(3, 6)))
    return positions, captions


def make_item(index: int, seed: int = 0, noise: bool = True) -> MotionItem:
    """Item `index` of `synthetic:N:seed:rich`, the same for every N > index."""
    from inference_server.data.synthetic import split_of

    rng = np.random.default_rng([seed, index, RICH_STREAM])
    plan = plan_segments(rng, choose_actions(rng))
    positions, captions = _build(rng, plan, noise)
    labels = _labels(plan, seed, index)
    return MotionItem(id=f"synthetic_rich_{seed}_{index:06d}", name=", then ".join(labels["actions"]),
                      motion=Motion.smpl22(positions, FPS), captions=captions,
                      source=f"synthetic:{index}:{seed}:rich", split=split_of(seed, index), labels=labels)


def item_for(keys: list[str], seed: int = 0, noise: bool = True) -> MotionItem:
    """A rich clip playing the named actions in order ("a+b": arm action a on gait b), for tests/demos."""
    try:
        chosen = [tuple(LIBRARY[name] for name in key.split("+")) for key in keys]
    except KeyError as error:
        raise DataError(f"synthetic: unknown action {error.args[0]!r} (known: {', '.join(LIBRARY)})") from None
    rng = np.random.default_rng([seed, RICH_STREAM])
    plan = plan_segments(rng, chosen, fit=False)
    positions, captions = _build(rng, plan, noise)
    return MotionItem(id=f"synthetic_rich_{'_'.join(keys)}_{seed}", name=", then ".join(keys),
                      motion=Motion.smpl22(positions, FPS), captions=captions, source="synthetic:rich",
                      labels=_labels(plan, seed, None))
