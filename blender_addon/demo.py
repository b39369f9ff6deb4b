"""The demo scene: prompts -> best motions on a stand-in Mixamo rig, bones coloured by one word.

Runs in bpy (headless or not) against any backend with `call(op, args) -> (result, arrays)`.
It reuses the extension's own retargeting and bone colouring; the pictures that need the
model's side (JAMI, explanation heat map) are drawn by the caller.
"""
from __future__ import annotations

from pathlib import Path

import bpy
import numpy as np

from . import colors
from .retarget import apply_motion, resolve_bone_map
from .rigs import make_humanoid_rig

STRIP_POSES = 8
CLIP_GAP_FRAMES = 20


def build_scene(backend, prompts: list[str], colour_word: str, k: int = 5) -> dict:
    """A fresh scene with one rig; each prompt's best motion becomes an action on it (one
    after another on the timeline). The first prompt's clip stays active and its bones are
    coloured by `colour_word`'s relevance. Returns what was retrieved and explained."""
    bpy.ops.wm.read_factory_settings(use_empty=True)
    obj = make_humanoid_rig("Character", naming="MIXAMO", pose="A")
    bone_map = resolve_bone_map(obj, None)
    retrieved, clips = [], []
    start = bpy.context.scene.frame_start
    for prompt in prompts:
        result, _ = backend.call("search", {"text": prompt, "k": k})
        best = result["results"][0]
        motion, arrays = backend.call("motion", {"motion_id": best["motion_id"]})
        action = apply_motion(obj, arrays["positions"], float(motion["fps"]), prompt, bone_map=bone_map,
                              start_frame=start)
        clips.append(action)
        retrieved.append({"prompt": prompt, "tokens": result["tokens"], "results": result["results"],
                          "action": action.name, "frames": [int(f) for f in action.frame_range]})
        start = int(action.frame_range[1]) + CLIP_GAP_FRAMES
    explained = _colour_first_clip(backend, obj, clips[0], retrieved[0], colour_word, bone_map)
    return {"object": obj.name, "retrieved": retrieved, "explained": explained}


def _colour_first_clip(backend, obj, action, first: dict, word: str, bone_map: dict) -> dict:
    obj.animation_data.action = action
    best = first["results"][0]
    result, arrays = backend.call("explain", {"text": first["prompt"], "motion_id": best["motion_id"]})
    tokens = result["tokens"]
    token = _token_index(tokens, word)
    relevance = arrays["relevance"]
    colors.show(obj, relevance[token], bone_map, animated=True, window_seconds=result["window_seconds"],
                duration=best.get("duration"))
    bpy.context.scene.frame_start, bpy.context.scene.frame_end = (int(f) for f in action.frame_range)
    return {"tokens": tokens, "token": tokens[token], "relevance": relevance, "parts": result["parts"],
            "motion_id": best["motion_id"], "window_seconds": result["window_seconds"]}


def _token_index(tokens: list[str], word: str) -> int:
    lowered = [token.lower().lstrip("#") for token in tokens]
    return lowered.index(word.lower()) if word.lower() in lowered else 0


def save_blend(path: Path) -> Path:
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    return path


def save_pose_strip(object_name: str, path: Path, poses: int = STRIP_POSES) -> Path:
    """A side-by-side strip of the rig's poses over its active clip, each bone drawn in its
    (possibly keyed) colour: what the viewport shows, drawn with matplotlib."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    obj = bpy.data.objects[object_name]
    scene = bpy.context.scene
    frames = np.linspace(scene.frame_start, scene.frame_end, poses).round().astype(int)
    figure = Figure(figsize=(2.0 * poses, 3.6), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    for column, frame in enumerate(frames):
        scene.frame_set(int(frame))
        offset = 1.2 * column
        for bone in obj.pose.bones:
            head, tail = obj.matrix_world @ bone.head, obj.matrix_world @ bone.tail
            rgb = tuple(bone.color.custom.normal) if bone.color.palette == "CUSTOM" else (0.55, 0.55, 0.55)
            # Front view (Blender: +X is the character's left, -Y its facing): x across, z up.
            axes.plot([head.x + offset, tail.x + offset], [head.z, tail.z], color=rgb, linewidth=3,
                      solid_capstyle="round")
        axes.text(offset, -0.12, f"frame {frame}", ha="center", fontsize=8)
    axes.set_aspect("equal")
    axes.axis("off")
    axes.set_title(obj.animation_data.action.name if obj.animation_data and obj.animation_data.action else "")
    figure.tight_layout()
    figure.savefig(path)
    return path


# ---------------------------------------------------------------- the panel, as a picture

PANEL_WIDTH = 540
ROW_HEIGHT = 40
LISTED_ROWS = 3
PANEL_COLOURS = {"background": "#303030", "box": "#3d3d3d", "row": "#2b2b2b", "picked": "#4772b3",
                 "text": "#e6e6e6", "dim": "#a0a0a0", "field": "#1d1d1d", "button": "#545454"}


def save_panel_picture(scene, path: Path) -> Path:
    """The T2M panel of `scene` as the sidebar shows it after a search of several steps:
    the query, the whole query's results, every step with its results (the picked one
    highlighted) and each row's preview from the add-on's previews collection, then the
    blend and root options and Apply Sequence. Drawn with matplotlib from scene.t2m."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    settings = scene.t2m
    figure = Figure(dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.axis("off")
    y = _draw_search(axes, settings, 12)
    y = _draw_list(axes, settings.results, settings.result_index, 10, y, "Whole query: clips that do every step, "
                                                                        "in order")
    y = _draw_spans(axes, settings.results, settings.result_index, y)
    _label(axes, 10, y + 14, "Sequence", bold=True)
    y += 30
    for number, segment in enumerate(settings.segments, start=1):
        y = _draw_list(axes, segment.results, segment.result_index, 18, y, f"{number}. {segment.text}", boxed=True)
    y = _draw_sequence_options(axes, settings, y)
    figure.set_size_inches(PANEL_WIDTH / 100, y / 100)
    axes.set_xlim(0, PANEL_WIDTH)
    axes.set_ylim(y, 0)
    figure.savefig(path, facecolor=PANEL_COLOURS["background"])
    return path


def _label(axes, x: float, y: float, text: str, colour: str = "text", bold: bool = False, size: float = 9.5,
           align: str = "left") -> None:
    axes.text(x, y, text, color=PANEL_COLOURS[colour], fontsize=size, fontweight="bold" if bold else "normal",
              ha=align, va="center", family="DejaVu Sans")


def _rectangle(axes, x: float, y: float, width: float, height: float, colour: str) -> None:
    from matplotlib.patches import FancyBboxPatch

    axes.add_patch(FancyBboxPatch((x, y), width, height, boxstyle="round,pad=0,rounding_size=4",
                                  facecolor=PANEL_COLOURS[colour], edgecolor="none"))


def _draw_search(axes, settings, y: float) -> float:
    _label(axes, 10, y + 8, "Text to Motion", bold=True, size=11)
    _rectangle(axes, 10, y + 24, PANEL_WIDTH - 20, 24, "field")
    _label(axes, 18, y + 36, settings.server, colour="dim")
    _label(axes, 10, y + 64, settings.status, colour="dim", size=8.5)
    _rectangle(axes, 10, y + 78, PANEL_WIDTH - 100, 24, "field")
    _label(axes, 18, y + 90, settings.query if len(settings.query) < 70 else settings.query[:69] + "\u2026", size=8.5)
    _rectangle(axes, PANEL_WIDTH - 84, y + 78, 74, 24, "button")
    _label(axes, PANEL_WIDTH - 47, y + 90, "Search", align="center")
    return y + 114


def _draw_list(axes, results, picked: int, x: float, y: float, title: str, boxed: bool = False) -> float:
    """A result list: a title, then LISTED_ROWS rows of preview, name, score and duration."""
    width = PANEL_WIDTH - 2 * x
    if boxed:
        _rectangle(axes, x - 8, y - 4, width + 16, 34 + LISTED_ROWS * ROW_HEIGHT + 12, "box")
    _label(axes, x, y + 12, title, bold=boxed)
    y += 30
    for index, item in enumerate(results[:LISTED_ROWS]):
        _rectangle(axes, x, y, width, ROW_HEIGHT - 4, "picked" if index == picked else "row")
        pixels = _preview_pixels(item.motion_id)
        if pixels is not None:
            axes.imshow(pixels, extent=(x + 4, x + 100, y + 34, y + 2), interpolation="bilinear", zorder=3)
        _label(axes, x + 110, y + 18, item.name)
        _label(axes, x + width - 70, y + 18, f"{item.score:.3f}", align="right")
        _label(axes, x + width - 8, y + 18, f"{item.duration:.1f} s", align="right")
        y += ROW_HEIGHT
    return y + 14


def _preview_pixels(motion_id: str):
    """The row's preview as the collection holds it (RGBA rows bottom-up), top-down, or None."""
    from . import previews

    preview = previews.preview(motion_id)
    if preview is None:
        return None
    width, height = preview.image_size
    return np.array(preview.image_pixels_float[:]).reshape(height, width, 4)[::-1]


def _draw_spans(axes, results, selected: int, y: float) -> float:
    """Where each step of the query happens in the selected whole-query result."""
    if not 0 <= selected < len(results) or not results[selected].spans:
        return y
    spans = "   ".join(f"{n}: {span.start:.1f}-{span.end:.1f} s" for n, span in enumerate(results[selected].spans, 1))
    _label(axes, 10, y, f"Steps at  {spans}", colour="dim", size=8.5)
    return y + 22


def _draw_sequence_options(axes, settings, y: float) -> float:
    _label(axes, 10, y + 10, f"Blend frames: {settings.blend_frames}")
    half = (PANEL_WIDTH - 20) / 2
    for column, (value, text) in enumerate((("full", "Full"), ("in_place", "In place"))):
        _rectangle(axes, 10 + column * half, y + 26, half - 2, 24, "picked" if settings.root_motion == value
                   else "button")
        _label(axes, 10 + column * half + half / 2, y + 38, text, align="center")
    _rectangle(axes, 10, y + 60, PANEL_WIDTH - 20, 28, "button")
    _label(axes, PANEL_WIDTH / 2, y + 74, "Apply Sequence", align="center", bold=True)
    return y + 100
