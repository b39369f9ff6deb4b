"""The action library of `synthetic:`: each action writes some pose tracks and says what it is.

An action's make(rng, t, duration) gets the local times t (seconds from the action's
start; a little before 0 and after `duration` where it blends with its neighbours) and
returns (tracks (len(t), C), weights (C,)): the channels it drives and how strongly
(arm swing of a gait is weak, so an arm action on top of it wins). Angles in radians.
Sides follow the SMPL convention: the body's left is +X when facing +Z.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from inference_server.data.synthetic_body import ARM, CH, CHANNELS, LEG, SIGN, neutral_pose

DEG = np.pi / 180


@dataclass(frozen=True)
class Action:
    key: str  # e.g. "wave_left"
    kind: str  # "locomotion", "arms", "lower" or "idle"
    phrases: tuple[str, ...]  # third-person verb phrases: "waves the left hand"
    gerunds: tuple[str, ...]  # "-ing" phrases for "while ...": "waving the left hand"
    duration: tuple[float, float]  # seconds (min, max)
    make: Callable  # (rng, t, duration) -> (tracks, weights)
    final: bool = False  # only as the last segment of a clip (ends sitting)


def blank(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.tile(neutral_pose(), (len(t), 1)), np.zeros(len(CHANNELS))


def keyframes(t: np.ndarray, times, values) -> np.ndarray:
    """Cosine-eased interpolation through (times, values); held before the first and after the last."""
    times = np.asarray(times, dtype=float)
    values = np.asarray(values, dtype=float)
    clipped = np.clip(t, times[0], times[-1])
    segment = np.clip(np.searchsorted(times, clipped, side="right") - 1, 0, len(times) - 2)
    u = (clipped - times[segment]) / (times[segment + 1] - times[segment])
    ease = (1 - np.cos(np.pi * u)) / 2
    return values[segment] + (values[segment + 1] - values[segment]) * ease


def set_arm(tracks, weights, side: str, target, pole, weight: float = 1.0) -> None:
    """Wrist target and elbow pole, relative to the shoulder in the chest frame (x mirrored per side)."""
    sign = SIGN[side]
    columns = ARM[side]
    values = [np.broadcast_to(v, len(tracks)) for v in (*target, *pole)]
    for offset, value in enumerate(values):
        tracks[:, columns.start + offset] = value * (sign if offset in (0, 3) else 1.0)
    weights[columns] = weight


def set_leg(tracks, weights, side: str, flex, abd, knee, ankle, weight: float = 1.0) -> None:
    for offset, value in enumerate((flex, abd, knee, ankle)):
        tracks[:, LEG[side].start + offset] = value
    weights[LEG[side]] = weight


def set_channels(tracks, weights, weight: float = 1.0, **values) -> None:
    for name, value in values.items():
        tracks[:, CH[name]] = value
        weights[CH[name]] = weight


# ---- locomotion ----

@dataclass(frozen=True)
class GaitStyle:
    frequency: tuple[float, float]  # cycles per second (two steps)
    hip: tuple[float, float]  # hip flexion amplitude, degrees
    knee: tuple[float, float]  # peak knee bend in the swing, degrees
    stance_knee: float  # extra knee bend in mid stance, degrees
    stance: float  # fraction of the cycle a foot is on the floor (< 0.5: flight phases)
    lean: float  # trunk lean, degrees
    arm_swing: float  # wrist travel, fraction of the arm's reach
    bent_arms: bool
    flight: float  # height of the flight arc, metres


GAITS = {
    "walk": GaitStyle((0.85, 1.0), (20, 27), (50, 62), 8, 0.6, 2, 0.14, False, 0.0),
    "walk_slow": GaitStyle((0.55, 0.7), (13, 18), (40, 50), 5, 0.65, 1, 0.06, False, 0.0),
    "walk_fast": GaitStyle((1.05, 1.2), (28, 33), (60, 70), 10, 0.57, 4, 0.2, False, 0.0),
    "jog": GaitStyle((1.25, 1.4), (28, 34), (80, 95), 25, 0.42, 7, 0.16, True, 0.04),
    "run": GaitStyle((1.4, 1.6), (36, 44), (100, 115), 35, 0.36, 12, 0.22, True, 0.08),
}
HEEL_RISE = 30 * DEG  # foot pitch at toe-off
LEG_LENGTH = 0.78  # metres, to turn hip swing into body speed during flight


def gait(name: str, backwards: bool = False, turn_deg: float = 0.0):
    """Cyclic gait. Each leg spends `stance` of the cycle on the floor, its hip going from +A to
    -A at a constant rate (so in double support both feet move back together and stay planted),
    then swings forward, knee bent, landing with the hip at +A and at rest. Walking backwards
    is the same cycle played backwards in time."""
    style = GAITS[name]

    def make(rng, t, duration):
        tracks, weights = blank(t)
        f = rng.uniform(*style.frequency)
        a = rng.uniform(*style.hip) * DEG * (0.75 if backwards else 1.0)
        k = rng.uniform(*style.knee) * DEG
        cycle = f * t if not backwards else -f * t
        psi = {"left": np.mod(cycle, 1.0), "right": np.mod(cycle + 0.5, 1.0)}
        legs = {side: leg_cycle(psi[side], style, a, k) for side in psi}
        in_stance = {side: psi[side] < style.stance for side in psi}
        for side, other in (("left", "right"), ("right", "left")):
            flex, knee, pitch = legs[side]
            over_a_stance = ~in_stance[side] & in_stance[other]  # (not in a flight phase)
            knee = np.where(over_a_stance, clear_the_floor(flex, knee, pitch, legs[other], psi[side], style), knee)
            set_leg(tracks, weights, side, flex, 0.0, knee, pitch - (flex - knee))
            arm_phase = -np.sin(2 * np.pi * (psi[side] - style.stance / 2))  # against the same-side leg
            if style.bent_arms:
                target, pole = (0.06, -0.28, 0.12 + style.arm_swing * arm_phase), (0.2, -0.3, -1.0)
            else:
                target, pole = (0.07, -0.5, 0.03 + style.arm_swing * arm_phase), (0.3, 0.0, -1.0)
            set_arm(tracks, weights, side, target, pole, weight=0.1)
        only_left = in_stance["left"] & ~in_stance["right"]
        only_right = in_stance["right"] & ~in_stance["left"]
        airborne = ~in_stance["left"] & ~in_stance["right"]
        speed = 2 * LEG_LENGTH * np.sin(a) * f / style.stance * (-1 if backwards else 1)
        flight_phase = np.mod(cycle - style.stance, 0.5) / (0.5 - style.stance) if style.stance < 0.5 else 0 * t
        set_channels(tracks, weights, stance=only_left * 1.0 - only_right * 1.0,
                     spine_bend=style.lean * DEG * (-0.5 if backwards else 1.0),
                     bump=style.flight * np.sin(np.pi * np.clip(flight_phase, 0, 1)) * airborne,
                     lock=1.0 - airborne, forward_speed=speed,
                     yaw_rate=turn_rate(t, duration, turn_deg))
        return tracks, weights
    return make


def leg_cycle(psi: np.ndarray, style: GaitStyle, a: float, k: float):
    """Hip flexion, knee angle and foot pitch of one leg at cycle fraction psi (0 = foot lands)."""
    s = style.stance
    stance = psi < s
    u_stance = np.clip(psi / s, 0, 1)
    u_swing = np.clip((psi - s) / (1 - s), 0, 1)
    flex = np.where(stance, a * (1 - 2 * u_stance), -a * np.cos(np.pi * u_swing))
    swing_knee = k * np.sin(np.pi * u_swing ** 0.75) ** 1.2
    knee = 5 * DEG + np.where(stance, style.stance_knee * DEG * np.sin(np.pi * u_stance), swing_knee)
    # foot pitch: lands toes up, flat, rolls onto the ball before toe-off, toes up again in the swing
    land = 10 * DEG * (1 - smoothstep(u_stance / 0.25))
    heel = -HEEL_RISE * smoothstep((u_stance - 0.6) / 0.4)
    pitch = np.where(stance, land + heel, -HEEL_RISE + (HEEL_RISE + 10 * DEG) * smoothstep(u_swing / 0.5))
    return flex, knee, pitch


# nominal leg geometry (synthetic_body.random_body scales thigh and shin together)
THIGH, SHIN, HEEL_HEIGHT, FOOT = 0.385, 0.40, 0.075, (-0.05, 0.13)


def _below_ankle(pitch):
    """How far a foot's lowest point (heel or ball) is below its ankle at this pitch."""
    ball_drop = -(FOOT[0] * np.cos(pitch) + FOOT[1] * np.sin(pitch))
    return np.maximum(HEEL_HEIGHT * np.cos(pitch), ball_drop + 0.025)


def clear_the_floor(flex, knee, pitch, stance_leg, psi, style: GaitStyle):
    """Swing knee bent at least enough for the foot to pass a few cm above the stance foot's floor."""
    stance_flex, stance_knee, stance_pitch = stance_leg
    floor = THIGH * np.cos(stance_flex) + SHIN * np.cos(stance_flex - stance_knee) + _below_ankle(stance_pitch)
    u = np.clip((psi - style.stance) / (1 - style.stance), 0, 1)
    clearance = 0.005 + 0.03 * np.sin(np.pi * u)
    shin_drop = np.clip((floor - clearance - _below_ankle(pitch) - THIGH * np.cos(flex)) / SHIN, -1.0, 1.0)
    return np.maximum(knee, flex + np.arccos(shin_drop))


def smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3 - 2 * x)


def turn_rate(t: np.ndarray, duration: float, total_deg: float) -> np.ndarray:
    """Yaw rate (rad/s) turning by total_deg over [0, duration], starting and ending gently."""
    inside = (t >= 0) & (t <= duration)
    return inside * total_deg * DEG / duration * (1 - np.cos(2 * np.pi * t / duration))


def sidestep(direction: str):
    leading = direction  # this leg steps out while the other one closes in

    def make(rng, t, duration):
        tracks, weights = blank(t)
        phase = 2 * np.pi * rng.uniform(0.7, 0.9) * t
        spread = rng.uniform(0.10, 0.13)
        abd = np.arcsin(spread * 0.5 * np.sin(phase) / 0.8)
        lift = rng.uniform(35, 45) * DEG
        for side in ("left", "right"):
            shift = 0.0 if side == leading else np.pi
            knee = lift * np.maximum(0.0, np.cos(phase + shift)) ** 1.5 + 4 * DEG
            set_leg(tracks, weights, side, 0.5 * knee, abd, knee, 0.5 * knee)
            set_arm(tracks, weights, side, (0.1, -0.5, 0.04), (0.3, 0.0, -1.0), weight=0.1)
        leading_lifted = np.cos(phase) > 0
        set_channels(tracks, weights, stance=np.where(leading_lifted, -1.0, 1.0) * SIGN[leading])
        return tracks, weights
    return make


def turn_in_place(total_deg: float):
    def make(rng, t, duration):
        tracks, weights = blank(t)
        phase = 2 * np.pi * rng.uniform(0.85, 1.0) * t
        for side, shift in (("left", 0.0), ("right", np.pi)):
            lift = np.maximum(0.0, np.sin(phase + shift)) ** 1.5
            knee = 40 * DEG * lift + 3 * DEG
            set_leg(tracks, weights, side, 0.5 * knee, 0.0, knee, 0.5 * knee)
        set_channels(tracks, weights, yaw_rate=turn_rate(t, duration, total_deg),
                     stance=np.where(np.sin(phase) > 0, -1.0, 1.0))
        return tracks, weights
    return make


# ---- arms ----

REST_TARGET, REST_POLE = (0.06, -0.52, 0.03), (0.3, 0.0, -1.0)


def wave(sides: tuple[str, ...]):
    def make(rng, t, duration):
        tracks, weights = blank(t)
        f = rng.uniform(1.8, 2.8)
        height = rng.uniform(0.25, 0.42)
        for side in sides:
            sway = 0.13 * np.sin(2 * np.pi * f * t + (np.pi if side == "right" and len(sides) == 2 else 0))
            set_arm(tracks, weights, side, (0.22 + sway, height, 0.10), (1.0, -1.0, -0.3))
        return tracks, weights
    return make


def raise_hands(sides: tuple[str, ...]):
    def make(rng, t, duration):
        tracks, weights = blank(t)
        lean = rng.uniform(0.04, 0.14)
        for side in sides:
            set_arm(tracks, weights, side, (0.10, 0.52, lean), (1.0, 0.0, -0.3))
        return tracks, weights
    return make


def clap():
    def make(rng, t, duration):
        tracks, weights = blank(t)
        f = rng.uniform(1.6, 2.6)
        gap = 0.03 + rng.uniform(0.18, 0.28) * (0.5 + 0.5 * np.cos(2 * np.pi * f * t))
        for side in ("left", "right"):
            set_arm(tracks, weights, side, (-0.175 + gap / 2, -0.12, 0.33), (1.0, -1.0, -0.5))
        return tracks, weights
    return make


def punch(side: str):
    def make(rng, t, duration):
        tracks, weights = blank(t)
        period = rng.uniform(0.45, 0.7)
        local = np.mod(t, period) / period
        extend = np.exp(-((local - 0.35) / 0.16) ** 2)  # one quick jab per period
        guard = np.array([-0.07, -0.02, 0.20])
        for arm in ("left", "right"):
            if arm == side:
                target = (guard[0] - 0.05 * extend, guard[1] + 0.04 * extend, guard[2] + 0.33 * extend)
            else:
                target = tuple(guard)
            set_arm(tracks, weights, arm, target, (0.6, -1.0, 0.0))
        set_channels(tracks, weights, weight=0.8, spine_twist=-SIGN[side] * 12 * DEG * extend)
        return tracks, weights
    return make


def reach(sides: tuple[str, ...]):
    def make(rng, t, duration):
        tracks, weights = blank(t)
        height = rng.uniform(-0.12, 0.05)
        for side in sides:
            set_arm(tracks, weights, side, (-0.04, height, 0.52), (0.5, -1.0, 0.0))
        set_channels(tracks, weights, weight=0.7, spine_bend=rng.uniform(6, 14) * DEG)
        return tracks, weights
    return make


# ---- lower body ----

def kick(side: str):
    other = "right" if side == "left" else "left"

    def make(rng, t, duration):
        tracks, weights = blank(t)
        period = rng.uniform(1.1, 1.5)
        local = np.mod(t, period) / period
        height = rng.uniform(65, 90)
        flex = keyframes(local, [0, 0.25, 0.5, 0.75, 1.0], [0, -15, height, 10, 0]) * DEG
        knee = keyframes(local, [0, 0.25, 0.5, 0.75, 1.0], [3, 65, 8, 40, 3]) * DEG
        set_leg(tracks, weights, side, flex, 0.0, knee, knee - flex + 15 * DEG)
        set_leg(tracks, weights, other, 0.0, 0.0, 10 * DEG, 10 * DEG)
        set_channels(tracks, weights, spine_bend=-0.15 * flex, stance=-SIGN[side])
        for arm in ("left", "right"):
            set_arm(tracks, weights, arm, (0.12, -0.35, 0.12), (1.0, -0.5, -0.5), weight=0.5)
        return tracks, weights
    return make


def squat():
    def make(rng, t, duration):
        tracks, weights = blank(t)
        period = rng.uniform(2.0, 2.8)
        local = np.mod(t, period) / period
        depth = rng.uniform(0.8, 1.05)
        flex = keyframes(local, [0, 0.35, 0.6, 1.0], [0, 95, 95, 0]) * DEG * depth
        knee = keyframes(local, [0, 0.35, 0.6, 1.0], [0, 120, 120, 0]) * DEG * depth
        down = (flex / (95 * DEG))[:, None]  # the arms come forward as the body goes down
        target = np.array(REST_TARGET) + down * (np.array([0.02, -0.05, 0.5]) - np.array(REST_TARGET))
        for side in ("left", "right"):
            set_leg(tracks, weights, side, flex, 0.0, knee, knee - flex)
            set_arm(tracks, weights, side, target.T, (0.5, -1.0, 0.0), weight=0.8)
        set_channels(tracks, weights, spine_bend=0.3 * flex)
        return tracks, weights
    return make


def jump(forward: bool):
    def make(rng, t, duration):
        tracks, weights = blank(t)
        period = rng.uniform(1.4, 1.8)
        local = np.mod(t, period)
        times = [0, 0.35, 0.5, 0.85, 1.05, 1.4]
        flex = keyframes(local, times, [0, 50, 0, 20, 45, 0]) * DEG
        knee = keyframes(local, times, [0, 80, 0, 30, 70, 0]) * DEG
        ankle = keyframes(local, times, [0, 30, -25, 10, 25, 0]) * DEG
        air = (local > 0.5) & (local < 0.85)
        u = np.clip((local - 0.5) / 0.35, 0, 1)
        for side in ("left", "right"):
            set_leg(tracks, weights, side, flex, 0.0, knee, ankle)
            arm_y = keyframes(local, times, [-0.52, -0.45, 0.2, 0.0, -0.3, -0.52])
            arm_z = keyframes(local, times, [0.03, -0.2, 0.4, 0.35, 0.3, 0.03])
            set_arm(tracks, weights, side, (0.06, arm_y, arm_z), (0.3, 0.0, -1.0), weight=0.8)
        set_channels(tracks, weights, spine_bend=0.5 * flex, bump=rng.uniform(0.18, 0.32) * 4 * u * (1 - u) * air,
                     lock=1.0 - air, forward_speed=(rng.uniform(1.2, 2.0) if forward else 0.0) * air)
        return tracks, weights
    return make


def sit_down():
    def make(rng, t, duration):
        tracks, weights = blank(t)
        flex = keyframes(t, [0, 1.3], [0, rng.uniform(80, 95)]) * DEG
        knee = keyframes(t, [0, 1.3], [0, rng.uniform(85, 100)]) * DEG
        for side in ("left", "right"):
            set_leg(tracks, weights, side, flex, 4 * DEG, knee, knee - flex)
            set_arm(tracks, weights, side, (0.1, -0.42, 0.25), (0.3, 0.0, -1.0), weight=0.5)
        set_channels(tracks, weights, spine_bend=keyframes(t, [0, 0.8, 1.6], [0, 30, 8]) * DEG)
        return tracks, weights
    return make


def lunge(side: str):
    back = "right" if side == "left" else "left"

    def make(rng, t, duration):
        tracks, weights = blank(t)
        period = rng.uniform(2.2, 3.0)
        local = np.mod(t, period) / period
        # step forward with the front leg (back leg carries the body), sink until the
        # back knee is near the floor and the back shin lies flat, then step back
        times = [0, 0.2, 0.4, 0.65, 0.85, 1.0]
        front_flex = keyframes(local, times, [0, 60, 85, 85, 60, 0]) * DEG
        front_knee = keyframes(local, times, [0, 80, 90, 90, 80, 0]) * DEG
        back_flex = keyframes(local, times, [0, 0, -10, -10, 0, 0]) * DEG
        back_knee = keyframes(local, times, [0, 5, 95, 95, 5, 0]) * DEG
        back_ankle = keyframes(local, times, [0, 0, 10, 10, 0, 0]) * DEG
        set_leg(tracks, weights, side, front_flex, 0.0, front_knee, front_knee - front_flex)
        set_leg(tracks, weights, back, back_flex, 0.0, back_knee, back_ankle)
        front_carries = (local >= 0.3) & (local < 0.7)
        set_channels(tracks, weights, stance=np.where(front_carries, SIGN[side], -SIGN[side]))
        return tracks, weights
    return make


def bow():
    def make(rng, t, duration):
        tracks, weights = blank(t)
        depth = rng.uniform(35, 60)
        bend = keyframes(t, [0, 0.35 * duration, 0.65 * duration, duration], [0, depth, depth, 0]) * DEG
        set_channels(tracks, weights, spine_bend=bend, neck_pitch=0.3 * bend)
        return tracks, weights
    return make


def stand():
    def make(rng, t, duration):
        tracks, weights = blank(t)
        set_channels(tracks, weights, spine_side=2 * DEG * np.sin(2 * np.pi * rng.uniform(0.2, 0.4) * t))
        return tracks, weights
    return make


def _build_library() -> dict[str, Action]:
    actions = [
        Action("walk", "locomotion", ("walks forward", "walks straight ahead", "takes a few steps forward",
                                      "is walking"), ("walking", "walking forward"), (2.5, 5.0), gait("walk")),
        Action("walk_slow", "locomotion", ("walks slowly", "strolls slowly forward", "walks forward at a slow pace"),
               ("walking slowly", "strolling"), (2.5, 5.0), gait("walk_slow")),
        Action("walk_fast", "locomotion", ("walks quickly", "walks fast", "walks briskly forward"),
               ("walking quickly", "walking briskly"), (2.5, 5.0), gait("walk_fast")),
        Action("jog", "locomotion", ("jogs forward", "jogs", "runs at a slow jog"), ("jogging",), (2.0, 4.5),
               gait("jog")),
        Action("run", "locomotion", ("runs forward", "runs fast", "sprints forward"), ("running",), (2.0, 4.0),
               gait("run")),
        Action("walk_backwards", "locomotion", ("walks backwards", "walks backward", "steps backwards"),
               ("walking backwards",), (2.5, 4.5), gait("walk", backwards=True)),
        Action("bow", "idle", ("bows", "bows forward", "takes a bow"), ("bowing",), (1.8, 3.0), bow()),
        Action("stand", "idle", ("stands still", "stands in place", "waits standing"), ("standing still",),
               (1.5, 3.0), stand()),
        Action("squat", "lower", ("squats down and stands back up", "does a squat", "squats"), ("squatting",),
               (2.2, 5.0), squat()),
        Action("jump", "lower", ("jumps in place", "jumps up", "hops up and down"), ("jumping",), (1.5, 4.5),
               jump(forward=False)),
        Action("jump_forward", "lower", ("jumps forward", "leaps forward", "does a forward jump"),
               ("jumping forward",), (1.5, 3.5), jump(forward=True)),
        Action("sit_down", "lower", ("sits down", "sits down on a chair", "lowers themselves into a seat"),
               ("sitting down",), (2.0, 3.5), sit_down(), final=True),
        Action("clap", "arms", ("claps", "claps their hands", "claps hands in front of the chest"),
               ("clapping", "clapping their hands"), (1.5, 3.5), clap()),
        Action("wave_both", "arms", ("waves both hands", "waves with both hands", "waves both arms"),
               ("waving both hands",), (1.5, 3.5), wave(("left", "right"))),
        Action("raise_both", "arms", ("raises both hands", "lifts both arms up", "puts both hands up in the air"),
               ("raising both hands",), (1.5, 3.0), raise_hands(("left", "right"))),
        Action("reach_both", "arms", ("reaches forward with both hands", "stretches both arms forward"),
               ("reaching forward with both hands",), (1.5, 3.0), reach(("left", "right"))),
    ]
    for side in ("left", "right"):
        actions += [
            Action(f"sidestep_{side}", "locomotion", (f"sidesteps to the {side}", f"steps sideways to the {side}",
                                                   f"shuffles sideways to the {side}"),
                   (f"sidestepping to the {side}",), (2.5, 5.0), sidestep(side)),
            Action(f"turn_{side}", "locomotion",
                   (f"turns {side}", f"turns to the {side}", f"turns around to the {side}"),
                   (f"turning {side}",), (1.5, 3.0), turn_in_place(90.0 if side == "left" else -90.0)),
            Action(f"walk_turn_{side}", "locomotion", (f"walks forward and turns {side}",
                                                        f"walks in a curve to the {side}",
                                                        f"walks while turning to the {side}"),
                   (f"walking and turning {side}",), (3.0, 5.5), gait("walk", turn_deg=90 if side == "left" else -90)),
            Action(f"wave_{side}", "arms", (f"waves the {side} hand", f"waves with the {side} hand",
                                            f"waves their {side} hand"), (f"waving the {side} hand",), (1.5, 3.5),
                   wave((side,))),
            Action(f"raise_{side}", "arms", (f"raises the {side} hand", f"lifts the {side} arm up",
                                             f"puts the {side} hand up"), (f"raising the {side} hand",), (1.5, 3.0),
                   raise_hands((side,))),
            Action(f"punch_{side}", "arms", (f"punches with the {side} hand", f"throws punches with the {side} fist",
                                             f"punches forward with the {side} arm"),
                   (f"punching with the {side} hand",), (1.5, 3.0), punch(side)),
            Action(f"reach_{side}", "arms", (f"reaches forward with the {side} hand",
                                             f"stretches the {side} arm forward"),
                   (f"reaching forward with the {side} hand",), (1.5, 3.0), reach((side,))),
            Action(f"kick_{side}", "lower", (f"kicks with the {side} leg", f"kicks forward with the {side} foot",
                                             f"does a {side} kick"), (f"kicking with the {side} leg",), (1.3, 3.0),
                   kick(side)),
            Action(f"lunge_{side}", "lower", (f"lunges forward with the {side} leg",
                                              f"does a lunge with the {side} leg forward",
                                              f"steps into a lunge with the {side} foot"),
                   (f"lunging with the {side} leg",), (2.2, 3.5), lunge(side)),
        ]
    return {action.key: action for action in actions}


LIBRARY: dict[str, Action] = _build_library()
