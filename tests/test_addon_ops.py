"""The add-on registered from the repository in this process: settings, operators and their
user-facing errors without a server (the server round trips are in test_addon.py)."""
from __future__ import annotations

import json

import pytest

bpy = pytest.importorskip("bpy")

import blender_addon  # noqa: E402
from blender_addon import bonemap, ops  # noqa: E402
from blender_addon.rigs import make_humanoid_rig  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def registered():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    blender_addon.register()
    yield
    blender_addon.unregister()


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
    assert ops.is_loopback("tcp://127.0.0.1:5557") and ops.is_loopback("tcp://localhost:1")
    assert ops.is_loopback("tcp://[::1]:5557") and ops.is_loopback("ipc:///tmp/t2m")
    assert not ops.is_loopback("tcp://10.0.0.7:5557") and not ops.is_loopback("tcp://example.org:5557")
    if bpy.app.online_access:
        pytest.skip("this Blender allows online access")
    scene.t2m.server = "tcp://10.0.0.7:5557"
    try:
        assert "online access is off" in error_of(lambda: bpy.ops.t2m.search(query="wave"))
    finally:
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
    mapping = ops._resolve_map(obj, ops.bone_map_choice(settings))
    assert "head" not in mapping and mapping["pelvis"] == "mixamorig:Hips"
    settings.bone_map_text.from_string("{not json")
    with pytest.raises(ops.AddonError, match="T2M bone map Rig.json' is not valid JSON"):
        ops._resolve_map(obj, ops.bone_map_choice(settings))
    settings.bone_map_text = None
    with pytest.raises(ops.AddonError, match="choose the text"):
        ops.bone_map_choice(settings)
    settings.bone_map = "AUTO"


def test_preset_choice_that_does_not_fit_is_refused_before_any_request(scene):
    rig(scene)
    settings = scene.t2m
    settings.results.add().motion_id = "m1"
    settings.bone_map = "UE"
    message = error_of(lambda: bpy.ops.t2m.apply(index=0))
    assert "no bones named as the UE preset" in message
    assert not ops._pending  # nothing was sent
    settings.bone_map = "AUTO"
    settings.results.clear()
    assert set(ops._resolve_map(bpy.context.active_object, None)) == set(bonemap.SMPL22_JOINTS)


def test_poll_without_a_client_stops_the_timer():
    ops.close_client()
    assert ops.poll_replies() is None
