"""Retrieval metrics: hand-computed cases for every protocol, a brute-force cross-check,
and `t2m metrics` end to end."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference_server import metrics
from inference_server.errors import DataError, T2MError
from inference_server.metrics import metrics_table_markdown, retrieval_metrics, sentence_similarity

# ---------------------------------------------------------------- all


# Row 0 ties its ground truth with column 1 (rank 0.5); rows 1 and 2 have one higher.
TIE = np.array([[1.0, 1.0, 0.0], [0.0, 2.0, 5.0], [3.0, 0.0, 1.0]], dtype=np.float32)


def test_all_averages_ties_with_the_ground_truth():
    result = retrieval_metrics(TIE)
    t2m = result["t2m"]  # ranks 0.5, 1, 1
    assert t2m["R@1"] == pytest.approx(100 / 3)
    assert t2m["R@2"] == pytest.approx(100.0)
    assert t2m["MedR"] == pytest.approx(2.0)
    assert t2m["mAP"] == pytest.approx((1 / 1.5 + 0.5 + 0.5) / 3)
    assert result["n"] == 3 and result["protocol"] == "all"


def test_all_m2t_ranks_the_columns():
    m2t = retrieval_metrics(TIE)["m2t"]  # columns: ranks 1, 0, 1
    assert m2t["R@1"] == pytest.approx(100 / 3)
    assert m2t["MedR"] == pytest.approx(2.0)
    assert m2t["mAP"] == pytest.approx((0.5 + 1 + 0.5) / 3)
    assert retrieval_metrics(TIE.T)["t2m"] == m2t


def test_all_counts_half_of_every_other_tied_candidate():
    scores = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    # row 0: two others tied -> rank 1; rows 1, 2: rank 0
    t2m = retrieval_metrics(scores)["t2m"]
    assert t2m["R@1"] == pytest.approx(200 / 3)
    assert t2m["mAP"] == pytest.approx((0.5 + 1 + 1) / 3)


def test_median_rank_with_an_even_count_averages_the_middle_two():
    # S[i, j] = 1 above the diagonal's left, -1 right: text i has i motions above its own.
    scores = np.tril(np.ones((4, 4)), -1) - np.triu(np.ones((4, 4)), 1)
    result = retrieval_metrics(scores)
    for direction in ("t2m", "m2t"):  # ranks 0, 1, 2, 3 (columns: 3, 2, 1, 0)
        values = result[direction]
        assert values["MedR"] == pytest.approx(2.5)
        assert [values[f"R@{k}"] for k in (1, 2, 3, 5, 10)] == pytest.approx([25, 50, 75, 100, 100])
        assert values["mAP"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 4)


def test_integer_scores_are_accepted():
    assert retrieval_metrics(np.eye(5, dtype=np.int64))["t2m"]["R@1"] == 100.0


# ---------------------------------------------------------------- caption

CAPTIONS = ["walk", "run", "walk", "jump"]
CAPTION_SCORES = np.array(
    [
        [0.5, 0.9, 0.7, 0.1],
        [0.2, 0.8, 0.3, 0.9],
        [0.6, 0.1, 0.2, 0.3],
        [0.4, 0.3, 0.5, 0.45],
    ],
    dtype=np.float32,
)


def test_caption_rule_counts_duplicate_captions_as_correct():
    result = retrieval_metrics(CAPTION_SCORES, "caption", captions=CAPTIONS)
    t2m = result["t2m"]  # ranks 1, 1, 0, 1 ; AP 7/12, 1/2, 5/6, 1/2
    assert t2m["R@1"] == pytest.approx(25.0)
    assert t2m["R@2"] == pytest.approx(100.0)
    assert t2m["MedR"] == pytest.approx(2.0)
    assert t2m["mAP"] == pytest.approx((7 / 12 + 1 / 2 + 5 / 6 + 1 / 2) / 4)
    m2t = result["m2t"]  # ranks 0, 1, 0, 1 ; AP 1, 1/2, 3/4, 1/2
    assert m2t["R@1"] == pytest.approx(50.0)
    assert m2t["MedR"] == pytest.approx(1.5)
    assert m2t["mAP"] == pytest.approx((1 + 1 / 2 + 3 / 4 + 1 / 2) / 4)
    # Under the strict diagonal, text 2 ranks its own motion third.
    assert retrieval_metrics(CAPTION_SCORES)["t2m"]["R@1"] == pytest.approx(0.0)


def test_caption_rule_does_not_average_ties():
    scores = np.array([[1.0, 1.0], [0.0, 1.0]])
    assert retrieval_metrics(scores, "caption", captions=["a", "b"])["t2m"]["MedR"] == 1.0  # ranks 0, 0
    assert retrieval_metrics(scores, "all")["t2m"]["MedR"] == 1.25  # ranks 0.5, 0


def test_caption_pairs_group_identical_strings():
    queries, candidates = metrics.equal_caption_pairs(["x", "y", "x", "x"])
    pairs = set(zip(queries.tolist(), candidates.tolist()))
    group = {0, 2, 3}
    assert pairs == {(i, j) for i in group for j in group} | {(1, 1)}


# ---------------------------------------------------------------- threshold

# Text 2 is 20 degrees from text 0 (cosine 0.94 > 0.9): the same relation as CAPTIONS.
ANGLES = np.deg2rad([0.0, 90.0, 20.0, 180.0])
EMBEDDINGS = np.stack([np.cos(ANGLES), np.sin(ANGLES)], axis=1)


def test_threshold_counts_similar_captions_as_correct():
    result = retrieval_metrics(CAPTION_SCORES, "threshold", text_embeddings=EMBEDDINGS)
    by_caption = retrieval_metrics(CAPTION_SCORES, "caption", captions=CAPTIONS)
    assert result["t2m"] == pytest.approx(by_caption["t2m"])
    assert result["m2t"] == pytest.approx(by_caption["m2t"])
    # Cosine 0.94 is not above 0.95: only the diagonal is correct.
    strict = retrieval_metrics(CAPTION_SCORES, "threshold", text_embeddings=EMBEDDINGS, threshold=0.95)
    assert strict["t2m"] == pytest.approx(retrieval_metrics(CAPTION_SCORES)["t2m"])


def test_threshold_averages_ties_with_the_best_correct_candidate():
    scores = np.array([[0.2, 0.5, 0.5], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    embeddings = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # Text 0: correct {0, 2}; the best (0.5) ties with incorrect motion 1 -> rank 0.5.
    t2m = retrieval_metrics(scores, "threshold", text_embeddings=embeddings)["t2m"]
    assert t2m["R@1"] == pytest.approx(100.0)
    assert t2m["MedR"] == pytest.approx(1.0)
    assert t2m["mAP"] == pytest.approx(((1 + 2 / 3) / 2 + 1 + 1) / 3)  # correct first among ties


def test_sentence_similarity_uses_the_offline_minilm():
    captions = ["a person walks forward", "a person walks forward.", "a man jumps up and down"]
    similarity = sentence_similarity(captions)
    assert similarity.shape == (3, 3)
    assert np.allclose(similarity, similarity.T, atol=1e-6)
    assert np.allclose(np.diag(similarity), 1.0, atol=1e-5)
    assert similarity[0, 1] > 0.95 > similarity[0, 2]
    scores = np.array([[0.5, 0.9, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    assert retrieval_metrics(scores, "threshold", captions=captions)["t2m"]["R@1"] == 100.0
    assert retrieval_metrics(scores)["t2m"]["R@1"] == pytest.approx(200 / 3)


# ---------------------------------------------------------------- batch32


def _reference_batches(n: int) -> np.ndarray:
    idx = np.arange(n)
    np.random.seed(0)
    np.random.shuffle(idx)
    return idx[: n // 32 * 32].reshape(-1, 32)


def test_batch32_uses_the_seeded_shuffle():
    n = 70  # two batches; the last 6 pairs are left out
    batches = _reference_batches(n)
    scores = np.eye(n)
    # Texts at even places of batch 0 prefer the next motion of batch 0 (rank 1 there);
    # texts at even places of batch 1 prefer a motion of batch 0 (absent from their batch).
    for p in range(0, 32, 2):
        scores[batches[0][p], batches[0][p + 1]] = 2.0
        scores[batches[1][p], batches[0][p + 1]] = 2.0
    result = retrieval_metrics(scores, "batch32")
    assert result["batches"] == 2 and result["n"] == 64
    for direction in ("t2m", "m2t"):
        assert result[direction]["R@1"] == pytest.approx((50.0 + 100.0) / 2)
        assert result[direction]["R@2"] == pytest.approx(100.0)
        assert result[direction]["MedR"] == pytest.approx((1.5 + 1.0) / 2)
        assert result[direction]["mAP"] == pytest.approx((0.75 + 1.0) / 2)


def test_batch32_needs_a_full_batch():
    with pytest.raises(DataError, match="at least 32"):
        retrieval_metrics(np.eye(31), "batch32")


# ---------------------------------------------------------------- dissimilar


def test_dissimilar_keeps_only_the_listed_pairs():
    scores = np.eye(5)
    scores[0, 1] = 5.0  # motion 1 is not in the list: harmless
    scores[2, 4] = 5.0  # motion 4 is: text 2 ranks 1
    result = retrieval_metrics(scores, "dissimilar", nsim_ids=[0, 2, 4])
    assert result["n"] == 3
    assert result["t2m"]["R@1"] == pytest.approx(200 / 3)
    assert result["m2t"]["R@1"] == pytest.approx(200 / 3)  # motion 4 ranks text 4 second
    assert retrieval_metrics(scores)["t2m"]["R@1"] == pytest.approx(60.0)


@pytest.mark.parametrize(
    "ids, message", [(None, "needs"), ([0, 0], "duplicates"), ([0, 5], "0..4"), ([0.5], "integer")]
)
def test_dissimilar_rejects_bad_id_lists(ids, message):
    with pytest.raises(DataError, match=message):
        retrieval_metrics(np.eye(5), "dissimilar", nsim_ids=ids)


# ---------------------------------------------------------------- inputs and table


@pytest.mark.parametrize(
    "scores, message",
    [
        (np.zeros((2, 3)), "square"),
        (np.zeros(4), "square"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), "NaN scores \\(first in row 0\\)"),
        (np.array([["a"]]), "real numbers"),
    ],
)
def test_bad_score_matrices_are_rejected(scores, message):
    with pytest.raises(DataError, match=message):
        retrieval_metrics(scores)


def test_caption_protocols_check_the_captions():
    with pytest.raises(DataError, match="needs one caption"):
        retrieval_metrics(np.eye(3), "caption")
    with pytest.raises(DataError, match="2 captions for a 3 x 3"):
        retrieval_metrics(np.eye(3), "caption", captions=["a", "b"])
    with pytest.raises(T2MError, match="unknown metric protocol"):
        retrieval_metrics(np.eye(3), "best")


def test_markdown_table_has_one_row_per_direction():
    table = metrics_table_markdown(retrieval_metrics(TIE)).splitlines()
    assert table[0] == "| | R@1 | R@2 | R@3 | R@5 | R@10 | MedR | mAP |"
    assert table[2] == "| t2m | 33.33 | 100.00 | 100.00 | 100.00 | 100.00 | 2.00 | 0.56 |"
    assert table[3].startswith("| m2t | 33.33 |")


# ---------------------------------------------------------------- brute-force cross-check


def _brute_ranks(scores, correct, average_ties):
    """Row by row: rank of the best correct candidate, and the average precision."""
    ranks, precisions = [], []
    for row, ok in zip(scores, correct):
        best = row[ok].max()
        above, tied = np.sum(row > best), np.sum(row == best) - 1
        ranks.append(above + tied / 2 if average_ties else above)
        # Descending order, correct candidates first among equal scores.
        order = np.lexsort((~ok, -row))
        hits = ok[order]
        precisions.append(np.mean((np.cumsum(hits) / np.arange(1, len(row) + 1))[hits]))
    return np.array(ranks), np.array(precisions)


def _brute_summary(ranks, precisions):
    summary = {f"R@{k}": 100 * np.mean(ranks < k) for k in (1, 2, 3, 5, 10)}
    return {**summary, "MedR": np.median(ranks) + 1, "mAP": np.mean(precisions)}


def test_vectorised_counts_match_a_brute_force_reference(monkeypatch):
    monkeypatch.setattr(metrics, "_CHUNK_ELEMENTS", 500)  # many blocks, both directions
    rng = np.random.default_rng(3)
    n = 120
    scores = rng.integers(0, 6, size=(n, n)).astype(np.float32)  # many ties
    captions = [f"c{value}" for value in rng.integers(0, 70, size=n)]
    same = np.array(captions)[:, None] == np.array(captions)[None, :]
    embeddings = rng.normal(size=(n, 3))
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    similar = (unit @ unit.T > 0.9) | np.eye(n, dtype=bool)
    cases = [
        ("all", {}, np.eye(n, dtype=bool), True),
        ("caption", {"captions": captions}, same, False),
        ("threshold", {"text_embeddings": embeddings}, similar, True),
    ]
    for protocol, kwargs, correct, average_ties in cases:
        result = retrieval_metrics(scores, protocol, **kwargs)
        t2m = _brute_summary(*_brute_ranks(scores, correct, average_ties))
        m2t = _brute_summary(*_brute_ranks(scores.T, correct.T, average_ties))
        if protocol == "all":  # mAP there is the mean reciprocal tie-averaged rank
            t2m["mAP"] = np.mean(1 / (_brute_ranks(scores, correct, True)[0] + 1))
            m2t["mAP"] = np.mean(1 / (_brute_ranks(scores.T, correct, True)[0] + 1))
        assert result["t2m"] == pytest.approx(t2m), protocol
        assert result["m2t"] == pytest.approx(m2t), protocol


# ---------------------------------------------------------------- t2m metrics


def _t2m(*args):
    t2m = Path(sys.executable).with_name("t2m")  # the installed console script, PATH or not
    return subprocess.run([str(t2m), "metrics", *map(str, args)], capture_output=True, text=True, timeout=60)


def test_cli_prints_one_json_object(tmp_path):
    scores_path = tmp_path / "scores.npy"
    np.save(scores_path, CAPTION_SCORES)
    (tmp_path / "captions.txt").write_text("\n".join(CAPTIONS) + "\n", encoding="utf-8")
    done = _t2m("--scores", scores_path, "--captions", tmp_path / "captions.txt", "--protocol", "caption", "--json")
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("\n") == 1
    result = json.loads(done.stdout)
    expected = retrieval_metrics(CAPTION_SCORES, "caption", captions=CAPTIONS)
    assert result["n"] == 4 and result["protocol"] == "caption"
    assert result["t2m"] == pytest.approx(expected["t2m"]) and result["m2t"] == pytest.approx(expected["m2t"])


def test_cli_dissimilar_reads_names_and_prints_markdown(tmp_path):
    scores = np.eye(5, dtype=np.float32)
    scores[2, 4] = 5.0
    np.save(tmp_path / "s.npy", scores)
    (tmp_path / "names.txt").write_text("000010\n000011\nM000012\n000013\n000014\n")
    (tmp_path / "nsim.txt").write_text("000010\nM000012\n000014\n")
    done = _t2m("--scores", tmp_path / "s.npy", "--protocol", "dissimilar", "--nsim", tmp_path / "nsim.txt",
                "--ids", tmp_path / "names.txt", "--markdown")
    assert done.returncode == 0, done.stderr
    assert "| t2m | 66.67 |" in done.stdout


@pytest.mark.parametrize(
    "matrix, extra, message",
    [
        (np.zeros((2, 3)), [], "s.npy: expected a non-empty square"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), [], "s.npy: NaN scores"),
        (np.eye(3), ["--captions", "CAPTIONS"], "c.txt: 2 captions for a 3 x 3"),
        (np.eye(3), ["--protocol", "caption"], "--protocol caption needs --captions"),
        (np.array([{"a": 1}], dtype=object), [], "s.npy: not a readable .npy array"),
    ],
)
def test_cli_reports_bad_input_on_one_line(tmp_path, matrix, extra, message):
    np.save(tmp_path / "s.npy", matrix, allow_pickle=True)  # the object array needs pickle to be written
    (tmp_path / "c.txt").write_text("a\nb\n")
    extra = [str(tmp_path / "c.txt") if arg == "CAPTIONS" else arg for arg in extra]
    done = _t2m("--scores", tmp_path / "s.npy", *extra, "--json")
    assert done.returncode == 1
    assert done.stdout == ""
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
