"""bridge/: codec validation and the client's ids, timeouts, retries and stale-reply handling.

The client is exercised against raw ROUTER sockets on loopback that play a flaky server
(drop the first request, answer twice, answer garbage); the full server is in test_server.py.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import zmq

from bridge.client import Client, read_public_key
from bridge.codec import decode_reply, decode_request, encode_error, encode_reply, encode_request, peek_id
from bridge.protocol import (
    DTYPES,
    MAX_HEADER_BYTES,
    MAX_MESSAGE_BYTES,
    UNREACHABLE,
    ProtocolError,
    RemoteError,
    ServerUnreachable,
)

pytestmark = pytest.mark.timeout(60)


def header(**fields) -> bytes:
    return json.dumps({"v": 1, "id": "r1", "op": "info", **fields}).encode()


def refused(frames) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        decode_request(frames)
    return caught.value


# ---------------------------------------------------------------- codec

@pytest.mark.parametrize("dtype", sorted(DTYPES))
def test_every_whitelisted_dtype_round_trips(dtype):
    array = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
    request = decode_request([bytes(f) for f in encode_request("id1", "describe", {"fps": 20}, {"x": array})])
    assert request.arrays["x"].dtype == np.dtype(dtype)
    np.testing.assert_array_equal(request.arrays["x"], array)
    assert request.arrays["x"].flags.writeable


def test_big_endian_and_strided_arrays_are_sent_little_endian_c_order():
    array = np.arange(12, dtype=">f4").reshape(3, 4).T  # big endian, not C-contiguous
    frames = encode_request("id1", "x", None, {"a": array, "scalar": np.array(7, dtype=np.int64)})
    assert bytes(frames[1]) == np.ascontiguousarray(array, dtype="<f4").tobytes()
    decoded = decode_request([bytes(f) for f in frames])
    np.testing.assert_array_equal(decoded.arrays["a"], array)
    assert decoded.arrays["scalar"].shape == () and decoded.arrays["scalar"] == 7


def test_encoder_refuses_dtypes_outside_the_whitelist():
    with pytest.raises(ProtocolError, match="complex64"):
        encode_request("id1", "x", None, {"a": np.zeros(2, np.complex64)})


def test_reply_round_trip_and_error_unwrap():
    frames = encode_reply("id1", {"n": 1}, {"p": np.ones((2, 22, 3), np.float32)})
    reply = decode_reply([bytes(f) for f in frames])
    result, arrays = reply.unwrap()
    assert result == {"n": 1} and arrays["p"].shape == (2, 22, 3)
    error = decode_reply(encode_error(None, "not_found", "no motion 'x'"))
    assert error.id is None and not error.ok
    with pytest.raises(RemoteError) as caught:
        error.unwrap()
    assert caught.value.code == "not_found" and "no motion" in caught.value.message


@pytest.mark.parametrize("frames, code, readable_id", [
    ([], "bad_request", False),
    ([b"\xff\xfe not utf-8"], "bad_request", False),
    ([b"not json"], "bad_request", False),
    ([b"[1, 2]"], "bad_request", False),
    ([json.dumps({"v": 1, "op": "info"}).encode()], "bad_request", False),
    ([json.dumps({"v": 1, "id": 5, "op": "info"}).encode()], "bad_request", False),
    ([header(v=2)], "unsupported_version", True),
    ([header(v=True)], "unsupported_version", True),
    ([json.dumps({"id": "r1", "op": "info"}).encode()], "bad_request", True),
    ([header(op=7)], "bad_request", True),
    ([header(args=[1])], "bad_request", True),
    ([header(arrays=[{"name": "a", "dtype": "float32", "shape": [2]}]), b"123"], "bad_request", True),
    ([header(arrays=[{"name": "a", "dtype": "float32", "shape": [2]}])], "bad_request", True),
    ([header(), b"unannounced frame"], "bad_request", True),
    ([header(arrays=[{"name": "a", "dtype": "complex64", "shape": [1]}]), b"12345678"], "bad_request", True),
    ([header(arrays=[{"name": "a", "dtype": "float32", "shape": [-1]}]), b""], "bad_request", True),
    ([header(arrays=[{"name": "a", "dtype": "float32", "shape": [True]}]), b"1234"], "bad_request", True),
    ([header(arrays=["a"]), b""], "bad_request", True),
    ([header(arrays=[{"name": "a", "dtype": "uint8", "shape": [1]}] * 2), b"1", b"2"], "bad_request", True),
])
def test_malformed_requests_are_refused_with_the_right_code(frames, code, readable_id):
    error = refused(frames)
    assert error.code == code
    assert (error.request_id == "r1") == readable_id


def test_size_limits_are_checked_before_parsing_and_keep_the_id():
    big_text = header(args={"text": "a" * (MAX_HEADER_BYTES + 1)})
    error = refused([big_text])
    assert error.code == "too_large" and error.request_id == "r1"
    huge_frames = [header(arrays=[{"name": "a", "dtype": "uint8", "shape": [MAX_MESSAGE_BYTES]}]),
                   bytes(MAX_MESSAGE_BYTES)]
    error = refused(huge_frames)
    assert error.code == "too_large" and error.request_id == "r1"


def test_peek_id_reads_only_well_formed_ids():
    assert peek_id([b'{"v":1,"id":"abc123","op":"x"']) == "abc123"
    assert peek_id([b'{"v":1,"op":"x"}']) is None
    assert peek_id([]) is None


# ---------------------------------------------------------------- client against raw sockets

class RawRouter:
    """A ROUTER on a free loopback port whose behaviour a test scripts per request."""

    def __init__(self, behave):
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.ROUTER)
        self.socket.setsockopt(zmq.LINGER, 0)
        self.port = self.socket.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.behave = behave
        self.seen: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def _loop(self):
        while not self._stop.is_set():
            if not self.socket.poll(20):
                continue
            identity, *frames = self.socket.recv_multipart()
            request = decode_request(frames)
            self.seen.append(request.id)
            for reply in self.behave(request, len(self.seen)):
                self.socket.send_multipart([identity, *reply])

    def close(self):
        self._stop.set()
        self._thread.join()
        self.socket.close()
        self.context.term()


def echo(request, _count):
    return [encode_reply(request.id, {"op": request.op, "args": request.args}, request.arrays)]


@pytest.fixture
def router_factory():
    routers = []

    def make(behave):
        routers.append(RawRouter(behave))
        return routers[-1]

    yield make
    for router in routers:
        router.close()


def test_call_round_trips_args_and_arrays(router_factory):
    router = router_factory(echo)
    positions = np.random.default_rng(0).standard_normal((40, 22, 3)).astype(np.float32)
    with Client(router.address, timeout=2) as client:
        result, arrays = client.call("describe", {"fps": 20.0}, {"positions": positions})
    assert result == {"op": "describe", "args": {"fps": 20.0}}
    np.testing.assert_array_equal(arrays["positions"], positions)
    assert len(router.seen[0]) == 32 and int(router.seen[0], 16) >= 0  # uuid4 hex


def test_lazy_pirate_resends_after_a_lost_reply(router_factory):
    def drop_first(request, count):
        return [] if count == 1 else echo(request, count)

    router = router_factory(drop_first)
    with Client(router.address, timeout=0.3, retries=2) as client:
        result, _ = client.call("info")
    assert result["op"] == "info"
    assert router.seen[0] == router.seen[1]  # the same request, sent again on a fresh socket


def test_unreachable_server_raises_a_clear_error():
    with Client("tcp://127.0.0.1:9", timeout=0.2, retries=1) as client:
        started = time.monotonic()
        with pytest.raises(ServerUnreachable, match=r"cannot reach the server at tcp://127\.0\.0\.1:9 within 0\.2 s"):
            client.call("info")
        assert 0.35 < time.monotonic() - started < 2.0
        assert client.pending == []


def test_remote_error_reply_raises_remote_error(router_factory):
    router = router_factory(lambda request, _: [encode_error(request.id, "not_found", "no motion 'zz'")])
    with Client(router.address, timeout=2) as client:
        with pytest.raises(RemoteError) as caught:
            client.call("motion", {"motion_id": "zz"})
    assert caught.value.code == "not_found"


def test_poll_matches_replies_by_id_and_drops_stale_and_duplicate_ones(router_factory):
    def twice_plus_stranger(request, count):
        reply = echo(request, count)[0]
        return [encode_reply("someone-else", {}), reply, reply, [b"garbage"]]

    router = router_factory(twice_plus_stranger)
    with Client(router.address, timeout=2) as client:
        ids = [client.send("search", {"text": f"query {i}"}) for i in range(3)]
        answered = []
        deadline = time.monotonic() + 3
        while len(answered) < 3 and time.monotonic() < deadline:
            answered += client.poll(0.05)
        time.sleep(0.1)
        answered += client.poll(0)
    assert sorted(rid for rid, _ in answered) == sorted(ids)
    for request_id, reply in answered:
        assert reply.id == request_id and reply.ok
        assert reply.result["args"]["text"] == f"query {ids.index(request_id)}"


def test_poll_answers_an_unanswerable_request_itself():
    with Client("tcp://127.0.0.1:9", timeout=0.1, retries=1) as client:
        request_id = client.send("info")
        replies = []
        deadline = time.monotonic() + 2
        while not replies and time.monotonic() < deadline:
            replies = client.poll(0.05)
    assert [rid for rid, _ in replies] == [request_id]
    reply = replies[0][1]
    assert not reply.ok and reply.error_code == UNREACHABLE and "cannot reach" in reply.error_message


def test_replies_for_other_ids_received_during_call_reach_poll(router_factory):
    router = router_factory(echo)
    with Client(router.address, timeout=2) as client:
        early = client.send("info", {"n": 1})
        time.sleep(0.2)  # its reply is waiting when call() starts reading
        result, _ = client.call("info", {"n": 2})
        assert result["args"] == {"n": 2}
        assert [rid for rid, _ in client.poll(0.5)] == [early]


def test_closed_client_says_so():
    client = Client("tcp://127.0.0.1:9")
    client.close()
    client.close()  # twice is harmless
    with pytest.raises(RuntimeError, match="closed"):
        client.send("info")


def test_client_refuses_oversized_requests_locally():
    with Client("tcp://127.0.0.1:9", timeout=0.1) as client:
        with pytest.raises(ProtocolError) as caught:
            client.send("search", {"text": "x" * (MAX_HEADER_BYTES + 1)})
        assert caught.value.code == "too_large" and client.pending == []


def test_curve_client_talks_to_a_curve_router(tmp_path):
    import zmq.auth

    public_file, secret_file = zmq.auth.create_certificates(str(tmp_path), "server")
    public, secret = zmq.auth.load_certificate(secret_file)
    assert read_public_key(public_file) == public
    context = zmq.Context()
    router = context.socket(zmq.ROUTER)
    router.curve_publickey, router.curve_secretkey, router.curve_server = public, secret, True
    port = router.bind_to_random_port("tcp://127.0.0.1")
    try:
        with Client(f"tcp://127.0.0.1:{port}", timeout=2, server_key=public.decode()) as client:
            request_id = client.send("info")
            assert router.poll(3000)
            identity, *frames = router.recv_multipart()
            router.send_multipart([identity, *encode_reply(decode_request(frames).id, {"secure": True})])
            assert client.poll(3)[0][0] == request_id
        wrong_key = zmq.curve_keypair()[0]
        with Client(f"tcp://127.0.0.1:{port}", timeout=0.3, retries=0, server_key=wrong_key) as client:
            with pytest.raises(ServerUnreachable):
                client.call("info")  # the handshake fails: nothing reaches the server
    finally:
        router.close(linger=0)
        context.term()


def test_bridge_imports_without_torch_or_the_server():
    code = ("import sys, bridge.client, bridge.codec, bridge.protocol; "
            "bad = [m for m in ('torch', 'inference_server', 'bpy') if m in sys.modules]; "
            "sys.exit(1 if bad else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0
