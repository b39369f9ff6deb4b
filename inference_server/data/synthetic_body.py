"""The procedural body behind `synthetic:`: pose tracks -> SMPL-22 positions by forward kinematics.

Body frame: Y up, facing +Z, the body's left on +X (SMPL convention). A pose is a set of
per-frame tracks (CHANNELS): heading rate, pelvis and spine angles, leg joint angles, and
for each arm a wrist target and an elbow pole relative to the shoulder in the chest frame
(solved by two-bone IK, so every bone keeps its length). Locomotion is not scripted: the
root moves so that the lower (stance) foot stays where it is on the floor, and every
frame is lifted so that the lowest foot point touches the floor (plus a flight "bump");
the "lock" track turns the stance-foot rule off (airborne jumps use explicit speeds), and the
"stance" track names the stance foot (+1 left, -1 right; near 0: the lower foot), as a gait
knows it better than foot heights do around heel strike.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CHANNELS = [
    "yaw_rate", "pelvis_pitch", "pelvis_roll", "spine_bend", "spine_side", "spine_twist", "neck_pitch",
    "l_hip_flex", "l_hip_abd", "l_knee", "l_ankle", "r_hip_flex", "r_hip_abd", "r_knee", "r_ankle",
    "l_target_x", "l_target_y", "l_target_z", "l_pole_x", "l_pole_y", "l_pole_z",
    "r_target_x", "r_target_y", "r_target_z", "r_pole_x", "r_pole_y", "r_pole_z",
    "bump", "forward_speed", "side_speed", "lock", "stance",
]
CH = {name: i for i, name in enumerate(CHANNELS)}
LEG = {"left": slice(CH["l_hip_flex"], CH["l_ankle"] + 1), "right": slice(CH["r_hip_flex"], CH["r_ankle"] + 1)}
ARM = {"left": slice(CH["l_target_x"], CH["l_pole_z"] + 1), "right": slice(CH["r_target_x"], CH["r_pole_z"] + 1)}
SIGN = {"left": 1.0, "right": -1.0}  # x of the body's side


@dataclass
class Body:
    """Rest measurements in metres (left side; the right mirrors x)."""
    hip: np.ndarray  # pelvis -> left hip
    thigh: float
    shin: float
    foot: np.ndarray  # ankle -> ball of the foot (SMPL foot joint), at rest
    ankle_height: float  # ankle joint above the sole
    spine: np.ndarray  # (5, 3): pelvis->spine1, spine1->spine2, spine2->spine3, spine3->neck, neck->head
    collar: np.ndarray  # spine3 -> left collar
    shoulder: np.ndarray  # left collar -> left shoulder
    upper_arm: float
    forearm: float

    @property
    def arm_reach(self) -> float:
        return self.upper_arm + self.forearm


def random_body(rng: np.random.Generator) -> Body:
    """An SMPL-like adult (about 1.50-1.95 m) with mildly varied proportions."""
    size = rng.uniform(0.88, 1.12)
    leg, arm, torso, width = size * rng.uniform(0.95, 1.05, size=4)
    return Body(
        hip=np.array([0.068 * width, -0.09 * torso, 0.0]),
        thigh=0.385 * leg, shin=0.40 * leg,
        foot=np.array([0.0, -0.05, 0.13]) * size, ankle_height=0.075 * size,
        spine=np.array([[0, 0.11, -0.01], [0, 0.135, 0.02], [0, 0.055, 0.0], [0, 0.21, -0.03], [0, 0.09, 0.04]])
        * torso,
        collar=np.array([0.075 * width, 0.115 * torso, -0.02 * torso]),
        shoulder=np.array([0.10 * width, 0.03 * torso, -0.01 * torso]),
        upper_arm=0.27 * arm, forearm=0.25 * arm)


def neutral_pose() -> np.ndarray:
    """Standing, arms hanging at the sides with the elbows pointing back."""
    pose = np.zeros(len(CHANNELS))
    for side, sign in SIGN.items():
        start = ARM[side].start
        pose[start:start + 6] = [0.06 * sign, -0.52, 0.03, 0.3 * sign, 0.0, -1.0]
    pose[CH["lock"]] = 1.0
    return pose


def rot_x(angle):
    c, s = np.cos(angle), np.sin(angle)
    z, o = np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


def rot_y(angle):
    c, s = np.cos(angle), np.sin(angle)
    z, o = np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def rot_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    z, o = np.zeros_like(angle), np.ones_like(angle)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def apply(rotation: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """(T,3,3) x (T,3) or (3,) -> (T,3)."""
    if vector.ndim == 1:
        return rotation @ vector
    return np.einsum("tij,tj->ti", rotation, vector)


def leg_points(body: Body, tracks: np.ndarray, side: str):
    """Hip, knee, ankle, ball of the foot in the pelvis frame, each (T, 3)."""
    sign = SIGN[side]
    flex, abd, knee, ankle = (tracks[:, LEG[side].start + k] for k in range(4))
    hip = body.hip * np.array([sign, 1, 1])
    cos_abd, sin_abd = np.cos(abd), np.sin(abd) * sign
    thigh_dir = np.stack([sin_abd, -cos_abd * np.cos(flex), cos_abd * np.sin(flex)], -1)
    shin_angle = flex - knee  # the shin swings back from the thigh by the knee angle
    shin_dir = np.stack([sin_abd, -cos_abd * np.cos(shin_angle), cos_abd * np.sin(shin_angle)], -1)
    knee_point = hip + body.thigh * thigh_dir
    ankle_point = knee_point + body.shin * shin_dir
    foot_angle = shin_angle + ankle  # the foot turns with the shin, plus the ankle's own angle
    _, fy, fz = body.foot
    foot = np.stack([np.full_like(flex, 0.02 * sign), fy * np.cos(foot_angle) + fz * np.sin(foot_angle),
                     -fy * np.sin(foot_angle) + fz * np.cos(foot_angle)], -1)
    return np.broadcast_to(hip, knee_point.shape), knee_point, ankle_point, ankle_point + foot


def two_bone_ik(root: np.ndarray, target: np.ndarray, pole: np.ndarray, upper: float, lower: float):
    """Middle and end joints of a two-bone chain reaching for target, bending toward pole."""
    offset = target - root
    distance = np.linalg.norm(offset, axis=-1, keepdims=True)
    reach = np.clip(distance, 1e-6 + abs(upper - lower), 0.995 * (upper + lower))
    axis = offset / np.maximum(distance, 1e-9)
    along = (reach ** 2 + upper ** 2 - lower ** 2) / (2 * reach)
    height = np.sqrt(np.maximum(upper ** 2 - along ** 2, 0.0))
    bend = pole - np.sum(pole * axis, axis=-1, keepdims=True) * axis
    bend /= np.maximum(np.linalg.norm(bend, axis=-1, keepdims=True), 1e-9)
    middle = root + along * axis + height * bend
    return middle, root + reach * axis


def pose_to_positions(body: Body, tracks: np.ndarray, fps: float) -> np.ndarray:
    """(T, len(CHANNELS)) pose tracks -> (T, 22, 3) SMPL-22 positions, metres, Y up."""
    frames = tracks.shape[0]
    yaw = np.cumsum(tracks[:, CH["yaw_rate"]]) / fps
    heading = rot_y(yaw)
    pelvis_rot = heading @ rot_x(tracks[:, CH["pelvis_pitch"]]) @ rot_z(tracks[:, CH["pelvis_roll"]])
    out = np.zeros((frames, 22, 3))
    # legs relative to the pelvis (pelvis at the origin for now)
    for side, (hip_i, knee_i, ankle_i, foot_i) in (("left", (1, 4, 7, 10)), ("right", (2, 5, 8, 11))):
        for index, point in zip((hip_i, knee_i, ankle_i, foot_i), leg_points(body, tracks, side)):
            out[:, index] = apply(pelvis_rot, point)
    _spine_and_arms(body, tracks, pelvis_rot, out)
    out += _root_path(body, tracks, heading, out, fps)[:, None, :]
    return out


def _spine_and_arms(body: Body, tracks: np.ndarray, pelvis_rot: np.ndarray, out: np.ndarray) -> None:
    third = rot_x(tracks[:, CH["spine_bend"]] / 3) @ rot_z(tracks[:, CH["spine_side"]] / 3) \
        @ rot_y(tracks[:, CH["spine_twist"]] / 3)
    rotation = pelvis_rot
    out[:, 3] = apply(pelvis_rot, body.spine[0])
    for joint, parent, offset in ((6, 3, body.spine[1]), (9, 6, body.spine[2])):
        rotation = rotation @ third
        out[:, joint] = out[:, parent] + apply(rotation, offset)
    chest = rotation @ third
    out[:, 12] = out[:, 9] + apply(chest, body.spine[3])
    out[:, 15] = out[:, 12] + apply(chest @ rot_x(tracks[:, CH["neck_pitch"]]), body.spine[4])
    for side, (collar_i, shoulder_i, elbow_i, wrist_i) in (("left", (13, 16, 18, 20)), ("right", (14, 17, 19, 21))):
        mirror = np.array([SIGN[side], 1, 1])
        out[:, collar_i] = out[:, 9] + apply(chest, body.collar * mirror)
        out[:, shoulder_i] = out[:, collar_i] + apply(chest, body.shoulder * mirror)
        arm = tracks[:, ARM[side]]
        target = out[:, shoulder_i] + apply(chest, arm[:, :3] * body.arm_reach / 0.52)
        elbow, wrist = two_bone_ik(out[:, shoulder_i], target, apply(chest, arm[:, 3:6]), body.upper_arm,
                                   body.forearm)
        out[:, elbow_i], out[:, wrist_i] = elbow, wrist


def _root_path(body: Body, tracks: np.ndarray, heading: np.ndarray, relative: np.ndarray, fps: float):
    """Pelvis world position per frame: stance foot kept in place, lowest foot point on the floor."""
    ankles = relative[:, [7, 8]]
    balls = relative[:, [10, 11]]
    contact = np.minimum(ankles[..., 1] - body.ankle_height, balls[..., 1] - 0.025)  # (T, 2) sole heights
    named = tracks[:, CH["stance"]]
    stance = np.where(named > 0.5, 0, np.where(named < -0.5, 1, np.argmin(contact, axis=1)))
    anchor = balls  # the ball of the foot: the pivot while the heel rises
    rows = np.arange(len(stance) - 1)
    chosen = stance[1:]
    # a step is locked only when both of its frames are (a foot landing after a flight moved
    # between them); unlocked steps follow the speed tracks
    locked = (tracks[:-1, CH["lock"]] * tracks[1:, CH["lock"]])[:, None]
    step = anchor[rows, chosen] - anchor[rows + 1, chosen]
    step[:, 1] = 0.0
    speed = np.stack([tracks[:, CH["side_speed"]], np.zeros(len(tracks)), tracks[:, CH["forward_speed"]]], -1) / fps
    step = locked * step + (1 - locked) * apply(heading[1:], speed[1:])
    path = np.zeros((len(tracks), 3))
    path[1:] = np.cumsum(step, axis=0)
    path[:, 1] = -contact.min(axis=1) + tracks[:, CH["bump"]]
    return path
