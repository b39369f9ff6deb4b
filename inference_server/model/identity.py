"""A checkpoint's files and fingerprint, read without torch (the command line checks them
before it loads anything heavy). The fingerprint is the sha256 of model.safetensors."""
from __future__ import annotations

import hashlib
from pathlib import Path

from inference_server.errors import ModelError

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"


def is_checkpoint(path: str | Path) -> bool:
    return (Path(path) / CONFIG_FILE).is_file() and (Path(path) / WEIGHTS_FILE).is_file()


def check_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder, or a ModelError saying what is missing."""
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"model {path}: no such checkpoint folder")
    if not is_checkpoint(path):
        raise ModelError(f"{path}: not a checkpoint (needs {CONFIG_FILE} and {WEIGHTS_FILE})")
    return path


def fingerprint(path: str | Path) -> str:
    """sha256 (hex) of the checkpoint's model.safetensors."""
    digest = hashlib.sha256()
    with open(Path(path) / WEIGHTS_FILE, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
