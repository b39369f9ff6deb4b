"""The one place the add-on imports the bridge from: the wire client and the sequence stitcher.

Installed, the extension carries its own copy of bridge/ (vendored by build_addon.py
as <package>.bridge); run from the repository, the top-level `bridge` package is used.
"""
from __future__ import annotations

import importlib


def _bridge_module(name: str):
    vendored = f"{__package__}.bridge.{name}"
    try:
        return importlib.import_module(vendored)
    except ModuleNotFoundError as error:
        if error.name not in (f"{__package__}.bridge", vendored):
            raise  # the vendored copy exists but something it needs (zmq?) does not
        return importlib.import_module(f"bridge.{name}")


_client = _bridge_module("client")
_protocol = _bridge_module("protocol")
_endpoints = _bridge_module("endpoints")
_stitch = _bridge_module("stitch")

Client = _client.Client
RemoteError = _protocol.RemoteError
ServerUnreachable = _protocol.ServerUnreachable
DEFAULT_ADDRESS = _protocol.DEFAULT_ADDRESS
ProtocolError = _protocol.ProtocolError
check_request = _protocol.check_request
is_loopback = _endpoints.is_loopback
read_public_key = _client.read_public_key
read_secret_key = _client.read_secret_key
DEFAULT_BLEND_FRAMES = _stitch.DEFAULT_BLEND_FRAMES
StitchError = _stitch.StitchError
stitch_positions = _stitch.stitch_positions


def zmq_error_type():
    """pyzmq's base error (bad addresses raise it when a socket connects)."""
    import zmq

    return zmq.ZMQError
