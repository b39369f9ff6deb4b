"""The add-on's operators (bl_idname t2m.*), usable from the panel and from scripts.

An operator checks what the user gave, then asks the server through messaging.py:
non-blocking by default (the reply is applied by the timer, replies.py), or waiting for it
with blocking=True (scripts, headless runs). The request kinds are the wire's op names.
"""
from __future__ import annotations

import shlex
import subprocess
import uuid

import bpy
from bpy.props import BoolProperty, IntProperty, StringProperty

from . import bonemap, colors, messaging, retarget, state
from .errors import AddonError
from .preferences import addon_preferences
from .props import bone_map_choice
from .replies import show_relevance, t2m_action
from .status import fail, set_status

DESCRIBE_MAX_FRAMES = 2000


def _active_armature(context):
    obj = context.active_object
    if obj is None or obj.type != "ARMATURE":
        raise AddonError("select an armature first (the active object must be an armature)")
    return obj


def _request(blocking: bool):
    """messaging.call (wait for the reply) or messaging.send (the timer applies it)."""
    return messaging.call if blocking else messaging.send


class _T2MOperator:
    """Shared error handling: AddonError -> report + panel message, CANCELLED."""
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            return self.run(context) or {"FINISHED"}
        except AddonError as error:
            fail(context.scene, str(error))
            self.report({"ERROR"}, str(error))
            return {"CANCELLED"}


# ---------------------------------------------------------------- operators

class T2M_OT_search(_T2MOperator, bpy.types.Operator):
    """Search the motion library with a text query"""
    bl_idname = "t2m.search"
    bl_label = "Search"

    query: StringProperty(name="Query", default="", description="Empty: the panel's query")
    k: IntProperty(name="Results", default=10, min=1, max=100)
    blocking: BoolProperty(name="Blocking", default=False, description="Wait for the reply (scripts)")

    def run(self, context):
        scene = context.scene
        text = (self.query or scene.t2m.query).strip()
        if not text:
            raise AddonError("type a query first")
        scene.t2m.query = text
        _request(self.blocking)(scene, "search", {"text": text, "k": self.k}, query=text)


class T2M_OT_apply(_T2MOperator, bpy.types.Operator):
    """Retarget a search result onto the active armature as a new action"""
    bl_idname = "t2m.apply"
    bl_label = "Apply"

    index: IntProperty(name="Result", default=0, min=0)
    blocking: BoolProperty(name="Blocking", default=False, description="Wait for the reply (scripts)")

    def run(self, context):
        scene = context.scene
        settings = scene.t2m
        obj = _active_armature(context)
        if not 0 <= self.index < len(settings.results):
            raise AddonError(f"no result {self.index}: search first ({len(settings.results)} results)")
        result = settings.results[self.index]
        data = {**_apply_settings(scene, obj), "motion_id": result.motion_id, "name": result.name,
                "query": settings.last_query or result.name}
        _request(self.blocking)(scene, "motion", {"motion_id": result.motion_id}, **data)
        if not self.blocking:
            # Fetch the explanation alongside, so the token buttons answer at once.
            messaging.send(scene, "explain", {"text": data["query"], "motion_id": result.motion_id},
                           query=data["query"], motion_id=result.motion_id, token=None)


class T2M_OT_apply_sequence(_T2MOperator, bpy.types.Operator):
    """Join the picked clip of every step of the query into one new action on the active armature"""
    bl_idname = "t2m.apply_sequence"
    bl_label = "Apply Sequence"

    blocking: BoolProperty(name="Blocking", default=False, description="Wait for the replies (scripts)")

    def run(self, context):
        scene = context.scene
        settings = scene.t2m
        obj = _active_armature(context)
        picks = _sequence_picks(settings)
        data = {**_apply_settings(scene, obj), "query": settings.last_query, "blend_frames": settings.blend_frames,
                "segments": [{"text": segment.text, "motion_id": pick.motion_id, "name": pick.name}
                             for segment, pick in zip(settings.segments, picks)]}
        build = state.SequenceBuild(uuid.uuid4().hex, [None] * len(picks), data)
        state.sequences[scene.name] = build
        for part, pick in enumerate(picks):
            _request(self.blocking)(scene, "motion", {"motion_id": pick.motion_id}, channel=f"part {part}",
                                    sequence=build.id, part=part)


def _apply_settings(scene, obj) -> dict:
    """What every apply needs from the panel: the target, its bone map (resolved here, so a bad
    map fails before the server is asked), root motion, scale and start frame."""
    settings = scene.t2m
    return {"object": obj.name, "bone_map": retarget.resolve_bone_map(obj, bone_map_choice(settings)),
            "root_motion": settings.root_motion, "scale": None if settings.auto_scale else settings.scale,
            "start_frame": scene.frame_current if settings.use_current_frame else settings.start_frame}


def _sequence_picks(settings) -> list:
    """The picked result of every step, in order."""
    if not settings.segments:
        raise AddonError("no sequence: search a query of several steps first "
                         "(\u201cwalks forward, then waves, then sits down\u201d)")
    picks = []
    for number, segment in enumerate(settings.segments, start=1):
        if not 0 <= segment.result_index < len(segment.results):
            raise AddonError(f"step {number} (\u201c{segment.text}\u201d) has no result to apply")
        picks.append(segment.results[segment.result_index])
    return picks


class T2M_OT_show_relevance(_T2MOperator, bpy.types.Operator):
    """Colour the bones by how much this word of the query matched each body part"""
    bl_idname = "t2m.show_relevance"
    bl_label = "Show Relevance"

    token: IntProperty(name="Token", default=0, min=0)
    animated: BoolProperty(name="Animated", default=True,
                           description="Key the colours per 0.8 s window instead of the maximum")

    def run(self, context):
        scene = context.scene
        obj = _active_armature(context)
        action = t2m_action(obj)
        query, motion_id = action["t2m_query"], action["t2m_motion_id"]
        if (query, motion_id) in state.relevance:
            show_relevance(scene, obj, query, motion_id, self.token, self.animated)
            return None
        args = {"text": query, "motion_id": motion_id}
        data = {"query": query, "motion_id": motion_id, "token": self.token, "animated": self.animated,
                "object": obj.name}
        # Without an event loop (background) the timer never runs: wait for the reply.
        _request(bpy.app.background)(scene, "explain", args, **data)
        return None


class T2M_OT_clear_relevance(_T2MOperator, bpy.types.Operator):
    """Restore the bones' original colours"""
    bl_idname = "t2m.clear_relevance"
    bl_label = "Clear Colours"

    def run(self, context):
        obj = _active_armature(context)
        restored = colors.clear(obj)
        context.scene.t2m.active_token = -1
        set_status(context.scene, f"Restored the colours of {restored} bones")


class T2M_OT_describe(_T2MOperator, bpy.types.Operator):
    """Find captions that describe the active armature's action (motion to text)"""
    bl_idname = "t2m.describe"
    bl_label = "Describe Action"

    blocking: BoolProperty(name="Blocking", default=False, description="Wait for the reply (scripts)")

    def run(self, context):
        scene = context.scene
        obj = _active_armature(context)
        action = obj.animation_data.action if obj.animation_data else None
        if action is None:
            raise AddonError(f"{obj.name!r} has no action to describe")
        first, last = (int(round(frame)) for frame in action.frame_range)
        if last - first + 1 > DESCRIBE_MAX_FRAMES:
            last = first + DESCRIBE_MAX_FRAMES - 1
        bone_map = retarget.resolve_bone_map(obj, bone_map_choice(scene.t2m))
        positions = retarget.read_positions(obj, bone_map, first, last, scene=scene)
        fps = retarget.scene_fps(scene)
        _request(self.blocking)(scene, "describe", {"fps": float(fps)}, {"positions": positions},
                                action=action.name)


class T2M_OT_check_server(_T2MOperator, bpy.types.Operator):
    """Ask the server which model and library it serves"""
    bl_idname = "t2m.check_server"
    bl_label = "Check Server"
    bl_options = {"REGISTER"}

    blocking: BoolProperty(name="Blocking", default=False)

    def run(self, context):
        _request(self.blocking)(context.scene, "info", {})


class T2M_OT_start_server(_T2MOperator, bpy.types.Operator):
    """Start the local server with the command set in the add-on preferences"""
    bl_idname = "t2m.start_server"
    bl_label = "Start Server"
    bl_options = {"REGISTER"}

    def run(self, context):
        prefs = addon_preferences(context)
        command = prefs.server_command.strip() if prefs else ""
        if not command:
            raise AddonError("set the server command in the add-on preferences first")
        running = [process for process in state.server_processes if process.poll() is None]
        if running:
            raise AddonError(f"the server started earlier is still running (pid {running[0].pid})")
        try:
            process = subprocess.Popen(shlex.split(command))
        except (OSError, ValueError) as error:
            raise AddonError(f"cannot start {command!r}: {error}") from None
        state.server_processes[:] = [process]
        set_status(context.scene, f"Started the server (pid {process.pid})")


class T2M_OT_edit_bone_map(_T2MOperator, bpy.types.Operator):
    """Write the detected bone map of the active armature into a text you can edit"""
    bl_idname = "t2m.edit_bone_map"
    bl_label = "Edit Bone Map"

    def run(self, context):
        obj = _active_armature(context)
        settings = context.scene.t2m
        mapping = bonemap.auto_map(obj.data)
        text = bpy.data.texts.new(f"T2M bone map {obj.name}.json")
        text.from_string(bonemap.to_json(mapping))
        settings.bone_map_text = text
        settings.bone_map = "CUSTOM"
        set_status(context.scene, f"Edit {text.name} in the Text Editor ({len(mapping)} joints mapped)")


def stop_server() -> None:
    """End the server this add-on started, if it still runs."""
    for process in state.server_processes:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
    state.server_processes.clear()


CLASSES = (T2M_OT_search, T2M_OT_apply, T2M_OT_apply_sequence, T2M_OT_show_relevance,
           T2M_OT_clear_relevance, T2M_OT_describe, T2M_OT_check_server, T2M_OT_start_server,
           T2M_OT_edit_bone_map)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    messaging.stop_polling()
    stop_server()
    state.relevance.clear()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
