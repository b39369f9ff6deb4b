"""The `t2m` command: one module per command group, each with `register(subparsers)`.

Command modules import heavy libraries (torch, bpy) inside their handlers, after the checks
of their arguments and files, so `t2m --help`, bad options and missing files answer at once
(tests/test_cli.py checks that torch is not imported). A handler returns a dict (printed as
one JSON object with --json) or None. User errors (any T2MError: CliError, DataError,
ModelError) print one line on stderr and exit with code 1.

Long work shows progress bars on stderr only when stderr is a terminal (--progress and
--no-progress force it); without bars the command ends with one summary line on stderr.
"""
from __future__ import annotations

import argparse
import importlib
import json
import sys
import time

from inference_server.errors import T2MError

COMMAND_MODULES = ["data", "motion", "metrics", "train", "index", "serve", "batch"]


class CliError(T2MError):
    """A bad command-line option or argument."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t2m", description="Text-to-motion retrieval (MotionColBert).")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"{__name__}.{name}").register(subparsers)
    return parser


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print exactly one JSON object on stdout")


def add_progress_flag(parser: argparse.ArgumentParser) -> None:
    """--progress/--no-progress; the default follows whether stderr is a terminal."""
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=sys.stderr.isatty(),
                        help="progress bars on stderr (default: only when stderr is a terminal; "
                             "without bars, one summary line at the end)")
    parser.set_defaults(progress_name=parser.prog)


def print_result(result: dict | None, as_json: bool) -> None:
    if result is None:
        return
    if as_json:
        sys.stdout.write(json.dumps(result, default=_json_default) + "\n")
        return
    for key, value in result.items():
        text = value if isinstance(value, str) else json.dumps(value, default=_json_default, indent=2)
        print(f"{key}: {text}")


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.perf_counter()
    try:
        result = args.handler(args)
    except T2MError as error:
        print(f"t2m: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("t2m: interrupted", file=sys.stderr)
        return 130
    print_result(result, getattr(args, "json", False))
    if getattr(args, "progress", True) is False:
        print(f"{args.progress_name}: done in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
