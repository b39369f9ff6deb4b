"""Build or update an index folder, atomically.

The new index is written into INDEX.tmp-<pid> next to INDEX, flushed to disk, and only
then swapped in (an atomic exchange of the two folders on Linux, two renames elsewhere);
an old INDEX stays whole until the new one is complete, and a failed build removes its
temporary folder (a killed one leaves a folder without manifest.json, which no loader
takes for an index and the next build deletes).

--update reuses the stored codes of every motion whose canonical content (SMPL-22
positions + fps, hashed) and model are unchanged, and the old index's trained quantisers
(centroids, PQ codebooks); only new or changed motions are embedded.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.lib.format import open_memmap
from tqdm import tqdm

from inference_server.errors import DataError, ModelError, T2MError
from inference_server.index import ivf
from inference_server.index.quantize import DEFAULT_PQ_SUBSPACES, Codec, PQCodec, make_codec
from inference_server.index.manifest import FORMAT, MANIFEST, MOTIONS, VERSION, read_json, read_manifest
from inference_server.index.store import file_records, folder_bytes, load_array, load_codec
from inference_server.jami import NUM_PATCHES

TMP_MARK = ".tmp-"
RAW = "raw.npy"    # the build's scratch embeddings, deleted before the swap
WRITE_CHUNK = 512  # motions encoded at once
SAMPLE_SEED = 0


@dataclass
class Quantizers:
    centroids: np.ndarray  # (C, d)
    codec: Codec


@dataclass
class RowPlan:
    """Where each output row's patches come from: a new embedding or the old index."""
    new_rows: list[int] = field(default_factory=list)   # output rows to embed
    reused: dict[int, int] = field(default_factory=dict)  # output row -> old row


def content_hash(positions: np.ndarray, fps: float) -> str:
    """sha256 of a motion's canonical content: what its embedding depends on."""
    digest = hashlib.sha256(np.ascontiguousarray(positions, dtype=np.float32).tobytes())
    digest.update(f"|{positions.shape}|{float(fps)!r}".encode())
    return digest.hexdigest()


def motion_meta(item, content: str) -> dict:
    motion = item.motion
    return {"motion_id": item.id, "name": item.name, "source": item.source, "duration": float(motion.duration),
            "fps": float(motion.fps), "frames": motion.num_frames, "captions": list(item.captions),
            "labels": dict(item.labels), "split": item.split, "content_hash": content}


def build_index(library, model, out: str | Path, storage: str | None = None, update: bool = False,
                batch_size: int = 64, progress: bool = True,
                pq_subspaces: int = DEFAULT_PQ_SUBSPACES) -> dict:
    """Embed a motion library (spec string or Dataset) with a checkpoint (path or Retriever) into INDEX.

    Returns {"motions", "embedded", "reused", "skipped" [{path, error}], "bytes", "storage", "path", "seconds"}.
    """
    from inference_server.data import Dataset, load_spec
    from inference_server.retriever import Retriever

    started = time.perf_counter()
    out = Path(out)
    check_target(out)
    dataset = library if isinstance(library, Dataset) else load_spec(library, progress=progress)
    retriever = model if hasattr(model, "embed_motions") else Retriever.load(model)
    old = _previous(out, retriever.fingerprint) if update else None
    storage = _choose_storage(storage, old, out)
    make_codec(storage, NUM_PATCHES, retriever.dim, pq_subspaces)  # refuse bad options before embedding
    items = list(dataset.items)
    hashes = [content_hash(item.motion.positions, item.motion.fps) for item in items]
    plan = plan_rows(items, hashes, old)
    with atomic_folder(out) as tmp:
        raw, failures = embed_rows(tmp, [items[row] for row in plan.new_rows], retriever, storage,
                                   batch_size, progress)
        keep = _drop_failed(plan, failures)
        items, hashes = [items[row] for row in keep], [hashes[row] for row in keep]
        model_info = {"name": retriever.name, "fingerprint": retriever.fingerprint, "dim": retriever.dim,
                      "pooling": getattr(retriever, "pooling", "maxsim"), **checkpoint_path(retriever)}
        write_index(tmp, raw, [motion_meta(item, h) for item, h in zip(items, hashes)],
                    [item.motion.positions for item in items], model_info, storage,
                    plan=plan, old=old, pq_subspaces=pq_subspaces, progress=progress)
        (tmp / RAW).unlink()
    skipped = list(dataset.skipped) + failures
    embedded = sum(1 for row in plan.new_rows if row >= 0)
    return {"motions": len(items), "embedded": embedded, "reused": len(plan.reused),
            "skipped": skipped, "bytes": folder_bytes(out), "storage": storage, "path": str(out),
            "seconds": round(time.perf_counter() - started, 3)}


def checkpoint_path(retriever) -> dict:
    """{"path": the absolute checkpoint folder} of a retriever loaded from one, so that the index
    alone finds its model (default.model_for_index); {} for a model straight from the trainer."""
    path = getattr(retriever, "path", None)
    return {} if path is None else {"path": str(Path(path).resolve())}


def check_target(out: Path) -> None:
    """Refuse to overwrite anything but an index (or nothing)."""
    if out.is_file() or (out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file()):
        raise ModelError(f"{out} exists and is not a motion index: refusing to replace it")


def _previous(out: Path, fingerprint: str) -> Path | None:
    """The old index to reuse, or None (none there, or built with another model)."""
    if not (out / MANIFEST).is_file():
        return None
    manifest = read_manifest(out)
    return out if manifest["model"]["fingerprint"] == fingerprint else None


def _choose_storage(storage: str | None, old: Path | None, out: Path) -> str:
    if old is None:
        return storage or "fp16"
    previous = read_manifest(old)["storage"]
    if storage not in (None, previous):
        raise T2MError(f"--update keeps the storage of {out} ({previous}); "
                       f"rebuild without --update to store {storage}")
    return previous


def plan_rows(items: list, hashes: list[str], old: Path | None) -> RowPlan:
    """Reuse an old row when the same motion id has the same content hash."""
    plan = RowPlan()
    previous = {}
    if old is not None:
        previous = {(meta["motion_id"], meta["content_hash"]): row
                    for row, meta in enumerate(read_json(old / MOTIONS))}
    for row, (item, digest) in enumerate(zip(items, hashes)):
        if (item.id, digest) in previous:
            plan.reused[row] = previous[(item.id, digest)]
        else:
            plan.new_rows.append(row)
    return plan


def embed_rows(folder: Path, items: list, retriever, storage: str, batch_size: int,
               progress: bool) -> tuple[np.ndarray, list[dict]]:
    """Embed items into folder/raw.npy (n, P, d); a motion the model refuses is listed, not fatal."""
    dtype = np.float32 if storage == "fp32" else np.float16
    raw = open_memmap(folder / RAW, mode="w+", dtype=dtype, shape=(len(items), NUM_PATCHES, retriever.dim))
    failures = []
    bar = tqdm(total=len(items), desc="embedding motions", unit="motion", disable=not progress)
    for start in range(0, len(items), batch_size):
        batch = items[start:start + batch_size]
        try:
            raw[start:start + len(batch)] = retriever.embed_motions([item.motion for item in batch], batch_size)
        except (T2MError, ValueError, FloatingPointError):
            failures += _embed_one_by_one(raw, start, batch, retriever)
        bar.update(len(batch))
    bar.close()
    raw.flush()
    return raw, failures


def _embed_one_by_one(raw: np.ndarray, start: int, batch: list, retriever) -> list[dict]:
    failures = []
    for offset, item in enumerate(batch):
        try:
            raw[start + offset] = retriever.embed_motions([item.motion])[0]
        except (T2MError, ValueError, FloatingPointError) as error:
            failures.append({"path": item.source, "error": f"{item.id}: {error}", "position": start + offset})
    return failures


def _drop_failed(plan: RowPlan, failures: list[dict]) -> list[int]:
    """Remove rows whose embedding failed from the plan; returns the output rows kept (old numbering).

    The plan is renumbered in place: new_rows become positions in raw.npy's order, so
    plan.new_rows[j] = output row of raw row j.
    """
    bad_raw = {failure.pop("position") for failure in failures}
    bad_rows = {plan.new_rows[j] for j in bad_raw}
    keep = [row for row in range(len(plan.new_rows) + len(plan.reused)) if row not in bad_rows]
    renumber = {row: position for position, row in enumerate(keep)}
    plan.reused = {renumber[row]: old for row, old in plan.reused.items()}
    plan.new_rows = [renumber.get(row, -1) for row in plan.new_rows]  # -1: raw row not written
    return keep


def write_index(folder: Path, raw: np.ndarray, metas: list[dict], positions: list[np.ndarray] | None,
                model_info: dict, storage: str = "fp16", plan: RowPlan | None = None, old: Path | None = None,
                pq_subspaces: int = DEFAULT_PQ_SUBSPACES, progress: bool = False,
                quantizers: Quantizers | None = None) -> Quantizers:
    """Write a complete index into folder (manifest.json last).

    raw: (n, P, d) float embeddings of plan.new_rows (all rows when plan is None);
    old: the previous index whose rows plan.reused copies and whose quantisers are kept.
    """
    rows = len(metas)
    plan = plan or RowPlan(new_rows=list(range(rows)))
    patches, dim = raw.shape[1], raw.shape[2]
    if not np.isfinite(raw).all():
        raise ModelError("the model produced NaN or infinite patch vectors: refusing to write them into an index")
    if quantizers is None:
        quantizers = _old_quantizers(old) if old is not None else train_quantizers(raw, storage, pq_subspaces)
    codes = _write_patch_store(folder, raw, plan, old, quantizers, rows, progress)
    list_rows, list_offsets = ivf.inverted_lists(codes, len(quantizers.centroids))
    _save(folder / "centroids.npy", quantizers.centroids.astype(np.float32))
    _save(folder / "ivf_rows.npy", list_rows)
    _save(folder / "ivf_offsets.npy", list_offsets)
    for name, array in quantizers.codec.state().items():
        _save(folder / f"codec_{name}.npy", array)
    _write_positions(folder, positions if positions is not None else [np.zeros((0, 22, 3), np.float32)] * rows)
    (folder / MOTIONS).write_text(json.dumps(metas), encoding="utf-8")
    manifest = {"format": FORMAT, "version": VERSION, "model": model_info, "storage": storage,
                "motions": rows, "patches": patches, "dim": dim, "centroids": len(quantizers.centroids),
                "bytes_per_motion": quantizers.codec.bytes_per_motion() + 2 * patches,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if isinstance(quantizers.codec, PQCodec):
        manifest["pq_subspaces"] = quantizers.codec.subspaces
    # sizes + sha256 of the index's own files (not the build's scratch raw.npy): verify() checks them
    manifest["files"] = file_records(folder, sorted(path.name for path in folder.iterdir()
                                                    if path.is_file() and path.name not in (MANIFEST, RAW)))
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return quantizers


def sample_patches(raw: np.ndarray, count: int, seed: int = SAMPLE_SEED) -> np.ndarray:
    """Up to `count` patch vectors drawn at random from (n, P, d) raw embeddings, float32, in random order."""
    rng = np.random.default_rng(seed)
    total = raw.shape[0] * raw.shape[1]
    picks = np.sort(rng.choice(total, min(count, total), replace=False))  # sorted: sequential reads
    rows, cols = np.divmod(picks, raw.shape[1])
    return np.asarray(raw[rows, cols], dtype=np.float32)[rng.permutation(len(picks))]


def train_quantizers(raw: np.ndarray, storage: str, pq_subspaces: int = DEFAULT_PQ_SUBSPACES,
                     centroids: np.ndarray | None = None) -> Quantizers:
    """Coarse centroids (unless given) and the codec's codebooks from a sample of the raw embeddings."""
    if len(raw) == 0:
        raise DataError("no motion could be embedded: nothing to index")
    sample = sample_patches(raw, ivf.SAMPLE_PATCHES)
    if centroids is None:
        centroids = ivf.train_centroids(sample, raw.shape[0] * raw.shape[1])
    codec = make_codec(storage, raw.shape[1], raw.shape[2], pq_subspaces)
    codec.fit(sample, centroids)
    return Quantizers(centroids, codec)


def _old_quantizers(old: Path) -> Quantizers:
    manifest = read_manifest(old)
    return Quantizers(load_array(old / "centroids.npy", mmap=False), load_codec(old, manifest))


def _write_patch_store(folder: Path, raw: np.ndarray, plan: RowPlan, old: Path | None,
                       quantizers: Quantizers, rows: int, progress: bool) -> np.ndarray:
    """Encode new rows and copy reused ones into the codec's field files; returns the (N, P) codes."""
    codec = quantizers.codec
    patches = raw.shape[1]
    outputs = {name: open_memmap(folder / f"{name}.npy", mode="w+", dtype=spec.dtype, shape=(rows, *spec.shape))
               for name, spec in codec.fields().items()}
    codes = open_memmap(folder / "centroid_codes.npy", mode="w+", dtype=np.int16, shape=(rows, patches))
    sources = [(raw_row, out_row) for raw_row, out_row in enumerate(plan.new_rows) if out_row >= 0]
    for start in tqdm(range(0, len(sources), WRITE_CHUNK), desc="encoding patches", unit="chunk",
                      disable=not progress or len(sources) <= WRITE_CHUNK):
        raw_rows, out_rows = (np.array(column) for column in zip(*sources[start:start + WRITE_CHUNK]))
        vectors = np.asarray(raw[raw_rows], dtype=np.float32)
        chunk_codes = ivf.assign_patches(vectors, quantizers.centroids)
        codes[out_rows] = chunk_codes
        for name, values in codec.encode(vectors, chunk_codes).items():
            outputs[name][out_rows] = values
    if plan.reused:
        _copy_reused(old, plan.reused, outputs, codes)
    for array in (*outputs.values(), codes):
        array.flush()
    return codes


def _copy_reused(old: Path, reused: dict[int, int], outputs: dict, codes: np.ndarray) -> None:
    out_rows = np.array(sorted(reused))
    old_rows = np.array([reused[row] for row in out_rows])
    sources = {name: load_array(old / f"{name}.npy") for name in outputs}
    old_codes = load_array(old / "centroid_codes.npy")
    for start in range(0, len(out_rows), WRITE_CHUNK):
        dst, src = out_rows[start:start + WRITE_CHUNK], old_rows[start:start + WRITE_CHUNK]
        codes[dst] = old_codes[src]
        for name, array in outputs.items():
            array[dst] = sources[name][src]


def _write_positions(folder: Path, positions: list[np.ndarray]) -> None:
    offsets = np.zeros(len(positions) + 1, np.int64)
    offsets[1:] = np.cumsum([len(p) for p in positions])
    store = open_memmap(folder / "positions.npy", mode="w+", dtype=np.float32, shape=(int(offsets[-1]), 22, 3))
    for row, frames in enumerate(positions):
        store[offsets[row]:offsets[row + 1]] = frames
    store.flush()
    del store
    _save(folder / "position_offsets.npy", offsets)


def _save(path: Path, array: np.ndarray) -> None:
    np.save(path, np.ascontiguousarray(array), allow_pickle=False)


# ---------------------------------------------------------------- atomic folder swap

@contextlib.contextmanager
def atomic_folder(target: Path):
    """Yield a fresh INDEX.tmp-<pid> folder; on success fsync it and swap it in for target."""
    target = Path(target).absolute()
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = target.with_name(f"{target.name}{TMP_MARK}{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_folder(tmp)
        _swap_in(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale_temporaries(target: Path) -> None:
    """Delete INDEX.tmp-<pid> folders left by builds whose process is gone."""
    for path in target.parent.glob(f"{target.name}{TMP_MARK}*"):
        pid = path.name.rsplit(TMP_MARK, 1)[1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_folder(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())
    _fsync_path(folder)


def _fsync_path(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a directory
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _swap_in(tmp: Path, target: Path) -> None:
    if not target.exists():
        os.rename(tmp, target)
    elif _exchange(tmp, target):
        shutil.rmtree(tmp)  # now holds the old index
    else:
        backup = target.with_name(f"{target.name}.old-{os.getpid()}")
        os.rename(target, backup)
        os.rename(tmp, target)
        shutil.rmtree(backup)
    _fsync_path(target.parent)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0
