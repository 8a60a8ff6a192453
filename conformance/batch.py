"""The generated cases of one property test, sent concurrently (``conformance/suite/test_properties.py``).

Hypothesis draws a property test's cases one after another, and most of them are schemathesis's
deterministic coverage cases: hundreds per chat operation. Against a real gateway each positive case
waits for a GPU (a chat answer about 0.4 s to its first token, an image seconds), so sent one after
another a single operation's cases took minutes. Here the test body only draws and prepares a case
and hands the request and its verdict to :class:`CaseBatch`, a thread pool of the target's
``concurrency`` (every request still asks the run's budgets and RPM pacing first,
``conformance/budget.py``); the plugin (``pytest_pyfunc_call``) opens a batch around each property
test and, when Hypothesis has drawn every case, waits for their verdicts and raises them.

Each verdict is the one the case would have had sent alone: the first failure (in the order the
cases were drawn) is raised as is, several distinct ones as an exception group the report lists
case by case (``plugin.check_failures``); a budget that ran out skips the test. A width of 1 sends
each case inline, as before.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait

import pytest

#: The batch of the property test running in this thread, if any.
_CURRENT: contextvars.ContextVar[CaseBatch | None] = contextvars.ContextVar("conformance_case_batch", default=None)


class CaseBatch:
    """Up to ``width`` cases in flight at once (threads); :meth:`finish` waits for them and raises their
    verdicts (see the module docstring)."""

    def __init__(self, width: int) -> None:
        self.width = max(1, width)
        self._pool = ThreadPoolExecutor(self.width, thread_name_prefix="case") if self.width > 1 else None
        self._futures: list[Future[None]] = []

    def submit(self, send: Callable[[], None]) -> None:
        """Send one case and judge it (``send`` raises its verdict): in the pool, or at once for width 1."""
        if self._pool is None:
            send()
        else:
            self._futures.append(self._pool.submit(send))

    def finish(self) -> None:
        """Wait for every case; raise the first failure in drawing order (several: a ``BaseExceptionGroup``
        of them), else the first skip (a budget that ran out), else return."""
        if self._pool is None:
            return
        try:
            wait(self._futures)
        except BaseException:  # a signal while waiting: the cases not yet sent are dropped
            self.abandon()
            raise
        self._pool.shutdown(wait=True)
        errors = [error for future in self._futures if (error := future.exception()) is not None]
        failures = [error for error in errors if not isinstance(error, pytest.skip.Exception)]
        if len(failures) == 1:
            raise failures[0]
        if failures:
            raise BaseExceptionGroup(f"{len(failures)} generated cases failed", failures)
        if errors:
            raise errors[0]

    def abandon(self) -> None:
        """The test stopped early (a skip, a signal): cases not yet sent are dropped, those in flight end on
        their own (each bounded by the target's ``timeout_s``)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def submit(send: Callable[[], None]) -> None:
    """Send one case through the batch of the running property test; inline when none is open."""
    batch = _CURRENT.get()
    if batch is None:
        send()
    else:
        batch.submit(send)


@contextlib.contextmanager
def opened(width: int) -> Iterator[CaseBatch]:
    """Open a batch of ``width`` for the property test run inside the block; the caller calls
    :meth:`CaseBatch.finish` (or :meth:`CaseBatch.abandon` when the test raised)."""
    batch = CaseBatch(width)
    token = _CURRENT.set(batch)
    try:
        yield batch
    finally:
        _CURRENT.reset(token)
