"""Child-process script: import FBX / glTF files with Blender's own importers and write
each armature's animation as joint positions. Runs under bpy (`python blender_import.py
JOBS.json`) or Blender (`blender -b --factory-startup --python blender_import.py --
JOBS.json`); the t2m server never imports this file or bpy.

Stdlib + numpy + bpy only (Blender's Python may not have t2m installed).

JOBS.json: {"files": [{"path": str, "kind": "fbx" | "gltf", "out": str (no suffix)}]}.
Per file it writes `<out>.npz` (allow_pickle=False: names (J,) unicode, parents (J,)
int32, rest (J, 3) float32 world rest heads, clip_<k> (T, J, 3) float32 world positions
per frame; Blender axes, Z up, metres) plus `<out>.json` ({"clips": [{"name", "fps",
"frame_start"}], "armature"}), or `<out>.error.txt` with the reason; prints "ready"
once bpy is imported, then "done <index>" per file so the parent can show progress and find the file a crash stopped at.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

import numpy as np

MAX_FRAMES = 200_000  # per clip; beyond this a file is refused rather than evaluated


def main(argv: list[str]) -> int:
    if "--" in argv:
        argv = argv[argv.index("--") + 1:]
    jobs = json.loads(Path(argv[-1]).read_text(encoding="utf-8"))
    import bpy  # noqa: F401  (only here, in the child)

    print("ready", flush=True)
    for index, job in enumerate(jobs["files"]):
        out = Path(job["out"])
        try:
            result = read_file(job["path"], job["kind"])
            np.savez(out.with_suffix(".npz"), **result.pop("arrays"))
            out.with_suffix(".json").write_text(json.dumps(result), encoding="utf-8")
        except Exception as error:  # noqa: BLE001  (any importer failure is that file's reason)
            reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            if not isinstance(error, (ValueError, RuntimeError)):
                reason = f"{type(error).__name__}: {reason}"
            out.with_suffix(".error.txt").write_text(reason[:500], encoding="utf-8")
            traceback.print_exc(file=sys.stderr)
        print(f"done {index}", flush=True)
    return 0


def read_file(path: str, kind: str) -> dict:
    import bpy

    bpy.ops.wm.read_factory_settings(use_empty=True)
    for action in list(bpy.data.actions):
        bpy.data.actions.remove(action)
    if kind == "fbx":
        result = bpy.ops.import_scene.fbx(filepath=path, use_anim=True, ignore_leaf_bones=False,
                                          automatic_bone_orientation=False)
    elif kind == "gltf":
        result = bpy.ops.import_scene.gltf(filepath=path)
    else:
        raise ValueError(f"unknown kind {kind!r}")
    if "FINISHED" not in result:
        raise ValueError(f"Blender's {kind.upper()} importer failed")
    armatures = [obj for obj in bpy.context.scene.objects if obj.type == "ARMATURE"]
    if not armatures:
        raise ValueError("no armature in the file")
    # the armature with the most bones is the character (props and cameras have none)
    obj = max(armatures, key=lambda o: len(o.data.bones))
    scene = bpy.context.scene
    fps = scene.render.fps / scene.render.fps_base
    bones = list(obj.data.bones)
    names = [bone.name for bone in bones]
    index = {name: i for i, name in enumerate(names)}
    parents = np.array([index[b.parent.name] if b.parent else -1 for b in bones], dtype=np.int32)
    if obj.animation_data is None:
        obj.animation_data_create()
    original = obj.animation_data.action
    scene.frame_set(int(scene.frame_start))
    matrix = np.array(obj.matrix_world, dtype=np.float64)
    rest = np.array([tuple(b.head_local) for b in bones], dtype=np.float64) @ matrix[:3, :3].T + matrix[:3, 3]
    arrays = {"names": np.array(names, dtype=str), "parents": parents, "rest": rest.astype(np.float32)}
    clips = []
    actions = [action for action in bpy.data.actions if _animates_bones(action)]
    if original is not None and original in actions:  # the file's own take first
        actions.remove(original)
        actions.insert(0, original)
    for action in actions:
        _assign(obj, action)
        start, end = (int(round(v)) for v in action.frame_range)
        count = end - start + 1
        if count > MAX_FRAMES:
            raise ValueError(f"action {action.name!r} has {count} frames (more than {MAX_FRAMES})")
        positions = np.empty((count, len(bones), 3), dtype=np.float32)
        heads = np.empty(len(bones) * 3, dtype=np.float32)
        for k, frame in enumerate(range(start, end + 1)):
            scene.frame_set(frame)
            obj.pose.bones.foreach_get("head", heads)
            world = np.array(obj.matrix_world, dtype=np.float64)
            positions[k] = heads.reshape(-1, 3) @ world[:3, :3].T + world[:3, 3]
        arrays[f"clip_{len(clips)}"] = positions
        clips.append({"name": action.name, "fps": fps, "frame_start": start})
    if not clips:
        raise ValueError(f"armature {obj.name!r} has no animation (no action keys its bones)")
    return {"arrays": arrays, "clips": clips, "armature": obj.name}


def _fcurves(action):
    if hasattr(action, "layers"):  # Blender 4.4+ layered actions
        for layer in action.layers:
            for strip in layer.strips:
                for bag in getattr(strip, "channelbags", []):
                    yield from bag.fcurves
    if hasattr(action, "fcurves"):  # legacy actions (Blender < 5)
        yield from action.fcurves


def _animates_bones(action) -> bool:
    return any(fcurve.data_path.startswith("pose.bones") for fcurve in _fcurves(action))


def _assign(obj, action) -> None:
    obj.animation_data.action = action
    slots = getattr(action, "slots", None)
    if slots is not None and len(slots) and getattr(obj.animation_data, "action_slot", None) is None:
        objects = [slot for slot in slots if slot.target_id_type == "OBJECT"] or list(slots)
        obj.animation_data.action_slot = objects[0]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
