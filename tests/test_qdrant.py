"""The Qdrant engine in qdrant-client's local mode: push, candidates, exact re-rank."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from inference_server.cli import main as t2m_main
from inference_server.errors import ModelError, T2MError
from inference_server.index import MotionIndex
from inference_server.index.build import atomic_folder, write_index
from inference_server.index.synthetic import ClusteredSpace

pytest.importorskip("qdrant_client")
from inference_server.index.qdrant import QdrantCandidates, QdrantSearcher, open_client, push_index  # noqa: E402

torch.set_num_threads(2)
SPACE = ClusteredSpace(dim=32, concepts=64, seed=3)
MOTIONS = 60


def write_synthetic(folder, fingerprint="a" * 64, storage="int8") -> MotionIndex:
    embeddings = SPACE.embeddings(MOTIONS)
    metas = [{"motion_id": f"clip-{row}", "name": f"clip {row}", "duration": 5.0, "fps": 30.0}
             for row in range(MOTIONS)]
    with atomic_folder(folder) as tmp:
        write_index(tmp, embeddings, metas, None, {"name": "syn", "fingerprint": fingerprint, "dim": 32}, storage)
    return MotionIndex.load(folder, device="cpu")


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("qdrant")
    index = write_synthetic(folder / "index")
    target = f"local:{folder / 'qdrant'}"
    report = push_index(index, target, "motions", batch_size=16, progress=False)
    return {"index": index, "target": target, "report": report, "folder": folder}


def test_push_stores_one_multivector_point_per_motion(pushed):
    assert pushed["report"]["points"] == MOTIONS and pushed["report"]["dim"] == 32
    searcher = QdrantSearcher(pushed["target"], "motions", pushed["index"])
    try:
        points = searcher.source.client.retrieve("motions", [7], with_vectors=True)
        vectors = np.asarray(points[0].vector, dtype=np.float32)
        assert vectors.shape == (196, 32)
        np.testing.assert_allclose(vectors, pushed["index"].patches(7), atol=1e-6)
        assert points[0].payload["motion_id"] == "clip-7"
    finally:
        searcher.source.close()


def test_candidates_and_exact_rerank_match_the_exact_search(pushed):
    index = pushed["index"]
    searcher = QdrantSearcher(pushed["target"], "motions", index)
    try:
        queries = SPACE.queries(8, MOTIONS, seed=5)
        through_qdrant = searcher.search_batch(queries, k=5, align=True)
        for query, hits in zip(queries, through_qdrant):
            exact = index.search(query, k=5, exact=True, align=True)
            assert hits[0].row == exact[0].row
            assert hits[0].score == pytest.approx(exact[0].score, abs=1e-6)
            np.testing.assert_array_equal(hits[0].alignment, exact[0].alignment)
            ids = searcher.source.candidates(query, 5)
            assert len(ids) == 5 and ids[0] == index.meta(exact[0].row)["motion_id"]
    finally:
        searcher.source.close()


def test_candidates_api_takes_a_plain_array(pushed):
    source = QdrantCandidates(pushed["target"], "motions")
    try:
        query = SPACE.queries(1, MOTIONS, seed=9)[0]
        assert source.candidates(query, 3) == source.candidates(torch.from_numpy(query).numpy(), 3)
        assert all(isinstance(motion_id, str) for motion_id in source.candidates(query, 3))
    finally:
        source.close()


def test_a_collection_of_another_model_is_refused(pushed, tmp_path):
    other = write_synthetic(tmp_path / "other", fingerprint="b" * 64)
    with pytest.raises(ModelError, match="b" * 64):
        QdrantSearcher(pushed["target"], "motions", other).source.close()


def test_bad_targets_and_missing_collections_are_user_errors(pushed):
    with pytest.raises(T2MError, match="local:PATH"):
        open_client("ftp://somewhere")
    with pytest.raises(ModelError, match="nope"):
        QdrantCandidates(pushed["target"], "nope")


def test_cli_push(tmp_path, capsys):
    write_synthetic(tmp_path / "index", storage="fp16")
    assert t2m_main(["index", "push", str(tmp_path / "index"), "--qdrant", f"local:{tmp_path / 'q'}",
                     "--collection", "lib", "--shards", "2", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["points"] == MOTIONS and report["collection"] == "lib"
    client = open_client(f"local:{tmp_path / 'q'}")
    try:
        assert client.count("lib").count == MOTIONS
    finally:
        client.close()
