"""The wire contract (INTERFACES.md section 2, docs/WIRE.md): version, error codes, dtypes,
limits, and the op table, the one description of every op's arguments (names, JSON types,
limits, defaults), arrays and result keys that the server, the in-process backend and the
add-on all check requests against.

Stdlib only: this module is imported inside Blender's own Python.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
DESCRIBE_K = 5                            # describe: captions returned when k is not given
PREVIEW_WIDTH, PREVIEW_HEIGHT = 256, 64   # preview: the PNG's size in pixels when not given
MIN_PREVIEW_WIDTH, MAX_PREVIEW_WIDTH = 32, 1024
MIN_PREVIEW_HEIGHT, MAX_PREVIEW_HEIGHT = 16, 512
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


# ---------------------------------------------------------------- argument checks

def is_unicode(text: str) -> bool:
    """False for a str holding a lone UTF-16 surrogate (JSON's "\\ud800"), which no UTF-8 can carry."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_text(text) -> str:
    """A query text: a non-blank Unicode string of at most MAX_TEXT_CHARS characters."""
    if not isinstance(text, str):
        raise ProtocolError(BAD_REQUEST, f"text must be a string, not {type(text).__name__}")
    if len(text) > MAX_TEXT_CHARS:
        raise ProtocolError(BAD_REQUEST, f"text of {len(text)} characters exceeds the limit of "
                                         f"{MAX_TEXT_CHARS} (MAX_TEXT_CHARS)")
    if not text.strip():
        raise ProtocolError(BAD_REQUEST, "text is empty")
    if not is_unicode(text):
        raise ProtocolError(BAD_REQUEST, "text holds a lone UTF-16 surrogate: not a Unicode string")
    return text


def check_k(k) -> int:
    """A result count: an integer from 1 to MAX_K (a JSON true is not 1)."""
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ProtocolError(BAD_REQUEST, f"k must be an integer from 1 to {MAX_K}, not {k!r}")
    return k


def check_motion_id(motion_id) -> str:
    """A motion id: a string (whether the library has it is the server's not_found)."""
    if not isinstance(motion_id, str):
        raise ProtocolError(BAD_REQUEST, f"motion_id must be a string, not {type(motion_id).__name__}")
    return motion_id


def check_width(width) -> int:
    """preview's picture width: an integer from MIN_PREVIEW_WIDTH to MAX_PREVIEW_WIDTH pixels."""
    return _check_pixels("width", width, MIN_PREVIEW_WIDTH, MAX_PREVIEW_WIDTH)


def check_height(height) -> int:
    """preview's picture height: an integer from MIN_PREVIEW_HEIGHT to MAX_PREVIEW_HEIGHT pixels."""
    return _check_pixels("height", height, MIN_PREVIEW_HEIGHT, MAX_PREVIEW_HEIGHT)


def check_size(size) -> list[int]:
    """preview's size as one argument, INTERFACES.md's spelling: [width, height] in pixels,
    each within the limits of check_width and check_height."""
    if not isinstance(size, list) or len(size) != 2:
        raise ProtocolError(BAD_REQUEST, f"size must be [width, height], not {str(size)[:100]}")
    return [check_width(size[0]), check_height(size[1])]


def _check_pixels(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ProtocolError(BAD_REQUEST, f"{name} must be an integer from {low} to {high} pixels "
                                         f"(MIN_PREVIEW_{name.upper()}, MAX_PREVIEW_{name.upper()}), not {value!r}")
    return value


def check_fps(fps) -> float:
    """The frame rate of positions sent with describe: a number from MIN_FPS to MAX_FPS."""
    if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not MIN_FPS <= fps <= MAX_FPS:
        raise ProtocolError(BAD_REQUEST, f"fps must be a number from {MIN_FPS:g} to {MAX_FPS:g} "
                                         f"(MIN_FPS, MAX_FPS), not {fps!r}")
    return fps


# ---------------------------------------------------------------- the op table

@dataclass(frozen=True)
class Arg:
    """One JSON argument of an op. `check` returns the value or raises ProtocolError(bad_request);
    `default` is the value an absent optional argument takes (the Engine method's default, which
    tests/test_protocol.py compares with it; None: absent means "not given")."""
    name: str
    type: str                 # its JSON type, for the docs: "string", "integer", "number" or "array"
    check: Callable
    required: bool = False
    default: object = None


@dataclass(frozen=True)
class ArraySpec:
    """An array frame: `shape` holds sizes (int) and named axes (str) such as "T" (frames)."""
    name: str
    dtype: str
    shape: tuple
    optional: bool = False


@dataclass(frozen=True)
class Op:
    """One operation: its arguments, the arrays a request may carry, the keys of its result
    (at least these; additions are backward compatible), the keys a result carries only in
    some cases (`optional_result`, e.g. search's `segments` for a prompt of several steps)
    and the arrays of its reply."""
    name: str
    args: tuple[Arg, ...] = ()
    arrays: tuple[ArraySpec, ...] = ()
    result: tuple[str, ...] = ()
    reply_arrays: tuple[ArraySpec, ...] = ()
    optional_result: tuple[str, ...] = ()

    def arg(self, name: str) -> Arg:
        return next(arg for arg in self.args if arg.name == name)


_TEXT = Arg("text", "string", check_text, required=True)
_MOTION_ID = Arg("motion_id", "string", check_motion_id, required=True)
_HITS = ("results", "tokens")

OPS: dict[str, Op] = {op.name: op for op in (
    Op("info", result=("protocol", "model", "library", "device", "ready")),
    # A prompt of several steps ("A, then B": bridge/sequence.py) adds `segments` (and `spans` on each hit).
    Op("search", (_TEXT, Arg("k", "integer", check_k, default=DEFAULT_K)), result=_HITS,
       optional_result=("segments",)),
    Op("explain", (_TEXT, _MOTION_ID), result=("tokens", "parts", "window_seconds"),
       reply_arrays=(ArraySpec("relevance", "float32", ("tokens", 14, "windows")),), optional_result=("steps",)),
    Op("motion", (_MOTION_ID,), result=("joints", "parents", "fps", "up"),
       reply_arrays=(ArraySpec("positions", "float32", ("T", "J", 3)),
                     ArraySpec("rotations", "float32", ("T", "J", 4), optional=True))),
    # Either motion_id, or the array positions with fps (the engine enforces the choice).
    Op("describe", (Arg("motion_id", "string", check_motion_id), Arg("fps", "number", check_fps),
                    Arg("k", "integer", check_k, default=DESCRIBE_K)),
       arrays=(ArraySpec("positions", "float32", ("T", 22, 3), optional=True),), result=("captions",)),
    Op("similar", (_MOTION_ID, Arg("k", "integer", check_k, default=DEFAULT_K)), result=_HITS),
    Op("preview", (_MOTION_ID, Arg("width", "integer", check_width, default=PREVIEW_WIDTH),
                   Arg("height", "integer", check_height, default=PREVIEW_HEIGHT),
                   Arg("size", "array", check_size)),
       result=("motion_id", "width", "height"), reply_arrays=(ArraySpec("png", "uint8", ("bytes",)),)),
)}


def check_request(op: str, args: dict, arrays: dict | None = None) -> Op:
    """The Op of a request whose argument names, values and array names fit the table;
    ProtocolError (unknown_op, bad_request) naming the first problem otherwise."""
    spec = OPS.get(op)
    if spec is None:
        raise ProtocolError(UNKNOWN_OP, f"unknown op {op[:100]!r}; known: {', '.join(OPS)}")
    missing = [arg.name for arg in spec.args if arg.required and arg.name not in args]
    if missing:
        raise ProtocolError(BAD_REQUEST, f"{op} needs argument(s) {', '.join(missing)}")
    unknown = sorted(set(args) - {arg.name for arg in spec.args})
    if unknown:
        raise ProtocolError(BAD_REQUEST, f"{op} takes no argument(s) {', '.join(u[:100] for u in unknown[:10])}")
    unknown_arrays = sorted(set(arrays or ()) - {array.name for array in spec.arrays})
    if unknown_arrays:
        raise ProtocolError(BAD_REQUEST, f"{op} takes no array(s) "
                                         f"{', '.join(u[:100] for u in unknown_arrays[:10])}")
    for arg in spec.args:
        if arg.name in args:
            arg.check(args[arg.name])
    return spec
