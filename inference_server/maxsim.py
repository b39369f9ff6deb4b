"""Late interaction scores between text tokens and motion patches (torch).

All vectors are L2-normalised, so a dot product is a cosine.
- MaxSim (the method): score(text, motion) = mean over the text's valid tokens of the
  max cosine over the motion's 196 patches; the argmax patch is the token's alignment.
- Global (the baseline): mean of valid tokens vs mean of patches, each re-normalised.
- Hybrid: the mean of the two. The global term gives every clip a whole-body, whole-clip
  signal from the first step, which MaxSim alone learns late on small budgets; the MaxSim
  term keeps the word-to-patch alignments (its argmax is what explain and the bone colours show).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from inference_server.jami import NUM_PATCHES, WINDOWS

POOLINGS = ("maxsim", "global", "hybrid")
# elements of the (B, chunk, Lq, P) similarity block computed at once (256 MB in fp32)
CHUNK_ELEMENTS = 1 << 26


def _as_batch(queries: torch.Tensor, query_mask: torch.Tensor | None):
    """(Lq, d) or (B, Lq, d) + optional mask -> (B, Lq, d), (B, Lq) float mask."""
    if queries.dim() == 2:
        queries = queries.unsqueeze(0)
        query_mask = None if query_mask is None else query_mask.unsqueeze(0)
    if query_mask is None:
        query_mask = torch.ones(queries.shape[:2], dtype=torch.bool, device=queries.device)
    return queries, query_mask.to(queries.dtype)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the last dim of values (..., Lq) with mask (..., Lq); 0 where nothing is valid."""
    return (values * mask).sum(-1) / mask.sum(-1).clamp(min=1)


def maxsim_scores(queries: torch.Tensor, docs: torch.Tensor, query_mask: torch.Tensor | None = None,
                  chunk_elements: int = CHUNK_ELEMENTS, softness: float | None = None) -> torch.Tensor:
    """queries (Lq, d) or (B, Lq, d), docs (N, P, d) -> scores (B, N) (B = 1 for one query).

    Computed over chunks of docs so the (B, N, Lq, P) similarity tensor never exists whole.
    softness: replace each token's max by the softmax(cosine / softness)-weighted mean of its
    cosines (a smooth max for training: the gradient reaches every patch, not only the argmax).
    """
    queries, mask = _as_batch(queries, query_mask)
    docs = docs.to(queries.dtype)
    batch, length, _ = queries.shape
    chunk = max(1, chunk_elements // max(1, batch * length * docs.shape[1]))
    parts = []
    for start in range(0, docs.shape[0], chunk):
        sims = torch.einsum("bld,npd->bnlp", queries, docs[start:start + chunk])
        best = sims.amax(dim=-1) if softness is None else (torch.softmax(sims / softness, dim=-1) * sims).sum(-1)
        parts.append(_masked_mean(best, mask.unsqueeze(1)))
    if not parts:
        return queries.new_zeros((batch, 0))
    return torch.cat(parts, dim=1)


def global_scores(queries: torch.Tensor, docs: torch.Tensor,
                  query_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Baseline: cosine of the mean valid token and the mean patch -> (B, N)."""
    queries, mask = _as_batch(queries, query_mask)
    text = F.normalize((queries * mask.unsqueeze(-1)).sum(1), dim=-1)
    motion = F.normalize(docs.to(queries.dtype).mean(1), dim=-1)
    return text @ motion.T


def pooled_scores(queries: torch.Tensor, docs: torch.Tensor, query_mask: torch.Tensor | None = None,
                  pooling: str = "maxsim", softness: float | None = None) -> torch.Tensor:
    """Scores with the checkpoint's pooling ("maxsim", "global" or "hybrid") -> (B, N);
    softness: MaxSim's smooth max (training only, see maxsim_scores)."""
    if pooling == "maxsim":
        return maxsim_scores(queries, docs, query_mask, softness=softness)
    if pooling == "global":
        return global_scores(queries, docs, query_mask)
    if pooling == "hybrid":
        return 0.5 * (maxsim_scores(queries, docs, query_mask, softness=softness)
                      + global_scores(queries, docs, query_mask))
    raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")


def maxsim_alignment(query: torch.Tensor, doc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """query (Lq, d) valid tokens only, doc (P, d) -> (best cosine per token (Lq,), argmax patch (Lq,))."""
    best, patch = (query @ doc.to(query.dtype).T).max(dim=-1)
    return best, patch


def token_patch_relevance(query: torch.Tensor, doc: torch.Tensor) -> torch.Tensor:
    """Every token-patch cosine, as (Lq, 14 parts, 14 windows).

    Patches are in LAYOUT order (patch = window * 14 + part), so the (Lq, 196) grid is
    (Lq, windows, parts) row-major; transposed to parts x windows for display.
    """
    if doc.shape[0] != NUM_PATCHES:
        raise ValueError(f"expected {NUM_PATCHES} patches, got {doc.shape[0]}")
    sims = query @ doc.to(query.dtype).T
    return sims.reshape(query.shape[0], WINDOWS, NUM_PATCHES // WINDOWS).transpose(1, 2)
