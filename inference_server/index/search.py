"""MaxSim search over an index's patch store: exact brute force and the two-stage fast path.

The scores are maxsim.py's (MaxSim, global or hybrid, as the index's model pools); this module
only decides which patches are decoded and scored when. Both paths run in torch on the store's
device. An index built with a global-pooling checkpoint (the baseline) ranks by the cosine of
the mean token and the mean patch (global_search over the cached mean patches), exactly.

- exact: the store is decoded chunk by chunk (bounded memory, cache-sized chunks), all
  queries of a batch are packed into one matrix so each decoded chunk is multiplied once;
  one (queries, motions) score buffer, then top-k.
- fast: centroid interaction (ivf.py) picks `rerank` candidates, which are scored exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from inference_server.errors import DataError, ModelError
from inference_server.maxsim import PackedQueries, best_patches, cosine_of_means, motion_means

# Bytes of decoded patches + similarities per chunk. CPU: small enough to stay in the cache
# between decoding and the matrix product (memory bandwidth, not arithmetic, bounds search).
# GPU: large, so kernel launches do not dominate.
CHUNK_BYTES = 2 << 20
GPU_CHUNK_BYTES = 512 << 20


@dataclass
class Hit:
    row: int
    score: float
    alignment: np.ndarray | None = None  # (L,) best patch of each query token (patch = window * 14 + part)


@dataclass
class FastPath:
    """Knobs of the two-stage path (defaults measured by bench/search.py: recall@10 >= 0.99)."""
    probes: int = 8         # centroids probed per query token
    pool: int = 2           # motions scored by full centroid interaction = pool x rerank
    rerank: int = 256       # motions scored exactly (at least rerank_per_k x k)
    rerank_per_k: int = 8


def as_query(query, dim: int, device: torch.device) -> torch.Tensor:
    """A TextEmbedding or an (L, d) array of unit vectors -> float32 tensor on device."""
    vectors = getattr(query, "vectors", query)
    vectors = torch.as_tensor(np.asarray(vectors, dtype=np.float32) if not isinstance(vectors, torch.Tensor)
                              else vectors, dtype=torch.float32)
    if vectors.dim() != 2 or vectors.shape[0] == 0:
        raise DataError(f"a query must be (tokens, {dim}) vectors with at least one token, got {tuple(vectors.shape)}")
    if vectors.shape[1] != dim:
        raise ModelError(f"query vectors have {vectors.shape[1]} dims but the index has {dim}: "
                         "embed with the model the index was built with")
    if not torch.isfinite(vectors).all():
        raise DataError("query vectors contain NaN or infinity")
    return vectors.to(device)


def exact_search(store, queries: list[torch.Tensor], k: int, rows: torch.Tensor | None = None,
                 pooling: str = "maxsim") -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Exact top-k (scores, rows) per query over the whole store, or over `rows` only, with the
    index's pooling (maxsim.py scores each decoded chunk)."""
    packed = PackedQueries.from_list(queries)
    device = packed.tokens.device
    total = len(store) if rows is None else len(rows)
    budget = CHUNK_BYTES if device.type == "cpu" else GPU_CHUNK_BYTES
    chunk = max(1, budget // (4 * store.patches * (store.dim + len(packed.tokens))))
    scores = torch.empty(len(queries), total, device=device)
    for start in range(0, total, chunk):
        block = slice(start, min(total, start + chunk))
        patches = store.decode(block if rows is None else rows[block].to(device))
        scores[:, block] = packed.scores(patches, pooling)
    best_scores, order = scores.topk(min(k, total), dim=1)
    best_rows = order if rows is None else rows.to(device)[order]
    return [(best_scores[b].cpu(), best_rows[b].cpu()) for b in range(len(queries))]


def fast_search(store, candidates, query: torch.Tensor, k: int, config: FastPath,
                pooling: str = "maxsim") -> tuple[torch.Tensor, torch.Tensor]:
    """Two-stage top-k: centroid-interaction candidates, then exact scores on them."""
    rerank = min(len(store), max(config.rerank, config.rerank_per_k * k))
    rows = candidates.candidates(query, rerank, config.pool * rerank, config.probes)
    return exact_search(store, [query], k, rows, pooling)[0]


def pooled_vectors(store) -> torch.Tensor:
    """(N, d) unit mean patch of every motion: the motion side of global pooling."""
    budget = CHUNK_BYTES if store.device.type == "cpu" else GPU_CHUNK_BYTES
    chunk = max(1, budget // (4 * store.patches * store.dim))
    means = [motion_means(store.decode(slice(start, start + chunk))) for start in range(0, len(store), chunk)]
    return torch.cat(means) if means else torch.zeros((0, store.dim), device=store.device)


def global_search(pooled: torch.Tensor, queries: list[torch.Tensor], k: int,
                  rows: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Top-k by the global-pooling baseline: cosine of the mean token and the mean patch."""
    candidates = pooled if rows is None else pooled[rows.to(pooled.device)]
    scores = cosine_of_means(PackedQueries.from_list(queries).text_means, candidates)
    scores, order = scores.topk(min(k, len(candidates)), dim=1)
    found = order if rows is None else rows.to(pooled.device)[order]
    return [(scores[b].cpu(), found[b].cpu()) for b in range(len(queries))]


def token_alignment(store, query: torch.Tensor, rows: torch.Tensor) -> list[np.ndarray]:
    """For each row, the argmax patch (L,) of every query token (the token -> patch alignment)."""
    _, patches = best_patches(query, store.decode(rows.to(query.device)))
    return list(patches.cpu().numpy().astype(np.int64))
