"""DeepMimic humanoid clips from pybullet_data: FK, SMPL-22 placement, captions, skips."""
import json
from pathlib import Path

import numpy as np
import pytest

from inference_server.data import load_file, load_spec
from inference_server.data.deepmimic import default_dir
from inference_server.data.kinematics import facing_angle
from inference_server.errors import DataError
from inference_server.motion import SMPL22_JOINTS, SMPL22_PARENTS

pytest.importorskip("pybullet_data")
J = {name: i for i, name in enumerate(SMPL22_JOINTS)}


@pytest.fixture(scope="module")
def clips():
    return load_spec("deepmimic")


def test_all_humanoid_clips_read_and_laikago_is_skipped(clips):
    ids = {item.id for item in clips.items}
    assert {"humanoid3d_walk", "humanoid3d_backflip", "humanoid3d_kick", "humanoid3d_crawl"} <= ids
    assert len(ids) == len(list(default_dir().glob("humanoid3d_*.txt")))
    (skipped,) = clips.skipped
    assert Path(skipped["path"]).name == "laikago_walk.txt"
    assert "not a DeepMimic humanoid clip" in skipped["error"]
    assert all(len(item.captions) >= 3 for item in clips.items)


def test_walk_is_upright_forward_and_on_the_floor(clips):
    walk = next(item for item in clips.items if item.id == "humanoid3d_walk")
    p = walk.motion.positions
    assert walk.motion.fps == 30.0 and walk.captions[0] == "a person walks forward"
    assert 0.75 < p[:, J["pelvis"], 1].mean() < 1.0
    assert abs(np.degrees(facing_angle(p[0]))) < 1.0 and p[0, J["left_hip"], 0] > 0
    assert p[-1, J["pelvis"], 2] - p[0, J["pelvis"], 2] > 0.8  # walked forward (+Z)
    feet = p[:, [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]], 1]
    assert feet.min() > -1e-4 and np.median(feet.min(axis=1)) < 0.05
    assert (p[:, J["head"], 1] > p[:, J["neck"], 1]).all()
    bones = np.linalg.norm(p[:, 1:] - p[:, SMPL22_PARENTS[1:]], axis=-1)
    assert bones.std(axis=0).max() < 1e-4  # rigid FK: bone lengths never change


def test_kick_uses_the_right_leg_as_its_caption_says(clips):
    kick = next(item for item in clips.items if item.id == "humanoid3d_kick")
    p = kick.motion.positions
    assert "right leg" in kick.captions[0]
    assert p[:, J["right_foot"], 1].max() > p[:, J["left_foot"], 1].max() + 0.5


def test_bad_clips_name_the_file(tmp_path):
    cases = {"bad.txt": "{not json", "empty.txt": json.dumps({"Frames": []}),
             "short.txt": json.dumps({"Frames": [[0.03] * 43]}),
             "text.txt": json.dumps({"Frames": [[0.03] + ["x"] * 43]})}
    messages = {"bad.txt": "not a DeepMimic JSON", "empty.txt": "no 'Frames'", "short.txt": "expected 44",
                "text.txt": "non-numeric"}
    for name, text in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DataError, match=messages[name]) as error:
            load_file(tmp_path / name)
        assert name in str(error.value)
    assert len(load_spec(f"deepmimic:{tmp_path}").skipped) == len(cases)
