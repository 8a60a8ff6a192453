"""A worker process for work that would hold the event loop: judging a JSON body of many values.

orjson builds the Python objects of a body while holding the GIL (about 100 ns per ``{}``, 65 ns
per integer on the reference machine), so a thread does not help: a 30 MB body of ten million
``{}`` held every other request for about 1.8 s (``benchmarks/RESULTS.md``, "Refusing hostile
input"). A body that may hold that many values (:func:`is_complex`, one ``bytes.count`` pass) is
parsed and validated first in a worker process; the event loop only waits for the verdict.

The worker is a ``python`` running :func:`serve_stdio`, started on first use and spoken to over its stdin
and stdout (a length-prefixed pickle of a module-level function and its arguments, then of its
result). A ``multiprocessing`` pool would re-import the program's ``__main__`` in the worker (an
embedding script without a ``__main__`` guard would then start a second mock), and a fork of a
process running uvloop and worker threads is unsafe. One worker serves one call at a time (the
mock is sized for 2 cores and this is the rare path); it is replaced after
:data:`TASKS_PER_WORKER` calls so that the memory a huge body made it grow (about 20 times the
body's size) goes back to the system. Its first call pays for loading the spec it validates
against (about 1 s), off the event loop too. If the worker cannot be started or dies, the call
raises :class:`WorkerUnavailable` and the caller does the work inline (slower, never wrong).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pickle
import struct
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any, TypeVar

import anyio.to_thread

#: A body shorter than this is parsed inline whatever it holds (at most ~22,000 values: ~3 ms), in bytes.
COMPLEX_FROM_BYTES = 64 * 1024
#: A body with more commas than this (an upper bound of its values, less one) goes to the worker:
#: parsing 200,000 values inline holds the loop for about 20-30 ms.
MAX_INLINE_VALUES = 200_000
#: Calls a worker serves before it is replaced (returning the memory a huge body left allocated).
TASKS_PER_WORKER = 8

T = TypeVar("T")
_HEADER = struct.Struct("!Q")  # the byte length of the pickle that follows


class WorkerUnavailable(RuntimeError):
    """The worker process could not be started, or died during the call (e.g. out of memory)."""


def is_complex(raw: bytes) -> bool:
    """Whether parsing ``raw`` (a JSON body, bytes) could hold the event loop for more than about
    30 ms: longer than :data:`COMPLEX_FROM_BYTES` and more than :data:`MAX_INLINE_VALUES` commas.
    Costs one ``bytes.count`` pass over a long body (about 25 ms at the 32 MiB limit)."""
    return len(raw) > COMPLEX_FROM_BYTES and raw.count(b",") > MAX_INLINE_VALUES


async def run(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` run in the worker process and awaited without holding the event loop (a
    thread waits on the worker's pipe). ``function`` must be a module-level function and ``args``
    and its result picklable. Raises :class:`WorkerUnavailable` when the worker cannot do it, and
    what ``function`` raised otherwise."""
    return await anyio.to_thread.run_sync(_WORKER.call, function, args)


class _Worker:
    """The one worker process of this process, started on first use (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._served = 0

    def call(self, function: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._lock:
            process = self._start()
            request = pickle.dumps((function, args), protocol=pickle.HIGHEST_PROTOCOL)
            try:
                assert process.stdin is not None and process.stdout is not None
                process.stdin.write(_HEADER.pack(len(request)) + request)
                process.stdin.flush()
                ok, value = pickle.loads(_read_frame(process.stdout))
            except (OSError, EOFError, pickle.UnpicklingError, struct.error) as exc:
                self._stop()
                raise WorkerUnavailable(f"the worker process failed: {exc!r}") from exc
            self._served += 1
            if self._served >= TASKS_PER_WORKER:
                self._stop()
        if not ok:
            raise value
        result: T = value
        return result

    def _start(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        root = str(Path(__file__).resolve().parent.parent)  # where mock_server is importable from
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
        try:
            self._process = subprocess.Popen([sys.executable, "-c", _WORKER_MAIN], stdin=subprocess.PIPE,
                                             stdout=subprocess.PIPE, env=env)
        except OSError as exc:
            raise WorkerUnavailable(f"the worker process could not start: {exc}") from exc
        self._served = 0
        return self._process

    def _stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(OSError):
            assert process.stdin is not None
            process.stdin.close()  # the worker's loop ends at end of input
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def shutdown(self) -> None:
        with self._lock:
            self._stop()


def _read_frame(stream: IO[bytes]) -> bytes:
    """One length-prefixed frame of ``stream``. Raises EOFError when the stream ends first."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("the pipe closed")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("the pipe closed mid-frame")
    return data


_WORKER = _Worker()


def shutdown() -> None:
    """Stop the worker process, if one was started (at exit, and in tests)."""
    _WORKER.shutdown()


atexit.register(shutdown)


def _serve(source: IO[bytes], sink: IO[bytes]) -> None:
    """The worker's loop: answer each call frame of ``source`` with a frame ``(ok, value)`` on ``sink``
    until ``source`` ends."""
    while True:
        try:
            function, args = pickle.loads(_read_frame(source))
        except EOFError:
            return
        try:
            answer: tuple[bool, Any] = (True, function(*args))
        except Exception as exc:
            answer = (False, exc)
        try:
            data = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:  # an unpicklable result or exception: say so instead
            data = pickle.dumps((False, RuntimeError(f"unpicklable answer: {exc!r}")))
        sink.write(_HEADER.pack(len(data)) + data)
        sink.flush()


def serve_stdio() -> None:
    """The worker process's main: serve calls from stdin, answers on the stdout it was given (anything
    printed goes to stderr instead)."""
    frames = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    _serve(sys.stdin.buffer, frames)


#: The worker's program (``python -c``; ``-m`` would import the module twice).
_WORKER_MAIN = "from mock_server.offload import serve_stdio; serve_stdio()"
