"""Motion datasets: one spec string -> a Dataset of SMPL-22 MotionItems.

Specs: `humanml3d:DIR`, `kitml:DIR`, `bvh:DIR_OR_FILE`, `bandai:DIR`, `deepmimic[:DIR]`,
`synthetic:N[:SEED]`, `fbx:DIR_OR_FILE`, `gltf:DIR_OR_FILE` (through Blender's importers in a
child process), each optionally followed by `@train|@val|@test`. A bare path is
accepted too (a folder is recognised by its layout, a file by its extension).

A scan never dies on one bad file: the file goes to Dataset.skipped with the reason.
Each reader module has `scan(arg, progress) -> (items, skipped)`.
"""
from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from inference_server.errors import DataError
from inference_server.motion import MotionItem

SPLITS = ("train", "val", "test")
# spec kind -> reader module in this package
READERS = {
    "humanml3d": "humanml3d",
    "kitml": "kitml",
    "bvh": "bvh",
    "bandai": "bandai",
    "deepmimic": "deepmimic",
    "synthetic": "synthetic",
    "fbx": "fbx",
    "gltf": "gltf",
}


@dataclass
class Dataset:
    items: list[MotionItem]
    skipped: list[dict] = field(default_factory=list)  # [{"path": str, "error": str}]
    spec: str = ""
    # readers of rigged files (bvh, fbx, gltf): the joint mapping of each distinct skeleton
    skeletons: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.items)

    def split(self, name: str) -> Dataset:
        if name not in SPLITS:
            raise DataError(f"unknown split {name!r} (expected one of {', '.join(SPLITS)})")
        base, at, tail = self.spec.rpartition("@")
        spec = base if at and tail in SPLITS else self.spec
        return Dataset([item for item in self.items if item.split == name], list(self.skipped), f"{spec}@{name}",
                       list(self.skeletons))

    def splits(self) -> dict[str, int]:
        """Item count per split name ("none" for items without a split)."""
        counts = Counter(item.split or "none" for item in self.items)
        return dict(sorted(counts.items()))

    def num_captions(self) -> int:
        return sum(len(item.captions) for item in self.items)

    def duration(self) -> float:
        """Total seconds of motion."""
        return float(sum(item.motion.duration for item in self.items))


class SpecParts(NamedTuple):
    kind: str  # a key of READERS
    arg: str | None  # the part after "kind:", None when absent
    split: str | None


def parse_spec(spec: str) -> SpecParts:
    """`kind[:arg][@split]` -> SpecParts; a bare existing path gets its kind from its layout."""
    if not spec or not spec.strip():
        raise DataError("empty data spec")
    body, split = spec, None
    head, at, tail = spec.rpartition("@")
    if at and tail in SPLITS:
        body, split = head, tail
    kind, colon, arg = body.partition(":")
    if kind in READERS:
        return SpecParts(kind, arg if colon else None, split)
    return SpecParts(_guess_kind(Path(body), spec), body, split)


def _guess_kind(path: Path, spec: str) -> str:
    if path.is_dir():
        if (path / "new_joints").is_dir():
            return "humanml3d"
        if (path / "cfg" / "content_label.txt").is_file() or any(
                (child / "cfg" / "content_label.txt").is_file() for child in path.iterdir() if child.is_dir()):
            return "bandai"
        return "bvh"
    if path.is_file():
        if path.suffix.lower() == ".bvh":
            return "bvh"
        if path.suffix.lower() == ".fbx":
            return "fbx"
        if path.suffix.lower() in (".glb", ".gltf"):
            return "gltf"
        if path.suffix.lower() in (".txt", ".json"):
            return "deepmimic"
    raise DataError(
        f"data spec {spec!r}: expected one of {', '.join(k + ':' for k in READERS)} "
        "or an existing folder / motion file")


def load_spec(spec: str, progress: bool = False) -> Dataset:
    """Read a whole dataset; bad files are listed in .skipped, never raised."""
    parts = parse_spec(spec)
    reader = importlib.import_module(f"{__name__}.{READERS[parts.kind]}")
    items, skipped, *rest = reader.scan(parts.arg, progress)
    _check_unique_ids(items, spec)
    dataset = Dataset(items, skipped, spec, rest[0] if rest else [])
    return dataset.split(parts.split) if parts.split else dataset


def _check_unique_ids(items: list[MotionItem], spec: str) -> None:
    counts = Counter(item.id for item in items)
    duplicates = [motion_id for motion_id, count in counts.items() if count > 1]
    if duplicates:
        raise DataError(f"data spec {spec!r}: duplicate motion ids {duplicates[:5]}")


def load_file(path) -> MotionItem:
    """One motion file by extension: .bvh, .npy (HumanML3D new_joints, 20 fps), .json/.txt (DeepMimic),
    .fbx / .glb / .gltf (the first clip; through Blender in a child process)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".bvh":
        from inference_server.data import bvh
        return bvh.read_item(path)
    if suffix == ".npy":
        from inference_server.data import humanml3d
        return humanml3d.read_joints_file(path)
    if suffix in (".json", ".txt"):
        from inference_server.data import deepmimic
        return deepmimic.read_item(path)
    if suffix in (".fbx", ".glb", ".gltf"):
        from inference_server.data import fbx
        return fbx.read_items(path)[0]
    raise DataError(f"{path}: unknown motion file type {suffix!r} (expected .bvh, .npy, .json, .fbx, .glb or .gltf)")
