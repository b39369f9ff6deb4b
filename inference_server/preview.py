"""Result previews: a strip of stick-figure poses of a motion, as PNG bytes.

A preview is P poses at evenly spaced times (first to last frame) side by side, each
in its own cell, seen from the front at a 3/4 angle (the camera 30 degrees to the
body's left of the canonical +Z facing, so both sides show and a turn shows too).
Bones: the SMPL-22 tree (inference_server.motion.SMPL22_PARENTS); the body's left in
blue, its right in red, the trunk and head light grey, as in pictures.py; a dark
background and a faint floor line. All cells share one scale and one floor (the
lowest point of the motion), so a jump rises and a crouch sinks; each pose is centred
on its own pelvis, so a walk stays in its cell.

Drawn with numpy alone (bone samples stamped as discs on a 2x canvas, a depth buffer
keeps the bone nearest the camera in front, then averaged down) and encoded as an
8-bit RGB PNG with zlib: about 6 ms of CPU for 256 x 64 (a matplotlib figure costs
ten times that). PreviewCache keeps the PNG bytes of recent
(motion id, size) pairs in memory (LRU), for the server's `preview` op.
"""
from __future__ import annotations

import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable

import numpy as np

from inference_server.errors import DataError
from inference_server.motion import SMPL22_JOINTS, SMPL22_PARENTS

DEFAULT_SIZE = (256, 64)   # width, height in pixels
MIN_SIDE, MAX_SIDE = 16, 1024
MAX_POSES = 8
CAMERA_YAW = np.radians(30.0)
SUPERSAMPLE = 2            # the canvas is this many times larger, then averaged down
MARGIN = 0.08              # of the cell height, around the figure
LINE_RADIUS = 0.9          # output pixels: bones are about two pixels wide
HEAD_RADIUS = 0.045        # of the cell height
BACKGROUND = (30, 31, 36)
FLOOR = (70, 72, 80)
SIDE_COLOURS = {"left": (80, 160, 255), "right": (255, 96, 84), "centre": (225, 225, 225)}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

_BONES = [(child, parent) for child, parent in enumerate(SMPL22_PARENTS) if parent >= 0]
_HEAD = SMPL22_JOINTS.index("head")
_PELVIS = SMPL22_JOINTS.index("pelvis")


def _side(joint: str) -> str:
    return joint.split("_")[0] if joint.startswith(("left_", "right_")) else "centre"


# The colour of each bone: the side of the joint it ends at.
_BONE_COLOURS = np.array([SIDE_COLOURS[_side(SMPL22_JOINTS[child])] for child, _ in _BONES], dtype=np.float32)


def render_strip(positions: np.ndarray, size: tuple[int, int] = DEFAULT_SIZE, poses: int | None = None) -> bytes:
    """PNG bytes of a stick-figure strip of SMPL-22 positions (T, 22, 3), Y-up metres.

    size: (width, height) pixels; poses: how many (default: about one per 0.8 x height
    of width, at most 8)."""
    positions = check_positions(positions)
    width, height = check_size(size)
    count = _pose_count(width, height, poses)
    frames = np.round(np.linspace(0, len(positions) - 1, count)).astype(int)
    screen, depth = _project(positions, frames, width, height, count)
    return encode_png(_draw(screen, depth, width, height, count))


def check_positions(positions) -> np.ndarray:
    array = np.asarray(positions, dtype=np.float64)
    if array.ndim != 3 or array.shape[1:] != (len(SMPL22_JOINTS), 3):
        raise DataError(f"preview: positions must be (frames, 22, 3) SMPL-22 joints, got shape {array.shape}")
    if len(array) == 0:
        raise DataError("preview: the motion has no frames")
    bad = ~np.isfinite(array).all(axis=(1, 2))
    if bad.any():
        raise DataError(f"preview: positions contain NaN or infinite values (first at frame {int(np.argmax(bad))})")
    return array


def check_size(size) -> tuple[int, int]:
    try:
        width, height = (int(side) for side in size)
        exact = all(float(side) == int(side) for side in size)
    except (TypeError, ValueError):
        raise DataError(f"preview: size must be (width, height) in pixels, got {size!r}") from None
    if not exact or not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE):
        raise DataError(f"preview: size must be whole pixels, {MIN_SIDE} to {MAX_SIDE} each, got {size!r}")
    return width, height


def _pose_count(width: int, height: int, poses: int | None) -> int:
    if poses is None:
        return int(np.clip(round(width / (0.8 * height)), 1, MAX_POSES))
    if not 1 <= int(poses) <= MAX_POSES:
        raise DataError(f"preview: poses must be 1 to {MAX_POSES}, got {poses!r}")
    return int(poses)


# ---------------------------------------------------------------- projection

def _project(positions: np.ndarray, frames: np.ndarray, width: int, height: int,
             count: int) -> tuple[np.ndarray, np.ndarray]:
    """Canvas pixel coordinates (count, 22, 2) of the chosen poses, and each joint's
    nearness to the camera (count, 22); one scale for the whole motion."""
    right = np.array([np.cos(CAMERA_YAW), 0.0, -np.sin(CAMERA_YAW)])
    toward = np.array([np.sin(CAMERA_YAW), 0.0, np.cos(CAMERA_YAW)])
    across = positions @ right                       # (T, 22)
    across = across - across[:, _PELVIS:_PELVIS + 1]  # each pose centred on its pelvis
    floor = positions[..., 1].min()
    rise = positions[..., 1] - floor
    cell_width, usable = width / count, height * (1 - 2 * MARGIN)
    half_span = max(float(np.abs(across).max()), 1e-3)
    scale = min(usable / max(float(rise.max()), 1e-3), cell_width * (1 - 2 * MARGIN) / (2 * half_span))
    centres = (np.arange(count) + 0.5) * cell_width
    x = centres[:, None] + scale * across[frames]
    y = height * (1 - MARGIN) - scale * rise[frames]
    screen = np.stack([x, y], axis=-1) * SUPERSAMPLE
    return screen, positions[frames] @ toward


# ---------------------------------------------------------------- drawing

def _draw(screen: np.ndarray, depth: np.ndarray, width: int, height: int, count: int) -> np.ndarray:
    canvas_height, canvas_width = height * SUPERSAMPLE, width * SUPERSAMPLE
    canvas = np.empty((canvas_height, canvas_width, 3), dtype=np.float32)
    canvas[:] = BACKGROUND
    floor_row = int(round(height * (1 - MARGIN) * SUPERSAMPLE))
    canvas[min(floor_row, canvas_height - 1), :] = FLOOR
    points, nearness, colours = _bone_samples(screen, depth)
    head = _head_samples(screen, depth, height)
    points = np.concatenate([points, head[0]])
    nearness = np.concatenate([nearness, head[1]])
    colours = np.concatenate([colours, head[2]])
    _stamp(canvas, points, nearness, colours, LINE_RADIUS * SUPERSAMPLE)
    return canvas.reshape(height, SUPERSAMPLE, width, SUPERSAMPLE, 3).mean(axis=(1, 3)).round().astype(np.uint8)


def _bone_samples(screen: np.ndarray, depth: np.ndarray):
    """Points about every canvas pixel along every bone of every pose, with nearness and colour."""
    children = np.array([child for child, _ in _BONES])
    parents = np.array([parent for _, parent in _BONES])
    start, end = screen[:, parents].reshape(-1, 2), screen[:, children].reshape(-1, 2)  # (P * B, 2)
    near_start, near_end = depth[:, parents].reshape(-1), depth[:, children].reshape(-1)
    counts = np.ceil(np.abs(end - start).max(axis=1)).astype(int) + 1     # samples per bone
    bone = np.repeat(np.arange(len(counts)), counts)
    first = np.cumsum(counts) - counts
    t = (np.arange(len(bone)) - first[bone]) / np.maximum(counts[bone] - 1, 1)
    points = start[bone] + t[:, None] * (end - start)[bone]
    near = near_start[bone] + t * (near_end - near_start)[bone]
    return points, near, np.tile(_BONE_COLOURS, (len(screen), 1))[bone]


def _head_samples(screen: np.ndarray, depth: np.ndarray, height: int):
    """A filled disc at each pose's head joint, as points on a small grid."""
    radius = HEAD_RADIUS * height * SUPERSAMPLE
    grid = np.arange(-np.ceil(radius), np.ceil(radius) + 1)
    offsets = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    offsets = offsets[np.linalg.norm(offsets, axis=1) <= radius]
    points = (screen[:, _HEAD][:, None] + offsets[None]).reshape(-1, 2)
    near = np.repeat(depth[:, _HEAD], len(offsets))
    colours = np.broadcast_to(np.array(SIDE_COLOURS["centre"], dtype=np.float32), (len(points), 3))
    return points, near, colours


def _stamp(canvas: np.ndarray, points: np.ndarray, nearness: np.ndarray, colours: np.ndarray,
           radius: float) -> None:
    """Paint a disc of `radius` canvas pixels at each point; where discs overlap, the one
    nearest the camera wins (so the near arm is drawn over the body)."""
    grid = np.arange(-np.ceil(radius), np.ceil(radius) + 1)
    offsets = np.stack(np.meshgrid(grid, grid), axis=-1).reshape(-1, 2)
    offsets = offsets[np.linalg.norm(offsets, axis=1) <= radius + 0.5]
    pixels = np.round(points)[:, None] + offsets[None]                  # (N, K, 2)
    rows, columns = pixels[..., 1].reshape(-1).astype(int), pixels[..., 0].reshape(-1).astype(int)
    inside = (rows >= 0) & (rows < canvas.shape[0]) & (columns >= 0) & (columns < canvas.shape[1])
    by_nearness = np.argsort(nearness, kind="stable")                   # rank r -> point
    rank = np.empty(len(points), dtype=np.int64)
    rank[by_nearness] = np.arange(len(points))
    flat = rows[inside] * canvas.shape[1] + columns[inside]
    nearest = np.full(canvas.shape[0] * canvas.shape[1], -1, dtype=np.int64)  # a depth buffer of ranks
    np.maximum.at(nearest, flat, np.repeat(rank, len(offsets))[inside])
    painted = np.flatnonzero(nearest >= 0)
    canvas.reshape(-1, 3)[painted] = colours[by_nearness[nearest[painted]]]


# ---------------------------------------------------------------- PNG

def encode_png(rgb: np.ndarray) -> bytes:
    """An (H, W, 3) uint8 image -> PNG bytes (8-bit RGB, no filtering, zlib level 6)."""
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    height, width, _ = rgb.shape
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # filter byte 0 per row
    rows[:, 1:] = rgb.reshape(height, -1)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
            + _chunk(b"IEND", b""))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


# ---------------------------------------------------------------- cache

class PreviewCache:
    """PNG bytes of recent (motion id, size) pairs, least recently used dropped first.

    Thread-safe; a miss renders outside the lock (two threads missing the same key both
    render, and the second result is kept: the bytes are the same)."""

    def __init__(self, capacity: int = 512):
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple[str, tuple[int, int]], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def preview(self, motion_id: str, size, positions_of: Callable[[str], np.ndarray]) -> bytes:
        """The PNG of `motion_id` at `size`; positions_of(motion_id) -> (T, 22, 3) is
        called only on a miss."""
        key = (str(motion_id), check_size(size))
        with self._lock:
            png = self._entries.get(key)
            if png is not None:
                self._entries.move_to_end(key)
                self.hits += 1
                return png
            self.misses += 1
        png = render_strip(positions_of(motion_id), key[1])
        with self._lock:
            self._entries[key] = png
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return png

    def __len__(self) -> int:
        return len(self._entries)
