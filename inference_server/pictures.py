"""Pictures for people: the JAMI of a motion, a stick-figure preview, token relevance maps.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global backend
switch), so this works headless and never touches an interactive session's state.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.animation import FuncAnimation, PillowWriter
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from inference_server.angles import CHANNELS, motion_angles
from inference_server.errors import DataError
from inference_server.jami import BAND, FPS, FRAMES, PART_NAMES, AngleStats, crop_or_pad, fixed_jami_image

_Z_LIMIT = 3.0  # colour range of z-scored angles
_PICTURE_SCALE = np.array([0.5 if name.startswith("root_") else 30.0 for name in CHANNELS], dtype=np.float32)
_SIDE_COLOURS = {"left": "tab:blue", "right": "tab:red", "centre": "0.15"}


def _new_figure(width: float, height: float) -> Figure:
    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _output(path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# ---- JAMI ----

def save_jami_png(motion, path, stats: AngleStats | None = None, title: str | None = None) -> Path:
    """The model's 224-frame JAMI of a motion: time down, one labelled band per body part.

    Without dataset stats, colours show each channel's deviation from the clip's own mean
    in units of 30 degrees (0.5 m for the root position), so small jitters stay pale.
    """
    angles = motion_angles(motion)
    if len(angles) == 0:
        raise DataError("cannot draw the JAMI of a motion without frames")
    scale_label = "z-score (dataset stats)" if stats else "deviation from clip mean (30° / 0.5 m)"
    stats = stats or AngleStats(angles.mean(axis=0), _PICTURE_SCALE)
    jami, valid = crop_or_pad(stats.normalize(angles), rng=None)
    figure = _new_figure(7.5, 7.5)
    axes = figure.add_subplot()
    seconds = FRAMES / FPS
    image = axes.imshow(fixed_jami_image(jami), cmap="coolwarm", vmin=-_Z_LIMIT, vmax=_Z_LIMIT,
                        extent=(0, FRAMES, seconds, 0), aspect="auto", interpolation="nearest")
    _draw_bands(axes, seconds)
    if valid < FRAMES:
        axes.axhspan(valid / FPS, seconds, color="0.85", alpha=0.6, hatch="//", linewidth=0)
        axes.text(FRAMES / 2, (valid / FPS + seconds) / 2, "padding (mean pose)", ha="center", va="center")
    axes.set_ylabel("time (s)")
    shown = f"first {valid / FPS:.1f} s of {len(angles) / FPS:.1f} s" if len(angles) > FRAMES \
        else f"{valid / FPS:.1f} s"
    axes.set_title(f"{title or 'JAMI'} ({shown}, 20 fps)")
    figure.colorbar(image, ax=axes, label=scale_label, shrink=0.8)
    figure.tight_layout()
    out = _output(path)
    figure.savefig(out)
    return out


def _draw_bands(axes, seconds: float) -> None:
    centres = np.arange(len(PART_NAMES)) * BAND + BAND / 2
    axes.set_xticks(centres, PART_NAMES, rotation=60, ha="right", fontsize=8)
    for edge in range(BAND, FRAMES, BAND):
        axes.axvline(edge, color="black", linewidth=0.6)
    for window_start in np.arange(BAND / FPS, seconds, BAND / FPS):
        axes.axhline(window_start, color="black", linewidth=0.3, alpha=0.4)
    axes.set_yticks(np.arange(0, seconds + 1e-6, 1.6))


# ---- stick-figure preview ----

def save_preview_gif(motion, path, fps: float = 15.0) -> Path:
    """Animated 3D stick figure of the motion (Y-up data drawn Z-up), with the floor."""
    if motion.num_frames == 0:
        raise DataError("cannot preview a motion without frames")
    positions = motion.resample(fps).positions.astype(np.float64)
    # Y-up (x, y, z) -> Z-up (x, -z, y), Blender's convention, keeps the picture right-handed.
    points = np.stack([positions[..., 0], -positions[..., 2], positions[..., 1]], axis=-1)
    figure = _new_figure(4, 4)
    axes = figure.add_subplot(projection="3d")
    figure.subplots_adjust(0, 0, 1, 1)
    _frame_scene(axes, points)
    floor = points[..., 2].min()
    shadows = _bone_lines(axes, motion.skeleton, shadow=True)
    lines = _bone_lines(axes, motion.skeleton)
    caption = axes.text2D(0.02, 0.95, "", transform=axes.transAxes)

    def draw(frame: int):
        for (line, (child, parent)), (shadow, _) in zip(lines, shadows):
            segment = points[frame, [parent, child]]
            line.set_data_3d(segment[:, 0], segment[:, 1], segment[:, 2])
            shadow.set_data_3d(segment[:, 0], segment[:, 1], [floor, floor])
        caption.set_text(f"{frame / fps:5.2f} s")
        return [line for line, _ in lines + shadows] + [caption]

    animation = FuncAnimation(figure, draw, frames=len(points), blit=False)
    out = _output(path)
    animation.save(out, writer=PillowWriter(fps=fps))
    return out


def _frame_scene(axes, points: np.ndarray) -> None:
    """Equal axis scales around the whole motion and a 0.5 m floor grid at the lowest point."""
    low, high = points.reshape(-1, 3).min(axis=0), points.reshape(-1, 3).max(axis=0)
    centre = (low + high) / 2
    half = max(float((high - low).max()) / 2, 0.9) + 0.1
    axes.set_xlim(centre[0] - half, centre[0] + half)
    axes.set_ylim(centre[1] - half, centre[1] + half)
    axes.set_zlim(low[2], low[2] + 2 * half)
    axes.set_box_aspect((1, 1, 1), zoom=1.35)
    axes.set_axis_off()  # the floor grid gives the scale; axis panes cost most of the drawing time
    x_low, x_high = centre[0] - half, centre[0] + half
    y_low, y_high = centre[1] - half, centre[1] + half
    for x in np.arange(np.ceil(x_low / 0.5) * 0.5, x_high, 0.5):
        axes.plot([x, x], [y_low, y_high], [low[2]] * 2, color="0.8", linewidth=0.6)
    for y in np.arange(np.ceil(y_low / 0.5) * 0.5, y_high, 0.5):
        axes.plot([x_low, x_high], [y, y], [low[2]] * 2, color="0.8", linewidth=0.6)
    axes.view_init(elev=12, azim=-70)


def _bone_lines(axes, skeleton, shadow: bool = False) -> list:
    """One line per bone with its (child, parent) joints; a shadow is a thin grey line."""
    lines = []
    for child, parent in enumerate(skeleton.parents):
        if parent < 0:
            continue
        colour = "0.6" if shadow else _SIDE_COLOURS[_side(skeleton.names[child])]
        (line,) = axes.plot([], [], [], color=colour, linewidth=1.2 if shadow else 2.5, solid_capstyle="round")
        lines.append((line, (child, parent)))
    return lines


def _side(name: str) -> str:
    lower = name.lower()
    if "left" in lower or lower.endswith(("_l", ".l")):
        return "left"
    if "right" in lower or lower.endswith(("_r", ".r")):
        return "right"
    return "centre"


# ---- token relevance ----

def save_relevance_png(tokens: list[str], relevance: np.ndarray, path, title: str = "",
                       steps: list[dict] | None = None) -> Path:
    """One row per text token: a body part x time window heat map of its relevance.

    steps: a text of several steps (explain's `steps`: text, start_s, end_s, tokens): each
    step's span is outlined on the rows of its tokens, with the step's number."""
    relevance = np.asarray(relevance, dtype=np.float32)
    if relevance.ndim != 3 or relevance.shape[1] != len(PART_NAMES) or relevance.shape[0] != len(tokens):
        raise DataError(f"relevance must be ({len(tokens)} tokens, {len(PART_NAMES)} parts, windows), "
                        f"got {relevance.shape}")
    if not tokens:
        raise DataError("no tokens to draw")
    windows = relevance.shape[2]
    figure = _new_figure(2.0 + 0.45 * windows, 0.6 + 1.9 * len(tokens))
    rows = figure.subplots(len(tokens), 1, sharex=True, squeeze=False)[:, 0]
    low, high = float(relevance.min()), float(relevance.max())
    edges = np.arange(windows + 1) * BAND / FPS
    for axes, token, grid in zip(rows, tokens, relevance):
        image = axes.imshow(grid, cmap="magma", vmin=low, vmax=high, aspect="auto", interpolation="nearest",
                            extent=(edges[0], edges[-1], len(PART_NAMES), 0))
        axes.set_yticks(np.arange(len(PART_NAMES)) + 0.5, PART_NAMES, fontsize=6)
        axes.set_ylabel(token, rotation=0, ha="right", va="center", fontsize=11, fontweight="bold",
                        labelpad=48)
    for number, step in enumerate(steps or [], 1):
        for token in step["tokens"]:
            _outline_step(rows[token], number, step["start_s"], step["end_s"])
    rows[-1].set_xticks(edges[::2])
    rows[-1].set_xlabel("time (s)")
    if title:
        figure.suptitle(title)
    figure.colorbar(image, ax=list(rows), label="relevance (cosine)", shrink=0.9)
    out = _output(path)
    figure.savefig(out, bbox_inches="tight")
    return out


def _outline_step(axes, number: int, start_s: float, end_s: float) -> None:
    """A step's span on a token's row: a box from start_s to end_s, numbered at its top left."""
    axes.axvspan(start_s, end_s, fill=False, edgecolor="cyan", linewidth=1.5, linestyle="--")
    axes.text(start_s, 0, f" {number}", color="cyan", fontsize=9, fontweight="bold", va="top", ha="left")
