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
from bridge.skeleton_map import SkeletonMap, SkeletonMapError, map_skeleton, normalise
from inference_server.data.scan import scan_files
from inference_server.errors import DataError
from inference_server.motion import SMPL22_JOINTS, Motion, MotionItem

UNITS = {"m": 1.0, "cm": 0.01, "mm": 0.001, "inch": 0.0254, "cmu": 0.0254 / 0.45}
TYPICAL_LEG_LENGTH = 0.8  # metres, hip -> knee -> ankle
MIN_FRAME_TIME, MAX_FRAME_TIME = 1e-4, 1.0  # seconds per frame: 10000 fps .. 1 fps
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
    if not MIN_FRAME_TIME <= frame_time <= MAX_FRAME_TIME:
        # e.g. 1000 s: fps would round to 0, and resampling such a clip to 20 fps would
        # allocate gigabytes; no capture runs outside these rates
        raise DataError(f"{path}: Frame Time {frame_time:g} s ({1 / frame_time:.3g} fps) is not a motion frame "
                        f"rate (expected {MIN_FRAME_TIME:g} to {MAX_FRAME_TIME:g} s, i.e. 1 to 10000 fps)")
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
# The mapper (bridge/skeleton_map.py) is shared with the Blender add-on's bone map "auto".
# spine1..spine3 are always placed along the source's pelvis -> neck chain
# (SPINE_FRACTIONS), so every rig gets SMPL-like spine geometry.
REQUIRED_JOINTS = [joint for joint in SMPL22_JOINTS if not joint.startswith("spine")]


@dataclass
class Smpl22Map:
    rig: str  # the naming convention recognised (skeleton_map.CONVENTIONS) or "unknown"
    sources: list[int | None]  # source joint per SMPL-22 joint (None: spine, interpolated)
    spine_chain: list[int]  # source joints from pelvis to neck
    skeleton: SkeletonMap | None = None  # the whole mapping: table, confidence, how

    def apply(self, positions: np.ndarray) -> np.ndarray:
        """Source world positions (T, J, 3) -> SMPL-22 positions (T, 22, 3)."""
        out = np.empty((positions.shape[0], 22, 3))
        known = [i for i, source in enumerate(self.sources) if source is not None]
        out[:, known] = positions[:, [self.sources[i] for i in known]]
        spine = interpolate_chain(positions[:, self.spine_chain], SPINE_FRACTIONS)
        out[:, [3, 6, 9]] = spine
        return out

    def report(self) -> dict:
        return self.skeleton.report() if self.skeleton is not None else {"convention": self.rig}


def rest_positions(parents: list[int], offsets: np.ndarray) -> np.ndarray:
    """Joint positions (J, 3) of the zero pose (offsets summed down the hierarchy)."""
    positions = np.zeros((len(parents), 3))
    for joint, parent in enumerate(parents):  # parents come first in a BVH
        positions[joint] = offsets[joint] + (positions[parent] if parent >= 0 else 0.0)
    return positions


def smpl22_map(names: list[str], parents: list[int], path, rest: np.ndarray | None = None) -> Smpl22Map:
    """Find the SMPL-22 joints in a hierarchy (names of any known convention, else the
    topology and rest pose); DataError naming the missing joints and the bones considered."""
    skeleton = map_skeleton(names, parents, rest)
    try:
        skeleton.require(REQUIRED_JOINTS)
    except SkeletonMapError as error:
        raise DataError(f"{path}: {error}") from None
    chain = skeleton.spine_chain
    if len(chain) < 2:
        raise DataError(f"{path}: unmappable skeleton: {names[skeleton.indices['neck']]} is not below "
                        f"{names[skeleton.indices['pelvis']]}")
    sources = [None if joint.startswith("spine") else skeleton.indices[joint] for joint in SMPL22_JOINTS]
    return Smpl22Map(skeleton.convention, sources, chain, skeleton)


def normalise_joint_name(name: str) -> tuple[str | None, str]:
    """'mixamorig:LeftUpLeg' -> ('left', 'upleg'); 'Hand_R' -> ('right', 'hand'); 'neck_01' -> (None, 'neck')."""
    return normalise(name)


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
    best = min(UNITS.values(), key=lambda scale: abs(np.log(length * scale / TYPICAL_LEG_LENGTH)))
    if abs(np.log(length * best / TYPICAL_LEG_LENGTH)) > np.log(2.5):
        return TYPICAL_LEG_LENGTH / length  # no usual unit fits: scale the body to an adult's legs
    return best


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
    motion, mapping = read_mapped(path, units, up)
    return motion, mapping.rig


def read_mapped(path, units: str = "auto", up: str = "auto") -> tuple[Motion, Smpl22Map]:
    """A BVH file -> (SMPL-22 Motion, the joint mapping used)."""
    bvh = parse_bvh(path)
    positions, _ = bvh.forward_kinematics()
    mapping = smpl22_map(bvh.names, bvh.parents, path, rest_positions(bvh.parents, bvh.offsets))
    smpl = mapping.apply(positions * unit_scale(positions, mapping, units, path))
    smpl = canonicalize(smpl, up_rotation_for(up, smpl, path))
    return Motion.smpl22(smpl, bvh.fps), mapping


class SkeletonReports:
    """The mapping of each distinct skeleton met while scanning a library (for `t2m data
    stats`): {signature: report + files + example}."""

    def __init__(self):
        self.found: dict[str, dict] = {}

    def add(self, mapping: Smpl22Map, path) -> None:
        skeleton = mapping.skeleton
        if skeleton is None:
            return
        key = "|".join(skeleton.names)
        entry = self.found.setdefault(key, {**skeleton.report(), "files": 0, "example": str(path)})
        entry["files"] += 1

    def as_list(self) -> list[dict]:
        return sorted(self.found.values(), key=lambda entry: -entry["files"])


def sidecar_captions(path: Path) -> list[str]:
    """Captions from '<stem>.txt' next to a motion file: one per line (HumanML3D lines allowed)."""
    text_file = path.with_suffix(".txt")
    if not text_file.is_file():
        return []
    lines = text_file.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def read_item(path, units: str = "auto", up: str = "auto", item_id: str | None = None,
              reports: SkeletonReports | None = None) -> MotionItem:
    path = Path(path)
    motion, mapping = read_mapped(path, units, up)
    if reports is not None:
        reports.add(mapping, path)
    return MotionItem(id=item_id or path.stem, name=path.stem, motion=motion, captions=sidecar_captions(path),
                      source=str(path), split=None, labels={"rig": mapping.rig})


def scan(arg: str | None, progress: bool = False):
    """`bvh:DIR_OR_FILE`: every *.bvh below a folder (ids: relative paths without .bvh).
    Returns (items, skipped, skeletons) with the mapping of each distinct skeleton."""
    if not arg:
        raise DataError("bvh: needs a folder or file, e.g. bvh:mocap/")
    root = Path(arg)
    reports = SkeletonReports()
    if root.is_file():
        items, skipped = scan_files([root], lambda path: read_item(path, reports=reports), progress, "bvh")
        return items, skipped, reports.as_list()
    if not root.is_dir():
        raise DataError(f"{root}: no such BVH file or folder")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() == ".bvh")

    def read(path: Path) -> MotionItem:
        return read_item(path, item_id=path.relative_to(root).with_suffix("").as_posix(), reports=reports)
    items, skipped = scan_files(paths, read, progress, "bvh")
    return items, skipped, reports.as_list()
