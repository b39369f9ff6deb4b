"""Scene settings (bpy.context.scene.t2m) and the add-on preferences."""
from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from .wire import DEFAULT_ADDRESS

# The embedded default model was trained on Bandai-Namco mocap (CC BY-NC 4.0).
DEFAULT_MODEL_LICENCE = ("The default model is for non-commercial use only (CC BY-NC 4.0 data); "
                         "for commercial work run 't2m serve --model permissive'")

BONE_MAP_ITEMS = [
    ("AUTO", "Auto", "Detect the rig's naming (SMPL, Mixamo, Rigify, UE) or guess from names and hierarchy"),
    ("SMPL", "SMPL", "SMPL / SMPL-X joint names (Pelvis, L_Hip, ... or pelvis, left_hip, ...)"),
    ("MIXAMO", "Mixamo", "mixamorig:Hips, LeftUpLeg, ..."),
    ("RIGIFY", "Rigify", "Rigify FK controls (thigh_fk.L, ...) or deform bones (DEF-thigh.L, ...)"),
    ("UE", "UE mannequin", "Unreal mannequin, UE4 or UE5 (pelvis, thigh_l, spine_01, ...)"),
    ("CUSTOM", "Custom", "A JSON text {SMPL-22 joint: bone name} you edit in the Text Editor"),
]


def addon_preferences(context=None):
    """This add-on's preferences, or None when it is not registered as an add-on."""
    context = context or bpy.context
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


class T2MPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    default_server: StringProperty(name="Default server", default=DEFAULT_ADDRESS,
                                   description="ZeroMQ address new scenes connect to")
    timeout: FloatProperty(name="Timeout", default=5.0, min=0.5, max=600.0, unit="TIME_ABSOLUTE",
                           description="Seconds to wait for each reply before retrying")
    retries: IntProperty(name="Retries", default=1, min=0, max=10,
                         description="How many times a request is resent before giving up")
    server_command: StringProperty(
        name="Server command", default="",
        description="A command that starts a local server, e.g. 't2m serve --bind tcp://127.0.0.1:5557'")
    # Optional CurveZMQ keys for a server started with --curve-secret (and --allowed-clients).
    # Both empty (the default): no encryption, as a local server needs none.
    client_secret_key: StringProperty(
        name="Client secret key", default="", subtype="FILE_PATH",
        description="This client's key pair: the NAME.key_secret file of 't2m keys generate --name NAME' "
                    "(the server admits it with 't2m keys allow NAME.key'). Empty: no client key")
    server_public_key: StringProperty(
        name="Server public key", default="", subtype="FILE_PATH",
        description="The server's public key file (server.key of 't2m keys generate'), to encrypt with "
                    "CurveZMQ. Empty: no encryption (a local server)")

    def draw(self, context):
        layout = self.layout
        layout.prop(self, "default_server")
        row = layout.row()
        row.prop(self, "timeout")
        row.prop(self, "retries")
        layout.prop(self, "server_command")
        keys = layout.box()
        keys.label(text="Client keys (CurveZMQ, for a remote server; leave empty for a local one)", icon="LOCKED")
        keys.prop(self, "server_public_key")
        keys.prop(self, "client_secret_key")
        layout.label(text=DEFAULT_MODEL_LICENCE, icon="INFO")


class T2MResult(bpy.types.PropertyGroup):
    motion_id: StringProperty(name="Motion id")
    name: StringProperty(name="Name")
    score: FloatProperty(name="Score")
    duration: FloatProperty(name="Duration", unit="TIME_ABSOLUTE")
    captions: StringProperty(name="Captions", description="The library's captions of this motion")


class T2MToken(bpy.types.PropertyGroup):
    text: StringProperty(name="Token")


class T2MCaption(bpy.types.PropertyGroup):
    text: StringProperty(name="Caption")
    score: FloatProperty(name="Score")


def _server_changed(self, context):
    from . import ops  # the request machinery lives with the operators

    ops.check_server(context.scene)


class T2MSettings(bpy.types.PropertyGroup):
    server: StringProperty(name="Server", default=DEFAULT_ADDRESS, update=_server_changed,
                           description="Address of the t2m server (ZeroMQ)")
    server_info: StringProperty(name="Server", description="What the server said about itself")
    query: StringProperty(name="Query", description="Describe the motion you want")
    k: IntProperty(name="Results", default=10, min=1, max=100)
    last_query: StringProperty(name="Last query", description="The query the results belong to")
    results: CollectionProperty(type=T2MResult)
    result_index: IntProperty(name="Selected result", default=0)
    tokens: CollectionProperty(type=T2MToken)
    active_token: IntProperty(name="Coloured token", default=-1)
    descriptions: CollectionProperty(type=T2MCaption)
    status: StringProperty(name="Status")
    error: StringProperty(name="Error")
    busy: BoolProperty(name="Waiting for the server")

    bone_map: EnumProperty(name="Bone map", items=BONE_MAP_ITEMS, default="AUTO")
    bone_map_text: PointerProperty(name="Bone map text", type=bpy.types.Text,
                                   description="JSON {SMPL-22 joint: bone name}")
    root_motion: EnumProperty(name="Root motion", default="full", items=[
        ("full", "Full", "The hips travel as in the source, scaled to the rig"),
        ("in_place", "In place", "The hips keep their height changes but stay over the origin"),
    ])
    auto_scale: BoolProperty(name="Auto scale", default=True,
                             description="Scale the hip path by the ratio of the rig's legs to the source's")
    scale: FloatProperty(name="Scale", default=1.0, min=0.001, soft_max=10.0,
                         description="Metres of rig motion per metre of source motion")
    use_current_frame: BoolProperty(name="At current frame", default=False,
                                    description="Start at the current frame instead of Start frame")
    start_frame: IntProperty(name="Start frame", default=1)
    relevance_animated: BoolProperty(name="Animated", default=True,
                                     description="Key the colours over time (0.8 s windows) instead of the maximum")


CLASSES = (T2MPreferences, T2MResult, T2MToken, T2MCaption, T2MSettings)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.t2m = PointerProperty(type=T2MSettings)


def unregister():
    del bpy.types.Scene.t2m
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
