"""HumanML3D and KIT-ML folders written in their exact layout: segments, splits, bad files."""
from pathlib import Path

import numpy as np
import pytest

from inference_server.data import load_file, load_spec
from inference_server.data.kitml import KIT_JOINTS
from inference_server.data.synthetic import motion_for
from inference_server.errors import DataError
from inference_server.motion import SMPL22_JOINTS

J = {name: i for i, name in enumerate(SMPL22_JOINTS)}
WAVE = motion_for(["walk", "wave_left"], seed=3, seconds=3.0).positions  # 120 frames at 20 fps


def write_folder(root: Path, clips: dict[str, np.ndarray], texts: dict[str, str], splits: dict[str, list[str]]):
    (root / "new_joints").mkdir(parents=True)
    (root / "texts").mkdir()
    for motion_id, positions in clips.items():
        np.save(root / "new_joints" / f"{motion_id}.npy", positions)
    for motion_id, text in texts.items():
        (root / "texts" / f"{motion_id}.txt").write_text(text)
    for name, ids in splits.items():
        (root / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return root


@pytest.fixture
def humanml3d_folder(tmp_path):
    clips = {"000001": WAVE, "M000001": WAVE * np.array([-1, 1, 1], dtype=np.float32),
             "000002": WAVE[:50], "000003": WAVE[:, :21], "000004": WAVE, "000005": WAVE}
    texts = {
        "000001": "a person walks and waves.#a/DET person/NOUN walk/VERB and/CCONJ wave/VERB#0.0#0.0\n"
                  "someone walks forward#someone/PRON walk/VERB forward/ADV#nan#nan\n"
                  "a man waves his left hand#a/DET man/NOUN wave/VERB his/PRON left/ADJ hand/NOUN#3.0#5.5\n"
                  "a man walks#a/DET man/NOUN walk/VERB#0.0#2.5\n",
        "M000001": "a person walks and waves.#a/DET#0.0#0.0\n",
        "000002": "a person stands#a/DET person/NOUN stand/VERB#0.0#0.0\n",
        "000003": "wrong shape#x/X#0.0#0.0\n",
        "000004": "   \n\n",
        # 000005 has no caption file
    }
    splits = {"train": ["000001", "M000001"], "val": ["000002"], "test": ["000003", "000004"]}
    return write_folder(tmp_path / "HumanML3D", clips, texts, splits)


def test_humanml3d_items_segments_and_splits(humanml3d_folder):
    dataset = load_spec(f"humanml3d:{humanml3d_folder}")
    by_id = {item.id: item for item in dataset.items}
    assert sorted(by_id) == ["000001", "000001_0", "000001_1", "000002", "M000001"]
    whole = by_id["000001"]
    assert whole.captions == ["a person walks and waves.", "someone walks forward"]  # 0#0 and NaN spans
    assert whole.motion.fps == 20.0 and whole.motion.num_frames == 120 and whole.split == "train"
    np.testing.assert_array_equal(whole.motion.positions, WAVE)
    wave = by_id["000001_0"]
    assert wave.captions == ["a man waves his left hand"]
    assert wave.motion.num_frames == int(5.5 * 20) - int(3.0 * 20)
    np.testing.assert_array_equal(wave.motion.positions, WAVE[60:110])
    assert wave.split == "train" and wave.labels["parent"] == "000001"
    assert by_id["000001_1"].motion.num_frames == 50
    assert by_id["000002"].split == "val"
    assert dataset.splits() == {"train": 4, "val": 1}
    assert [item.id for item in load_spec(f"humanml3d:{humanml3d_folder}@val").items] == ["000002"]


def test_humanml3d_bad_files_are_skipped_with_reasons(humanml3d_folder):
    skipped = {Path(entry["path"]).name: entry["error"] for entry in load_spec(f"humanml3d:{humanml3d_folder}").skipped}
    assert set(skipped) == {"000003.npy", "000004.npy", "000005.npy"}
    assert "(T, 22, 3)" in skipped["000003.npy"] and "000003.npy" in skipped["000003.npy"]
    assert "empty caption file" in skipped["000004.npy"] and "000004.txt" in skipped["000004.npy"]
    assert "caption file not found" in skipped["000005.npy"]


def test_humanml3d_missing_folder_and_bad_arrays(tmp_path):
    with pytest.raises(DataError, match="new_joints folder not found"):
        load_spec(f"humanml3d:{tmp_path}")
    (tmp_path / "new_joints").mkdir()
    np.save(tmp_path / "new_joints" / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    (tmp_path / "new_joints" / "junk.npy").write_bytes(b"not numpy")
    nan = WAVE.copy()
    nan[3, 4, 1] = np.nan
    np.save(tmp_path / "new_joints" / "nan.npy", nan)
    for name, message in (("obj.npy", "not a readable"), ("junk.npy", "not a readable"), ("nan.npy", "finite")):
        with pytest.raises(DataError, match=message) as error:
            load_file(tmp_path / "new_joints" / name)
        assert name in str(error.value)
    with pytest.raises(DataError, match="texts folder not found"):
        load_spec(f"humanml3d:{tmp_path}")


def test_load_file_reads_one_npy_with_its_captions(humanml3d_folder):
    item = load_file(humanml3d_folder / "new_joints" / "000001.npy")
    assert item.id == "000001" and item.captions == ["a person walks and waves.", "someone walks forward"]


def test_bad_span_numbers(tmp_path):
    write_folder(tmp_path, {"1": WAVE}, {"1": "a caption#a/DET#zero#1.0\n"}, {})
    skipped = load_spec(f"humanml3d:{tmp_path}").skipped
    assert len(skipped) == 1 and "line 1" in skipped[0]["error"] and "not numbers" in skipped[0]["error"]


# ---- KIT-ML ----

def smpl_to_kit(positions: np.ndarray) -> np.ndarray:
    """A (T, 21, 3) KIT array in millimetres built from SMPL-22 positions."""
    source = {"root": "pelvis", "BP": "spine1", "BT": "spine3", "BLN": "neck", "BUN": "head",
              "LS": "left_shoulder", "LE": "left_elbow", "LW": "left_wrist", "RS": "right_shoulder",
              "RE": "right_elbow", "RW": "right_wrist", "LH": "left_hip", "LK": "left_knee", "LA": "left_ankle",
              "LMrot": "left_foot", "RH": "right_hip", "RK": "right_knee", "RA": "right_ankle", "RMrot": "right_foot"}
    kit = np.zeros((len(positions), 21, 3), dtype=np.float32)
    for index, name in enumerate(KIT_JOINTS):
        if name in source:
            kit[:, index] = positions[:, J[source[name]]]
    kit[:, KIT_JOINTS.index("LF")] = positions[:, J["left_foot"]] + [0, 0, 0.05]
    kit[:, KIT_JOINTS.index("RF")] = positions[:, J["right_foot"]] + [0, 0, 0.05]
    return kit * 1000


def test_kitml_maps_into_smpl_order_in_metres(tmp_path):
    kit = smpl_to_kit(WAVE[::2][:60])  # KIT is 12.5 fps; the content does not matter here
    write_folder(tmp_path, {"00001": kit, "00002": kit[:, :20]},
                 {"00001": "a person waves#a/DET person/NOUN wave/VERB#0.0#0.0\n", "00002": "x#x/X#0.0#0.0\n"},
                 {"train": ["00001"]})
    dataset = load_spec(f"kitml:{tmp_path}")
    assert [Path(entry["path"]).name for entry in dataset.skipped] == ["00002.npy"]
    assert "(T, 21, 3)" in dataset.skipped[0]["error"]
    (item,) = dataset.items
    assert item.motion.fps == 12.5 and item.split == "train"
    p, source = item.motion.positions, WAVE[::2][:60]
    for joint in ("pelvis", "left_hip", "right_knee", "left_ankle", "right_foot", "neck", "head",
                  "left_shoulder", "right_elbow", "left_wrist"):
        np.testing.assert_allclose(p[:, J[joint]], source[:, J[joint]], atol=1e-5, err_msg=joint)
    # interpolated joints lie between their neighbours
    neck, shoulder, collar = p[:, J["neck"]], p[:, J["left_shoulder"]], p[:, J["left_collar"]]
    np.testing.assert_allclose(collar, neck + 0.4 * (shoulder - neck), atol=1e-5)
    heights = p[:, [J["pelvis"], J["spine1"], J["spine2"], J["spine3"], J["neck"]], 1]
    assert (np.diff(heights, axis=1) > 0).all()
