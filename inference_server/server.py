"""The ZeroMQ server: a ROUTER socket in front of an Engine (wire: INTERFACES.md section 2).

Threads:
- the socket loop (the thread calling serve_forever) is the only one touching the ROUTER
  socket. It reads every request, decodes it, answers the malformed ones, `info` and the
  refused ones at once, and hands the others to a lane; it never waits on model work.
- lanes: each a bounded queue with its own worker thread(s): `search` (micro-batched: one
  text-encoder call for every search waiting), `fetch` (motion, preview: cheap reads and
  drawing), `heavy` (explain, describe, similar). A slow describe never delays a search: with
  a worker recipe (as `t2m serve` gives) the heavy lane's requests run in a child process
  (heavy_process.py: its own interpreter, one torch thread, nice 10, its own caption bank),
  held (SIGSTOP, for at most 4/5 of the time) while the search lane answers a batch if it is
  working on a request; without one, in a thread at a higher nice value. Either way the heavy
  lane waits (briefly) for the search lane to be idle before each request. A full lane answers
  `busy` (with a retry hint in the message); `describe` before its caption bank is embedded
  answers `busy` too.
- workers encode their replies and pass them back to the socket loop (a queue plus an inproc
  wake-up socket), which sends them.

Isolation: every request is handled in its own try/except from decoding to sending; one
request's failure (any exception, any byte) makes one error reply to that request and never
touches another. Back-pressure: the ROUTER is ROUTER_MANDATORY, so a reply to a peer whose
pipe is full is kept in that peer's backlog (sent in order as it reads) instead of being
dropped by zmq; while a peer's backlog is long, its new requests are answered `busy`
without doing their work. Nothing is dropped silently: a reply for a peer that has gone
(or whose backlog passed the hard limit) is logged.

Authentication: with `curve_secret` the socket is a CurveZMQ server; with `allowed_clients`
(a folder of client public key files, `t2m keys allow`) pyzmq's ZAP authenticator admits
only those keys (re-read when the folder changes, so a revoke needs no restart).

One log line per request (op, id, milliseconds, ok or error code).
"""
from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import zmq

from bridge.codec import Request, decode_request, encode_error, encode_reply, peek_id
from bridge.endpoints import is_loopback
from bridge.protocol import (
    BAD_REQUEST,
    BUSY,
    DEFAULT_ADDRESS,
    DEFAULT_K,
    INTERNAL,
    MAX_MESSAGE_BYTES,
    OPS,
    RETRY_AFTER_S,
    ProtocolError,
    check_request,
)
from inference_server.errors import T2MError

log = logging.getLogger("t2m.server")

# zmq drops (without a reply) single frames above this; anything between MAX_MESSAGE_BYTES
# and it still gets a too_large reply. It only bounds the memory a hostile peer can use.
_FRAME_HARD_LIMIT = 4 * MAX_MESSAGE_BYTES


@dataclass(frozen=True)
class LaneConfig:
    """A class of ops with its own bounded queue and worker threads."""
    name: str
    ops: tuple[str, ...]
    capacity: int      # requests waiting (beyond it: `busy`)
    workers: int = 1
    max_bytes: int = 512 * 1024 * 1024  # bytes of the requests waiting (beyond it: `busy`)
    # Added to the worker threads' nice value (Linux: per thread, inherited by the threads
    # torch starts from them), so that on a busy CPU the slow ops yield to searches.
    nice: int = 0
    batch: bool = False  # take every waiting request at once (search micro-batching)
    # A lane whose work goes first: before each request, wait (at most YIELD_MAX_WAIT) until
    # that lane has nothing waiting or running, so a search never shares the CPU with a slow op
    # that could have started after it. Bounded, so slow ops still progress under steady search.
    yields_to: str | None = None
    # Run the requests in a child process (heavy_process.py) when the server has a worker
    # recipe: `nice` then applies to the whole child, and while the lane it yields to works,
    # a child busy with a request is held (HeavyProcess.pause, within a bounded share of time).
    child: bool = False


# Ops the socket loop answers itself (cheap, and they must answer while every lane is full).
INLINE_OPS = ("info",)
DEFAULT_LANES = (
    LaneConfig("search", ("search",), capacity=1024, batch=True),
    LaneConfig("fetch", ("motion", "preview"), capacity=512),
    LaneConfig("heavy", ("explain", "describe", "similar"), capacity=256, nice=10, yields_to="search", child=True),
)
YIELD_MAX_WAIT = 0.25  # seconds
# A peer with this many replies it has not read yet gets `busy` for its new requests.
PEER_BACKLOG = 1000
# ...and past this many bytes of unread replies, further replies to it are dropped (logged).
PEER_BACKLOG_BYTES = 256 * 1024 * 1024
_WAKE_ENDPOINT = "inproc://t2m-server-wake-{}"
_ZAP_DOMAIN = "t2m"  # the ZAP domain of our socket: the allow-list applies to it


class ServerConfigError(T2MError):
    """A server option that cannot work (an insecure bind, a bad key file)."""


@dataclass
class _Incoming:
    envelope: list        # routing frames: [identity] (DEALER) or [identity, b""] (REQ)
    request: Request | None
    error: ProtocolError | None
    received: float
    size: int = 0  # bytes of the message

    @property
    def peer(self) -> bytes:
        return self.envelope[0] if self.envelope else b""

    @property
    def request_id(self):
        return self.request.id if self.request is not None else (self.error.request_id if self.error else None)


@dataclass
class _Outgoing:
    item: _Incoming
    frames: list
    outcome: str  # "ok" or "<code>: <message>" for the log


class _Lane:
    """A bounded queue of requests and the worker threads that answer them."""

    def __init__(self, config: LaneConfig, max_batch: int):
        self.config = config
        self.max_batch = max_batch if config.batch else 1
        self._items: collections.deque = collections.deque()
        self._bytes = 0
        self._cond = threading.Condition()
        self._closed = False
        self._running = 0  # requests taken and not yet answered
        self.threads: list[threading.Thread] = []
        self.busy_replies = 0

    def offer(self, item: _Incoming) -> bool:
        with self._cond:
            if (self._closed or len(self._items) >= self.config.capacity
                    or self._bytes + item.size > self.config.max_bytes):
                return False
            self._items.append(item)
            self._bytes += item.size
            self._cond.notify()
            return True

    def take(self) -> list[_Incoming] | None:
        """The next requests (several for a batching lane); None once closed and empty."""
        with self._cond:
            while not self._items and not self._closed:
                self._cond.wait()
            if not self._items:
                return None
            count = min(self.max_batch, len(self._items))
            taken = [self._items.popleft() for _ in range(count)]
            self._bytes -= sum(item.size for item in taken)
            self._running += count
            return taken

    def answered(self, count: int) -> None:
        """`count` requests taken by take() are answered."""
        with self._cond:
            self._running -= count
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Wait until nothing is waiting or running (True), or `timeout` seconds (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._items and not self._running, timeout)

    def close(self) -> list[_Incoming]:
        """Stop accepting; returns the requests still waiting (to be answered by the caller)."""
        with self._cond:
            self._closed = True
            left = list(self._items)
            self._items.clear()
            self._bytes = 0
            self._cond.notify_all()
            return left

    def __len__(self) -> int:
        return len(self._items)


class Server:
    """Serve `engine` on `bind` until stop() (or a signal handler calling it).

    curve_secret: a key file from `t2m keys generate` (server.key_secret) to encrypt with
        CurveZMQ. A bind address that is not loopback requires it, or insecure=True.
    allowed_clients: a folder of client public key files (`t2m keys allow`): with CurveZMQ,
        only those clients are served (pyzmq's ZAP authenticator). None: any client that
        knows the server's public key.
    lanes: the op classes, their queue bounds and worker counts (default DEFAULT_LANES).
    worker_recipe: how to load the engine again in a child process (heavy_process.EngineRecipe),
        for the lanes marked `child`; None: every lane runs in a thread of this process.
    """

    def __init__(self, engine, bind: str = DEFAULT_ADDRESS, curve_secret: str | None = None,
                 insecure: bool = False, max_batch: int = 64, allowed_clients: str | Path | None = None,
                 lanes: tuple[LaneConfig, ...] = DEFAULT_LANES, peer_backlog: int = PEER_BACKLOG,
                 worker_recipe=None):
        check_bind_security(bind, curve_secret, insecure)
        check_lanes(tuple(lanes))
        if allowed_clients is not None and curve_secret is None:
            raise ServerConfigError("an allow-list of client keys needs CurveZMQ: pass --curve-secret too")
        self.engine = engine
        self.bind = bind
        self.max_batch = max_batch
        self.peer_backlog = peer_backlog
        self._curve_keys = load_curve_secret(curve_secret) if curve_secret else None
        self._allowed = check_allowed_clients(allowed_clients) if allowed_clients is not None else None
        self._lane_configs = tuple(lanes)
        self._worker_recipe = worker_recipe
        self._children: dict[str, object] = {}  # op -> the HeavyProcess answering it
        self._stop = threading.Event()
        self.ready = threading.Event()
        self.address: str | None = None  # the endpoint actually bound (resolves a "*" port)
        self.answered = 0  # replies sent
        self.dropped = 0   # replies that could not be delivered (peer gone, backlog over its hard limit)
        self.busy = 0      # `busy` replies sent
        self._done: queue.SimpleQueue = queue.SimpleQueue()  # _Outgoing from the workers
        self._backlogs: dict[bytes, collections.deque] = {}
        self._backlog_bytes: dict[bytes, int] = {}
        self._wake_endpoint = _WAKE_ENDPOINT.format(id(self))

    def stop(self) -> None:
        """Ask the loop to finish; safe from a signal handler or another thread."""
        self._stop.set()

    def stats(self) -> dict:
        return {"answered": self.answered, "busy": self.busy, "dropped": self.dropped,
                "backlogged_peers": len(self._backlogs)}

    # ---------------------------------------------------------------- main loop

    def serve_forever(self) -> None:
        context = zmq.Context()
        socket = wake = authenticator = None
        lanes: dict[str, _Lane] = {}
        try:
            authenticator = self._start_authenticator(context)
            socket = self._open_socket(context)
            wake = context.socket(zmq.PULL)
            wake.setsockopt(zmq.LINGER, 0)
            wake.bind(self._wake_endpoint)
            lanes = self._start_lanes(context)
            self._routes = {op: lane for lane in lanes.values() for op in lane.config.ops}
            warm_up = getattr(self.engine, "warm_up", None)
            if warm_up is not None and "describe" not in self._children:
                warm_up()  # the caption bank, in the background (idempotent)
            log.info("listening on %s%s", self.address, self._security_note())
            self.ready.set()
            poller = zmq.Poller()
            poller.register(socket, zmq.POLLIN)
            poller.register(wake, zmq.POLLIN)
            while not self._stop.is_set():
                events = dict(poller.poll(10 if self._backlogs else 100))
                if wake in events:
                    _drain_wake(wake)
                self._send_done(socket)
                self._flush_backlogs(socket)
                if socket in events:
                    self._serve_once(socket)
                if authenticator is not None:
                    self._reload_allowed(authenticator)
        finally:
            for lane in lanes.values():
                for item in lane.close():  # answered, not dropped: the server is stopping
                    self._queue_error(item, ProtocolError(BUSY, "the server is stopping; retry "
                                                                f"in {RETRY_AFTER_S:g} s"))
            for lane in lanes.values():
                for thread in lane.threads:
                    thread.join(30)
            for child in set(self._children.values()):
                child.stop()
            if socket is not None:
                self._send_done(socket)
                self._flush_backlogs(socket)
                socket.close(linger=0)
            if wake is not None:
                wake.close(linger=0)
            if authenticator is not None:
                authenticator.stop()
            context.term()
            self.ready.clear()

    def _serve_once(self, socket: zmq.Socket) -> None:
        """Read and dispatch every request waiting (up to max_batch; the loop comes back)."""
        for _ in range(self.max_batch):
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            except zmq.ZMQError:
                log.exception("cannot read from the socket")
                return
            try:
                self._dispatch(socket, _parse(frames))
            except Exception:  # a bug of ours; _dispatch answers on its own: this is the last guard
                log.exception("unexpected error while dispatching a request")

    def _dispatch(self, socket: zmq.Socket, item: _Incoming) -> None:
        try:
            if item.request is None:
                self._reply_error(socket, item, item.error)
                return
            op = check_request(item.request.op, item.request.args, item.request.arrays).name
            if op in INLINE_OPS:
                self._send(socket, self._answer(item))
                return
            if len(self._backlogs.get(item.peer, ())) >= self.peer_backlog:
                self._reply_busy(socket, item, f"{len(self._backlogs[item.peer])} replies to this client are "
                                               "waiting to be read")
                return
            reason = self._not_ready(op)
            if reason is not None:
                self._reply_busy(socket, item, reason)
                return
            lane = self._routes[op]
            if not lane.offer(item):
                lane.busy_replies += 1
                self._reply_busy(socket, item, f"the {lane.config.name} queue is full "
                                               f"({len(lane)} requests waiting)")
        except ProtocolError as error:
            self._reply_error(socket, item, error)
        except Exception as error:
            log.exception("internal error while dispatching %s", item.request_id)
            self._reply_error(socket, item, ProtocolError(INTERNAL, f"{type(error).__name__}: {error}"))

    # ---------------------------------------------------------------- lanes (worker threads)

    def _start_lanes(self, context: zmq.Context) -> dict[str, _Lane]:
        lanes = {config.name: _Lane(config, self.max_batch) for config in self._lane_configs}
        children = {name: self._start_child(lane.config) for name, lane in lanes.items()}
        for lane in lanes.values():
            first = lanes[lane.config.yields_to] if lane.config.yields_to else None
            # the child processes of the lanes yielding to this one: held while it works
            holds = [children[other.config.name] for other in lanes.values()
                     if other.config.yields_to == lane.config.name and children[other.config.name] is not None]
            for number in range(lane.config.workers):
                thread = threading.Thread(target=self._work, args=(context, lane, first, children[lane.config.name],
                                                                   holds),
                                          name=f"t2m-{lane.config.name}-{number}", daemon=True)
                lane.threads.append(thread)
                thread.start()
        return lanes

    def _start_child(self, config: LaneConfig):
        """The child process for a `child` lane (started now, loading in the background), or None."""
        if not config.child or self._worker_recipe is None:
            return None
        from inference_server.heavy_process import HeavyProcess
        child = HeavyProcess(self._worker_recipe, nice=config.nice)
        child.start()
        self._children.update({op: child for op in config.ops})
        return child

    def _not_ready(self, op: str) -> str | None:
        child = self._children.get(op)
        return child.not_ready_reason(op) if child is not None else _not_ready(self.engine, op)

    def _work(self, context: zmq.Context, lane: _Lane, first: _Lane | None, child=None, holds=()) -> None:
        """A lane's worker; `first`: the lane it yields to (see LaneConfig.yields_to); `child`:
        the HeavyProcess that answers this lane's requests (None: this thread does); `holds`:
        child processes paused while this worker answers (those of the lanes yielding to it)."""
        if child is None:
            _lower_priority(lane.config.nice)
        wake = context.socket(zmq.PUSH)
        wake.setsockopt(zmq.LINGER, 0)
        wake.setsockopt(zmq.SNDHWM, 1)  # one pending wake-up is enough
        wake.connect(self._wake_endpoint)
        try:
            while True:
                items = lane.take()
                if items is None:
                    return
                if first is not None:
                    first.wait_idle(YIELD_MAX_WAIT)
                for held in holds:
                    held.pause()
                try:
                    if child is not None:
                        outgoing = [self._answer_in_child(child, item) for item in items]
                    elif lane.config.batch and len(items) > 1:
                        outgoing = self._answer_searches(items)
                    else:
                        outgoing = [self._answer(item) for item in items]
                except Exception as error:  # the last guard: still one reply each
                    log.exception("unexpected error in the %s lane", lane.config.name)
                    outgoing = [self._error_out(item, ProtocolError(INTERNAL, f"{type(error).__name__}: {error}"))
                                for item in items]
                finally:
                    for held in holds:
                        held.resume()
                for out in outgoing:
                    self._done.put(out)
                lane.answered(len(items))
                try:
                    wake.send(b"", zmq.NOBLOCK)
                except zmq.Again:
                    pass  # a wake-up is already pending; the loop also looks every 100 ms
        finally:
            wake.close(linger=0)

    def _answer(self, item: _Incoming) -> _Outgoing:
        """Run one request and encode its reply (never raises)."""
        try:
            result, arrays = call_op(self.engine, item.request)
            if item.request.op == "info":
                for op, child in self._children.items():
                    result["ready"][op] = child.not_ready_reason(op) is None
        except ProtocolError as error:
            return self._error_out(item, error)
        except Exception as error:  # the server never dies on a request
            log.exception("internal error in %s (id %r)", item.request.op, item.request.id)
            return self._error_out(item, ProtocolError(INTERNAL, f"{type(error).__name__}: {error}"))
        return self._ok_out(item, result, arrays)

    def _answer_in_child(self, child, item: _Incoming) -> _Outgoing:
        outcome = child.run(item.request)
        if isinstance(outcome, ProtocolError):
            return self._error_out(item, outcome)
        return self._ok_out(item, *outcome)

    def _answer_searches(self, items: list[_Incoming]) -> list[_Outgoing]:
        queries = [(item.request.args["text"], item.request.args.get("k", DEFAULT_K)) for item in items]
        try:
            outcomes = self.engine.search_many(queries)
        except Exception:
            # A whole-batch failure: answer each search on its own, so that one query that
            # breaks the batch cannot take the others down with it.
            log.exception("batched search failed; answering its %d queries one by one", len(items))
            return [self._answer(item) for item in items]
        return [self._error_out(item, outcome) if isinstance(outcome, ProtocolError)
                else self._ok_out(item, *outcome) for item, outcome in zip(items, outcomes)]

    def _ok_out(self, item: _Incoming, result: dict, arrays: dict) -> _Outgoing:
        try:
            return _Outgoing(item, encode_reply(item.request.id, result, arrays), "ok")
        except Exception as error:  # e.g. a NaN score: still one reply, an error one
            log.exception("cannot encode the reply to %s", item.request.op)
            return self._error_out(item, ProtocolError(INTERNAL, f"cannot encode the reply: {error}"))

    def _error_out(self, item: _Incoming, error: ProtocolError) -> _Outgoing:
        request_id = item.request_id
        if not isinstance(request_id, str):
            request_id = None
        message = error.message if isinstance(error.message, str) else str(error.message)
        try:
            frames = encode_error(request_id, error.code, message)
        except Exception:  # cannot happen with the ASCII fallback of the codec; never give up
            frames = encode_error(None, error.code, message.encode("ascii", "replace").decode("ascii"))
        return _Outgoing(item, frames, f"{error.code}: {message[:200]}")

    # ---------------------------------------------------------------- sending

    def _queue_error(self, item: _Incoming, error: ProtocolError) -> None:
        self._done.put(self._error_out(item, error))

    def _send_done(self, socket: zmq.Socket) -> None:
        while True:
            try:
                out = self._done.get_nowait()
            except queue.Empty:
                return
            self._send(socket, out)

    def _reply_error(self, socket: zmq.Socket, item: _Incoming, error: ProtocolError) -> None:
        self._send(socket, self._error_out(item, error))

    def _reply_busy(self, socket: zmq.Socket, item: _Incoming, why: str) -> None:
        self.busy += 1
        self._reply_error(socket, item, ProtocolError(BUSY, f"server busy: {why}; retry in {RETRY_AFTER_S:g} s"))

    def _send(self, socket: zmq.Socket, out: _Outgoing) -> None:
        """Send now, or keep in the peer's backlog (in order) when its pipe is full."""
        peer = out.item.peer
        backlog = self._backlogs.get(peer)
        if backlog is not None:
            self._keep(peer, out)
            return
        if self._try_send(socket, out) is False:
            self._keep(peer, out)

    def _try_send(self, socket: zmq.Socket, out: _Outgoing) -> bool | None:
        """True: sent; False: the peer's pipe is full; None: undeliverable (logged)."""
        try:
            socket.send_multipart(out.item.envelope + out.frames, flags=zmq.NOBLOCK, copy=False)
        except zmq.Again:
            return False
        except zmq.ZMQError as error:  # EHOSTUNREACH: the peer disconnected
            self.dropped += 1
            log.warning("%s id=%r: reply not delivered (%s)", _op(out.item), out.item.request_id, error)
            return None
        self._log(out)
        return True

    def _keep(self, peer: bytes, out: _Outgoing) -> None:
        size = sum(len(memoryview(frame)) for frame in out.frames)
        total = self._backlog_bytes.get(peer, 0) + size
        if total > PEER_BACKLOG_BYTES:
            self.dropped += 1
            log.warning("%s id=%r: reply dropped: the client has %d bytes of replies it does not read",
                        _op(out.item), out.item.request_id, total - size)
            return
        self._backlogs.setdefault(peer, collections.deque()).append(out)
        self._backlog_bytes[peer] = total

    def _flush_backlogs(self, socket: zmq.Socket) -> None:
        for peer in list(self._backlogs):
            backlog = self._backlogs[peer]
            while backlog:
                sent = self._try_send(socket, backlog[0])
                if sent is False:
                    break
                out = backlog.popleft()
                self._backlog_bytes[peer] -= sum(len(memoryview(frame)) for frame in out.frames)
                if sent is None:  # the peer is gone: the rest cannot be delivered either
                    self.dropped += len(backlog)
                    backlog.clear()
            if not backlog:
                del self._backlogs[peer]
                self._backlog_bytes.pop(peer, None)

    def _log(self, out: _Outgoing) -> None:
        self.answered += 1
        milliseconds = (time.perf_counter() - out.item.received) * 1000
        log.info("%s id=%r %.1f ms %s", _op(out.item), out.item.request_id, milliseconds, out.outcome)

    # ---------------------------------------------------------------- socket and keys

    def _open_socket(self, context: zmq.Context) -> zmq.Socket:
        socket = context.socket(zmq.ROUTER)
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.MAXMSGSIZE, _FRAME_HARD_LIMIT)
        # A reply to a peer whose pipe is full raises EAGAIN (kept, sent later) instead of
        # being dropped by zmq without a word; a reply to a gone peer raises EHOSTUNREACH.
        socket.setsockopt(zmq.ROUTER_MANDATORY, 1)
        if self._curve_keys is not None:
            socket.curve_publickey, socket.curve_secretkey = self._curve_keys
            socket.curve_server = True
            if self._allowed is not None:
                socket.zap_domain = _ZAP_DOMAIN.encode()
        try:
            socket.bind(self.bind)
        except zmq.ZMQError as error:
            socket.close(linger=0)
            raise ServerConfigError(f"cannot bind {self.bind}: {error}") from None
        self.address = socket.getsockopt_string(zmq.LAST_ENDPOINT)
        return socket

    def _start_authenticator(self, context: zmq.Context):
        if self._allowed is None:
            return None
        from zmq.auth.thread import ThreadAuthenticator

        authenticator = ThreadAuthenticator(context, log=logging.getLogger("t2m.server.auth"))
        authenticator.start()
        self._allowed_stamp = None
        self._reload_allowed(authenticator, force=True)
        return authenticator

    def _reload_allowed(self, authenticator, force: bool = False) -> None:
        """(Re)load the allow-list when its folder changed (a revoke applies without a restart)."""
        now = time.monotonic()
        if not force and now - getattr(self, "_allowed_checked", 0.0) < 1.0:
            return
        self._allowed_checked = now
        stamp = _folder_stamp(self._allowed)
        if force or stamp != self._allowed_stamp:
            self._allowed_stamp = stamp
            authenticator.configure_curve(domain=_ZAP_DOMAIN, location=str(self._allowed))
            log.info("client allow-list %s: %d key(s)", self._allowed, len(list(self._allowed.glob("*.key"))))

    def _security_note(self) -> str:
        if self._curve_keys is None:
            return ""
        if self._allowed is None:
            if not is_loopback(self.bind):
                log.warning("CurveZMQ without an allow-list: any client that knows the server's public key is "
                            "served; pass --allowed-clients DIR (t2m keys allow)")
            return " (CurveZMQ, any client key)"
        return f" (CurveZMQ, clients allowed by {self._allowed})"


def _lower_priority(nice: int) -> None:
    """Raise this thread's nice value by `nice` (Linux; elsewhere a no-op). Never lowers it."""
    if nice <= 0 or not hasattr(os, "setpriority"):
        return
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))
    except (OSError, AttributeError):
        pass


def _drain_wake(wake: zmq.Socket) -> None:
    while True:
        try:
            wake.recv(zmq.NOBLOCK)
        except zmq.Again:
            return


def _folder_stamp(folder: Path):
    try:
        return tuple(sorted((path.name, path.stat().st_mtime_ns, path.stat().st_size)
                            for path in folder.glob("*.key")))
    except OSError:
        return None


def _op(item: _Incoming) -> str:
    op = item.request.op if item.request is not None else "?"
    return op if len(op) <= 40 else op[:40] + "..."


def _not_ready(engine, op: str) -> str | None:
    check = getattr(engine, "not_ready_reason", None)
    return check(op) if check is not None else None


def _parse(frames: list) -> _Incoming:
    """Split the routing envelope from the message and decode it (never raises)."""
    received = time.perf_counter()
    size = sum(len(frame) for frame in frames)
    # A REQ peer puts an empty delimiter frame between its identity and the message.
    is_req = len(frames) >= 2 and len(frames[1]) == 0
    split = 2 if is_req else 1
    envelope = [frame.bytes for frame in frames[:split]]
    body = frames[split:]
    try:
        return _Incoming(envelope, decode_request(body), None, received, size)
    except ProtocolError as error:
        if error.request_id is None:
            error.request_id = _peek(body)
        return _Incoming(envelope, None, error, received, size)
    except Exception as error:
        return _Incoming(envelope, None, ProtocolError(BAD_REQUEST, f"cannot decode: {type(error).__name__}",
                                                       _peek(body)), received, size)


def _peek(body) -> str | None:
    try:
        return peek_id(body)
    except Exception:
        return None


def call_op(engine, request: Request) -> tuple[dict, dict]:
    """Check the request against the op table (bridge.protocol.OPS) and call the engine's
    method of the same name with the arguments and arrays the request carries."""
    op = check_request(request.op, request.args, request.arrays)
    return getattr(engine, op.name)(**request.args, **request.arrays)


def check_lanes(lanes: tuple[LaneConfig, ...]) -> None:
    """Every op of the table has exactly one home: answered inline or by one lane."""
    routed = [op for lane in lanes for op in lane.ops] + list(INLINE_OPS)
    unknown = sorted(set(routed) - set(OPS))
    twice = sorted({op for op in routed if routed.count(op) > 1})
    unrouted = [op for op in OPS if op not in routed]
    if unknown or twice or unrouted:
        raise ServerConfigError(f"the lanes must route each op once: unknown {unknown}, twice {twice}, "
                                f"missing {unrouted}")
    names = [lane.name for lane in lanes]
    for lane in lanes:
        if lane.yields_to is not None and (lane.yields_to == lane.name or lane.yields_to not in names):
            raise ServerConfigError(f"lane {lane.name!r} yields to {lane.yields_to!r}, which is not another lane")


# ---------------------------------------------------------------- security

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


def check_allowed_clients(folder) -> Path:
    """The allow-list folder of client public keys (`t2m keys allow`); ServerConfigError if unusable."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ServerConfigError(f"the client allow-list {folder} is not a folder (create it with "
                                "`t2m keys allow CLIENT.key --allowed DIR`)")
    return folder
