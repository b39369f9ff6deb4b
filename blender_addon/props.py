"""Scene settings (bpy.context.scene.t2m); the add-on preferences are in preferences.py."""
from __future__ import annotations

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

from . import messaging
from .errors import AddonError
from .wire import DEFAULT_ADDRESS, DEFAULT_BLEND_FRAMES

BONE_MAP_ITEMS = [
    ("AUTO", "Auto", "Detect the rig's naming (SMPL, Mixamo, Rigify, UE) or guess from names and hierarchy"),
    ("SMPL", "SMPL", "SMPL / SMPL-X joint names (Pelvis, L_Hip, ... or pelvis, left_hip, ...)"),
    ("MIXAMO", "Mixamo", "mixamorig:Hips, LeftUpLeg, ..."),
    ("RIGIFY", "Rigify", "Rigify FK controls (thigh_fk.L, ...) or deform bones (DEF-thigh.L, ...)"),
    ("UE", "UE mannequin", "Unreal mannequin, UE4 or UE5 (pelvis, thigh_l, spine_01, ...)"),
    ("CUSTOM", "Custom", "A JSON text {SMPL-22 joint: bone name} you edit in the Text Editor"),
]


class T2MSpan(bpy.types.PropertyGroup):
    start: FloatProperty(name="Start", unit="TIME_ABSOLUTE")
    end: FloatProperty(name="End", unit="TIME_ABSOLUTE")


class T2MResult(bpy.types.PropertyGroup):
    motion_id: StringProperty(name="Motion id")
    name: StringProperty(name="Name")
    score: FloatProperty(name="Score")
    duration: FloatProperty(name="Duration", unit="TIME_ABSOLUTE")
    captions: StringProperty(name="Captions", description="The library's captions of this motion")
    spans: CollectionProperty(type=T2MSpan, description="Where each step of the prompt happens in this "
                                                        "motion (seconds), for a prompt of several steps")


class T2MToken(bpy.types.PropertyGroup):
    text: StringProperty(name="Token")


class T2MSegment(bpy.types.PropertyGroup):
    """One step of a prompt of several steps, with the results of that step alone."""
    text: StringProperty(name="Step")
    tokens: CollectionProperty(type=T2MToken)
    results: CollectionProperty(type=T2MResult)
    result_index: IntProperty(name="Picked result", default=0,
                              description="The clip this step gets in Apply Sequence")


class T2MCaption(bpy.types.PropertyGroup):
    text: StringProperty(name="Caption")
    score: FloatProperty(name="Score")


def _server_changed(self, context):
    messaging.check_server(context.scene)


class T2MSettings(bpy.types.PropertyGroup):
    server: StringProperty(name="Server", default=DEFAULT_ADDRESS, update=_server_changed,
                           description="Address of the t2m server (ZeroMQ)")
    server_info: StringProperty(name="Server", description="What the server said about itself")
    query: StringProperty(name="Query", description="Describe the motion you want")
    k: IntProperty(name="Results", default=10, min=1, max=100)
    last_query: StringProperty(name="Last query", description="The query the results belong to")
    results: CollectionProperty(type=T2MResult)
    result_index: IntProperty(name="Selected result", default=0)
    segments: CollectionProperty(type=T2MSegment, description="The steps of the last query, in order "
                                                              "(empty for a query of one step)")
    blend_frames: IntProperty(name="Blend frames", default=DEFAULT_BLEND_FRAMES, min=0, soft_max=60,
                              description="Frames over which each clip of a sequence blends into the next "
                                          "(0: a hard cut)")
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


def bone_map_choice(settings):
    """The panel's bone-map option as retarget.resolve_bone_map takes it: None (auto), a
    preset name, or the bpy Text holding a custom map."""
    if settings.bone_map == "AUTO":
        return None
    if settings.bone_map != "CUSTOM":
        return settings.bone_map
    if settings.bone_map_text is None:
        raise AddonError("choose the text that holds the custom bone map (or press Edit Map)")
    return settings.bone_map_text


CLASSES = (T2MSpan, T2MResult, T2MToken, T2MSegment, T2MCaption, T2MSettings)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.t2m = PointerProperty(type=T2MSettings)


def unregister():
    del bpy.types.Scene.t2m
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
