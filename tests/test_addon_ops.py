"""The add-on registered from the repository in this process: settings, operators and their
user-facing errors without a server, and what goes on the wire (a bare ZeroMQ ROUTER on
loopback stands in for the server; the round trips with a real server are in test_addon.py)."""
from __future__ import annotations

import json
import time

import pytest

bpy = pytest.importorskip("bpy")

from blender_addon import bonemap, messaging, replies, retarget, state, wire  # noqa: E402
from blender_addon.errors import AddonError  # noqa: E402
from blender_addon.props import bone_map_choice  # noqa: E402
from blender_addon.rigs import make_humanoid_rig  # noqa: E402
from bridge.endpoints import is_loopback  # noqa: E402
from bridge.protocol import OPS  # noqa: E402


pytestmark = pytest.mark.usefixtures("blender_addon_registered")


@pytest.fixture
def scene():
    scene = bpy.context.scene
    for obj in list(bpy.data.objects):
        bpy.data.objects.remove(obj)
    scene.t2m.error = ""
    return scene


def rig(scene):
    obj = make_humanoid_rig("Rig", naming="MIXAMO")
    bpy.context.view_layer.objects.active = obj
    return obj


def error_of(call) -> str:
    """Run an operator that must fail; its error report becomes bpy's RuntimeError."""
    with pytest.raises(RuntimeError) as caught:
        call()
    return str(caught.value)


def test_scene_settings_and_operators_exist(scene):
    settings = scene.t2m
    assert settings.server == "tcp://127.0.0.1:5557"
    for name in ("server", "query", "results", "tokens", "status", "error", "bone_map", "root_motion"):
        assert hasattr(settings, name)
    item = settings.results.add()
    assert {"motion_id", "name", "score", "duration"} <= set(item.bl_rna.properties.keys())
    assert "text" in settings.tokens.add().bl_rna.properties.keys()
    settings.results.clear()
    settings.tokens.clear()
    for name in ("search", "apply", "show_relevance", "clear_relevance", "describe"):
        assert hasattr(bpy.ops.t2m, name)
        assert {"REGISTER", "UNDO"} <= getattr(bpy.types, f"T2M_OT_{name}").bl_options
    props = bpy.ops.t2m.search.get_rna_type().properties
    assert props["query"].default == "" and props["k"].default == 10 and props["blocking"].default is False
    assert bpy.ops.t2m.show_relevance.get_rna_type().properties["animated"].default is True
    assert bpy.types.T2M_PT_main.bl_category == "T2M"


def test_operators_explain_what_is_missing(scene):
    assert "type a query first" in error_of(lambda: bpy.ops.t2m.search(query="  "))
    assert scene.t2m.error == "type a query first"
    assert "select an armature first" in error_of(lambda: bpy.ops.t2m.apply(index=0))
    rig(scene)
    assert "no result 0: search first" in error_of(lambda: bpy.ops.t2m.apply(index=0))
    assert "has no applied T2M motion" in error_of(lambda: bpy.ops.t2m.show_relevance(token=0))
    assert "has no action to describe" in error_of(lambda: bpy.ops.t2m.describe())
    assert "set the server command" in error_of(lambda: bpy.ops.t2m.start_server())
    assert bpy.ops.t2m.clear_relevance() == {"FINISHED"}  # nothing saved: nothing to restore


def test_remote_servers_need_blenders_online_access(scene):
    assert wire.is_loopback is is_loopback  # the bridge's, shared with the server (tests/test_protocol.py)
    scene.t2m.server = "tcp://10.0.0.7:5557"
    try:
        if bpy.app.online_access:  # this Blender may reach other machines: a client for it
            assert messaging.client_for(scene).address == "tcp://10.0.0.7:5557"
        else:
            assert "online access is off" in error_of(lambda: bpy.ops.t2m.search(query="wave"))
            assert not state.pending
    finally:
        messaging.close_client()
        scene.t2m.server = "tcp://127.0.0.1:5557"


def test_custom_bone_map_text(scene):
    obj = rig(scene)
    bpy.ops.t2m.edit_bone_map()
    settings = scene.t2m
    assert settings.bone_map == "CUSTOM"
    table = json.loads(settings.bone_map_text.as_string())
    assert table["left_elbow"] == "mixamorig:LeftForeArm" and len(table) == 22
    table["head"] = ""
    settings.bone_map_text.from_string(json.dumps(table))
    mapping = retarget.resolve_bone_map(obj, bone_map_choice(settings))
    assert "head" not in mapping and mapping["pelvis"] == "mixamorig:Hips"
    settings.bone_map_text.from_string("{not json")
    with pytest.raises(AddonError, match="T2M bone map Rig.json' is not valid JSON"):
        retarget.resolve_bone_map(obj, bone_map_choice(settings))
    settings.bone_map_text = None
    with pytest.raises(AddonError, match="choose the text"):
        bone_map_choice(settings)
    settings.bone_map = "AUTO"


def test_preset_choice_that_does_not_fit_is_refused_before_any_request(scene):
    rig(scene)
    settings = scene.t2m
    settings.results.add().motion_id = "m1"
    settings.bone_map = "UE"
    message = error_of(lambda: bpy.ops.t2m.apply(index=0))
    assert "no bones named as the UE preset" in message
    assert not state.pending  # nothing was sent
    settings.bone_map = "AUTO"
    settings.results.clear()
    assert set(retarget.resolve_bone_map(bpy.context.active_object, None)) == set(bonemap.SMPL22_JOINTS)


def test_poll_without_a_client_stops_the_timer():
    messaging.close_client()
    assert messaging.poll_replies() is None


# ---------------------------------------------------------------- requests on the wire (a real ROUTER peer)

@pytest.fixture
def peer():
    """A bare ZeroMQ ROUTER on loopback standing in for the server: it shows what the add-on sends."""
    import zmq

    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.setsockopt(zmq.LINGER, 0)
    port = router.bind_to_random_port("tcp://127.0.0.1")
    yield router, f"tcp://127.0.0.1:{port}"
    messaging.close_client()
    router.close()
    context.term()


def received(router, count: int) -> dict:
    """{op: (identity, header)} of the next `count` requests."""
    requests = {}
    for _ in range(count):
        assert router.poll(5000), "the add-on sent nothing"
        identity, header, *arrays = router.recv_multipart()
        header = json.loads(header)
        requests[header["op"]] = (identity, header)
    return requests


def test_reply_handlers_are_keyed_by_op_names():
    assert set(replies.HANDLERS) <= set(OPS)


def test_apply_asks_for_the_motion_op_and_its_explanation(scene, peer):
    router, address = peer
    rig(scene)
    settings = scene.t2m
    settings.server = address
    result = settings.results.add()
    result.motion_id, result.name = "m1", "walk"
    settings.last_query = "a person walks"
    try:
        assert bpy.ops.t2m.apply(index=0) == {"FINISHED"} and settings.busy
        requests = received(router, 2)
        assert requests["motion"][1]["args"] == {"motion_id": "m1"}
        assert requests["explain"][1]["args"] == {"text": "a person walks", "motion_id": "m1"}
        assert sorted(request.op for request in state.pending.values()) == ["explain", "motion"]
        identity, header = requests["motion"]
        error = {"code": "not_found", "message": "no motion 'm1' in the library"}
        router.send_multipart([identity, json.dumps({"v": 1, "id": header["id"], "ok": False,
                                                     "error": error}).encode()])
        for _ in range(250):
            messaging.poll_replies()
            if settings.error:
                break
            time.sleep(0.02)
        assert settings.error == "no motion 'm1' in the library" and not settings.busy
        assert [request.op for request in state.pending.values()] == ["explain"]
    finally:
        settings.server = "tcp://127.0.0.1:5557"
        settings.results.clear()


def test_requests_are_checked_against_the_op_table_before_sending(scene):
    messaging.close_client()
    with pytest.raises(AddonError, match="cannot ask the server for search: k must be an integer from 1 to 100"):
        messaging.send(scene, "search", {"text": "wave", "k": 0}, query="wave")
    with pytest.raises(AddonError, match="unknown op 'apply'"):
        messaging.call(scene, "apply", {"motion_id": "m1"})
    assert not state.pending and state.connection.client is None  # refused before any socket
