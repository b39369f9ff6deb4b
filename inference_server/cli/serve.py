"""`t2m serve` (the ZeroMQ server) and `t2m keys` (CurveZMQ keys: generate, allow, revoke, list)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from bridge.protocol import DEFAULT_ADDRESS
from inference_server.cli import CliError, add_json_flag, add_progress_flag

KEY_NAME = "server"  # -> server.key (public, give it to clients) and server.key_secret


def register(subparsers) -> None:
    serve = subparsers.add_parser(
        "serve", help="run the ZeroMQ inference server",
        description="Serve search, explain, motion, describe and similar over ZeroMQ (protocol: "
                    "INTERFACES.md section 2). With no --index/--model: the embedded default.")
    serve.add_argument("--index", type=Path, metavar="INDEX", help="motion library index (t2m index build)")
    serve.add_argument("--model", metavar="CKPT", help="checkpoint the index was built with (default: the one "
                       "the index records), or an embedded model by name: default (non-commercial, trained "
                       "on real mocap) or permissive (no non-commercial data: synthetic + DeepMimic), each "
                       "with its own library when --index is not given")
    serve.add_argument("--bind", default=DEFAULT_ADDRESS, metavar="ADDR",
                       help=f"ZeroMQ endpoint to bind (default {DEFAULT_ADDRESS})")
    serve.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                       help="where the model runs (auto: the GPU when there is one)")
    serve.add_argument("--qdrant", metavar="URL", help="rank through this Qdrant server (with --collection)")
    serve.add_argument("--collection", metavar="NAME", help="the Qdrant collection holding the index")
    serve.add_argument("--curve-secret", metavar="FILE",
                       help="encrypt with CurveZMQ using this secret key file (t2m keys generate)")
    serve.add_argument("--insecure", action="store_true",
                       help="allow a non-loopback --bind without CurveZMQ encryption")
    serve.add_argument("--allowed-clients", metavar="DIR",
                       help="with --curve-secret: serve only the clients whose public keys are in DIR "
                            "(t2m keys allow; re-read when DIR changes)")
    serve.add_argument("--no-verify", action="store_true",
                       help="skip the full index check at start (finite vectors, codes in range, sha256s); "
                            "the fast structural check always runs")
    serve.add_argument("--no-worker-process", action="store_true",
                       help="answer explain, describe and similar in a thread of the server process instead of "
                            "a worker process (saves the worker's copy of the model in memory; slow ops then "
                            "share the CPU with searches)")
    add_progress_flag(serve)
    add_json_flag(serve)
    serve.set_defaults(handler=run_serve)

    keys = subparsers.add_parser("keys", help="CurveZMQ keys for the server")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = actions.add_parser(
        "generate", help="write a keypair (the server's, or a client's with --name)",
        description="Write NAME.key (public) and NAME.key_secret (keep it private) in zmq's certificate "
                    "text format. NAME=server (default): give server.key to clients, pass server.key_secret "
                    "to t2m serve --curve-secret. A client's pair (--name alice): the client keeps "
                    "alice.key_secret (add-on preferences, bridge Client(client_key=...)); the server "
                    "admits it with t2m keys allow alice.key --allowed DIR.")
    generate.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the key files")
    generate.add_argument("--name", default=KEY_NAME, help=f"file name stem (default {KEY_NAME})")
    generate.add_argument("--force", action="store_true", help="replace existing key files")
    add_json_flag(generate)
    generate.set_defaults(handler=run_keys_generate)

    allow = actions.add_parser("allow", help="add a client's public key to an allow-list folder",
                               description="Copy a client's public key (a NAME.key file or the 40 z85 "
                                           "characters) into DIR, the folder t2m serve --allowed-clients reads.")
    allow.add_argument("key", metavar="KEY", help="the client's NAME.key file, or its z85 public key")
    allow.add_argument("--allowed", type=Path, required=True, metavar="DIR", help="the allow-list folder")
    allow.add_argument("--name", help="name of the entry (default: the key file's stem)")
    add_json_flag(allow)
    allow.set_defaults(handler=run_keys_allow)

    revoke = actions.add_parser("revoke", help="remove a client from an allow-list folder",
                                description="Delete the entry NAME (or every entry holding this public key) "
                                            "from DIR; a running server applies it within a second.")
    revoke.add_argument("key", metavar="NAME_OR_KEY", help="entry name or z85 public key")
    revoke.add_argument("--allowed", type=Path, required=True, metavar="DIR", help="the allow-list folder")
    add_json_flag(revoke)
    revoke.set_defaults(handler=run_keys_revoke)

    listing = actions.add_parser("list", help="the clients of an allow-list folder")
    listing.add_argument("--allowed", type=Path, required=True, metavar="DIR", help="the allow-list folder")
    add_json_flag(listing)
    listing.set_defaults(handler=run_keys_list)


def run_serve(args: argparse.Namespace) -> dict:
    from inference_server.heavy_process import EngineRecipe
    from inference_server.server import Server, check_allowed_clients, check_bind_security, load_curve_secret

    # Refuse an unsafe bind or a bad key file before spending seconds loading the model.
    check_bind_security(args.bind, args.curve_secret, args.insecure)
    if args.curve_secret:
        load_curve_secret(args.curve_secret)
    if args.allowed_clients:
        if not args.curve_secret:
            raise CliError("--allowed-clients needs --curve-secret (client keys are CurveZMQ keys)")
        check_allowed_clients(args.allowed_clients)
    qdrant = _qdrant_target(args)
    _configure_logging()
    model, index = _model_and_index(args)
    from inference_server.default import licence
    if licence(model):
        logging.getLogger("t2m.server").info("model licence: %s", licence(model))
    engine = build_engine(model, index, device=args.device, qdrant=qdrant, verify=not args.no_verify)
    recipe = None if args.no_worker_process else EngineRecipe(str(model), str(index), args.device, qdrant)
    server = Server(engine, bind=args.bind, curve_secret=args.curve_secret, insecure=args.insecure,
                    allowed_clients=args.allowed_clients, worker_recipe=recipe)
    previous = {sig: signal.signal(sig, lambda *_: server.stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        server.serve_forever()
    finally:
        engine.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logging.getLogger("t2m.server").info("stopped after %d replies", server.answered)
    return {"address": server.address, "replies": server.answered}


def build_engine(model: Path, index: Path, device: str = "auto", qdrant: tuple[str, str] | None = None,
                 verify: bool = False):
    """Load the checkpoint and the index (and the Qdrant backend) into an Engine.

    verify: the full index check (finite vectors, codes in range, recorded sha256s) before
    serving; a corrupt index is refused with a ModelError naming the file.
    """
    import time

    from inference_server.engine import Engine
    from inference_server.index import MotionIndex
    from inference_server.retriever import Retriever

    retriever = Retriever.load(model, device=device)
    index = MotionIndex.load(index, retriever)
    if verify:
        started = time.perf_counter()
        checked = index.verify()
        logging.getLogger("t2m.server").info("index %s verified: %d motions, %d files (%d hashed), %.1f s",
                                             index.path, checked["motions"], checked["files"], checked["hashed"],
                                             time.perf_counter() - started)
    searcher = None
    if qdrant is not None:
        from inference_server.index.qdrant import QdrantSearcher

        searcher = QdrantSearcher(url=qdrant[0], collection=qdrant[1], index=index)
    return Engine(retriever, index, searcher)


def _model_and_index(args: argparse.Namespace) -> tuple[Path, Path]:
    from inference_server import default
    return default.resolve(args.model, args.index, progress=args.progress)


def _qdrant_target(args: argparse.Namespace) -> tuple[str, str] | None:
    if (args.qdrant is None) != (args.collection is None):
        raise CliError("--qdrant URL and --collection NAME go together")
    return None if args.qdrant is None else (args.qdrant, args.collection)


def _configure_logging() -> None:
    """One line per request on stderr (once per process, however often serve runs)."""
    logger = logging.getLogger("t2m.server")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s t2m serve: %(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def run_keys_generate(args: argparse.Namespace) -> dict:
    import zmq.auth

    out, name = args.out, args.name
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise CliError(f"--name {name!r} must be a plain file name stem")
    public_file, secret_file = out / f"{name}.key", out / f"{name}.key_secret"
    existing = [str(path) for path in (public_file, secret_file) if path.exists()]
    if existing and not args.force:
        raise CliError(f"{', '.join(existing)} already exist; pass --force to replace them "
                       "(clients holding the old public key will no longer connect)")
    out.mkdir(parents=True, exist_ok=True)
    public_path, secret_path = zmq.auth.create_certificates(str(out), name)
    os.chmod(secret_path, 0o600)
    public, _ = zmq.auth.load_certificate(public_path)
    return {"public_key_file": str(public_path), "secret_key_file": str(secret_path),
            "public_key": public.decode("ascii")}


def _read_key_argument(key: str) -> tuple[bytes, str | None]:
    """(z85 public key, default entry name) from a key file path or 40 z85 characters."""
    import zmq.auth

    path = Path(key)
    if path.is_file():
        try:
            public, _ = zmq.auth.load_certificate(str(path))
        except (OSError, ValueError) as error:
            raise CliError(f"cannot read the key file {path}: {error}") from None
        if not public:
            raise CliError(f"{path} holds no public key")
        return public, path.name.split(".")[0]
    if len(key) == 40:
        try:
            import zmq

            zmq.utils.z85.decode(key.encode("ascii"))
            return key.encode("ascii"), None
        except (ValueError, UnicodeEncodeError, KeyError, IndexError):
            pass
    raise CliError(f"{key!r} is neither a key file nor a 40-character z85 public key")


def _allowed_entries(folder: Path) -> dict[str, bytes]:
    import zmq.auth

    entries = {}
    for path in sorted(folder.glob("*.key")):
        try:
            public, _ = zmq.auth.load_certificate(str(path))
        except (OSError, ValueError):
            continue
        entries[path.stem] = public
    return entries


def run_keys_allow(args: argparse.Namespace) -> dict:
    public, stem = _read_key_argument(args.key)
    name = args.name or stem or f"client-{public[:8].decode('ascii', 'replace')}"
    if not name or "/" in name or "\\" in name or name.startswith(".") or "." in name:
        raise CliError(f"entry name {name!r} must be a plain name without dots")
    args.allowed.mkdir(parents=True, exist_ok=True)
    path = args.allowed / f"{name}.key"
    if path.exists() and _allowed_entries(args.allowed).get(name) != public:
        raise CliError(f"{path} already holds another key: revoke it first or pick another --name")
    text = ("#   t2m: an allowed client's CurveZMQ public key (t2m keys allow)\n"
            "metadata\n"
            "curve\n"
            f'    public-key = "{public.decode("ascii")}"\n')
    tmp = path.with_suffix(".key.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # *.key only once complete: a running server never reads half a file
    return {"allowed": str(path), "name": name, "public_key": public.decode("ascii"),
            "clients": len(_allowed_entries(args.allowed))}


def run_keys_revoke(args: argparse.Namespace) -> dict:
    if not args.allowed.is_dir():
        raise CliError(f"{args.allowed} is not an allow-list folder")
    removed = [name for name, public in _allowed_entries(args.allowed).items()
               if args.key in (name, public.decode("ascii"))]
    if not removed:
        raise CliError(f"no entry {args.key!r} in {args.allowed}")
    for name in removed:
        (args.allowed / f"{name}.key").unlink()
    return {"revoked": removed, "clients": len(_allowed_entries(args.allowed))}


def run_keys_list(args: argparse.Namespace) -> dict:
    if not args.allowed.is_dir():
        raise CliError(f"{args.allowed} is not an allow-list folder")
    entries = _allowed_entries(args.allowed)
    return {"clients": [{"name": name, "public_key": public.decode("ascii")} for name, public in entries.items()]}
