"""Retriever: the numpy API that index, server and Blender jobs use."""
import numpy as np
import pytest
import torch

from inference_server.errors import DataError
from inference_server.jami import AngleStats
from inference_server.maxsim import maxsim_scores
from inference_server.model import create_checkpoint
from inference_server.motion import SMPL22_PARENTS, Motion, smpl22_skeleton
from inference_server.retriever import Retriever

torch.set_num_threads(1)  # on a shared 2-core machine 2 threads spin-wait: 1 is faster and steadier


@pytest.fixture(scope="module")
def retriever(tmp_path_factory):
    path = create_checkpoint(tmp_path_factory.mktemp("ckpt") / "test", preset="test", seed=1)
    return Retriever.load(path, device="cpu")


def _motion(seconds: float, freq: float, fps: float = 30.0) -> Motion:
    """A T-pose whose joints sway sinusoidally: enough for real joint angles."""
    offsets = smpl22_skeleton().offsets
    rest = np.zeros((22, 3))
    for joint, parent in enumerate(SMPL22_PARENTS):
        if parent >= 0:
            rest[joint] = rest[parent] + offsets[joint]
    t = np.arange(int(seconds * fps)) / fps
    sway = 0.05 * np.sin(2 * np.pi * freq * t[:, None, None] + np.arange(66).reshape(1, 22, 3))
    positions = rest[None] + sway + np.array([0, 0.9, 0])
    return Motion.smpl22(positions.astype(np.float32), fps)


def test_identity(retriever):
    assert retriever.dim == 32 and retriever.pooling == "maxsim"
    assert len(retriever.fingerprint) == 64 and retriever.name == "motioncolbert-test-maxsim"
    assert isinstance(retriever.angles_stats, AngleStats)


def test_text_embeddings_hold_only_valid_tokens(retriever):
    first, second = retriever.embed_texts(["A person waves the LEFT hand", "run"])
    assert first.tokens == ["a", "person", "waves", "the", "left", "hand"] and second.tokens == ["run"]
    assert first.vectors.shape == (6, 32) and first.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(first.vectors, axis=1), 1, atol=1e-5)
    with pytest.raises(DataError, match="no word tokens"):
        retriever.embed_texts(["   "])


def test_motion_embeddings_are_batch_independent(retriever):
    motions = [_motion(3.0, 0.5), _motion(14.0, 1.0), _motion(1.0, 2.0, fps=20.0)]
    patches = retriever.embed_motions(motions, batch_size=2)
    assert patches.shape == (3, 196, 32) and patches.dtype == np.float32
    norms = np.linalg.norm(patches, axis=-1).reshape(3, 14, 14)  # (motion, window, part)
    filled_windows = [4, 14, 2]  # 3 s, 14 s (cropped to 11.2 s) and 1 s at 20 fps in 0.8 s windows
    for norm, filled in zip(norms, filled_windows):
        assert np.allclose(norm[:filled], 1, atol=1e-5) and np.all(norm[filled:] == 0)  # padding: zero
    assert np.allclose(retriever.embed_motions(motions[1:2]), patches[1], atol=1e-5)
    assert retriever.embed_motions([]).shape == (0, 196, 32)


def test_score_is_maxsim_of_the_embeddings(retriever):
    texts, motions = ["a person sways", "jump up high", "walk"], [_motion(2.0, 0.3), _motion(4.0, 1.5)]
    scores = retriever.score(texts, motions)
    assert scores.shape == (3, 2)
    patches = torch.from_numpy(retriever.embed_motions(motions))
    for row, text in enumerate(retriever.embed_texts(texts)):
        expected = maxsim_scores(torch.from_numpy(text.vectors), patches)[0].numpy()
        assert np.allclose(scores[row], expected, atol=1e-5)


def test_a_text_of_several_steps_gets_the_order_penalty(retriever):
    from inference_server.ordered import order_penalty
    texts = ["a person walks, then jumps", "walk"]
    motions = [_motion(2.0, 0.3), _motion(4.0, 1.5)]
    patches = retriever.embed_motions(motions)
    scores = retriever.score_texts(texts, patches)
    plain = retriever.score_embeddings(retriever.embed_texts(texts), patches)
    steps = [torch.from_numpy(step.vectors) for step in retriever.embed_texts(["a person walks", "a person jumps"])]
    penalty = order_penalty(steps, torch.from_numpy(patches), retriever.pooling)[0].numpy()
    assert np.allclose(scores[0], plain[0] + penalty, atol=1e-5) and (penalty <= 1e-6).all()
    assert np.allclose(scores[1], plain[1], atol=1e-6)   # one step: as before
