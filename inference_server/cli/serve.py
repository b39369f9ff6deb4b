"""`t2m serve` (the ZeroMQ server) and `t2m keys generate` (its CurveZMQ keys)."""
from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from bridge.protocol import DEFAULT_ADDRESS
from inference_server.cli import CliError, add_json_flag

KEY_NAME = "server"  # -> server.key (public, give it to clients) and server.key_secret


def register(subparsers) -> None:
    serve = subparsers.add_parser(
        "serve", help="run the ZeroMQ inference server",
        description="Serve search, explain, motion, describe and similar over ZeroMQ (protocol: "
                    "INTERFACES.md section 2). With no --index/--model: the embedded default.")
    serve.add_argument("--index", type=Path, metavar="INDEX", help="motion library index (t2m index build)")
    serve.add_argument("--model", type=Path, metavar="CKPT", help="checkpoint the index was built with")
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
    add_json_flag(serve)
    serve.set_defaults(handler=run_serve)

    keys = subparsers.add_parser("keys", help="CurveZMQ keys for the server")
    actions = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = actions.add_parser(
        "generate", help="write a server keypair",
        description="Write server.key (public: give it to clients) and server.key_secret "
                    "(keep it private: t2m serve --curve-secret) in zmq's certificate text format.")
    generate.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the key files")
    generate.add_argument("--force", action="store_true", help="replace existing key files")
    add_json_flag(generate)
    generate.set_defaults(handler=run_keys_generate)


def run_serve(args: argparse.Namespace) -> dict:
    from inference_server.server import Server, check_bind_security, load_curve_secret

    # Refuse an unsafe bind or a bad key file before spending seconds loading the model.
    check_bind_security(args.bind, args.curve_secret, args.insecure)
    if args.curve_secret:
        load_curve_secret(args.curve_secret)
    _configure_logging()
    engine = build_engine(*_model_and_index(args), device=args.device,
                          qdrant=_qdrant_target(args))
    server = Server(engine, bind=args.bind, curve_secret=args.curve_secret, insecure=args.insecure)
    previous = {sig: signal.signal(sig, lambda *_: server.stop()) for sig in (signal.SIGINT, signal.SIGTERM)}
    engine.warm_up()
    try:
        server.serve_forever()
    finally:
        engine.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    logging.getLogger("t2m.server").info("stopped after %d replies", server.answered)
    return {"address": server.address, "replies": server.answered}


def build_engine(model: Path, index: Path, device: str = "auto", qdrant: tuple[str, str] | None = None):
    """Load the checkpoint and the index (and the Qdrant backend) into an Engine."""
    from inference_server.engine import Engine
    from inference_server.index import MotionIndex
    from inference_server.retriever import Retriever

    retriever = Retriever.load(model, device=device)
    index = MotionIndex.load(index, retriever)
    searcher = None
    if qdrant is not None:
        from inference_server.index.qdrant import QdrantSearcher

        searcher = QdrantSearcher(url=qdrant[0], collection=qdrant[1], index=index)
    return Engine(retriever, index, searcher)


def _model_and_index(args: argparse.Namespace) -> tuple[Path, Path]:
    if args.index is not None and args.model is not None:
        return args.model, args.index
    if args.index is not None or args.model is not None:
        raise CliError("pass both --index and --model (or neither, for the embedded default)")
    try:
        from inference_server import default
    except ImportError:
        raise CliError("no --index/--model given and the embedded default model is not installed; "
                       "pass --index INDEX --model CKPT") from None
    return default.model_and_index()


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

    out = args.out
    public_file, secret_file = out / f"{KEY_NAME}.key", out / f"{KEY_NAME}.key_secret"
    existing = [str(path) for path in (public_file, secret_file) if path.exists()]
    if existing and not args.force:
        raise CliError(f"{', '.join(existing)} already exist; pass --force to replace them "
                       "(clients holding the old public key will no longer connect)")
    out.mkdir(parents=True, exist_ok=True)
    public_path, secret_path = zmq.auth.create_certificates(str(out), KEY_NAME)
    os.chmod(secret_path, 0o600)
    public, _ = zmq.auth.load_certificate(public_path)
    return {"public_key_file": str(public_path), "secret_key_file": str(secret_path),
            "public_key": public.decode("ascii")}
