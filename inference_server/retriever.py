"""Retriever: the numpy-facing wrapper over a loaded checkpoint (eval mode, no grad, batched).

Index, server and the Blender-side jobs use only this: texts -> token vectors (L, d),
motions -> patch vectors (196, d), both L2-normalised float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inference_server.device import resolve_device
from inference_server.errors import DataError
from inference_server.jami import FRAMES, NUM_PATCHES, AngleStats, jami_input
from inference_server.maxsim import pooled_scores
from inference_server.model.checkpoint import load_model
from inference_server.ordered import order_penalty, query_texts


@dataclass
class TextEmbedding:
    tokens: list[str]        # word pieces of the valid tokens, in order
    vectors: np.ndarray      # (L, d) float32, L2-normalised, one row per token


class Retriever:
    def __init__(self, model, device: torch.device, path: str | Path | None = None):
        self.model = model.to(device).eval()
        self.device = device
        self.path = None if path is None else Path(path)
        # a model straight from the trainer has no checkpoint yet: no name or fingerprint
        self.name: str = getattr(model, "checkpoint_config", {}).get("name", "motioncolbert")
        self.fingerprint: str = getattr(model, "fingerprint", "")
        # the weights' one-line licence (pack_default.py writes it), "" when the checkpoint has none
        self.licence: str = str(getattr(model, "checkpoint_config", {}).get("licence", ""))
        self.dim: int = model.config.dim
        self.pooling: str = model.pooling

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "Retriever":
        torch_device = resolve_device(device)
        return cls(load_model(path, torch_device), torch_device, path)

    @property
    def angles_stats(self) -> AngleStats:
        return self.model.angle_stats

    @torch.no_grad()
    def embed_texts(self, texts: list[str], batch_size: int = 64) -> list[TextEmbedding]:
        """One TextEmbedding per text; a text without any word token is a DataError."""
        results = []
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start:start + batch_size])
            batch = self.model.text.tokenize(chunk).to(self.device)
            vectors = self.model.encode_text(batch.input_ids, batch.attention_mask).cpu().numpy()
            valid = batch.valid_mask.cpu().numpy()
            for text, tokens, rows, keep in zip(chunk, batch.tokens, vectors, valid):
                if not tokens:
                    raise DataError(f"text {text!r} has no word tokens to search with")
                results.append(TextEmbedding(tokens, np.ascontiguousarray(rows[keep], dtype=np.float32)))
        return results

    def motion_inputs(self, motions: list) -> np.ndarray:
        """Motions -> (N, 224, 29) model inputs (first 224 frames at 20 fps, normalised, padded)."""
        return np.stack([jami_input(m, self.angles_stats)[0] for m in motions]) \
            if motions else np.zeros((0, FRAMES, len(self.angles_stats.mean)), np.float32)

    def embed_motions(self, motions: list, batch_size: int = 64) -> np.ndarray:
        """(N, 196, d) float32 L2-normalised patch vectors (inputs prepared one batch at a time)."""
        out = np.zeros((len(motions), NUM_PATCHES, self.dim), np.float32)
        for start in range(0, len(motions), batch_size):
            chunk = motions[start:start + batch_size]
            out[start:start + len(chunk)] = self.embed_inputs(self.motion_inputs(chunk), batch_size)
        return out

    @torch.no_grad()
    def embed_inputs(self, inputs: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Prepared (N, 224, 29) inputs -> (N, 196, d)."""
        out = np.zeros((len(inputs), NUM_PATCHES, self.dim), np.float32)
        for start in range(0, len(inputs), batch_size):
            chunk = torch.from_numpy(inputs[start:start + batch_size]).to(self.device)
            out[start:start + len(chunk)] = self.model.encode_motion(chunk).cpu().numpy()
        return out

    @torch.no_grad()
    def score_embeddings(self, texts: list[TextEmbedding], patches: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(n_texts, n_motions) scores with this checkpoint's pooling."""
        docs = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32)).to(self.device)
        out = np.zeros((len(texts), len(patches)), np.float32)
        for start in range(0, len(texts), batch_size):
            queries, mask = pad_embeddings(texts[start:start + batch_size], self.dim)
            scores = pooled_scores(queries.to(self.device), docs, mask.to(self.device), self.pooling)
            out[start:start + len(queries)] = scores.cpu().numpy()
        return out

    @torch.no_grad()
    def score_texts(self, texts: list[str], patches: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """(n_texts, n_motions) scores of raw texts, as search ranks them: score_embeddings, plus for
        a text of several steps ("A, then B": bridge/sequence.py) the order penalty (ordered.py)."""
        plans = [query_texts(text) for text in texts]   # [text] or [text, step 1, step 2, ...]
        embeddings = iter(self.embed_texts([each for plan in plans for each in plan], batch_size))
        plans = [[next(embeddings) for _ in plan] for plan in plans]
        out = self.score_embeddings([plan[0] for plan in plans], patches, batch_size)
        docs = torch.from_numpy(np.ascontiguousarray(patches, dtype=np.float32)).to(self.device)
        for row, plan in enumerate(plans):
            if len(plan) > 1:
                vectors = [torch.from_numpy(step.vectors).to(self.device) for step in plan[1:]]
                out[row] += order_penalty(vectors, docs, self.pooling)[0].cpu().numpy()
        return out

    def score(self, texts: list[str], motions: list) -> np.ndarray:
        """Convenience: (n_texts, n_motions) scores of raw texts against Motion objects (as search ranks)."""
        return self.score_texts(texts, self.embed_motions(motions))


def pad_embeddings(texts: list[TextEmbedding], dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length token vectors -> (B, Lmax, d) zeros-padded + (B, Lmax) bool mask."""
    length = max((len(t.vectors) for t in texts), default=0)
    queries = torch.zeros((len(texts), length, dim))
    mask = torch.zeros((len(texts), length), dtype=torch.bool)
    for row, text in enumerate(texts):
        queries[row, :len(text.vectors)] = torch.from_numpy(text.vectors)
        mask[row, :len(text.vectors)] = True
    return queries, mask
