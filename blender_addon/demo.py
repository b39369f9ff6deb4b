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
