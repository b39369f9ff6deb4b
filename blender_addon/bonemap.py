"""Which bone of a rig plays which SMPL-22 joint: presets, automatic detection, custom tables.

A bone map is a dict {SMPL-22 joint name: bone name}. A joint's bone is the bone whose head
sits at that joint (the thigh for `left_hip`, the upper arm for `left_shoulder`). Joints
the rig lacks are simply absent.

Detection order: the exact-name presets (SMPL, Mixamo, Rigify, UE mannequin); then a
fallback that normalises names (prefixes, side tokens, case), finds the hands, feet and
head by name, walks up the hierarchy from them to the pelvis, and takes the side from
the bone's position when the name has none. Every map is checked against the hierarchy:
a joint's bone must descend from its SMPL parent's bone.
"""
from __future__ import annotations

import json
import re

from .errors import BoneMapError

# Copied from inference_server.motion (the add-on must not import the server package).
SMPL22_JOINTS = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
]
SMPL22_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
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
# Normalised core names (no side) that identify a limb end or the head.
_HAND_NAMES = {"hand", "wrist"}
_FOOT_NAMES = {"foot", "ankle"}
_HEAD_NAMES = {"head"}
_TOE_NAMES = {"toe", "toebase", "toes", "ball", "toe01"}


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


def auto_map(armature) -> dict[str, str]:
    """The best bone map for an armature (bpy.types.Armature) found without user input:
    of each preset, the hierarchy fallback, and the fallback completed by the best preset
    (each checked against the hierarchy), the one that maps most joints; presets win ties.
    (Loose matching makes presets overlap: a metarig's 'spine' is Rigify's pelvis but
    another rig's lower spine; the hierarchy check and the count settle it.)"""
    names = [bone.name for bone in armature.bones]
    candidates = [check_hierarchy(armature, find_preset_map(names, preset)) for preset in PRESETS]
    fallback = hierarchy_map(armature)
    best_preset = max(candidates, key=len)
    candidates.append(check_hierarchy(armature, {**fallback, **best_preset}))
    candidates.append(check_hierarchy(armature, fallback))
    return max(candidates, key=len)


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


# ---------------------------------------------------------------- hierarchy fallback

def hierarchy_map(armature) -> dict[str, str]:
    """Guess a map from normalised names and the hierarchy: find both hands, both feet and
    the head by name, walk up from them, and split each chain into SMPL joints."""
    bones = list(armature.bones)
    info = {bone.name: normalise(bone.name) for bone in bones}
    mapping: dict[str, str] = {}
    for side in ("left", "right"):
        foot = _find_end(bones, info, _FOOT_NAMES, side)
        if foot is not None:
            mapping.update(_limb_map(foot, info, side, ["ankle", "knee", "hip"]))
            toe = _toe_of(foot, info)
            if toe is not None:
                mapping[f"{side}_foot"] = toe.name
        hand = _find_end(bones, info, _HAND_NAMES, side)
        if hand is not None:
            mapping.update(_limb_map(hand, info, side, ["wrist", "elbow", "shoulder", "collar"]))
    head = _find_end(bones, info, _HEAD_NAMES, None)
    if head is not None:
        mapping["head"] = head.name
    _fill_trunk(armature.bones, mapping, info)
    return mapping


def _find_end(bones, info, names: set[str], side: str | None):
    """The highest bone whose core name is in `names`, on `side` (by its name, or by the
    x of its head when the name has no side: Blender puts a rig's left on +X)."""
    matches = [bone for bone in bones if info[bone.name][1] in names]
    if side is None:
        return min(matches, key=_depth, default=None)
    named = [bone for bone in matches if info[bone.name][0] == side]
    if not named:
        sign = 1.0 if side == "left" else -1.0
        named = [bone for bone in matches
                 if info[bone.name][0] is None and bone.head_local.x * sign > 0]
    return min(named, key=_depth, default=None)


def _depth(bone) -> int:
    depth = 0
    while bone.parent is not None:
        depth, bone = depth + 1, bone.parent
    return depth


def _limb_map(end, info, side: str, roles: list[str]) -> dict[str, str]:
    """Walk up from a hand or foot through the bones of the same side; segments of one
    limb part (Rigify 'forearm.L' + 'forearm.L.001', DAZ 'ForearmBend' + 'ForearmTwist')
    count once, as their top bone; then the roles are given bottom-up."""
    chain = [end]
    bone = end.parent
    while bone is not None and info[bone.name][0] == side:
        if _segment_word(info[bone.name][1]) == _segment_word(info[chain[-1].name][1]) and len(chain) > 1:
            chain[-1] = bone  # same limb part: keep the upper segment
        else:
            chain.append(bone)
        bone = bone.parent
    return {f"{side}_{role}": bone.name for role, bone in zip(roles, chain)}


def _segment_word(core: str) -> str:
    return re.sub(r"(twist|bend|roll|\d+)", "", core)


def _toe_of(foot, info):
    children = list(foot.children)
    toes = [child for child in children if info[child.name][1] in _TOE_NAMES]
    if toes:
        return toes[0]
    return children[0] if len(children) == 1 else None


def _fill_trunk(bones, mapping: dict[str, str], info) -> None:
    """Pelvis = the common ancestor of both thighs; neck = the lowest neck* bone between
    pelvis and head (else the head's parent); spine3 = the bone the collars hang from;
    spine1/spine2 = the first/middle bone of the spine below it."""
    if "left_hip" in mapping and "right_hip" in mapping:
        common = _common_ancestor(bones[mapping["left_hip"]], bones[mapping["right_hip"]])
        if common is not None:
            mapping["pelvis"] = common.name
    if "head" not in mapping or "pelvis" not in mapping:
        return
    between = _path_between(bones[mapping["pelvis"]], bones[mapping["head"]])
    if len(between) < 2:
        return
    necks = [bone for bone in between if info[bone.name][1].startswith("neck")]
    neck = necks[0] if necks else between[-1]
    mapping["neck"] = neck.name
    spine = between[:between.index(neck)]
    collar = mapping.get("left_collar") or mapping.get("left_shoulder")
    if collar is not None and bones[collar].parent in spine:
        spine = spine[:spine.index(bones[collar].parent) + 1]
    if spine:
        mapping["spine3"] = spine[-1].name
        mapping["spine1"] = spine[0].name
        if len(spine) >= 3:
            mapping["spine2"] = spine[len(spine) // 2].name


def _common_ancestor(first, second):
    ancestors = set()
    bone = first.parent
    while bone is not None:
        ancestors.add(bone.name)
        bone = bone.parent
    bone = second.parent
    while bone is not None and bone.name not in ancestors:
        bone = bone.parent
    return bone


def _path_between(ancestor, descendant) -> list:
    """The bones strictly between `ancestor` and `descendant`, top first ([] if unrelated)."""
    path = []
    bone = descendant.parent
    while bone is not None and bone.name != ancestor.name:
        path.append(bone)
        bone = bone.parent
    return list(reversed(path)) if bone is not None else []


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
        raise BoneMapError(
            f"cannot map the bones of armature {armature.name!r}: no bone found for {missing}; "
            "choose a preset or write a custom bone map")
