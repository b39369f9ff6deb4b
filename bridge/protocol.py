"""Constants of the wire (INTERFACES.md section 2): version, error codes, dtypes, limits.

Stdlib only: this module is imported inside Blender's own Python.
"""
from __future__ import annotations

PROTOCOL_VERSION = 1
DEFAULT_ADDRESS = "tcp://127.0.0.1:5557"

# Error codes a server sends in `{"ok": false, "error": {"code", "message"}}`.
BAD_REQUEST = "bad_request"
UNKNOWN_OP = "unknown_op"
NOT_FOUND = "not_found"
UNSUPPORTED_VERSION = "unsupported_version"
TOO_LARGE = "too_large"
BUSY = "busy"
INTERNAL = "internal"
ERROR_CODES = (BAD_REQUEST, UNKNOWN_OP, NOT_FOUND, UNSUPPORTED_VERSION, TOO_LARGE, BUSY, INTERNAL)

# Client-side only, never on the wire: the code of the Reply that Client.poll() makes for a
# request whose server never answered (after every retry).
UNREACHABLE = "unreachable"

OPS = ("info", "search", "explain", "motion", "describe", "similar")

# Wire dtype names -> numpy dtype strings, always little endian ('|' = byte order irrelevant).
DTYPES = {
    "float32": "<f4",
    "float64": "<f8",
    "float16": "<f2",
    "int32": "<i4",
    "int64": "<i8",
    "int8": "|i1",
    "uint8": "|u1",
    "bool": "|b1",
}

# Limits. A message over MAX_MESSAGE_BYTES is answered with too_large before anything in
# it is decoded; the header alone is capped lower because it is parsed as JSON.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_HEADER_BYTES = 256 * 1024
MAX_ARRAYS = 16
MAX_DIMS = 8
MAX_ID_CHARS = 128
MAX_TEXT_CHARS = 1000
MAX_K = 100
DEFAULT_K = 10
# Bounds on the work one request may ask for, checked before anything is allocated.
MAX_DIM_SIZE = MAX_MESSAGE_BYTES          # no axis of an array may be longer
MAX_ARRAY_ELEMENTS = MAX_MESSAGE_BYTES    # elements of one array (zero-size arrays included)
MIN_FPS = 1.0                             # describe: frame rate of the positions sent
MAX_FPS = 1000.0
MAX_FRAMES = 10 * 60 * 60                 # describe: frames sent (ten minutes at 60 fps)
MAX_RESAMPLED_FRAMES = 10 * 60 * 20       # describe: frames after resampling to 20 fps (ten minutes)
MAX_JSON_DEPTH = 64                       # nesting of the header's JSON
# A `busy` reply's message ends with "retry in N s"; N is this at least.
RETRY_AFTER_S = 0.5


class ProtocolError(Exception):
    """A request the server refuses, carried to the client as an error reply.

    `request_id` is the id of the refused request when it could be read (else None).
    """

    def __init__(self, code: str, message: str, request_id: str | None = None):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.request_id = request_id


class RemoteError(ProtocolError):
    """An error reply received by a client: `code` is one of ERROR_CODES."""


class ServerUnreachable(ConnectionError):
    """No reply from the server within the timeout, after every retry."""
