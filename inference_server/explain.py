"""Explanation: how much each text token relates to each body part during each time window.

relevance[token, part, window] = cosine of the token to the patch (window, part), i.e. the
full MaxSim grid (see maxsim.token_patch_relevance); only the windows that hold frames of
the motion are kept. The token's MaxSim alignment is its best cell.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inference_server.jami import BAND, FPS, LAYOUT, PART_NAMES, covered_windows
from inference_server.maxsim import maxsim_alignment, token_patch_relevance


@dataclass
class Explanation:
    tokens: list[str]
    relevance: np.ndarray             # (tokens, 14 parts, windows) float32 cosines
    score: float                      # the MaxSim score of the text and the motion
    aligned: list[tuple[int, int]]    # per token: (part, window) of its best patch

    def to_dict(self) -> dict:
        return {"tokens": self.tokens, "parts": list(PART_NAMES), "window_seconds": BAND / FPS,
                "windows": int(self.relevance.shape[2]), "score": self.score,
                "alignment": [{"token": token, "part": PART_NAMES[part], "window": window,
                               "seconds": list(LAYOUT.seconds(window))}
                              for token, (part, window) in zip(self.tokens, self.aligned)]}


def explain(retriever, text: str, motion) -> Explanation:
    embedding = retriever.embed_texts([text])[0]
    patches = retriever.embed_motions([motion])[0]
    query, doc = torch.from_numpy(embedding.vectors), torch.from_numpy(patches)
    relevance = token_patch_relevance(query, doc).numpy()[:, :, :covered_windows(motion.duration)]
    best, patch = maxsim_alignment(query, doc)
    aligned = [(LAYOUT.part(int(p)), LAYOUT.window(int(p))) for p in patch]
    return Explanation(embedding.tokens, np.ascontiguousarray(relevance, dtype=np.float32),
                       float(best.mean()), aligned)


def explain_file(text: str, motion_file: str | Path, model: str | Path, out: str | Path,
                 device: str = "auto") -> dict:
    """`t2m explain`: explain one motion file, draw the heat map to `out`, return the summary."""
    from inference_server.data import load_file
    from inference_server.pictures import save_relevance_png
    from inference_server.retriever import Retriever
    item = load_file(motion_file)
    explanation = explain(Retriever.load(model, device), text, item.motion)
    path = save_relevance_png(explanation.tokens, explanation.relevance, out,
                              title=f"\"{text}\" vs {item.name} (score {explanation.score:.3f})")
    return {"out": str(path), "motion": str(motion_file), **explanation.to_dict()}
