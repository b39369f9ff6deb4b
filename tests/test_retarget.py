"""Retargeting SMPL-22 positions onto armatures, in the real bpy 5.0.1 module (headless).

Sources: a forward-kinematics motion made here (random smooth joint rotations, walking
and turning), a synthetic library motion, and a real Bandai-Namco BVH clip. Targets: an
SMPL-named T-pose rig, and a Mixamo-named A-pose rig with random bone rolls, 0.8 object
scale and a Y-up armature under a 90 degree X object rotation (like a Mixamo import).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from blender_addon import bonemap, keyframes, retarget  # noqa: E402
from blender_addon import retarget_solver as solver  # noqa: E402
from blender_addon.errors import BoneMapError, RetargetError  # noqa: E402
from blender_addon.rigs import make_humanoid_rig  # noqa: E402
from fk_motion import fk_motion  # noqa: E402

BANDAI = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "bandai-namco"
MAX_ANGLE = 3.0  # degrees

@pytest.fixture
def scene():
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps = 30
    scene.frame_start = 1
    return scene


def smpl_rig():
    return make_humanoid_rig("SMPL", naming="SMPL", pose="T")


def mixamo_rig(fingers=False):
    return make_humanoid_rig("Mixamo", naming="MIXAMO", pose="A", roll_seed=7, scale=0.8, y_up=True,
                             fingers=fingers)


def expected_positions(positions, fps, scene):
    """The source as the rig should follow it: resampled, Z-up, facing -Y at frame 0."""
    target_fps = scene.render.fps / scene.render.fps_base
    return solver.face_forward(solver.to_blender_axes(solver.resample(positions, fps, target_fps)))


def direction_errors(obj, bone_map, expected, start):
    """Per frame and bone, the angle (degrees) between the rig's world bone direction
    (head -> head of the bone mapped to the child joint) and the source's."""
    scene = bpy.context.scene
    pairs = [(j, c) for j, c in solver.PRIMARY_CHILD.items() if j in bone_map and c in bone_map]
    errors = np.zeros((len(expected), len(pairs)))
    for frame in range(len(expected)):
        scene.frame_set(start + frame)
        matrix = obj.matrix_world
        for column, (joint, child) in enumerate(pairs):
            rig = np.array(matrix @ obj.pose.bones[bone_map[child]].head - matrix @ obj.pose.bones[bone_map[joint]].head)
            src = expected[frame, bonemap.JOINT_INDEX[child]] - expected[frame, bonemap.JOINT_INDEX[joint]]
            cosine = rig @ src / np.linalg.norm(rig) / np.linalg.norm(src)
            errors[frame, column] = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    return errors


def world_head(obj, bone_name):
    return np.array(obj.matrix_world @ obj.pose.bones[bone_name].head)


@pytest.mark.parametrize("make_rig", [smpl_rig, mixamo_rig], ids=["smpl-T", "mixamo-A-rolled-scaled-yup"])
def test_bone_directions_follow_the_source_on_every_frame(scene, make_rig):
    rig = make_rig()
    positions = fk_motion(frames=40, seed=1)
    action = retarget.apply_motion(rig, positions, 20.0, "fk walk")
    bone_map = retarget.resolve_bone_map(rig, None)
    assert len(bone_map) == 22
    expected = expected_positions(positions, 20.0, scene)
    errors = direction_errors(rig, bone_map, expected, scene.frame_start)
    assert errors.shape[1] == 17  # every non-leaf joint
    assert errors.max() < MAX_ANGLE, f"worst bone direction error {errors.max():.2f} deg"
    assert tuple(action.frame_range) == (1.0, 60.0)  # 40 frames at 20 fps = 2 s = 60 frames at 30 fps


def test_hip_path_is_scaled_by_the_leg_ratio(scene):
    rig = mixamo_rig()
    positions = fk_motion(frames=41, seed=2)
    retarget.apply_motion(rig, positions, 20.0, "walk")
    bone_map = retarget.resolve_bone_map(rig, None)
    expected = expected_positions(positions, 20.0, scene)
    ratio = solver.target_leg_length(retarget.read_rig(rig), bone_map) / solver.leg_length(expected)
    assert 0.7 < ratio < 0.95  # the 0.8-scaled rig is smaller than the source
    path = []
    for frame in range(len(expected)):
        scene.frame_set(1 + frame)
        path.append(world_head(rig, bone_map["pelvis"]))
    path = np.array(path)
    source = expected[:, 0]
    np.testing.assert_allclose(path[:, :2] - path[0, :2], ratio * (source[:, :2] - source[0, :2]), atol=1e-4)
    np.testing.assert_allclose(np.diff(path[:, 2]), ratio * np.diff(source[:, 2]), atol=1e-4)


def test_in_place_keeps_the_hips_over_their_start(scene):
    rig = smpl_rig()
    start = world_head(rig, "Pelvis")
    retarget.apply_motion(rig, fk_motion(frames=30, seed=3), 20.0, "walk", root_motion="in_place")
    heights = []
    for frame in (1, 20, 40):
        scene.frame_set(frame)
        head = world_head(rig, "Pelvis")
        np.testing.assert_allclose(head[:2], start[:2], atol=1e-5)
        heights.append(head[2])
    assert np.ptp(heights) > 1e-4  # the vertical bounce stays


def test_manual_scale_and_start_frame(scene):
    rig = smpl_rig()
    positions = fk_motion(frames=20, seed=4)
    action = retarget.apply_motion(rig, positions, 20.0, "walk", scale=2.0, start_frame=101)
    assert tuple(action.frame_range) == (101.0, 130.0)
    expected = expected_positions(positions, 20.0, scene)
    scene.frame_set(101)
    first = world_head(rig, "Pelvis")
    scene.frame_set(130)
    last = world_head(rig, "Pelvis")
    np.testing.assert_allclose(last[:2] - first[:2], 2.0 * (expected[-1, 0, :2] - expected[0, 0, :2]), atol=1e-4)


def test_rig_facing_and_location_are_respected(scene):
    rig = smpl_rig()
    rig.rotation_euler = (0.0, 0.0, np.pi / 2)  # the character faces +X
    rig.location = (3.0, -2.0, 0.0)
    bpy.context.view_layer.update()
    positions = fk_motion(frames=21, seed=5)
    retarget.apply_motion(rig, positions, 20.0, "walk")
    scene.frame_set(1)
    hips = world_head(rig, "L_Hip") - world_head(rig, "R_Hip")
    rest_hips = np.array(rig.matrix_world.to_3x3() @ (rig.data.bones["L_Hip"].head_local - rig.data.bones["R_Hip"].head_local))
    cosine = hips[:2] @ rest_hips[:2] / np.linalg.norm(hips[:2]) / np.linalg.norm(rest_hips[:2])
    assert cosine > 0.95  # frame 0 faces the way the rig faces
    pelvis = world_head(rig, "Pelvis")
    np.testing.assert_allclose(pelvis[:2], np.array(rig.matrix_world @ rig.data.bones["Pelvis"].head_local)[:2], atol=1e-4)


def test_rotation_modes_are_kept_and_keyed_in_their_own_channels(scene):
    rig = mixamo_rig()
    rig.pose.bones["mixamorig:LeftArm"].rotation_mode = "XYZ"
    rig.pose.bones["mixamorig:RightUpLeg"].rotation_mode = "ZXY"
    rig.pose.bones["mixamorig:Spine1"].rotation_mode = "AXIS_ANGLE"
    positions = fk_motion(frames=31, seed=6)
    action = retarget.apply_motion(rig, positions, 20.0, "modes")
    assert rig.pose.bones["mixamorig:LeftArm"].rotation_mode == "XYZ"
    assert rig.pose.bones["mixamorig:RightUpLeg"].rotation_mode == "ZXY"
    assert rig.pose.bones["mixamorig:Spine1"].rotation_mode == "AXIS_ANGLE"
    channelbag = keyframes.channelbag_of(rig)
    paths = {fc.data_path for fc in channelbag.fcurves}
    assert 'pose.bones["mixamorig:LeftArm"].rotation_euler' in paths
    assert 'pose.bones["mixamorig:Spine1"].rotation_axis_angle' in paths
    assert 'pose.bones["mixamorig:LeftArm"].rotation_quaternion' not in paths
    bone_map = retarget.resolve_bone_map(rig, None)
    errors = direction_errors(rig, bone_map, expected_positions(positions, 20.0, scene), 1)
    assert errors.max() < MAX_ANGLE
    assert action.name.startswith("T2M modes")


def test_quaternion_keys_are_continuous(scene):
    rig = smpl_rig()
    retarget.apply_motion(rig, fk_motion(frames=80, seed=8, amplitude=1.5), 20.0, "wild")
    channelbag = keyframes.channelbag_of(rig)
    for bone in rig.pose.bones:
        curves = [channelbag.fcurves.find(keyframes.pose_bone_path(bone.name, "rotation_quaternion"), index=i)
                  for i in range(4)]
        values = []
        for curve in curves:
            co = np.zeros(2 * len(curve.keyframe_points), dtype=np.float32)
            curve.keyframe_points.foreach_get("co", co)
            values.append(co[1::2])
        quaternions = np.stack(values, axis=1)
        assert np.all(np.sum(quaternions[1:] * quaternions[:-1], axis=1) > 0), bone.name


def test_existing_action_survives_unchanged(scene):
    rig = smpl_rig()
    rig.pose.bones["L_Knee"].rotation_quaternion = (0.9, 0.3, 0.0, 0.0)
    rig.keyframe_insert('pose.bones["L_Knee"].rotation_quaternion', frame=5)
    original = rig.animation_data.action
    original_name = original.name
    before = [(fc.data_path, fc.array_index, tuple(k.co)) for fc in keyframes.channelbag_of(rig).fcurves
              for k in fc.keyframe_points]
    action = retarget.apply_motion(rig, fk_motion(frames=21, seed=9), 20.0, "new one")
    assert rig.animation_data.action == action != original
    kept = bpy.data.actions[original_name]
    assert kept.use_fake_user
    from blender_addon import compat
    channelbag = compat.first_channelbag(kept)  # 4.2: the action itself; 4.4+: its slot's channelbag
    after = [(fc.data_path, fc.array_index, tuple(k.co)) for fc in channelbag.fcurves for k in fc.keyframe_points]
    assert after == before


def test_sixty_five_bone_rig_keys_only_the_body(scene):
    rig = mixamo_rig(fingers=True)
    assert len(rig.data.bones) == 65
    action = retarget.apply_motion(rig, fk_motion(frames=21, seed=10), 20.0, "fingers")
    keyed = {fc.data_path.split('"')[1] for fc in keyframes.channelbag_of(rig).fcurves}
    assert keyed == set(retarget.resolve_bone_map(rig, None).values())
    assert action.get("t2m_scale") > 0


def test_synthetic_and_bandai_motions(scene):
    from inference_server.data import load_file
    from inference_server.data.synthetic import make_item

    clips = [make_item(3).motion]
    bvh = sorted((BANDAI / "dataset-2-subset" / "data").glob("*.bvh"))
    if bvh:
        clips.append(load_file(bvh[0]).motion)
    for motion in clips:
        rig = mixamo_rig()
        retarget.apply_motion(rig, motion.positions, motion.fps, "real")
        bone_map = retarget.resolve_bone_map(rig, None)
        expected = expected_positions(motion.positions, motion.fps, scene)
        errors = direction_errors(rig, bone_map, expected, 1)
        assert errors.max() < MAX_ANGLE
        bpy.data.objects.remove(rig)


def test_read_positions_gives_the_motion_back(scene):
    rig = mixamo_rig()
    positions = fk_motion(frames=40, seed=11)
    action = retarget.apply_motion(rig, positions, 20.0, "there and back")
    bone_map = retarget.resolve_bone_map(rig, None)
    first, last = (int(v) for v in action.frame_range)
    back = retarget.read_positions(rig, bone_map, first, last)
    assert back.shape == (60, 22, 3) and back.dtype == np.float32
    assert solver.leg_length(back) == pytest.approx(solver.SMPL_LEG_LENGTH, rel=1e-3)
    # Y-up again, facing +Z at frame 0 like the source after its turn: same bone directions.
    expected = expected_positions(positions, 20.0, scene) @ solver.Y_UP_TO_Z_UP
    for joint, child in solver.PRIMARY_CHILD.items():
        a = back[:, bonemap.JOINT_INDEX[child]] - back[:, bonemap.JOINT_INDEX[joint]]
        b = expected[:, bonemap.JOINT_INDEX[child]] - expected[:, bonemap.JOINT_INDEX[joint]]
        cosine = np.sum(a * b, axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        assert np.degrees(np.arccos(np.clip(cosine, -1, 1))).max() < MAX_ANGLE, joint
    assert scene.frame_current == 1  # the frame is put back


def test_bad_inputs_are_refused_with_a_reason(scene):
    rig = smpl_rig()
    with pytest.raises(RetargetError, match="shape"):
        retarget.apply_motion(rig, np.zeros((10, 21, 3)), 20.0, "x")
    with pytest.raises(RetargetError, match="NaN"):
        retarget.apply_motion(rig, np.full((10, 22, 3), np.nan), 20.0, "x")
    with pytest.raises(RetargetError, match="root_motion"):
        retarget.apply_motion(rig, fk_motion(5), 20.0, "x", root_motion="sideways")
    mesh = bpy.data.objects.new("NotARig", None)
    with pytest.raises(RetargetError, match="not an armature"):
        retarget.apply_motion(mesh, fk_motion(5), 20.0, "x")
    for bone in rig.data.bones:
        bone.name = f"Bone{bone.name[-3:]}"
    # meaningless names still map from the topology and rest pose (bridge/skeleton_map.py) ...
    assert len(retarget.resolve_bone_map(rig, None)) == 22
    # ... but a rig without arms and legs cannot
    stick = bpy.data.objects.new("Stick", bpy.data.armatures.new("Stick"))
    bpy.context.scene.collection.objects.link(stick)
    bpy.context.view_layer.objects.active = stick
    bpy.ops.object.mode_set(mode="EDIT")
    for index in range(3):
        edit = stick.data.edit_bones.new(f"Bone.{index:03d}")
        edit.head, edit.tail = (0, 0, index), (0, 0, index + 1)
    bpy.ops.object.mode_set(mode="OBJECT")
    with pytest.raises(BoneMapError, match="no bone found"):
        retarget.apply_motion(stick, fk_motion(5), 20.0, "x")
