"""The embedded default: a model that ships inside the package and a library it builds itself.

Works out of the box, offline, on a CPU: the model (inference_server/default/model, trained
by our own `t2m train`, see its MODEL_CARD.md) and the synthetic generator's library
(plus the DeepMimic clips when pybullet is installed), embedded on first use into an index
cached under $T2M_CACHE (default ~/.cache/t2m). The cache key holds the model's
fingerprint and the library's spec, so a new model or library never reuses a stale index.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from inference_server.errors import ModelError

MODEL_DIR = Path(__file__).parent / "default" / "model"
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


def model_fingerprint(model_dir: Path = MODEL_DIR) -> str:
    weights = model_dir / "model.safetensors"
    if not weights.is_file():
        raise ModelError(f"the embedded default model is missing ({weights}); reinstall t2m, "
                         "or pass --index INDEX --model CKPT")
    digest = hashlib.sha256()
    with open(weights, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def index_path() -> Path:
    library_key = hashlib.sha256("+".join(library_specs()).encode()).hexdigest()[:8]
    return cache_dir() / f"default-index-{model_fingerprint()[:FINGERPRINT_CHARS]}-{library_key}"


def model_and_index(progress: bool = True) -> tuple[Path, Path]:
    """(model dir, index dir) of the embedded default, building the index on first use."""
    from inference_server.index import build_index

    index = index_path()
    if not (index / "manifest.json").is_file():
        index.parent.mkdir(parents=True, exist_ok=True)
        build_index(load_library(progress), MODEL_DIR, index, progress=progress)
    return MODEL_DIR, index
