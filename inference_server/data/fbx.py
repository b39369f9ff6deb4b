"""FBX and glTF motion libraries (`fbx:DIR_OR_FILE`, `gltf:DIR_OR_FILE`), read through
Blender's own importers in a child process; this process never imports bpy.

The child (data/blender_import.py) runs under the `bpy` module of this interpreter, or
under Blender itself when $T2M_BLENDER names its executable. It writes each file's
armature joint positions per frame (one clip per action that keys the bones) as .npz
(no pickle) + .json; here they are mapped to SMPL-22 by the shared skeleton mapper
(bridge/skeleton_map.py) like a BVH, and put in the canonical placement.

Results are cached under $T2M_CACHE/blender_import (keyed by path, size and mtime), so
`t2m index build ... --update` and repeated `t2m data stats` do not import again. A file
the importer rejects, or that crashes Blender, is skipped with its reason.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from inference_server.data.bvh import SkeletonReports, sidecar_captions, smpl22_map, unit_scale, up_rotation_for
from inference_server.data.kinematics import canonicalize
from inference_server.errors import DataError
from inference_server.motion import Motion, MotionItem

CHILD = Path(__file__).with_name("blender_import.py")
CHILD_VERSION = "1"  # bump when the child's output changes (invalidates the cache)
SUFFIXES = {"fbx": (".fbx",), "gltf": (".glb", ".gltf")}
SECONDS_PER_FILE = 120  # child timeout per file (a hung importer counts as a crash)
Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])  # Blender (x, y, z) -> (x, z, -y)


def scan(arg: str | None, progress: bool = False):
    return scan_kind("fbx", arg, progress)


def scan_kind(kind: str, arg: str | None, progress: bool = False):
    """Every .fbx (or .glb/.gltf) below a folder -> (items, skipped, skeletons)."""
    if not arg:
        raise DataError(f"{kind}: needs a folder or file, e.g. {kind}:mocap/")
    root = Path(arg)
    if root.is_file():
        paths, base = [root], root.parent
    elif root.is_dir():
        paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES[kind])
        base = root
    else:
        raise DataError(f"{root}: no such {kind.upper()} file or folder")
    outputs = import_files(paths, kind, progress)
    items, skipped, reports = [], [], SkeletonReports()
    for path in paths:
        result = outputs[path]
        if isinstance(result, str):
            skipped.append({"path": str(path), "error": f"{path}: {result}"})
            continue
        try:
            items.extend(_items(path, path.relative_to(base).with_suffix("").as_posix(), *result, reports))
        except DataError as error:
            skipped.append({"path": str(path), "error": str(error)})
    return items, skipped, reports.as_list()


def read_items(path, kind: str | None = None) -> list[MotionItem]:
    """One FBX / glTF file -> its clips (DataError when unreadable)."""
    path = Path(path)
    kind = kind or ("gltf" if path.suffix.lower() in SUFFIXES["gltf"] else "fbx")
    result = import_files([path], kind, progress=False)[path]
    if isinstance(result, str):
        raise DataError(f"{path}: {result}")
    return _items(path, path.stem, *result, SkeletonReports())


# ---------------------------------------------------------------- the child process

def child_command(jobs: Path) -> list[str]:
    blender = os.environ.get("T2M_BLENDER")
    if blender:
        return [blender, "--background", "--factory-startup", "--python", str(CHILD), "--", str(jobs)]
    if importlib.util.find_spec("bpy") is None:  # finds, does not import
        raise DataError("reading FBX/glTF needs Blender: install the bpy module into this environment "
                        "(pip install bpy, Python 3.11) or set T2M_BLENDER=/path/to/blender")
    return [sys.executable, str(CHILD), str(jobs)]


def cache_dir() -> Path:
    root = Path(os.environ.get("T2M_CACHE") or Path.home() / ".cache" / "t2m")
    return root / "blender_import"


def _cache_key(path: Path, kind: str) -> str:
    stat = path.stat()
    text = f"{CHILD_VERSION}|{kind}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def import_files(paths: list[Path], kind: str, progress: bool) -> dict:
    """path -> (arrays dict, meta dict) or an error string; imports what the cache lacks."""
    cache = cache_dir()
    results: dict = {}
    pending: list[tuple[Path, Path]] = []
    for path in paths:
        try:
            stem = cache / _cache_key(path, kind)
        except OSError as error:
            results[path] = f"cannot read: {error}"
            continue
        cached = _load_output(stem)
        if cached is not None:
            results[path] = cached
        else:
            pending.append((path, stem))
    if not pending:
        return results
    cache.mkdir(parents=True, exist_ok=True)
    with tqdm(total=len(pending), desc=f"{kind} (Blender import)", unit="file", disable=not progress,
              leave=False) as bar:
        while pending:
            done = _run_child(pending, kind, bar)
            for path, stem in pending[:done]:
                output = _load_output(stem)
                results[path] = output if output is not None else "the Blender importer wrote nothing"
            if done < len(pending):  # the child died on pending[done]
                path, stem = pending[done]
                results[path] = "Blender crashed or hung while importing this file"
                bar.update(1)
                done += 1
            pending = pending[done:]
    return results


def _run_child(pending: list[tuple[Path, Path]], kind: str, bar) -> int:
    """Run one child over `pending`; the number of files it finished."""
    with tempfile.TemporaryDirectory(prefix="t2m_import_") as work:
        jobs = Path(work) / "jobs.json"
        files = [{"path": str(path), "kind": kind, "out": str(Path(work) / f"{k}")}
                 for k, (path, _) in enumerate(pending)]
        jobs.write_text(json.dumps({"files": files}), encoding="utf-8")
        done, ready = 0, False
        log = Path(work) / "stderr.txt"
        with open(log, "w", encoding="utf-8") as stderr:
            try:
                process = subprocess.Popen(child_command(jobs), stdout=subprocess.PIPE, stderr=stderr, text=True,
                                           cwd=work)
            except OSError as error:
                raise DataError(f"could not start Blender to import {kind.upper()} files: {error}") from None
            timer = _Watchdog(process, SECONDS_PER_FILE)
            try:
                for line in process.stdout:
                    timer.reset()
                    if line.startswith("ready"):
                        ready = True
                    elif line.startswith("done "):
                        index = int(line.split()[1])
                        _store(Path(work) / f"{index}", pending[index][1])
                        done = index + 1
                        bar.update(1)
            finally:
                process.stdout.close()
                process.wait()
                timer.stop()
        if not ready:  # Blender itself did not start: no file is to blame
            lines = [line for line in log.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
            raise DataError(f"could not start Blender to import {kind.upper()} files ({' '.join(child_command(jobs)[:2])}): "
                            f"{lines[-1] if lines else f'exit code {process.returncode}'}")
        return done


class _Watchdog:
    """Kills the child when it prints nothing for `seconds` (a hung importer)."""

    def __init__(self, process, seconds: float):
        import threading

        self.process, self.seconds = process, seconds
        self.event = threading.Event()
        self.stopped = False
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.thread.start()

    def _watch(self):
        while not self.stopped:
            if not self.event.wait(self.seconds):
                if not self.stopped and self.process.poll() is None:
                    self.process.kill()
                return
            self.event.clear()

    def reset(self):
        self.event.set()

    def stop(self):
        self.stopped = True
        self.event.set()


def _store(produced: Path, stem: Path) -> None:
    for suffix in (".npz", ".json", ".error.txt"):
        source = produced.with_suffix(suffix)
        if source.exists():
            shutil.move(str(source), str(stem) + suffix)


def _load_output(stem: Path):
    error = Path(str(stem) + ".error.txt")
    if error.exists():
        return error.read_text(encoding="utf-8", errors="replace").strip() or "the Blender importer failed"
    npz, meta = Path(str(stem) + ".npz"), Path(str(stem) + ".json")
    if not (npz.exists() and meta.exists()):
        return None
    with np.load(npz, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return arrays, json.loads(meta.read_text(encoding="utf-8"))


# ---------------------------------------------------------------- positions -> SMPL-22

def _items(path: Path, item_id: str, arrays: dict, meta: dict, reports: SkeletonReports) -> list[MotionItem]:
    names = [str(name) for name in arrays["names"]]
    parents = [int(parent) for parent in arrays["parents"]]
    rest = arrays["rest"].astype(np.float64) @ Z_UP_TO_Y_UP.T
    mapping = smpl22_map(names, parents, path, rest)
    reports.add(mapping, path)
    captions = sidecar_captions(path)
    clips = meta["clips"]
    items = []
    for number, clip in enumerate(clips):
        positions = arrays[f"clip_{number}"].astype(np.float64) @ Z_UP_TO_Y_UP.T
        if len(positions) < 2:
            continue  # a one-frame pose is not a motion
        # Blender works in metres, but a character exported at 0.01 scale is 1.7 cm tall:
        # the same unit guess as for BVH files
        positions = positions * unit_scale(positions, mapping, "auto", path)
        smpl = canonicalize(mapping.apply(positions), up_rotation_for("y", positions, path))
        fps = float(clip["fps"])
        if not 1.0 <= fps <= 10000.0:
            raise DataError(f"{path}: frame rate {fps:g} fps is not a motion frame rate")
        clip_name = clip["name"].rsplit("|", 1)[-1]
        suffix = f"/{clip_name}" if len(clips) > 1 else ""
        items.append(MotionItem(id=item_id + suffix, name=path.stem + (f" {clip_name}" if suffix else ""),
                                motion=Motion.smpl22(smpl, fps), captions=captions, source=str(path), split=None,
                                labels={"rig": mapping.rig, "clip": clip_name}))
    if not items:
        raise DataError(f"{path}: no clip with two or more frames")
    return items
