"""The hand-written query set: the shipped file, its judgements on the real library, the metrics."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from inference_server.data import bandai
from inference_server.errors import DataError
from inference_server.motion import Motion, MotionItem
from inference_server.query_set import (
    DEFAULT_QUERIES, Query, action_relevance, evaluate_query_set, library_labels, load_queries, query_metrics,
    relevance, with_mirrors)


@pytest.fixture(scope="module")
def queries():
    return load_queries(DEFAULT_QUERIES)


@pytest.fixture(scope="module")
def labels(shared_data):
    """Labels of every clip of the real library (read from the label files, no BVH parsing)."""
    return library_labels(shared_data)


def test_shipped_file_loads_with_enough_unique_queries(queries):
    assert len(queries) >= 170
    assert len({q.id for q in queries}) == len(queries)
    assert len({q.query.strip().lower() for q in queries}) == len(queries)
    assert all(q.action for q in queries)


def test_every_query_has_a_relevant_clip_in_the_real_library(queries, labels):
    assert len(labels) >= 1000
    counts = relevance(queries, labels).sum(axis=1)
    empty = [q.query for q, n in zip(queries, counts) if n == 0]
    assert not empty, f"queries without a relevant clip: {empty}"
    assert (action_relevance(queries, labels).sum(axis=1) >= counts).all()


def test_queries_use_and_cover_the_library_vocabulary(queries, labels):
    contents = {entry["content"] for entry in labels}
    styles = {entry["style"] for entry in labels} - {None}
    used_contents = {c for q in queries for c in q.contents}
    used_styles = {s for q in queries for s in q.styles or ()}
    assert used_contents == contents  # every content judged, no unknown name
    assert used_styles == styles
    assert any(q.side == "left" for q in queries) and any(q.side == "right" for q in queries)
    assert sum(all(c.startswith("deepmimic:") for c in q.contents) for q in queries) >= 10


def test_library_vocabulary_matches_the_bandai_label_files(labels, bandai_root):
    """Bandai contents/styles of the library are the names of cfg/*_label.txt (nothing invented)."""
    cfg_contents, cfg_styles = set(), set()
    for folder in bandai.dataset_folders(bandai_root):
        cfg_contents |= set(bandai.read_labels(folder / "cfg" / "content_label.txt"))
        cfg_styles |= set(bandai.read_labels(folder / "cfg" / "style_label.txt"))
    real = [entry for entry in labels if entry["dataset"] != "deepmimic"]
    assert {entry["content"] for entry in real} <= cfg_contents
    assert {entry["style"] for entry in real} <= cfg_styles
    assert len(real) == 2 * len(list(bandai_root.glob("*/data/*.bvh")))


def test_real_items_get_the_same_labels_as_the_label_only_path(labels, bandai_root):
    """Two real BVH clips through the reader + with_mirrors agree with library_labels."""
    folder = bandai_root / "dataset-1"
    contents = bandai.read_labels(folder / "cfg" / "content_label.txt")
    styles = bandai.read_labels(folder / "cfg" / "style_label.txt")
    paths = sorted((folder / "data").glob("*.bvh"))
    chosen = [next(p for p in paths if p.stem.startswith(prefix))
              for prefix in ("dataset-1_bye_", "dataset-1_walk-left_")]
    items = with_mirrors([bandai.read_folder_item(p, contents, styles) for p in chosen])
    keys = ("content", "style", "dataset", "side", "mirrored")
    wanted = {tuple(entry[k] for k in keys) for entry in labels}
    for item in items:
        assert tuple(item.labels[k] for k in keys) in wanted
    assert [item.id for item in items[2:]] == [p.stem + "~mirror" for p in chosen]
    assert items[2].labels["content"] == "bye" and items[2].labels["side"] == "left"
    assert items[3].labels["content"] == "walk-right" and items[3].labels["side"] == "right"


def _item(item_id: str, labels: dict) -> MotionItem:
    positions = np.random.default_rng(0).normal(size=(6, 22, 3)).astype(np.float32)
    return MotionItem(item_id, item_id, Motion.smpl22(positions, 20.0), [], "test", None, labels)


def test_mirrored_labels_swap_sides():
    items = with_mirrors([
        _item("a", {"content": "wave-left-hand", "style": "elderly", "dataset": "dataset-2"}),
        _item("b", {"content": "bye", "style": "sad", "dataset": "dataset-1"}),
        _item("c", {"content": "respond", "style": "normal", "dataset": "dataset-1"}),
        _item("d", {"clip": "kick"}),
        _item("e", {"content": "walk", "style": "happy", "dataset": "dataset-1"}),
    ])
    got = {item.id: (item.labels["content"], item.labels["side"], item.labels["mirrored"]) for item in items}
    assert got == {
        "a": ("wave-left-hand", "left", False), "a~mirror": ("wave-right-hand", "right", True),
        "b": ("bye", "right", False), "b~mirror": ("bye", "left", True),
        "c": ("respond", "left", False), "c~mirror": ("respond", "right", True),
        "d": ("deepmimic:kick", "right", False), "d~mirror": ("deepmimic:kick", "left", True),
        "e": ("walk", None, False), "e~mirror": ("walk", None, True),
    }
    assert items[5].labels["style"] == "elderly" and items[8].labels["style"] is None
    np.testing.assert_allclose(items[5].motion.positions[:, 0, 0], -items[0].motion.positions[:, 0, 0], atol=1e-6)
    left_wave = Query("q1", "waves with his left hand", ("wave-left-hand", "bye"), None, "left", "wave")
    old_wave = Query("q2", "old man waving", ("wave-right-hand",), ("old", "elderly"), None, "wave")
    mask = relevance([left_wave, old_wave], items)
    assert [items[i].id for i in np.nonzero(mask[0])[0]] == ["a", "b~mirror"]
    assert [items[i].id for i in np.nonzero(mask[1])[0]] == ["a~mirror"]
    assert action_relevance([left_wave], items)[0].sum() == 3  # a, b, b~mirror (a~mirror waves right)


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "queries.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


GOOD = json.dumps({"id": "q1", "query": "someone walking", "relevant": {"content": ["walk"]}, "action": "walk"})


@pytest.mark.parametrize("bad, message", [
    ('{"id": "q2", "query": "oops"', "not valid JSON"),
    (json.dumps({"id": "q2", "query": "x", "relevant": {"content": []}, "action": "a"}), "relevant.content"),
    (json.dumps({"id": "q2", "query": "x", "relevant": {"content": ["walk"], "side": "up"}, "action": "a"}),
     "relevant.side"),
    (json.dumps({"id": "q2", "query": "", "relevant": {"content": ["walk"]}, "action": "a"}), "'query'"),
    (json.dumps({"id": "q2", "query": "x", "relevant": {"content": ["walk"], "styl": ["sad"]}, "action": "a"}),
     "unknown field"),
    (GOOD, "duplicate query id"),
])
def test_malformed_line_names_the_line(tmp_path, bad, message):
    path = _write(tmp_path, [GOOD, "", bad])
    with pytest.raises(DataError, match=rf"queries\.jsonl:3: .*{message}"):
        load_queries(path)


def test_parsed_fields(tmp_path):
    line = json.dumps({"id": "q9", "query": "sad goodbye wave", "action": "wave",
                       "relevant": {"content": ["bye", "byebye"], "style": ["sad"], "side": "right"}})
    (query,) = load_queries(_write(tmp_path, [line]))
    assert query == Query("q9", "sad goodbye wave", ("bye", "byebye"), ("sad",), "right", "wave")


# ---------------------------------------------------------------- metrics on hand-computed cases

KEYS = ("R@1", "R@5", "R@10", "nDCG@10", "action@3", "MedR")


def test_perfect_ranking():
    relevant = np.array([[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 1]], bool)
    scores = relevant + np.linspace(0, 0.1, 6)  # relevant clips on top, no ties
    result = query_metrics(scores, relevant, relevant)
    assert [result[k] for k in KEYS] == [100.0, 100.0, 100.0, 100.0, 100.0, 1.0]
    assert result["n_queries"] == 2 and result["n_clips"] == 6


def test_worst_ranking():
    n = 20
    relevant = np.zeros((1, n), bool)
    relevant[0, :2] = True
    scores = np.arange(n, dtype=float)[None]  # the two relevant clips rank 19th and 20th
    result = query_metrics(scores, relevant, relevant)
    assert result["R@1"] == result["R@5"] == result["R@10"] == result["action@3"] == 0.0
    assert result["nDCG@10"] == 0.0 and result["MedR"] == 19.0


def test_hand_computed_partial_ranking():
    # one relevant clip at rank 2 of 4; its action content also at rank 4
    relevant = np.array([[0, 1, 0, 0]], bool)
    action = np.array([[0, 1, 0, 1]], bool)
    scores = np.array([[4.0, 3.0, 2.0, 1.0]])
    result = query_metrics(scores, relevant, action)
    assert result["R@1"] == 0.0 and result["R@5"] == 100.0 and result["MedR"] == 2.0
    assert result["nDCG@10"] == pytest.approx(100.0 / math.log2(3))
    assert result["action@3"] == 100.0


def test_chance_levels_by_formula():
    n, r = 30, 3
    relevant = np.zeros((1, n), bool)
    relevant[0, :r] = True
    action = relevant.copy()
    action[0, :6] = True
    result = query_metrics(np.random.default_rng(1).normal(size=(1, n)), relevant, action)
    for k in (1, 5, 10):
        assert result[f"R@{k} chance"] == pytest.approx(100 * (1 - math.comb(n - r, k) / math.comb(n, k)))
    assert result["action@3 chance"] == pytest.approx(100 * (1 - math.comb(n - 6, 3) / math.comb(n, 3)))
    ideal = sum(1 / math.log2(p + 2) for p in range(r))
    assert result["nDCG@10 chance"] == pytest.approx(100 * sum(r / n / math.log2(p + 2) for p in range(10)) / ideal)
    assert result["MedR chance"] == pytest.approx((n + 1) / (r + 1))


def test_all_tied_scores_give_exactly_chance():
    rng = np.random.default_rng(2)
    relevant = rng.random((5, 40)) < 0.15
    relevant[:, 0] = True
    action = relevant | (rng.random((5, 40)) < 0.2)
    result = query_metrics(np.zeros((5, 40)), relevant, action)
    for key in KEYS:
        assert result[key] == pytest.approx(result[f"{key} chance"])


def test_partial_ties_are_averaged():
    # the relevant clip is tied with one other at the top: R@1 = 50 %, expected rank 1.5
    relevant = np.array([[0, 1, 0, 0]], bool)
    scores = np.array([[1.0, 1.0, 0.0, 0.0]])
    result = query_metrics(scores, relevant, relevant)
    assert result["R@1"] == 50.0 and result["R@5"] == 100.0 and result["MedR"] == 1.5
    assert result["nDCG@10"] == pytest.approx(100 * (0.5 + 0.5 / math.log2(3)))


def test_bad_metric_inputs():
    with pytest.raises(DataError, match="no relevant clip"):
        query_metrics(np.zeros((2, 3)), np.array([[1, 0, 0], [0, 0, 0]], bool), np.ones((2, 3), bool))
    with pytest.raises(DataError, match="do not match"):
        query_metrics(np.zeros((1, 3)), np.ones((1, 4), bool), np.ones((1, 4), bool))
    with pytest.raises(DataError, match="NaN"):
        query_metrics(np.full((1, 2), np.nan), np.ones((1, 2), bool), np.ones((1, 2), bool))


def test_evaluate_query_set_wires_embeddings_scores_and_relevance(tmp_path):
    """A real (untrained) checkpoint: the figures are query_metrics of the library's scores as
    search ranks them (Retriever.score_texts), against the queries' relevance."""
    from inference_server.model import create_checkpoint
    from inference_server.retriever import Retriever
    checkpoint = create_checkpoint(tmp_path / "model", preset="test")
    items = with_mirrors([_item("a", {"content": "wave-left-hand", "style": "normal", "dataset": "dataset-2"})])
    queries = [Query("q1", "left wave", ("wave-left-hand",), None, "left", "wave"),
               Query("q2", "a person waves the right hand, then bows", ("wave-right-hand",), None, "right", "wave")]
    result = evaluate_query_set(checkpoint, items, queries, batch_size=2)
    retriever = Retriever.load(checkpoint, device="cpu")
    scores = retriever.score_texts([query.query for query in queries],
                                   retriever.embed_motions([item.motion for item in items]))
    expected = query_metrics(scores, relevance(queries, items), action_relevance(queries, items))
    numbers = [key for key, value in expected.items() if isinstance(value, float)]
    assert numbers and all(result[key] == pytest.approx(expected[key], abs=1e-4) for key in numbers)
    assert result["n_clips"] == 2 and result["fingerprint"] == retriever.fingerprint
    assert result["model"] == str(checkpoint)
