"""`t2m motion angles|jami|preview FILE --out X`: look at one motion file.

FILE is anything inference_server.data.load_file reads (BVH, HumanML3D .npy, DeepMimic
.txt/.json). Heavy imports (matplotlib) happen inside the handlers.
"""
from __future__ import annotations

import argparse
import json
from contextlib import contextmanager
from pathlib import Path

from inference_server.cli import add_json_flag
from inference_server.errors import DataError

ANGLES_FPS = 20


def register(subparsers) -> None:
    parser = subparsers.add_parser("motion", help="joint angles, JAMI picture or preview of one motion file",
                                   description="Look at one motion file (.bvh, HumanML3D .npy, DeepMimic .json/.txt).")
    commands = parser.add_subparsers(dest="motion_command", required=True, metavar="SUBCOMMAND")

    _add(commands, "angles", "the 29 joint-angle channels as CSV (one row per frame at 20 fps)", "X.csv", run_angles)
    jami = _add(commands, "jami", "the JAMI picture (time down, one band per body part) as PNG", "X.png", run_jami)
    jami.add_argument("--stats", type=Path, metavar="STATS.json",
                      help="angle mean/std JSON (AngleStats.to_dict) to colour dataset z-scores; "
                           "default: deviation from the clip's own mean")
    preview = _add(commands, "preview", "an animated stick-figure GIF", "X.gif", run_preview)
    preview.add_argument("--fps", type=float, default=15.0, help="GIF frame rate (default 15)")


def _add(commands, name: str, help_text: str, out_name: str, handler):
    parser = commands.add_parser(name, help=help_text, description=help_text)
    parser.add_argument("file", type=Path, metavar="FILE", help="motion file (.bvh, .npy, .json, .txt)")
    parser.add_argument("--out", type=Path, required=True, metavar=out_name, help="output file")
    add_json_flag(parser)
    parser.set_defaults(handler=handler)
    return parser


def _load(path: Path):
    from inference_server.data import load_file
    return load_file(path)


@contextmanager
def _writing(path: Path):
    """Turn a failed write into a one-line user error naming the output file."""
    try:
        yield
    except OSError as error:
        raise DataError(f"{path}: cannot write ({error.strerror or error})") from None


def run_angles(args: argparse.Namespace) -> dict:
    import numpy as np

    from inference_server.angles import CHANNELS, motion_angles

    item = _load(args.file)
    angles = motion_angles(item.motion)
    with _writing(args.out):
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.savetxt(args.out, angles, delimiter=",", header=",".join(CHANNELS), comments="", fmt="%.6g")
    return {"out": str(args.out), "frames": int(len(angles)), "fps": ANGLES_FPS, "channels": len(CHANNELS),
            "motion_id": item.id}


def run_jami(args: argparse.Namespace) -> dict:
    from inference_server.jami import FRAMES
    from inference_server.pictures import save_jami_png

    item = _load(args.file)
    stats = _read_stats(args.stats) if args.stats else None
    with _writing(args.out):
        save_jami_png(item.motion, args.out, stats=stats, title=item.name)
    frames = item.motion.resample(ANGLES_FPS).num_frames
    return {"out": str(args.out), "frames": frames, "valid_frames": min(frames, FRAMES), "fps": ANGLES_FPS,
            "motion_id": item.id}


def run_preview(args: argparse.Namespace) -> dict:
    from inference_server.pictures import save_preview_gif

    if not 1 <= args.fps <= 60:
        raise DataError(f"--fps {args.fps}: expected 1..60")
    item = _load(args.file)
    with _writing(args.out):
        save_preview_gif(item.motion, args.out, fps=args.fps)
    return {"out": str(args.out), "frames": item.motion.resample(args.fps).num_frames, "fps": args.fps,
            "motion_id": item.id}


def _read_stats(path: Path):
    from inference_server.jami import AngleStats

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError) as error:
        raise DataError(f"{path}: not a readable JSON file ({error})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object with 'mean' and 'std'")
    try:
        return AngleStats.from_dict(data)
    except DataError as error:
        raise DataError(f"{path}: {error}") from None
