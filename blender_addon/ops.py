"""Operators and the request machinery that keeps the UI responsive.

Non-blocking by default: an operator sends its request on the one DEALER client and
returns at once; ONE persistent bpy.app.timers callback, poll_replies(), polls the
socket every TIMER_INTERVAL s on the main thread, matches replies to requests by id,
drops stale ones (a newer request of the same kind in the same scene replaced them),
applies results to bpy data and tags the 3D views for redraw. Requests remember scene and
object *names*, never bpy references (undo and file loads invalidate those).
blocking=True does a Client.call instead, for scripts and headless runs (where timers
never fire). Every failure ends as one line in the panel and in the operator report.
"""
from __future__ import annotations

import shlex
import subprocess
import traceback
from dataclasses import dataclass, field

import bpy
import numpy as np
from bpy.props import BoolProperty, IntProperty, StringProperty

from . import bonemap, colors, retarget
from .errors import AddonError
from .props import addon_preferences
from .wire import (Client, ProtocolError, RemoteError, ServerUnreachable, read_public_key, read_secret_key,
                   zmq_error_type)

TIMER_INTERVAL = 0.05
DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 1
DESCRIBE_MAX_FRAMES = 2000


@dataclass
class _Request:
    kind: str                 # "search" | "apply" | "explain" | "describe" | "info"
    scene: str
    data: dict = field(default_factory=dict)


_connection: dict = {"client": None, "key": None}
_pending: dict[str, _Request] = {}
_latest: dict[tuple[str, str], str] = {}       # (scene, kind) -> newest request id
_relevance: dict[tuple[str, str], dict] = {}   # (query, motion_id) -> explain result + array
_server_process: list = []                     # the local server started from the panel


# ---------------------------------------------------------------- connection

def _client_settings(scene) -> tuple[str, float, int, str, str]:
    """(address, timeout, retries, client secret key file, server public key file)."""
    prefs = addon_preferences()
    address = scene.t2m.server.strip() or (prefs.default_server if prefs else "")
    timeout = prefs.timeout if prefs else DEFAULT_TIMEOUT
    retries = prefs.retries if prefs else DEFAULT_RETRIES
    client_secret = _key_path(prefs.client_secret_key) if prefs else ""
    server_public = _key_path(prefs.server_public_key) if prefs else ""
    return address, timeout, retries, client_secret, server_public


def _key_path(path: str) -> str:
    path = path.strip()
    return bpy.path.abspath(path) if path else ""


def _client_keys(client_secret: str, server_public: str) -> dict:
    """Client(...) keyword arguments for the optional CurveZMQ keys of the preferences:
    none when both are empty (the default; a local server needs no keys)."""
    if not client_secret and not server_public:
        return {}
    if not server_public:
        raise AddonError("a client secret key needs the server's public key file (server.key): "
                         "set both in the add-on preferences, or neither")
    keys = {}
    try:
        keys["server_key"] = read_public_key(server_public)
        if client_secret:
            read_secret_key(client_secret)  # a readable pair: the error names the file now
            keys["client_key"] = client_secret
    except (OSError, ValueError) as error:
        raise AddonError(f"unusable CurveZMQ key file in the add-on preferences: {error}") from None
    return keys


def _client_for(scene) -> Client:
    """The shared client, remade when the address, the timeouts or the keys changed."""
    key = _client_settings(scene)
    if _connection["client"] is not None and _connection["key"] == key:
        return _connection["client"]
    close_client()
    address, timeout, retries, client_secret, server_public = key
    if not address:
        raise AddonError("no server address: set one in the T2M panel")
    if not bpy.app.online_access and not is_loopback(address):
        raise AddonError(f"{address} is on another machine and Blender's online access is off "
                         "(Preferences > System > Network > Allow Online Access)")
    keys = _client_keys(client_secret, server_public)
    try:
        client = Client(address, timeout=timeout, retries=retries, **keys)
    except (zmq_error_type(), ValueError) as error:
        raise AddonError(f"invalid server address {address!r}: {error}") from None
    _connection.update(client=client, key=key)
    return client


def is_loopback(address: str) -> bool:
    """Whether a ZeroMQ address stays on this machine (ipc://, inproc://, tcp to loopback)."""
    transport, _, rest = address.partition("://")
    if transport != "tcp":
        return transport in ("ipc", "inproc")
    host = rest.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def close_client() -> None:
    """Close the socket; requests still waiting are forgotten."""
    client = _connection["client"]
    if client is not None:
        client.close()
    _connection.update(client=None, key=None)
    _pending.clear()
    _latest.clear()


def _send(scene, kind: str, op: str, args: dict, arrays: dict | None = None, **data) -> str:
    client = _client_for(scene)
    try:
        request_id = client.send(op, args, arrays)
    except ProtocolError as error:
        raise AddonError(error.message) from None
    _pending[request_id] = _Request(kind, scene.name, data)
    _latest[(scene.name, kind)] = request_id
    _set_status(scene, BUSY_TEXT[kind], busy=True)
    if not bpy.app.timers.is_registered(poll_replies):
        bpy.app.timers.register(poll_replies, first_interval=TIMER_INTERVAL, persistent=True)
    return request_id


def _call(scene, kind: str, op: str, args: dict, arrays: dict | None = None, **data) -> None:
    """Blocking request: wait for the reply and apply it now."""
    client = _client_for(scene)
    _set_status(scene, BUSY_TEXT[kind], busy=True)
    try:
        result, reply_arrays = client.call(op, args, arrays)
    except (RemoteError, ProtocolError) as error:
        raise AddonError(f"the server refused {op}: {error.message}") from None
    except ServerUnreachable as error:
        raise AddonError(str(error)) from None
    HANDLERS[kind](scene, data, result, reply_arrays)


def poll_replies() -> float | None:
    """The timer callback: apply every reply that arrived; keep polling while requests
    wait. Tests call it directly (timers never fire in background mode)."""
    client = _connection["client"]
    if client is None:
        return None
    answered = client.poll()
    for request_id, reply in answered:
        _dispatch(request_id, reply)
    if answered:
        _redraw()
    return TIMER_INTERVAL if _pending else None


def _dispatch(request_id: str, reply) -> None:
    request = _pending.pop(request_id, None)
    scene = bpy.data.scenes.get(request.scene) if request is not None else None
    if scene is None or _latest.get((request.scene, request.kind)) != request_id:
        return  # stale: a newer request of this kind replaced it, or its scene is gone
    del _latest[(request.scene, request.kind)]
    if not reply.ok:
        _fail(scene, reply.error_message or reply.error_code)
        return
    try:
        HANDLERS[request.kind](scene, request.data, reply.result, reply.arrays)
    except AddonError as error:
        _fail(scene, str(error))
    except Exception as error:  # a bug: keep the timer alive, show it, log the trace
        traceback.print_exc()
        _fail(scene, f"internal error while applying {request.kind}: {error}")


def _set_status(scene, text: str, busy: bool = False) -> None:
    scene.t2m.status = text
    scene.t2m.busy = busy
    if busy or text:
        scene.t2m.error = ""


def _fail(scene, message: str) -> None:
    scene.t2m.error = message
    scene.t2m.status = ""
    scene.t2m.busy = False


def _redraw() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def check_server(scene) -> None:
    """Ask the server about itself (non-blocking); used when the address changes."""
    if bpy.app.background:
        return
    try:
        _send(scene, "info", "info", {})
    except AddonError as error:
        _fail(scene, str(error))


# ---------------------------------------------------------------- reply handlers

BUSY_TEXT = {"search": "Searching\u2026", "apply": "Fetching the motion\u2026",
             "explain": "Asking which words matched\u2026", "describe": "Describing the action\u2026",
             "info": "Contacting the server\u2026"}


def _on_info(scene, data, result, arrays) -> None:
    model = result.get("model", {}).get("name", "?")
    motions = result.get("library", {}).get("motions", "?")
    scene.t2m.server_info = f"{model}, {motions} motions, {result.get('device', '?')}"
    _set_status(scene, "Connected")


def _on_search(scene, data, result, arrays) -> None:
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
    _set_status(scene, f"{len(settings.results)} motions for \u201c{data['query']}\u201d")


def _on_motion(scene, data, result, arrays) -> None:
    obj = bpy.data.objects.get(data["object"])
    if obj is None or obj.type != "ARMATURE":
        raise AddonError(f"armature {data['object']!r} is gone")
    positions = _smpl_positions(result, arrays)
    action = retarget.apply_motion(obj, positions, float(result["fps"]), data["query"],
                                   bone_map=data["bone_map"], root_motion=data["root_motion"],
                                   scale=data["scale"], start_frame=data["start_frame"])
    action["t2m_motion_id"] = data["motion_id"]
    action["t2m_query"] = data["query"]
    _undo_push(f"T2M apply {data['name']}")
    first, last = action.frame_range
    _set_status(scene, f"Applied {data['name']} to {obj.name}: frames {first:g}-{last:g}")


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


def _on_explain(scene, data, result, arrays) -> None:
    _relevance[(data["query"], data["motion_id"])] = {
        "tokens": list(result.get("tokens", [])), "relevance": np.asarray(arrays["relevance"]),
        "window_seconds": float(result.get("window_seconds", 0.8))}
    if data.get("token") is None:
        return  # fetched ahead of time, right after an apply
    obj = bpy.data.objects.get(data["object"])
    if obj is None:
        raise AddonError(f"armature {data['object']!r} is gone")
    _colour(scene, obj, data["query"], data["motion_id"], data["token"], data["animated"])


def _on_describe(scene, data, result, arrays) -> None:
    settings = scene.t2m
    settings.descriptions.clear()
    for caption in result.get("captions", []):
        item = settings.descriptions.add()
        item.text = str(caption.get("text", ""))
        item.score = float(caption.get("score", 0.0))
    _set_status(scene, f"{len(settings.descriptions)} captions for {data['action']}")


HANDLERS = {"info": _on_info, "search": _on_search, "apply": _on_motion, "explain": _on_explain,
            "describe": _on_describe}


# ---------------------------------------------------------------- helpers for operators

def _active_armature(context):
    obj = context.active_object
    if obj is None or obj.type != "ARMATURE":
        raise AddonError("select an armature first (the active object must be an armature)")
    return obj


def bone_map_choice(settings):
    """The apply option as retarget.apply_motion takes it: None, a preset or a dict."""
    if settings.bone_map == "AUTO":
        return None
    if settings.bone_map != "CUSTOM":
        return settings.bone_map
    text = settings.bone_map_text
    if text is None:
        raise AddonError("choose the text that holds the custom bone map (or press Edit Map)")
    return text


def _resolve_map(obj, choice) -> dict[str, str]:
    if isinstance(choice, bpy.types.Text):
        choice = bonemap.parse_custom(choice.as_string(), choice.name, obj.data)
    return retarget.resolve_bone_map(obj, choice)


def _t2m_action(obj):
    action = obj.animation_data.action if obj.animation_data else None
    if action is None or "t2m_motion_id" not in action:
        raise AddonError(f"{obj.name!r} has no applied T2M motion: apply a search result first")
    return action


def _colour(scene, obj, query: str, motion_id: str, token: int, animated: bool) -> None:
    explained = _relevance[(query, motion_id)]
    tokens = explained["tokens"]
    if not 0 <= token < len(tokens):
        raise AddonError(f"token {token} is out of range: the query has {len(tokens)} tokens")
    action = _t2m_action(obj)
    bone_map = bonemap.parse_custom(action["t2m_bone_map"], action.name, obj.data)
    first, last = action.frame_range
    fps = scene.render.fps / scene.render.fps_base
    count = colors.show(obj, explained["relevance"][token], bone_map, animated,
                        explained["window_seconds"], duration=(last - first) / fps)
    scene.t2m.active_token = token
    _set_status(scene, f"\u201c{tokens[token]}\u201d coloured on {count} bones")


class _T2MOperator:
    """Shared error handling: AddonError -> report + panel message, CANCELLED."""
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            return self.run(context) or {"FINISHED"}
        except AddonError as error:
            _fail(context.scene, str(error))
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
        request = (_call if self.blocking else _send)
        request(scene, "search", "search", {"text": text, "k": self.k}, query=text)


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
        choice = bone_map_choice(settings)
        bone_map = _resolve_map(obj, choice)  # fail before asking the server
        data = {"object": obj.name, "motion_id": result.motion_id, "name": result.name,
                "query": settings.last_query or result.name, "bone_map": bone_map,
                "root_motion": settings.root_motion,
                "scale": None if settings.auto_scale else settings.scale,
                "start_frame": scene.frame_current if settings.use_current_frame else settings.start_frame}
        request = (_call if self.blocking else _send)
        request(scene, "apply", "motion", {"motion_id": result.motion_id}, **data)
        if not self.blocking:
            # Fetch the explanation alongside, so the token buttons answer at once.
            _send(scene, "explain", "explain", {"text": data["query"], "motion_id": result.motion_id},
                  query=data["query"], motion_id=result.motion_id, token=None)


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
        action = _t2m_action(obj)
        query, motion_id = action["t2m_query"], action["t2m_motion_id"]
        if (query, motion_id) in _relevance:
            _colour(scene, obj, query, motion_id, self.token, self.animated)
            return None
        args = {"text": query, "motion_id": motion_id}
        data = {"query": query, "motion_id": motion_id, "token": self.token, "animated": self.animated,
                "object": obj.name}
        # Without an event loop (background) the timer never runs: wait for the reply.
        request = _call if bpy.app.background else _send
        request(scene, "explain", "explain", args, **data)
        return None


class T2M_OT_clear_relevance(_T2MOperator, bpy.types.Operator):
    """Restore the bones' original colours"""
    bl_idname = "t2m.clear_relevance"
    bl_label = "Clear Colours"

    def run(self, context):
        obj = _active_armature(context)
        restored = colors.clear(obj)
        context.scene.t2m.active_token = -1
        _set_status(context.scene, f"Restored the colours of {restored} bones")


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
        bone_map = _resolve_map(obj, bone_map_choice(scene.t2m))
        positions = retarget.read_positions(obj, bone_map, first, last)
        fps = scene.render.fps / scene.render.fps_base
        request = (_call if self.blocking else _send)
        request(scene, "describe", "describe", {"fps": float(fps)}, {"positions": positions},
                action=action.name)


class T2M_OT_check_server(_T2MOperator, bpy.types.Operator):
    """Ask the server which model and library it serves"""
    bl_idname = "t2m.check_server"
    bl_label = "Check Server"
    bl_options = {"REGISTER"}

    blocking: BoolProperty(name="Blocking", default=False)

    def run(self, context):
        (_call if self.blocking else _send)(context.scene, "info", "info", {})


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
        if _server_process and _server_process[0].poll() is None:
            raise AddonError(f"the server started earlier is still running (pid {_server_process[0].pid})")
        try:
            process = subprocess.Popen(shlex.split(command))
        except (OSError, ValueError) as error:
            raise AddonError(f"cannot start {command!r}: {error}") from None
        _server_process[:] = [process]
        _set_status(context.scene, f"Started the server (pid {process.pid})")


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
        _set_status(context.scene, f"Edit {text.name} in the Text Editor ({len(mapping)} joints mapped)")


def stop_server() -> None:
    """End the server this add-on started, if it still runs."""
    for process in _server_process:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
    _server_process.clear()


CLASSES = (T2M_OT_search, T2M_OT_apply, T2M_OT_show_relevance, T2M_OT_clear_relevance,
           T2M_OT_describe, T2M_OT_check_server, T2M_OT_start_server, T2M_OT_edit_bone_map)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)


def unregister():
    if bpy.app.timers.is_registered(poll_replies):
        bpy.app.timers.unregister(poll_replies)
    close_client()
    stop_server()
    _relevance.clear()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
