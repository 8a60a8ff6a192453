"""A deadline for Python work in the calling thread, that nothing in that work can outlive.

:func:`deadline` bounds work the mock hands to a library it does not control (jsf, for structured
output: :mod:`mock_server.structured`), whose loops may never end or build without bound on a hostile
schema. One daemon thread (the watchdog) raises :class:`OutOfTime` into each thread whose deadline has
passed (CPython's ``PyThreadState_SetAsyncExc``: the exception is raised at that thread's next bytecode
boundary), and again every :data:`REPEAT_S` s until the thread leaves the block: a raise that lands in a
``__del__`` or a weakref callback is swallowed by CPython ("Exception ignored in ..."), and the next one
reaches the work. A trace function (``sys.settrace``) could not do this: CPython unsets a trace function
that raised, so one swallowed raise leaves the work unbounded (the likely cause of a CI worker's crash
on a schema whose references expand to 2**40 subschemas).

Work in C that never returns to the interpreter (a regular expression's backtracking) is not stopped:
callers keep such work bounded before it starts.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

#: How often the watchdog raises again into a thread still past its deadline, in s.
REPEAT_S = 0.05


class OutOfTime(BaseException):
    """Raised into a thread whose :func:`deadline` has passed (a BaseException, so that no ``except
    Exception`` in the bounded work swallows it); :func:`deadline` turns it into the caller's error."""


@dataclass
class _Entry:
    thread_id: int
    at: float  # time.monotonic() of the deadline
    leaving: bool = False


_LOCK = threading.Lock()
_WAKE = threading.Condition(_LOCK)
_ENTRIES: dict[int, _Entry] = {}
_WATCHER: list[threading.Thread] = []


_SET_ASYNC_EXC = ctypes.pythonapi.PyThreadState_SetAsyncExc
_SET_ASYNC_EXC.argtypes = (ctypes.c_ulong, ctypes.py_object)
_SET_ASYNC_EXC.restype = ctypes.c_int


def _raise_in(thread_id: int, exc: type[BaseException] | None) -> None:
    """Set (``exc``) or clear (``None``) the exception pending in thread ``thread_id`` (call holding _LOCK)."""
    _SET_ASYNC_EXC(thread_id, exc if exc is not None else ctypes.py_object())


def _watch() -> None:
    """The watchdog's loop: raise into each thread past its deadline, every REPEAT_S s; sleep until the
    nearest deadline, or until a block starts."""
    with _LOCK:
        while True:
            now = time.monotonic()
            wait: float | None = None
            for thread_id, entry in list(_ENTRIES.items()):
                if entry.leaving:  # left while a raise reached it first: take back any raise still pending
                    del _ENTRIES[thread_id]
                    _raise_in(thread_id, None)
                    continue
                if now >= entry.at:
                    _raise_in(thread_id, OutOfTime)
                due = max(entry.at - now, 0.0) or REPEAT_S
                wait = due if wait is None else min(wait, due)
            _WAKE.wait(wait)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise :class:`OutOfTime` out of the ``with`` block once it has run ``seconds`` s (wall time).

    One block per thread at a time (nesting raises RuntimeError). On leaving, no exception is pending in
    the thread and none will come: the block is marked as leaving before anything that could receive a
    raise, and the last raise the watchdog may have sent is taken back (or is delivered inside the block's
    exit, which still raises OutOfTime to the caller)."""
    thread_id = threading.get_ident()
    entry = _Entry(thread_id, time.monotonic() + seconds)
    with _LOCK:
        if thread_id in _ENTRIES and not _ENTRIES[thread_id].leaving:
            raise RuntimeError("watchdog.deadline blocks do not nest")
        _ENTRIES[thread_id] = entry
        if not _WATCHER:
            _WATCHER.append(threading.Thread(target=_watch, name="mock-watchdog", daemon=True))
            _WATCHER[0].start()
        _WAKE.notify()
    try:
        yield
    finally:
        entry.leaving = True  # a plain store: no raise can be delivered before it
        with _LOCK:
            if _ENTRIES.get(thread_id) is entry:
                del _ENTRIES[thread_id]
                _raise_in(thread_id, None)


def active() -> int:
    """How many threads are inside a :func:`deadline` block now (0 when all have left)."""
    with _LOCK:
        return len(_ENTRIES)
