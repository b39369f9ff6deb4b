"""HumanML3D folders: new_joints/<id>.npy (T, 22, 3) at 20 fps, texts/<id>.txt, split files.

Caption lines are `caption#word/POS word/POS ...#start#end` (seconds). start = end = 0 (or
NaN) describes the whole clip; any other span makes a cropped item `<id>_<k>` (k counts the
file's spans from 0) holding just that caption, cut as HumanML3D does
(frames int(start*fps) .. int(end*fps)). A clip whose captions are all spans only yields the
cropped items. train.txt / val.txt / test.txt list ids (mirrored 'M' ids are just more ids).
Positions are kept as stored (HumanML3D is already Y-up, metres, facing +Z at frame 0).
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from inference_server.data import SPLITS
from inference_server.data.scan import require_dir, scan_files
from inference_server.errors import DataError
from inference_server.motion import Motion, MotionItem

FPS = 20.0


@dataclass
class CaptionLine:
    text: str
    tokens: str  # "word/POS word/POS ..."
    start: float  # seconds; 0.0 with end 0.0: the whole clip
    end: float

    @property
    def whole_clip(self) -> bool:
        return self.start == 0.0 and self.end == 0.0


def read_caption_file(path: Path) -> list[CaptionLine]:
    if not path.is_file():
        raise DataError(f"{path}: caption file not found")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path}: empty caption file")
    return [_parse_caption_line(path, number, line) for number, line in enumerate(lines, start=1)]


def _parse_caption_line(path: Path, number: int, line: str) -> CaptionLine:
    fields = line.split("#")
    text = fields[0].strip()
    if not text:
        raise DataError(f"{path}: line {number}: empty caption")
    tokens = fields[1].strip() if len(fields) > 1 else ""
    start, end = 0.0, 0.0
    if len(fields) >= 4:
        try:
            start, end = float(fields[2]), float(fields[3])
        except ValueError:
            raise DataError(f"{path}: line {number}: start/end {fields[2]!r}, {fields[3]!r} are not numbers") from None
        if math.isnan(start) or math.isnan(end):
            start, end = 0.0, 0.0
    return CaptionLine(text, tokens, start, end)


def load_joints(path: Path, joints: int) -> np.ndarray:
    """An (T, joints, 3) float array from .npy, checked; DataError naming the file otherwise."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise DataError(f"{path}: not a readable .npy array ({error})") from None
    if array.ndim != 3 or array.shape[1:] != (joints, 3) or array.shape[0] == 0:
        raise DataError(f"{path}: expected joint positions of shape (T, {joints}, 3), got {array.shape}")
    if not np.issubdtype(array.dtype, np.floating) or not np.isfinite(array).all():
        raise DataError(f"{path}: joint positions must be finite floats (dtype {array.dtype})")
    return array.astype(np.float32)


def read_splits(root: Path) -> dict[str, str]:
    """id -> split name from train.txt / val.txt / test.txt (absent files: no split)."""
    splits = {}
    for name in SPLITS:
        path = root / f"{name}.txt"
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    splits[line.strip()] = name
    return splits


def clip_items(motion_id: str, motion: Motion, captions: list[CaptionLine], source: str,
               split: str | None) -> list[MotionItem]:
    """The whole-clip item (if it has whole-clip captions) and one cropped item per span."""
    whole = [line.text for line in captions if line.whole_clip]
    items = []
    if whole:
        items.append(MotionItem(motion_id, motion_id, motion, whole, source, split, {}))
    spans = [line for line in captions if not line.whole_clip]
    for k, line in enumerate(spans):
        if int(line.end * motion.fps) <= int(line.start * motion.fps) or line.start * motion.fps >= motion.num_frames:
            continue  # an empty or out-of-clip span carries no motion (HumanML3D drops it too)
        items.append(MotionItem(f"{motion_id}_{k}", f"{motion_id} {line.start:.1f}-{line.end:.1f}s",
                                motion.crop(line.start, line.end), [line.text], source, split,
                                {"start": line.start, "end": line.end, "parent": motion_id}))
    return items


def scan_folder(root, fps: float, joints: int, to_smpl22: Callable[[np.ndarray], np.ndarray],
                desc: str, progress: bool):
    """Shared by HumanML3D and KIT-ML: every new_joints/*.npy with its texts/*.txt."""
    root = Path(root)
    joints_dir = require_dir(root / "new_joints", "new_joints")
    texts_dir = require_dir(root / "texts", "texts")
    splits = read_splits(root)

    def read(path: Path) -> list[MotionItem]:
        captions = read_caption_file(texts_dir / f"{path.stem}.txt")
        motion = Motion.smpl22(to_smpl22(load_joints(path, joints)), fps)
        return clip_items(path.stem, motion, captions, str(path), splits.get(path.stem))
    return scan_files(sorted(joints_dir.glob("*.npy")), read, progress, desc)


def scan(arg: str | None, progress: bool = False):
    if not arg:
        raise DataError("humanml3d: needs a folder, e.g. humanml3d:HumanML3D/")
    return scan_folder(arg, FPS, 22, lambda positions: positions, "humanml3d", progress)


def read_joints_file(path) -> MotionItem:
    """One new_joints .npy (20 fps); whole-clip captions from ../texts/<id>.txt when present."""
    path = Path(path)
    motion = Motion.smpl22(load_joints(path, 22), FPS)
    text_file = path.parent.parent / "texts" / f"{path.stem}.txt"
    captions = [line.text for line in read_caption_file(text_file) if line.whole_clip] if text_file.is_file() else []
    return MotionItem(path.stem, path.stem, motion, captions, str(path), None, {})
