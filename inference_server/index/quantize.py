"""Patch-embedding codecs of the index store, and the small k-means they are trained with.

A codec turns float32 patch embeddings (n, P, d) into per-motion arrays ("fields", stored
one .npy each, first axis = motion row) and back. Trained parameters (codebooks) are kept
as `state` arrays. Decoding runs in torch so the same code serves CPU and GPU search.

- fp32 / fp16: the vectors themselves.
- int8: symmetric per-patch scale (fp16) + int8 components; |error| <= scale / 2.
- pq: residual product quantisation, the PLAID recipe: every patch is its coarse centroid
  (the fast path's patch -> centroid code, stored anyway) plus a product-quantised
  residual (m sub-vectors of d/m dims, 256 codewords each, 1 byte per sub-vector).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from inference_server.errors import T2MError

STORAGES = ("fp32", "fp16", "int8", "pq")
PQ_CODEWORDS = 256
# 56 one-byte codes + the 2-byte centroid code = 58 bytes a patch: 11.4 KB per motion at
# 196 patches, 16x below the paper's dense fp32 store (191 KB per motion at d=256).
DEFAULT_PQ_SUBSPACES = 56
KMEANS_CHUNK = 8192  # points x groups assigned at once
PQ_SAMPLE = 10240  # 40 training vectors per codeword


def kmeans(points: torch.Tensor, clusters: int, iterations: int = 10, seed: int = 0,
           spherical: bool = False) -> torch.Tensor:
    """Lloyd's k-means; points (n, d) -> centres (clusters, d), or (G, n, d) -> (G, clusters, d).

    A leading group axis runs G independent k-means at once (PQ's subspaces). `spherical`
    uses cosine assignment and unit-norm centres (for L2-normed embeddings). Empty clusters
    are re-seeded from random points so every centre stays in use.
    """
    grouped = points if points.dim() == 3 else points.unsqueeze(0)
    groups, n, _ = grouped.shape
    generator = torch.Generator().manual_seed(seed)
    seeds = torch.randperm(n, generator=generator)[:clusters]
    if len(seeds) < clusters:  # fewer points than clusters: repeat some
        seeds = torch.cat([seeds, torch.randint(0, n, (clusters - len(seeds),), generator=generator)])
    centres = grouped[:, seeds].clone()
    for _ in range(iterations):
        labels = assign(grouped, centres, spherical)  # (G, n)
        sums = torch.zeros_like(centres).scatter_add_(1, labels.unsqueeze(-1).expand_as(grouped), grouped)
        counts = torch.zeros(groups, clusters).scatter_add_(1, labels, torch.ones(groups, n))
        centres = sums / counts.clamp(min=1).unsqueeze(-1)
        empty = (counts == 0).nonzero()
        if len(empty):
            refill = torch.randint(0, n, (len(empty),), generator=generator)
            centres[empty[:, 0], empty[:, 1]] = grouped[empty[:, 0], refill]
        if spherical:
            centres = torch.nn.functional.normalize(centres, dim=-1)
    return centres if points.dim() == 3 else centres[0]


def assign(points: torch.Tensor, centres: torch.Tensor, spherical: bool = False) -> torch.Tensor:
    """Nearest centre (cosine when spherical, else Euclidean) of points (n, d) or (G, n, d) -> (n,) / (G, n)."""
    if points.dim() == 2:
        return assign(points.unsqueeze(0), centres.unsqueeze(0), spherical)[0]
    # argmin |x - c|^2 = argmax x.c - |c|^2 / 2
    offset = torch.zeros_like(centres[..., 0]) if spherical else -0.5 * (centres * centres).sum(-1)
    chunk = max(1, KMEANS_CHUNK // points.shape[0])
    labels = [torch.baddbmm(offset.unsqueeze(1), points[:, start:start + chunk], centres.transpose(1, 2)).argmax(-1)
              for start in range(0, points.shape[1], chunk)]
    return torch.cat(labels, dim=1)


@dataclass(frozen=True)
class Field:
    """A per-motion array of a codec: dtype and shape of one motion's slice."""
    dtype: str
    shape: tuple[int, ...]


class Codec:
    """Base codec: the vectors themselves, as fp16 (Float32Codec: fp32)."""

    name = "fp16"
    dtype = "float16"

    def __init__(self, patches: int, dim: int):
        self.patches, self.dim = patches, dim

    def fields(self) -> dict[str, Field]:
        """The per-motion arrays this codec stores, by file name."""
        return {"patches": Field(self.dtype, (self.patches, self.dim))}

    def state(self) -> dict[str, np.ndarray]:
        """Trained parameters to save beside the fields (codebooks)."""
        return {}

    def fit(self, sample: np.ndarray, centroids: np.ndarray | None = None) -> None:
        """Train on (n, d) float32 sample vectors (no-op unless the codec has codebooks)."""

    def encode(self, vectors: np.ndarray, centroid_codes: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """(n, P, d) float32 (+ their (n, P) centroid codes) -> the fields of n motions."""
        return {"patches": vectors.astype(self.dtype)}

    def decode(self, fields: dict[str, torch.Tensor], centroid_codes: torch.Tensor | None = None) -> torch.Tensor:
        """Fields of n motions (+ centroid codes) -> (n, P, d) float32, on the fields' device."""
        return fields["patches"].float()

    def bytes_per_motion(self) -> int:
        return sum(int(np.prod(f.shape)) * np.dtype(f.dtype).itemsize for f in self.fields().values())


class Float32Codec(Codec):
    name = "fp32"
    dtype = "float32"


class Int8Codec(Codec):
    name = "int8"

    def fields(self) -> dict[str, Field]:
        return {"patches": Field("int8", (self.patches, self.dim)),
                "scales": Field("float16", (self.patches,))}

    def encode(self, vectors, centroid_codes=None):
        peak = np.abs(vectors).max(axis=-1) / 127.0
        scales = peak.astype(np.float16)
        # Round the fp16 scale up so that max|x| / scale <= 127 and nothing clips.
        low = scales.astype(np.float32) < peak
        scales[low] = np.nextafter(scales[low], np.float16(np.inf))
        safe = np.where(scales == 0, np.float16(1), scales).astype(np.float32)
        codes = np.clip(np.rint(vectors / safe[..., None]), -127, 127).astype(np.int8)
        return {"patches": codes, "scales": scales}

    def decode(self, fields, centroid_codes=None):
        return fields["patches"].float() * fields["scales"].float().unsqueeze(-1)


class PQCodec(Codec):
    """Residual PQ over the coarse centroids (see the module docstring).

    The d dimensions are split into m consecutive sub-vectors as evenly as possible (m need
    not divide d: 128 dims in 56 subspaces = 16 of 3 dims + 40 of 2). Shorter sub-vectors
    are padded with a zero dimension so all m are trained and looked up as one batch.
    """

    name = "pq"

    def __init__(self, patches: int, dim: int, subspaces: int = DEFAULT_PQ_SUBSPACES):
        super().__init__(patches, dim)
        if not 1 <= subspaces <= dim:
            raise T2MError(f"pq: subspaces must be between 1 and the embedding size {dim}, got {subspaces}")
        self.subspaces = subspaces
        self.width = -(-dim // subspaces)  # padded sub-vector size
        sizes = [len(part) for part in np.array_split(np.arange(dim), subspaces)]
        # padded position -> source dimension (dim = the zero column)
        starts = np.cumsum([0] + sizes)
        self.spread = torch.tensor([start + j if j < size else dim for start, size in zip(starts, sizes)
                                    for j in range(self.width)])
        self.valid = (self.spread < dim).nonzero().squeeze(1)  # padded positions holding a dimension
        self.codebooks: torch.Tensor | None = None  # (m, 256, width)
        self.centroids: torch.Tensor | None = None  # (C, d) coarse centroids

    def fields(self):
        return {"pq_codes": Field("uint8", (self.patches, self.subspaces))}

    def state(self):
        return {"codebooks": self.codebooks.numpy()}

    def load_state(self, state: dict[str, np.ndarray], centroids: np.ndarray) -> None:
        self.codebooks = torch.from_numpy(np.ascontiguousarray(state["codebooks"], dtype=np.float32))
        self.centroids = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32))

    def fit(self, sample, centroids=None):
        self.centroids = torch.from_numpy(np.ascontiguousarray(centroids, dtype=np.float32))
        points = torch.from_numpy(np.ascontiguousarray(sample[:PQ_SAMPLE], dtype=np.float32))
        residuals = points - self.centroids[assign(points, self.centroids, spherical=True)]
        self.codebooks = kmeans(self._split(residuals), PQ_CODEWORDS, iterations=6)

    def encode(self, vectors, centroid_codes=None):
        flat = torch.from_numpy(np.ascontiguousarray(vectors, dtype=np.float32)).reshape(-1, self.dim)
        codes = torch.from_numpy(centroid_codes.astype(np.int64)).reshape(-1)
        out = assign(self._split(flat - self.centroids[codes]), self.codebooks).T.to(torch.uint8)  # (n, m)
        return {"pq_codes": out.reshape(*vectors.shape[:-1], self.subspaces).numpy()}

    def decode(self, fields, centroid_codes=None):
        codes = fields["pq_codes"].long()
        device = codes.device
        books = self.codebooks.to(device).reshape(-1, self.width)
        offsets = torch.arange(self.subspaces, device=device) * PQ_CODEWORDS
        residual = torch.nn.functional.embedding(codes + offsets, books).flatten(-2)
        if len(self.valid) != residual.shape[-1]:
            residual = residual.index_select(-1, self.valid.to(device))
        centres = torch.nn.functional.embedding(centroid_codes.long(), self.centroids.to(device))
        return centres + residual

    def _split(self, vectors: torch.Tensor) -> torch.Tensor:
        """(n, d) -> (m, n, width) zero-padded sub-vectors."""
        padded = torch.cat([vectors, vectors.new_zeros(len(vectors), 1)], dim=1)[:, self.spread]
        return padded.view(len(vectors), self.subspaces, self.width).transpose(0, 1).contiguous()


def make_codec(storage: str, patches: int, dim: int, pq_subspaces: int = DEFAULT_PQ_SUBSPACES) -> Codec:
    """The codec for a storage name (one of STORAGES)."""
    if storage == "pq":
        return PQCodec(patches, dim, pq_subspaces)
    classes = {"fp32": Float32Codec, "fp16": Codec, "int8": Int8Codec}
    if storage not in classes:
        raise T2MError(f"unknown storage {storage!r} (choose from {', '.join(STORAGES)})")
    return classes[storage](patches, dim)
