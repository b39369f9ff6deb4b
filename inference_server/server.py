"""The ZeroMQ server: a ROUTER socket in front of an Engine (wire: INTERFACES.md section 2).

One thread owns the socket and the engine. Each loop drains every request waiting (up to
`max_batch`), answers the search requests together (one text-encoder call for all their
texts: micro-batching) and the others one by one. Every request gets exactly one reply;
nothing a client sends can stop the loop (errors become error replies, the unexpected ones
`internal`). One log line per request (op, id, milliseconds, ok or error code).
"""
from __future__ import annotations

import ipaddress
import logging
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import zmq

from bridge.codec import Request, decode_request, encode_error, encode_reply, peek_id
from bridge.protocol import (
    BAD_REQUEST,
    DEFAULT_ADDRESS,
    DEFAULT_K,
    INTERNAL,
    MAX_MESSAGE_BYTES,
    UNKNOWN_OP,
    ProtocolError,
)
from inference_server.errors import T2MError

log = logging.getLogger("t2m.server")

# op -> (required args, optional args, accepted array names)
SIGNATURES = {
    "info": ((), (), ()),
    "search": (("text",), ("k",), ()),
    "explain": (("text", "motion_id"), (), ()),
    "motion": (("motion_id",), (), ()),
    "describe": ((), ("motion_id", "fps", "k"), ("positions",)),
    "similar": (("motion_id",), ("k",), ()),
}

# zmq drops (without a reply) single frames above this; anything between MAX_MESSAGE_BYTES
# and it still gets a too_large reply. It only bounds the memory a hostile peer can use.
_FRAME_HARD_LIMIT = 4 * MAX_MESSAGE_BYTES


class ServerConfigError(T2MError):
    """A server option that cannot work (an insecure bind, a bad key file)."""


@dataclass
class _Incoming:
    envelope: list        # routing frames: [identity] (DEALER) or [identity, b""] (REQ)
    request: Request | None
    error: ProtocolError | None
    received: float


class Server:
    """Serve `engine` on `bind` until stop() (or a signal handler calling it).

    curve_secret: a key file from `t2m keys generate` (server.key_secret) to encrypt with
        CurveZMQ. A bind address that is not loopback requires it, or insecure=True.
    """

    def __init__(self, engine, bind: str = DEFAULT_ADDRESS, curve_secret: str | None = None,
                 insecure: bool = False, max_batch: int = 64):
        check_bind_security(bind, curve_secret, insecure)
        self.engine = engine
        self.bind = bind
        self.max_batch = max_batch
        self._curve_keys = load_curve_secret(curve_secret) if curve_secret else None
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.address: str | None = None  # the endpoint actually bound (resolves a "*" port)
        self.answered = 0  # replies sent

    def stop(self) -> None:
        """Ask the loop to finish; safe from a signal handler or another thread."""
        self._stop.set()

    def serve_forever(self) -> None:
        context = zmq.Context()
        socket = None
        try:
            socket = self._open_socket(context)
            log.info("listening on %s%s", self.address, " (CurveZMQ)" if self._curve_keys else "")
            self.ready.set()
            while not self._stop.is_set():
                if socket.poll(100, zmq.POLLIN):
                    self._serve_once(socket)
        finally:
            if socket is not None:
                socket.close(linger=0)
            context.term()
            self.ready.clear()

    def _serve_once(self, socket: zmq.Socket) -> None:
        try:
            self._handle(socket, self._drain(socket))
        except Exception:  # a bug of ours, not the client's input: keep serving the others
            log.exception("unexpected error while serving a batch of requests")

    # ---------------------------------------------------------------- socket

    def _open_socket(self, context: zmq.Context) -> zmq.Socket:
        socket = context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.MAXMSGSIZE, _FRAME_HARD_LIMIT)
        if self._curve_keys is not None:
            socket.curve_publickey, socket.curve_secretkey = self._curve_keys
            socket.curve_server = True
        try:
            socket.bind(self.bind)
        except zmq.ZMQError as error:
            socket.close(linger=0)
            raise ServerConfigError(f"cannot bind {self.bind}: {error}") from None
        self.address = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        return socket

    def _drain(self, socket: zmq.Socket) -> list[_Incoming]:
        incoming = []
        while len(incoming) < self.max_batch:
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                break
            incoming.append(_parse(frames))
        return incoming

    # ---------------------------------------------------------------- dispatch

    def _handle(self, socket: zmq.Socket, incoming: list[_Incoming]) -> None:
        searches = [item for item in incoming if item.request is not None and item.request.op == "search"]
        for item in incoming:
            if item.request is None:
                self._reply_error(socket, item, item.error)
            elif item.request.op != "search":
                self._answer_one(socket, item)
        if searches:
            self._answer_searches(socket, searches)

    def _answer_one(self, socket: zmq.Socket, item: _Incoming) -> None:
        try:
            result, arrays = call_op(self.engine, item.request)
        except ProtocolError as error:
            self._reply_error(socket, item, error)
        except Exception as error:  # the server never dies on a request
            log.exception("internal error in %s (id %s)", item.request.op, item.request.id)
            self._reply_error(socket, item, ProtocolError(INTERNAL, f"{type(error).__name__}: {error}"))
        else:
            self._reply(socket, item, result, arrays)

    def _answer_searches(self, socket: zmq.Socket, items: list[_Incoming]) -> None:
        valid = []
        for item in items:
            try:
                _check_args(item.request)
                valid.append(item)
            except ProtocolError as error:
                self._reply_error(socket, item, error)
        if not valid:
            return
        queries = [(item.request.args["text"], item.request.args.get("k", DEFAULT_K)) for item in valid]
        try:
            outcomes = self.engine.search_many(queries)
        except Exception:
            # A whole-batch failure: answer each search on its own, so that one query that
            # breaks the batch cannot take the others down with it.
            log.exception("batched search failed; answering its %d queries one by one", len(valid))
            for item in valid:
                self._answer_one(socket, item)
            return
        for item, outcome in zip(valid, outcomes):
            if isinstance(outcome, ProtocolError):
                self._reply_error(socket, item, outcome)
            else:
                self._reply(socket, item, *outcome)

    # ---------------------------------------------------------------- replies

    def _reply(self, socket: zmq.Socket, item: _Incoming, result: dict, arrays: dict) -> None:
        try:
            frames = encode_reply(item.request.id, result, arrays)
        except Exception as error:  # e.g. a NaN score: still one reply, an error one
            log.exception("cannot encode the reply to %s", item.request.op)
            self._reply_error(socket, item, ProtocolError(INTERNAL, f"cannot encode the reply: {error}"))
            return
        socket.send_multipart(item.envelope + frames, copy=False)
        self._log(item, "ok")

    def _reply_error(self, socket: zmq.Socket, item: _Incoming, error: ProtocolError) -> None:
        request_id = item.request.id if item.request is not None else error.request_id
        socket.send_multipart(item.envelope + encode_error(request_id, error.code, error.message))
        self._log(item, f"{error.code}: {error.message[:200]}")

    def _log(self, item: _Incoming, outcome: str) -> None:
        self.answered += 1
        op = item.request.op if item.request is not None else "?"
        request_id = item.request.id if item.request is not None else item.error.request_id
        milliseconds = (time.perf_counter() - item.received) * 1000
        log.info("%s id=%s %.1f ms %s", op, request_id, milliseconds, outcome)


def _parse(frames: list) -> _Incoming:
    """Split the routing envelope from the message and decode it (never raises)."""
    received = time.perf_counter()
    # A REQ peer puts an empty delimiter frame between its identity and the message.
    is_req = len(frames) >= 2 and len(frames[1]) == 0
    split = 2 if is_req else 1
    envelope = [frame.bytes for frame in frames[:split]]
    body = frames[split:]
    try:
        return _Incoming(envelope, decode_request(body), None, received)
    except ProtocolError as error:
        return _Incoming(envelope, None, error, received)
    except Exception as error:
        return _Incoming(envelope, None, ProtocolError(INTERNAL, f"cannot decode: {error}", peek_id(body)),
                         received)


def call_op(engine, request: Request) -> tuple[dict, dict]:
    """Check the request's arguments against the op's signature and call the engine."""
    _check_args(request)
    kwargs = dict(request.args)
    kwargs.update(request.arrays)
    return getattr(engine, request.op)(**kwargs)


def _check_args(request: Request) -> None:
    if request.op not in SIGNATURES:
        raise ProtocolError(UNKNOWN_OP, f"unknown op {request.op!r}; known: {', '.join(SIGNATURES)}")
    required, optional, array_names = SIGNATURES[request.op]
    missing = [name for name in required if name not in request.args]
    if missing:
        raise ProtocolError(BAD_REQUEST, f"{request.op} needs argument(s) {', '.join(missing)}")
    unknown = sorted(set(request.args) - set(required) - set(optional))
    if unknown:
        raise ProtocolError(BAD_REQUEST, f"{request.op} takes no argument(s) {', '.join(unknown)}")
    unknown_arrays = sorted(set(request.arrays) - set(array_names))
    if unknown_arrays:
        raise ProtocolError(BAD_REQUEST, f"{request.op} takes no array(s) {', '.join(unknown_arrays)}")


# ---------------------------------------------------------------- security

def is_loopback(address: str) -> bool:
    """True for tcp endpoints on a loopback host and for local transports (ipc, inproc)."""
    parts = urlsplit(address)
    if parts.scheme in ("ipc", "inproc"):
        return True
    host = (parts.hostname or "").strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name: assume reachable from outside
        return False


def check_bind_security(bind: str, curve_secret: str | None, insecure: bool) -> None:
    if not is_loopback(bind) and curve_secret is None and not insecure:
        raise ServerConfigError(
            f"refusing to bind {bind} without encryption: it is reachable from other machines. "
            "Create keys with `t2m keys generate --out DIR` and pass --curve-secret DIR/server.key_secret, "
            "or pass --insecure to serve it unencrypted")


def load_curve_secret(path: str) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys from a zmq certificate file with a secret key."""
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as error:
        raise ServerConfigError(f"cannot read the CurveZMQ key file {path}: {error}") from None
    if not secret:
        raise ServerConfigError(f"{path} holds no secret key: pass the server.key_secret file")
    return public, secret
