"""Late interaction scores between text tokens and motion patches (torch): the one home of
MaxSim, global pooling and their hybrid, used by the model, evaluation and index search.

All vectors are L2-normalised, so a dot product is a cosine.
- MaxSim (the method): score(text, motion) = mean over the text's valid tokens of the
  max cosine over the motion's 196 patches; the argmax patch is the token's alignment.
- Global (the baseline): mean of valid tokens vs mean of patches, each re-normalised.
- Hybrid: the mean of the two. The global term gives every clip a whole-body, whole-clip
  signal from the first step, which MaxSim alone learns late on small budgets; the MaxSim
  term keeps the word-to-patch alignments (its argmax is what explain and the bone colours show).

Queries of different lengths are packed (PackedQueries): the valid tokens of every query one
after another, so one matrix product scores all queries against a block of motions and the
max over patches runs along contiguous memory.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F

from inference_server.jami import NUM_PATCHES, WINDOWS
from inference_server.model.presets import POOLINGS
# elements of the (tokens, chunk, P) similarity block computed at once (256 MB in fp32)
CHUNK_ELEMENTS = 1 << 26


def check_pooling(pooling: str) -> str:
    if pooling not in POOLINGS:
        raise ValueError(f"unknown pooling {pooling!r}; choose one of {POOLINGS}")
    return pooling


@dataclass
class PackedQueries:
    """B queries as tokens (T, d), the valid token vectors of every query one after another,
    and averaging (T, B): 1 / L_b where token t belongs to query b, else 0; so
    `averaging.T @ x` is each query's mean of x over its tokens (0 for a query without any)."""
    tokens: torch.Tensor
    averaging: torch.Tensor

    @classmethod
    def from_list(cls, queries: list[torch.Tensor]) -> PackedQueries:
        """Queries (L_b, d), valid tokens only."""
        tokens = torch.cat(queries)
        lengths = torch.tensor([len(query) for query in queries], device=tokens.device)
        return cls(tokens, _averaging(lengths, tokens.dtype))

    @classmethod
    def from_padded(cls, queries: torch.Tensor, mask: torch.Tensor | None = None) -> PackedQueries:
        """Queries (Lq, d) or (B, Lq, d) with an optional (B, Lq) mask of the valid tokens."""
        if queries.dim() == 2:
            queries = queries.unsqueeze(0)
            mask = None if mask is None else mask.unsqueeze(0)
        if mask is None:
            mask = torch.ones(queries.shape[:2], dtype=torch.bool, device=queries.device)
        mask = mask.to(device=queries.device, dtype=torch.bool)
        return cls(queries[mask], _averaging(mask.sum(dim=1), queries.dtype))

    def __len__(self) -> int:
        return self.averaging.shape[1]

    def maxsim(self, docs: torch.Tensor, softness: float | None = None) -> torch.Tensor:
        """docs (n, P, d) -> (B, n) MaxSim scores.

        softness: replace each token's max by the softmax(cosine / softness)-weighted mean of
        its cosines (a smooth max for training: the gradient reaches every patch, not only the argmax).
        """
        count, patches, dim = docs.shape
        sims = (self.tokens @ docs.to(self.tokens.dtype).reshape(count * patches, dim).T)
        sims = sims.view(len(self.tokens), count, patches)
        best = sims.amax(dim=2) if softness is None else (torch.softmax(sims / softness, dim=2) * sims).sum(2)
        return self.averaging.T @ best

    @cached_property
    def text_means(self) -> torch.Tensor:
        """(B, d) unit mean token of each query: the text side of global pooling."""
        return F.normalize(self.averaging.T @ self.tokens, dim=-1)

    def scores(self, docs: torch.Tensor, pooling: str = "maxsim", softness: float | None = None) -> torch.Tensor:
        """(B, n) scores against docs (n, P, d) with a checkpoint's pooling; softness: see maxsim."""
        if check_pooling(pooling) == "maxsim":
            return self.maxsim(docs, softness)
        pooled = cosine_of_means(self.text_means, motion_means(docs.to(self.tokens.dtype)))
        return pooled if pooling == "global" else 0.5 * (self.maxsim(docs, softness) + pooled)


def _averaging(lengths: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    owner = torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths)
    averaging = torch.zeros(len(owner), len(lengths), dtype=dtype, device=lengths.device)
    averaging[torch.arange(len(owner), device=lengths.device), owner] = 1.0 / lengths[owner].to(dtype)
    return averaging


def motion_means(docs: torch.Tensor) -> torch.Tensor:
    """(n, P, d) -> (n, d) unit mean patch of each motion: the motion side of global pooling."""
    return F.normalize(docs.mean(dim=1), dim=-1)


def cosine_of_means(text_means: torch.Tensor, motion_means: torch.Tensor) -> torch.Tensor:
    """The global-pooling score (B, n) of unit mean tokens (B, d) and unit mean patches (n, d)."""
    return text_means @ motion_means.T


def pooled_scores(queries: torch.Tensor, docs: torch.Tensor, query_mask: torch.Tensor | None = None,
                  pooling: str = "maxsim", softness: float | None = None,
                  chunk_elements: int = CHUNK_ELEMENTS) -> torch.Tensor:
    """queries (Lq, d) or (B, Lq, d) + mask, docs (N, P, d) -> (B, N) scores with the
    checkpoint's pooling ("maxsim", "global" or "hybrid"); softness: see PackedQueries.maxsim.

    Computed over chunks of docs so the (tokens, N, P) similarity tensor never exists whole.
    """
    check_pooling(pooling)
    packed = PackedQueries.from_padded(queries, query_mask)
    chunk = max(1, chunk_elements // max(1, len(packed.tokens) * docs.shape[1]))
    parts = [packed.scores(docs[start:start + chunk], pooling, softness) for start in range(0, len(docs), chunk)]
    return torch.cat(parts, dim=1) if parts else queries.new_zeros((len(packed), 0))


def maxsim_scores(queries: torch.Tensor, docs: torch.Tensor, query_mask: torch.Tensor | None = None,
                  chunk_elements: int = CHUNK_ELEMENTS, softness: float | None = None) -> torch.Tensor:
    """MaxSim scores (B, N) (B = 1 for one (Lq, d) query); see pooled_scores."""
    return pooled_scores(queries, docs, query_mask, "maxsim", softness, chunk_elements)


def global_scores(queries: torch.Tensor, docs: torch.Tensor,
                  query_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Baseline: cosine of the mean valid token and the mean patch -> (B, N)."""
    return pooled_scores(queries, docs, query_mask, "global")


def best_patches(query: torch.Tensor, docs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """query (Lq, d) valid tokens only, docs (n, P, d) -> (best cosine (n, Lq), argmax patch (n, Lq)):
    each token's alignment in each motion."""
    return torch.einsum("npd,ld->nlp", docs.to(query.dtype), query).max(dim=2)


def maxsim_alignment(query: torch.Tensor, doc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """query (Lq, d) valid tokens only, doc (P, d) -> (best cosine per token (Lq,), argmax patch (Lq,))."""
    best, patch = best_patches(query, doc[None])
    return best[0], patch[0]


def token_patch_relevance(query: torch.Tensor, doc: torch.Tensor) -> torch.Tensor:
    """Every token-patch cosine, as (Lq, 14 parts, 14 windows).

    Patches are in LAYOUT order (patch = window * 14 + part), so the (Lq, 196) grid is
    (Lq, windows, parts) row-major; transposed to parts x windows for display.
    """
    if doc.shape[0] != NUM_PATCHES:
        raise ValueError(f"expected {NUM_PATCHES} patches, got {doc.shape[0]}")
    sims = query @ doc.to(query.dtype).T
    return sims.reshape(query.shape[0], WINDOWS, NUM_PATCHES // WINDOWS).transpose(1, 2)
