"""`t2m data stats SPEC` and `t2m data export SPEC --out DIR --format humanml3d`."""
from __future__ import annotations

import argparse
from pathlib import Path

from inference_server.cli import CliError, add_json_flag, add_progress_flag

SPEC_HELP = ("data spec: humanml3d:DIR, kitml:DIR, bvh:DIR_OR_FILE, bandai:DIR, deepmimic[:DIR], "
             "synthetic:N[:SEED], fbx:DIR_OR_FILE, gltf:DIR_OR_FILE, optionally followed by @train|@val|@test")


def register(subparsers) -> None:
    parser = subparsers.add_parser("data", help="scan or export motion datasets",
                                   description="Scan or export motion datasets.")
    commands = parser.add_subparsers(dest="data_command", required=True, metavar="SUBCOMMAND")

    stats = commands.add_parser("stats", help="count motions, captions and splits; list unreadable files",
                                description="Scan a dataset: motions, captions, splits, skipped files.")
    stats.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    add_progress_flag(stats)
    add_json_flag(stats)
    stats.set_defaults(handler=run_stats)

    export = commands.add_parser("export", help="write a dataset as a HumanML3D folder",
                                 description="Write a dataset as a HumanML3D folder (new_joints at 20 fps, "
                                             "texts with POS tags, train/val/test.txt).")
    export.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    export.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    export.add_argument("--format", default="humanml3d", help="output format (only humanml3d)")
    add_progress_flag(export)
    add_json_flag(export)
    export.set_defaults(handler=run_export)


def run_stats(args: argparse.Namespace) -> dict:
    from inference_server.data import load_spec
    dataset = load_spec(args.spec, progress=args.progress)
    return {"spec": args.spec, "motions": len(dataset.items), "captions": dataset.num_captions(),
            "splits": dataset.splits(), "skipped": dataset.skipped,
            "duration_s": round(dataset.duration(), 2), "skeletons": dataset.skeletons}


def run_export(args: argparse.Namespace) -> dict:
    if args.format != "humanml3d":
        raise CliError(f"--format {args.format!r}: only humanml3d is supported")
    from inference_server.data import load_spec
    from inference_server.data.export import export_humanml3d
    dataset = load_spec(args.spec, progress=args.progress)
    written = export_humanml3d(dataset, args.out, progress=args.progress)
    return {"out": str(args.out), **written, "skipped": dataset.skipped}
