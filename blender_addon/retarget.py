"""The retarget's Blender side: read an armature into plain data, solve (retarget_solver.py),
write the solution as keys of a new action; and read a rig's animation back as positions.

apply_motion() is the entry point of the operators and the batch/demo jobs. The scene is
passed in or taken from bpy.context; rotation modes are never changed: each bone is keyed
in its own mode (quaternion, any Euler order, or axis-angle), converted from the solved
quaternion, with Euler angles kept compatible from frame to frame.
"""
from __future__ import annotations

import bpy
import numpy as np
from mathutils import Quaternion

from . import bonemap, keyframes
from .bonemap import SMPL22_JOINTS
from .errors import RetargetError
from .retarget_solver import Rig, RigBone, Solution, check_motion, posed_positions, solve


def read_rig(obj: bpy.types.Object) -> Rig:
    """The armature object's bones at rest (parents first, depth-first from the roots) and
    its world matrix, as plain arrays."""
    bones: list[RigBone] = []

    def visit(bone, parent_index):
        matrix = np.array(bone.matrix_local, dtype=np.float64)
        bones.append(RigBone(bone.name, parent_index, matrix[:3, :3], matrix[:3, 3],
                             bone.use_inherit_rotation, bone.use_local_location, bone.use_connect))
        index = len(bones) - 1
        for child in bone.children:
            visit(child, index)

    for bone in obj.data.bones:
        if bone.parent is None:
            visit(bone, -1)
    world = obj.matrix_world
    return Rig(obj.name, bones, np.array(world, dtype=np.float64),
               np.array(world.to_quaternion().to_matrix(), dtype=np.float64))


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def rotation_channels(mode: str, quaternions: np.ndarray) -> tuple[str, np.ndarray]:
    """The pose-bone property and values (N, C) that express `quaternions` in `mode`."""
    if mode == "QUATERNION":
        return "rotation_quaternion", quaternions
    if mode == "AXIS_ANGLE":
        w = np.clip(quaternions[:, 0], -1.0, 1.0)
        angle = 2.0 * np.arccos(w)
        sine = np.sqrt(np.maximum(1.0 - w * w, 0.0))
        axis = np.where(sine[:, None] > 1e-8, quaternions[:, 1:] / np.maximum(sine, 1e-8)[:, None], [0.0, 1.0, 0.0])
        return "rotation_axis_angle", np.column_stack([angle, axis])
    eulers = np.empty((len(quaternions), 3))
    previous = None
    for index, values in enumerate(quaternions):
        euler = Quaternion(values).to_euler(mode) if previous is None else Quaternion(values).to_euler(mode, previous)
        eulers[index] = euler
        previous = euler
    return "rotation_euler", eulers


# ---------------------------------------------------------------- public entry points

def resolve_bone_map(obj: bpy.types.Object, bone_map) -> dict[str, str]:
    """None/'AUTO' -> detected; a preset group name ('SMPL', 'MIXAMO', 'RIGIFY', 'UE'); a dict
    {joint: bone}; or a bpy Text holding such a dict as JSON (the panel's custom map).
    The result always has the core joints."""
    armature = obj.data
    if isinstance(bone_map, bpy.types.Text):
        bone_map = bonemap.parse_custom(bone_map.as_string(), bone_map.name, armature)
    if bone_map is None or bone_map == "AUTO":
        mapping = bonemap.auto_map(armature)
    elif isinstance(bone_map, str):
        mapping = bonemap.group_map(armature, bone_map)
    else:
        unknown = sorted(set(bone_map) - set(SMPL22_JOINTS))
        missing = sorted(b for b in bone_map.values() if b not in armature.bones)
        if unknown or missing:
            raise RetargetError(f"bone map for {obj.name!r}: unknown joints {unknown}, missing bones {missing}")
        mapping = bonemap.check_hierarchy(armature, dict(bone_map))
    bonemap.require_core(armature, mapping)
    return mapping


def apply_motion(armature_obj: bpy.types.Object, positions: np.ndarray, fps: float, name: str,
                 bone_map=None, root_motion: str = "full", scale: float | None = None,
                 start_frame: int | None = None, scene=None) -> bpy.types.Action:
    """Retarget SMPL-22 positions (T, 22, 3), Y-up metres at `fps`, onto `armature_obj` as
    a new action "T2M <name>" at the scene's fps, assigned to the object; the previous
    action is kept unchanged. bone_map: as resolve_bone_map takes it. root_motion: "full"
    or "in_place". scale: metres per source metre (None: leg-length ratio). start_frame:
    None = the scene's start frame. scene: None = bpy.context.scene."""
    if armature_obj is None or armature_obj.type != "ARMATURE":
        raise RetargetError(f"{getattr(armature_obj, 'name', armature_obj)!r} is not an armature object")
    positions = check_motion(positions, fps, root_motion)
    scene = scene or bpy.context.scene
    first = scene.frame_start if start_frame is None else int(start_frame)
    mapping = resolve_bone_map(armature_obj, bone_map)
    solution = solve(read_rig(armature_obj), positions, fps, scene_fps(scene), mapping, root_motion, scale, first)
    return write_action(armature_obj, solution, name, mapping, scene_fps(scene))


def write_action(obj: bpy.types.Object, solution: Solution, name: str, bone_map: dict[str, str],
                 fps: float) -> bpy.types.Action:
    """Key a Solution into a new action on `obj` (each bone in its own rotation mode)."""
    action, channelbag = keyframes.new_action(obj, name)
    frames = solution.frames
    for bone_name, quaternions in solution.rotations.items():
        pose_bone = obj.pose.bones[bone_name]
        prop, values = rotation_channels(pose_bone.rotation_mode, quaternions)
        keyframes.write_channels(channelbag, keyframes.pose_bone_path(bone_name, prop), frames, values, bone_name)
    if solution.root_location is not None:
        path = keyframes.pose_bone_path(solution.root_bone, "location")
        keyframes.write_channels(channelbag, path, frames, solution.root_location, solution.root_bone)
    action["t2m_start_frame"] = float(frames[0])
    action["t2m_fps"] = float(fps)
    action["t2m_scale"] = solution.scale
    action["t2m_bone_map"] = bonemap.to_json(bone_map)
    return action


def read_positions(obj: bpy.types.Object, bone_map: dict[str, str], frame_start: int,
                   frame_end: int, scene=None) -> np.ndarray:
    """The rig's animation as SMPL-22 positions (T, 22, 3) Y-up metres (see
    retarget_solver.posed_positions), by evaluating each frame of `scene` (None: the
    context's); the scene's current frame is restored."""
    scene = scene or bpy.context.scene
    current = scene.frame_current
    frames = []
    try:
        for frame in range(int(frame_start), int(frame_end) + 1):
            scene.frame_set(frame)
            matrix = obj.matrix_world
            frames.append({joint: np.array(matrix @ obj.pose.bones[bone].head) for joint, bone in bone_map.items()})
    finally:
        scene.frame_set(current)
    return posed_positions(frames, read_rig(obj), bone_map)
