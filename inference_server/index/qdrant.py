"""The distributed engine: an index's patch vectors in a Qdrant multivector collection.

Each motion is one point (id = its row in the index, payload motion_id / name / model
fingerprint) whose vector is its 196 patch vectors, compared with MAX_SIM (Qdrant sums the
per-token maxima; ranking is the same as our mean). Qdrant returns candidates; we re-rank
them exactly with our own store, so scores and alignments are identical to a local search.

Targets (URL): "http(s)://host:port" (a Qdrant server or cluster; API key from
$QDRANT_API_KEY), "local:PATH" (qdrant-client's embedded local mode, a folder), ":memory:".
"""
from __future__ import annotations

import os

import numpy as np
from tqdm import tqdm

from inference_server.errors import ModelError, T2MError

PUSH_BATCH = 32
OVERSAMPLE = 4          # candidates asked from Qdrant per result wanted
MIN_CANDIDATES = 64


def _qdrant():
    try:
        import qdrant_client
        from qdrant_client import models
    except ImportError:
        raise T2MError("Qdrant support needs qdrant-client: pip install 't2m[qdrant]'") from None
    return qdrant_client, models


def open_client(target: str):
    """A QdrantClient for "http(s)://host:port", "local:PATH" or ":memory:"."""
    qdrant_client, _ = _qdrant()
    if target.startswith(("http://", "https://")):
        return qdrant_client.QdrantClient(url=target, api_key=os.environ.get("QDRANT_API_KEY") or None)
    if target.startswith("local:") and len(target) > len("local:"):
        return qdrant_client.QdrantClient(path=target[len("local:"):])
    if target == ":memory:":
        return qdrant_client.QdrantClient(location=":memory:")
    raise T2MError(f"Qdrant target {target!r} is not http(s)://host:port, local:PATH or :memory:")


def push_index(index, target, collection: str, batch_size: int = PUSH_BATCH, progress: bool = True,
               shards: int | None = None, replicas: int | None = None) -> dict:
    """(Re)create `collection` at target (a URL or an open client) with every motion of index.

    shards / replicas: the collection's shard_number / replication_factor on a Qdrant cluster.
    """
    _, models = _qdrant()
    client = open_client(target) if isinstance(target, str) else target
    if client.collection_exists(collection):
        client.delete_collection(collection)
    cluster = {key: value for key, value in (("shard_number", shards), ("replication_factor", replicas))
               if value is not None}
    client.create_collection(collection, vectors_config=models.VectorParams(
        size=index.store.dim, distance=models.Distance.DOT,
        multivector_config=models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM)), **cluster)
    fingerprint = index.manifest["model"]["fingerprint"]
    for start in tqdm(range(0, len(index), batch_size), desc="pushing to Qdrant", unit="batch",
                      disable=not progress):
        rows = range(start, min(len(index), start + batch_size))
        vectors = index.store.decode(slice(rows.start, rows.stop)).cpu().numpy()
        client.upsert(collection, wait=True, points=[
            models.PointStruct(id=row, vector=vectors[row - start].tolist(),
                               payload={"motion_id": index.meta(row)["motion_id"],
                                        "name": index.meta(row)["name"], "model": fingerprint})
            for row in rows])
    return {"collection": collection, "points": client.count(collection, exact=True).count,
            "dim": index.store.dim, "model": fingerprint}


class QdrantCandidates:
    """Candidate motion ids from a Qdrant collection made by push_index."""

    def __init__(self, url_or_path: str, collection: str):
        self.target, self.collection = url_or_path, collection
        self.client = open_client(url_or_path)
        if not self.client.collection_exists(collection):
            raise ModelError(f"Qdrant at {url_or_path} has no collection {collection!r} (t2m index push)")

    def candidates(self, query: np.ndarray, k: int) -> list[str]:
        """motion_ids of the k best motions for query (L, d) by Qdrant's MAX_SIM, best first."""
        return [point.payload["motion_id"] for point in self._query(query, k, ["motion_id"])]

    def fingerprint(self) -> str | None:
        """The model fingerprint the pushed vectors were made with (None for an empty collection)."""
        points, _ = self.client.scroll(self.collection, limit=1, with_payload=["model"])
        return points[0].payload.get("model") if points else None

    def _query(self, query, limit: int, payload):
        vectors = np.asarray(getattr(query, "vectors", query), dtype=np.float32)
        response = self.client.query_points(self.collection, query=vectors.tolist(), limit=int(limit),
                                            with_payload=payload)
        return response.points

    def close(self) -> None:
        self.client.close()


class QdrantSearcher:
    """search_batch() through Qdrant: Qdrant proposes candidates, the index re-ranks them exactly.

    Stands in for MotionIndex.search_batch in the Engine (t2m serve --qdrant URL --collection NAME).
    """

    def __init__(self, url: str, collection: str, index, oversample: int = OVERSAMPLE,
                 min_candidates: int = MIN_CANDIDATES):
        self.index = index
        self.source = QdrantCandidates(url, collection)
        self.oversample, self.min_candidates = oversample, min_candidates
        pushed = self.source.fingerprint()
        built = index.manifest["model"]["fingerprint"]
        if pushed is not None and pushed != built:
            raise ModelError(f"Qdrant collection {collection!r} holds vectors of model {pushed}, "
                             f"but index {index.path} is of model {built}: push the index again")

    def search_batch(self, queries: list, k: int = 10, align: bool = False) -> list:
        """As MotionIndex.search_batch: Qdrant's candidates re-ranked exactly by the index."""
        wanted = max(self.min_candidates, self.oversample * int(k))
        rows = []
        for query in queries:
            ids = self.source.candidates(query, wanted)
            rows.append([self.index.row(motion_id) for motion_id in ids if motion_id in self.index])
        return self.index.search_batch(queries, k, rows=rows, align=align)
