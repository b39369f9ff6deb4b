"""Synthetic clustered patch embeddings and text queries, for the search bench and tests.

A stand-in for a trained model's embeddings with the structure late interaction lives on:
a shared vocabulary of `concepts` (unit directions) and one direction per body part; each
motion uses a few concepts (its "content"); a patch of body part j is a randomly weighted
mix of two of its motion's concepts and part j's direction, plus a per-motion style offset
and per-patch noise, so patches form a continuum rather than a few exact clusters. A query
is a target motion's concepts (some tied to a body part) with noise, mixed with filler
tokens ("a", "person", "the") that match nothing in particular.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ClusteredSpace:
    dim: int = 128
    patches: int = 196
    parts: int = 14
    concepts: int = 1024
    concepts_per_motion: int = 16
    part_weight: float = 0.8
    mix_weight: float = 0.8
    patch_noise: float = 0.7
    style_noise: float = 0.3
    fillers: int = 16
    seed: int = 0

    def directions(self) -> np.ndarray:
        """Unit directions: concepts, then fillers, then body parts."""
        count = self.concepts + self.fillers + self.parts
        return _unit(np.random.default_rng(self.seed).standard_normal((count, self.dim)))

    def motion_concepts(self, count: int) -> np.ndarray:
        """(count, concepts_per_motion) concept ids of motions 0..count-1 (deterministic)."""
        rng = np.random.default_rng(self.seed + 1)
        return np.stack([rng.choice(self.concepts, self.concepts_per_motion, replace=False) for _ in range(count)])

    def embeddings(self, count: int, dtype=np.float32, out: np.ndarray | None = None,
                   chunk: int = 1024) -> np.ndarray:
        """(count, patches, dim) L2-normed embeddings, written chunk by chunk into `out` if given."""
        directions = self.directions()
        part_dirs = directions[self.concepts + self.fillers:][np.arange(self.patches) % self.parts]
        concepts = self.motion_concepts(count)
        out = np.empty((count, self.patches, self.dim), dtype) if out is None else out
        for start in range(0, count, chunk):
            stop = min(count, start + chunk)
            rng = np.random.default_rng([self.seed + 2, start])
            pick = rng.integers(0, self.concepts_per_motion, (stop - start, 2 * self.patches))
            ids = np.take_along_axis(concepts[start:stop], pick, axis=1).reshape(-1, self.patches, 2)
            mix = rng.uniform(0.0, self.mix_weight, (stop - start, self.patches, 1)).astype(np.float32)
            weight = rng.uniform(0.0, self.part_weight, (stop - start, self.patches, 1)).astype(np.float32)
            style = self._noise(rng, (stop - start, 1, self.dim), self.style_noise)
            noise = self._noise(rng, (stop - start, self.patches, self.dim), self.patch_noise)
            out[start:stop] = _unit(directions[ids[..., 0]] + mix * directions[ids[..., 1]]
                                    + weight * part_dirs + style + noise).astype(dtype)
        return out

    def queries(self, count: int, library_size: int, tokens: tuple[int, int] = (6, 14),
                seed: int = 7) -> list[np.ndarray]:
        """`count` queries (L, dim), each aimed at a random motion of the library."""
        rng = np.random.default_rng(seed)
        directions = self.directions()
        concepts = self.motion_concepts(library_size)
        queries = []
        for target in rng.integers(0, library_size, count):
            length = int(rng.integers(tokens[0], tokens[1] + 1))
            content = int(rng.integers(length // 2, length))  # the rest are fillers
            ids = np.concatenate([rng.choice(concepts[target], content),
                                  self.concepts + rng.integers(0, self.fillers, length - content)])
            parts = self.concepts + self.fillers + rng.integers(0, self.parts, length)
            weight = rng.uniform(0.0, self.part_weight, (length, 1)) * (np.arange(length) < content)[:, None]
            noise = self._noise(rng, (length, self.dim), self.patch_noise)
            queries.append(_unit(directions[ids] + weight * directions[parts] + noise))
        return queries

    def _noise(self, rng, shape, scale: float) -> np.ndarray:
        return rng.standard_normal(shape, dtype=np.float32) * np.float32(scale / np.sqrt(self.dim))


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)
