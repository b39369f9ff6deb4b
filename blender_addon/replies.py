"""What each op's reply does to bpy data, on the main thread: HANDLERS, keyed by op name.

A handler takes (scene, data, result, arrays): `data` is what the operator stored with the
request (object names, the query, apply options), `result` and `arrays` the reply's. It may
name the requests to send next (`then`: the previews of a search's results) and take an
error reply itself (`refused`: a server without `preview` is no error to show).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import bpy
import numpy as np

from . import bonemap, clips, colors, previews, retarget, state
from .errors import AddonError
from .status import set_status


class FollowUp(NamedTuple):
    """A request a handler asks messaging to send once its reply was applied."""
    op: str
    args: dict
    channel: str
    data: dict


def on_info(scene, data, result, arrays) -> None:
    model = result.get("model", {}).get("name", "?")
    motions = result.get("library", {}).get("motions", "?")
    scene.t2m.server_info = f"{model}, {motions} motions, {result.get('device', '?')}"
    set_status(scene, "Connected")


# ---------------------------------------------------------------- search and previews

def on_search(scene, data, result, arrays) -> None:
    """The whole query's results and tokens; for a query of several steps also each step
    ("segments") with its own results, each step's pick defaulting to its top hit."""
    settings = scene.t2m
    _fill_results(settings.results, result.get("results", []))
    _fill_tokens(settings.tokens, result.get("tokens", []))
    settings.segments.clear()
    for step in result.get("segments", []):
        segment = settings.segments.add()
        segment.text = str(step.get("text", ""))
        _fill_tokens(segment.tokens, step.get("tokens", []))
        _fill_results(segment.results, step.get("results", []))
        segment.result_index = 0
    settings.result_index = 0
    settings.active_token = -1
    settings.last_query = data["query"]
    steps = f" in {len(settings.segments)} steps" if settings.segments else ""
    set_status(scene, f"{len(settings.results)} motions for \u201c{data['query']}\u201d{steps}")


def _fill_results(collection, hits: list[dict]) -> None:
    collection.clear()
    for hit in hits:
        item = collection.add()
        item.motion_id = str(hit["motion_id"])
        item.name = str(hit.get("name", hit["motion_id"]))
        item.score = float(hit.get("score", 0.0))
        item.duration = float(hit.get("duration", 0.0))
        item.captions = " | ".join(str(c) for c in hit.get("captions", []))
        for start, end in hit.get("spans", []):
            span = item.spans.add()
            span.start, span.end = float(start), float(end)


def _fill_tokens(collection, tokens: list) -> None:
    collection.clear()
    for token in tokens:
        collection.add().text = str(token)


def preview_requests(scene, data, result) -> list[FollowUp]:
    """`preview` requests for the listed motions whose previews were not asked for yet."""
    hits = result.get("results", []) + [hit for step in result.get("segments", []) for hit in step.get("results", [])]
    width, height = previews.SIZE
    return [FollowUp("preview", {"motion_id": motion_id, "width": width, "height": height}, motion_id,
                     {"motion_id": motion_id})
            for motion_id in previews.wanted(str(hit["motion_id"]) for hit in hits)]


def on_preview(scene, data, result, arrays) -> None:
    png = np.asarray(arrays["png"], dtype=np.uint8).tobytes()
    previews.store(data["motion_id"], (int(result["width"]), int(result["height"])), png)


def preview_refused(scene, data, code: str, message: str) -> bool:
    """A preview is optional: no panel error, whatever the server said."""
    previews.refused(data["motion_id"], code)
    return True


# ---------------------------------------------------------------- apply

def on_motion(scene, data, result, arrays) -> None:
    """Retarget the fetched motion onto the armature the apply operator was run on, or keep
    it as one clip of an Apply Sequence (applied once the last clip is in)."""
    positions = clips.smpl_positions(result, arrays)
    if "part" in data:
        _sequence_part(scene, data, positions, float(result["fps"]))
        return
    obj = _armature(data["object"])
    action = retarget.apply_motion(obj, positions, float(result["fps"]), data["query"],
                                   bone_map=data["bone_map"], root_motion=data["root_motion"],
                                   scale=data["scale"], start_frame=data["start_frame"], scene=scene)
    action["t2m_motion_id"] = data["motion_id"]
    action["t2m_query"] = data["query"]
    _undo_push(f"T2M apply {data['name']}")
    first, last = action.frame_range
    set_status(scene, f"Applied {data['name']} to {obj.name}: frames {first:g}-{last:g}")


def motion_refused(scene, data, code: str, message: str) -> bool:
    """A clip of a sequence that cannot be fetched ends its Apply Sequence; the error shows."""
    if "part" in data and _current_build(scene, data) is not None:
        del state.sequences[scene.name]
    return False


def _armature(name: str):
    obj = bpy.data.objects.get(name)
    if obj is None or obj.type != "ARMATURE":
        raise AddonError(f"armature {name!r} is gone")
    return obj


def _current_build(scene, data) -> state.SequenceBuild | None:
    build = state.sequences.get(scene.name)
    return build if build is not None and build.id == data["sequence"] else None


def _sequence_part(scene, data, positions: np.ndarray, fps: float) -> None:
    build = _current_build(scene, data)
    if build is None:
        return  # a newer Apply Sequence replaced this one, or one of its clips failed
    build.parts[data["part"]] = (positions, fps)
    fetched = sum(part is not None for part in build.parts)
    if fetched < len(build.parts):
        set_status(scene, f"Fetched {fetched} of {len(build.parts)} clips\u2026", busy=True)
        return
    del state.sequences[scene.name]
    _apply_sequence(scene, build)


def _apply_sequence(scene, build: state.SequenceBuild) -> None:
    """Join the fetched clips at the scene's fps and retarget them as one new action."""
    data = build.data
    obj = _armature(data["object"])
    fps = retarget.scene_fps(scene)
    positions = clips.stitched_positions(build.parts, fps, data["blend_frames"], data["root_motion"] == "in_place")
    action = retarget.apply_motion(obj, positions, fps, data["query"], bone_map=data["bone_map"],
                                   root_motion=data["root_motion"], scale=data["scale"],
                                   start_frame=data["start_frame"], scene=scene)
    action["t2m_query"] = data["query"]
    action["t2m_segments"] = json.dumps(data["segments"])
    action["t2m_blend_frames"] = int(data["blend_frames"])
    _undo_push(f"T2M apply sequence {data['query']}")
    first, last = action.frame_range
    set_status(scene, f"Applied a sequence of {len(build.parts)} clips to {obj.name}: frames {first:g}-{last:g}")


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


# ---------------------------------------------------------------- explain, describe

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


def _nothing_next(scene, data, result) -> list[FollowUp]:
    return []


def _not_taken(scene, data, code: str, message: str) -> bool:
    return False


@dataclass(frozen=True)
class Handler:
    waiting: str                                  # the status line while it waits ("": leave it)
    apply: Callable                               # (scene, data, result, arrays) -> None
    then: Callable = field(default=_nothing_next)  # (scene, data, result) -> [FollowUp]
    refused: Callable = field(default=_not_taken)  # (scene, data, code, message) -> True: handled here


HANDLERS = {
    "info": Handler("Contacting the server\u2026", on_info),
    "search": Handler("Searching\u2026", on_search, then=preview_requests),
    "motion": Handler("Fetching the motion\u2026", on_motion, refused=motion_refused),
    "explain": Handler("Asking which words matched\u2026", on_explain),
    "describe": Handler("Describing the action\u2026", on_describe),
    "preview": Handler("", on_preview, refused=preview_refused),
}


# ---------------------------------------------------------------- relevance colours

def t2m_action(obj):
    """The T2M action of `obj` (one a search result was applied as)."""
    action = obj.animation_data.action if obj.animation_data else None
    if action is not None and "t2m_segments" in action:
        raise AddonError(f"{action.name!r} is a sequence of several clips: word colours show on an "
                         "action of one clip (Apply a result of the list)")
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
