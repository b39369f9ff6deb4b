"""The index's patch store and search core on synthetic embeddings (no model needed)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from inference_server.errors import DataError, ModelError
from inference_server.index import MotionIndex, search, store
from inference_server.index.build import atomic_folder, write_index
from inference_server.index.quantize import make_codec
from inference_server.index.synthetic import ClusteredSpace
from inference_server.maxsim import global_scores, maxsim_scores, pooled_scores

torch.set_num_threads(2)
SPACE = ClusteredSpace(dim=64, concepts=256)


def make_index(folder, embeddings, storage="fp32", **kwargs) -> MotionIndex:
    metas = [{"motion_id": f"m{row:05d}", "name": f"motion {row}", "duration": 4.0, "fps": 20.0}
             for row in range(len(embeddings))]
    positions = [np.full((row % 3 + 1, 22, 3), row, np.float32) for row in range(len(embeddings))]
    with atomic_folder(folder) as tmp:
        write_index(tmp, embeddings, metas, positions, {"name": "synthetic", "fingerprint": "f" * 64,
                                                        "dim": embeddings.shape[2]}, storage, **kwargs)
    return MotionIndex.load(folder, device="cpu")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    embeddings = SPACE.embeddings(300)
    return embeddings, make_index(tmp_path_factory.mktemp("small") / "index", embeddings)


def reference_topk(embeddings, query, k):
    scores = maxsim_scores(torch.from_numpy(query), torch.from_numpy(embeddings))[0]
    top = scores.topk(k)
    return top.values.numpy(), top.indices.numpy()


def test_exact_search_equals_brute_force_reference(small, monkeypatch):
    embeddings, index = small
    monkeypatch.setattr(search, "CHUNK_BYTES", 64 * 196 * 4 * 80)  # a few motions per chunk
    queries = SPACE.queries(6, len(embeddings), tokens=(3, 15))
    batched = index.search_batch(queries, k=10, exact=True)
    for query, hits in zip(queries, batched):
        values, rows = reference_topk(embeddings, query, 10)
        assert [hit.row for hit in hits] == rows.tolist()
        np.testing.assert_allclose([hit.score for hit in hits], values, rtol=1e-5, atol=1e-6)


def test_hits_carry_the_token_patch_alignment(small):
    embeddings, index = small
    query = SPACE.queries(1, len(embeddings))[0]
    assert all(hit.alignment is None for hit in index.search(query, k=3, exact=True))  # only when asked for
    for hit in index.search(query, k=3, exact=True, align=True):
        expected = (query @ embeddings[hit.row].T).argmax(axis=1)
        np.testing.assert_array_equal(hit.alignment, expected)
        assert hit.score == pytest.approx((query @ embeddings[hit.row].T).max(axis=1).mean(), abs=1e-5)


@pytest.mark.parametrize("pooling", ["maxsim", "global", "hybrid"])
def test_index_search_scores_are_maxsim_py_scores_for_random_tensors(tmp_path, monkeypatch, pooling):
    """index/search.py only chunks: every score it ranks by is maxsim.py's (one home)."""
    generator = torch.Generator().manual_seed(11)
    embeddings = torch.nn.functional.normalize(torch.randn(40, 196, 16, generator=generator), dim=-1).numpy()
    metas = [{"motion_id": str(row), "name": str(row), "duration": 4.0, "fps": 20.0} for row in range(40)]
    with atomic_folder(tmp_path / "index") as tmp:
        write_index(tmp, embeddings, metas, None, {"name": "r", "fingerprint": "r", "dim": 16, "pooling": pooling},
                    "fp32")
    index = MotionIndex.load(tmp_path / "index", device="cpu")
    monkeypatch.setattr(search, "CHUNK_BYTES", 16 * 196 * 4 * 7)  # a few motions per decoded chunk
    queries = [torch.nn.functional.normalize(torch.randn(length, 16, generator=generator), dim=-1).numpy()
               for length in (1, 4, 9)]
    for query, hits in zip(queries, index.search_batch(queries, k=40, exact=True)):
        expected = pooled_scores(torch.from_numpy(query), torch.from_numpy(embeddings), pooling=pooling)[0]
        scores = np.array([hit.score for hit in sorted(hits, key=lambda hit: hit.row)])
        np.testing.assert_allclose(scores, expected.numpy(), rtol=1e-5, atol=1e-6)


def test_search_restricted_to_rows_ranks_only_those(small):
    embeddings, index = small
    query = SPACE.queries(1, len(embeddings), seed=3)[0]
    subset = [5, 17, 42, 99, 250]
    hits = index.search(query, k=3, rows=subset)
    values, rows = reference_topk(embeddings[subset], query, 3)
    assert [hit.row for hit in hits] == [subset[r] for r in rows]


def test_fast_path_agrees_with_exact_on_clustered_data(tmp_path):
    embeddings = SPACE.embeddings(1500, dtype=np.float16)
    index = make_index(tmp_path / "index", embeddings, storage="fp16")
    queries = SPACE.queries(20, len(embeddings), seed=11)
    exact = index.search_batch(queries, k=10, exact=True)
    recalls = []
    for query, truth in zip(queries, exact):
        scores, rows = search.fast_search(index.store, index.candidates, torch.from_numpy(query), 10, index.fast_path)
        recalls.append(len(set(rows.tolist()) & {hit.row for hit in truth}) / 10)
        assert rows[0] == truth[0].row
    assert np.mean(recalls) >= 0.97


def test_fast_path_is_taken_above_the_threshold(small, monkeypatch):
    embeddings, index = small
    monkeypatch.setattr(store, "FAST_PATH_MIN_MOTIONS", 10)
    calls = []
    original = search.fast_search
    monkeypatch.setattr(store, "fast_search", lambda *a: calls.append(1) or original(*a))
    query = SPACE.queries(1, len(embeddings), seed=5)[0]
    assert index.search(query, k=5)[0].row == index.search(query, k=5, exact=True)[0].row
    assert calls == [1]


def test_int8_round_trip_error_is_within_half_a_step():
    vectors = SPACE.embeddings(20)
    codec = make_codec("int8", 196, 64)
    fields = codec.encode(vectors)
    decoded = codec.decode({name: torch.from_numpy(value) for name, value in fields.items()}).numpy()
    step = fields["scales"].astype(np.float32)[..., None]
    assert np.all(np.abs(decoded - vectors) <= step / 2 + 1e-7)
    assert np.abs(decoded - vectors).max() < 0.01


def pq_error(index, embeddings, rows=50) -> np.ndarray:
    decoded = index.store.decode(slice(0, rows)).numpy()
    return np.linalg.norm(decoded - embeddings[:rows], axis=-1)


def test_pq_round_trip_error_is_bounded_and_beats_the_centroids_alone(tmp_path):
    embeddings = SPACE.embeddings(400)
    index = make_index(tmp_path / "pq", embeddings, storage="pq")  # 56 subspaces: 64 dims split unevenly
    error = pq_error(index, embeddings)
    centroids = np.load(tmp_path / "pq" / "centroids.npy")
    codes = np.load(tmp_path / "pq" / "centroid_codes.npy")[:50]
    coarse = np.linalg.norm(centroids[codes] - embeddings[:50], axis=-1)
    assert error.mean() < 0.15 and error.max() < 0.5
    assert error.mean() < 0.3 * coarse.mean()
    assert index.manifest["bytes_per_motion"] == 196 * (56 + 2)
    coarser = make_index(tmp_path / "pq16", embeddings, storage="pq", pq_subspaces=16)
    assert coarser.manifest["bytes_per_motion"] == 196 * (16 + 2)
    assert error.mean() < pq_error(coarser, embeddings).mean()
    query = SPACE.queries(1, len(embeddings), seed=2)[0]
    approx = index.search(query, k=1, exact=True)[0]
    assert approx.row == reference_topk(embeddings, query, 1)[1][0]


def test_motion_and_metadata_round_trip(small):
    _, index = small
    assert len(index) == 300 and index.ids[7] == "m00007" and index.row("m00007") == 7
    assert "m00007" in index and "nope" not in index
    motion = index.motion(7)
    assert motion.positions.shape == (2, 22, 3) and np.all(motion.positions == 7) and motion.fps == 20.0
    with pytest.raises(KeyError):
        index.row("nope")


def test_similar_leaves_the_motion_out(small):
    embeddings, index = small
    hits = index.similar(3, k=4)
    assert len(hits) == 4 and all(hit.row != 3 for hit in hits)
    query = embeddings[3][: index.valid_windows(3) * 14]
    values, rows = reference_topk(embeddings, query, 5)
    assert [hit.row for hit in hits] == [row for row in rows.tolist() if row != 3][:4]


def test_bad_queries_are_refused(small):
    _, index = small
    with pytest.raises(ModelError, match="64"):
        index.search(np.ones((3, 32), np.float32))
    with pytest.raises(DataError):
        index.search(np.ones((0, 64), np.float32))
    with pytest.raises(DataError):
        index.search(np.full((2, 64), np.nan, np.float32))


def test_a_failed_write_keeps_the_old_index_and_leaves_no_temporary(small, tmp_path):
    embeddings, _ = small
    target = tmp_path / "index"
    make_index(target, embeddings[:20])
    before = sorted(path.name for path in tmp_path.iterdir())
    with pytest.raises(RuntimeError, match="disk on fire"):
        with atomic_folder(target) as tmp:
            write_index(tmp, embeddings[:30], [{"motion_id": str(i)} for i in range(30)], None,
                        {"name": "x", "fingerprint": "x", "dim": 64})
            raise RuntimeError("disk on fire")
    assert sorted(path.name for path in tmp_path.iterdir()) == before
    assert len(MotionIndex.load(target, device="cpu")) == 20


def test_an_index_of_a_global_pooling_model_ranks_by_the_global_score(tmp_path):
    embeddings = SPACE.embeddings(120)
    metas = [{"motion_id": str(row), "name": str(row), "duration": 4.0, "fps": 20.0} for row in range(120)]
    with atomic_folder(tmp_path / "index") as tmp:
        write_index(tmp, embeddings, metas, None, {"name": "g", "fingerprint": "g", "dim": 64, "pooling": "global"},
                    "fp32")
    index = MotionIndex.load(tmp_path / "index", device="cpu")
    query = SPACE.queries(1, 120, seed=4)[0]
    expected = global_scores(torch.from_numpy(query), torch.from_numpy(embeddings))[0].topk(5)
    hits = index.search(query, k=5)
    assert [hit.row for hit in hits] == expected.indices.tolist()
    np.testing.assert_allclose([hit.score for hit in hits], expected.values.numpy(), atol=1e-5)
    restricted = index.search(query, k=2, rows=[3, 50, 77])
    assert {hit.row for hit in restricted} <= {3, 50, 77} and len(restricted) == 2


def test_an_index_of_a_hybrid_model_ranks_by_the_hybrid_score_and_keeps_alignments(tmp_path):
    embeddings = SPACE.embeddings(120)
    metas = [{"motion_id": str(row), "name": str(row), "duration": 4.0, "fps": 20.0} for row in range(120)]
    with atomic_folder(tmp_path / "index") as tmp:
        write_index(tmp, embeddings, metas, None, {"name": "h", "fingerprint": "h", "dim": 64, "pooling": "hybrid"},
                    "fp32")
    index = MotionIndex.load(tmp_path / "index", device="cpu")
    query = SPACE.queries(1, 120, seed=5)[0]
    expected = pooled_scores(torch.from_numpy(query), torch.from_numpy(embeddings), pooling="hybrid")[0].topk(5)
    for fast in (False, True):
        hits = index.search(query, k=5, fast=fast, align=True)
        assert [hit.row for hit in hits] == expected.indices.tolist()
        np.testing.assert_allclose([hit.score for hit in hits], expected.values.numpy(), atol=1e-5)
        np.testing.assert_array_equal(hits[0].alignment, (query @ embeddings[hits[0].row].T).argmax(axis=1))
