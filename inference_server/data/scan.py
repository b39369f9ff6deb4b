"""Scanning many files: progress bar on stderr, bad files listed instead of raised."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from tqdm import tqdm

from inference_server.errors import DataError


def scan_files(paths: Iterable, read: Callable, progress: bool, desc: str):
    """read(path) -> MotionItem | list[MotionItem] for each path -> (items, skipped).

    A DataError (or an OS error reading the file) skips that file with its reason.
    """
    items, skipped = [], []
    paths = list(paths)
    for path in tqdm(paths, desc=desc, unit="file", disable=not progress, leave=False):
        try:
            result = read(path)
        except (DataError, OSError, UnicodeDecodeError) as error:
            skipped.append({"path": str(path), "error": _reason(error, path)})
            continue
        items.extend(result if isinstance(result, list) else [result])
    return items, skipped


def _reason(error: Exception, path) -> str:
    text = str(error)
    return text if str(path) in text else f"{path}: {text}"


def require_dir(path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: {what} folder not found")
    return path
