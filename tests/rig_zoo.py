"""A zoo of humanoid rigs for the skeleton-mapper tests: one body, named and built the
way each convention does it (extra roots, twist and roll bones, split limb segments,
hip-offset bones, fingers, face and hair bones), in T- or A-pose, any scale, Y- or Z-up.

A rig is a list of Bone(name, parent, rest head position) plus the SMPL role of each
bone. `bvh_text(rig, motion)` writes a BVH whose world joint positions equal the base
motion's for every mapped joint, whatever the rig's extras, pose, scale or up axis (extras
follow their parent; A-pose arms get the rotation that brings them onto the motion).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.spatial.transform import Rotation

# An adult in Y-up metres, facing +Z, left on +X (the canonical frame).
BODY = {
    "pelvis": (0.0, 0.95, 0.0), "left_hip": (0.09, 0.88, -0.01), "right_hip": (-0.09, 0.88, -0.01),
    "left_knee": (0.10, 0.50, 0.01), "right_knee": (-0.10, 0.50, 0.01),
    "left_ankle": (0.11, 0.08, -0.03), "right_ankle": (-0.11, 0.08, -0.03),
    "left_foot": (0.12, 0.02, 0.11), "right_foot": (-0.12, 0.02, 0.11),
    "neck": (0.0, 1.50, -0.01), "head": (0.0, 1.60, 0.01),
    "left_collar": (0.03, 1.44, 0.0), "right_collar": (-0.03, 1.44, 0.0),
    "left_shoulder": (0.18, 1.43, -0.02), "right_shoulder": (-0.18, 1.43, -0.02),
    "left_elbow": (0.45, 1.43, -0.03), "right_elbow": (-0.45, 1.43, -0.03),
    "left_wrist": (0.70, 1.43, 0.0), "right_wrist": (-0.70, 1.43, 0.0),
}
SIDES = (("left", "L", "l", "Left"), ("right", "R", "r", "Right"))
LIMB = ("thigh", "shin", "foot", "toe", "clavicle", "upperarm", "forearm", "hand")
LIMB_JOINT = dict(zip(LIMB, ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist")))


@dataclass
class Bone:
    name: str
    parent: int
    head: np.ndarray          # rest position, Y-up metres (before scale / up axis)
    role: str | None          # SMPL-22 joint it plays, None for extras
    arm_side: str | None = None  # "left"/"right" for bones of an arm below the shoulder (A-pose)


@dataclass
class Rig:
    convention: str
    bones: list[Bone] = field(default_factory=list)

    def index(self, name: str) -> int:
        return next(i for i, bone in enumerate(self.bones) if bone.name == name)

    def add(self, name, parent, head, role=None, arm_side=None) -> str:
        parent_index = -1 if parent is None else self.index(parent)
        self.bones.append(Bone(name, parent_index, np.asarray(head, float), role, arm_side))
        return name

    @property
    def names(self):
        return [bone.name for bone in self.bones]

    @property
    def parents(self):
        return [bone.parent for bone in self.bones]

    def expected(self) -> dict[str, str]:
        """{joint: bone name} for every role-bearing bone (spine roles included)."""
        return {bone.role: bone.name for bone in self.bones if bone.role}


def _spec(convention: str) -> dict:
    """Names and structure of one convention. Limb names are format strings with {S}
    (L/R), {s} (l/r), {Side} (Left/Right)."""
    limbs = {
        "smpl": ("{S}_Hip", "{S}_Knee", "{S}_Ankle", "{S}_Foot", "{S}_Collar", "{S}_Shoulder", "{S}_Elbow", "{S}_Wrist"),
        "mixamo": ("mixamorig:{Side}UpLeg", "mixamorig:{Side}Leg", "mixamorig:{Side}Foot", "mixamorig:{Side}ToeBase",
                   "mixamorig:{Side}Shoulder", "mixamorig:{Side}Arm", "mixamorig:{Side}ForeArm", "mixamorig:{Side}Hand"),
        "ue4": ("thigh_{s}", "calf_{s}", "foot_{s}", "ball_{s}", "clavicle_{s}", "upperarm_{s}", "lowerarm_{s}", "hand_{s}"),
        "rigify": ("DEF-thigh.{S}", "DEF-shin.{S}", "DEF-foot.{S}", "DEF-toe.{S}", "DEF-shoulder.{S}",
                   "DEF-upper_arm.{S}", "DEF-forearm.{S}", "DEF-hand.{S}"),
        "blender_metarig": ("thigh.{S}", "shin.{S}", "foot.{S}", "toe.{S}", "shoulder.{S}", "upper_arm.{S}",
                            "forearm.{S}", "hand.{S}"),
        "3dsmax_biped": ("Bip01 {S} Thigh", "Bip01 {S} Calf", "Bip01 {S} Foot", "Bip01 {S} Toe0", "Bip01 {S} Clavicle",
                         "Bip01 {S} UpperArm", "Bip01 {S} Forearm", "Bip01 {S} Hand"),
        "humanik": ("Character1_{Side}UpLeg", "Character1_{Side}Leg", "Character1_{Side}Foot",
                    "Character1_{Side}ToeBase", "Character1_{Side}Shoulder", "Character1_{Side}Arm",
                    "Character1_{Side}ForeArm", "Character1_{Side}Hand"),
        "character_creator": ("CC_Base_{S}_Thigh", "CC_Base_{S}_Calf", "CC_Base_{S}_Foot", "CC_Base_{S}_ToeBase",
                              "CC_Base_{S}_Clavicle", "CC_Base_{S}_Upperarm", "CC_Base_{S}_Forearm", "CC_Base_{S}_Hand"),
        "daz_genesis": ("{s}ThighBend", "{s}Shin", "{s}Foot", "{s}Toe", "{s}Collar", "{s}ShldrBend", "{s}ForearmBend",
                        "{s}Hand"),
        "vrm": ("J_Bip_{S}_UpperLeg", "J_Bip_{S}_LowerLeg", "J_Bip_{S}_Foot", "J_Bip_{S}_ToeBase", "J_Bip_{S}_Shoulder",
                "J_Bip_{S}_UpperArm", "J_Bip_{S}_LowerArm", "J_Bip_{S}_Hand"),
        "unity_humanoid": ("{Side}UpperLeg", "{Side}LowerLeg", "{Side}Foot", "{Side}Toes", "{Side}Shoulder",
                           "{Side}UpperArm", "{Side}LowerArm", "{Side}Hand"),
        "cmu_asf": ("{s}femur", "{s}tibia", "{s}foot", "{s}toes", "{s}clavicle", "{s}humerus", "{s}radius", "{s}wrist"),
        "cmu": ("{Side}UpLeg", "{Side}Leg", "{Side}Foot", "{Side}ToeBase", "{Side}Shoulder", "{Side}Arm",
                "{Side}ForeArm", "{Side}Hand"),
        "bandai": ("UpperLeg_{S}", "LowerLeg_{S}", "Foot_{S}", "Toes_{S}", "Shoulder_{S}", "UpperArm_{S}",
                   "LowerArm_{S}", "Hand_{S}"),
    }
    limbs["ue5"] = limbs["ue4"]
    trunk = {  # root (or None), pelvis, spine bones, neck bones, head
        "smpl": (None, "Pelvis", ["Spine1", "Spine2", "Spine3"], ["Neck"], "Head"),
        "mixamo": (None, "mixamorig:Hips", ["mixamorig:Spine", "mixamorig:Spine1", "mixamorig:Spine2"],
                   ["mixamorig:Neck"], "mixamorig:Head"),
        "ue4": ("root", "pelvis", ["spine_01", "spine_02", "spine_03"], ["neck_01"], "head"),
        "ue5": ("root", "pelvis", ["spine_01", "spine_02", "spine_03", "spine_04", "spine_05"],
                ["neck_01", "neck_02"], "head"),
        "rigify": (None, "DEF-spine", ["DEF-spine.001", "DEF-spine.002", "DEF-spine.003"],
                   ["DEF-spine.004", "DEF-spine.005"], "DEF-spine.006"),
        "blender_metarig": (None, "spine", ["spine.001", "spine.002", "spine.003"], ["spine.004", "spine.005"],
                            "spine.006"),
        "3dsmax_biped": ("Bip01", "Bip01 Pelvis", ["Bip01 Spine", "Bip01 Spine1", "Bip01 Spine2"], ["Bip01 Neck"],
                         "Bip01 Head"),
        "humanik": ("Character1_Reference", "Character1_Hips",
                    ["Character1_Spine", "Character1_Spine1", "Character1_Spine2"], ["Character1_Neck"],
                    "Character1_Head"),
        "character_creator": ("RL_BoneRoot", "CC_Base_Hip", ["CC_Base_Waist", "CC_Base_Spine01", "CC_Base_Spine02"],
                              ["CC_Base_NeckTwist01", "CC_Base_NeckTwist02"], "CC_Base_Head"),
        "daz_genesis": (None, "hip", ["abdomenLower", "abdomenUpper", "chestLower", "chestUpper"],
                        ["neckLower", "neckUpper"], "head"),
        "vrm": ("Root", "J_Bip_C_Hips", ["J_Bip_C_Spine", "J_Bip_C_Chest", "J_Bip_C_UpperChest"], ["J_Bip_C_Neck"],
                "J_Bip_C_Head"),
        "unity_humanoid": (None, "Hips", ["Spine", "Chest", "UpperChest"], ["Neck"], "Head"),
        "cmu_asf": (None, "root", ["lowerback", "upperback", "thorax"], ["lowerneck", "upperneck"], "head"),
        "cmu": (None, "Hips", ["LowerBack", "Spine", "Spine1"], ["Neck", "Neck1"], "Head"),
        "bandai": ("joint_Root", "Hips", ["Spine", "Chest"], ["Neck"], "Head"),
    }
    return {"limbs": limbs.get(convention), "trunk": trunk.get(convention)}


CONVENTIONS = ["smpl", "mixamo", "ue4", "ue5", "rigify", "blender_metarig", "3dsmax_biped", "humanik",
               "character_creator", "daz_genesis", "vrm", "unity_humanoid", "cmu_asf", "cmu", "bandai"]


def _lerp(a, b, t):
    return np.asarray(a, float) * (1 - t) + np.asarray(b, float) * t


def make_rig(convention: str, pose: str = "T") -> Rig:
    """A rig of `convention` ('nameless' = Blender's Bone, Bone.001, ...)."""
    nameless = convention == "nameless"
    spec = _spec("mixamo" if nameless else convention)
    root, pelvis, spine, neck, head = spec["trunk"]
    body = {joint: np.array(position) for joint, position in BODY.items()}
    if pose == "A":
        for side, sign in (("left", 1.0), ("right", -1.0)):
            turn = Rotation.from_rotvec([0, 0, -sign * np.radians(40.0)])
            for joint in ("elbow", "wrist"):
                key = f"{side}_{joint}"
                body[key] = body[f"{side}_shoulder"] + turn.apply(body[key] - body[f"{side}_shoulder"])
    elif pose != "T":
        raise ValueError(pose)
    rig = Rig(convention)
    parent = None
    if root:
        parent = rig.add(root, None, (0.0, 0.0, 0.0))
    rig.add(pelvis, parent, body["pelvis"], "pelvis")
    legs_parent = pelvis
    if convention == "character_creator":
        legs_parent = rig.add("CC_Base_Pelvis", pelvis, body["pelvis"] + (0, -0.02, 0))
    elif convention == "daz_genesis":
        legs_parent = rig.add("pelvis", pelvis, body["pelvis"] + (0, -0.02, 0))
    # spine bones evenly on the pelvis -> neck line; the neck bones between neck and head
    chest = parent_of_spine = pelvis
    for i, name in enumerate(spine):
        role = {0: "spine1", len(spine) - 1: "spine3"}.get(i)
        if len(spine) >= 3 and i == len(spine) // 2:
            role = "spine2"
        rig.add(name, parent_of_spine, _lerp(body["pelvis"], body["neck"], (i + 1) / (len(spine) + 1)), role)
        parent_of_spine = chest = name
    previous = chest
    for i, name in enumerate(neck):
        rig.add(name, previous, _lerp(body["neck"], body["head"], i / len(neck)), "neck" if i == 0 else None)
        previous = name
    rig.add(head, previous, body["head"], "head")
    if convention == "3dsmax_biped":
        legs_parent = spine[0]  # Biped hangs the thighs from Spine, the clavicles from Neck
    for side, big, small, word in SIDES:
        names = [template.format(S=big, s=small, Side=word) for template in spec["limbs"]]
        thigh, shin, foot, toe, clavicle, upperarm, forearm, hand = names
        leg_top = legs_parent
        if convention in ("cmu", "cmu_asf"):
            leg_top = rig.add(f"{big}HipJoint" if convention == "cmu" else f"{small}hipjoint", legs_parent,
                              body["pelvis"])
        rig.add(thigh, leg_top, body[f"{side}_hip"], f"{side}_hip")
        above_shin = thigh
        if convention == "daz_genesis":
            above_shin = rig.add(f"{small}ThighTwist", thigh, _lerp(body[f"{side}_hip"], body[f"{side}_knee"], 0.3))
        elif convention == "rigify":
            above_shin = rig.add(f"{thigh}.001", thigh, _lerp(body[f"{side}_hip"], body[f"{side}_knee"], 0.5))
        rig.add(shin, above_shin, body[f"{side}_knee"], f"{side}_knee")
        above_foot = shin
        if convention == "rigify":
            above_foot = rig.add(f"{shin}.001", shin, _lerp(body[f"{side}_knee"], body[f"{side}_ankle"], 0.5))
        rig.add(foot, above_foot, body[f"{side}_ankle"], f"{side}_ankle")
        above_toe = foot
        if convention == "daz_genesis":
            above_toe = rig.add(f"{small}Metatarsals", foot, _lerp(body[f"{side}_ankle"], body[f"{side}_foot"], 0.6))
        rig.add(toe, above_toe, body[f"{side}_foot"], f"{side}_foot")
        collar_parent = neck[0] if convention == "3dsmax_biped" else chest
        rig.add(clavicle, collar_parent, body[f"{side}_collar"], f"{side}_collar")
        rig.add(upperarm, clavicle, body[f"{side}_shoulder"], f"{side}_shoulder", side)
        above_forearm = upperarm
        if convention == "daz_genesis":
            above_forearm = rig.add(f"{small}ShldrTwist", upperarm,
                                    _lerp(body[f"{side}_shoulder"], body[f"{side}_elbow"], 0.4), None, side)
        elif convention == "rigify":
            above_forearm = rig.add(f"{upperarm}.001", upperarm,
                                    _lerp(body[f"{side}_shoulder"], body[f"{side}_elbow"], 0.5), None, side)
        rig.add(forearm, above_forearm, body[f"{side}_elbow"], f"{side}_elbow", side)
        above_hand = forearm
        if convention == "daz_genesis":
            above_hand = rig.add(f"{small}ForearmTwist", forearm,
                                 _lerp(body[f"{side}_elbow"], body[f"{side}_wrist"], 0.4), None, side)
        elif convention == "rigify":
            above_hand = rig.add(f"{forearm}.001", forearm,
                                 _lerp(body[f"{side}_elbow"], body[f"{side}_wrist"], 0.5), None, side)
        rig.add(hand, above_hand, body[f"{side}_wrist"], f"{side}_wrist", side)
        _extras(rig, convention, side, big, small, word, names, body)
    if nameless:
        order = _depth_first(rig)
        renamed = {rig.bones[i].name: ("Bone" if k == 0 else f"Bone.{k:03d}") for k, i in enumerate(order)}
        for bone in rig.bones:
            bone.name = renamed[bone.name]
    return rig


def _extras(rig: Rig, convention, side, big, small, word, names, body) -> None:
    """Helpers each convention carries: twist/roll leaves, fingers, hands below wrists, end bones."""
    thigh, shin, foot, toe, clavicle, upperarm, forearm, hand = names
    wrist = body[f"{side}_wrist"]
    direction = (wrist - body[f"{side}_elbow"]) / np.linalg.norm(wrist - body[f"{side}_elbow"])
    if convention == "smpl":
        rig.add(f"{big}_Hand", hand, wrist + 0.08 * direction, None, side)
    if convention == "cmu_asf":
        lhand = rig.add(f"{small}hand", hand, wrist + 0.03 * direction, None, side)
        rig.add(f"{small}fingers", lhand, wrist + 0.09 * direction, None, side)
        rig.add(f"{small}thumb", lhand, wrist + 0.05 * direction + (0, 0, 0.03), None, side)
    if convention in ("mixamo", "nameless", "character_creator", "3dsmax_biped", "rigify", "vrm"):
        for finger, spread in (("Thumb", 0.03), ("Index", 0.015), ("Middle", 0.0), ("Ring", -0.015), ("Pinky", -0.03)):
            finger_name = {"mixamo": f"mixamorig:{word}Hand{finger}", "nameless": f"mixamorig:{word}Hand{finger}",
                           "character_creator": f"CC_Base_{big}_{finger}", "3dsmax_biped": f"Bip01 {big} Finger",
                           "rigify": f"DEF-f_{finger.lower()}", "vrm": f"J_Bip_{big}_{finger}"}[convention]
            previous = hand
            for segment in range(1, 4):
                suffix = {"3dsmax_biped": f"{'TIMRP'.index(finger[0])}{segment - 1 or ''}",
                          "rigify": f".0{segment}.{big}"}.get(convention, str(segment))
                position = wrist + (0.08 + 0.025 * segment) * direction + (0, 0, spread)
                previous = rig.add(f"{finger_name}{suffix}", previous, position, None, side)
    if convention in ("ue4", "ue5"):
        rig.add(f"upperarm_twist_01_{small}", upperarm, _lerp(body[f"{side}_shoulder"], body[f"{side}_elbow"], 0.5),
                None, side)
        rig.add(f"thigh_twist_01_{small}", thigh, _lerp(body[f"{side}_hip"], body[f"{side}_knee"], 0.5))
        if side == "left":
            rig.add("ik_foot_root", "root", (0, 0, 0))
            rig.add("ik_hand_root", "root", (0, 0, 0))
        rig.add(f"ik_foot_{small}", "ik_foot_root", body[f"{side}_ankle"])
        rig.add(f"ik_hand_{small}", "ik_hand_root", wrist)
    if convention == "humanik":
        rig.add(f"Character1_{word}UpLegRoll", thigh, _lerp(body[f"{side}_hip"], body[f"{side}_knee"], 0.5))
        rig.add(f"Character1_{word}ArmRoll", upperarm, _lerp(body[f"{side}_shoulder"], body[f"{side}_elbow"], 0.5),
                None, side)
    if convention == "character_creator":
        rig.add(f"CC_Base_{big}_UpperarmTwist01", upperarm, body[f"{side}_shoulder"], None, side)
        rig.add(f"CC_Base_{big}_CalfTwist01", shin, body[f"{side}_knee"])
        chest = rig.bones[rig.bones[rig.index(clavicle)].parent].name
        rig.add(f"CC_Base_{big}_RibsTwist", chest, body[f"{side}_collar"] + (0, -0.1, 0.05))
    if convention == "blender_metarig":
        rig.add(f"heel.02.{big}", foot, body[f"{side}_ankle"] + (0, -0.07, -0.02))
        rig.add(f"pelvis.{big}", "spine", body["pelvis"] + (0.1 if side == "left" else -0.1, 0.05, 0.05))
        rig.add(f"breast.{big}", "spine.003", body[f"{side}_collar"] + (0.07 if side == "left" else -0.07, -0.2, 0.1))
    if convention == "vrm" and side == "left":
        rig.add("J_Sec_Hair1_01", "J_Bip_C_Head", body["head"] + (0, 0.15, -0.05))
        rig.add("J_Adj_L_FaceEye", "J_Bip_C_Head", body["head"] + (0.03, 0.05, 0.08))
    if convention == "mixamo" and side == "left":
        rig.add("mixamorig:HeadTop_End", "mixamorig:Head", body["head"] + (0, 0.18, 0))


def _depth_first(rig: Rig) -> list[int]:
    order = []

    def visit(i):
        order.append(i)
        for j, bone in enumerate(rig.bones):
            if bone.parent == i:
                visit(j)
    for i, bone in enumerate(rig.bones):
        if bone.parent < 0:
            visit(i)
    return order


# ---------------------------------------------------------------- motion

def base_motion(frames: int = 40, seed: int = 0) -> dict:
    """Per SMPL joint a world rotation (T, 3, 3) (rest = the T-pose of BODY) and the pelvis
    path (T, 3). Spine rigid (the pelvis turns the trunk), limbs and neck move."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / 30.0

    def wave(amplitude_deg, axis):
        phase, speed = rng.uniform(0, 2 * np.pi), rng.uniform(1.0, 3.0)
        angle = np.radians(amplitude_deg) * np.sin(speed * 2 * np.pi * t / 2 + phase)
        return Rotation.from_rotvec(np.outer(angle, axis))

    local = {"pelvis": Rotation.from_rotvec(np.outer(np.radians(np.linspace(0, 60, frames)), [0, 1, 0]))
             * wave(10, [1, 0, 0])}
    for side in ("left", "right"):
        local[f"{side}_hip"] = wave(40, [1, 0, 0]) * wave(15, [0, 0, 1])
        local[f"{side}_knee"] = Rotation.from_rotvec(np.outer(np.radians(35 + 30 * np.sin(3 * t + (side == "left"))),
                                                              [1, 0, 0]))
        local[f"{side}_ankle"] = wave(20, [1, 0, 0])
        local[f"{side}_collar"] = wave(10, [0, 0, 1])
        local[f"{side}_shoulder"] = wave(50, [0, 0, 1]) * wave(30, [0, 1, 0])
        local[f"{side}_elbow"] = Rotation.from_rotvec(np.outer(np.radians(40 + 35 * np.sin(2 * t)),
                                                               [0, 1 if side == "left" else -1, 0]))
        local[f"{side}_wrist"] = wave(20, [0, 0, 1])
    local["neck"] = wave(20, [1, 0, 0])
    local["head"] = wave(15, [0, 1, 0])
    parents = {"left_hip": "pelvis", "right_hip": "pelvis", "left_knee": "left_hip", "right_knee": "right_hip",
               "left_ankle": "left_knee", "right_ankle": "right_knee", "neck": "pelvis", "head": "neck",
               "left_collar": "pelvis", "right_collar": "pelvis", "left_shoulder": "left_collar",
               "right_shoulder": "right_collar", "left_elbow": "left_shoulder", "right_elbow": "right_shoulder",
               "left_wrist": "left_elbow", "right_wrist": "right_elbow"}
    world = {"pelvis": local["pelvis"]}
    for joint, parent in parents.items():  # parents listed first
        world[joint] = world[parent] * local[joint]
    for side in ("left", "right"):
        world[f"{side}_foot"] = world[f"{side}_ankle"]  # toes stay straight
    path = np.column_stack([0.3 * np.sin(t), 0.02 * np.sin(6 * t), 0.8 * t])
    return {"world": {joint: rotation.as_matrix() for joint, rotation in world.items()}, "path": path,
            "frames": frames}


def _governing_joint(rig: Rig, index: int) -> str:
    """The SMPL joint whose rotation a bone follows: its own role, else its nearest
    ancestor's (spine bones and extras of the trunk follow the pelvis)."""
    while index >= 0:
        role = rig.bones[index].role
        if role and not role.startswith("spine"):
            return role
        index = rig.bones[index].parent
    return "pelvis"


def world_rotations(rig: Rig, motion: dict, pose: str) -> list[np.ndarray]:
    """(T, 3, 3) world rotation per bone, relative to the rig's own rest pose."""
    out = []
    for index, bone in enumerate(rig.bones):
        rotation = motion["world"][_governing_joint(rig, index)] if index >= 0 else None
        if bone.parent < 0 and bone.role is None:  # a floor root: does not move
            rotation = np.broadcast_to(np.eye(3), (motion["frames"], 3, 3))
        if pose == "A" and bone.arm_side:
            sign = 1.0 if bone.arm_side == "left" else -1.0
            a_turn = Rotation.from_rotvec([0, 0, -sign * np.radians(40.0)]).as_matrix()
            rotation = rotation @ a_turn.T  # undo the A-pose, then the T-pose motion
        out.append(np.asarray(rotation))
    return out


Z_UP = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # Y-up (x, y, z) -> Z-up (x, -z, y)


def bvh_text(rig: Rig, motion: dict, pose: str = "T", scale: float = 1.0, z_up: bool = False,
             frame_time: float = 1 / 30) -> str:
    """The rig animated by `motion`, as BVH (ZXY Euler channels, positions on the root)."""
    axes = Z_UP if z_up else np.eye(3)
    world = [axes @ w @ axes.T for w in world_rotations(rig, motion, pose)]
    local = []
    for index, bone in enumerate(rig.bones):
        local.append(world[index] if bone.parent < 0 else np.swapaxes(world[bone.parent], -1, -2) @ world[index])
    heads = [axes @ bone.head * scale for bone in rig.bones]
    order = _depth_first(rig)
    children = {i: [j for j in order if rig.bones[j].parent == i] for i in order}
    lines = ["HIERARCHY"]
    columns = []
    pelvis = next(i for i, bone in enumerate(rig.bones) if bone.role == "pelvis")

    def emit(i, depth):
        bone = rig.bones[i]
        pad = "  " * depth
        offset = heads[i] - (heads[bone.parent] if bone.parent >= 0 else 0)
        lines.append(f"{pad}{'ROOT' if bone.parent < 0 else 'JOINT'} {bone.name}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {offset[0]:.6f} {offset[1]:.6f} {offset[2]:.6f}")
        if bone.parent < 0 or i == pelvis:
            lines.append(f"{pad}  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation")
            columns.append(("pos", i))
        else:
            lines.append(f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation")
        columns.append(("rot", i))
        for child in children[i]:
            emit(child, depth + 1)
        if not children[i]:
            lines.extend([f"{pad}  End Site", pad + "  {", f"{pad}    OFFSET 0.0 {0.05 * scale:.6f} 0.0", pad + "  }"])
        lines.append(pad + "}")

    for i in order:
        if rig.bones[i].parent < 0:
            emit(i, 0)
            break
    frames = motion["frames"]
    data = []
    for kind, i in columns:
        bone = rig.bones[i]
        if kind == "pos":
            if i == pelvis:
                local_offset = heads[i] - (heads[bone.parent] if bone.parent >= 0 else 0)
                moved = np.asarray(motion["path"]) @ axes.T * scale + local_offset
                data.append(moved)
            else:
                data.append(np.tile(heads[i], (frames, 1)))
        else:
            data.append(Rotation.from_matrix(local[i]).as_euler("ZXY", degrees=True))
    values = np.concatenate(data, axis=1)
    lines += ["MOTION", f"Frames: {frames}", f"Frame Time: {frame_time}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in values]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- Blender armatures

def build_armature(rig: Rig, name: str, scale: float = 1.0, y_up: bool = False, roll_seed: int | None = None):
    """The rig as a Blender armature object (real bpy). y_up: the bones in Y-up armature
    space under a 90 degree X object rotation (as an FBX import from a Y-up tool)."""
    import math

    import bpy
    from mathutils import Vector

    heads = [bone.head if y_up else Z_UP @ bone.head for bone in rig.bones]
    armature = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, armature)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    rng = np.random.default_rng(roll_seed) if roll_seed is not None else None
    order = _depth_first(rig)
    children = {i: [j for j in order if rig.bones[j].parent == i] for i in order}
    up = np.array([0.0, 1.0, 0.0]) if y_up else np.array([0.0, 0.0, 1.0])
    for i in order:
        bone = rig.bones[i]
        edit = armature.edit_bones.new(bone.name)
        head = heads[i]
        kids = children[i]
        if kids:
            main = max(kids, key=lambda k: (_subtree_size(children, k), -k))
            tail = heads[main]
        else:
            along = head - heads[bone.parent] if bone.parent >= 0 else up
            tail = head + 0.05 * along / max(np.linalg.norm(along), 1e-9)
        if np.linalg.norm(tail - head) < 1e-4:
            tail = head + 0.05 * up
        edit.head, edit.tail = Vector(head), Vector(tail)
        if bone.parent >= 0:
            edit.parent = armature.edit_bones[rig.bones[bone.parent].name]
        if rng is not None:
            edit.roll = float(rng.uniform(-math.pi, math.pi))
    bpy.ops.object.mode_set(mode="OBJECT")
    if y_up:
        obj.rotation_euler = (math.pi / 2, 0.0, 0.0)
    obj.scale = (scale, scale, scale)
    bpy.context.view_layer.update()
    return obj


def _subtree_size(children, index) -> int:
    return 1 + sum(_subtree_size(children, k) for k in children[index])
