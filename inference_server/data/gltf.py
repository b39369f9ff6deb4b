"""glTF motion libraries (`gltf:DIR_OR_FILE`: .glb / .gltf), read like FBX (data/fbx.py)."""
from __future__ import annotations

from inference_server.data.fbx import scan_kind


def scan(arg: str | None, progress: bool = False):
    return scan_kind("gltf", arg, progress)
