"""What an index folder says about itself, read without torch: its manifest and motion list.

manifest.json holds the format and version, the model that built the index (name,
fingerprint, dim, pooling, and the checkpoint's path when it was built from one), storage
and counts (see store.py for the whole layout). Reading it is cheap, so the command line
checks an index and its model here before it loads anything heavy.
"""
from __future__ import annotations

import json
from pathlib import Path

from inference_server.errors import ModelError

FORMAT = "t2m-index"
VERSION = 1
MANIFEST = "manifest.json"
MOTIONS = "motions.json"


def read_json(path: Path) -> dict | list:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path.parent}: not a motion index ({path.name} is missing)") from None
    except (OSError, ValueError) as error:
        raise ModelError(f"{path}: unreadable index file ({error})") from None


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


def built_with(folder: Path) -> dict:
    """The model record of INDEX: {"fingerprint", "name", ...; "path" when built from a checkpoint folder}."""
    model = read_manifest(folder).get("model")
    if not isinstance(model, dict) or not isinstance(model.get("fingerprint"), str):
        raise ModelError(f"{folder / MANIFEST}: 'model' must be an object with a 'fingerprint'")
    return model
