"""Which bone of a rig plays which SMPL-22 joint: presets, automatic detection, custom tables.

A bone map is a dict {SMPL-22 joint name: bone name}. A joint's bone is the bone whose head
sits at that joint (the thigh for `left_hip`, the upper arm for `left_shoulder`). Joints
the rig lacks are simply absent.

Detection ("auto"): the skeleton mapper shared with the server's readers
(bridge/skeleton_map.py: name rules for SMPL, Mixamo, UE4/UE5, Rigify, Blender's metarig,
3ds Max Biped, HumanIK, Character Creator, Daz Genesis, VRM/Unity, CMU, Bandai, and a
topology + rest-pose fallback for unknown names); an exact-name preset that maps every
joint (e.g. Rigify's FK controls, which are what an animator keys) takes precedence.
Every map is checked against the hierarchy: a joint's bone must descend from its SMPL
parent's bone. Presets and custom JSON tables chosen by the user override "auto".
"""
from __future__ import annotations

import importlib
import json
import re

import numpy as np

from .errors import BoneMapError


def _skeleton_map_module():
    """The mapper: the extension's vendored copy (<package>.bridge.skeleton_map) when
    installed, the repository's top-level bridge package when run from a checkout."""
    vendored = f"{__package__}.bridge.skeleton_map"
    try:
        return importlib.import_module(vendored)
    except ModuleNotFoundError as error:
        if error.name not in (f"{__package__}.bridge", vendored):
            raise
        return importlib.import_module("bridge.skeleton_map")


skeleton_map = _skeleton_map_module()

# the shared mapper's (the add-on must not import the server package)
SMPL22_JOINTS = skeleton_map.SMPL22_JOINTS
SMPL22_PARENTS = skeleton_map.SMPL22_PARENTS
JOINT_INDEX = {name: i for i, name in enumerate(SMPL22_JOINTS)}


def _sided(table: dict[str, str], left: str, right: str) -> dict[str, str]:
    """Expand {'hip': 'UpLeg'}-style limb tables with side prefixes/suffixes given as
    format strings, e.g. left='Left{}'."""
    out = {}
    for joint, core in table.items():
        out[f"left_{joint}"] = left.format(core)
        out[f"right_{joint}"] = right.format(core)
    return out


def _mixamo() -> dict[str, str]:
    limbs = {"hip": "UpLeg", "knee": "Leg", "ankle": "Foot", "foot": "ToeBase",
             "collar": "Shoulder", "shoulder": "Arm", "elbow": "ForeArm", "wrist": "Hand"}
    centre = {"pelvis": "Hips", "spine1": "Spine", "spine2": "Spine1", "spine3": "Spine2",
              "neck": "Neck", "head": "Head"}
    return {**centre, **_sided(limbs, "Left{}", "Right{}")}


def _smpl() -> dict[str, str]:
    limbs = {"hip": "Hip", "knee": "Knee", "ankle": "Ankle", "foot": "Foot",
             "collar": "Collar", "shoulder": "Shoulder", "elbow": "Elbow", "wrist": "Wrist"}
    centre = {"pelvis": "Pelvis", "spine1": "Spine1", "spine2": "Spine2", "spine3": "Spine3",
              "neck": "Neck", "head": "Head"}
    return {**centre, **_sided(limbs, "L_{}", "R_{}")}


def _rigify_def() -> dict[str, str]:
    limbs = {"hip": "DEF-thigh", "knee": "DEF-shin", "ankle": "DEF-foot", "foot": "DEF-toe",
             "collar": "DEF-shoulder", "shoulder": "DEF-upper_arm", "elbow": "DEF-forearm",
             "wrist": "DEF-hand"}
    centre = {"pelvis": "DEF-spine", "spine1": "DEF-spine.001", "spine2": "DEF-spine.002",
              "spine3": "DEF-spine.003", "neck": "DEF-spine.004", "head": "DEF-spine.006"}
    return {**centre, **_sided(limbs, "{}.L", "{}.R")}


def _rigify_fk() -> dict[str, str]:
    limbs = {"hip": "thigh_fk", "knee": "shin_fk", "ankle": "foot_fk", "foot": "toe_fk",
             "collar": "shoulder", "shoulder": "upper_arm_fk", "elbow": "forearm_fk",
             "wrist": "hand_fk"}
    centre = {"pelvis": "torso", "spine1": "spine_fk.001", "spine2": "spine_fk.002",
              "spine3": "spine_fk.003", "neck": "neck", "head": "head"}
    return {**centre, **_sided(limbs, "{}.L", "{}.R")}


def _unreal(spines: tuple[str, str, str]) -> dict[str, str]:
    limbs = {"hip": "thigh", "knee": "calf", "ankle": "foot", "foot": "ball",
             "collar": "clavicle", "shoulder": "upperarm", "elbow": "lowerarm", "wrist": "hand"}
    centre = {"pelvis": "pelvis", "spine1": spines[0], "spine2": spines[1], "spine3": spines[2],
              "neck": "neck_01", "head": "head"}
    return {**centre, **_sided(limbs, "{}_l", "{}_r")}


# Preset name -> {joint: bone name}. Names are matched exactly, then ignoring case and the
# namespace prefixes of _PREFIXES.
PRESETS: dict[str, dict[str, str]] = {
    "SMPL": _smpl(),
    "SMPL_LOWER": {joint: joint for joint in SMPL22_JOINTS},
    "MIXAMO": _mixamo(),
    "RIGIFY_FK": _rigify_fk(),
    "RIGIFY_DEF": _rigify_def(),
    "UE5": _unreal(("spine_01", "spine_03", "spine_05")),
    "UE4": _unreal(("spine_01", "spine_02", "spine_03")),
}
# What the user picks in the panel -> the presets tried, best match wins.
PRESET_GROUPS = {
    "SMPL": ["SMPL", "SMPL_LOWER"],
    "MIXAMO": ["MIXAMO"],
    "RIGIFY": ["RIGIFY_FK", "RIGIFY_DEF"],
    "UE": ["UE5", "UE4"],
}
# The joints without which a motion cannot be read off the rig at all.
CORE_JOINTS = ["pelvis", "left_hip", "right_hip", "left_knee", "right_knee"]

# Namespace prefixes of exporters (Mixamo, Blender FBX, SMPL FBX, CC/iClone, 3ds Max biped).
_PREFIXES = re.compile(
    r"^(?:mixamorig\d*[:_]|armature[|:]|[mf]_avg_|cc_base_|bip\d*[ _]|def[-_]|org[-_]|"
    r"b_|j_|jnt_|bone_)", re.IGNORECASE)


def normalise(name: str) -> tuple[str | None, str]:
    """(side 'left'|'right'|None, core) of a bone name: 'mixamorig:LeftUpLeg' -> ('left',
    'upleg'), 'thigh_l' -> ('left', 'thigh'), 'DEF-upper_arm.L' -> ('left', 'upperarm')."""
    stripped = name.rsplit("|", 1)[-1]
    while True:
        shorter = _PREFIXES.sub("", stripped, count=1)
        if shorter == stripped:
            break
        stripped = shorter
    side = None
    for pattern in (r"^(Left|Right)(?=[A-Z_.\- ])", r"^(left|right|L|R|l|r)[._\- ]",
                    r"[._\- ](left|right|L|R|l|r)$", r"[._\- ](left|right|L|R|l|r)(?=[._\- ]\d+$)",
                    r"^(L|R|l|r)(?=[A-Z])"):
        match = re.search(pattern, stripped)
        if match:
            side = "left" if match.group(1).lower().startswith("l") else "right"
            stripped = stripped[:match.start(1)] + stripped[match.end(1):]
            break
    core = re.sub(r"[^a-z0-9]", "", stripped.lower())
    return side, core


def find_preset_map(bone_names: list[str], preset: str) -> dict[str, str]:
    """The joints of `preset` whose bone exists in `bone_names` (exact name first, then
    case-insensitively and without namespace prefixes)."""
    exact = set(bone_names)
    loose: dict[str, str] = {}
    for name in bone_names:
        loose.setdefault(_loose_key(name), name)
    found = {}
    for joint, bone in PRESETS[preset].items():
        if bone in exact:
            found[joint] = bone
        elif _loose_key(bone) in loose:
            found[joint] = loose[_loose_key(bone)]
    return found


def _loose_key(name: str) -> str:
    return _PREFIXES.sub("", name.rsplit("|", 1)[-1]).lower()


def map_armature(armature):
    """The skeleton mapper's SkeletonMap for an armature (names, hierarchy, rest heads)."""
    bones = list(armature.bones)
    index = {bone.name: i for i, bone in enumerate(bones)}
    parents = [index[bone.parent.name] if bone.parent is not None else -1 for bone in bones]
    rest = np.array([tuple(bone.head_local) for bone in bones], dtype=np.float64).reshape(len(bones), 3)
    return skeleton_map.map_skeleton([bone.name for bone in bones], parents, rest)


def auto_report(armature) -> dict:
    """What "auto" picks and why: {"source": "preset NAME" | "mapper", "convention",
    "how", "confidence", "table", "missing"}."""
    names = [bone.name for bone in armature.bones]
    presets = {preset: check_hierarchy(armature, find_preset_map(names, preset)) for preset in PRESETS}
    best = max(presets, key=lambda preset: len(presets[preset]))
    mapped = map_armature(armature)
    table = check_hierarchy(armature, mapped.table)
    if len(presets[best]) == len(SMPL22_JOINTS) or len(presets[best]) > len(table):
        table = presets[best]
        return {"source": f"preset {best}", "convention": mapped.convention, "how": "names", "confidence": 1.0,
                "table": table, "missing": [j for j in SMPL22_JOINTS if j not in table]}
    return {"source": "mapper", **mapped.report(), "table": table,
            "missing": [j for j in SMPL22_JOINTS if j not in table]}


def auto_map(armature) -> dict[str, str]:
    """The best bone map for an armature found without user input (see auto_report)."""
    return auto_report(armature)["table"]


def group_map(armature, group: str) -> dict[str, str]:
    """The map of one preset group ('SMPL', 'MIXAMO', 'RIGIFY', 'UE'), best variant."""
    if group not in PRESET_GROUPS:
        raise BoneMapError(f"unknown bone map preset {group!r}; known: {', '.join(PRESET_GROUPS)}")
    found = check_hierarchy(armature, _best_preset(armature, PRESET_GROUPS[group]))
    missing = [joint for joint in CORE_JOINTS if joint not in found]
    if missing:
        raise BoneMapError(f"armature {armature.name!r} has no bones named as the {group} preset "
                           f"expects for {missing}; pick Auto or a custom table")
    return found


def _best_preset(armature, presets: list[str]) -> dict[str, str]:
    names = [bone.name for bone in armature.bones]
    candidates = [find_preset_map(names, preset) for preset in presets]
    return max(candidates, key=len, default={})


def check_hierarchy(armature, mapping: dict[str, str]) -> dict[str, str]:
    """Drop the joints whose bone does not descend from the bone of their nearest mapped
    SMPL ancestor (or whose bone is used twice)."""
    kept: dict[str, str] = {}
    used: set[str] = set()
    for joint in SMPL22_JOINTS:  # parents come before children in this order
        bone_name = mapping.get(joint)
        if bone_name is None or bone_name in used or bone_name not in armature.bones:
            continue
        ancestor = _mapped_ancestor(joint, kept)
        if ancestor is not None and not descends(armature.bones[bone_name], kept[ancestor]):
            continue
        kept[joint] = bone_name
        used.add(bone_name)
    return kept


def _mapped_ancestor(joint: str, mapping: dict[str, str]) -> str | None:
    parent = SMPL22_PARENTS[JOINT_INDEX[joint]]
    while parent >= 0:
        if SMPL22_JOINTS[parent] in mapping:
            return SMPL22_JOINTS[parent]
        parent = SMPL22_PARENTS[parent]
    return None


def descends(bone, ancestor_name: str) -> bool:
    """Whether `bone` (a bpy Bone) lies below the bone named `ancestor_name`."""
    parent = bone.parent
    while parent is not None:
        if parent.name == ancestor_name:
            return True
        parent = parent.parent
    return False


def hierarchy_map(armature) -> dict[str, str]:
    """The mapper's table alone (no presets), checked against the hierarchy."""
    return check_hierarchy(armature, map_armature(armature).table)


# ---------------------------------------------------------------- custom tables

def parse_custom(text: str, source: str, armature) -> dict[str, str]:
    """A custom table: a JSON object {SMPL-22 joint: bone name}; errors name `source`."""
    try:
        table = json.loads(text)
    except json.JSONDecodeError as error:
        raise BoneMapError(f"bone map {source!r} is not valid JSON: {error}") from None
    if not isinstance(table, dict):
        raise BoneMapError(f"bone map {source!r} must be a JSON object {{joint: bone}}")
    unknown = sorted(set(table) - set(SMPL22_JOINTS))
    if unknown:
        raise BoneMapError(f"bone map {source!r} names unknown joints {unknown}; "
                           f"joints are: {', '.join(SMPL22_JOINTS)}")
    missing = sorted(bone for bone in table.values() if bone and bone not in armature.bones)
    if missing:
        raise BoneMapError(f"bone map {source!r} names bones that armature {armature.name!r} "
                           f"lacks: {missing}")
    return {joint: bone for joint, bone in table.items() if bone}


def to_json(mapping: dict[str, str]) -> str:
    """A table in SMPL order with every joint listed ("" where unmapped), for editing."""
    return json.dumps({joint: mapping.get(joint, "") for joint in SMPL22_JOINTS}, indent=2) + "\n"


def require_core(armature, mapping: dict[str, str]) -> None:
    missing = [joint for joint in CORE_JOINTS if joint not in mapping]
    if missing:
        considered = skeleton_map.considered_bones([bone.name for bone in armature.bones])
        shown = ", ".join(considered[:20]) + (f", ... ({len(considered)} bones)" if len(considered) > 20 else "")
        raise BoneMapError(
            f"cannot map the bones of armature {armature.name!r}: no bone found for {missing} "
            f"(bones considered: {shown}); choose a preset or write a custom bone map")
