"""Engine in process: each op against a brute-force recomputation with the real Retriever."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bridge.protocol import ProtocolError
from inference_server.engine import Engine, label_text, motion_captions
from inference_server.index import MotionIndex, build_index
from inference_server.jami import PART_NAMES
from inference_server.maxsim import maxsim_scores, token_patch_relevance
from inference_server.model import create_checkpoint
from inference_server.motion import SMPL22_JOINTS
from inference_server.retriever import Retriever

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    torch.set_num_threads(2)
    folder = tmp_path_factory.mktemp("engine")
    retriever = Retriever.load(create_checkpoint(folder / "model", preset="test"), device="cpu")
    build_index("synthetic:16:3", retriever, folder / "index", storage="fp32", progress=False)
    return Engine(retriever, MotionIndex.load(folder / "index", retriever))


def brute_force_scores(engine, text: str) -> np.ndarray:
    query = torch.from_numpy(engine.retriever.embed_texts([text])[0].vectors)
    docs = torch.from_numpy(np.stack([engine.index.patches(i) for i in range(len(engine.index))]))
    return maxsim_scores(query, docs)[0].numpy()


def test_info_describes_model_and_library(engine):
    result, arrays = engine.info()
    assert arrays == {}
    assert result["protocol"] == 1 and result["device"] == "cpu"
    assert result["model"]["fingerprint"] == engine.retriever.fingerprint
    assert result["library"]["motions"] == 16 and result["library"]["captions"] > 16


def test_search_ranks_like_brute_force_maxsim(engine):
    text = "a person waves the left hand while walking"
    result, _ = engine.search(text, k=5)
    scores = brute_force_scores(engine, text)
    expected = np.argsort(-scores)[:5]
    assert [r["motion_id"] for r in result["results"]] == [engine.index.ids[i] for i in expected]
    np.testing.assert_allclose([r["score"] for r in result["results"]], scores[expected], atol=1e-5)
    first = engine.index.meta(int(expected[0]))
    assert result["results"][0]["captions"] == first["captions"]
    assert result["results"][0]["duration"] == pytest.approx(first["duration"])
    assert result["tokens"] == engine.retriever.embed_texts([text])[0].tokens


def test_search_many_matches_single_searches_and_isolates_bad_queries(engine):
    queries = [("someone jogs", 3), ("", 3), ("a man kicks", 100), ("x" * 1001, 2), ("bows", 0)]
    outcomes = engine.search_many(queries)
    alone, _ = engine.search("someone jogs", 3)
    batched = outcomes[0][0]
    assert batched["tokens"] == alone["tokens"]
    assert [r["motion_id"] for r in batched["results"]] == [r["motion_id"] for r in alone["results"]]
    # padding in a batch changes the text encoder's float rounding, nothing more
    np.testing.assert_allclose([r["score"] for r in batched["results"]], [r["score"] for r in alone["results"]],
                               atol=1e-4)
    assert len(outcomes[2][0]["results"]) == 16  # k above the library size: the whole library
    for position in (1, 3, 4):
        assert isinstance(outcomes[position], ProtocolError) and outcomes[position].code == "bad_request"


def test_explain_is_the_token_patch_grid_cropped_to_the_motion(engine):
    row = int(np.argmin([engine.index.meta(i)["duration"] for i in range(len(engine.index))]))
    motion_id = engine.index.ids[row]
    result, arrays = engine.explain("a person raises the right arm", motion_id)
    windows = int(np.ceil(min(round(engine.index.meta(row)["duration"] * 20), 224) / 16))
    relevance = arrays["relevance"]
    assert relevance.dtype == np.float32 and relevance.shape == (len(result["tokens"]), 14, windows)
    assert result["parts"] == PART_NAMES and result["window_seconds"] == pytest.approx(0.8)
    embedding = engine.retriever.embed_texts(["a person raises the right arm"])[0]
    full = token_patch_relevance(torch.from_numpy(embedding.vectors),
                                 torch.from_numpy(engine.index.patches(row))).numpy()
    np.testing.assert_allclose(relevance, full[:, :, :windows], atol=1e-6)


def test_motion_returns_the_stored_positions(engine):
    result, arrays = engine.motion(engine.index.ids[4])
    stored = engine.index.motion(4)
    assert result == {"joints": SMPL22_JOINTS, "parents": stored.skeleton.parents, "fps": 20.0, "up": "Y"}
    np.testing.assert_array_equal(arrays["positions"], stored.positions)
    assert "rotations" not in arrays


def test_describe_by_id_and_by_positions_agree(engine):
    motion_id = engine.index.ids[2]
    by_id, _ = engine.describe(motion_id=motion_id, k=4)
    _, arrays = engine.motion(motion_id)
    by_positions, _ = engine.describe(positions=arrays["positions"], fps=20.0, k=4)
    assert [c["text"] for c in by_id["captions"]] == [c["text"] for c in by_positions["captions"]]
    scores = [c["score"] for c in by_id["captions"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 4
    np.testing.assert_allclose(scores, [c["score"] for c in by_positions["captions"]], atol=1e-4)
    # the best caption is the best of the whole bank, recomputed by brute force
    bank = engine._bank.get().texts
    embeddings = engine.retriever.embed_texts(bank)
    patches = torch.from_numpy(engine.index.patches(2))[None]
    best = max(range(len(bank)), key=lambda i: float(maxsim_scores(torch.from_numpy(embeddings[i].vectors), patches)))
    assert by_id["captions"][0]["text"] == bank[best]


def test_similar_excludes_the_motion_itself(engine):
    motion_id = engine.index.ids[0]
    result, _ = engine.similar(motion_id, k=5)
    ids = [r["motion_id"] for r in result["results"]]
    assert len(ids) == 5 and motion_id not in ids and result["tokens"] == []
    scores = [r["score"] for r in result["results"]]
    assert scores == sorted(scores, reverse=True)


def test_similar_is_the_index_similar(engine):
    """One `similar` (MotionIndex.similar) behind the wire op and `t2m similar`."""
    row = 2
    result, _ = engine.similar(engine.index.ids[row], k=4)
    expected = engine.index.similar(row, 4)
    assert [hit["motion_id"] for hit in result["results"]] == [engine.index.meta(hit.row)["motion_id"]
                                                               for hit in expected]
    assert [hit["score"] for hit in result["results"]] == pytest.approx([hit.score for hit in expected])


@pytest.mark.parametrize("call, code", [
    (lambda e: e.motion("no-such-motion"), "not_found"),
    (lambda e: e.explain("a walk", "no-such-motion"), "not_found"),
    (lambda e: e.similar("no-such-motion"), "not_found"),
    (lambda e: e.describe(motion_id="no-such-motion"), "not_found"),
    (lambda e: e.motion(3), "bad_request"),
    (lambda e: e.search("a walk", k=True), "bad_request"),
    (lambda e: e.search("a walk", k="3"), "bad_request"),
    (lambda e: e.search(["a walk"]), "bad_request"),
    (lambda e: e.describe(), "bad_request"),
    (lambda e: e.describe(motion_id=e.index.ids[0], positions=np.zeros((5, 22, 3), np.float32), fps=20), "bad_request"),
    (lambda e: e.describe(positions=np.zeros((5, 21, 3), np.float32), fps=20), "bad_request"),
    (lambda e: e.describe(positions=np.zeros((5, 22, 3), np.int32), fps=20), "bad_request"),
    (lambda e: e.describe(positions=np.full((5, 22, 3), np.nan, np.float32), fps=20), "bad_request"),
    (lambda e: e.describe(positions=np.zeros((5, 22, 3), np.float32)), "bad_request"),
    (lambda e: e.describe(positions=np.zeros((5, 22, 3), np.float32), fps=-1), "bad_request"),
])
def test_refusals_carry_the_wire_code(engine, call, code):
    with pytest.raises(ProtocolError) as caught:
        call(engine)
    assert caught.value.code == code


def test_label_text_uses_descriptive_labels_only():
    assert label_text({"content": "wave-left-hand", "style": "elderly", "rig": "bandai", "take": 3}) == \
        "wave left hand, elderly"
    assert label_text({"actions": ["reach_both", "kick_left"], "seed": 0}) == "reach both, kick left"
    assert motion_captions({"captions": [], "labels": {"rig": "x"}}) == []
    assert motion_captions({"captions": ["a walk"], "labels": {"content": "walk"}}) == ["a walk"]
    assert motion_captions({"captions": [], "labels": {"content": "walk"}}) == ["walk"]
