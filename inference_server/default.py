"""The embedded models: ones that ship inside the package, and a library they build themselves.

Works out of the box, offline, on a CPU: a model (`default`, inference_server/default/model,
or `permissive`, inference_server/default/permissive; both trained by our own `t2m train`,
see MODEL_CARD.md there and the LICENCE line of each) and the synthetic generator's library
(plus the DeepMimic clips when pybullet is installed), embedded on first use into an index
cached under $T2M_CACHE (default ~/.cache/t2m). The cache key holds the model's
fingerprint and the library's spec, so a new model or library never reuses a stale index.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

from inference_server.errors import ModelError
from inference_server.index.manifest import built_with
from inference_server.model.identity import WEIGHTS_FILE, check_checkpoint, fingerprint, is_checkpoint

MODEL_DIR = Path(__file__).parent / "default" / "model"
# name -> folder; `--model NAME` picks one (and its own cached library index)
EMBEDDED = {"default": MODEL_DIR, "permissive": Path(__file__).parent / "default" / "permissive"}
SYNTHETIC_SPEC = "synthetic:2000:0"
FINGERPRINT_CHARS = 12


def cache_dir() -> Path:
    return Path(os.environ.get("T2M_CACHE") or Path.home() / ".cache" / "t2m")


def library_specs() -> list[str]:
    """The default library: synthetic motions, plus DeepMimic's clips where pybullet is installed."""
    specs = [SYNTHETIC_SPEC]
    if importlib.util.find_spec("pybullet_data") is not None:
        specs.append("deepmimic")
    return specs


def load_library(progress: bool = False):
    """One Dataset holding every default library spec."""
    from inference_server.data import Dataset, load_spec

    parts = [load_spec(spec, progress=progress) for spec in library_specs()]
    return Dataset([item for part in parts for item in part.items],
                   [entry for part in parts for entry in part.skipped], "+".join(library_specs()))


def model_dir(model: str | Path | None) -> Path:
    """An embedded model's folder by name ("default", "permissive"), or the path as given."""
    return EMBEDDED.get(str(model or "default"), Path(str(model)))


def licence(model: Path) -> str:
    """The one-line licence of a checkpoint (config.json "licence"), or "" when it has none."""
    import json
    try:
        return str(json.loads((Path(model) / "config.json").read_text()).get("licence", ""))
    except (OSError, ValueError):
        return ""


def resolve(model: str | Path | None, index: str | Path | None,
            progress: bool | None = None) -> tuple[Path, Path]:
    """(model dir, index dir) from the --model/--index options, checked without loading torch:
    - --index INDEX: that index, with --model CKPT when given (it must be the model that built
      the index), else the model the index records (model_for_index);
    - no --index: an embedded model by name, or nothing ("default"), with its library index
      built on first use (progress: the build's bars; None: when stderr is a terminal)."""
    if progress is None:
        progress = sys.stderr.isatty()
    if index is not None:
        return model_for_index(Path(index), model), Path(index)
    if model is not None and str(model) not in EMBEDDED:
        raise ModelError(f"--model {model} needs --index INDEX (only the embedded models "
                         f"{', '.join(EMBEDDED)} come with a library of their own)")
    return model_and_index(progress=progress, model=model_dir(model))


def model_for_index(index: Path, model: str | Path | None = None) -> Path:
    """The checkpoint that built INDEX: --model when given (checked against the index's
    fingerprint), else the path the index records or an embedded model with its fingerprint."""
    record = built_with(index)
    if model is not None:
        folder = check_checkpoint(model_dir(model))
        given = fingerprint(folder)
        if given != record["fingerprint"]:
            raise ModelError(f"index {index} was built with model {_describe(record)}, not with --model {model} "
                             f"({given[:FINGERPRINT_CHARS]}): rebuild the index with this model, or leave --model out")
        return folder
    recorded = [Path(record["path"])] if isinstance(record.get("path"), str) else []
    for folder in recorded + list(EMBEDDED.values()):
        if is_checkpoint(folder) and fingerprint(folder) == record["fingerprint"]:
            return folder
    replaced = bool(recorded) and is_checkpoint(recorded[0])
    raise ModelError(f"index {index} was built with model {_describe(record)}, "
                     f"{'whose folder now holds other weights' if replaced else 'which is not there'}: "
                     "pass --model CKPT (the checkpoint that built it), or rebuild the index")


def _describe(record: dict) -> str:
    where = record.get("path") or record.get("name") or "?"
    return f"{where} ({record['fingerprint'][:FINGERPRINT_CHARS]})"


def model_fingerprint(model_dir: Path = MODEL_DIR) -> str:
    if not is_checkpoint(model_dir):
        raise ModelError(f"the embedded model is missing ({model_dir / WEIGHTS_FILE}); reinstall t2m, "
                         "or pass --index INDEX --model CKPT")
    return fingerprint(model_dir)


def index_path(model: Path = MODEL_DIR) -> Path:
    library_key = hashlib.sha256("+".join(library_specs()).encode()).hexdigest()[:8]
    return cache_dir() / f"default-index-{model_fingerprint(model)[:FINGERPRINT_CHARS]}-{library_key}"


def model_and_index(progress: bool = True, model: Path = MODEL_DIR) -> tuple[Path, Path]:
    """(model dir, index dir) of an embedded model, building its library index on first use."""
    from inference_server.index import build_index

    index = index_path(model)
    if not (index / "manifest.json").is_file():
        index.parent.mkdir(parents=True, exist_ok=True)
        build_index(load_library(progress), model, index, progress=progress)
    return model, index
