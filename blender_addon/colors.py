"""Colour a rig's bones by how much one query word matched each body part, over time.

The model's `explain` op gives relevance (tokens, 14 body parts, time windows of 0.8 s).
Each part maps to SMPL-22 joints and, through the bone map, to the rig's bones. One
token's relevance is normalised to 0..1 over the parts and the windows that the clip
covers and shown with the viridis colour map: either as a static colour (the maximum
over time) or animated, keyed on 'pose.bones["B"].color.custom.normal' at each window's
start frame (constant interpolation) in the object's action. The bones' original palette
and colours are saved as JSON in the object's custom property 't2m_bone_colors' the
first time, and clear() restores them exactly and removes the colour keys.
"""
from __future__ import annotations

import json

import bpy
import numpy as np

from . import compat, keyframes

# Copied from inference_server.jami.PART_NAMES (the add-on must not import the server).
PART_NAMES = ["global", "pelvis", "r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle",
              "lumbar", "neck", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow"]
# The SMPL-22 joints (bones by their head joint) whose motion each part describes.
PART_JOINTS = {
    "global": ["pelvis"], "pelvis": ["pelvis"],
    "r_hip": ["right_hip"], "l_hip": ["left_hip"], "r_knee": ["right_knee"], "l_knee": ["left_knee"],
    "r_ankle": ["right_ankle", "right_foot"], "l_ankle": ["left_ankle", "left_foot"],
    "lumbar": ["spine1", "spine2", "spine3"], "neck": ["neck", "head"],
    "r_shoulder": ["right_collar", "right_shoulder"], "l_shoulder": ["left_collar", "left_shoulder"],
    "r_elbow": ["right_elbow", "right_wrist"], "l_elbow": ["left_elbow", "left_wrist"],
}
# matplotlib's viridis sampled at 0, 1/16, ..., 1 (perceptually uniform, colour-blind safe);
# linear interpolation between these stays within 0.021 of the full map.
VIRIDIS = np.array([
    [0.267, 0.005, 0.329], [0.282, 0.095, 0.417], [0.279, 0.175, 0.483], [0.259, 0.252, 0.525],
    [0.230, 0.322, 0.546], [0.199, 0.388, 0.555], [0.173, 0.449, 0.558], [0.149, 0.508, 0.557],
    [0.128, 0.567, 0.551], [0.121, 0.626, 0.533], [0.158, 0.684, 0.502], [0.246, 0.739, 0.452],
    [0.369, 0.789, 0.383], [0.516, 0.831, 0.294], [0.678, 0.864, 0.190], [0.846, 0.887, 0.100],
    [0.993, 0.906, 0.144],
])
SAVED_KEY = "t2m_bone_colors"
COLOR_PROPS = ("normal", "select", "active")


def colormap(values: np.ndarray) -> np.ndarray:
    """Values in 0..1 (any shape) -> RGB (..., 3) by linear interpolation in VIRIDIS."""
    x = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * (len(VIRIDIS) - 1)
    low = np.minimum(np.floor(x).astype(int), len(VIRIDIS) - 2)
    weight = (x - low)[..., None]
    return (1.0 - weight) * VIRIDIS[low] + weight * VIRIDIS[low + 1]


def bone_relevance(relevance: np.ndarray, bone_map: dict[str, str]) -> dict[str, np.ndarray]:
    """One token's relevance (14, windows) -> {bone: (windows,)}, normalised to 0..1 over
    every part and window; a bone shared by two parts takes the larger value."""
    relevance = np.asarray(relevance, dtype=np.float64)
    if relevance.ndim != 2 or relevance.shape[0] != len(PART_NAMES):
        raise ValueError(f"relevance must be ({len(PART_NAMES)}, windows), got {relevance.shape}")
    low, high = float(relevance.min()), float(relevance.max())
    scaled = (relevance - low) / (high - low) if high - low > 1e-12 else np.zeros_like(relevance)
    per_bone: dict[str, np.ndarray] = {}
    for part, row in zip(PART_NAMES, scaled):
        for joint in PART_JOINTS[part]:
            bone = bone_map.get(joint)
            if bone is not None:
                per_bone[bone] = np.maximum(per_bone[bone], row) if bone in per_bone else row.copy()
    return per_bone


def _shades(rgb) -> dict[str, tuple]:
    """Normal colour and the lighter selected/active variants Blender's palettes use."""
    rgb = np.asarray(rgb, dtype=np.float64)
    return {"normal": tuple(rgb), "select": tuple(rgb + (1.0 - rgb) * 0.4),
            "active": tuple(rgb + (1.0 - rgb) * 0.7)}


def _load_saved(obj) -> dict:
    raw = obj.get(SAVED_KEY)
    return json.loads(raw) if raw else {"bones": {}, "action": None}


def save_colors(obj, bone_names) -> None:
    """Remember the palette and colours of bones not remembered yet (never overwrites,
    so a second show_relevance keeps the user's originals)."""
    saved = _load_saved(obj)
    for name in bone_names:
        if name in saved["bones"]:
            continue
        color = obj.pose.bones[name].color
        saved["bones"][name] = {"palette": color.palette,
                                **{prop: list(getattr(color.custom, prop)) for prop in COLOR_PROPS}}
    obj[SAVED_KEY] = json.dumps(saved)


def show(obj, relevance: np.ndarray, bone_map: dict[str, str], animated: bool = True,
         window_seconds: float = 0.8, duration: float | None = None) -> int:
    """Colour the mapped bones by one token's relevance (14, windows). Animated: keys in
    the object's current action from its 't2m_start_frame' at the scene fps, for the
    windows that start within `duration` seconds; static when the action is not one of
    ours (the user's actions are never modified). Returns the number of bones coloured."""
    relevance = np.asarray(relevance, dtype=np.float64)
    if duration is not None:
        windows = max(1, min(relevance.shape[1], int(np.ceil(duration / window_seconds - 1e-9))))
        relevance = relevance[:, :windows]
    per_bone = bone_relevance(relevance, bone_map)
    _remove_color_keys(obj)
    save_colors(obj, per_bone)
    channelbag = keyframes.channelbag_of(obj) if animated and _is_t2m_action(obj) else None
    for name, values in per_bone.items():
        color = obj.pose.bones[name].color
        color.palette = "CUSTOM"
        for prop, rgb in _shades(colormap(values.max())).items():
            setattr(color.custom, prop, rgb)
        if channelbag is not None:
            _key_windows(obj, channelbag, name, values, window_seconds)
    if channelbag is not None:
        saved = _load_saved(obj)
        saved["action"] = obj.animation_data.action.name
        obj[SAVED_KEY] = json.dumps(saved)
    return len(per_bone)


def _is_t2m_action(obj) -> bool:
    """Colour keys only go into actions this add-on made: the user's are never modified."""
    action = obj.animation_data.action if obj.animation_data else None
    return action is not None and "t2m_start_frame" in action


def _key_windows(obj, channelbag, bone: str, values: np.ndarray, window_seconds: float) -> None:
    action = obj.animation_data.action
    scene = bpy.context.scene
    fps = scene.render.fps / scene.render.fps_base
    start = float(action.get("t2m_start_frame", action.frame_range[0]))
    frames = start + np.arange(len(values)) * window_seconds * fps
    path = keyframes.pose_bone_path(bone, "color.custom.normal")
    keyframes.write_channels(channelbag, path, frames, colormap(values), bone, interpolation="CONSTANT")


def _remove_color_keys(obj) -> None:
    """Remove the colour fcurves this module keyed (in the action it recorded)."""
    saved = _load_saved(obj)
    action = bpy.data.actions.get(saved["action"]) if saved.get("action") else None
    if action is None:
        return
    for channelbag in compat.channelbags(action):
        keyframes.remove_channels(channelbag, "pose.bones[", ".color.custom.normal")
    saved["action"] = None
    obj[SAVED_KEY] = json.dumps(saved)


def clear(obj) -> int:
    """Restore every saved bone's palette and colours and drop the colour keys; returns
    the number of bones restored (0 when nothing was saved)."""
    if SAVED_KEY not in obj:
        return 0
    _remove_color_keys(obj)
    saved = _load_saved(obj)
    for name, entry in saved["bones"].items():
        pose_bone = obj.pose.bones.get(name)
        if pose_bone is None:
            continue  # renamed or deleted since
        for prop in COLOR_PROPS:
            setattr(pose_bone.color.custom, prop, entry[prop])
        pose_bone.color.palette = entry["palette"]
    del obj[SAVED_KEY]
    return len(saved["bones"])
