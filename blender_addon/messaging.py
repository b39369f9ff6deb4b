"""Requests to the server without blocking the UI: the one client, send/call, the reply timer.

send() checks a request against the op table (bridge.protocol.OPS), sends it on the shared
DEALER client and returns at once; ONE persistent bpy.app.timers callback, poll_replies(),
polls the socket every TIMER_INTERVAL s on the main thread, matches replies to requests by
id, drops stale ones (a newer request of the same op, scene and channel replaced them) and
hands the others to the op's handler in replies.py, then sends the requests the handler
asks for next (the previews of a search's results) and tags the 3D views for redraw.
call() waits for the reply instead, for scripts and headless runs (where timers never fire),
and so waits for the follow-up requests too. Every failure ends as one line in the panel
(status.py) and in the operator report, unless the op's handler takes the error itself.
"""
from __future__ import annotations

import traceback

import bpy

from . import previews, replies, state
from .errors import AddonError
from .preferences import addon_preferences
from .status import fail, set_status
from .wire import (Client, ProtocolError, RemoteError, ServerUnreachable, check_request, is_loopback,
                   read_public_key, read_secret_key, zmq_error_type)

TIMER_INTERVAL = 0.05
DEFAULT_TIMEOUT = 5.0
DEFAULT_RETRIES = 1


# ---------------------------------------------------------------- the client

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


def client_for(scene) -> Client:
    """The shared client, remade when the address, the timeouts or the keys changed."""
    settings = _client_settings(scene)
    if state.connection.client is not None and state.connection.settings == settings:
        return state.connection.client
    close_client()
    address, timeout, retries, client_secret, server_public = settings
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
    state.connection.client, state.connection.settings = client, settings
    return client


def close_client() -> None:
    """Close the socket; requests still waiting are forgotten."""
    if state.connection.client is not None:
        state.connection.client.close()
    state.connection.client = state.connection.settings = None
    state.forget_requests()
    previews.forget()


# ---------------------------------------------------------------- requests

def _checked(op: str, args: dict, arrays: dict | None) -> None:
    """Refuse here what the server would refuse as bad_request (a bug of ours, said in one line)."""
    try:
        check_request(op, args, arrays)
    except ProtocolError as error:
        raise AddonError(f"cannot ask the server for {op}: {error.message}") from None


def send(scene, op: str, args: dict, arrays: dict | None = None, channel: str = "", **data) -> str:
    """Send a request and return at once; its reply goes to replies.HANDLERS[op] with `data`.
    A newer request of the same op and `channel` in this scene makes its reply stale."""
    _checked(op, args, arrays)
    client = client_for(scene)
    try:
        request_id = client.send(op, args, arrays)
    except ProtocolError as error:  # too large to send
        raise AddonError(error.message) from None
    state.pending[request_id] = state.Request(op, scene.name, data, channel)
    state.latest[(scene.name, op, channel)] = request_id
    _show_waiting(scene, op)
    if not bpy.app.timers.is_registered(poll_replies):
        bpy.app.timers.register(poll_replies, first_interval=TIMER_INTERVAL, persistent=True)
    return request_id


def call(scene, op: str, args: dict, arrays: dict | None = None, channel: str = "", **data) -> None:
    """Send a request, wait for its reply and hand it to its handler now (then the same for
    the requests the handler asks for next). `channel` only matters to send()."""
    _checked(op, args, arrays)
    client = client_for(scene)
    handler = replies.HANDLERS[op]
    _show_waiting(scene, op)
    try:
        result, reply_arrays = client.call(op, args, arrays)
    except RemoteError as error:
        if handler.refused(scene, data, error.code, error.message):
            return
        raise AddonError(f"the server refused {op}: {error.message}") from None
    except ProtocolError as error:
        raise AddonError(f"the server refused {op}: {error.message}") from None
    except ServerUnreachable as error:
        raise AddonError(str(error)) from None
    handler.apply(scene, data, result, reply_arrays)
    for follow in handler.then(scene, data, result):
        call(scene, follow.op, follow.args, channel=follow.channel, **follow.data)


def _show_waiting(scene, op: str) -> None:
    waiting = replies.HANDLERS[op].waiting
    if waiting:
        set_status(scene, waiting, busy=True)


def check_server(scene) -> None:
    """Ask the server about itself (non-blocking); used when the address changes."""
    if bpy.app.background:
        return
    try:
        send(scene, "info", {})
    except AddonError as error:
        fail(scene, str(error))


# ---------------------------------------------------------------- replies

def poll_replies() -> float | None:
    """The timer callback: hand every reply that arrived to its handler; keep polling while
    requests wait. Tests call it directly (timers never fire in background mode)."""
    client = state.connection.client
    if client is None:
        return None
    answered = client.poll()
    for request_id, reply in answered:
        dispatch(request_id, reply)
    if answered:
        _redraw()
    return TIMER_INTERVAL if state.pending else None


def dispatch(request_id: str, reply) -> None:
    """Hand one reply to its op's handler, unless it is stale or its scene is gone."""
    request = state.pending.pop(request_id, None)
    scene = bpy.data.scenes.get(request.scene) if request is not None else None
    key = (request.scene, request.op, request.channel) if request is not None else None
    if scene is None or state.latest.get(key) != request_id:
        return  # stale: a newer request of this op replaced it, or its scene is gone
    del state.latest[key]
    handler = replies.HANDLERS[request.op]
    if not reply.ok:
        if not handler.refused(scene, request.data, reply.error_code, reply.error_message):
            fail(scene, reply.error_message or reply.error_code)
        return
    try:
        handler.apply(scene, request.data, reply.result, reply.arrays)
        for follow in handler.then(scene, request.data, reply.result):
            send(scene, follow.op, follow.args, channel=follow.channel, **follow.data)
    except AddonError as error:
        fail(scene, str(error))
    except Exception as error:  # a bug: keep the timer alive, show it, log the trace
        traceback.print_exc()
        fail(scene, f"internal error while applying {request.op}: {error}")


def _redraw() -> None:
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def stop_polling() -> None:
    """Unregister the timer and close the client (the add-on is being disabled)."""
    if bpy.app.timers.is_registered(poll_replies):
        bpy.app.timers.unregister(poll_replies)
    close_client()
