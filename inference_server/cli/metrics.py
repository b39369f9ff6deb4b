"""`t2m metrics`: retrieval metrics of a saved score matrix (INTERFACES.md section 1)."""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from inference_server.cli import CliError, add_json_flag, add_progress_flag
from inference_server.errors import DataError
from inference_server.metrics import (
    DEFAULT_THRESHOLD,
    PROTOCOLS,
    check_scores,
    metrics_table_markdown,
    retrieval_metrics,
    sentence_embeddings,
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "metrics",
        help="retrieval metrics of a score matrix",
        description="R@1/2/3/5/10, MedR and mAP of a square score matrix S.npy "
        "(row i = text i, column j = motion j, (i, i) = ground truth), both directions.",
    )
    parser.add_argument("--scores", required=True, type=Path, metavar="S.npy", help="square (n, n) score matrix")
    parser.add_argument(
        "--captions", type=Path, metavar="C.txt", help="one caption per line, line i for pair i (caption, threshold)"
    )
    parser.add_argument("--protocol", choices=PROTOCOLS, default="all", help="evaluation protocol (default: all)")
    parser.add_argument(
        "--nsim", type=Path, metavar="IDS.txt", help="dissimilar protocol: the pairs to keep, one per line "
        "(row indices, or names listed in --ids)"
    )
    parser.add_argument(
        "--ids", type=Path, metavar="NAMES.txt", help="the name of each pair, one per line, so --nsim can list names"
    )
    parser.add_argument(
        "--threshold", type=float, default=DEFAULT_THRESHOLD,
        help=f"threshold protocol: caption cosine above which a candidate is correct (default {DEFAULT_THRESHOLD})",
    )
    parser.add_argument("--markdown", action="store_true", help="print the metrics as a Markdown table")
    add_progress_flag(parser)
    add_json_flag(parser)
    parser.set_defaults(handler=run_metrics)


def run_metrics(args: argparse.Namespace) -> dict | None:
    scores = load_scores(args.scores)
    captions = read_lines(args.captions) if args.captions else None
    if captions is not None and len(captions) != len(scores):
        raise DataError(f"{args.captions}: {len(captions)} captions for a {len(scores)} x {len(scores)} score matrix")
    if args.protocol in ("caption", "threshold") and captions is None:
        raise CliError(f"--protocol {args.protocol} needs --captions")
    if args.protocol == "dissimilar" and args.nsim is None:
        raise CliError("--protocol dissimilar needs --nsim")
    nsim_ids = nsim_rows(args.nsim, args.ids, len(scores)) if args.protocol == "dissimilar" else None
    embeddings = sentence_embeddings(captions, progress=args.progress) if args.protocol == "threshold" else None
    result = retrieval_metrics(
        scores, args.protocol, captions=captions, text_embeddings=embeddings,
        threshold=args.threshold, nsim_ids=nsim_ids,
    )
    return metrics_output(result, args)


def metrics_output(result: dict, args) -> dict | None:
    """The metrics as the command's result; with --markdown the table is printed, or added
    under "markdown" when --json keeps stdout to one JSON object. Shared by `eval`."""
    if not args.markdown:
        return result
    table = metrics_table_markdown(result)
    if args.json:
        return {**result, "markdown": table}
    print(table)
    return None


def load_scores(path: Path) -> np.ndarray:
    """The score matrix of a .npy file (never unpickled), checked square and NaN-free."""
    try:
        scores = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (ValueError, OSError) as error:
        raise DataError(f"{path}: not a readable .npy array ({_first_line(error)})") from None
    if not isinstance(scores, np.ndarray):
        raise DataError(f"{path}: expected one array (.npy), found an archive")
    return check_scores(scores, source=str(path))


def read_lines(path: Path) -> list[str]:
    """The lines of a UTF-8 text file without their line ends; trailing empty lines dropped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: cannot read as UTF-8 text ({_first_line(error)})") from None
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def nsim_rows(nsim_path: Path, names_path: Path | None, n: int) -> list[int]:
    """Row indices of the nsim list: looked up in --ids names when given, else integers."""
    entries = [line.strip() for line in read_lines(nsim_path) if line.strip()]
    if names_path is not None:
        names = [line.strip() for line in read_lines(names_path)]
        if len(names) != n:
            raise DataError(f"{names_path}: {len(names)} names for a {n} x {n} score matrix")
        row_of = {name: row for row, name in enumerate(names)}
        missing = [entry for entry in entries if entry not in row_of]
        if missing:
            raise DataError(f"{nsim_path}: {len(missing)} ids not in {names_path} (first: {missing[0]!r})")
        return [row_of[entry] for entry in entries]
    try:
        return [int(entry) for entry in entries]
    except ValueError:
        raise DataError(f"{nsim_path}: entries must be row indices (or pass --ids to list names)") from None


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
