"""Writing keys into actions, fast, on every supported Blender (4.2 to 5.x).

One action per Apply: a new action (with one slot for the object where actions have
slots), its fcurves filled with keyframe_points.add + foreach_set("co") (about 60x faster
than per-frame keyframe_insert). The object's previous action is kept untouched (it gets
a fake user so a save does not drop it). "channelbag" below is whatever holds the
fcurves: a slot's channelbag (4.4+) or the action itself (4.2/4.3); compat.py decides.
"""
from __future__ import annotations

import bpy
import numpy as np

from . import compat

ACTION_PREFIX = "T2M "
MAX_LABEL_CHARS = 48  # Blender appends ".001" etc. to keep names unique


def action_name(label: str) -> str:
    """'T2M <label>', the label cut to MAX_LABEL_CHARS characters on one line."""
    label = " ".join(label.split())
    if len(label) > MAX_LABEL_CHARS:
        label = label[:MAX_LABEL_CHARS - 1].rstrip() + "\u2026"
    return ACTION_PREFIX + (label or "motion")


def new_action(obj: bpy.types.Object, label: str) -> tuple:
    """Create a new action for `obj`, assign it (keeping the previous one with a fake
    user) and return it with the container of its fcurves."""
    anim = obj.animation_data or obj.animation_data_create()
    previous = anim.action
    if previous is not None:
        previous.use_fake_user = True
    action = bpy.data.actions.new(action_name(label))
    return action, compat.assign_new_action(obj, action)


def channelbag_of(obj: bpy.types.Object):
    """The fcurve container of the object's assigned action (and slot), or None."""
    return compat.channelbag_of(obj)


def write_channels(channelbag, data_path: str, frames: np.ndarray, values: np.ndarray,
                   group: str, interpolation: str | None = None) -> None:
    """Key `values` (N, C) at `frames` (N,) on data_path[0..C-1]; any fcurve already on
    that path is replaced."""
    values = np.asarray(values, dtype=np.float32).reshape(len(frames), -1)
    co = np.empty((len(frames), 2), dtype=np.float32)
    co[:, 0] = frames
    for index in range(values.shape[1]):
        old = channelbag.fcurves.find(data_path, index=index)
        if old is not None:
            channelbag.fcurves.remove(old)
        fcurve = compat.new_fcurve(channelbag, data_path, index, group)
        co[:, 1] = values[:, index]
        fcurve.keyframe_points.add(len(frames))
        fcurve.keyframe_points.foreach_set("co", co.ravel())
        if interpolation is not None:
            mode = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items[interpolation].value
            fcurve.keyframe_points.foreach_set("interpolation", np.full(len(frames), mode, dtype=np.int32))
        fcurve.update()


def remove_channels(channelbag, prefix: str, suffix: str) -> int:
    """Remove the fcurves whose data path starts with `prefix` and ends with `suffix`."""
    doomed = [fc for fc in channelbag.fcurves if fc.data_path.startswith(prefix) and fc.data_path.endswith(suffix)]
    for fcurve in doomed:
        channelbag.fcurves.remove(fcurve)
    return len(doomed)


def pose_bone_path(bone_name: str, prop: str) -> str:
    return f'pose.bones["{bpy.utils.escape_identifier(bone_name)}"].{prop}'
