"""Result previews: the server's `preview` PNGs (stick-figure strips) as icons in the panel.

A search reply asks for the preview of every motion it lists that is not loaded yet
(replies.py); each PNG is written to a file in a temporary folder of this Blender session
and loaded into one bpy.utils.previews collection, keyed by (motion id, size). An older
server answers `preview` with unknown_op: the panel then hides previews (available() is
False). forget() frees the collection and deletes the files: when the client changes
(another server may number its motions differently) and when the add-on is disabled.
"""
from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

import bpy
import bpy.utils.previews

from . import state

SIZE = (192, 64)  # width, height in pixels: four poses side by side
UNKNOWN_OP = "unknown_op"


def key(motion_id: str, size: tuple[int, int] = SIZE) -> str:
    return f"{size[0]}x{size[1]}:{motion_id}"


def available() -> bool:
    """False once the server said it has no `preview` op."""
    return state.previews.supported is not False


def wanted(motion_ids) -> list[str]:
    """The motions among `motion_ids` (in order, once each) whose previews were not asked
    for yet; they count as asked from now on."""
    if not available():
        return []
    asked = state.previews.asked
    fresh = [motion_id for motion_id in dict.fromkeys(motion_ids) if key(motion_id) not in asked]
    asked.update(key(motion_id) for motion_id in fresh)
    return fresh


def store(motion_id: str, size: tuple[int, int], png: bytes) -> None:
    """Keep the PNG of `motion_id` at `size` and load it as a preview."""
    state.previews.supported = True
    name = key(motion_id, size)
    collection = _collection()
    if name in collection:
        return
    path = Path(_folder()) / (hashlib.sha1(name.encode("utf-8")).hexdigest() + ".png")
    path.write_bytes(png)
    collection.load(name, str(path), "IMAGE")


def refused(motion_id: str, code: str) -> None:
    """A `preview` request the server refused: unknown_op hides previews; any other error
    leaves this motion without one (a later search asks again)."""
    if code == UNKNOWN_OP:
        state.previews.supported = False
    state.previews.asked.discard(key(motion_id))


def preview(motion_id: str):
    """The loaded ImagePreview of `motion_id` (at SIZE), or None."""
    collection = state.previews.collection
    return collection.get(key(motion_id)) if collection is not None else None


def icon(motion_id: str) -> int:
    """The icon id of `motion_id`'s preview, 0 when there is none (or no UI to draw it)."""
    loaded = preview(motion_id)
    return loaded.icon_id if loaded is not None else 0


def forget() -> None:
    """Free the collection, delete the files and forget what the server can do."""
    if state.previews.collection is not None:
        bpy.utils.previews.remove(state.previews.collection)
    if state.previews.folder:
        shutil.rmtree(state.previews.folder, ignore_errors=True)
    state.previews = state.Previews()


def _collection():
    if state.previews.collection is None:
        state.previews.collection = bpy.utils.previews.new()
    return state.previews.collection


def _folder() -> str:
    if not state.previews.folder:
        state.previews.folder = tempfile.mkdtemp(prefix="t2m_previews_")
    return state.previews.folder
