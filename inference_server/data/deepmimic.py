"""DeepMimic humanoid clips (pybullet_data/data/motions/humanoid3d_*.txt, JSON).

Each frame: [duration, root position (3), root rotation (4, wxyz), chest (4), neck (4),
right hip (4), right knee (1 angle), right ankle (4), right shoulder (4), right elbow (1),
left hip (4), left knee (1), left ankle (4), left shoulder (4), left elbow (1)] = 44 values.
Root positions are in metres. The joint offsets are those of pybullet_data's
humanoid/humanoid.urdf scaled by 0.25 (the globalScaling DeepMimic loads it with); the
humanoid is Y-up, faces +X and has its right side on +Z. Knees and elbows turn about
their local Z axis.

SMPL-22 from it: spine1-3 along root-chest-neck (kinematics.SPINE_FRACTIONS), collars 40 %
from neck to shoulder, head 0.10 m up the neck link, SMPL feet (ball of the foot) on the
foot box, 0.10 m ahead of and 0.035 m below the ankle. Then the canonical placement.
Sides in captions were checked on the clips (kick: right leg, punch: right hand).
Laikago clips (a quadruped) and any other 44-wide mismatch are skipped with a reason.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from inference_server.data.kinematics import (
    SPINE_FRACTIONS, canonicalize, forward_kinematics, interpolate_chain)
from inference_server.data.scan import scan_files
from inference_server.errors import DataError
from inference_server.motion import Motion, MotionItem, quat_from_axis_angle

URDF_SCALE = 0.25
# (name, parent index, offset in the urdf's units, kind: "sphere" = 4 quaternion values,
# "hinge" = 1 angle about Z, "fixed" = no value), in frame order after the root.
HUMANOID = [
    ("root", -1, (0, 0, 0), "root"),
    ("chest", 0, (0, 0.944604, 0), "sphere"),
    ("neck", 1, (0, 0.895576, 0), "sphere"),
    ("right_hip", 0, (0, 0, 0.339548), "sphere"),
    ("right_knee", 3, (0, -1.686184, 0), "hinge"),
    ("right_ankle", 4, (0, -1.63948, 0), "sphere"),
    ("right_shoulder", 1, (-0.0962, 0.974, 0.73244), "sphere"),
    ("right_elbow", 6, (0, -1.099152, 0), "hinge"),
    ("left_hip", 0, (0, 0, -0.339548), "sphere"),
    ("left_knee", 8, (0, -1.686184, 0), "hinge"),
    ("left_ankle", 9, (0, -1.63948, 0), "sphere"),
    ("left_shoulder", 1, (-0.0962, 0.974, -0.73244), "sphere"),
    ("left_elbow", 11, (0, -1.099152, 0), "hinge"),
    # end points in metres / 0.25: wrists (fixed joints of the urdf), head, balls of the feet
    ("right_wrist", 7, (0, -1.035788, 0), "fixed"),
    ("left_wrist", 12, (0, -1.035788, 0), "fixed"),
    ("head", 2, (0, 0.40, 0), "fixed"),
    ("right_ball", 5, (0.40, -0.14, 0), "fixed"),
    ("left_ball", 10, (0.40, -0.14, 0), "fixed"),
]
FRAME_WIDTH = 44
NAMES = [joint[0] for joint in HUMANOID]
PARENTS = [joint[1] for joint in HUMANOID]
OFFSETS = np.array([joint[2] for joint in HUMANOID], dtype=np.float64) * URDF_SCALE
# SMPL-22 joint -> humanoid joint name (None: interpolated)
SMPL22_SOURCES = ["root", "left_hip", "right_hip", None, "left_knee", "right_knee", None,
                  "left_ankle", "right_ankle", None, "left_ball", "right_ball", "neck", None, None,
                  "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
                  "left_wrist", "right_wrist"]
COLLAR_FRACTION = 0.4

CLIP_CAPTIONS = {
    "backflip": ["a person does a backflip", "someone jumps and flips backwards",
                 "a person performs a back somersault"],
    "cartwheel": ["a person does a cartwheel", "someone turns a cartwheel", "a person cartwheels sideways"],
    "crawl": ["a person crawls forward on hands and knees", "someone crawls on the ground", "a person crawls"],
    "dance_a": ["a person dances", "someone dances energetically", "a person performs a dance"],
    "dance_b": ["a person dances", "someone does a lively dance", "a person dances in place"],
    "getup_facedown": ["a person gets up from lying face down", "someone lying on their stomach stands up",
                       "a person pushes up off the floor and stands"],
    "getup_faceup": ["a person gets up from lying on their back", "someone lying face up stands up",
                     "a person rises from the floor to standing"],
    "jump": ["a person jumps forward", "someone jumps", "a person leaps forward with both feet"],
    "kick": ["a person kicks with the right leg", "someone kicks forward", "a person does a kick with the right foot"],
    "punch": ["a person punches with the right hand", "someone throws a punch", "a person punches forward"],
    "roll": ["a person rolls on the ground", "someone does a roll", "a person rolls over"],
    "run": ["a person runs forward", "someone is running", "a person jogs forward"],
    "spin": ["a person spins around", "someone turns around in a spin", "a person spins in place"],
    "spinkick": ["a person does a spinning kick", "someone spins and kicks", "a person performs a spin kick"],
    "walk": ["a person walks forward", "someone is walking", "a person takes a walk"],
}


def default_dir() -> Path:
    import pybullet_data  # optional dependency: only when no folder is given
    return Path(pybullet_data.getDataPath()) / "data" / "motions"


def read_frames(path: Path) -> np.ndarray:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: not a DeepMimic JSON clip ({error.msg} at line {error.lineno})") from None
    frames = data.get("Frames") if isinstance(data, dict) else None
    if not isinstance(frames, list) or not frames:
        raise DataError(f"{path}: no 'Frames' list in the clip")
    widths = {len(frame) if isinstance(frame, list) else -1 for frame in frames}
    if widths != {FRAME_WIDTH}:
        raise DataError(f"{path}: not a DeepMimic humanoid clip (frames of {sorted(widths)} values, "
                        f"expected {FRAME_WIDTH})")
    try:
        array = np.array(frames, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: non-numeric values in Frames") from None
    if not np.isfinite(array).all():
        raise DataError(f"{path}: NaN or infinite values in Frames")
    return array


def local_transforms(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 44) frames -> local translations (T, J, 3) and rotations (T, J, 4)."""
    count = frames.shape[0]
    translations = np.broadcast_to(OFFSETS, (count,) + OFFSETS.shape).copy()
    rotations = np.zeros((count, len(HUMANOID), 4))
    rotations[..., 0] = 1.0
    translations[:, 0] = frames[:, 1:4]
    column = 4
    for joint, (_, _, _, kind) in enumerate(HUMANOID):
        if kind in ("root", "sphere"):
            quaternion = frames[:, column:column + 4]
            rotations[:, joint] = quaternion / np.linalg.norm(quaternion, axis=-1, keepdims=True)
            column += 4
        elif kind == "hinge":
            rotations[:, joint] = quat_from_axis_angle(np.array([0, 0, 1.0]), frames[:, column])
            column += 1
    return translations, rotations


def to_smpl22(positions: np.ndarray) -> np.ndarray:
    index = {name: i for i, name in enumerate(NAMES)}
    out = np.empty((positions.shape[0], 22, 3))
    for smpl, source in enumerate(SMPL22_SOURCES):
        if source is not None:
            out[:, smpl] = positions[:, index[source]]
    chain = positions[:, [index["root"], index["chest"], index["neck"]]]
    out[:, [3, 6, 9]] = interpolate_chain(chain, SPINE_FRACTIONS)
    out[:, 13] = out[:, 12] + COLLAR_FRACTION * (out[:, 16] - out[:, 12])
    out[:, 14] = out[:, 12] + COLLAR_FRACTION * (out[:, 17] - out[:, 12])
    return out


def clip_name(path: Path) -> str:
    return path.stem.removeprefix("humanoid3d_")


def read_item(path) -> MotionItem:
    path = Path(path)
    frames = read_frames(path)
    duration = float(np.median(frames[:, 0]))
    if duration <= 0:
        raise DataError(f"{path}: frame durations must be positive")
    fps = 1.0 / duration
    fps = float(round(fps)) if abs(fps - round(fps)) < 0.01 else fps
    translations, rotations = local_transforms(frames)
    positions, _ = forward_kinematics(PARENTS, translations, rotations)
    smpl = canonicalize(to_smpl22(positions), up_rotation=np.array([1.0, 0, 0, 0]))
    name = clip_name(path)
    captions = CLIP_CAPTIONS.get(name, [f"a person does a {name.replace('_', ' ')}"])
    return MotionItem(id=path.stem, name=name.replace("_", " "), motion=Motion.smpl22(smpl, fps),
                      captions=list(captions), source=str(path), split=None, labels={"clip": name})


def scan(arg: str | None, progress: bool = False):
    """`deepmimic[:DIR]`: every *.txt / *.json clip in DIR (default: pybullet_data's motions)."""
    root = Path(arg) if arg else default_dir()
    if not root.is_dir():
        raise DataError(f"{root}: DeepMimic motions folder not found")
    paths = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".txt", ".json"))
    return scan_files(paths, read_item, progress, "deepmimic")
