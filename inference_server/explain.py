"""Explanation: how much each text token relates to each body part during each time window.

relevance[token, part, window] = cosine of the token to the patch (window, part), i.e. the
full MaxSim grid (see maxsim.token_patch_relevance); only the windows that hold frames of
the motion are kept. The token's MaxSim alignment is its best cell.

A text of several steps ("A, then B": bridge/sequence.py) is explained in time order too
(explain_steps, for `t2m explain` and the wire's explain): the order-aware alignment
(ordered.py) gives each step a span of windows, and each step's tokens keep their relevance
inside that span only.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inference_server.jami import BAND, FPS, LAYOUT, PART_NAMES, covered_windows
from inference_server.maxsim import maxsim_alignment, token_patch_relevance
from inference_server.ordered import order_penalty, query_texts, span_seconds, step_token_indices


@dataclass
class Explanation:
    tokens: list[str]
    relevance: np.ndarray             # (tokens, 14 parts, windows) float32 cosines
    score: float                      # the MaxSim score of the text and the motion
    aligned: list[tuple[int, int]]    # per token: (part, window) of its best patch
    steps: list[dict] | None = None   # a text of several steps: explain_steps

    def to_dict(self) -> dict:
        result = {"tokens": self.tokens, "parts": list(PART_NAMES), "window_seconds": BAND / FPS,
                  "windows": int(self.relevance.shape[2]), "score": self.score,
                  "alignment": [{"token": token, "part": PART_NAMES[part], "window": window,
                                 "seconds": list(LAYOUT.seconds(window))}
                                for token, (part, window) in zip(self.tokens, self.aligned)]}
        return result if self.steps is None else {**result, "steps": self.steps}


def explain(retriever, text: str, motion) -> Explanation:
    texts = query_texts(text)
    embeddings = retriever.embed_texts(texts)
    patches = retriever.embed_motions([motion])[0]
    query, doc = torch.from_numpy(embeddings[0].vectors), torch.from_numpy(patches)
    relevance = np.ascontiguousarray(token_patch_relevance(query, doc).numpy()[:, :, :covered_windows(motion.duration)],
                                     dtype=np.float32)
    best, patch = maxsim_alignment(query, doc)
    aligned = [(LAYOUT.part(int(p)), LAYOUT.window(int(p))) for p in patch]
    steps = explain_steps(texts[1:], embeddings, patches, relevance, retriever.pooling) if len(texts) > 1 else None
    return Explanation(embeddings[0].tokens, relevance, float(best.mean()), aligned, steps)


@torch.no_grad()
def explain_steps(steps: list[str], embeddings: list, patches: np.ndarray, relevance: np.ndarray,
                  pooling: str) -> list[dict]:
    """[{text, start_s, end_s, tokens}] of each step of a text: its span in the order-aware alignment
    (within the windows `relevance` covers) and the positions of its tokens in the whole text's tokens.
    embeddings: the whole text's, then each step's; patches: the motion's (196, d). In place,
    `relevance` (tokens, parts, windows) keeps each step's tokens inside their step's span."""
    vectors = [torch.from_numpy(emb.vectors) for emb in embeddings[1:]]
    spans = order_penalty(vectors, torch.from_numpy(patches)[None], pooling)[1][0].tolist()
    tokens = step_token_indices(list(embeddings[0].tokens), [list(emb.tokens) for emb in embeddings[1:]])
    keep_steps_in_their_spans(relevance, tokens, spans)
    return [{"text": text, "start_s": start_s, "end_s": end_s, "tokens": positions}
            for text, (start_s, end_s), positions in zip(steps, span_seconds(spans, relevance.shape[2]), tokens)]


def keep_steps_in_their_spans(relevance: np.ndarray, step_tokens: list[list[int]], spans: list) -> None:
    """In place on (tokens, parts, windows): each step's tokens keep their relevance on the windows
    [start, end) of their step's span (of every step they belong to); elsewhere it drops to the
    minimum of that token's grid, so the picture and the bone colours show the steps in time
    order. Tokens of no step ("then") stay as they are."""
    allowed = np.zeros((relevance.shape[0], relevance.shape[2]), dtype=bool)
    for tokens, (start, end) in zip(step_tokens, spans):
        allowed[np.ix_(tokens, np.arange(start, min(end, relevance.shape[2])))] = True
    for token in sorted({token for tokens in step_tokens for token in tokens}):
        relevance[token][:, ~allowed[token]] = relevance[token].min()


def explain_file(text: str, motion_file: str | Path, model: str | Path, out: str | Path,
                 device: str = "auto") -> dict:
    """`t2m explain`: explain one motion file, draw the heat map to `out`, return the summary."""
    from inference_server.data import load_file
    from inference_server.pictures import save_relevance_png
    from inference_server.retriever import Retriever
    item = load_file(motion_file)
    explanation = explain(Retriever.load(model, device), text, item.motion)
    path = save_relevance_png(explanation.tokens, explanation.relevance, out,
                              title=f"\"{text}\" vs {item.name} (score {explanation.score:.3f})",
                              steps=explanation.steps)
    return {"out": str(path), "motion": str(motion_file), **explanation.to_dict()}
