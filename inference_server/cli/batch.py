"""`t2m batch` and `t2m demo`: the jobs that run in bpy (Blender as a Python module).

Both import the extension's code (and bpy) lazily, only when they run, so the rest of the
`t2m` command never loads Blender.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from inference_server.cli import CliError, add_json_flag, add_progress_flag

DEMO_PROMPTS = [
    "a person waves with the left hand",
    "someone walks forward, then waves with the right hand",
    "a person kicks with the right leg",
    "a person squats down",
]
DEMO_COLOUR_WORD = "left"
SERVER_START_SECONDS = 180.0


def register(subparsers) -> None:
    batch = subparsers.add_parser("batch", help="headless batch generation: one animation file per prompt",
                                  description="Retrieve a motion for every prompt, retarget it onto the rig "
                                              "and write one file per prompt plus summary.json/csv and "
                                              "review.blend. Reruns skip outputs that exist. A prompt of "
                                              "several steps (\"walks forward, then waves, then sits down\") "
                                              "becomes one action: the chosen clip of every step (its segment's "
                                              "result at the prompt's rank), each blended into the next over "
                                              "blend_frames frames. The summary lists them under \"segments\" "
                                              "(text, motion_id, name, score; in the CSV motion_id and "
                                              "motion_name joined with \" + \") and the whole prompt's own "
                                              "best hit under \"whole\" (CSV: whole_motion_id, whole_score).")
    batch.add_argument("prompts", help=".txt (one prompt a line), .csv or .jsonl (columns prompt, name, "
                                       "rank, start_frame, root_motion, blend_frames)")
    batch.add_argument("--rig", required=True, help=".blend or .fbx holding the target armature, or "
                                                    "builtin:mixamo / builtin:smpl")
    batch.add_argument("--armature", help="armature object name when the rig file holds several")
    batch.add_argument("--out", required=True, help="output folder")
    batch.add_argument("--format", default="fbx", choices=["fbx", "bvh", "blend"])
    batch.add_argument("--server", help="ask a running server (tcp://HOST:PORT) instead of loading the model here")
    batch.add_argument("--index", help="motion library index (in-process; default: the embedded default)")
    batch.add_argument("--model", help="checkpoint for --index, or an embedded model: default, permissive")
    batch.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    add_json_flag(batch)
    batch.set_defaults(handler=run_batch_command)

    demo = subparsers.add_parser("demo", help="the whole loop headless on the embedded default",
                                 description="Start a server with the embedded default, run a few prompts, "
                                             "retarget the best results onto a demo rig, colour its bones by "
                                             "one word, write demo.blend and pictures.")
    demo.add_argument("--out", default="t2m_demo", help="output folder (default: %(default)s)")
    demo.add_argument("--prompt", action="append", dest="prompts",
                      help="a prompt (repeatable; default: a built-in set, one of them compositional)")
    demo.add_argument("--index", help="serve this index instead of the embedded default library")
    demo.add_argument("--model", help="checkpoint for --index, or an embedded model: default, permissive")
    add_progress_flag(demo)
    add_json_flag(demo)
    demo.set_defaults(handler=run_demo_command)


def run_batch_command(args) -> dict:
    from blender_addon.batch import BatchError, run_batch
    from blender_addon.errors import AddonError

    from inference_server.backend import open_backend

    backend = open_backend(args.server, args.index, args.model, args.device)
    try:
        with blender_output_to_stderr():
            summary = run_batch(args.prompts, args.rig, args.out, backend, fmt=args.format,
                                armature=args.armature)
    except (BatchError, AddonError) as error:
        raise CliError(str(error)) from None
    finally:
        backend.close()
    return summary


@contextlib.contextmanager
def blender_output_to_stderr():
    """Blender prints progress on stdout, partly from C: send file descriptor 1 to stderr so
    that stdout holds only the command's own result (one JSON object with --json)."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


# ---------------------------------------------------------------- demo

def run_demo_command(args) -> dict:
    from inference_server import default

    out = Path(args.out)
    model, index = default.resolve(args.model, args.index, progress=args.progress)
    out.mkdir(parents=True, exist_ok=True)
    address = f"tcp://127.0.0.1:{_free_port()}"
    server = _start_server(address, ["--index", str(index), "--model", str(model)], out / "server.log")
    try:
        return _demo_with_server(address, out, args.prompts or DEMO_PROMPTS)
    finally:
        server.terminate()
        server.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _start_server(address: str, library: list[str], log_path: Path) -> subprocess.Popen:
    from bridge.client import Client
    from bridge.protocol import ServerUnreachable

    with open(log_path, "w", encoding="utf-8") as log:  # the server keeps its own copy of the handle
        server = subprocess.Popen([sys.executable, "-m", "inference_server", "serve", "--bind", address, *library],
                                  stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + SERVER_START_SECONDS
    with Client(address, timeout=5.0, retries=0) as client:
        while True:
            if server.poll() is not None:
                raise CliError(f"the demo server exited with code {server.returncode}; see {log_path}")
            try:
                client.call("info")
                return server
            except ServerUnreachable:
                if time.monotonic() > deadline:
                    server.terminate()
                    raise CliError(f"the demo server did not answer within {SERVER_START_SECONDS:.0f} s; "
                                   f"see {log_path}") from None


def _demo_with_server(address: str, out: Path, prompts: list[str]) -> dict:
    from blender_addon import demo
    from bridge.client import Client

    with Client(address, timeout=60.0) as client, blender_output_to_stderr():
        scene = demo.build_scene(client, prompts, DEMO_COLOUR_WORD)
        motion, arrays = client.call("motion", {"motion_id": scene["explained"]["motion_id"]})
        outputs = [demo.save_blend(out / "demo.blend"), demo.save_pose_strip(scene["object"], out / "poses.png")]
    outputs += _model_pictures(out, scene, motion, arrays)
    summary = _summary(scene, outputs)
    (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    outputs.append(out / "summary.json")
    summary["outputs"] = [str(path) for path in outputs]
    _print_where(summary)
    return summary


def _model_pictures(out: Path, scene: dict, motion: dict, arrays: dict) -> list[Path]:
    from inference_server.motion import Motion
    from inference_server.pictures import save_jami_png, save_relevance_png

    explained = scene["explained"]
    first = scene["retrieved"][0]
    clip = Motion.smpl22(arrays["positions"], float(motion["fps"]))
    return [
        save_jami_png(clip, out / "jami.png", title=f"JAMI of {first['results'][0]['name']}"),
        save_relevance_png(explained["tokens"], explained["relevance"], out / "explanation.png",
                           title=f"\"{first['prompt']}\" x {first['results'][0]['name']}"),
    ]


def _summary(scene: dict, outputs: list[Path]) -> dict:
    prompts = [{"prompt": item["prompt"], "action": item["action"], "frames": item["frames"],
                "top": [{key: hit.get(key) for key in ("motion_id", "name", "score", "captions")}
                        for hit in item["results"][:3]]}
               for item in scene["retrieved"]]
    explained = scene["explained"]
    return {"prompts": prompts, "coloured_by": explained["token"], "object": scene["object"],
            "outputs": [str(path) for path in outputs]}


def _print_where(summary: dict) -> None:
    for item in summary["prompts"]:
        best = item["top"][0]
        caption = (best.get("captions") or [""])[0]
        print(f"{item['prompt']!r} -> {best['name']} ({best['score']:.3f}) {caption}", file=sys.stderr)
    print(f"bones coloured by the word {summary['coloured_by']!r}", file=sys.stderr)
    for path in summary["outputs"]:
        print(f"wrote {path}", file=sys.stderr)
