"""The client of the wire: one DEALER socket, request ids, timeouts, Lazy-Pirate retries.

Two ways to use it:
- blocking: `result, arrays = client.call("search", {"text": "a person waves"})`
- non-blocking (Blender timers): `request_id = client.send(op, args)`, then call
  `client.poll()` from a timer; it returns `[(request_id, Reply), ...]` for the requests
  answered since, and drops replies to ids it does not know (stale or already answered).

On a timeout the socket is closed and reopened and the pending requests are sent again
(Lazy Pirate), up to `retries` times; then call() raises ServerUnreachable and poll()
answers the request itself with a Reply whose error_code is UNREACHABLE. Because a new
socket is made on every retry, a client whose server restarted recovers by itself.
"""
from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

import numpy as np
import zmq

from .codec import Reply, decode_reply, encode_request
from .protocol import (
    DEFAULT_ADDRESS,
    MAX_HEADER_BYTES,
    MAX_MESSAGE_BYTES,
    TOO_LARGE,
    UNREACHABLE,
    ProtocolError,
    ServerUnreachable,
)

log = logging.getLogger(__name__)


@dataclass
class _Pending:
    frames: list
    deadline: float
    tries: int


class Client:
    """A connection to a t2m server.

    address: the server's endpoint, e.g. "tcp://127.0.0.1:5557".
    timeout: seconds to wait for each reply before retrying.
    retries: how many times a request is resent on a fresh socket after a timeout.
    server_key: the server's CurveZMQ public key (z85, 40 characters) to encrypt the
        connection. None: plain TCP.
    client_key: this client's CurveZMQ keypair, for a server with an allow-list of client
        keys (`t2m keys generate --name NAME`, then `t2m keys allow NAME.key` on the server):
        a (public, secret) pair of z85 keys, or the path of the NAME.key_secret file.
        None: an ephemeral keypair (served only by a server without an allow-list).
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, timeout: float = 5.0, retries: int = 2,
                 server_key: str | bytes | None = None, client_key=None):
        if timeout <= 0 or retries < 0:
            raise ValueError("timeout must be > 0 and retries >= 0")
        self.address = address
        self.timeout = float(timeout)
        self.retries = int(retries)
        self._server_key = _z85_key(server_key) if server_key is not None else None
        if client_key is not None and self._server_key is None:
            raise ValueError("client_key needs server_key (CurveZMQ)")
        self._client_key = _client_keypair(client_key) if client_key is not None else None
        self._context = zmq.Context()  # private: Blender may hold other zmq users
        self._socket: zmq.Socket | None = None
        self._pending: dict[str, _Pending] = {}
        self._ready: list[tuple[str, Reply]] = []  # replies call() received for other ids
        self._open_socket()

    # ---------------------------------------------------------------- public API

    def send(self, op: str, args: dict | None = None,
             arrays: dict[str, np.ndarray] | None = None) -> str:
        """Queue a request without waiting; returns its id (uuid4 hex)."""
        if self._socket is None:
            raise RuntimeError(f"the client of {self.address} is closed")
        request_id = uuid.uuid4().hex
        frames = encode_request(request_id, op, args, arrays)
        _check_size(frames)
        self._pending[request_id] = _Pending(frames, time.monotonic() + self.timeout, tries=0)
        self._socket.send_multipart(frames, copy=False)
        return request_id

    def poll(self, timeout: float = 0.0) -> list[tuple[str, Reply]]:
        """Replies that arrived (waiting at most `timeout` s for the first): [(id, Reply)]."""
        self._receive(timeout)
        self._retry_expired()
        answered, self._ready = self._ready, []
        return answered

    def call(self, op: str, args: dict | None = None, arrays: dict[str, np.ndarray] | None = None,
             timeout: float | None = None) -> tuple[dict, dict[str, np.ndarray]]:
        """Send a request and wait for its reply: (result, arrays).

        Raises RemoteError(code, message) on an error reply and ServerUnreachable when no
        reply came within `timeout` (default: the client's) on any of the 1 + retries tries.
        """
        wait = self.timeout if timeout is None else float(timeout)
        request_id = self.send(op, args, arrays)
        self._pending[request_id].deadline = time.monotonic() + wait
        while True:
            reply = self._take(request_id)
            if reply is not None:
                return reply.unwrap()
            pending = self._pending[request_id]
            remaining = pending.deadline - time.monotonic()
            if remaining > 0:
                self._receive(remaining)
                continue
            if pending.tries >= self.retries:
                del self._pending[request_id]
                raise ServerUnreachable(self._unreachable_message(wait))
            pending.tries += 1
            self._reconnect()
            pending.deadline = time.monotonic() + wait

    def close(self) -> None:
        """Close the socket and the private context; pending requests are forgotten."""
        if self._socket is not None:
            self._socket.close(linger=0)
            self._socket = None
        self._context.term()
        self._pending.clear()

    @property
    def pending(self) -> list[str]:
        """Ids of the requests still waiting for a reply."""
        return list(self._pending)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- internals

    def _open_socket(self) -> None:
        socket = self._context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        if self._server_key is not None:
            public, secret = self._client_key or zmq.curve_keypair()
            socket.curve_serverkey = self._server_key
            socket.curve_publickey = public
            socket.curve_secretkey = secret
        socket.connect(self.address)
        self._socket = socket

    def _reconnect(self) -> None:
        """Lazy Pirate: drop the socket (and any reply in flight) and resend everything."""
        self._socket.close(linger=0)
        self._open_socket()
        now = time.monotonic()
        for pending in self._pending.values():
            pending.deadline = now + self.timeout
            self._socket.send_multipart(pending.frames, copy=False)

    def _receive(self, timeout: float) -> None:
        """Read every reply available (waiting up to `timeout` s for the first)."""
        wait_ms = max(0, int(timeout * 1000))
        while self._socket.poll(wait_ms, zmq.POLLIN):
            frames = self._socket.recv_multipart()
            self._accept(frames)
            wait_ms = 0

    def _accept(self, frames: list[bytes]) -> None:
        try:
            reply = decode_reply(frames)
        except ProtocolError as error:
            log.warning("dropped an unreadable reply from %s: %s", self.address, error.message)
            return
        if reply.id not in self._pending:
            log.debug("dropped a stale reply (id %s)", reply.id)
            return
        del self._pending[reply.id]
        self._ready.append((reply.id, reply))

    def _take(self, request_id: str) -> Reply | None:
        for position, (answered_id, reply) in enumerate(self._ready):
            if answered_id == request_id:
                del self._ready[position]
                return reply
        return None

    def _retry_expired(self) -> None:
        now = time.monotonic()
        expired = [rid for rid, pending in self._pending.items() if pending.deadline <= now]
        if not expired:
            return
        for request_id in expired:
            pending = self._pending[request_id]
            if pending.tries < self.retries:
                pending.tries += 1
                continue
            del self._pending[request_id]
            message = self._unreachable_message(self.timeout)
            self._ready.append((request_id, Reply(id=request_id, ok=False, error_code=UNREACHABLE,
                                                  error_message=message)))
        if self._pending:
            self._reconnect()

    def _unreachable_message(self, timeout: float) -> str:
        tries = self.retries + 1
        return (f"cannot reach the server at {self.address} within {timeout:g} s "
                f"({tries} {'try' if tries == 1 else 'tries'})")


def _check_size(frames: list) -> None:
    """Refuse locally what the server would refuse as too_large (saves the round trip)."""
    header_bytes = len(frames[0])
    total = header_bytes + sum(memoryview(frame).nbytes for frame in frames[1:])
    if header_bytes > MAX_HEADER_BYTES or total > MAX_MESSAGE_BYTES:
        raise ProtocolError(TOO_LARGE, f"request of {total} bytes (header {header_bytes}) exceeds "
                                       f"the limits of {MAX_MESSAGE_BYTES} bytes "
                                       f"(header {MAX_HEADER_BYTES})")


def _z85_key(key: str | bytes) -> bytes:
    key = key.encode("ascii") if isinstance(key, str) else bytes(key)
    key = key.strip()
    if len(key) != 40:
        raise ValueError(f"a CurveZMQ public key is 40 z85 characters, got {len(key)}")
    return key


def read_public_key(path: str) -> bytes:
    """The z85 public key from a key file written by `t2m keys generate` (server.key)."""
    import zmq.auth  # stdlib + pyzmq only; imported here to keep the bridge import light

    public, _ = zmq.auth.load_certificate(path)
    return public


def read_secret_key(path: str) -> tuple[bytes, bytes]:
    """(public, secret) z85 keys from a secret key file of `t2m keys generate` (NAME.key_secret)."""
    import zmq.auth

    public, secret = zmq.auth.load_certificate(path)
    if not secret:
        raise ValueError(f"{path} holds no secret key: pass the .key_secret file")
    return public, secret


def _client_keypair(client_key) -> tuple[bytes, bytes]:
    if isinstance(client_key, (tuple, list)):
        if len(client_key) != 2:
            raise ValueError("client_key must be a (public, secret) pair or a .key_secret file path")
        return _z85_key(client_key[0]), _z85_key(client_key[1])
    return read_secret_key(str(client_key))
