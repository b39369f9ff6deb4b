"""BVH: parser, forward kinematics, rig maps, units / up axis, canonical placement, errors."""
import re
from pathlib import Path

import numpy as np
import pytest

from inference_server.data import load_file, load_spec
from inference_server.data.bvh import normalise_joint_name, parse_bvh, read_smpl22, smpl22_map
from inference_server.data.kinematics import euler_to_quat, facing_angle
from inference_server.errors import DataError
from inference_server.motion import SMPL22_JOINTS

J = {name: i for i, name in enumerate(SMPL22_JOINTS)}
ROOT_CHANNELS = "Xposition Yposition Zposition Zrotation Xrotation Yrotation"


def cmu_like_joints(prefix: str = "", names: dict | None = None):
    """A Z-up, centimetre T-pose skeleton facing -Y (the body's left on +X), CMU names.

    Returns [(name, parent name, offset, channels or None for an End Site)].
    """
    names = names or {}
    n = lambda name: prefix + names.get(name, name)  # noqa: E731
    joints = [(n("Hips"), None, (0, 0, 0), ROOT_CHANNELS)]
    for side, x in (("Left", 1), ("Right", -1)):
        joints += [
            (n(f"{side}UpLeg"), n("Hips"), (10 * x, 0, -8), "Zrotation Xrotation Yrotation"),
            (n(f"{side}Leg"), n(f"{side}UpLeg"), (0, 0, -42), "Zrotation Xrotation Yrotation"),
            (n(f"{side}Foot"), n(f"{side}Leg"), (0, 0, -42), "Xrotation Yrotation Zrotation"),
            (n(f"{side}ToeBase"), n(f"{side}Foot"), (0, -12, -6), "Zrotation Xrotation Yrotation"),
            (n(f"{side}ToeBase") + "_end", n(f"{side}ToeBase"), (0, -4, 0), None),
        ]
    joints += [
        (n("LowerBack"), n("Hips"), (0, 0, 10), "Xposition Yposition Zposition Zrotation Xrotation Yrotation"),
        (n("Spine"), n("LowerBack"), (0, 0, 12), "Zrotation Xrotation Yrotation"),
        (n("Spine1"), n("Spine"), (0, 0, 12), "Zrotation Xrotation Yrotation"),
        (n("Neck"), n("Spine1"), (0, 0, 16), "Zrotation Xrotation Yrotation"),
        (n("Head"), n("Neck"), (0, 0, 11), "Zrotation Xrotation Yrotation"),
        (n("Head") + "_end", n("Head"), (0, 0, 15), None),
    ]
    for side, x in (("Left", 1), ("Right", -1)):
        joints += [
            (n(f"{side}Shoulder"), n("Spine1"), (3 * x, 0, 14), "Zrotation Xrotation Yrotation"),
            (n(f"{side}Arm"), n(f"{side}Shoulder"), (14 * x, 0, 0), "Zrotation Xrotation Yrotation"),
            (n(f"{side}ForeArm"), n(f"{side}Arm"), (27 * x, 0, 0), "Zrotation Xrotation Yrotation"),
            (n(f"{side}Hand"), n(f"{side}ForeArm"), (25 * x, 0, 0), "Zrotation Xrotation Yrotation"),
            (n(f"{side}Hand") + "_end", n(f"{side}Hand"), (8 * x, 0, 0), None),
        ]
    return joints


def bvh_text(joints, frames: np.ndarray, frame_time: float = 1 / 30) -> str:
    """Write a hierarchy (parents listed before children) and frame rows as BVH text."""
    children = {}
    for name, parent, _, _ in joints:
        children.setdefault(parent, []).append(name)
    info = {name: (offset, channels) for name, _, offset, channels in joints}
    lines = ["HIERARCHY"]

    def emit(name, depth, root=False):
        offset, channels = info[name]
        pad = "  " * depth
        head = "ROOT" if root else "JOINT"
        lines.append(f"{pad}{'End Site' if channels is None else head + ' ' + name}")
        lines.append(pad + "{")
        lines.append(f"{pad}  OFFSET {offset[0]} {offset[1]} {offset[2]}")
        if channels is not None:
            lines.append(f"{pad}  CHANNELS {len(channels.split())} {channels}")
        for child in children.get(name, []):
            emit(child, depth + 1)
        lines.append(pad + "}")

    emit(children[None][0], 0, root=True)
    lines += ["MOTION", f"Frames: {len(frames)}", f"Frame Time: {frame_time}"]
    lines += [" ".join(f"{v:.6f}" for v in row) for row in frames]
    return "\n".join(lines) + "\n"


def rest_frames(joints, count: int) -> np.ndarray:
    """Zero rotations; position channels hold the offsets (root at 92 cm height)."""
    row = []
    for _, _, offset, channels in joints:
        if channels is None:
            continue
        for channel in channels.split():
            if channel.endswith("position"):
                row.append(offset["XYZ".index(channel[0])] if channel != "Zposition" or row else 92.0)
            else:
                row.append(0.0)
    return np.tile(np.array(row, dtype=float), (count, 1))


def channel_column(joints, joint: str, channel: str) -> int:
    column = 0
    for name, _, _, channels in joints:
        if channels is None:
            continue
        for candidate in channels.split():
            if name == joint and candidate == channel:
                return column
            column += 1
    raise KeyError((joint, channel))


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def walking_cmu(tmp_path):
    """A Z-up cm clip: turned 30 degrees about the up axis, walking 1 m along its facing."""
    joints = cmu_like_joints()
    frames = rest_frames(joints, 31)
    yaw = 30.0
    frames[:, channel_column(joints, "Hips", "Zrotation")] = yaw
    facing = np.array([np.sin(np.radians(yaw)), -np.cos(np.radians(yaw))])  # -Y turned by +30 deg about Z
    steps = np.linspace(0, 100, 31)
    frames[:, 0] = steps * facing[0]
    frames[:, 1] = steps * facing[1]
    # raise the left arm straight up: -90 degrees about Y turns +X into +Z
    frames[:, channel_column(joints, "LeftArm", "Yrotation")] = -90.0
    return write(tmp_path, "walk.bvh", bvh_text(joints, frames)), joints, frames


def test_euler_order_matches_scipy_intrinsic_rotations():
    rotation = pytest.importorskip("scipy.spatial.transform").Rotation
    angles = np.array([[30.0, -50.0, 70.0], [5.0, 80.0, -120.0]])
    for order in ("ZXY", "XYZ", "YZX"):
        q = euler_to_quat(angles, order)
        expected = rotation.from_euler(order, angles, degrees=True).as_quat()  # x, y, z, w
        np.testing.assert_allclose(np.abs(np.sum(q[:, [1, 2, 3, 0]] * expected, axis=1)), 1.0, atol=1e-9)


def test_cmu_clip_is_converted_to_canonical_placement(walking_cmu):
    path, _, _ = walking_cmu
    motion, rig = read_smpl22(path)
    p = motion.positions
    assert rig == "cmu"
    assert motion.fps == 30.0 and p.shape == (31, 22, 3)
    assert 0.9 < p[0, J["pelvis"], 1] < 1.05  # 92 cm + the toes below the ankles, in metres
    assert abs(np.degrees(facing_angle(p[0]))) < 1.0
    assert p[0, J["left_hip"], 0] > 0.05 > -0.05 > p[0, J["right_hip"], 0]
    assert abs(p[:, [J["left_foot"], J["right_foot"]], 1].min()) < 1e-5
    np.testing.assert_allclose(p[-1, J["pelvis"]] - p[0, J["pelvis"]], [0, 0, 1.0], atol=1e-4)  # walked forward
    # the raised left arm: wrist 52 cm straight above the shoulder, the right arm still sideways
    np.testing.assert_allclose(p[0, J["left_wrist"]] - p[0, J["left_shoulder"]], [0, 0.52, 0], atol=1e-4)
    assert p[0, J["right_wrist"], 0] < p[0, J["right_shoulder"], 0] - 0.5


def test_spine_joints_are_interpolated_along_the_source_chain(walking_cmu):
    path, _, _ = walking_cmu
    p = read_smpl22(path)[0].positions[0]
    heights = p[[J["pelvis"], J["spine1"], J["spine2"], J["spine3"], J["neck"]], 1]
    assert np.all(np.diff(heights) > 0)
    np.testing.assert_allclose(p[[J["spine1"], J["spine2"], J["spine3"]], 0], 0, atol=1e-6)


def test_units_and_up_axis_can_be_forced(walking_cmu):
    path, _, _ = walking_cmu
    auto = read_smpl22(path)[0].positions
    forced = read_smpl22(path, units="cm", up="z")[0].positions
    np.testing.assert_allclose(auto, forced, atol=1e-6)
    in_metres = read_smpl22(path, units="m")[0].positions
    assert in_metres[0, J["pelvis"], 1] > 50
    with pytest.raises(DataError, match="unknown units"):
        read_smpl22(path, units="furlong")


def test_same_clip_in_metres_and_y_up_gives_the_same_motion(tmp_path, walking_cmu):
    """Re-express the Z-up cm clip in Y-up metres: (x, y, z) -> (x, z, -y) / 100.

    That map is a proper rotation taking +Z to +Y, +X to +X and +Y to -Z, so a rotation
    channel about Z becomes one about Y with the same angle, and one about Y becomes one
    about Z with the opposite angle.
    """
    _, joints, frames = walking_cmu

    def to_y_up(v):
        return (v[0] / 100, v[2] / 100, -v[1] / 100)

    swap = {"Zrotation": "Yrotation", "Yrotation": "Zrotation"}
    y_up = [(name, parent, to_y_up(offset), " ".join(swap.get(c, c) for c in channels.split()) if channels else None)
            for name, parent, offset, channels in joints]
    converted = frames.copy()
    converted[:, :3] = np.stack([frames[:, 0], frames[:, 2], -frames[:, 1]], 1) / 100
    lower_back = channel_column(joints, "LowerBack", "Xposition")
    converted[:, lower_back:lower_back + 3] = to_y_up(frames[0, lower_back:lower_back + 3])
    arm = channel_column(joints, "LeftArm", "Yrotation")  # now named Zrotation: negate the angle
    converted[:, arm] = -frames[:, arm]
    path = write(tmp_path, "yup.bvh", bvh_text(y_up, converted))
    np.testing.assert_allclose(read_smpl22(path)[0].positions, read_smpl22(walking_cmu[0])[0].positions, atol=1e-4)


def test_mixamo_and_name_fallback_rigs(tmp_path):
    frames = rest_frames(cmu_like_joints(), 3)
    mixamo = write(tmp_path, "mixamo.bvh", bvh_text(cmu_like_joints(prefix="mixamorig:"), frames))
    assert read_smpl22(mixamo)[1] == "mixamo"
    unreal = {"Hips": "pelvis", "LowerBack": "spine_01", "Spine": "spine_02", "Spine1": "spine_03",
              "Neck": "neck_01", "Head": "head"}
    for side, s in (("Left", "l"), ("Right", "r")):
        unreal.update({f"{side}UpLeg": f"thigh_{s}", f"{side}Leg": f"calf_{s}", f"{side}Foot": f"foot_{s}",
                       f"{side}ToeBase": f"ball_{s}", f"{side}Shoulder": f"clavicle_{s}",
                       f"{side}Arm": f"upperarm_{s}", f"{side}ForeArm": f"lowerarm_{s}", f"{side}Hand": f"hand_{s}"})
    ue = write(tmp_path, "ue.bvh", bvh_text(cmu_like_joints(names=unreal), frames))
    ue_motion, rig = read_smpl22(ue)
    assert rig == "ue4"
    np.testing.assert_allclose(ue_motion.positions, read_smpl22(mixamo)[0].positions, atol=1e-6)


def test_joint_name_normalisation():
    assert normalise_joint_name("mixamorig:LeftForeArm") == ("left", "forearm")
    assert normalise_joint_name("upper_arm.R") == ("right", "upperarm")
    assert normalise_joint_name("Bip01 L Thigh") == ("left", "thigh")
    assert normalise_joint_name("spine_02") == (None, "spine")


def test_bandai_clip_parses_with_positions_on_every_joint(bandai_root):
    path = bandai_root / "dataset-2-subset" / "data" / "dataset-2_wave-left-hand_normal_001.bvh"
    bvh = parse_bvh(path)
    assert bvh.fps == 30.0
    assert bvh.names[:3] == ["joint_Root", "Hips", "Spine"]
    assert sum(name.endswith("_end") for name in bvh.names) == 5
    assert all(len(channels) == 6 for name, channels in zip(bvh.names, bvh.channels) if not name.endswith("_end"))
    positions, rotations = bvh.forward_kinematics()
    assert positions.shape == (bvh.frames.shape[0], len(bvh.names), 3)
    np.testing.assert_allclose(np.linalg.norm(rotations, axis=-1), 1.0, atol=1e-9)
    assert smpl22_map(bvh.names, bvh.parents, path).rig == "bandai"


def test_bandai_smpl22_positions_are_sane(bandai_root):
    item = load_file(bandai_root / "dataset-2-subset" / "data" / "dataset-2_wave-left-hand_normal_001.bvh")
    p = item.motion.positions
    hip_height = p[:, J["pelvis"], 1].mean()
    assert 0.8 < hip_height < 1.1
    assert (p[:, J["head"], 1] > p[:, J["pelvis"], 1] + 0.3).all()  # Y up
    feet = p[:, [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]], 1]
    assert feet.min() > -1e-4 and np.median(feet.min(axis=1)) < 0.05  # on the floor
    assert abs(np.degrees(facing_angle(p[0]))) < 1.0  # facing +Z at frame 0
    assert p[0, J["left_hip"], 0] > 0 > p[0, J["right_hip"], 0]
    np.testing.assert_allclose(p[0, J["pelvis"], [0, 2]], 0, atol=1e-5)
    # waving the LEFT hand: the left wrist goes above the head, the right one stays low
    assert p[:, J["left_wrist"], 1].max() > p[:, J["head"], 1].max()
    assert p[:, J["right_wrist"], 1].max() < p[:, J["pelvis"], 1].max()


# ---- malformed files ----

@pytest.fixture
def good_text():
    joints = cmu_like_joints()
    return bvh_text(joints, rest_frames(joints, 4))


@pytest.mark.parametrize("mutate, message", [
    (lambda text: text[: text.index("MOTION")], "missing MOTION"),
    (lambda text: text[: text.rindex("\n", 0, len(text) - 2)], "truncated"),
    (lambda text: text[: text.index("HIERARCHY") + 200], "missing MOTION"),
    (lambda text: text.replace("CHANNELS 3 Zrotation", "CHANNELS 4 Zrotation", 1),
     "CHANNELS says 4"),
    (lambda text: text.replace("Frames: 4", "Frames: 0"), "zero frames"),
    (lambda text: text.rsplit("\n", 2)[0] + "\n0 1 2\n", "values, the hierarchy's CHANNELS need"),
    (lambda text: text.rsplit(" ", 1)[0] + " abc\n", "non-numeric value 'abc'"),
    (lambda text: text.replace("Frame Time: ", "Frame Time: -"), "Frame Time must be positive"),
    (lambda text: text.replace("Xrotation", "Qrotation", 1), "unknown channel"),
])
def test_malformed_bvh_names_the_file(tmp_path, good_text, mutate, message):
    path = write(tmp_path, "bad.bvh", mutate(good_text))
    with pytest.raises(DataError, match=message) as error:
        load_file(path)
    assert str(path) in str(error.value)


def test_unmappable_skeleton(tmp_path):
    joints = [("a", None, (0, 0, 0), ROOT_CHANNELS), ("b", "a", (0, 10, 0), "Zrotation Xrotation Yrotation")]
    path = write(tmp_path, "blob.bvh", bvh_text(joints, np.zeros((2, 9))))
    with pytest.raises(DataError, match="unmappable skeleton: no joint found for pelvis") as error:
        load_file(path)
    assert str(path) in str(error.value)
    assert "bones considered: a, b" in str(error.value)


@pytest.mark.parametrize("frame_time", ["1000", "1000.5", "1e9", "2.5"])
def test_absurd_frame_time_skips_the_file_with_its_reason(tmp_path, good_text, frame_time):
    """fps rounding to 0 (or a clip of hours at 20 fps) must not crash a scan or allocate
    gigabytes: that file is skipped with a clear reason, the others are read."""
    write(tmp_path, "good.bvh", good_text)
    write(tmp_path, "slow.bvh", with_frame_time(good_text, frame_time))
    dataset = load_spec(f"bvh:{tmp_path}")
    assert [item.id for item in dataset.items] == ["good"]
    [skipped] = dataset.skipped
    assert skipped["path"].endswith("slow.bvh")
    assert "is not a motion frame rate" in skipped["error"] and "1 to 10000 fps" in skipped["error"]


def with_frame_time(text: str, frame_time: str) -> str:
    return re.sub(r"Frame Time: .*", f"Frame Time: {frame_time}", text)


def test_plausible_frame_times_still_read(tmp_path, good_text):
    for frame_time in ("0.001", "0.5", "1"):  # 1000 fps mocap, 2 fps and 1 fps keyframes
        path = write(tmp_path, "clip.bvh", with_frame_time(good_text, frame_time))
        assert load_file(path).motion.fps == pytest.approx(1 / float(frame_time))


def test_folder_scan_skips_bad_files(tmp_path, good_text):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub", "good.bvh", good_text)
    write(tmp_path, "truncated.bvh", good_text[: len(good_text) - 30])
    write(tmp_path, "empty.bvh", "")
    write(tmp_path / "sub", "good.txt", "a person stands still#a/DET\nsomeone waits\n")
    dataset = load_spec(f"bvh:{tmp_path}")
    assert [item.id for item in dataset.items] == ["sub/good"]
    assert dataset.items[0].captions == ["a person stands still", "someone waits"]
    assert sorted(Path(entry["path"]).name for entry in dataset.skipped) == ["empty.bvh", "truncated.bvh"]
    assert all(entry["path"] in entry["error"] for entry in dataset.skipped)
    assert len(load_spec(str(tmp_path)).items) == 1  # a bare folder is a BVH folder
