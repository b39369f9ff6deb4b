"""What each op's reply does to bpy data, on the main thread: HANDLERS, keyed by op name.

A handler takes (scene, data, result, arrays): `data` is what the operator stored with the
request (object names, the query, apply options), `result` and `arrays` the reply's.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import bpy
import numpy as np

from . import bonemap, colors, retarget, state
from .errors import AddonError
from .status import set_status


def on_info(scene, data, result, arrays) -> None:
    model = result.get("model", {}).get("name", "?")
    motions = result.get("library", {}).get("motions", "?")
    scene.t2m.server_info = f"{model}, {motions} motions, {result.get('device', '?')}"
    set_status(scene, "Connected")


def on_search(scene, data, result, arrays) -> None:
    settings = scene.t2m
    settings.results.clear()
    for hit in result.get("results", []):
        item = settings.results.add()
        item.motion_id = str(hit["motion_id"])
        item.name = str(hit.get("name", hit["motion_id"]))
        item.score = float(hit.get("score", 0.0))
        item.duration = float(hit.get("duration", 0.0))
        item.captions = " | ".join(str(c) for c in hit.get("captions", []))
    settings.tokens.clear()
    for token in result.get("tokens", []):
        settings.tokens.add().text = str(token)
    settings.result_index = 0
    settings.active_token = -1
    settings.last_query = data["query"]
    set_status(scene, f"{len(settings.results)} motions for \u201c{data['query']}\u201d")


def on_motion(scene, data, result, arrays) -> None:
    """Retarget the fetched motion onto the armature the apply operator was run on."""
    obj = bpy.data.objects.get(data["object"])
    if obj is None or obj.type != "ARMATURE":
        raise AddonError(f"armature {data['object']!r} is gone")
    positions = _smpl_positions(result, arrays)
    action = retarget.apply_motion(obj, positions, float(result["fps"]), data["query"],
                                   bone_map=data["bone_map"], root_motion=data["root_motion"],
                                   scale=data["scale"], start_frame=data["start_frame"], scene=scene)
    action["t2m_motion_id"] = data["motion_id"]
    action["t2m_query"] = data["query"]
    _undo_push(f"T2M apply {data['name']}")
    first, last = action.frame_range
    set_status(scene, f"Applied {data['name']} to {obj.name}: frames {first:g}-{last:g}")


def _smpl_positions(result: dict, arrays: dict) -> np.ndarray:
    joints = result.get("joints", [])
    if list(joints) != bonemap.SMPL22_JOINTS:
        raise AddonError(f"the server sent a {len(joints)}-joint skeleton; SMPL-22 is needed")
    positions = np.asarray(arrays["positions"], dtype=np.float64)
    if result.get("up", "Y") == "Z":  # Z-up (x, y, z) -> Y-up (x, z, -y)
        positions = positions[..., [0, 2, 1]] * np.array([1.0, 1.0, -1.0])
    return positions


def _undo_push(message: str) -> None:
    # A result applied from the timer is not part of any operator's undo step; push one
    # so Ctrl+Z removes it. Background Blender has no undo stack, and the push needs an
    # active window: without one the result just joins the next undo step.
    if bpy.app.background:
        return
    windows = bpy.context.window_manager.windows
    if not windows:
        return
    try:
        with bpy.context.temp_override(window=windows[0]):
            bpy.ops.ed.undo_push(message=message)
    except RuntimeError as error:  # the motion is applied either way; only its undo step is missing
        print(f"T2M: no undo step for {message!r}: {error}")


def on_explain(scene, data, result, arrays) -> None:
    """Keep the explanation; colour the bones when a token was asked for (not when fetched ahead)."""
    state.relevance[(data["query"], data["motion_id"])] = {
        "tokens": list(result.get("tokens", [])), "relevance": np.asarray(arrays["relevance"]),
        "window_seconds": float(result.get("window_seconds", 0.8))}
    if data.get("token") is None:
        return  # fetched ahead of time, right after an apply
    obj = bpy.data.objects.get(data["object"])
    if obj is None:
        raise AddonError(f"armature {data['object']!r} is gone")
    show_relevance(scene, obj, data["query"], data["motion_id"], data["token"], data["animated"])


def on_describe(scene, data, result, arrays) -> None:
    settings = scene.t2m
    settings.descriptions.clear()
    for caption in result.get("captions", []):
        item = settings.descriptions.add()
        item.text = str(caption.get("text", ""))
        item.score = float(caption.get("score", 0.0))
    set_status(scene, f"{len(settings.descriptions)} captions for {data['action']}")


@dataclass(frozen=True)
class Handler:
    waiting: str        # the status line while the request waits
    apply: Callable     # (scene, data, result, arrays) -> None


HANDLERS = {
    "info": Handler("Contacting the server\u2026", on_info),
    "search": Handler("Searching\u2026", on_search),
    "motion": Handler("Fetching the motion\u2026", on_motion),
    "explain": Handler("Asking which words matched\u2026", on_explain),
    "describe": Handler("Describing the action\u2026", on_describe),
}


# ---------------------------------------------------------------- relevance colours

def t2m_action(obj):
    """The T2M action of `obj` (one a search result was applied as)."""
    action = obj.animation_data.action if obj.animation_data else None
    if action is None or "t2m_motion_id" not in action:
        raise AddonError(f"{obj.name!r} has no applied T2M motion: apply a search result first")
    return action


def show_relevance(scene, obj, query: str, motion_id: str, token: int, animated: bool) -> None:
    """Colour the mapped bones by token `token`'s relevance (the kept explanation)."""
    explained = state.relevance[(query, motion_id)]
    tokens = explained["tokens"]
    if not 0 <= token < len(tokens):
        raise AddonError(f"token {token} is out of range: the query has {len(tokens)} tokens")
    action = t2m_action(obj)
    bone_map = bonemap.parse_custom(action["t2m_bone_map"], action.name, obj.data)
    first, last = action.frame_range
    count = colors.show(obj, explained["relevance"][token], bone_map, animated,
                        explained["window_seconds"], duration=(last - first) / retarget.scene_fps(scene))
    scene.t2m.active_token = token
    set_status(scene, f"\u201c{tokens[token]}\u201d coloured on {count} bones")
