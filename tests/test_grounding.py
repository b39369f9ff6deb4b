"""Word grounding on real clips: which clips are checked, with which query, and how hits are counted."""
import numpy as np
import pytest
import torch

from inference_server.data.bvh import read_item
from inference_server.grounding import CHANCE, SIDE_PARTS, grounding_cases, side_grounding, word_parts
from inference_server.jami import PART_NAMES
from inference_server.model import create_checkpoint
from inference_server.retriever import Retriever

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def clips(bandai_root):
    data = bandai_root / "dataset-2-subset" / "data"
    wave_left = read_item(data / "dataset-2_wave-left-hand_elderly_001.bvh")
    walk = read_item(data / "dataset-2_walk_elderly_001.bvh")
    wave_left.labels = {"content": "wave-left-hand"}
    walk.labels = {"content": "walk"}
    return wave_left, walk


def test_sided_clips_and_their_mirrors_are_the_cases(clips):
    wave_left, walk = clips
    cases = grounding_cases([wave_left, walk])
    assert [(query, side, limb) for _, query, side, limb in cases] == [
        ("a person waves the left hand", "left", "hand"), ("a person waves the right hand", "right", "hand")]
    # the mirror: x flipped and left/right joints swapped
    np.testing.assert_allclose(cases[1][0].positions, wave_left.motion.mirrored().positions)


def test_side_parts_and_chance():
    assert [PART_NAMES[i] for i in SIDE_PARTS["left"]] == ["l_hip", "l_knee", "l_ankle", "l_shoulder", "l_elbow"]
    assert CHANCE == pytest.approx(100 * 5 / 14)


def test_grounding_counts_the_words_argmax_parts(clips, tmp_path):
    retriever = Retriever.load(create_checkpoint(tmp_path / "model", preset="test"), device="cpu")
    cases = grounding_cases(list(clips))
    parts = word_parts(retriever, [case[0] for case in cases], [case[1] for case in cases])
    expected_side = np.mean([parts[i][side] in SIDE_PARTS[side] for i, (_, _, side, _) in enumerate(cases)])
    result = side_grounding(retriever, list(clips))
    assert result["clips"] == 2 and result["side_word"] == pytest.approx(100 * expected_side)
    assert result["both"] <= min(result["side_word"], result["limb_word"])
    assert side_grounding(retriever, [clips[1]]) == {"clips": 0}
