"""`t2m index build|push|info|verify`, `t2m search` and `t2m similar`."""
from __future__ import annotations

import argparse
import contextlib
import re
import sys
from pathlib import Path

from inference_server.cli import CliError, add_json_flag, add_progress_flag
from inference_server.data import parse_spec
from inference_server.default import model_dir
from inference_server.index.manifest import MANIFEST, built_with, read_manifest
from inference_server.model.identity import check_checkpoint

STORAGE_CHOICES = ("fp16", "int8", "pq", "fp32")
DEVICES = ("auto", "cpu", "cuda")


def register(subparsers) -> None:
    index = subparsers.add_parser("index", help="build, inspect and push a motion library index")
    actions = index.add_subparsers(dest="index_command", required=True, metavar="ACTION")
    _register_build(actions)
    _register_push(actions)
    _register_info(actions)
    _register_verify(actions)
    _register_search(subparsers)
    _register_similar(subparsers)


def _register_build(actions) -> None:
    build = actions.add_parser(
        "build", help="embed a motion library into an index",
        description="Embed every motion of LIBRARY (a data spec: bvh:DIR, bandai:DIR, humanml3d:DIR, "
                    "synthetic:N, ...) with a checkpoint. Writing is atomic: INDEX is replaced only "
                    "once the new index is complete. Bad files are skipped and listed.")
    build.add_argument("library", metavar="LIBRARY", help="data spec of the motion library")
    build.add_argument("--model", metavar="CKPT",
                       help="checkpoint folder, or an embedded model: default, permissive (default: the "
                            "embedded default; with --update, the model INDEX was built with)")
    build.add_argument("--out", type=Path, required=True, metavar="INDEX", help="index folder to write")
    build.add_argument("--storage", choices=STORAGE_CHOICES, default=None,
                       help="patch store: fp16 (default, 50 KB/motion at d=128), int8 (25 KB), "
                            "pq (residual product quantisation, 11.4 KB), fp32")
    build.add_argument("--pq-subspaces", type=int, default=None, metavar="M",
                       help="pq: sub-vectors per patch, 1 byte each (default 56)")
    build.add_argument("--update", action="store_true",
                       help="embed only new or changed motions and reuse the rest of the existing INDEX")
    build.add_argument("--batch-size", type=int, default=64, metavar="N", help="motions embedded at once")
    build.add_argument("--device", choices=DEVICES, default="auto", help="where the model runs")
    add_progress_flag(build)
    add_json_flag(build)
    build.set_defaults(handler=run_build)


def _register_push(actions) -> None:
    push = actions.add_parser(
        "push", help="copy an index into a Qdrant multivector collection",
        description="Create (or replace) COLLECTION with one point per motion: its patch vectors as a "
                    "multivector compared with MAX_SIM. URL: http(s)://host:port, local:PATH or :memory:.")
    push.add_argument("index", type=Path, metavar="INDEX")
    push.add_argument("--qdrant", required=True, metavar="URL", help="Qdrant server URL or local:PATH")
    push.add_argument("--collection", required=True, metavar="NAME")
    push.add_argument("--batch-size", type=int, default=32, metavar="N", help="points per upsert")
    push.add_argument("--shards", type=int, metavar="N", help="shard_number of the collection (Qdrant cluster)")
    push.add_argument("--replicas", type=int, metavar="N", help="replication_factor of the collection (Qdrant cluster)")
    add_progress_flag(push)
    add_json_flag(push)
    push.set_defaults(handler=run_push)


def _register_info(actions) -> None:
    info = actions.add_parser("info", help="describe an index", description="Model, storage, size and splits of INDEX.")
    info.add_argument("index", type=Path, metavar="INDEX")
    add_json_flag(info)
    info.set_defaults(handler=run_info)


def _register_verify(actions) -> None:
    verify = actions.add_parser(
        "verify", help="check an index fully (finite vectors, codes in range, sha256s)",
        description="The full check that `t2m serve` runs at start: every file present with the recorded "
                    "size, shapes and dtypes as the manifest implies, every float array finite, centroid "
                    "codes and ivf rows in range, and each file's sha256 equal to the one the build "
                    "recorded. Prints {motions, files, bytes, hashed}; a corrupt index fails with one "
                    "line naming the file (exit code 1).")
    verify.add_argument("index", type=Path, metavar="INDEX")
    verify.add_argument("--no-hashes", action="store_true",
                        help="skip the sha256s (sizes, shapes and values are still checked)")
    add_json_flag(verify)
    verify.set_defaults(handler=run_verify)


def _register_search(subparsers) -> None:
    search = subparsers.add_parser(
        "search", help="top-k motions for a text",
        description="Rank the library for TEXT by MaxSim, locally or through a running server (--server). "
                    "Locally: the embedded default with no options, an embedded model's library with "
                    "--model NAME, or --index INDEX with the model that built it (recorded in the index; "
                    "--model CKPT to name it). A TEXT of several steps (\"walks forward, then waves, then "
                    "sits down\") is ranked order-aware (clips doing the steps in that order first; each hit "
                    "with the time span of every step) and each step is also searched alone: the segments, "
                    "listed under the whole prompt's results (--json: \"segments\", and \"spans\" on hits).")
    search.add_argument("text", metavar="TEXT")
    search.add_argument("-k", type=int, default=10, metavar="K", help="results (default 10)")
    _add_library_options(search)
    search.add_argument("--server", metavar="ADDR", help="ask a t2m server instead (e.g. tcp://127.0.0.1:5557)")
    search.add_argument("--timeout", type=float, default=30.0, metavar="S", help="--server reply timeout")
    search.add_argument("--exact", action="store_true", help="brute-force MaxSim even on a large library")
    search.add_argument("--device", choices=DEVICES, default="auto")
    search.add_argument("--previews", type=Path, metavar="DIR",
                        help="write a preview of every hit (a 256 x 64 PNG strip of stick-figure poses) to DIR: "
                             "RANK_MOTIONID.png for the whole prompt, stepN_RANK_MOTIONID.png for segment N")
    add_progress_flag(search)
    add_json_flag(search)
    search.set_defaults(handler=run_search)


def _register_similar(subparsers) -> None:
    similar = subparsers.add_parser(
        "similar", help="motions similar to a motion of the index",
        description="Rank the library by MaxSim with MOTION_ID's patch vectors (of its windows that hold "
                    "motion) as the query side: every patch of the query motion finds its best patch in "
                    "each candidate; the mean of those maxima is the score. The motion itself is left out. "
                    "The library: as for search (no options: the embedded default's).")
    similar.add_argument("motion_id", metavar="MOTION_ID")
    _add_library_options(similar)
    similar.add_argument("-k", type=int, default=10, metavar="K")
    similar.add_argument("--exact", action="store_true", help="brute-force MaxSim even on a large library")
    similar.add_argument("--device", choices=DEVICES, default="auto")
    add_progress_flag(similar)
    add_json_flag(similar)
    similar.set_defaults(handler=run_similar)


def _add_library_options(parser) -> None:
    parser.add_argument("--index", type=Path, metavar="INDEX",
                        help="motion library index (default: the embedded model's library, built on first use)")
    parser.add_argument("--model", metavar="CKPT",
                        help="checkpoint that built INDEX (default: the one INDEX records), or an embedded "
                             "model with its own library: default, permissive")


# ------------------------------------------------------------------ handlers

def run_build(args: argparse.Namespace) -> dict:
    if args.batch_size < 1:
        raise CliError("--batch-size must be at least 1")
    model = check_checkpoint(model_dir(args.model or _updated_index_model(args)))
    parse_spec(args.library)
    from inference_server.index.build import build_index
    from inference_server.retriever import Retriever

    retriever = Retriever.load(model, device=args.device)
    options = {} if args.pq_subspaces is None else {"pq_subspaces": args.pq_subspaces}
    report = build_index(args.library, retriever, args.out, storage=args.storage, update=args.update,
                         batch_size=args.batch_size, progress=args.progress, **options)
    return report if args.json else _print_build(report)


def _updated_index_model(args: argparse.Namespace) -> str | None:
    """With --update and no --model: the checkpoint folder the existing INDEX records, if any."""
    if not (args.update and (args.out / MANIFEST).is_file()):
        return None
    return built_with(args.out).get("path")


def run_push(args: argparse.Namespace) -> dict:
    read_manifest(args.index)
    from inference_server.index import MotionIndex
    from inference_server.index.qdrant import push_index

    index = MotionIndex.load(args.index, device="cpu")
    return push_index(index, args.qdrant, args.collection, batch_size=args.batch_size, progress=args.progress,
                      shards=args.shards, replicas=args.replicas)


def run_info(args: argparse.Namespace) -> dict:
    read_manifest(args.index)
    from inference_server.index import MotionIndex
    from inference_server.index.store import folder_bytes

    index = MotionIndex.load(args.index, device="cpu")
    manifest = index.manifest
    splits: dict[str, int] = {}
    for row in range(len(index)):
        split = index.meta(row).get("split") or "none"
        splits[split] = splits.get(split, 0) + 1
    return {"path": str(args.index), "motions": len(index), "storage": manifest["storage"],
            "model": manifest["model"], "patches": manifest["patches"], "dim": manifest["dim"],
            "centroids": manifest["centroids"], "bytes": folder_bytes(args.index),
            "bytes_per_motion": manifest["bytes_per_motion"], "splits": dict(sorted(splits.items())),
            "created": manifest["created"]}


def run_verify(args: argparse.Namespace) -> dict:
    read_manifest(args.index)
    from inference_server.index import MotionIndex

    index = MotionIndex.load(args.index, device="cpu")
    return index.verify(hashes=not args.no_hashes)


def run_search(args: argparse.Namespace) -> dict | None:
    _check_k(args.k)
    if args.server and (args.index or args.model):
        raise CliError("use either --server or --index/--model, not both")
    if args.previews is not None and args.previews.exists() and not args.previews.is_dir():
        raise CliError(f"--previews {args.previews} is a file, not a folder")
    with _search_backend(args) as call:
        result, _ = call("search", {"text": args.text, "k": args.k})
        if args.previews is not None:
            result["previews"] = _write_previews(call, result, args.previews)
    return result if args.json else _print_hits(result)


def run_similar(args: argparse.Namespace) -> dict | None:
    _check_k(args.k)
    if args.index and not args.model:  # similar needs the index's vectors, not its model
        path = args.index
        built_with(path)  # a missing or foreign folder is refused before torch loads
    else:
        path = _library(args)[1]
    from inference_server.index import MotionIndex

    index = MotionIndex.load(path, device=args.device)
    if args.motion_id not in index:
        raise CliError(f"no motion {args.motion_id!r} in index {path}")
    hits = index.similar(index.row(args.motion_id), args.k, exact=args.exact)
    result = {"query": args.motion_id, "results": _results(index, hits), "tokens": [],
              "method": "maxsim over the query motion's patches"}
    return result if args.json else _print_hits(result)


# ------------------------------------------------------------------ helpers

def _check_k(k: int) -> None:
    if k < 1:
        raise CliError("-k must be at least 1")


def _library(args: argparse.Namespace) -> tuple[Path, Path]:
    """(model, index) of --model/--index, checked before torch loads (default.resolve)."""
    from inference_server import default

    return default.resolve(args.model, args.index, progress=args.progress)


@contextlib.contextmanager
def _search_backend(args: argparse.Namespace):
    """call(op, args) -> (result, arrays) on --server, else in-process on the library (the server's
    own Engine and checks: the same answers); a refused request is a CliError."""
    from bridge.protocol import ProtocolError, ServerUnreachable

    if args.server:
        from bridge.client import Client

        backend, where = Client(args.server, timeout=args.timeout), f"server {args.server}: "
    else:
        from inference_server.backend import LocalBackend

        backend, where = LocalBackend(_local_engine(args)), ""

    def call(op: str, op_args: dict):
        try:
            return backend.call(op, op_args)
        except (ProtocolError, ServerUnreachable) as error:
            raise CliError(f"{where}{error}") from None
    try:
        yield call
    finally:
        backend.close()


def _local_engine(args: argparse.Namespace):
    model, path = _library(args)
    from inference_server.engine import Engine
    from inference_server.index import MotionIndex
    from inference_server.retriever import Retriever

    retriever = Retriever.load(model, device=args.device)
    index = MotionIndex.load(path, retriever)
    return Engine(retriever, index, _ExactSearch(index) if args.exact else None)


class _ExactSearch:
    """--exact: the index's brute-force search as the Engine's searcher."""

    def __init__(self, index):
        self.index = index

    def search_batch(self, queries: list, k: int) -> list:
        return self.index.search_batch(queries, k, exact=True)


def _write_previews(call, result: dict, folder: Path) -> dict:
    """The `preview` PNG of every hit, the whole prompt's and each segment's, into folder."""
    folder.mkdir(parents=True, exist_ok=True)
    lists = [("", result["results"])] + [(f"step{number}_", segment["results"])
                                         for number, segment in enumerate(result.get("segments", []), 1)]
    files = []
    for prefix, hits in lists:
        for rank, hit in enumerate(hits, 1):
            _, arrays = call("preview", {"motion_id": hit["motion_id"]})
            path = folder / f"{prefix}{rank:03d}_{_file_safe(hit['motion_id'])}.png"
            path.write_bytes(arrays["png"].tobytes())
            files.append(str(path))
    return {"dir": str(folder), "files": files}


def _file_safe(motion_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", motion_id).strip("._")[:100] or "motion"


def _results(index, hits) -> list[dict]:
    from inference_server.engine import motion_captions

    results = []
    for hit in hits:
        meta = index.meta(hit.row)
        results.append({"motion_id": meta["motion_id"], "name": meta["name"], "score": round(hit.score, 6),
                        "duration": meta["duration"], "captions": motion_captions(meta)})
    return results


def _print_hits(result: dict) -> None:
    if result.get("tokens"):
        print("tokens: " + " ".join(result["tokens"]))
    _print_ranked(result["results"])
    for number, segment in enumerate(result.get("segments", []), 1):
        print(f"segment {number}: {segment['text']}")
        _print_ranked(segment["results"])
    if "previews" in result:
        count = len(result["previews"]["files"])
        print(f"previews: {count} PNG file{'s' if count != 1 else ''} in {result['previews']['dir']}")
    return None


def _print_ranked(hits: list[dict]) -> None:
    for rank, item in enumerate(hits, 1):
        spans = " | ".join(f"{start:g}-{end:g}" for start, end in item.get("spans", []))
        when = f"  [{spans} s]" if spans else ""  # a step's time in the clip, for a prompt of several steps
        print(f"{rank:3d}  {item['score']:.4f}  {item['motion_id']}  {item['name']}{when}")


def _print_build(report: dict) -> None:
    print(f"{report['path']}: {report['motions']} motions ({report['embedded']} embedded, "
          f"{report['reused']} reused), {report['storage']}, {report['bytes'] / 1e6:.1f} MB")
    for skipped in report["skipped"]:
        print(f"skipped {skipped['path']}: {skipped['error']}", file=sys.stderr)
    return None
