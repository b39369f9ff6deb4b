"""Build simple humanoid armatures: a stand-in character for demos, batch jobs and tests.

make_humanoid_rig() creates an armature object with SMPL- or Mixamo-named bones in a
T- or A-pose, optionally with fingers (Mixamo: 65 bones), bone rolls, an object scale
and, like a Mixamo FBX import, a Y-up armature turned upright by a 90 degree X rotation.
"""
from __future__ import annotations

import math

import bpy
import numpy as np
from mathutils import Matrix, Vector

from .bonemap import PRESETS, SMPL22_JOINTS, SMPL22_PARENTS
from .retarget_solver import PRIMARY_CHILD

# Joint positions of an adult (1.75 m) in Blender axes: left +X, facing -Y, up +Z.
_BODY = {
    "pelvis": (0.0, 0.0, 0.95), "left_hip": (0.09, 0.01, 0.88), "right_hip": (-0.09, 0.01, 0.88),
    "spine1": (0.0, 0.01, 1.06), "left_knee": (0.10, -0.01, 0.50), "right_knee": (-0.10, -0.01, 0.50),
    "spine2": (0.0, 0.0, 1.19), "left_ankle": (0.11, 0.03, 0.08), "right_ankle": (-0.11, 0.03, 0.08),
    "spine3": (0.0, -0.01, 1.30), "left_foot": (0.12, -0.11, 0.02), "right_foot": (-0.12, -0.11, 0.02),
    "neck": (0.0, 0.01, 1.50), "left_collar": (0.03, 0.0, 1.44), "right_collar": (-0.03, 0.0, 1.44),
    "head": (0.0, -0.01, 1.60), "left_shoulder": (0.18, 0.02, 1.43), "right_shoulder": (-0.18, 0.02, 1.43),
    "left_elbow": (0.45, 0.03, 1.43), "right_elbow": (-0.45, 0.03, 1.43),
    "left_wrist": (0.70, 0.0, 1.43), "right_wrist": (-0.70, 0.0, 1.43),
}
_LEAF_TAILS = {"head": (0.0, 0.0, 0.18), "left_foot": (0.0, -0.08, 0.0), "right_foot": (0.0, -0.08, 0.0),
               "left_wrist": (0.08, 0.0, 0.0), "right_wrist": (-0.08, 0.0, 0.0)}
_FINGERS = ["Thumb", "Index", "Middle", "Ring", "Pinky"]


def make_humanoid_rig(name: str = "Character", naming: str = "MIXAMO", pose: str = "T",
                      fingers: bool = False, scale: float = 1.0, y_up: bool = False,
                      roll_seed: int | None = None, collection=None) -> bpy.types.Object:
    """A new armature object. naming: 'SMPL' (L_Hip), 'SMPL_LOWER' (left_hip) or 'MIXAMO'; pose: 'T' or 'A'
    (arms 40 degrees down); fingers: 3 bones + an end bone per finger (Mixamo: 65 bones);
    y_up: Y-up armature space with a 90 degree X object rotation (as a Mixamo import);
    roll_seed: random bone rolls from that seed (None: roll 0)."""
    joints = _posed_joints(pose)
    if naming not in ("SMPL", "SMPL_LOWER", "MIXAMO"):
        raise ValueError(f"naming must be 'SMPL', 'SMPL_LOWER' or 'MIXAMO', got {naming!r}")
    prefix = "mixamorig:" if naming == "MIXAMO" else ""  # as Mixamo's FBX files name them
    names = {joint: prefix + bone for joint, bone in PRESETS[naming].items()}
    armature = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, armature)
    (collection or bpy.context.scene.collection).objects.link(obj)
    to_armature = Matrix.Rotation(-math.pi / 2, 4, "X") if y_up else Matrix.Identity(4)
    rng = np.random.default_rng(roll_seed) if roll_seed is not None else None
    _build_bones(obj, joints, names, fingers and naming == "MIXAMO", to_armature, rng)
    if y_up:
        obj.rotation_euler = (math.pi / 2, 0.0, 0.0)
    obj.scale = (scale, scale, scale)
    bpy.context.view_layer.update()
    return obj


def _posed_joints(pose: str) -> dict[str, Vector]:
    joints = {name: Vector(position) for name, position in _BODY.items()}
    if pose == "A":
        for side, sign in (("left", 1.0), ("right", -1.0)):
            pivot = joints[f"{side}_shoulder"]
            rotation = Matrix.Rotation(-sign * math.radians(40.0), 3, "Y")
            for joint in ("elbow", "wrist"):
                key = f"{side}_{joint}"
                joints[key] = pivot + rotation @ (joints[key] - pivot)
    elif pose != "T":
        raise ValueError(f"pose must be 'T' or 'A', got {pose!r}")
    return joints


def _build_bones(obj, joints, names, fingers: bool, to_armature: Matrix, rng) -> None:
    view_layer = bpy.context.view_layer
    previous_active = view_layer.objects.active
    view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    edit_bones = obj.data.edit_bones
    for index, joint in enumerate(SMPL22_JOINTS):
        bone = edit_bones.new(names[joint])
        bone.head = to_armature @ joints[joint]
        bone.tail = to_armature @ _tail(joint, joints)
        if SMPL22_PARENTS[index] >= 0:
            bone.parent = edit_bones[names[SMPL22_JOINTS[SMPL22_PARENTS[index]]]]
            bone.use_connect = (bone.parent.tail - bone.head).length < 1e-6
        if rng is not None:
            bone.roll = float(rng.uniform(-math.pi, math.pi))
    if fingers:
        for side in ("left", "right"):
            _add_fingers(edit_bones, edit_bones[names[f"{side}_wrist"]], side, to_armature, rng)
        _add_end(edit_bones, edit_bones[names["head"]], "mixamorig:HeadTop_End")
        for side, label in (("left", "Left"), ("right", "Right")):
            _add_end(edit_bones, edit_bones[names[f"{side}_foot"]], f"mixamorig:{label}Toe_End")
    bpy.ops.object.mode_set(mode="OBJECT")
    view_layer.objects.active = previous_active


def _tail(joint: str, joints) -> Vector:
    """A bone's tail: its main child's joint, or a short extension for leaves."""
    child = PRIMARY_CHILD.get(joint)
    if child is not None:
        return joints[child]
    return joints[joint] + Vector(_LEAF_TAILS[joint])


def _add_fingers(edit_bones, hand, side: str, to_armature: Matrix, rng) -> None:
    label = "Left" if side == "left" else "Right"
    along = (hand.tail - hand.head).normalized()
    spread = (to_armature.to_3x3() @ Vector((0.0, -1.0, 0.0))).normalized()  # towards the thumb
    for number, finger in enumerate(_FINGERS):
        parent = hand
        start = hand.tail + spread * (0.035 - 0.0175 * number)
        for segment in range(1, 5):
            bone = edit_bones.new(f"mixamorig:{label}Hand{finger}{segment}")
            bone.head = start
            bone.tail = start + along * 0.025
            bone.parent = parent
            bone.use_connect = segment > 1
            if rng is not None:
                bone.roll = float(rng.uniform(-math.pi, math.pi))
            parent, start = bone, bone.tail


def _add_end(edit_bones, parent, name: str) -> None:
    bone = edit_bones.new(name)
    bone.head = parent.tail
    bone.tail = parent.tail + (parent.tail - parent.head) * 0.5
    bone.parent = parent
    bone.use_connect = True
