"""MaxSim search over an index's patch store: exact brute force and the two-stage fast path.

score(query, motion) = mean over the query's tokens of the max cosine over the motion's
patches (the method's late interaction). Both paths run in torch on the store's device.

- exact: the store is decoded chunk by chunk (bounded memory), all queries of a batch are
  packed into one matrix so each decoded chunk is multiplied once, and a running top-k
  is kept per query.
- fast: centroid interaction (ivf.py) picks `rerank` candidates, which are scored exactly.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from inference_server.errors import DataError, ModelError

# Bytes of decoded patches + similarities one exact-search chunk may hold.
CHUNK_BYTES = 64 << 20


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


def maxsim_block(patches: torch.Tensor, packed: torch.Tensor, averaging: torch.Tensor) -> torch.Tensor:
    """patches (n, P, d) x packed query tokens (sumL, d) -> (B, n) MaxSim scores.

    averaging (sumL, B) holds 1/L_b where token j belongs to query b: mean per query.
    """
    n, patch_count, dim = patches.shape
    sims = (patches.reshape(n * patch_count, dim) @ packed.T).view(n, patch_count, -1)
    return (sims.amax(dim=1) @ averaging).T


def pack_queries(queries: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Queries (L_b, d) -> packed (sumL, d) and the averaging matrix (sumL, B)."""
    packed = torch.cat(queries)
    lengths = torch.tensor([len(query) for query in queries], device=packed.device)
    owner = torch.repeat_interleave(torch.arange(len(queries), device=packed.device), lengths)
    averaging = torch.zeros(len(packed), len(queries), device=packed.device)
    averaging[torch.arange(len(packed), device=packed.device), owner] = 1.0 / lengths[owner].float()
    return packed, averaging


def exact_search(store, queries: list[torch.Tensor], k: int,
                 rows: torch.Tensor | None = None) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Exact top-k (scores, rows) per query over the whole store, or over `rows` only."""
    packed, averaging = pack_queries(queries)
    device = packed.device
    total = len(store) if rows is None else len(rows)
    chunk = max(1, CHUNK_BYTES // (4 * store.patches * (store.dim + len(packed))))
    best_scores = torch.empty(len(queries), 0, device=device)
    best_rows = torch.empty(len(queries), 0, dtype=torch.long, device=device)
    for start in range(0, total, chunk):
        stop = min(total, start + chunk)
        ids = torch.arange(start, stop, device=device) if rows is None else rows[start:stop].to(device)
        block = slice(start, stop) if rows is None else ids
        scores = torch.cat([best_scores, maxsim_block(store.decode(block), packed, averaging)], dim=1)
        candidates = torch.cat([best_rows, ids.expand(len(queries), -1)], dim=1)
        best_scores, order = scores.topk(min(k, scores.shape[1]), dim=1)
        best_rows = candidates.gather(1, order)
    return [(best_scores[b].cpu(), best_rows[b].cpu()) for b in range(len(queries))]


def fast_search(store, candidates, query: torch.Tensor, k: int, config: FastPath) -> tuple[torch.Tensor, torch.Tensor]:
    """Two-stage top-k: centroid-interaction candidates, then exact MaxSim on them."""
    rerank = min(len(store), max(config.rerank, config.rerank_per_k * k))
    rows = candidates.candidates(query, rerank, config.pool * rerank, config.probes)
    return exact_search(store, [query], k, rows)[0]


def token_alignment(store, query: torch.Tensor, rows: torch.Tensor) -> list[np.ndarray]:
    """For each row, the argmax patch (L,) of every query token (the token -> patch alignment)."""
    patches = store.decode(rows.to(query.device))
    best = torch.einsum("npd,ld->nlp", patches, query).argmax(dim=2)
    return list(best.cpu().numpy().astype(np.int64))
