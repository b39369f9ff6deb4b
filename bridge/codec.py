"""Encode and decode the multipart messages of the wire: a JSON header, then array frames.

Every decoder validates before it trusts: sizes first (before any JSON is parsed), then the
header's fields and types, then each array frame against its description. Problems raise
ProtocolError with the wire's error code and, when it could be read, the request id.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

import numpy as np

from .protocol import (
    BAD_REQUEST,
    DTYPES,
    MAX_ARRAYS,
    MAX_DIMS,
    MAX_HEADER_BYTES,
    MAX_ARRAY_ELEMENTS,
    MAX_DIM_SIZE,
    MAX_ID_CHARS,
    MAX_JSON_DEPTH,
    MAX_MESSAGE_BYTES,
    PROTOCOL_VERSION,
    TOO_LARGE,
    UNSUPPORTED_VERSION,
    ProtocolError,
    RemoteError,
    is_unicode,
)

Frames = list  # list of bytes-like objects (bytes, memoryview, zmq.Frame)

# Finds the id near the start of a header that cannot be parsed as JSON (too large, cut
# short, bad bytes after the id), so that even such an error reply can be matched by the
# client (our clients write "id" second). Escapes are not decoded: such an id is not echoed.
_ID_PREFIX = re.compile(rb'"id"\s*:\s*"([^"\\\x00-\x1f]{1,%d})"' % (4 * MAX_ID_CHARS))


@dataclass
class Request:
    id: str
    op: str
    args: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Reply:
    id: str | None
    ok: bool
    result: dict = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    error_code: str | None = None
    error_message: str | None = None

    def unwrap(self) -> tuple[dict, dict[str, np.ndarray]]:
        """(result, arrays) of a successful reply; RemoteError(code, message) otherwise."""
        if not self.ok:
            raise RemoteError(self.error_code or "internal", self.error_message or "", self.id)
        return self.result, self.arrays


# ---------------------------------------------------------------- encoding

def encode_request(request_id: str, op: str, args: dict | None = None,
                   arrays: dict[str, np.ndarray] | None = None) -> Frames:
    header = {"v": PROTOCOL_VERSION, "id": request_id, "op": op, "args": args or {}}
    return _encode(header, arrays)


def encode_reply(request_id: str | None, result: dict,
                 arrays: dict[str, np.ndarray] | None = None) -> Frames:
    header = {"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result}
    return _encode(header, arrays)


def encode_error(request_id: str | None, code: str, message: str) -> Frames:
    header = {"v": PROTOCOL_VERSION, "id": request_id, "ok": False,
              "error": {"code": code, "message": message}}
    return [_dump(header)]


def _encode(header: dict, arrays: dict[str, np.ndarray] | None) -> Frames:
    descriptions, frames = encode_arrays(arrays or {})
    header["arrays"] = descriptions
    return [_dump(header), *frames]


def _dump(header: dict) -> bytes:
    # allow_nan=False: NaN/Infinity are not JSON; a producer of them fails loudly here.
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        # A lone UTF-16 surrogate (e.g. an echoed id "\ud800" read from a \u escape) has no
        # UTF-8 form: write every non-ASCII character as a \u escape instead, which any JSON
        # reader turns back into the same string.
        return json.dumps(header, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii")


def encode_arrays(arrays: dict[str, np.ndarray]) -> tuple[list[dict], list[memoryview]]:
    """Array descriptions for the header and one little-endian C-order frame per array."""
    descriptions, frames = [], []
    for name, value in arrays.items():
        array = np.asarray(value)
        dtype_name = array.dtype.name
        if dtype_name not in DTYPES:
            raise ProtocolError(BAD_REQUEST, f"array {name!r} has dtype {dtype_name}, "
                                             f"not one of {', '.join(DTYPES)}")
        array = np.asarray(array, dtype=DTYPES[dtype_name], order="C")
        descriptions.append({"name": name, "dtype": dtype_name, "shape": list(array.shape)})
        frames.append(memoryview(array.reshape(-1).view(np.uint8)))
    return descriptions, frames


# ---------------------------------------------------------------- decoding

def decode_request(frames: Frames) -> Request:
    """Validate and decode `[header, *arrays]` from a client."""
    header = _load_header(frames)
    request_id = header.get("id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= MAX_ID_CHARS:
        raise ProtocolError(BAD_REQUEST, f"'id' must be a string of 1 to {MAX_ID_CHARS} characters")
    try:
        if not is_unicode(request_id):
            raise ProtocolError(BAD_REQUEST, "'id' holds a lone UTF-16 surrogate: not a Unicode string")
        _check_version(header)
        op = _field(header, "op", str)
        args = _field(header, "args", dict, default={})
        arrays = decode_arrays(_field(header, "arrays", list, default=[]), frames[1:])
    except ProtocolError as error:
        error.request_id = request_id
        raise
    return Request(id=request_id, op=op, args=args, arrays=arrays)


def decode_reply(frames: Frames) -> Reply:
    """Validate and decode a server's reply `[header, *arrays]`."""
    header = _load_header(frames)
    request_id = header.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise ProtocolError(BAD_REQUEST, "reply 'id' is neither a string nor null")
    _check_version(header)
    ok = _field(header, "ok", bool)
    if not ok:
        error = _field(header, "error", dict)
        return Reply(id=request_id, ok=False, error_code=str(error.get("code", "internal")),
                     error_message=str(error.get("message", "")))
    result = _field(header, "result", dict)
    arrays = decode_arrays(_field(header, "arrays", list, default=[]), frames[1:])
    return Reply(id=request_id, ok=True, result=result, arrays=arrays)


def peek_id(frames: Frames) -> str | None:
    """Best-effort request id of a message that failed to decode (None when unreadable)."""
    if not frames:
        return None
    try:
        head = bytes(memoryview(frames[0])[:2048])
    except TypeError:
        return None
    match = _ID_PREFIX.search(head)
    if not match:
        return None
    try:
        request_id = match.group(1).decode("utf-8")
    except UnicodeDecodeError:
        return None
    return request_id if len(request_id) <= MAX_ID_CHARS else None


def json_depth_exceeds(value, limit: int = MAX_JSON_DEPTH) -> bool:
    """True when lists/objects nest deeper than `limit` (iterative: no recursion of ours)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False


def _load_header(frames: Frames) -> dict:
    if not frames:
        raise ProtocolError(BAD_REQUEST, "empty message: expected a JSON header frame")
    sizes = [memoryview(frame).nbytes for frame in frames]
    if sum(sizes) > MAX_MESSAGE_BYTES:
        raise ProtocolError(TOO_LARGE, f"message of {sum(sizes)} bytes exceeds the limit of "
                                       f"{MAX_MESSAGE_BYTES} bytes", peek_id(frames))
    if sizes[0] > MAX_HEADER_BYTES:
        raise ProtocolError(TOO_LARGE, f"header of {sizes[0]} bytes exceeds the limit of "
                                       f"{MAX_HEADER_BYTES} bytes", peek_id(frames))
    try:
        header = json.loads(bytes(memoryview(frames[0])).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise ProtocolError(BAD_REQUEST, f"header is not UTF-8 JSON: {str(error)[:200]}", peek_id(frames)) from None
    except RecursionError:
        raise ProtocolError(BAD_REQUEST, f"header JSON nests deeper than the limit of {MAX_JSON_DEPTH} levels",
                            peek_id(frames)) from None
    if not isinstance(header, dict):
        raise ProtocolError(BAD_REQUEST, f"header must be a JSON object, not {type(header).__name__}")
    if json_depth_exceeds(header):
        request_id = header.get("id")
        raise ProtocolError(BAD_REQUEST, f"header JSON nests deeper than the limit of {MAX_JSON_DEPTH} levels",
                            request_id if _readable_id(request_id) else None)
    return header


def _readable_id(request_id) -> bool:
    return isinstance(request_id, str) and 0 < len(request_id) <= MAX_ID_CHARS


def _check_version(header: dict) -> None:
    version = header.get("v")
    if "v" not in header:
        raise ProtocolError(BAD_REQUEST, "missing 'v' (protocol version)")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError(UNSUPPORTED_VERSION, f"protocol version {version!r} is not supported; "
                                                 f"this side speaks {PROTOCOL_VERSION}")


_MISSING = object()


def _field(header: dict, name: str, kind: type, default=_MISSING):
    value = header.get(name, default)
    if value is _MISSING:
        raise ProtocolError(BAD_REQUEST, f"missing {name!r}")
    if not isinstance(value, kind):
        raise ProtocolError(BAD_REQUEST, f"{name!r} must be a JSON {_JSON_NAMES[kind]}, "
                                         f"not {type(value).__name__}")
    return value


_JSON_NAMES = {str: "string", dict: "object", list: "array", bool: "boolean"}


def decode_arrays(descriptions: list, frames: Frames) -> dict[str, np.ndarray]:
    """Arrays from their header descriptions and binary frames, each checked before use."""
    if len(descriptions) > MAX_ARRAYS:
        raise ProtocolError(BAD_REQUEST, f"{len(descriptions)} arrays exceed the limit of {MAX_ARRAYS}")
    if len(descriptions) != len(frames):
        raise ProtocolError(BAD_REQUEST, f"header describes {len(descriptions)} arrays but "
                                         f"{len(frames)} array frames follow")
    arrays = {}
    for position, (description, frame) in enumerate(zip(descriptions, frames)):
        name, dtype, shape = _check_description(position, description)
        if name in arrays:
            raise ProtocolError(BAD_REQUEST, f"array name {name!r} appears twice")
        buffer = memoryview(frame)
        expected = math.prod(shape) * np.dtype(DTYPES[dtype]).itemsize
        if buffer.nbytes != expected:
            raise ProtocolError(BAD_REQUEST, f"array {name!r} ({dtype}, shape {shape}) needs "
                                             f"{expected} bytes but its frame has {buffer.nbytes}")
        # A copy: the caller gets a writable array that does not pin the message buffer.
        arrays[name] = np.frombuffer(buffer, dtype=DTYPES[dtype]).reshape(shape).copy()
    return arrays


def _check_description(position: int, description) -> tuple[str, str, list[int]]:
    where = f"array description {position}"
    if not isinstance(description, dict):
        raise ProtocolError(BAD_REQUEST, f"{where} must be an object with name, dtype, shape")
    name, dtype, shape = description.get("name"), description.get("dtype"), description.get("shape")
    if not isinstance(name, str) or not name:
        raise ProtocolError(BAD_REQUEST, f"{where}: 'name' must be a non-empty string")
    if dtype not in DTYPES:
        raise ProtocolError(BAD_REQUEST, f"array {name!r}: dtype {dtype!r} is not one of "
                                         f"{', '.join(DTYPES)}")
    if (not isinstance(shape, list) or len(shape) > MAX_DIMS
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise ProtocolError(BAD_REQUEST, f"array {name!r}: 'shape' must be a list of at most "
                                         f"{MAX_DIMS} non-negative integers")
    if any(n > MAX_DIM_SIZE for n in shape):
        raise ProtocolError(BAD_REQUEST, f"array {name!r}: shape {shape} has an axis longer than the limit "
                                         f"of {MAX_DIM_SIZE} (MAX_DIM_SIZE)")
    elements = 1
    for n in shape:  # the product of the non-zero axes: a zero-size array cannot hide a huge one
        elements *= max(n, 1)
        if elements > MAX_ARRAY_ELEMENTS:
            raise ProtocolError(BAD_REQUEST, f"array {name!r}: shape {shape} exceeds the limit of "
                                             f"{MAX_ARRAY_ELEMENTS} elements (MAX_ARRAY_ELEMENTS)")
    return name, dtype, shape
