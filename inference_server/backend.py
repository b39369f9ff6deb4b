"""One way to ask for the wire ops, whether the engine is a server or in this process.

Batch and demo jobs (which run in bpy) take any object with
`call(op, args=None, arrays=None) -> (result, arrays)`: a bridge.client.Client talking
to a server, or a LocalBackend that runs the same ops in-process through the server's own
dispatch (server.call_op: the op table's checks, then the engine), with the same errors
(bridge.protocol.RemoteError) as a client gets from the server.
"""
from __future__ import annotations

import uuid

from bridge.codec import Request
from bridge.protocol import ProtocolError, RemoteError
from inference_server.server import call_op


class LocalBackend:
    """The server's ops in-process: same signatures, same checks, same errors."""

    def __init__(self, engine):
        self.engine = engine

    def call(self, op: str, args: dict | None = None, arrays: dict | None = None, timeout=None):
        request = Request(uuid.uuid4().hex, op, dict(args or {}), dict(arrays or {}))
        try:
            return call_op(self.engine, request)
        except ProtocolError as error:
            raise RemoteError(error.code, error.message, request.id) from None

    def close(self) -> None:
        """Nothing to release: the engine lives as long as this process."""


def open_backend(server: str | None = None, index: str | None = None, model: str | None = None,
                 device: str = "auto", timeout: float = 30.0):
    """A Client for `server`, else a LocalBackend over INDEX + MODEL (default: the embedded default)."""
    if server:
        from bridge.client import Client

        return Client(server, timeout=timeout)
    from inference_server import default
    from inference_server.engine import Engine
    from inference_server.index import MotionIndex
    from inference_server.retriever import Retriever

    model, index = default.resolve(model, index)
    retriever = Retriever.load(model, device=device)
    return LocalBackend(Engine(retriever, MotionIndex.load(index, retriever)))
