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

An index is checked when it is opened (check_structure: every file there, readable, of the
dtype and shape the manifest implies, offsets consistent, motion ids unique; fast, no array
is read whole) and, on demand, in full (MotionIndex.verify: no NaN/inf patch or vector, every
code in range, and each file's size and sha256 against the manifest's optional "files"
{name: {"bytes", "sha256"}}). A corrupt index is refused with a one-line ModelError naming
the file; it is never served.
"""
from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import torch

from inference_server.device import resolve_device
from inference_server.errors import ModelError
from inference_server.index.ivf import CentroidCandidates
from inference_server.index.manifest import MANIFEST, MOTIONS, read_json, read_manifest
from inference_server.index.quantize import DEFAULT_PQ_SUBSPACES, Codec, PQCodec, make_codec
from inference_server.index.search import (FastPath, Hit, as_query, exact_search, fast_search, global_search,
                                           pooled_vectors, token_alignment)
from inference_server.jami import PART_NAMES, covered_windows

# Above this many motions search takes the two-stage fast path unless exact is asked for.
FAST_PATH_MIN_MOTIONS = 2048
# `similar` takes the fast path from this many motions on: its query has up to 196 vectors, and
# exact MaxSim with it over a few thousand motions takes seconds on a CPU.
SIMILAR_FAST_MIN_MOTIONS = 512


def load_array(path: Path, mmap: bool = True) -> np.ndarray:
    """A .npy of the index, memory-mapped copy-on-write (torch wants writable arrays; the file is never written)."""
    try:
        return np.load(path, mmap_mode="c" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise ModelError(f"{path.parent}: index file {path.name} is missing") from None
    except (OSError, ValueError, EOFError) as error:  # EOFError: an empty or truncated file
        raise ModelError(f"{path}: unreadable index array ({error or type(error).__name__})") from None


def load_codec(folder: Path, manifest: dict) -> Codec:
    codec = make_codec(manifest["storage"], manifest["patches"], manifest["dim"],
                       manifest.get("pq_subspaces", DEFAULT_PQ_SUBSPACES))
    if isinstance(codec, PQCodec):
        codec.load_state({"codebooks": load_array(folder / "codec_codebooks.npy", mmap=False)},
                         load_array(folder / "centroids.npy", mmap=False))
    return codec


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
        check_structure(self.path, self.manifest, self._metas)  # before anything trusts a shape
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
            if int(getattr(retriever, "dim", index.store.dim)) != index.store.dim:
                raise ModelError(f"{index.path / MANIFEST}: the index holds {index.store.dim}-dim vectors but the "
                                 f"model makes {retriever.dim}-dim ones")
        return index

    def verify(self, hashes: bool = True) -> dict:
        """The full check (seconds per GB): finite vectors, codes in range, sizes and sha256s.
        Returns {"files", "bytes", "hashed", "motions"}; ModelError naming the file otherwise."""
        return verify_contents(self.path, self.manifest, hashes=hashes)

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
        return covered_windows(self._metas[i]["duration"])

    # ---------------------------------------------------------------- search
    def search(self, query, k: int = 10, exact: bool = False, rows=None, align: bool = False,
               fast: bool | None = None) -> list[Hit]:
        """Top-k rows for one query (TextEmbedding or (L, d) array), best first.

        exact: brute-force MaxSim over the whole store; otherwise the two-stage fast path is
        used when the library has more than FAST_PATH_MIN_MOTIONS motions. (An index of a
        global-pooling model always ranks exactly by its global score.)
        rows: restrict the search to these rows (candidates from elsewhere, e.g. Qdrant): exact.
        align: also compute each hit's token -> patch alignment (Hit.alignment; None otherwise)
            for a caller that shows it; it costs a decode and a product per hit.
        fast: True takes the fast path whatever the library's size (unless exact or rows).
        """
        return self.search_batch([query], k, exact, None if rows is None else [rows], align, fast)[0]

    def search_batch(self, queries: list, k: int = 10, exact: bool = False,
                     rows: list | None = None, align: bool = False, fast: bool | None = None) -> list[list[Hit]]:
        """search() for many queries at once (the exact path shares each decoded chunk)."""
        tensors = [as_query(query, self.store.dim, self.device) for query in queries]
        k = max(0, min(int(k), len(self)))
        if self.pooling == "global":
            ranked = self._global(tensors, k, rows)
        elif rows is not None:
            ranked = [exact_search(self.store, [query], k, self._row_tensor(subset), self.pooling)[0]
                      for query, subset in zip(tensors, rows)]
        elif exact or (len(self) <= FAST_PATH_MIN_MOTIONS and not fast):
            ranked = exact_search(self.store, tensors, k, pooling=self.pooling)
        else:
            ranked = [fast_search(self.store, self.candidates, query, k, self.fast_path, self.pooling)
                      for query in tensors]
        return [self._hits(query, scores, found, align) for query, (scores, found) in zip(tensors, ranked)]

    def similar(self, i: int, k: int = 10, exact: bool = False, searcher=None) -> list[Hit]:
        """Motions like row i, best first, row i left out: scored as the index scores (MaxSim for a
        MaxSim model) with row i's patches of the windows it fills as the query side.

        That query holds up to 196 vectors, so the fast path is taken from
        SIMILAR_FAST_MIN_MOTIONS motions on unless `exact`. searcher: rank through it instead
        (anything with `search_batch(queries, k)` over this index's rows, e.g. QdrantSearcher).
        """
        query = self.patches(i)[: self.valid_windows(i) * len(PART_NAMES)]  # patch = window * 14 + part
        if searcher is None or searcher is self:
            hits = self.search(query, k + 1, exact, fast=len(self) >= SIMILAR_FAST_MIN_MOTIONS)
        else:
            hits = searcher.search_batch([query], k + 1)[0]
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


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in Path(folder).iterdir() if path.is_file())


# ---------------------------------------------------------------- verification

def _fail(path: Path, message: str):
    raise ModelError(f"{path}: {message}; the index is corrupt: rebuild it (t2m index build)")


def _positive_int(manifest: dict, name: str, folder: Path, minimum: int = 1) -> int:
    value = manifest.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(folder / MANIFEST, f"{name!r} must be an integer >= {minimum}, not {value!r}")
    return value


def _header(path: Path) -> tuple[tuple, np.dtype]:
    """(shape, dtype) of a .npy from its header alone (no data read); ModelError if unreadable."""
    if not path.is_file():
        _fail(path.parent, f"index file {path.name} is missing")
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(handle)
            data_start = handle.tell()
    except (OSError, ValueError, EOFError, SyntaxError) as error:
        _fail(path, f"unreadable index array ({error or type(error).__name__})")
    if fortran or dtype.hasobject:
        _fail(path, "not a C-order array of numbers")
    expected = data_start + math.prod(shape) * dtype.itemsize
    size = path.stat().st_size
    if size != expected:
        _fail(path, f"{size} bytes on disk, but its header (shape {shape}, {dtype}) needs {expected}")
    return tuple(shape), dtype


def _expect(path: Path, shape: tuple, dtypes: tuple[str, ...]) -> tuple:
    """Check a .npy's header against an expected shape (None = any length on that axis)."""
    actual, dtype = _header(path)
    if len(actual) != len(shape) or any(want is not None and want != got for want, got in zip(shape, actual)):
        wanted = tuple("*" if n is None else n for n in shape)
        _fail(path, f"shape {actual}, expected {wanted}")
    if dtype.name not in dtypes:
        _fail(path, f"dtype {dtype.name}, expected {' or '.join(dtypes)}")
    return actual


def check_structure(folder: Path, manifest: dict, metas) -> None:
    """The fast checks made on every open (headers and small arrays only); ModelError otherwise."""
    from inference_server.index.quantize import STORAGES

    manifest_path = folder / MANIFEST
    rows = _positive_int(manifest, "motions", folder, minimum=0)
    patches = _positive_int(manifest, "patches", folder)
    dim = _positive_int(manifest, "dim", folder)
    if manifest.get("storage") not in STORAGES:
        _fail(manifest_path, f"storage {manifest.get('storage')!r} is not one of {', '.join(STORAGES)}")
    model = manifest.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("fingerprint"), str):
        _fail(manifest_path, "'model' must be an object with a 'fingerprint'")
    if "dim" in model and model["dim"] != dim:
        _fail(manifest_path, f"model dim {model['dim']!r} differs from the index dim {dim}")
    _check_metas(folder / MOTIONS, metas, rows)
    _check_file_sizes(folder, manifest)
    try:
        codec = make_codec(manifest["storage"], patches, dim, manifest.get("pq_subspaces", DEFAULT_PQ_SUBSPACES))
    except Exception as error:  # a codec that cannot be made from these numbers
        _fail(manifest_path, f"cannot make the {manifest['storage']} codec ({error})")
    for name, spec in codec.fields().items():
        _expect(folder / f"{name}.npy", (rows, *spec.shape), (spec.dtype,))
    if isinstance(codec, PQCodec):
        from inference_server.index.quantize import PQ_CODEWORDS

        _expect(folder / "codec_codebooks.npy", (codec.subspaces, PQ_CODEWORDS, codec.width), ("float32",))
    centroids = _expect(folder / "centroids.npy", (None, dim), ("float32",))[0]
    if "centroids" in manifest and manifest["centroids"] != centroids:
        _fail(folder / "centroids.npy", f"{centroids} centroids, the manifest says {manifest['centroids']!r}")
    _expect(folder / "centroid_codes.npy", (rows, patches), ("int16",))
    lists = _expect(folder / "ivf_rows.npy", (None,), ("int32", "int64"))[0]
    _expect(folder / "ivf_offsets.npy", (centroids + 1,), ("int32", "int64"))
    _check_offsets(folder / "ivf_offsets.npy", load_array(folder / "ivf_offsets.npy", mmap=False), lists)
    frames = _expect(folder / "positions.npy", (None, 22, 3), ("float32",))[0]
    _expect(folder / "position_offsets.npy", (rows + 1,), ("int32", "int64"))
    offsets = load_array(folder / "position_offsets.npy", mmap=False)
    _check_offsets(folder / "position_offsets.npy", offsets, frames)
    counts = np.diff(offsets)
    stated = [meta.get("frames") for meta in metas]
    if frames and all(isinstance(n, int) and not isinstance(n, bool) for n in stated):
        wrong = np.flatnonzero(counts != np.asarray(stated, dtype=np.int64))
        if len(wrong):
            row = int(wrong[0])
            _fail(folder / "position_offsets.npy", f"motion {metas[row]['motion_id']!r} (row {row}) spans "
                                                   f"{int(counts[row])} frames, {MOTIONS} says {stated[row]}")


def _check_offsets(path: Path, offsets: np.ndarray, total: int) -> None:
    if len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != total or (np.diff(offsets) < 0).any():
        _fail(path, f"offsets must rise from 0 to {total}")


def _check_metas(path: Path, metas, rows: int) -> None:
    if not isinstance(metas, list) or len(metas) != rows:
        count = len(metas) if isinstance(metas, list) else type(metas).__name__
        _fail(path, f"holds {count} motions, the manifest says {rows}")
    seen = set()
    for row, meta in enumerate(metas):
        if not isinstance(meta, dict) or not isinstance(meta.get("motion_id"), str):
            _fail(path, f"row {row} is not an object with a string motion_id")
        motion_id = meta["motion_id"]
        if motion_id in seen:
            _fail(path, f"motion id {motion_id[:200]!r} appears more than once")
        seen.add(motion_id)
        for key, low in (("fps", 0.0), ("duration", -1e-9)):
            value = meta.get(key)
            if key in meta and (isinstance(value, bool) or not isinstance(value, (int, float))
                                or not math.isfinite(value) or value <= low):
                _fail(path, f"motion {motion_id[:200]!r}: {key} {value!r} is not a valid number")


def _check_file_sizes(folder: Path, manifest: dict) -> None:
    for name, record in _file_records(folder, manifest).items():
        path = folder / name
        if not path.is_file():
            _fail(folder, f"index file {name} is missing")
        if path.stat().st_size != record["bytes"]:
            _fail(path, f"{path.stat().st_size} bytes on disk, the manifest says {record['bytes']}")


def _file_records(folder: Path, manifest: dict) -> dict:
    records = manifest.get("files", {})
    if not isinstance(records, dict) or not all(
            isinstance(name, str) and "/" not in name and "\\" not in name and isinstance(record, dict)
            and isinstance(record.get("bytes"), int) and isinstance(record.get("sha256", ""), str)
            for name, record in records.items()):
        _fail(folder / MANIFEST, "'files' must map file names to {bytes, sha256}")
    return records


def file_records(folder: Path, names: list[str] | None = None) -> dict:
    """{name: {"bytes", "sha256"}} of the index's files (all but the manifest): what a build
    records in manifest["files"] for verify_contents to compare."""
    folder = Path(folder)
    paths = [folder / name for name in names] if names is not None else sorted(
        path for path in folder.iterdir() if path.is_file() and path.name != MANIFEST)
    return {path.name: {"bytes": path.stat().st_size, "sha256": _sha256(path)} for path in paths}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_VERIFY_CHUNK = 1 << 22  # elements scanned at once


def verify_contents(folder: Path, manifest: dict, hashes: bool = True) -> dict:
    """The full check: every float array finite, every code in range, recorded sha256s equal."""
    folder = Path(folder)
    check_structure(folder, manifest, read_json(folder / MOTIONS))
    rows, centroids = manifest["motions"], _header(folder / "centroids.npy")[0][0]
    for path in sorted(folder.glob("*.npy")):
        array = load_array(path)
        if array.dtype.kind == "f":
            flat = array.reshape(-1)
            for start in range(0, len(flat), _VERIFY_CHUNK):
                if not np.isfinite(flat[start:start + _VERIFY_CHUNK]).all():
                    bad = start + int(np.flatnonzero(~np.isfinite(flat[start:start + _VERIFY_CHUNK]))[0])
                    where = f"row {bad // max(1, math.prod(array.shape[1:]))}" if array.ndim > 1 else f"element {bad}"
                    _fail(path, f"holds NaN or infinity ({where})")
    for name, limit in (("centroid_codes.npy", centroids), ("ivf_rows.npy", rows)):
        array = load_array(folder / name).reshape(-1)
        for start in range(0, len(array), _VERIFY_CHUNK):
            block = array[start:start + _VERIFY_CHUNK]
            if len(block) and (int(block.min()) < 0 or int(block.max()) >= limit):
                _fail(folder / name, f"holds values outside 0..{limit - 1}")
    records = _file_records(folder, manifest)
    hashed = 0
    if hashes:
        for name, record in records.items():
            if record.get("sha256") and _sha256(folder / name) != record["sha256"]:
                _fail(folder / name, "sha256 differs from the one recorded in the manifest")
            hashed += bool(record.get("sha256"))
    files = [path for path in folder.iterdir() if path.is_file()]
    return {"motions": rows, "files": len(files), "bytes": sum(path.stat().st_size for path in files),
            "hashed": hashed}
