"""Any humanoid hierarchy -> the 22 SMPL joints (stdlib + numpy; used by the server's
readers and, vendored, by the Blender add-on's bone map "auto").

Input: bone names, parent indices (-1 for roots, any order) and, optionally, rest
positions of the bone heads (J, 3) in any consistent frame (any up axis, any unit).
Output: a SkeletonMap: the bone of each SMPL-22 joint (the bone whose head sits at that
joint: the thigh for `left_hip`, the upper arm for `left_shoulder`), how each was found,
a confidence, the naming convention recognised, and the pelvis -> neck chain.

How:
1. Names. Each name is normalised: namespaces (`mixamorig:`, `Armature|`), exporter
   prefixes (DEF-/ORG-/MCH-, CC_Base_, J_Bip_, Bip01, Character1_, m_avg_ ...), side
   markers (Left/Right, L/R/l/r as a token, `.L`, `_l`, Daz `lThigh`, CMU `lfemur`),
   case and separators; numbers become a segment index. Twist, roll, helper, finger,
   IK/pole, face and end bones are ignored. The hands, feet and head are found by name,
   each limb is walked up to the trunk and its bones are given the SMPL roles (by their
   names where they say it, else bottom-up); the pelvis is the common ancestor of the
   thighs and the neck; the spine bones lie between pelvis and neck.
2. Topology + rest pose, for what the names leave open (a rig of `Bone`, `Bone.001`...):
   the two limb pairs are mirror-image sibling chains of equal segment lengths; the
   pair that branches nearer the root is the legs; the head is the centred chain above
   the arms' branch; hip/knee/ankle (shoulder/elbow/wrist) are the ends of the two
   longest consecutive segments of each chain; left vs right comes from the rest pose
   (left = up x forward, forward from the toes) when the names do not say.
Every joint's bone must descend from the bone of its SMPL parent; what fails is missing.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

SMPL22_JOINTS = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist",
]
SMPL22_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
SPINE_JOINTS = ("spine1", "spine2", "spine3")
# Conventions the name rules were written for (what `convention` reports).
CONVENTIONS = ("smpl", "mixamo", "ue4", "ue5", "rigify", "blender_metarig", "3dsmax_biped", "humanik",
               "character_creator", "daz_genesis", "vrm", "unity_humanoid", "cmu_asf", "cmu", "bandai")

# Leading tokens that are exporter namespaces, not body parts (only stripped at the start).
_PREFIX_TOKENS = {"mixamorig", "def", "cc", "base", "rl", "j", "bip", "jnt", "joint", "b", "bn",
                  "character", "m", "f", "avg", "sk", "armature", "c", "bone", "bones", "skeleton", "rig"}
# Tokens anywhere in a name that make the bone a helper to ignore (twist/roll bones,
# fingers, IK and control bones, face, secondary motion, end bones).
_IGNORE_TOKENS = {"twist", "roll", "share", "helper", "adj", "sec", "ik", "pole", "target", "ctrl", "control",
                  "end", "nub", "null", "eye", "jaw", "breast", "bust", "tongue", "teeth", "hair", "skirt",
                  "prop", "weapon", "attach", "socket", "dummy", "footsteps", "thumb", "index", "middle",
                  "ring", "pinky", "pinkie", "finger", "fingers", "carpal", "metacarpal", "heel", "small",
                  "big", "extra", "fk", "tweak", "parent", "pivot", "lip", "brow", "cheek", "nose", "ear",
                  "lid", "face", "top", "corrective", "volume", "metatarsals", "metatarsal", "mch", "org",
                  "thumb", "pinky", "upperarmtwist", "forearmtwist"}
# Whole normalised names to ignore.
_IGNORE_CORES = {"hipjoint", "bone", ""}
# The role words: normalised core -> limb role.
_ARM_ROLES = {
    "collar": {"collar", "clavicle", "shoulder"},
    "shoulder": {"arm", "upperarm", "uparm", "humerus", "shldrbend", "shldr", "shoulder"},
    "elbow": {"forearm", "lowerarm", "lowarm", "elbow", "radius", "ulna", "forearmbend"},
    "wrist": {"hand", "wrist"},
}
_LEG_ROLES = {
    "hip": {"upleg", "upperleg", "thigh", "thighbend", "femur", "hip", "uleg"},
    "knee": {"leg", "lowerleg", "lowleg", "calf", "shin", "knee", "tibia"},
    "ankle": {"foot", "ankle"},
}
_HAND_WORDS = {"hand", "wrist"}
_FOOT_WORDS = {"foot", "ankle"}
_TOE_WORDS = {"toebase", "toe", "toes", "ball", "toe0"}
_PELVIS_WORDS = {"hips", "hip", "pelvis"}
# CMU ASF names glue the side to the word: lfemur, rhumerus.
_ASF_WORDS = {"hipjoint", "femur", "tibia", "foot", "toes", "clavicle", "humerus", "radius", "wrist", "hand",
              "fingers", "thumb"}
_TOKEN = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_END_SITE = re.compile(r"(_end|end_site|_nub|nub|_end\d*)$", re.IGNORECASE)


class SkeletonMapError(ValueError):
    """A hierarchy that does not give the joints asked for; names them and the bones seen."""

    def __init__(self, missing: list[str], considered: list[str], partial: "SkeletonMap | None" = None):
        self.missing = list(missing)
        self.considered = list(considered)
        self.partial = partial
        shown = ", ".join(considered[:24]) + (f", ... ({len(considered)} bones)" if len(considered) > 24 else "")
        super().__init__(f"unmappable skeleton: no joint found for {', '.join(missing)} (bones considered: {shown})")


@dataclass
class SkeletonMap:
    names: list[str]                       # every bone of the hierarchy
    indices: dict[str, int]                # SMPL-22 joint -> bone index (found joints only)
    method: dict[str, str]                 # joint -> "name" | "topology"
    convention: str                        # one of CONVENTIONS or "unknown"
    spine_chain: list[int] = field(default_factory=list)  # bone indices pelvis .. neck (inclusive)

    @property
    def table(self) -> dict[str, str]:
        """{SMPL-22 joint: bone name}, SMPL order."""
        return {joint: self.names[self.indices[joint]] for joint in SMPL22_JOINTS if joint in self.indices}

    @property
    def missing(self) -> list[str]:
        return [joint for joint in SMPL22_JOINTS if joint not in self.indices]

    @property
    def confidence(self) -> float:
        """1.0: every joint found by name; a joint found from the topology counts 0.7, a
        missing one 0; a missing spine joint counts 0.5 (readers interpolate the spine)."""
        score = 0.0
        for joint in SMPL22_JOINTS:
            how = self.method.get(joint)
            score += 1.0 if how == "name" else 0.7 if how == "topology" else 0.5 if joint in SPINE_JOINTS else 0.0
        return round(score / len(SMPL22_JOINTS), 3)

    @property
    def how(self) -> str:
        """'names', 'topology' or 'names+topology'."""
        kinds = set(self.method.values())
        return "+".join(kind for kind in ("names", "topology") if kind.rstrip("s") in kinds) or "none"

    def report(self) -> dict:
        """JSON-ready summary: convention, how, confidence, table, missing."""
        return {"convention": self.convention, "how": self.how, "confidence": self.confidence,
                "table": self.table, "missing": self.missing}

    def require(self, joints) -> "SkeletonMap":
        missing = [joint for joint in joints if joint not in self.indices]
        if missing:
            raise SkeletonMapError(missing, considered_bones(self.names), self)
        return self


def considered_bones(names: list[str]) -> list[str]:
    return [name for name in names if not _END_SITE.search(name)]


# ---------------------------------------------------------------- names

@dataclass
class _Label:
    side: str | None    # "left" | "right" | None
    core: str           # normalised body word, e.g. "upperarm"
    segment: int        # trailing number (spine_02 -> 2), 0 when none
    ignored: bool


def normalise(name: str) -> tuple[str | None, str]:
    """(side, core): 'mixamorig:LeftUpLeg' -> ('left', 'upleg'), 'thigh_l' -> ('left', 'thigh'),
    'DEF-upper_arm.L' -> ('left', 'upperarm'), 'Bip01 L Thigh' -> ('left', 'thigh'),
    'lfemur' -> ('left', 'femur'), 'CC_Base_L_Thigh' -> ('left', 'thigh')."""
    label = _label(name, "")
    return label.side, label.core


def _label(name: str, common_prefix: str) -> _Label:
    text = re.split(r"[:|]", name)[-1]
    if common_prefix and text.startswith(common_prefix) and len(text) > len(common_prefix):
        text = text[len(common_prefix):]
    raw = _TOKEN.findall(text)
    tokens = [token.lower() for token in raw]
    side = None
    body: list[str] = []
    segment = 0
    leading = True
    ignored = bool(_END_SITE.search(name))
    for token in tokens:
        if token in ("left", "l", "right", "r"):
            side = "left" if token.startswith("l") else "right"
            continue
        if leading and token in _PREFIX_TOKENS:
            continue
        if token.isdigit():
            if body:
                segment = int(token)
            continue
        if leading and token in ("org", "mch"):
            ignored = True  # Rigify's original / mechanism copies: the DEF- bones deform
        leading = False
        if side is None and not body and len(token) > 1 and token[0] in "lr" and token[1:] in _ASF_WORDS:
            side = "left" if token[0] == "l" else "right"
            token = token[1:]
        body.append(token)
    core = "".join(body)
    if core in _IGNORE_CORES or (any(token in _IGNORE_TOKENS for token in body) and not core.startswith("neck")):
        ignored = True
    return _Label(side, core, segment, ignored)


def _common_prefix(names: list[str]) -> str:
    """A prefix ending in a separator shared by most bones (Character1_, CC_Base_, Bip01 )."""
    counts: dict[str, int] = {}
    for name in names:
        text = re.split(r"[:|]", name)[-1]
        for match in re.finditer(r"[_ .\-]", text):
            counts[text[:match.end()]] = counts.get(text[:match.end()], 0) + 1
    good = [prefix for prefix, count in counts.items() if count >= 0.6 * len(names) and len(names) >= 4
            and not prefix.upper().startswith(("ORG", "MCH"))]  # those mark bones to ignore
    return max(good, key=len, default="")


def detect_convention(names: list[str]) -> str:
    """The naming convention of a rig (a label for reports; mapping does not depend on it)."""
    text = " ".join(names)
    lower = {name.lower() for name in names}
    stripped = {re.split(r"[:|]", name)[-1] for name in names}
    if "mixamorig" in text.lower():
        return "mixamo"
    if "CC_Base_" in text or "RL_BoneRoot" in text:
        return "character_creator"
    if "J_Bip_" in text:
        return "vrm"
    if re.search(r"\bBip0*1 ", text):
        return "3dsmax_biped"
    if re.search(r"\b[lr](ThighBend|ShldrBend|Shin|Collar)\b", text) or "abdomenLower" in text:
        return "daz_genesis"
    if {"lfemur", "rfemur"} & lower or {"lhumerus", "rhumerus"} & lower:
        return "cmu_asf"
    if any(name.startswith("DEF-") or name.startswith("ORG-") for name in stripped):
        return "rigify"
    if {"thigh.L", "spine.006"} <= stripped or {"thigh.L", "upper_arm.L"} <= stripped:
        return "blender_metarig"
    if {"thigh_l", "calf_l"} <= lower:
        return "ue5" if "spine_05" in lower else "ue4"
    if {"UpperLeg_L", "LowerLeg_L"} <= stripped:
        return "bandai"
    if {"LeftUpperLeg", "LeftLowerLeg"} <= stripped:
        return "unity_humanoid"
    if {"L_Hip", "Pelvis"} <= stripped or {"left_hip", "pelvis"} <= stripped:
        return "smpl"
    if {"LHipJoint", "LowerBack"} & stripped:
        return "cmu"
    if any(name.endswith("LeftUpLeg") for name in stripped):
        return "humanik"
    return "unknown"


# ---------------------------------------------------------------- the tree

class _Tree:
    def __init__(self, names: list[str], parents: list[int], rest):
        self.names = list(names)
        self.parents = [int(p) for p in parents]
        count = len(self.names)
        if len(self.parents) != count:
            raise ValueError(f"{count} names but {len(self.parents)} parents")
        self.children: list[list[int]] = [[] for _ in range(count)]
        for bone, parent in enumerate(self.parents):
            if parent >= count or parent == bone:
                raise ValueError(f"bone {names[bone]!r} has an invalid parent {parent}")
            if parent >= 0:
                self.children[parent].append(bone)
        self.depth = [self._depth(b) for b in range(count)]
        self.rest = None if rest is None else np.asarray(rest, dtype=np.float64).reshape(count, 3)
        self.end_site = [bool(_END_SITE.search(name)) for name in self.names]
        self._height: dict[int, int] = {}

    def _depth(self, bone: int) -> int:
        depth, seen = 0, set()
        while self.parents[bone] >= 0:
            if bone in seen:
                raise ValueError(f"the hierarchy has a cycle at {self.names[bone]!r}")
            seen.add(bone)
            bone, depth = self.parents[bone], depth + 1
        return depth

    def ancestors(self, bone: int) -> list[int]:
        out = []
        while self.parents[bone] >= 0:
            bone = self.parents[bone]
            out.append(bone)
        return out

    def descends(self, bone: int, ancestor: int) -> bool:
        return ancestor in self.ancestors(bone)

    def path_down(self, ancestor: int, bone: int) -> list[int] | None:
        """Bones from ancestor down to bone (both included), None if unrelated."""
        path = [bone]
        while path[-1] != ancestor:
            parent = self.parents[path[-1]]
            if parent < 0:
                return None
            path.append(parent)
        return path[::-1]

    def lca(self, bones: list[int]) -> int | None:
        common = None
        for bone in bones:
            line = [bone] + self.ancestors(bone)
            common = line if common is None else [b for b in common if b in set(line)]
        return common[0] if common else None

    def height(self, bone: int) -> int:
        if bone not in self._height:
            self._height[bone] = 1 + max((self.height(c) for c in self.children[bone]), default=-1)
        return self._height[bone]

    def position(self, bone: int) -> np.ndarray | None:
        return None if self.rest is None else self.rest[bone]

    def segment(self, bone: int, child: int) -> float:
        if self.rest is None:
            return 1.0
        return float(np.linalg.norm(self.rest[child] - self.rest[bone]))

    def main_path(self, bone: int) -> list[int]:
        """bone, then repeatedly the child with the tallest subtree (longest offset on ties)."""
        path = [bone]
        while self.children[path[-1]]:
            here = path[-1]
            path.append(max(self.children[here], key=lambda c: (self.height(c), self.segment(here, c))))
        return path


# ---------------------------------------------------------------- the mapper

def map_skeleton(names: list[str], parents: list[int], rest=None) -> SkeletonMap:
    """Map a hierarchy to SMPL-22 (see the module docstring); never raises for an
    unmappable rig: check `.missing` or call `.require(joints)`."""
    tree = _Tree(names, parents, rest)
    prefix = _common_prefix(names)
    labels = [_label(name, prefix) for name in names]
    found: dict[str, int] = {}
    method: dict[str, str] = {}
    _by_names(tree, labels, found)
    for joint in found:
        method[joint] = "name"
    _fill_trunk(tree, labels, found, method)
    if any(joint not in found for joint in SMPL22_JOINTS if joint not in SPINE_JOINTS):
        topology = _by_topology(tree, labels)
        for joint, bone in topology.items():
            if joint not in found and bone not in found.values():
                found[joint] = bone
                method[joint] = "topology"
        _fill_trunk(tree, labels, found, method)
    kept = _check_hierarchy(tree, found)
    method = {joint: how for joint, how in method.items() if joint in kept}
    chain = []
    if "pelvis" in kept and "neck" in kept:
        chain = tree.path_down(kept["pelvis"], kept["neck"]) or []
    return SkeletonMap(list(names), kept, method, detect_convention(names), chain)


def _candidates(tree: _Tree, labels: list[_Label], words: set[str], side: str | None) -> list[int]:
    return [b for b, label in enumerate(labels)
            if not label.ignored and label.core in words and label.side == side]


def _by_names(tree: _Tree, labels: list[_Label], found: dict[str, int]) -> None:
    # Prefer deform bones when a rig has DEF- copies (Rigify): only they are exported.
    deform = [b for b, name in enumerate(tree.names) if re.split(r"[:|]", name)[-1].startswith("DEF-")]
    allowed = set(deform) if len(deform) >= 10 else None
    for side in ("left", "right"):
        hand = _highest(tree, _candidates(tree, labels, _HAND_WORDS, side), allowed)
        if hand is not None:
            _limb(tree, labels, hand, side, _ARM_ROLES, ["wrist", "elbow", "shoulder", "collar"], found)
        foot = _highest(tree, _candidates(tree, labels, _FOOT_WORDS, side), allowed)
        if foot is not None:
            _limb(tree, labels, foot, side, _LEG_ROLES, ["ankle", "knee", "hip"], found)
            toe = _toe_below(tree, labels, foot)
            if toe is not None:
                found[f"{side}_foot"] = toe
    head = _highest(tree, _candidates(tree, labels, {"head"}, None), allowed)
    if head is not None:
        found["head"] = head


def _highest(tree: _Tree, bones: list[int], allowed: set[int] | None) -> int | None:
    if allowed is not None and any(b in allowed for b in bones):
        bones = [b for b in bones if b in allowed]
    return min(bones, key=lambda b: (tree.depth[b], b), default=None)


def _limb(tree: _Tree, labels, end: int, side: str, roles: dict[str, set[str]], order: list[str],
          found: dict[str, int]) -> None:
    """Walk up from a hand/foot through bones of the same side; segments of one limb part
    (upper_arm + upper_arm.001) count once as their top bone; helpers are skipped. Roles
    go by name where the names say (SMPL's 'shoulder' is the upper arm below a 'collar'),
    else bottom-up."""
    chain = [end]
    bone = tree.parents[end]
    while bone >= 0 and labels[bone].side == side:
        label = labels[bone]
        if not label.ignored:
            if label.core == labels[chain[-1]].core and len(chain) > 1:
                chain[-1] = bone
            else:
                chain.append(bone)
        bone = tree.parents[bone]
    cores = [labels[b].core for b in chain]
    roles = dict(roles)
    if "collar" in roles:  # 'shoulder' is the collar (Mixamo, Unity) unless a collar is named (SMPL)
        has_collar = any(core in ("collar", "clavicle") for core in cores)
        roles["collar"] = {"collar", "clavicle"} | (set() if has_collar else {"shoulder"})
        roles["shoulder"] = _ARM_ROLES["shoulder"] - ({"shoulder"} if not has_collar else set())
    known = set().union(*roles.values())
    named: dict[str, int] = {}
    position = 0
    for role in order:
        match = next((i for i in range(position, len(chain)) if cores[i] in roles[role]), None)
        if match is None:
            if position < len(chain) and cores[position] not in known:
                match = position  # a name we do not know: take it by its place in the chain
            else:
                continue
        named[role] = chain[match]
        position = match + 1
    for role, bone in named.items():
        found[f"{side}_{role}"] = bone


def _toe_below(tree: _Tree, labels, foot: int) -> int | None:
    """A toe-named bone within two levels below the foot, else the foot's only child."""
    level = list(tree.children[foot])
    for _ in range(2):
        toes = [b for b in level if labels[b].core in _TOE_WORDS and not _END_SITE.search(tree.names[b])]
        if toes:
            return min(toes)
        level = [c for b in level for c in tree.children[b]]
    kids = [c for c in tree.children[foot] if not labels[c].ignored or tree.end_site[c]]
    return kids[0] if len(kids) == 1 else None


def _fill_trunk(tree: _Tree, labels, found: dict[str, int], method: dict[str, str]) -> None:
    """Pelvis = common ancestor of both thighs and the head (a pelvis/hips-named bone just
    above it wins: 3ds Max hangs the thighs from Spine); neck = the first neck-named bone
    between pelvis and head, else the head's parent; spine3 = the bone the collars hang
    from; spine1 / spine2 = the first / middle spine bone below it."""
    how = "name" if all(method.get(j) == "name" for j in ("left_hip", "right_hip", "head") if j in found) else "topology"
    if "left_hip" in found and "right_hip" in found and "pelvis" not in found:
        anchors = [found["left_hip"], found["right_hip"]] + ([found["head"]] if "head" in found else [])
        common = tree.lca(anchors)
        if common is not None and common not in (found["left_hip"], found["right_hip"]):
            for above in tree.ancestors(common)[:2]:
                if labels[common].core not in _PELVIS_WORDS and labels[above].core in _PELVIS_WORDS:
                    common = above
                    break
            found["pelvis"], method["pelvis"] = common, how
    if "head" not in found or "pelvis" not in found:
        return
    path = tree.path_down(found["pelvis"], found["head"])
    if path is None or len(path) < 3:
        return
    between = path[1:-1]
    if "neck" not in found:
        necks = [b for b in between if "neck" in labels[b].core]
        found["neck"] = necks[0] if necks else between[-1]
        method["neck"] = "name" if necks else how
    if found["neck"] not in between:
        return
    spine = between[:between.index(found["neck"])]
    spine = [b for b in spine if not labels[b].ignored or labels[b].core.startswith("spine")] or spine
    for side in ("left", "right"):
        collar = found.get(f"{side}_collar", found.get(f"{side}_shoulder"))
        if collar is not None:
            top = next((b for b in tree.ancestors(collar) if b in spine), None)
            if top is not None:
                spine = spine[:spine.index(top) + 1]
                break
    if spine:
        for joint, bone in (("spine3", spine[-1]), ("spine1", spine[0])):
            if joint not in found:
                found[joint], method[joint] = bone, how
        if len(spine) >= 3 and "spine2" not in found:
            found["spine2"], method["spine2"] = spine[len(spine) // 2], how


def _check_hierarchy(tree: _Tree, found: dict[str, int]) -> dict[str, int]:
    """Drop joints whose bone does not descend from their nearest mapped SMPL ancestor's
    bone, or whose bone is already used."""
    kept: dict[str, int] = {}
    used: set[int] = set()
    for index, joint in enumerate(SMPL22_JOINTS):
        bone = found.get(joint)
        if bone is None or bone in used:
            continue
        parent = SMPL22_PARENTS[index]
        while parent >= 0 and SMPL22_JOINTS[parent] not in kept:
            parent = SMPL22_PARENTS[parent]
        if parent >= 0 and not tree.descends(bone, kept[SMPL22_JOINTS[parent]]):
            continue
        kept[joint] = bone
        used.add(bone)
    return kept


# ---------------------------------------------------------------- topology + rest pose

def _by_topology(tree: _Tree, labels) -> dict[str, int]:
    """Limbs from mirror-image sibling chains, sides from the rest pose (needs `rest`)."""
    if tree.rest is None:
        return {}
    pairs = _limb_pairs(tree)
    if len(pairs) < 2:
        return {}
    first = pairs[0]
    second = next((p for p in pairs[1:] if not _overlaps(tree, first, p)), None)
    if second is None:
        return {}
    legs, arms = (first, second) if _branches_above(tree, first, second) else (second, first)
    chest = arms[0]
    head_path = _head_path(tree, chest, arms)
    while len(head_path) > 1 and labels[head_path[-1]].ignored and labels[head_path[-1]].core not in _IGNORE_CORES:
        head_path.pop()  # a named helper (Rigify's 'face' bone under the head) is not the head
    if not head_path:
        return {}
    found: dict[str, int] = {"head": head_path[-1]}
    if len(head_path) >= 2:
        found["neck"] = head_path[0]
    leg_chains = [tree.main_path(b) for b in legs[1:]]
    arm_chains = [_arm_path(tree, b) for b in arms[1:]]
    up = tree.rest[found["head"]] - np.mean([tree.rest[c[-1]] for c in leg_chains], axis=0)
    up /= max(np.linalg.norm(up), 1e-12)
    forward = np.zeros(3)
    for chain in leg_chains:
        split = _two_longest(tree, chain)
        if split + 3 < len(chain):
            toe = tree.rest[chain[split + 3]] - tree.rest[chain[split + 2]]
            forward += toe - np.dot(toe, up) * up
    if np.linalg.norm(forward) < 1e-9:  # no toes: assume the usual facing (Y-up: +Z, Z-up: -Y)
        forward = np.array([0.0, 0.0, 1.0]) if abs(up[1]) >= abs(up[2]) else np.array([0.0, -1.0, 0.0])
        forward -= np.dot(forward, up) * up
    left_axis = np.cross(up, forward)
    for chains, roles in ((leg_chains, ("hip", "knee", "ankle", "foot")),
                          (arm_chains, ("collar", "shoulder", "elbow", "wrist"))):
        a, b = chains
        a_side = _side_of(labels, a) or ("left" if np.dot(tree.rest[a[1]] - tree.rest[b[1]], left_axis) > 0
                                         else "right")
        for side, chain in ((a_side, a), ("right" if a_side == "left" else "left", b)):
            split = _two_longest(tree, chain)
            if roles[0] == "hip":
                bones = chain[split:split + 4]
                found.update({f"{side}_{r}": bone for r, bone in zip(roles, bones)})
            else:
                found.update({f"{side}_{r}": chain[split + i] for i, r in enumerate(roles[1:])
                              if split + i < len(chain)})
                if split >= 1:
                    found[f"{side}_collar"] = chain[split - 1]
    return found


def _side_of(labels, chain: list[int]) -> str | None:
    sides = {labels[b].side for b in chain if labels[b].side}
    return sides.pop() if len(sides) == 1 else None


def _profile(tree: _Tree, bone: int, count: int = 4) -> list[float]:
    path = tree.main_path(bone)
    return [tree.segment(a, b) for a, b in zip(path, path[1:])][:count]


def _limb_pairs(tree: _Tree) -> list[tuple[int, int, int]]:
    """(parent, a, b) for sibling chains of >= 3 bones with mirrored, equal profiles, longest first."""
    pairs = []
    for parent, kids in enumerate(tree.children):
        for i, a in enumerate(kids):
            for b in kids[i + 1:]:
                if tree.height(a) < 2 or tree.height(b) < 2:
                    continue
                pa, pb = _profile(tree, a), _profile(tree, b)
                size = min(len(pa), len(pb))
                if size < 2:
                    continue
                total = sum(pa[:size]) + sum(pb[:size])
                if total <= 0:
                    continue
                if sum(abs(x - y) for x, y in zip(pa, pb)) > 0.1 * total / 2:
                    continue
                offset_a = tree.rest[a] - tree.rest[parent]
                offset_b = tree.rest[b] - tree.rest[parent]
                if abs(np.linalg.norm(offset_a) - np.linalg.norm(offset_b)) > 0.1 * total / 2 + 1e-9:
                    continue
                if np.linalg.norm(tree.rest[tree.main_path(a)[-1]] - tree.rest[tree.main_path(b)[-1]]) < 0.05 * total:
                    continue  # not apart: not a left/right pair
                pairs.append((total / 2, parent, a, b))
    pairs.sort(key=lambda p: -p[0])
    return [(parent, a, b) for _, parent, a, b in pairs]


def _overlaps(tree: _Tree, first, second) -> bool:
    members = {first[1], first[2], second[1], second[2]}
    return any(tree.descends(x, y) for x in members for y in members if x != y) or len(members) < 4


def _branches_above(tree: _Tree, legs, arms) -> bool:
    """Whether `legs` branch nearer the root than `arms` (arms hang below the legs' branch
    point, or at least deeper)."""
    if tree.descends(arms[0], legs[0]):
        return True
    if tree.descends(legs[0], arms[0]):
        return False
    return tree.depth[legs[0]] <= tree.depth[arms[0]]


def _head_path(tree: _Tree, chest: int, arms) -> list[int]:
    """From the arms' branch bone: the most central other child's main path, up to the
    first bone that branches three ways (a face) or before an end site."""
    lateral = tree.rest[arms[1]] - tree.rest[arms[2]]
    lateral /= max(np.linalg.norm(lateral), 1e-12)
    kids = [c for c in tree.children[chest] if c not in (arms[1], arms[2]) and not tree.end_site[c]]
    if not kids:
        # the head chain may leave the spine below the arms' branch (rare): none here
        return []
    def off_centre(c):
        return abs(float(np.dot(tree.rest[tree.main_path(c)[-1]] - tree.rest[chest], lateral)))
    start = min(kids, key=lambda c: (off_centre(c), -tree.height(c)))
    path = [start]
    while True:
        kids = [c for c in tree.children[path[-1]] if not tree.end_site[c]]
        if len(tree.children[path[-1]]) >= 3 or not kids:
            return path
        path.append(max(kids, key=lambda c: (tree.height(c), tree.segment(path[-1], c))))


def _arm_path(tree: _Tree, bone: int) -> list[int]:
    """The arm's main path, cut at the hand: the first bone with three or more children."""
    path = [bone]
    while tree.children[path[-1]] and len(tree.children[path[-1]]) < 3:
        path.append(max(tree.children[path[-1]], key=lambda c: (tree.height(c), tree.segment(path[-1], c))))
    return path


def _two_longest(tree: _Tree, chain: list[int]) -> int:
    """Index i where segments i and i + 1 together are longest (thigh + shin, upper arm +
    forearm)."""
    lengths = [tree.segment(a, b) for a, b in zip(chain, chain[1:])]
    if len(lengths) < 2:
        return 0
    sums = [lengths[i] + lengths[i + 1] for i in range(len(lengths) - 1)]
    return int(np.argmax(sums))
