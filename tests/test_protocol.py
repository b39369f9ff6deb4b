"""The wire contract's single homes: the op table (bridge/protocol.py) against the server's
dispatch (Engine methods, lanes) and docs/WIRE.md, its argument checks, and is_loopback."""
from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from bridge.endpoints import is_loopback
from bridge.protocol import (MAX_FPS, MAX_K, MAX_PREVIEW_HEIGHT, MAX_PREVIEW_WIDTH, MAX_TEXT_CHARS, MIN_FPS,
                             MIN_PREVIEW_HEIGHT, MIN_PREVIEW_WIDTH, OPS, ProtocolError, check_fps, check_k,
                             check_request, check_text)

WIRE_MD = Path(__file__).resolve().parents[1] / "docs" / "WIRE.md"


# ---------------------------------------------------------------- is_loopback (one for server and add-on)

@pytest.mark.parametrize("address, loopback", [
    ("tcp://127.0.0.1:5557", True), ("tcp://127.8.0.1:5557", True), ("tcp://127.0.0.1:*", True),
    ("tcp://localhost:5557", True), ("tcp://LocalHost:5557", True),
    ("tcp://[::1]:5557", True), ("tcp://[::1]", True), ("tcp://::1:5557", True),
    ("tcp://[::ffff:127.0.0.1]:5557", True),  # IPv4-mapped loopback (Python < 3.13 says no)
    ("tcp://10.0.0.1;127.0.0.1:5557", True),  # connect from 10.0.0.1 to loopback
    ("ipc:///tmp/t2m.sock", True), ("inproc://t2m", True),
    ("tcp://*:5557", False), ("tcp://0.0.0.0:5557", False), ("tcp://[::]:5557", False),
    ("tcp://192.168.1.4:5557", False), ("tcp://[2001:db8::1]:5557", False), ("tcp://[::ffff:10.0.0.1]:1", False),
    ("tcp://example.com:5557", False), ("tcp://lo:5557", False),
    ("tcp://127.example.com:5557", False),        # a host name that starts like a loopback IP
    ("tcp://127.0.0.1:5557;10.0.0.7:5557", False),  # connect from loopback to another machine
    ("tcp://[::1:5557", False), ("tcp://[::1]x", False), ("tcp://", False),
    ("127.0.0.1:5557", False), ("ws://127.0.0.1:5557", False), ("pgm://eth0;239.192.1.1:5555", False),
])
def test_is_loopback(address, loopback):
    assert is_loopback(address) is loopback


def test_the_server_uses_the_bridges_is_loopback():
    from inference_server import server  # the add-on's side: tests/test_addon_ops.py

    assert server.is_loopback is is_loopback


# ---------------------------------------------------------------- check_request

@pytest.mark.parametrize("op, args, arrays, code, words", [
    ("teleport", {}, {}, "unknown_op", "known: info, search, explain, motion, describe, similar"),
    ("search", {}, {}, "bad_request", "search needs argument(s) text"),
    ("explain", {"text": "a walk"}, {}, "bad_request", "explain needs argument(s) motion_id"),
    ("search", {"text": "a walk", "K": 3}, {}, "bad_request", "search takes no argument(s) K"),
    ("search", {"text": "a walk"}, {"positions": None}, "bad_request", "search takes no array(s) positions"),
    ("search", {"text": "a walk", "k": 0}, {}, "bad_request", "k must be an integer from 1 to 100"),
    ("search", {"text": "a walk", "k": True}, {}, "bad_request", "k must be an integer"),
    ("search", {"text": "a walk", "k": "5"}, {}, "bad_request", "not '5'"),
    ("search", {"text": "   "}, {}, "bad_request", "text is empty"),
    ("search", {"text": "w" * (MAX_TEXT_CHARS + 1)}, {}, "bad_request", "MAX_TEXT_CHARS"),
    ("search", {"text": "\ud800"}, {}, "bad_request", "surrogate"),
    ("search", {"text": ["a walk"]}, {}, "bad_request", "text must be a string, not list"),
    ("motion", {"motion_id": 3}, {}, "bad_request", "motion_id must be a string, not int"),
    ("describe", {"fps": 0.5}, {}, "bad_request", "MIN_FPS"),
    ("describe", {"fps": "30"}, {}, "bad_request", "fps must be a number"),
    ("preview", {"width": 64}, {}, "bad_request", "preview needs argument(s) motion_id"),
    ("preview", {"motion_id": "m1", "width": 31}, {}, "bad_request", "width must be an integer from 32 to 1024"),
    ("preview", {"motion_id": "m1", "size": 128}, {}, "bad_request", "size must be [width, height]"),
    ("preview", {"motion_id": "m1", "size": [128, 8]}, {}, "bad_request", "height must be an integer from 16"),
    ("preview", {"motion_id": "m1", "width": 64.0}, {}, "bad_request", "not 64.0"),
    ("preview", {"motion_id": "m1", "height": 513}, {}, "bad_request", "height must be an integer from 16 to 512"),
    ("preview", {"motion_id": "m1", "height": True}, {}, "bad_request", "MAX_PREVIEW_HEIGHT"),
])
def test_check_request_refuses_with_the_code_and_a_clear_message(op, args, arrays, code, words):
    with pytest.raises(ProtocolError) as caught:
        check_request(op, args, arrays)
    assert caught.value.code == code and words in caught.value.message


def test_check_request_accepts_what_the_table_allows():
    assert check_request("info", {}).name == "info"
    assert check_request("search", {"text": "a walk", "k": MAX_K}) is OPS["search"]
    assert check_request("describe", {"fps": MAX_FPS, "k": 1}, {"positions": None}) is OPS["describe"]
    assert check_request("describe", {"motion_id": "m1"}).arg("k").default == 5
    preview = check_request("preview", {"motion_id": "m1", "width": MIN_PREVIEW_WIDTH, "height": MAX_PREVIEW_HEIGHT})
    assert (preview.arg("width").default, preview.arg("height").default) == (256, 64)


def test_limits_are_inclusive():
    assert check_k(1) == 1 and check_k(MAX_K) == MAX_K
    assert check_fps(MIN_FPS) == MIN_FPS and check_fps(MAX_FPS) == MAX_FPS
    assert check_text("w" * MAX_TEXT_CHARS)
    for bad in (lambda: check_k(MAX_K + 1), lambda: check_fps(MAX_FPS + 0.1), lambda: check_fps(True)):
        with pytest.raises(ProtocolError):
            bad()


# ---------------------------------------------------------------- the table against the server's dispatch

def test_every_op_is_an_engine_method_with_the_tables_parameters():
    from inference_server.engine import Engine

    for op in OPS.values():
        parameters = inspect.signature(getattr(Engine, op.name)).parameters
        names = [name for name in parameters if name != "self"]
        assert sorted(names) == sorted([arg.name for arg in op.args] + [array.name for array in op.arrays]), op.name
        for arg in op.args:
            default = parameters[arg.name].default
            if arg.required:
                assert default is inspect.Parameter.empty, (op.name, arg.name)
            else:
                assert default == arg.default, (op.name, arg.name)


def test_the_server_routes_every_op_exactly_once():
    from inference_server.server import DEFAULT_LANES, INLINE_OPS, LaneConfig, Server, ServerConfigError, check_lanes

    check_lanes(DEFAULT_LANES)
    assert sorted([op for lane in DEFAULT_LANES for op in lane.ops] + list(INLINE_OPS)) == sorted(OPS)
    without_similar = tuple(LaneConfig(lane.name, tuple(op for op in lane.ops if op != "similar"), lane.capacity)
                            for lane in DEFAULT_LANES)
    with pytest.raises(ServerConfigError, match=r"missing \['similar'\]"):
        Server(object(), lanes=without_similar)
    twice = DEFAULT_LANES + (LaneConfig("again", ("motion", "teleport"), capacity=1),)
    with pytest.raises(ServerConfigError, match=r"unknown \['teleport'\], twice \['motion'\]"):
        Server(object(), lanes=twice)


def test_the_table_is_well_formed():
    for op in OPS.values():
        names = [arg.name for arg in op.args] + [array.name for array in op.arrays]
        assert len(names) == len(set(names)), op.name  # args and arrays become one set of keywords
        for arg in op.args:
            assert arg.type in ("string", "integer", "number", "array")
            assert not (arg.required and arg.default is not None), (op.name, arg.name)
            if arg.default is not None:
                assert arg.check(arg.default) == arg.default


# ---------------------------------------------------------------- the table against docs/WIRE.md

def _cells(row: str) -> list[str]:
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def _parse_args(cell: str) -> dict:
    """{name: (type, required, default, (low, high) or None)} from "`k`: integer, default 10, 1-100; ..."."""
    args = {}
    for part in ([] if cell == "-" else cell.split(";")):
        match = re.fullmatch(r"\s*`(\w+)`: (string|integer|number|array)(.*)", part)
        assert match, f"WIRE.md: cannot read the argument {part!r}"
        name, kind, rest = match.groups()
        default = re.search(r"default (\S+?)(?:,|$)", rest)
        limits = re.search(r"(\d+)-(\d+)", rest)
        args[name] = (kind, "required" in rest, int(default.group(1)) if default else None,
                      tuple(int(n) for n in limits.groups()) if limits else None)
    return args


def _parse_arrays(cell: str) -> dict:
    """{name: (dtype, shape text, optional)} from "`relevance` float32 (tokens, 14, windows); ..."."""
    arrays = {}
    for part in ([] if cell == "-" else cell.split(";")):
        match = re.fullmatch(r"\s*`(\w+)` (\w+) \(([^)]*)\)(, optional)?\s*", part)
        assert match, f"WIRE.md: cannot read the array {part!r}"
        name, dtype, shape, optional = match.groups()
        arrays[name] = (dtype, shape, optional is not None)
    return arrays


def wire_md_ops() -> dict:
    section = WIRE_MD.read_text(encoding="utf-8").split("\n## Ops\n", 1)[1].split("\n## ", 1)[0]
    ops = {}
    for row in section.splitlines():
        if not row.startswith("| `"):
            continue
        op, args, arrays, result, reply_arrays = _cells(row)
        always, _, optional = result.partition("; optional ")
        ops[op.strip("`")] = {"args": _parse_args(args), "arrays": _parse_arrays(arrays),
                              "result": tuple(re.findall(r"`(\w+)`", always)),
                              "optional_result": tuple(re.findall(r"`(\w+)`", optional)),
                              "reply_arrays": _parse_arrays(reply_arrays)}
    return ops


def _array_specs(specs) -> dict:
    return {spec.name: (spec.dtype, ", ".join(str(axis) for axis in spec.shape), spec.optional) for spec in specs}


LIMITS = {"k": (1, MAX_K), "text": (1, MAX_TEXT_CHARS), "fps": (MIN_FPS, MAX_FPS),
          "width": (MIN_PREVIEW_WIDTH, MAX_PREVIEW_WIDTH), "height": (MIN_PREVIEW_HEIGHT, MAX_PREVIEW_HEIGHT)}


def test_wire_md_describes_the_table():
    documented = wire_md_ops()
    assert list(documented) == list(OPS)
    for name, op in OPS.items():
        doc = documented[name]
        assert {arg: spec[:3] for arg, spec in doc["args"].items()} == \
            {arg.name: (arg.type, arg.required, arg.default) for arg in op.args}, name
        for arg, (_, _, _, limits) in doc["args"].items():
            if limits is not None:
                assert limits == LIMITS[arg], (name, arg)
        assert doc["arrays"] == _array_specs(op.arrays), name
        assert doc["result"] == op.result, name
        assert doc["optional_result"] == op.optional_result, name
        assert doc["reply_arrays"] == _array_specs(op.reply_arrays), name


def test_wire_md_lists_every_error_code():
    from bridge.protocol import ERROR_CODES

    section = WIRE_MD.read_text(encoding="utf-8").split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    documented = [_cells(row)[0].strip("`") for row in section.splitlines() if row.startswith("| `")]
    assert documented == list(ERROR_CODES)
