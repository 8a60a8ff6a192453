"""What one run may spend, and the run's shared stop signal: time, requests, credits and RPM pacing.

A gateway team's CI gives the suite a bounded slot (``--max-duration``), a bounded number of calls
(``--max-requests``) and, for a paid API, a bounded spend (``--max-credits``). Every request the
suite sends to the target first asks :meth:`RunState.reserve`, which adds the call's documented
cost (004 "Credit Costs Summary": tts 14, image 50, i2v by provider 400/520/800, t2v 1000,
cogvideox 800; read from the spec's ``x-credits`` by :func:`call_cost`) and never admits a call
that would pass a budget: it raises :class:`BudgetExhausted` (a pytest skip), so what did not run
is reported as skipped with that reason.

The state lives in a small JSON file guarded by ``fcntl.flock``, so that the processes of a
concurrent run (pytest-xdist workers) share one budget, one pacing slot and one stop reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from spec import api_names, operations
from spec.extensions import credit_cost


class BudgetExhausted(pytest.skip.Exception):  # type: ignore[misc,name-defined]
    """A budget (or an earlier stop: an unreachable target, a signal) ends the run: the test that
    meets it is skipped with this reason (:func:`skip_reason`), and so is every test after it."""


def skip_reason(stopped: str) -> str:
    """The skip reason of a test not run because the run stopped for ``stopped``: a budget's own words
    (``budget: --max-requests 5 reached``), else ``not run: <why>``."""
    return stopped if stopped.startswith("budget:") else f"not run: {stopped}"


@dataclass(frozen=True)
class Limits:
    """A run's budgets: ``deadline`` (epoch s, from ``--max-duration``), ``max_requests`` (calls to the
    target), ``max_credits`` (documented credits of those calls); None is unbounded. ``interval_s`` is
    the least time between two calls (s; from the target's ``rpm`` and ``request_interval_s``)."""

    deadline: float | None = None
    max_duration_s: float | None = None
    max_requests: int | None = None
    max_credits: float | None = None
    interval_s: float = 0.0


class RunState:
    """The budgets' counters and the stop reason, in the file at ``path`` (shared by processes).

    File shape: ``{"requests": int, "credits": float, "next_slot": epoch s, "stopped": str | null}``.
    """

    def __init__(self, path: Path, limits: Limits) -> None:
        self.path = path
        self.limits = limits
        self._mutex = threading.Lock()
        self._opened: tuple[int, int] | None = None
        if not path.exists():
            self._write({"requests": 0, "credits": 0.0, "next_slot": 0.0, "stopped": None})

    def reserve(self, credits: float = 0.0) -> None:
        """Count one call of ``credits`` (documented cost) against the budgets and wait for its pacing slot.

        Raises :class:`BudgetExhausted` when the run is stopped, its time is up, or the call would pass
        ``max_requests`` or ``max_credits`` (then nothing is counted and the run stops with that reason).
        """
        with self._locked() as state:
            reason = state["stopped"] or self._over(state, credits)
            if reason:
                state["stopped"] = reason
                raise BudgetExhausted(skip_reason(reason))
            now = time.time()
            slot = max(now, float(state["next_slot"]))
            state["requests"] += 1
            state["credits"] += credits
            state["next_slot"] = slot + self.limits.interval_s
        if slot > now:
            time.sleep(slot - now)

    def _over(self, state: Mapping[str, Any], credits: float) -> str | None:
        limits = self.limits
        if limits.deadline is not None and time.time() >= limits.deadline:
            return f"budget: --max-duration {limits.max_duration_s:g} s reached"
        if limits.max_requests is not None and state["requests"] + 1 > limits.max_requests:
            return f"budget: --max-requests {limits.max_requests} reached"
        if limits.max_credits is not None and state["credits"] + credits > limits.max_credits:
            return (f"budget: --max-credits {limits.max_credits:g} reached ({state['credits']:g} spent; "
                    f"the next call costs {credits:g})")
        return None

    def check(self) -> None:
        """Raise :class:`BudgetExhausted` when the run is stopped or its time is up (before a test starts)."""
        with self._locked() as state:
            over = state["stopped"] or self._over(state, 0.0)
            state["stopped"] = over
        if over:
            raise BudgetExhausted(skip_reason(over))

    def stop(self, reason: str) -> None:
        """Stop the run with ``reason`` (the first reason given wins)."""
        with self._locked() as state:
            state["stopped"] = state["stopped"] or reason

    def read(self) -> dict[str, Any]:
        """The counters and stop reason as they are now."""
        with self._locked() as state:
            return dict(state)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The state, read and (when changed) written back under this process's mutex (threads: the property
        cases in flight) and ``flock`` on the file (processes). One descriptor per process, the state
        rewritten in place by one ``pwrite`` padded to the file's length: every request passes here, and
        opening, writing a temporary file and renaming it cost milliseconds each time."""
        with self._mutex:
            descriptor = self._descriptor()
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                text = os.pread(descriptor, os.fstat(descriptor).st_size, 0)
                state = json.loads(text)
                before = dict(state)
                try:
                    yield state
                finally:  # also when the block raises (a budget that ran out records its stop reason)
                    if state != before:  # one write of at least the old length: never a torn or shorter file
                        os.pwrite(descriptor, json.dumps(state).encode().ljust(len(text)), 0)
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)

    def _descriptor(self) -> int:
        """This process's descriptor of the state file (opened on first use in each process)."""
        if self._opened is None or self._opened[0] != os.getpid():
            self._opened = (os.getpid(), os.open(self.path, os.O_RDWR))
        return self._opened[1]

    def _write(self, state: Mapping[str, Any]) -> None:
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(state), encoding="utf-8")
        os.replace(temporary, self.path)


@cache
def _priced() -> tuple[tuple[str, re.Pattern[str], Any], ...]:
    """(method, path pattern, operation) of every operation the specs price (``x-credits``)."""
    out = []
    for api in api_names():
        for operation in operations(api):
            if operation.spec.get("x-credits") is not None:
                pattern = re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(operation.path)) + "$")
                out.append((operation.method.upper(), pattern, operation))
    return tuple(out)


def call_cost(method: str, path: str, body: Any) -> float:
    """The documented credits a call of ``method`` ``path`` (a URL path, query ignored) with JSON ``body``
    costs if it succeeds; 0 for an operation the specs do not price. A body whose priced field (the
    video ``provider``) is not one the spec prices counts as the dearest of them."""
    path = path.split("?", 1)[0]
    for priced_method, pattern, operation in _priced():
        if priced_method == method.upper() and pattern.match(path):
            try:
                cost = credit_cost(operation, body if isinstance(body, Mapping) else None)
            except (KeyError, TypeError):
                figure = operation.spec["x-credits"]
                return float(max(int(c["cost"]) for c in figure.get("costs", {"": figure}).values()))
            return float(cost.credits) if cost else 0.0
    return 0.0
