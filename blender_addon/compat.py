"""The one place that knows how Blender's action API differs between versions.

Feature-detected (what the running bpy has), never by version number:

- legacy actions (4.2, 4.3): `action.fcurves` / `action.groups`, no slots; the "channel
  container" of an object is its action itself;
- slotted (layered) actions (4.4+): `action.slots`, `action.layers[].strips[]` and one
  channelbag per slot holding the fcurves and groups; 5.0 removed `action.fcurves`;
  - 5.0 has `anim_utils.action_ensure_channelbag_for_slot`; 4.4/4.5 do not, they use
    `strip.channelbag(slot, ensure=True)` (also present on 5.0, the fallback here);
  - `anim_utils.action_get_channelbag_for_slot` exists from 4.5; 4.4 walks the strips;
  - channelbag `fcurves.new(..., group_name=)` is new in 5.0; 4.4/4.5 create the group
    and set `fcurve.group`.

Everything else keys through what is returned here, so `keyframe_points.add` +
`foreach_set` stays the one write path on every version.

Blender 5.1 / 5.2 LTS (CPython 3.13): no bpy wheel to test with. Only the slotted API
that 5.0 has is used there (no `action.fcurves`, which 5.0 removed). The 5.0 -> 5.1 API
change log (alphabetical) lists no change to Action*, ActionChannelbag*, ActionSlot*
or AnimData (it starts at AdjustmentStrip, then Brush); FCurve, Keyframe, PoseBone colours
and the 5.1 -> 5.2 log were not checked line by line. Every lookup here is by feature, so a
removal would show up as a clear AttributeError in this file, not as wrong keys.
"""
from __future__ import annotations

import bpy

try:  # bpy_extras is always there; the helpers inside it vary by version
    from bpy_extras import anim_utils
except ImportError:  # pragma: no cover
    anim_utils = None

#: True where actions have slots and channelbags (Blender 4.4 and later).
SLOTTED = "slots" in bpy.types.Action.bl_rna.properties

_ENSURE = getattr(anim_utils, "action_ensure_channelbag_for_slot", None)  # 5.0+
_GET = getattr(anim_utils, "action_get_channelbag_for_slot", None)  # 4.5+


def _fcurves_new_takes(struct_name: str, parameter: str) -> bool:
    struct = getattr(bpy.types, struct_name, None)
    if struct is None:
        return False
    function = struct.bl_rna.functions.get("new")
    return function is not None and parameter in function.parameters


#: channelbag.fcurves.new(..., group_name=) (5.0+); legacy action.fcurves.new(..., action_group=).
_GROUP_NAME = _fcurves_new_takes("ActionChannelbagFCurves", "group_name")


def describe() -> str:
    """One line naming the action API this Blender gets, for logs and benchmarks."""
    if not SLOTTED:
        return "legacy actions (action.fcurves)"
    helpers = [name for name, present in (("ensure_channelbag", _ENSURE), ("get_channelbag", _GET)) if present]
    return "slotted actions (channelbags" + (", anim_utils " + " + ".join(helpers) if helpers else "") + ")"


def assign_new_action(obj, action):
    """Make the new, empty `action` the object's action (on a new slot for the object
    where actions have slots); returns the container of its fcurves (the slot's
    channelbag, or the action itself)."""
    anim = obj.animation_data or obj.animation_data_create()
    if not SLOTTED:
        anim.action = action
        return action
    slot = action.slots.new(id_type="OBJECT", name=obj.name)
    anim.action = action
    anim.action_slot = slot
    return ensure_channelbag(action, slot)


def ensure_channelbag(action, slot):
    """The channelbag of `slot` in `action`, created (with a layer and strip) if needed."""
    if _ENSURE is not None:
        return _ENSURE(action, slot)
    layer = action.layers[0] if len(action.layers) else action.layers.new("Layer")
    strip = layer.strips[0] if len(layer.strips) else layer.strips.new(type="KEYFRAME")
    return strip.channelbag(slot, ensure=True)


def channelbag_of(obj):
    """The fcurve container of the object's assigned action (and slot), or None."""
    anim = obj.animation_data
    if anim is None or anim.action is None:
        return None
    if not SLOTTED:
        return anim.action
    return channelbag_for_slot(anim.action, anim.action_slot)


def channelbag_for_slot(action, slot):
    if action is None or slot is None:
        return None
    if _GET is not None:
        return _GET(action, slot)
    for layer in action.layers:
        for strip in layer.strips:
            channelbag = strip.channelbag(slot)
            if channelbag is not None:
                return channelbag
    return None


def first_channelbag(action):
    """The fcurves of the action's first slot (a user's own action: one slot), or None."""
    if action is None:
        return None
    if not SLOTTED:
        return action
    return channelbag_for_slot(action, action.slots[0]) if len(action.slots) else None


def channelbags(action) -> list:
    """Every fcurve container of `action` (all slots, layers and strips)."""
    if action is None:
        return []
    if not SLOTTED:
        return [action]
    return [bag for layer in action.layers for strip in layer.strips for bag in strip.channelbags]


def new_fcurve(channelbag, data_path: str, index: int, group: str):
    """A new fcurve on data_path[index] in the group named `group` (created if needed)."""
    if not SLOTTED:
        return channelbag.fcurves.new(data_path, index=index, action_group=group)
    if _GROUP_NAME:
        return channelbag.fcurves.new(data_path, index=index, group_name=group)
    fcurve = channelbag.fcurves.new(data_path, index=index)
    fcurve.group = channelbag.groups.get(group) or channelbag.groups.new(group)
    return fcurve
