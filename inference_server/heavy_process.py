"""The heavy lane's child process: explain, describe and similar run in a process of their own.

Why a process and not a thread: on a small CPU a slow op (a describe of a long clip, an
explain) that runs beside the search lane shares the cores and the GIL with it, and neither
a thread's nice value nor yielding before the op can pre-empt a forward pass already
running. The child has its own interpreter, one torch thread (on CPU) and a process-wide
nice value, and the server holds it (SIGSTOP) while a search batch runs if it is working on
a request, within a bounded share of the time so that slow ops always progress (pause()): a
search has the CPU to itself, whatever the child was in the middle of.

The child loads its own Engine from an EngineRecipe (the same checkpoint and index as the
server's), embeds the caption bank (so the server process does not) and answers one request
at a time. Requests go to it as wire frames (bridge.codec) over a multiprocessing Pipe as raw
bytes (no pickle); it answers [b"ok", reply frames...] or [b"error", {"code", "message"}].
Its readiness (starting, serving, caption bank progress) is in shared memory, so the socket
loop can answer `info` and refuse an early `describe` without asking it. A child that dies
(killed, out of memory) costs the request it was answering an `internal` reply; the next
request starts a new one.
"""
from __future__ import annotations

import json
import logging
import multiprocessing
import os
import signal
import struct
import threading
import time
from dataclasses import dataclass

from bridge.codec import Request, decode_reply, decode_request, encode_reply, encode_request
from bridge.protocol import INTERNAL, ProtocolError

log = logging.getLogger("t2m.server")

STARTING, SERVING, FAILED = 0, 1, 2
_STATE, _BANK_DONE, _BANK_TOTAL, _BANK_READY = range(4)
START_TIMEOUT = 600.0  # seconds for the child to load the model and the index
STOP_WAIT = 5.0  # seconds stop() waits for the request in progress before killing the child
# pause(): the child may be held at most PAUSE_RATIO times as long as it has run since (so under
# back-to-back searches slow ops still get 1 / (1 + PAUSE_RATIO) of the time), saving at most
# MAX_PAUSE_CREDIT seconds of it while idle.
PAUSE_RATIO = 4.0
MAX_PAUSE_CREDIT = 0.5
_CAN_PAUSE = hasattr(signal, "SIGSTOP")
_PROGRESS_EVERY = 0.2  # seconds between caption bank progress updates


@dataclass(frozen=True)
class EngineRecipe:
    """What a child process needs to load the server's Engine again (plain strings)."""
    model: str
    index: str
    device: str = "auto"
    qdrant: tuple[str, str] | None = None

    def build(self):
        from inference_server.cli.serve import build_engine
        return build_engine(self.model, self.index, device=self.device, qdrant=self.qdrant)


class HeavyProcess:
    """A child process answering requests with its own Engine; start() returns at once."""

    def __init__(self, recipe: EngineRecipe, nice: int = 10, threads: int = 1):
        self.recipe, self.nice, self.threads = recipe, nice, threads
        self._context = multiprocessing.get_context("spawn")  # never fork a process with torch threads
        self._status = self._context.Array("q", 4, lock=False)
        self._lock = threading.Lock()  # one request at a time
        self._process = None
        self._connection = None
        self._greeted = False
        self._pause_lock = threading.Lock()
        self._working = False  # a request is with the child (only then is it worth holding)
        self._paused_at: float | None = None  # monotonic time of the SIGSTOP in force, if any
        self._resumed_at = time.monotonic()
        self._credit = MAX_PAUSE_CREDIT

    def start(self) -> None:
        with self._lock:
            self._start()

    def _start(self) -> None:
        parent_end, child_end = self._context.Pipe()
        self._status[_STATE] = STARTING
        self._status[_BANK_READY] = 0
        self._process = self._context.Process(
            target=child_main, args=(self.recipe, child_end, self.nice, self.threads, self._status),
            name="t2m-heavy", daemon=True)
        self._process.start()
        child_end.close()
        self._connection = parent_end
        self._greeted = False

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def pause(self) -> None:
        """Hold the child (SIGSTOP) while something more urgent runs in the server process, a
        search batch: a forward pass already running cannot be pre-empted any other way. Only
        while it works on a request (signals would wake an idle child's threads for nothing);
        skipped when it has used up its pause credit (see PAUSE_RATIO) or where there are no
        job-control signals."""
        if not self._working:
            return
        with self._pause_lock:
            now = time.monotonic()
            self._credit = min(MAX_PAUSE_CREDIT, self._credit + PAUSE_RATIO * (now - self._resumed_at))
            self._resumed_at = now
            if not _CAN_PAUSE or self._paused_at is not None or self._credit <= 0 or not self._signal(signal.SIGSTOP):
                return
            self._paused_at = now

    def resume(self) -> None:
        """Let a child held by pause() go on (SIGCONT)."""
        with self._pause_lock:
            if self._paused_at is None:
                return
            now = time.monotonic()
            self._signal(signal.SIGCONT)
            self._credit -= now - self._paused_at
            self._paused_at, self._resumed_at = None, now

    def _signal(self, number: int) -> bool:
        process = self._process
        if process is None or process.pid is None or not process.is_alive():
            return False
        try:
            os.kill(process.pid, number)
        except OSError:
            return False
        return True

    def not_ready_reason(self, op: str) -> str | None:
        """Why `op` cannot start now in the child (None: it can, or it will once the child is up)."""
        if op != "describe":
            return None
        if self._status[_STATE] == STARTING:
            return "describe is not ready: the worker process is loading the model"
        if not self._status[_BANK_READY] and self._status[_STATE] == SERVING:
            return (f"describe is not ready: the caption bank is being embedded "
                    f"({self._status[_BANK_DONE]} of {self._status[_BANK_TOTAL]} captions)")
        return None

    def run(self, request: Request):
        """(result, arrays) of the request, or the ProtocolError to answer (never raises)."""
        with self._lock:
            try:
                self._ensure_up()
                self._working = True
                send_frames(self._connection, encode_request("heavy", request.op, request.args, request.arrays))
                frames = receive_frames(self._connection)
            except ProtocolError as error:
                self._close()
                return error
            except (EOFError, OSError) as error:
                return self._died(request, error)
            finally:
                self._working = False
            return _outcome(frames)

    def _ensure_up(self) -> None:
        """A child that has loaded its Engine: started (again) if needed, its hello awaited."""
        if self._process is not None and not self._process.is_alive():
            log.warning("the worker process exited (code %s); starting a new one", self._process.exitcode)
            self._close()
        if self._process is None:
            self._start()
        if not self._greeted:
            hello = receive_frames(self._connection, timeout=START_TIMEOUT)
            if hello[0] != b"hello":
                why = bytes(hello[1]).decode("utf-8", "replace") if len(hello) > 1 else "no reason given"
                raise ProtocolError(INTERNAL, f"the worker process could not load the model: {why}")
            self._greeted = True

    def _died(self, request: Request, error: Exception) -> ProtocolError:
        code = self._process.exitcode if self._process is not None else None
        self._close()
        log.error("the worker process ended while answering %s (%s, exit code %s)", request.op,
                  type(error).__name__, code)
        return ProtocolError(INTERNAL, f"the worker process ended while answering {request.op} (exit code "
                                       f"{code}); the next request starts a new one")

    def _close(self) -> None:
        self.resume()  # a held child could not see its pipe close
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._process is not None:
            self._process.join(5)
            if self._process.is_alive():
                self._process.kill()
                self._process.join(5)
            self._process = None

    def stop(self) -> None:
        """End the child: at once when idle; a child stuck on a request is killed (its worker
        thread then answers that request with an `internal` error and returns)."""
        if self._lock.acquire(timeout=STOP_WAIT):
            try:
                self._close()
            finally:
                self._lock.release()
        elif self._process is not None:
            self._process.kill()


def _outcome(frames: list):
    if frames[0] == b"ok":
        reply = decode_reply(frames[1:])
        return reply.result, reply.arrays
    error = json.loads(bytes(frames[1]))
    return ProtocolError(error["code"], error["message"])


# ---------------------------------------------------------------- the child's side

def child_main(recipe: EngineRecipe, connection, nice: int, threads: int, status) -> None:
    """The child process: load the Engine, then answer requests until the pipe closes.

    The server may stop while the child is still loading (a quick SIGTERM after start), so
    a pipe closed under any send or receive is a normal end here, not an error."""
    _lower_process_priority(nice)
    import torch
    torch.set_num_threads(threads)
    logging.basicConfig(format="%(asctime)s t2m serve (worker): %(message)s", level=logging.INFO)
    try:
        _load_and_serve(recipe, connection, status)
    except (EOFError, BrokenPipeError, ConnectionResetError):  # the server's end is closed
        return


def _load_and_serve(recipe: EngineRecipe, connection, status) -> None:
    try:
        engine = recipe.build()
    except Exception as error:
        status[_STATE] = FAILED
        send_frames(connection, [b"failed", f"{type(error).__name__}: {error}".encode()])
        return
    try:
        engine.warm_up()
        threading.Thread(target=_report_bank, args=(engine, status), daemon=True).start()
        status[_STATE] = SERVING
        send_frames(connection, [b"hello"])
        while True:
            send_frames(connection, answer(engine, receive_frames(connection)))
    finally:
        engine.close()


def answer(engine, frames: list) -> list:
    """[b"ok", reply frames...] or [b"error", {"code", "message"} as JSON] (never raises)."""
    from inference_server.server import call_op
    try:
        request = decode_request(frames)
        result, arrays = call_op(engine, request)
        return [b"ok", *encode_reply(None, result, arrays)]
    except ProtocolError as error:
        return _error_frames(error.code, str(error.message))
    except Exception as error:  # the worker never dies on a request
        log.exception("internal error in the worker process")
        return _error_frames(INTERNAL, f"{type(error).__name__}: {error}")


def _error_frames(code: str, message: str) -> list:
    return [b"error", json.dumps({"code": code, "message": message}).encode()]


def _report_bank(engine, status) -> None:
    """Copy the caption bank's progress into shared memory until it is ready."""
    while True:
        ready = engine.ready()["describe"]
        done, total = engine.bank_progress()
        status[_BANK_DONE], status[_BANK_TOTAL] = done, total
        if ready:
            status[_BANK_READY] = 1
            return
        time.sleep(_PROGRESS_EVERY)


def _lower_process_priority(nice: int) -> None:
    if nice > 0 and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass


# ---------------------------------------------------------------- frames over a Pipe

def send_frames(connection, frames) -> None:
    """A list of frames as raw byte messages: the count, then each frame."""
    connection.send_bytes(struct.pack("<I", len(frames)))
    for frame in frames:
        connection.send_bytes(frame)


def receive_frames(connection, timeout: float | None = None) -> list:
    if timeout is not None and not connection.poll(timeout):
        raise ProtocolError(INTERNAL, f"the worker process did not start within {timeout:g} s")
    (count,) = struct.unpack("<I", connection.recv_bytes())
    return [connection.recv_bytes() for _ in range(count)]
