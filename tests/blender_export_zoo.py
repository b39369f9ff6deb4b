"""Child-process script for the FBX/glTF tests: build zoo rigs in bpy, retarget a motion
onto each with the add-on (one action per motion), export them with Blender's own FBX
(and glTF) exporters. Usage: python blender_export_zoo.py JOB.json

JOB.json: {"out": DIR, "motions": [NPY (T, 22, 3) Y-up], "fps": 20, "rigs": [{"convention",
"pose", "scale", "y_up", "roll_seed", "clips": [motion index...], "format": "fbx" | "glb"}]}
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import bpy  # noqa: E402
import numpy as np  # noqa: E402
from rig_zoo import build_armature, make_rig  # noqa: E402

from blender_addon import retarget  # noqa: E402


def main(job_path: str) -> None:
    job = json.loads(Path(job_path).read_text())
    out = Path(job["out"])
    motions = [np.load(path) for path in job["motions"]]
    for spec in job["rigs"]:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        scene = bpy.context.scene
        scene.render.fps = 30
        for action in list(bpy.data.actions):
            bpy.data.actions.remove(action)
        obj = build_armature(make_rig(spec["convention"], spec["pose"]), spec["convention"], spec["scale"],
                             spec["y_up"], spec["roll_seed"])
        actions = []
        for number in spec["clips"]:
            action = retarget.apply_motion(obj, motions[number], job["fps"], f"clip{number}")
            action.use_fake_user = True
            actions.append(action)
        obj.animation_data.action = actions[0]
        scene.frame_start, scene.frame_end = (int(v) for v in actions[0].frame_range)  # the take's range
        name = f"{spec['convention']}_{spec['pose']}"
        bpy.ops.object.select_all(action="DESELECT")
        obj.select_set(True)
        if spec.get("format", "fbx") == "fbx":
            bpy.ops.export_scene.fbx(filepath=str(out / f"{name}.fbx"), use_selection=True,
                                     object_types={"ARMATURE"}, add_leaf_bones=False, bake_anim=True,
                                     bake_anim_use_all_actions=len(actions) > 1, bake_anim_use_nla_strips=False,
                                     bake_anim_force_startend_keying=True, bake_anim_simplify_factor=0.0)
        else:
            bpy.ops.export_scene.gltf(filepath=str(out / f"{name}.glb"), use_selection=True,
                                      export_animations=True, export_animation_mode="ACTIONS")
        print("exported", name, flush=True)


if __name__ == "__main__":
    main(sys.argv[-1])
