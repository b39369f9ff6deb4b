"""Order-aware scoring: the steps of "A, then B" must happen in that order in the clip.

MaxSim takes each word's best patch anywhere in the clip, so "waves, then walks" and "walks,
then waves" score every clip the same. For a query of K steps (bridge/sequence.py splits it,
each step embedded on its own) this scores the best time-monotone alignment instead: the
clip's 14 time windows are cut into K consecutive spans (windows before the first or after
the last may stay unused) and step k is scored on span k only, with the checkpoint's pooling
restricted to those windows:
- MaxSim: each token's max over the span's patches (all body parts), averaged over tokens;
- global: the cosine of the step's mean token and the mean patch of the span;
- hybrid: the mean of the two.
The ordered score is the mean over steps of the best alignment (dynamic programming over the
span ends, O(K x 14^2) per clip); "free" is the same with every step on its own best span,
order ignored. Search ranks by the whole query's plain score plus (ordered - free) <= 0: a
clip pays only for what putting the steps in order costs it, and scores stay on the plain
scale. One step costs nothing, so single-step queries rank exactly as before. The chosen
spans say when each step happens (explain, bone colours).

Search (engine.py) reranks a candidate pool of the plain search this way, and reports each
hit's spans in seconds (span_seconds); explain (explain.py) tells which of the whole query's
tokens belong to which step (step_token_indices). query_texts: the texts a query is embedded as.
"""
from __future__ import annotations

import difflib

import torch
import torch.nn.functional as F

from bridge.sequence import split_steps
from inference_server.jami import LAYOUT, PART_NAMES, WINDOWS

PARTS = len(PART_NAMES)


def query_texts(text: str) -> list[str]:
    """[text] for a query of one step; [text, step 1, step 2, ...] for one of several."""
    steps = split_steps(text)
    return [text, *steps] if len(steps) > 1 else [text]


def span_maxsim(step: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
    """step (L, d) tokens, docs (N, 196, d) -> (N, W, W + 1): [n, a, b] = MaxSim over windows a..b-1
    (-inf where b <= a)."""
    per_window = torch.einsum("ld,npd->nlp", step, docs.to(step.dtype))
    per_window = per_window.reshape(len(docs), len(step), WINDOWS, PARTS).amax(dim=3)   # (N, L, W)
    table = step.new_full((len(docs), WINDOWS, WINDOWS + 1), float("-inf"))
    for start in range(WINDOWS):
        running = per_window[:, :, start:].cummax(dim=2).values                          # max over start..b-1
        table[:, start, start + 1:] = running.mean(dim=1)
    return table


def span_global(step: torch.Tensor, docs: torch.Tensor) -> torch.Tensor:
    """step (L, d), docs (N, 196, d) -> (N, W, W + 1): cosine of the step's mean token and the mean
    patch of windows a..b-1 (-inf where b <= a)."""
    text = F.normalize(step.mean(dim=0), dim=0)
    window_sums = docs.to(step.dtype).reshape(len(docs), WINDOWS, PARTS, -1).sum(dim=2)          # (N, W, d)
    prefix = torch.cat([window_sums.new_zeros(len(docs), 1, window_sums.shape[2]), window_sums.cumsum(dim=1)], 1)
    table = step.new_full((len(docs), WINDOWS, WINDOWS + 1), float("-inf"))
    for start in range(WINDOWS):
        spans = prefix[:, start + 1:] - prefix[:, start:start + 1]                               # (N, W - start, d)
        table[:, start, start + 1:] = F.normalize(spans, dim=2) @ text
    return table


def span_scores(step: torch.Tensor, docs: torch.Tensor, pooling: str) -> torch.Tensor:
    """The step's (N, W, W + 1) span table with the checkpoint's pooling."""
    if pooling == "maxsim":
        return span_maxsim(step, docs)
    if pooling == "global":
        return span_global(step, docs)
    if pooling == "hybrid":
        return 0.5 * (span_maxsim(step, docs) + span_global(step, docs))
    raise ValueError(f"unknown pooling {pooling!r}")


def ordered_alignment(steps: list[torch.Tensor], docs: torch.Tensor,
                      pooling: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """steps: K (L_k, d) token sets in the query's order, docs (N, 196, d) ->
    (ordered (N,): mean over steps of the best time-monotone alignment,
     free (N,): the same with each step on its own best span, order ignored,
     spans (N, K, 2) long: the [start, end) windows the ordered alignment chose for each step)."""
    if not steps:
        raise ValueError("an ordered score needs at least one step")
    count = len(docs)
    best = docs.new_zeros(count, WINDOWS + 1, dtype=steps[0].dtype)   # best[n, b]: steps so far, ending <= b
    free = docs.new_zeros(count, dtype=steps[0].dtype)
    choices = []
    for step in steps:
        table = span_scores(step, docs, pooling)                         # (N, a, b)
        free += table.flatten(1).amax(dim=1)
        reach = best.cummax(dim=1)                                        # the earlier steps may end before a
        candidates = reach.values[:, :WINDOWS, None] + table              # (N, a, b)
        best_end, best_start = candidates.max(dim=1)                      # over a, for every b
        choices.append((best_start, reach.indices))
        best = best_end
    score, end = best.max(dim=1)
    spans = docs.new_zeros(count, len(steps), 2, dtype=torch.long)
    rows = torch.arange(count, device=docs.device)
    for k in range(len(steps) - 1, -1, -1):                               # walk the choices back
        starts, previous_ends = choices[k]
        start = starts[rows, end]
        spans[:, k, 0], spans[:, k, 1] = start, end
        end = previous_ends[rows, start]
    return score / len(steps), free / len(steps), spans


def order_penalty(steps: list[torch.Tensor], docs: torch.Tensor, pooling: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(penalty (N,) <= 0, spans (N, K, 2)): what keeping the steps in order costs each doc. Added
    to the whole query's plain score it ranks "A, then B" clips above "B, then A" ones while the
    scores stay on the plain scale (so text-to-motion and motion-to-text ranks mix one-step and
    several-step texts fairly). One step: no penalty, the span is the whole clip."""
    if len(steps) == 1:
        whole = torch.tensor([0, WINDOWS], device=docs.device).expand(len(docs), 1, 2)
        return docs.new_zeros(len(docs), dtype=steps[0].dtype), whole
    ordered, free, spans = ordered_alignment(steps, docs, pooling)
    return ordered - free, spans


def span_seconds(spans, windows: int = WINDOWS) -> list[list[float]]:
    """[[start, end], ...] window spans [start, end) -> [[start_s, end_s], ...] (jami.LAYOUT), cut to
    the first `windows` windows: those the motion fills. Past them lies zero padding, which a
    span may run into at no cost to its score; a step aligned to padding alone comes out empty
    at the motion's end. Spans in order stay in order."""
    edges = [LAYOUT.seconds(window)[0] for window in range(windows)] + [LAYOUT.seconds(windows - 1)[1]]
    return [[edges[min(int(start), windows)], edges[min(int(end), windows)]] for start, end in spans]


def step_token_indices(tokens: list[str], steps: list[list[str]]) -> list[list[int]]:
    """For each step's tokens, the positions in the whole query's `tokens` they come from.

    A step's text is a piece of the query, sometimes with words of another piece (the subject,
    a borrowed verb: bridge/sequence.py), so each step is matched to the query as the longest
    matching blocks of tokens (difflib); a token two steps share (the borrowed verb) belongs to
    both, a connector ("then") to none."""
    found = []
    for step in steps:
        matcher = difflib.SequenceMatcher(None, tokens, step, autojunk=False)
        found.append(sorted(position for block in matcher.get_matching_blocks()
                            for position in range(block.a, block.a + block.size)))
    return found
