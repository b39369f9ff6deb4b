"""Batch animation: a prompt list in, one animation file per prompt out (headless bpy).

run_batch() is the one call for pipeline scripts; `t2m batch` wraps it. For each prompt it
asks a backend (a bridge Client for a server, or the in-process LocalBackend) for the
best motions, retargets the chosen one onto the rig with the extension's own retargeting
and writes one file. A prompt of several steps ("walks, then waves", which the server
answers with `segments`) becomes one stitched action, as the panel's Apply Sequence makes
it: the chosen clip of every step, joined over `blend_frames` frames. Files are written
under a temporary name and renamed when complete, so an existing output is always a
complete one: a rerun skips it, and an interrupted run leaves no half-written file.
summary.json / summary.csv record what was chosen and why; review.blend holds every clip
as a named NLA strip.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import bpy

from . import clips
from .errors import AddonError
from .retarget import apply_motion, scene_fps
from .retarget_solver import ROOT_MOTION_MODES
from .wire import DEFAULT_BLEND_FRAMES, RemoteError

FORMATS = ("fbx", "bvh", "blend")
SUMMARY_FIELDS = ["prompt", "name", "rank", "motion_id", "motion_name", "score", "output", "seconds",
                  "frame_start", "frame_end", "skipped", "whole_motion_id", "whole_score"]
REVIEW_FILE = "review.blend"


class BatchError(AddonError):
    """A batch that cannot start: unreadable prompt file, rig or output folder."""


@dataclass
class Prompt:
    prompt: str
    name: str
    rank: int = 0
    start_frame: int | None = None
    root_motion: str = "full"
    blend_frames: int = DEFAULT_BLEND_FRAMES


# ---------------------------------------------------------------- prompt files

def read_prompts(path: str | Path) -> tuple[list[Prompt], list[dict]]:
    """Prompts from .txt (one a line), .csv or .jsonl (columns prompt, name, rank,
    start_frame, root_motion, blend_frames); rows that cannot be used come back as failures."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BatchError(f"cannot read prompt file {path}: {error}") from None
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    elif suffix == ".jsonl":
        rows = [_json_row(line) for line in text.splitlines()]
    else:
        rows = [{"prompt": line} for line in text.splitlines()]
    prompts, failed = [], []
    for number, row in enumerate(rows, start=2 if suffix == ".csv" else 1):
        try:
            prompts.append(_prompt_from_row(row))
        except ValueError as error:
            failed.append({"prompt": str(row.get("prompt", "")) if isinstance(row, dict) else "",
                           "error": f"{path.name} line {number}: {error}"})
    return prompts, failed


def _json_row(line: str):
    if not line.strip():
        return {"prompt": ""}
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        return {"prompt": "", "_error": f"not JSON ({error.msg})"}
    return row if isinstance(row, dict) else {"prompt": "", "_error": "not a JSON object"}


def _prompt_from_row(row: dict) -> Prompt:
    if row.get("_error"):
        raise ValueError(row["_error"])
    text = " ".join(str(row.get("prompt") or "").split())
    if not text:
        raise ValueError("empty prompt")
    rank = _optional_int(row.get("rank"), "rank", 0)
    if rank < 0:
        raise ValueError(f"rank must be >= 0, got {rank}")
    root_motion = str(row.get("root_motion") or "full").strip().replace(" ", "_").replace("-", "_")
    if root_motion not in ROOT_MOTION_MODES:
        raise ValueError(f"root_motion must be one of {', '.join(ROOT_MOTION_MODES)}, got {root_motion!r}")
    blend_frames = _optional_int(row.get("blend_frames"), "blend_frames", DEFAULT_BLEND_FRAMES)
    if blend_frames < 0:
        raise ValueError(f"blend_frames must be >= 0, got {blend_frames}")
    name = str(row.get("name") or "").strip() or text
    return Prompt(text, name, rank, _optional_int(row.get("start_frame"), "start_frame", None), root_motion,
                  blend_frames)


def _optional_int(value, field: str, default):
    if value is None or str(value).strip() == "":
        return default
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"{field} must be a whole number, got {value!r}") from None


def output_stem(name: str, taken: set[str]) -> str:
    """A file-name-safe, unique stem for a prompt's output."""
    stem = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower()[:60] or "clip"
    unique, number = stem, 2
    while unique in taken:
        unique, number = f"{stem}_{number}", number + 1
    taken.add(unique)
    return unique


# ---------------------------------------------------------------- rigs

def load_rig(rig: str, armature: str | None = None) -> bpy.types.Object:
    """The target armature: from a .blend (open it), an .fbx (import into an empty scene) or
    `builtin:mixamo` / `builtin:smpl` (the extension's stand-in humanoid)."""
    if rig.startswith("builtin:"):
        return _builtin_rig(rig.split(":", 1)[1])
    path = Path(rig)
    if not path.is_file():
        raise BatchError(f"rig file {path} does not exist")
    if path.suffix.lower() == ".blend":
        bpy.ops.wm.open_mainfile(filepath=str(path.resolve()))
    elif path.suffix.lower() == ".fbx":
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.ops.import_scene.fbx(filepath=str(path.resolve()))
    else:
        raise BatchError(f"rig {path} must be a .blend or an .fbx file")
    return _pick_armature(path, armature)


def _builtin_rig(kind: str) -> bpy.types.Object:
    from .rigs import make_humanoid_rig

    namings = {"mixamo": "MIXAMO", "smpl": "SMPL"}
    if kind not in namings:
        raise BatchError(f"unknown built-in rig {kind!r}: use builtin:mixamo or builtin:smpl")
    bpy.ops.wm.read_factory_settings(use_empty=True)
    return make_humanoid_rig("Character", naming=namings[kind], pose="A")


def _pick_armature(path: Path, name: str | None) -> bpy.types.Object:
    armatures = [obj for obj in bpy.context.scene.objects if obj.type == "ARMATURE"]
    if name is not None:
        chosen = [obj for obj in armatures if obj.name == name]
        if not chosen:
            raise BatchError(f"{path} has no armature named {name!r}; it has {[o.name for o in armatures]}")
        return chosen[0]
    if len(armatures) != 1:
        found = [obj.name for obj in armatures] or "none"
        raise BatchError(f"{path} must hold exactly one armature (found {found}): choose one with --armature")
    return armatures[0]


# ---------------------------------------------------------------- one prompt

def retrieve(backend, prompt: Prompt) -> list[dict]:
    """The chosen search hit (at the prompt's rank) of every step of the prompt: one for a
    prompt of one step; one per segment, each with its step's "text", for a sequence, and
    under "whole" the whole prompt's own hit at that rank (the one clip ranked best for all
    the steps in order; recorded in the summary, not applied)."""
    result, _ = backend.call("search", {"text": prompt.prompt, "k": prompt.rank + 1})
    if result.get("segments"):
        best = _ranked(result["results"], prompt.rank)
        whole = {key: best.get(key) for key in ("motion_id", "name", "score", "spans")}
        return [{**_ranked(segment["results"], prompt.rank), "text": segment["text"], "whole": whole}
                for segment in result["segments"]]
    return [_ranked(result["results"], prompt.rank)]


def _ranked(hits: list[dict], rank: int) -> dict:
    if len(hits) <= rank:
        raise BatchError(f"asked for result rank {rank} but the library returned {len(hits)}")
    return hits[rank]


def make_clip(obj, backend, prompt: Prompt, hits: list[dict] | None = None) -> tuple[bpy.types.Action, list]:
    """Retarget the prompt's chosen motion onto `obj` as a new action (the clips of a
    sequence stitched into one); `hits` ({"motion_id"} each): those motions instead."""
    hits = hits or retrieve(backend, prompt)
    parts = []
    for hit in hits:
        motion, arrays = backend.call("motion", {"motion_id": hit["motion_id"]})
        parts.append((clips.smpl_positions(motion, arrays), float(motion["fps"])))
    if len(parts) == 1:
        positions, fps = parts[0]
    else:
        fps = scene_fps(bpy.context.scene)
        positions = clips.stitched_positions(parts, fps, prompt.blend_frames, prompt.root_motion == "in_place")
    action = apply_motion(obj, positions, fps, prompt.name, root_motion=prompt.root_motion,
                          start_frame=prompt.start_frame)
    return action, hits


def export_clip(obj, action, path: Path, fmt: str) -> None:
    """Write `action` on `obj` to `path` atomically (temporary name, then rename)."""
    partial = path.with_name(path.stem + ".partial" + path.suffix)
    start, end = (int(round(frame)) for frame in action.frame_range)
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = start, end
    _make_active(obj)
    try:
        if fmt == "fbx":
            bpy.ops.export_scene.fbx(filepath=str(partial), use_selection=True, object_types={"ARMATURE"},
                                     add_leaf_bones=False, bake_anim=True, bake_anim_use_all_actions=False,
                                     bake_anim_use_nla_strips=False, bake_anim_simplify_factor=0.0)
        elif fmt == "bvh":
            bpy.ops.export_anim.bvh(filepath=str(partial), frame_start=start, frame_end=end)
        else:
            bpy.ops.wm.save_as_mainfile(filepath=str(partial), copy=True)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def _make_active(obj) -> None:
    for other in bpy.context.view_layer.objects:
        other.select_set(False)
    obj.select_set(True)
    bpy.context.view_layer.objects.active = obj


# ---------------------------------------------------------------- the batch

def run_batch(prompts_path: str | Path, rig: str, out_dir: str | Path, backend, fmt: str = "fbx",
              armature: str | None = None, progress: bool = True) -> dict:
    """Generate one animation file per prompt; returns {"done", "failed", "outputs", "summary",
    "review"}. Resumable: outputs that exist are kept and not regenerated."""
    if fmt not in FORMATS:
        raise BatchError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _remove_partials(out_dir)
    prompts, failed = read_prompts(prompts_path)
    obj = load_rig(rig, armature)
    previous = _previous_records(out_dir)
    taken: set[str] = set()
    records, clips = [], []
    with ctrl_c_between_prompts() as interrupted:
        for prompt in _progress(prompts, progress):
            if interrupted.is_set():
                _write_summaries(out_dir, records, failed)  # what is done stays recorded for the rerun
                raise KeyboardInterrupt
            path = out_dir / f"{output_stem(prompt.name, taken)}.{fmt}"
            try:
                record, action = _run_one(obj, backend, prompt, path, fmt, previous.get(path.name))
            except (AddonError, RemoteError, KeyError, ValueError, RuntimeError, ConnectionError) as error:
                failed.append({"prompt": prompt.prompt, "error": str(error)})
                continue
            records.append(record)
            clips.append((prompt.name, action))
    review = _write_review(obj, clips, out_dir, made_new=any(not r["skipped"] for r in records))
    _write_summaries(out_dir, records, failed)
    return {"done": len(records), "failed": failed, "outputs": [str(out_dir / r["output"]) for r in records],
            "summary": str(out_dir / "summary.json"), "review": str(review)}


def _remove_partials(out_dir: Path) -> None:
    """Files a killed run (SIGKILL, power loss) left half-written: never outputs, so drop them."""
    for partial in out_dir.glob("*.partial*"):
        partial.unlink()


@contextlib.contextmanager
def ctrl_c_between_prompts():
    """Ctrl-C stops the batch after the prompt in hand: raised inside a Blender operator (the
    exporters), KeyboardInterrupt would come back as a RuntimeError and look like a failed
    prompt. A second Ctrl-C interrupts at once."""
    interrupted = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def on_ctrl_c(signum, frame):
        interrupted.set()
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield interrupted
    finally:
        signal.signal(signal.SIGINT, previous)


def _run_one(obj, backend, prompt: Prompt, path: Path, fmt: str, previous: dict | None):
    started = time.perf_counter()
    if path.exists():
        # Complete by construction (renamed into place): recreate the clip for the review only.
        action, hits = make_clip(obj, backend, prompt, _previous_hits(previous))
        skipped = True
    else:
        action, hits = make_clip(obj, backend, prompt)
        export_clip(obj, action, path, fmt)
        skipped = False
    start, end = action.frame_range
    record = {"prompt": prompt.prompt, "name": prompt.name, "rank": prompt.rank, **_chosen(hits),
              "output": path.name,
              "seconds": round(time.perf_counter() - started, 3) if not skipped else (previous or {}).get("seconds"),
              "frame_start": int(start), "frame_end": int(end), "skipped": skipped}
    return record, action


def _previous_hits(previous: dict | None) -> list[dict] | None:
    """The motions an earlier run chose for this output (None: ask the library again)."""
    if not previous:
        return None
    if previous.get("segments"):
        return [{**segment, "whole": previous.get("whole")} for segment in previous["segments"]]
    return [{"motion_id": previous["motion_id"], "name": previous.get("motion_name"), "score": previous.get("score")}]


def _chosen(hits: list[dict]) -> dict:
    """The summary's motion_id, motion_name and score; a sequence's joined with " + " (no
    one score), listed step by step under "segments", and the whole prompt's own best hit
    under "whole" (whole_motion_id, whole_score in the CSV)."""
    if len(hits) == 1:
        return {"motion_id": hits[0]["motion_id"], "motion_name": hits[0].get("name") or "",
                "score": hits[0].get("score")}
    segments = [{key: hit.get(key) for key in ("text", "motion_id", "name", "score")} for hit in hits]
    return {"motion_id": " + ".join(hit["motion_id"] for hit in segments),
            "motion_name": " + ".join(str(hit["name"]) for hit in segments), "score": None, "segments": segments,
            "whole": hits[0].get("whole")}


def _progress(items, enabled: bool):
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, desc="batch", unit="prompt", file=sys.stderr)


def _previous_records(out_dir: Path) -> dict[str, dict]:
    summary = out_dir / "summary.json"
    try:
        records = json.loads(summary.read_text(encoding="utf-8"))["records"]
        return {record["output"]: record for record in records}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def _write_review(obj, clips: list, out_dir: Path, made_new: bool) -> Path:
    """review.blend: every clip as a named NLA strip, one track each, played one after another."""
    path = out_dir / REVIEW_FILE
    if path.exists() and not made_new:
        return path
    anim = obj.animation_data or obj.animation_data_create()
    anim.action = None
    frame = bpy.context.scene.frame_start
    for name, action in clips:
        track = anim.nla_tracks.new()
        track.name = name[:60]
        strip = track.strips.new(name[:60], int(frame), action)
        frame = strip.frame_end + 10
    bpy.context.scene.frame_end = max(int(frame), bpy.context.scene.frame_start + 1)
    partial = out_dir / (REVIEW_FILE + ".partial.blend")
    try:
        bpy.ops.wm.save_as_mainfile(filepath=str(partial), copy=True)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _write_summaries(out_dir: Path, records: list[dict], failed: list[dict]) -> None:
    summary = {"records": records, "failed": failed}
    _write_atomic(out_dir / "summary.json", json.dumps(summary, indent=2))
    rows = [_csv_row(record) for record in records]
    _write_atomic(out_dir / "summary.csv", _csv_text(rows))


def _csv_row(record: dict) -> dict:
    """A record as a summary.csv row: a sequence's whole-prompt hit as whole_motion_id, whole_score."""
    whole = record.get("whole") or {}
    return {**{field: record.get(field, "") for field in SUMMARY_FIELDS},
            "whole_motion_id": whole.get("motion_id", ""), "whole_score": whole.get("score", "")}


def _csv_text(rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _write_atomic(path: Path, text: str) -> None:
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)
