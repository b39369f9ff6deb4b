"""The on-disk motion index: a folder of .npy arrays (memory-mapped) and JSON, no pickle.

INDEX/
  manifest.json          format, version, model {name, fingerprint, dim}, storage, counts,
                         per-motion bytes; written last: a folder without it is no index
  motions.json           per row: motion_id, name, source, duration, fps, frames, captions,
                         labels, split, content_hash (what --update compares)
  <codec fields>.npy     the patch store, first axis = row (see quantize.py):
                         fp16/fp32 patches, or int8 patches + scales, or pq_codes
  codec_<name>.npy       trained codec state (pq: codebooks)
  centroids.npy          (C, d) coarse centroids of the fast path (ivf.py)
  centroid_codes.npy     (N, P) int16 centroid of every patch
  ivf_rows.npy, ivf_offsets.npy   inverted lists centroid -> rows (CSR)
  positions.npy          (F, 22, 3) float32 SMPL-22 positions of all motions at source fps
  position_offsets.npy   (N + 1,) int64: row i is frames [offsets[i], offsets[i+1])
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from inference_server.errors import ModelError
from inference_server.index.ivf import CentroidCandidates
from inference_server.index.quantize import DEFAULT_PQ_SUBSPACES, Codec, PQCodec, make_codec
from inference_server.index.search import (FastPath, Hit, as_query, exact_search, fast_search, global_search,
                                           pooled_vectors, token_alignment)

FORMAT = "t2m-index"
VERSION = 1
MANIFEST = "manifest.json"
MOTIONS = "motions.json"
WINDOW_FRAMES, WINDOW_FPS, WINDOWS, PARTS = 16, 20, 14, 14  # the JAMI patch grid (jami.py)
# Above this many motions search takes the two-stage fast path unless exact is asked for.
FAST_PATH_MIN_MOTIONS = 2048


def read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path.parent}: not a motion index ({path.name} is missing)") from None
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: unreadable index file ({error})") from None


def load_array(path: Path, mmap: bool = True) -> np.ndarray:
    """A .npy of the index, memory-mapped copy-on-write (torch wants writable arrays; the file is never written)."""
    try:
        return np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise ModelError(f"{path.parent}: index file {path.name} is missing") from None
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: unreadable index array ({error})") from None


def load_codec(folder: Path, manifest: dict) -> Codec:
    codec = make_codec(manifest["storage"], manifest["patches"], manifest["dim"],
                       manifest.get("pq_subspaces", DEFAULT_PQ_SUBSPACES))
    if isinstance(codec, PQCodec):
        codec.load_state({"codebooks": load_array(folder / "codec_codebooks.npy", mmap=False)},
                         load_array(folder / "centroids.npy", mmap=False))
    return codec


def resolve_device(device: str | torch.device) -> torch.device:
    """"auto" -> the GPU when there is one, else the CPU; a CUDA device without CUDA is refused."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device} asked for, but CUDA is not available")
    return device


class PatchStore:
    """The patch store of an index: codec fields (memory-mapped on CPU, resident on GPU) -> float32."""

    def __init__(self, folder: Path, manifest: dict, device: torch.device):
        self.codec = load_codec(folder, manifest)
        self.device = device
        self.patches, self.dim = manifest["patches"], manifest["dim"]
        self.fields = {name: self._tensor(load_array(folder / f"{name}.npy"))
                       for name in self.codec.fields()}
        self.centroid_codes = self._tensor(load_array(folder / "centroid_codes.npy"))
        self.rows = int(manifest["motions"])
        if any(len(tensor) != self.rows for tensor in (*self.fields.values(), self.centroid_codes)):
            raise ModelError(f"{folder}: the patch store does not hold {self.rows} motions as its manifest says")

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)  # CPU: a view of the memory map, nothing read yet

    def __len__(self) -> int:
        return self.rows

    def decode(self, rows: slice | torch.Tensor) -> torch.Tensor:
        """Float32 patches (n, P, d) of a slice or an index tensor of rows, on the store's device."""
        if isinstance(rows, torch.Tensor):
            rows = rows.to(self.device)
        fields = {name: _take(tensor, rows) for name, tensor in self.fields.items()}
        return self.codec.decode(fields, _take(self.centroid_codes, rows))


def _take(tensor: torch.Tensor, rows: slice | torch.Tensor) -> torch.Tensor:
    return tensor.index_select(0, rows) if isinstance(rows, torch.Tensor) else tensor[rows]


class MotionIndex:
    """A loaded index: metadata, motions, the patch store and both search paths."""

    def __init__(self, folder: Path, device: str | torch.device = "auto"):
        self.path = Path(folder)
        self.manifest = read_manifest(self.path)
        self._metas: list[dict] = read_json(self.path / MOTIONS)
        self.device = resolve_device(device)
        self.store = PatchStore(self.path, self.manifest, self.device)
        self.candidates = CentroidCandidates(load_array(self.path / "centroids.npy", mmap=False),
                                             load_array(self.path / "ivf_rows.npy"),
                                             load_array(self.path / "ivf_offsets.npy"), self.store.centroid_codes,
                                             self.device)
        self._positions = load_array(self.path / "positions.npy")
        self._offsets = load_array(self.path / "position_offsets.npy", mmap=False)
        self._rows = {meta["motion_id"]: row for row, meta in enumerate(self._metas)}
        self.fast_path = FastPath()
        self.pooling = self.manifest["model"].get("pooling", "maxsim")
        self._pooled: torch.Tensor | None = None  # mean patches, for a global-pooling model
        if len(self._metas) != len(self.store) or len(self._offsets) != len(self._metas) + 1:
            raise ModelError(f"{self.path}: index files disagree on the number of motions")

    @classmethod
    def load(cls, path: str | Path, retriever=None, device: str | torch.device | None = None) -> MotionIndex:
        """Open INDEX; with a retriever, refuse an index built with another model (ModelError).

        device: where search runs; default the retriever's device, else "auto" (GPU when present).
        """
        if device is None:
            device = getattr(retriever, "device", "auto")
        index = cls(Path(path), device)
        if retriever is not None:
            index.check_model(retriever.fingerprint)
        return index

    def check_model(self, fingerprint: str) -> None:
        built_with = self.manifest["model"]["fingerprint"]
        if fingerprint != built_with:
            raise ModelError(f"index {self.path} was built with model {built_with}, "
                             f"not with the loaded model {fingerprint}: rebuild the index with this model")

    # ------------------------------------------------------------------ rows
    def __len__(self) -> int:
        return len(self._metas)

    @property
    def ids(self) -> list[str]:
        return [meta["motion_id"] for meta in self._metas]

    @property
    def storage(self) -> str:
        return self.manifest["storage"]

    def meta(self, i: int) -> dict:
        """motion_id, name, source, duration, fps, captions, labels (and split, frames, content_hash)."""
        return dict(self._metas[i])

    def __contains__(self, motion_id) -> bool:
        return motion_id in self._rows

    def row(self, motion_id: str) -> int:
        """Row of a motion id; KeyError if unknown."""
        return self._rows[motion_id]

    def motion(self, i: int):
        """The SMPL-22 Motion (positions at source fps) of row i."""
        from inference_server.motion import Motion

        start, stop = int(self._offsets[i]), int(self._offsets[i + 1])
        return Motion.smpl22(np.array(self._positions[start:stop]), self._metas[i]["fps"])

    def patches(self, i: int) -> np.ndarray:
        """(196, d) float32 patch vectors of row i (dequantised)."""
        return self.store.decode(slice(i, i + 1))[0].cpu().numpy()

    def valid_windows(self, i: int) -> int:
        """Time windows of row i that hold motion (the rest of its 14 windows is zero padding)."""
        frames = round(self._metas[i]["duration"] * WINDOW_FPS)
        return int(np.clip(np.ceil(frames / WINDOW_FRAMES), 1, WINDOWS))

    # ---------------------------------------------------------------- search
    def search(self, query, k: int = 10, exact: bool = False, rows=None, align: bool = True) -> list[Hit]:
        """Top-k rows for one query (TextEmbedding or (L, d) array), best first, with alignments.

        exact: brute-force MaxSim over the whole store; otherwise the two-stage fast path is
        used when the library has more than FAST_PATH_MIN_MOTIONS motions. (An index of a
        global-pooling model always ranks exactly by its global score.)
        rows: restrict the search to these rows (candidates from elsewhere, e.g. Qdrant): exact.
        align: compute each hit's token -> patch alignment (False: alignment None, for scoring).
        """
        return self.search_batch([query], k, exact, None if rows is None else [rows], align)[0]

    def search_batch(self, queries: list, k: int = 10, exact: bool = False,
                     rows: list | None = None, align: bool = True) -> list[list[Hit]]:
        """search() for many queries at once (the exact path shares each decoded chunk)."""
        tensors = [as_query(query, self.store.dim, self.device) for query in queries]
        k = max(0, min(int(k), len(self)))
        if self.pooling == "global":
            ranked = self._global(tensors, k, rows)
        elif rows is not None:
            ranked = [exact_search(self.store, [query], k, self._row_tensor(subset))[0]
                      for query, subset in zip(tensors, rows)]
        elif exact or len(self) <= FAST_PATH_MIN_MOTIONS:
            ranked = exact_search(self.store, tensors, k)
        else:
            ranked = [fast_search(self.store, self.candidates, query, k, self.fast_path) for query in tensors]
        return [self._hits(query, scores, found, align) for query, (scores, found) in zip(tensors, ranked)]

    def similar(self, i: int, k: int = 10, exact: bool = False) -> list[Hit]:
        """Motions like row i: MaxSim with row i's patches of its valid windows as the query side."""
        windows = self.valid_windows(i)
        query = self.patches(i)[: windows * PARTS]  # patch = window * 14 + part: first windows
        hits = self.search(query, k + 1, exact)
        return [hit for hit in hits if hit.row != i][:k]

    def _global(self, queries: list[torch.Tensor], k: int, rows: list | None) -> list:
        if self._pooled is None:
            self._pooled = pooled_vectors(self.store)
        if rows is None:
            return global_search(self._pooled, queries, k)
        return [global_search(self._pooled, [query], k, self._row_tensor(subset))[0]
                for query, subset in zip(queries, rows)]

    def _row_tensor(self, rows) -> torch.Tensor:
        rows = torch.as_tensor(np.asarray(rows, dtype=np.int64))
        if len(rows) and (int(rows.min()) < 0 or int(rows.max()) >= len(self)):
            raise IndexError(f"candidate rows out of range for index {self.path} ({len(self)} motions)")
        return rows

    def _hits(self, query: torch.Tensor, scores: torch.Tensor, rows: torch.Tensor, align: bool) -> list[Hit]:
        if not len(rows):
            return []
        alignment = token_alignment(self.store, query, rows) if align else [None] * len(rows)
        return [Hit(int(row), float(score), align)
                for row, score, align in zip(rows.tolist(), scores.tolist(), alignment)]


def read_manifest(folder: Path) -> dict:
    """The manifest of INDEX, checked for format and version (ModelError otherwise)."""
    if not folder.is_dir():
        raise ModelError(f"index {folder} does not exist (build it with `t2m index build`)")
    manifest = read_json(folder / MANIFEST)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ModelError(f"{folder}: {MANIFEST} is not a t2m index manifest")
    if manifest.get("version") != VERSION:
        raise ModelError(f"{folder}: index format version {manifest.get('version')} is not supported "
                         f"(this t2m reads version {VERSION}); rebuild the index")
    return manifest


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in Path(folder).iterdir() if path.is_file())
