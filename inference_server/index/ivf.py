"""The cheap candidate stage of the fast search path: PLAID-style centroid interaction.

Every patch embedding is assigned to one of C coarse centroids (spherical k-means over a
sample of the library's patches). An inverted list per centroid holds the motions that
have at least one patch there. For a query, each token probes its `probes` most similar
centroids; a motion's approximate MaxSim is the mean over tokens of the best probed
centroid it contains (a token whose probes miss the motion counts the weakest probe's
score: its true max is probably no higher). The best `pool` motions by that estimate are
scored again with full centroid interaction (every patch as its centroid, no probing),
and the best `count` of those go to the exact re-rank.
"""
from __future__ import annotations

import numpy as np
import torch

from inference_server.index.quantize import kmeans

SAMPLE_PATCHES = 65536
MAX_CENTROIDS = 4096  # codes are stored as int16


def centroid_count(total_patches: int) -> int:
    """Coarse centroids for a library of that many patches: ~2 sqrt(n) as a power of two, 16..4096."""
    wanted = 2 * np.sqrt(max(total_patches, 1))
    return int(np.clip(2 ** np.round(np.log2(wanted)), 16, MAX_CENTROIDS))


def train_centroids(sample: np.ndarray, total_patches: int, seed: int = 0) -> np.ndarray:
    """(C, d) unit centroids from a (n, d) float32 sample of the library's patches."""
    points = torch.from_numpy(np.ascontiguousarray(sample, dtype=np.float32))
    clusters = min(centroid_count(total_patches), len(points))
    return kmeans(points, clusters, iterations=8, seed=seed, spherical=True).numpy()


def assign_patches(vectors: np.ndarray, centroids: np.ndarray, chunk: int = 8192) -> np.ndarray:
    """(n, P) int16 code of the (nearly) nearest centroid of every patch of (n, P, d) vectors.

    Products in bfloat16 (2-3x faster on CPU): a near-tie may go to the runner-up centroid,
    which costs nothing (PQ encodes the residual to whichever centroid was chosen).
    """
    flat = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).reshape(-1, vectors.shape[-1])
    table = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32)).bfloat16().T
    codes = torch.cat([(flat[start:start + chunk].bfloat16() @ table).max(dim=1).indices
                       for start in range(0, len(flat), chunk)]) if len(flat) else torch.zeros(0, dtype=torch.long)
    return codes.to(torch.int16).numpy().reshape(vectors.shape[:-1])


def inverted_lists(codes: np.ndarray, clusters: int, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """CSR inverted lists from (N, P) codes: (rows int32 sorted by centroid then row, offsets (C+1,))."""
    parts = []
    for start in range(0, len(codes), chunk):
        block = np.asarray(codes[start:start + chunk], dtype=np.int64)
        keys = block * len(codes) + (start + np.arange(len(block)))[:, None]
        parts.append(np.unique(keys))
    keys = np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
    offsets = np.searchsorted(keys // max(len(codes), 1), np.arange(clusters + 1)).astype(np.int64)
    return (keys % max(len(codes), 1)).astype(np.int32), offsets


class CentroidCandidates:
    """Candidate generation over inverted lists (see the module docstring)."""

    def __init__(self, centroids: np.ndarray, list_rows: np.ndarray, list_offsets: np.ndarray,
                 codes: torch.Tensor, device: str | torch.device = "cpu"):
        self.codes = codes  # (N, P) centroid of every patch
        self.motions = len(codes)
        self.centroids = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32)).to(device)
        self.rows = torch.from_numpy(np.ascontiguousarray(list_rows, dtype=np.int64)).to(device)
        self.offsets = torch.from_numpy(np.ascontiguousarray(list_offsets, dtype=np.int64)).to(device)

    def candidates(self, query: torch.Tensor, count: int, pool: int, probes: int) -> torch.Tensor:
        """Rows of the `count` most promising motions for query (L, d), best first."""
        sims = query @ self.centroids.T  # (L, C)
        rough = self.probed_scores(sims, probes)
        pooled = rough.topk(min(pool, self.motions)).indices
        full = self.interaction_scores(sims, pooled)
        return pooled[full.topk(min(count, len(pooled))).indices]

    def probed_scores(self, sims: torch.Tensor, probes: int) -> torch.Tensor:
        """(N,) estimate of every motion's MaxSim from the probed centroids' inverted lists."""
        top_scores, top_ids = sims.topk(min(probes, sims.shape[1]), dim=1)
        tokens, device = sims.shape[0], sims.device
        starts = self.offsets[top_ids].reshape(-1)
        lengths = (self.offsets[top_ids + 1] - self.offsets[top_ids]).reshape(-1)
        within = torch.arange(int(lengths.sum()), device=device) - torch.repeat_interleave(
            lengths.cumsum(0) - lengths, lengths)
        postings = self.rows[torch.repeat_interleave(starts, lengths) + within]
        token_ids = torch.repeat_interleave(
            torch.arange(tokens, device=device).repeat_interleave(top_ids.shape[1]), lengths)
        values = torch.repeat_interleave(top_scores.reshape(-1), lengths)
        best = top_scores[:, -1:].expand(tokens, self.motions).reshape(-1).clone()
        best.scatter_reduce_(0, token_ids * self.motions + postings, values, reduce="amax")
        return best.view(tokens, self.motions).mean(0)

    def interaction_scores(self, sims: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """(len(rows),) MaxSim of the query with each motion's patches replaced by their centroids."""
        codes = self.codes.index_select(0, rows)
        per_patch = sims.index_select(1, codes.reshape(-1).long()).view(len(sims), *codes.shape)  # (L, n, P)
        return per_patch.amax(dim=2).mean(dim=0)
