"""BVH files: parser for any hierarchy, forward kinematics, and joint maps to SMPL-22.

Conventions of the format as read here:
- CHANNELS may hold position and rotation channels on any joint, in any order. A
  joint's listed position channels replace the matching components of its OFFSET (as
  Blender's importer does); rotations apply in the listed order, R = R1 R2 R3, and a
  point maps to the parent frame as p_parent = offset + R p_local.
- "End Site" blocks become joints named "<parent>_end" without channels.
- Units are guessed from the leg length (hip -> knee -> ankle, about 0.8 m on an adult)
  among metres, centimetres, millimetres, inches and CMU units (1/0.45 inch); `units=`
  forces one. The up axis is detected (see kinematics.up_axis_rotation) or forced.
- The SMPL-22 motion is put in the canonical placement of kinematics.py: Y up, floor at
  y = 0, pelvis over the origin and facing +Z at frame 0 (as HumanML3D does).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference_server.data.kinematics import (
    AXES, SPINE_FRACTIONS, canonicalize, euler_to_quat, forward_kinematics, interpolate_chain,
    rotation_between, up_axis_rotation)
from inference_server.data.scan import scan_files
from inference_server.errors import DataError
from inference_server.motion import SMPL22_JOINTS, Motion, MotionItem

UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.0254 / 0.45}
TYPICAL_LEG_LENGTH = 0.8  # metres, hip -> knee -> ankle
_CHANNEL = re.compile(r"^([XYZ])(position|rotation)$", re.IGNORECASE)


@dataclass
class BvhFile:
    path: Path
    names: list[str]
    parents: list[int]
    offsets: np.ndarray  # (J, 3) file units
    channels: list[list[str]]  # per joint, e.g. ["Xposition", "Zrotation", ...]
    frame_time: float
    frames: np.ndarray  # (T, C) float64, C = total channel count

    @property
    def fps(self) -> float:
        fps = 1.0 / self.frame_time
        return float(round(fps)) if abs(fps - round(fps)) < 1e-3 else fps

    def local_transforms(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-frame local translations (T, J, 3) and rotations (T, J, 4 wxyz)."""
        frames = self.frames.shape[0]
        translations = np.broadcast_to(self.offsets, (frames,) + self.offsets.shape).copy()
        rotations = np.zeros((frames, len(self.names), 4))
        rotations[..., 0] = 1.0
        by_order: dict[str, tuple[list[int], list[list[int]]]] = {}  # Euler order -> joints, columns
        column = 0
        for joint, channels in enumerate(self.channels):
            order, rotation_columns = "", []
            for name in channels:
                axis, kind = _CHANNEL.match(name).groups()
                if kind.lower() == "position":
                    translations[:, joint, "XYZ".index(axis.upper())] = self.frames[:, column]
                else:
                    order += axis.upper()
                    rotation_columns.append(column)
                column += 1
            if order:
                joints, columns = by_order.setdefault(order, ([], []))
                joints.append(joint)
                columns.append(rotation_columns)
        for order, (joints, columns) in by_order.items():  # one vectorised call per Euler order
            rotations[:, joints] = euler_to_quat(self.frames[:, columns], order)
        return translations, rotations

    def forward_kinematics(self) -> tuple[np.ndarray, np.ndarray]:
        """World positions (T, J, 3) in file units and local rotations (T, J, 4 wxyz)."""
        translations, rotations = self.local_transforms()
        positions, _ = forward_kinematics(self.parents, translations, rotations)
        return positions, rotations


def parse_bvh(path) -> BvhFile:
    """Read a BVH file; DataError naming the file for anything malformed."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    motion_line = next((i for i, line in enumerate(lines) if line.strip().upper() == "MOTION"), None)
    if motion_line is None:
        raise DataError(f"{path}: missing MOTION section (truncated or not a BVH file)")
    names, parents, offsets, channels = _parse_hierarchy(path, lines[:motion_line])
    count, frame_time, first_data = _parse_motion_header(path, lines, motion_line)
    frames = _parse_frames(path, lines, first_data, count, sum(len(c) for c in channels))
    return BvhFile(path, names, parents, np.array(offsets, dtype=np.float64), channels, frame_time, frames)


def _parse_hierarchy(path: Path, lines: list[str]):
    names, parents, offsets, channels = [], [], [], []
    stack: list[int] = []
    opened_for: int | None = None  # joint whose "{" is expected next
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.upper() == "HIERARCHY":
            continue
        keyword = text.split()[0].upper()
        if keyword in ("ROOT", "JOINT", "END"):
            if keyword == "ROOT" and (stack or names):
                raise DataError(f"{path}: line {number}: more than one ROOT is not supported")
            if keyword != "ROOT" and not stack:
                raise DataError(f"{path}: line {number}: {keyword} outside of a joint block")
            opens = text.endswith("{")
            name = text.rstrip("{").strip()[len(text.split()[0]):].strip()
            if keyword == "END":
                name = f"{names[stack[-1]]}_end"
            if not name:
                raise DataError(f"{path}: line {number}: joint without a name")
            names.append(name)
            parents.append(stack[-1] if stack else -1)
            offsets.append([0.0, 0.0, 0.0])
            channels.append([])
            opened_for = len(names) - 1
            if opens:
                stack.append(opened_for)
                opened_for = None
        elif text == "{":
            if opened_for is None:
                raise DataError(f"{path}: line {number}: '{{' without a joint")
            stack.append(opened_for)
            opened_for = None
        elif text == "}":
            if not stack:
                raise DataError(f"{path}: line {number}: unbalanced '}}'")
            stack.pop()
        elif keyword == "OFFSET":
            if not stack:
                raise DataError(f"{path}: line {number}: OFFSET outside of a joint block")
            offsets[stack[-1]] = _numbers(path, number, text.split()[1:], 3, "OFFSET")
        elif keyword == "CHANNELS":
            if not stack:
                raise DataError(f"{path}: line {number}: CHANNELS outside of a joint block")
            channels[stack[-1]] = _channel_list(path, number, text.split()[1:])
        else:
            raise DataError(f"{path}: line {number}: unexpected {text[:40]!r} in HIERARCHY")
    if stack:
        raise DataError(f"{path}: HIERARCHY ends with {len(stack)} unclosed '{{' (truncated?)")
    if not names:
        raise DataError(f"{path}: no ROOT joint in HIERARCHY")
    return names, parents, offsets, channels


def _numbers(path: Path, number: int, tokens: list[str], count: int, what: str) -> list[float]:
    if len(tokens) != count:
        raise DataError(f"{path}: line {number}: {what} needs {count} numbers, got {len(tokens)}")
    try:
        return [float(token) for token in tokens]
    except ValueError:
        raise DataError(f"{path}: line {number}: {what} has a non-numeric value in {tokens}") from None


def _channel_list(path: Path, number: int, tokens: list[str]) -> list[str]:
    if not tokens or not tokens[0].isdigit():
        raise DataError(f"{path}: line {number}: CHANNELS needs a count")
    count, names = int(tokens[0]), tokens[1:]
    if count != len(names):
        raise DataError(f"{path}: line {number}: CHANNELS says {count} but lists {len(names)} channels")
    for name in names:
        if not _CHANNEL.match(name):
            raise DataError(f"{path}: line {number}: unknown channel {name!r}")
    return names


def _parse_motion_header(path: Path, lines: list[str], motion_line: int) -> tuple[int, float, int]:
    header = [(i, line.strip()) for i, line in enumerate(lines[motion_line + 1:], motion_line + 1) if line.strip()][:2]
    if len(header) < 2:
        raise DataError(f"{path}: truncated MOTION section (no Frames / Frame Time lines)")
    (_, frames_line), (time_index, time_line) = header
    frames_match = re.fullmatch(r"Frames:\s*(\d+)", frames_line, re.IGNORECASE)
    time_match = re.fullmatch(r"Frame\s+Time:\s*(\S+)", time_line, re.IGNORECASE)
    if not frames_match or not time_match:
        raise DataError(f"{path}: MOTION must start with 'Frames: N' and 'Frame Time: T'")
    count = int(frames_match.group(1))
    try:
        frame_time = float(time_match.group(1))
    except ValueError:
        raise DataError(f"{path}: non-numeric Frame Time {time_match.group(1)!r}") from None
    if count == 0:
        raise DataError(f"{path}: zero frames")
    if not np.isfinite(frame_time) or frame_time <= 0:
        raise DataError(f"{path}: Frame Time must be positive, got {frame_time}")
    return count, frame_time, time_index + 1


def _parse_frames(path: Path, lines: list[str], first: int, count: int, width: int) -> np.ndarray:
    rows = [(number, line) for number, line in enumerate(lines[first:], first + 1) if line.strip()]
    if len(rows) < count:
        raise DataError(f"{path}: truncated: header says {count} frames but {len(rows)} frame lines follow")
    rows = rows[:count]
    try:
        values = np.array(" ".join(line for _, line in rows).split(), dtype=np.float64)
    except ValueError:
        values = None
    if values is None or values.size != count * width:
        _explain_bad_rows(path, rows, width)
    frames = values.reshape(count, width)
    if not np.isfinite(frames).all():
        raise DataError(f"{path}: frame data holds NaN or infinite values")
    return frames


def _explain_bad_rows(path: Path, rows: list[tuple[int, str]], width: int) -> None:
    for number, line in rows:
        tokens = line.split()
        if len(tokens) != width:
            raise DataError(f"{path}: line {number}: {len(tokens)} values, the hierarchy's CHANNELS need {width}")
        for token in tokens:
            try:
                float(token)
            except ValueError:
                raise DataError(f"{path}: line {number}: non-numeric value {token!r}") from None
    raise DataError(f"{path}: frame data does not match the hierarchy")


# ---- joint maps to SMPL-22 ----
# Source joint per SMPL-22 joint. spine1..spine3 are always placed along the source's
# pelvis -> neck chain (SPINE_FRACTIONS), so every rig gets SMPL-like spine geometry.
_SIDED = ["hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist"]


def _sided_map(pelvis, neck, head, left: dict, right: dict) -> dict[str, str]:
    mapping = {"pelvis": pelvis, "neck": neck, "head": head}
    for part in _SIDED:
        mapping[f"left_{part}"] = left[part]
        mapping[f"right_{part}"] = right[part]
    return mapping


def _limbs(up_leg, leg, foot, toe, shoulder, arm, forearm, hand) -> dict[str, str]:
    return dict(zip(_SIDED, [up_leg, leg, foot, toe, shoulder, arm, forearm, hand]))


RIG_MAPS: dict[str, dict[str, str]] = {
    "bandai": _sided_map(
        "Hips", "Neck", "Head",
        _limbs("UpperLeg_L", "LowerLeg_L", "Foot_L", "Toes_L", "Shoulder_L", "UpperArm_L", "LowerArm_L", "Hand_L"),
        _limbs("UpperLeg_R", "LowerLeg_R", "Foot_R", "Toes_R", "Shoulder_R", "UpperArm_R", "LowerArm_R", "Hand_R")),
    # cgspeed's CMU conversion: Hips, LHipJoint, LeftUpLeg..., LowerBack, Spine, Spine1, Neck, Neck1, Head
    "cmu": _sided_map(
        "Hips", "Neck", "Head",
        _limbs("LeftUpLeg", "LeftLeg", "LeftFoot", "LeftToeBase", "LeftShoulder", "LeftArm", "LeftForeArm", "LeftHand"),
        _limbs("RightUpLeg", "RightLeg", "RightFoot", "RightToeBase", "RightShoulder", "RightArm", "RightForeArm",
               "RightHand")),
}
# Mixamo uses the CMU limb names behind a "mixamorig:" namespace (spine: Spine, Spine1, Spine2).
RIG_MAPS["mixamo"] = dict(RIG_MAPS["cmu"])


def _is_mixamo(names: list[str]) -> bool:
    return any(name.lower().startswith("mixamorig") for name in names)

# Name-based fallback: body-part words (after removing side and noise tokens) per target.
_FALLBACK_SIDED = {
    "hip": ["upleg", "upperleg", "thigh", "femur", "hip"],
    "knee": ["leg", "lowerleg", "lowleg", "calf", "shin", "knee"],
    "ankle": ["foot", "ankle"],
    "foot": ["toebase", "toe", "toes", "ball"],
    "collar": ["shoulder", "clavicle", "collar"],
    "shoulder": ["arm", "upperarm", "uparm"],
    "elbow": ["forearm", "lowerarm", "elbow"],
    "wrist": ["hand", "wrist"],
}
_FALLBACK_CENTRE = {"pelvis": ["hips", "pelvis", "hip", "root"], "neck": ["neck"], "head": ["head"]}
_NOISE_TOKENS = {"mixamorig", "bip", "bip01", "bip001", "def", "org", "mch", "jnt", "joint", "bone", "b", "j", "bn"}
_TOKEN = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


@dataclass
class Smpl22Map:
    rig: str  # "bandai", "cmu", "mixamo" or "names" (fallback)
    sources: list[int | None]  # source joint per SMPL-22 joint (None: spine, interpolated)
    spine_chain: list[int]  # source joints from pelvis to neck

    def apply(self, positions: np.ndarray) -> np.ndarray:
        """Source world positions (T, J, 3) -> SMPL-22 positions (T, 22, 3)."""
        out = np.empty((positions.shape[0], 22, 3))
        known = [i for i, source in enumerate(self.sources) if source is not None]
        out[:, known] = positions[:, [self.sources[i] for i in known]]
        spine = interpolate_chain(positions[:, self.spine_chain], SPINE_FRACTIONS)
        out[:, [3, 6, 9]] = spine
        return out


def smpl22_map(names: list[str], parents: list[int], path) -> Smpl22Map:
    """Find the SMPL-22 joints in a hierarchy: a known rig, else by normalised names."""
    stripped = {_strip_namespace(name): i for i, name in enumerate(names)}
    for rig, mapping in RIG_MAPS.items():
        if rig != "bandai" and (rig == "mixamo") != _is_mixamo(names):
            continue
        if all(name in stripped for name in mapping.values()):
            return _build_map(rig, {smpl: stripped[name] for smpl, name in mapping.items()}, names, parents, path)
    found = _match_by_names(names, parents)
    missing = [joint for joint in SMPL22_JOINTS if joint not in found and not joint.startswith("spine")]
    if missing:
        raise DataError(f"{path}: unmappable skeleton: no joint found for {', '.join(missing)} "
                        f"(joints: {', '.join(names[:12])}{'...' if len(names) > 12 else ''})")
    return _build_map("names", found, names, parents, path)


def _strip_namespace(name: str) -> str:
    return re.split(r"[:|]", name)[-1]


def _build_map(rig: str, found: dict[str, int], names, parents, path) -> Smpl22Map:
    chain = _ancestor_path(parents, found["pelvis"], found["neck"])
    if chain is None:
        raise DataError(f"{path}: unmappable skeleton: {names[found['neck']]} is not below {names[found['pelvis']]}")
    for side in ("left", "right"):
        for upper, lower in [("hip", "knee"), ("knee", "ankle"), ("ankle", "foot"),
                             ("collar", "shoulder"), ("shoulder", "elbow"), ("elbow", "wrist")]:
            if _ancestor_path(parents, found[f"{side}_{upper}"], found[f"{side}_{lower}"]) is None:
                raise DataError(f"{path}: unmappable skeleton: {names[found[f'{side}_{lower}']]} is not "
                                f"below {names[found[f'{side}_{upper}']]}")
    sources = [None if joint.startswith("spine") else found[joint] for joint in SMPL22_JOINTS]
    return Smpl22Map(rig, sources, chain)


def _ancestor_path(parents: list[int], ancestor: int, joint: int) -> list[int] | None:
    """Joints from ancestor down to joint, or None when ancestor is not above joint."""
    path = [joint]
    while path[-1] != ancestor:
        parent = parents[path[-1]]
        if parent < 0:
            return None
        path.append(parent)
    return path[::-1]


def normalise_joint_name(name: str) -> tuple[str | None, str]:
    """'mixamorig:LeftUpLeg' -> ('left', 'upleg'); 'Hand_R' -> ('right', 'hand'); 'neck_01' -> (None, 'neck').

    Number tokens are dropped (spine_01, Neck1, Bip01), so chains of same-named joints
    compete and the one nearest the root wins.
    """
    tokens = [token.lower() for token in _TOKEN.findall(_strip_namespace(name))]
    side = None
    body = []
    for token in tokens:
        if token in ("left", "l"):
            side = "left"
        elif token in ("right", "r"):
            side = "right"
        elif token not in _NOISE_TOKENS and not token.isdigit():
            body.append(token)
    return side, "".join(body)


def _match_by_names(names: list[str], parents: list[int]) -> dict[str, int]:
    normalised = [normalise_joint_name(name) for name in names]
    depth = [_depth(parents, i) for i in range(len(names))]
    found = {}
    targets = [(joint, None, words) for joint, words in _FALLBACK_CENTRE.items()]
    targets += [(f"{side}_{part}", side, words) for part, words in _FALLBACK_SIDED.items()
                for side in ("left", "right")]
    for joint, side, words in targets:
        for word in words:
            candidates = [i for i, (s, body) in enumerate(normalised) if s == side and body == word]
            if candidates:
                found[joint] = min(candidates, key=lambda i: depth[i])
                break
    if "left_foot" not in found or "right_foot" not in found:
        _toes_from_end_sites(found, names, parents)
    return found


def _toes_from_end_sites(found: dict[str, int], names: list[str], parents: list[int]) -> None:
    """Without toe joints, the ankle's End Site stands for the SMPL foot joint."""
    for side in ("left", "right"):
        ankle = found.get(f"{side}_ankle")
        if f"{side}_foot" in found or ankle is None:
            continue
        ends = [i for i, parent in enumerate(parents) if parent == ankle and names[i].endswith("_end")]
        if ends:
            found[f"{side}_foot"] = ends[0]


def _depth(parents: list[int], joint: int) -> int:
    depth = 0
    while parents[joint] >= 0:
        joint = parents[joint]
        depth += 1
    return depth


# ---- BVH -> SMPL-22 motion item ----

def unit_scale(positions: np.ndarray, mapping: Smpl22Map, units: str, path) -> float:
    """Metres per file unit: forced, or the unit giving the most adult-like leg length."""
    if units != "auto":
        if units not in UNITS:
            raise DataError(f"{path}: unknown units {units!r} (expected auto, {', '.join(UNITS)})")
        return UNITS[units]
    hip, knee, ankle = (mapping.sources[SMPL22_JOINTS.index(f"left_{j}")] for j in ("hip", "knee", "ankle"))
    leg = (np.linalg.norm(positions[:, knee] - positions[:, hip], axis=-1)
           + np.linalg.norm(positions[:, ankle] - positions[:, knee], axis=-1))
    length = float(np.median(leg))
    if length <= 0:
        raise DataError(f"{path}: the legs have zero length; cannot guess the units")
    return min(UNITS.values(), key=lambda scale: abs(np.log(length * scale / TYPICAL_LEG_LENGTH)))


def up_rotation_for(up: str, smpl_positions: np.ndarray, path) -> np.ndarray:
    """'auto' detects the up axis; 'y', 'z', '-z'... force it."""
    if up == "auto":
        return up_axis_rotation(smpl_positions)
    match = re.fullmatch(r"([+-]?)([xyz])", up.lower())
    if not match:
        raise DataError(f"{path}: unknown up axis {up!r} (expected auto, y, z, -y...)")
    axis = AXES[match.group(2).upper()] * (-1.0 if match.group(1) == "-" else 1.0)
    return rotation_between(axis, AXES["Y"])


def read_smpl22(path, units: str = "auto", up: str = "auto") -> tuple[Motion, str]:
    """A BVH file -> (SMPL-22 Motion in the canonical placement at the file's fps, rig name)."""
    bvh = parse_bvh(path)
    positions, _ = bvh.forward_kinematics()
    mapping = smpl22_map(bvh.names, bvh.parents, path)
    smpl = mapping.apply(positions * unit_scale(positions, mapping, units, path))
    smpl = canonicalize(smpl, up_rotation_for(up, smpl, path))
    return Motion.smpl22(smpl, bvh.fps), mapping.rig


def sidecar_captions(path: Path) -> list[str]:
    """Captions from '<stem>.txt' next to a motion file: one per line (HumanML3D lines allowed)."""
    text_file = path.with_suffix(".txt")
    if not text_file.is_file():
        return []
    lines = text_file.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def read_item(path, units: str = "auto", up: str = "auto", item_id: str | None = None) -> MotionItem:
    path = Path(path)
    motion, rig = read_smpl22(path, units, up)
    return MotionItem(id=item_id or path.stem, name=path.stem, motion=motion, captions=sidecar_captions(path),
                      source=str(path), split=None, labels={"rig": rig})


def scan(arg: str | None, progress: bool = False):
    """`bvh:DIR_OR_FILE`: every *.bvh below a folder (ids: relative paths without .bvh)."""
    if not arg:
        raise DataError("bvh: needs a folder or file, e.g. bvh:mocap/")
    root = Path(arg)
    if root.is_file():
        return scan_files([root], read_item, progress, "bvh")
    if not root.is_dir():
        raise DataError(f"{root}: no such BVH file or folder")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".bvh")

    def read(path: Path) -> MotionItem:
        return read_item(path, item_id=path.relative_to(root).with_suffix("").as_posix())
    return scan_files(paths, read, progress, "bvh")
