"""Rate limits: a sliding-window log per (API key, operation, dimension).

Algorithm: **sliding window log**. Each admitted request records (time, weight) in a log per
key; a request of weight ``w`` is admitted when the weights recorded in the last ``window_s``
seconds plus ``w`` do not exceed ``limit``. So any window of ``window_s`` s admits exactly
``limit`` (requests, or tokens for TPM), never more, unlike a fixed window that admits up to twice
the limit across a window edge. A refusal records nothing and says when enough weight leaves the
window (the Retry-After, in s).

Memory is bounded: admissions less than :data:`RESOLUTION` of a window apart share one log entry,
stamped with the latest of them, so a log holds at most about ``1 / RESOLUTION`` entries however
many requests per second arrive (a high limit under load stays small and fast). The merge only ever
holds units longer (by at most ``window_s * RESOLUTION``), never shorter: no window admits more than
``limit``; a Retry-After may be that much later than exact.

Two ways in, the same decisions: :meth:`SlidingWindowLog.admit` takes any limits and weights by
dimension; :meth:`SlidingWindowLog.admit_tokens` is the rate-limit stage's fused path for its usual
limits (RPM, or RPM and TPM, or the credits API's fixed per-endpoint limit): the logs of a key's limits
held together (one lookup), the weights 1 per request and the TPM estimate, and the raw
``x-ratelimit-*`` header values of the decisions built in the same call (:func:`raw_headers`).
``tests/test_fast_paths.py`` proves the two equal for any sequence of requests, keys, weights and times.

This module is compiled to C with mypyc at install where a compiler is there (``setup.py``; the
pure-Python module is the fallback): it runs on every rate-limited request.

Sources: 004 ("Rate limit: 10/min" and the like per endpoint), 001 "Errors" (429 rate_limit_error,
"RPM or TPM exceeded. Respect Retry-After"). The stage (``stages/limits.py``) turns a refusal into
a 429.
"""

from __future__ import annotations

import functools
import math
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from typing import NamedTuple

#: One raw HTTP header: lower-case name and value, latin-1 bytes (as ``Response.raw_headers`` holds them).
RawHeader = tuple[bytes, bytes]

#: Fraction of a window within which admissions share a log entry (60 ms of a one-minute window).
RESOLUTION = 0.001


class Limit(NamedTuple):
    """``limit`` units (requests, or tokens) per ``window_s`` s; ``dimension`` names it (requests, tokens).
    A named tuple: it keys caches on every request, and a tuple hashes in C."""

    dimension: str
    limit: int
    window_s: float


class Decision(NamedTuple):
    """The verdict on one request for one :class:`Limit`.

    ``remaining`` is what is left in the window after this request (units); ``reset_s`` when the
    window is whole again (s); ``retry_after_s`` when a refused request could be admitted (s).
    A named tuple: made twice per rate-limited request, it costs a third of a frozen dataclass.
    """

    limit: Limit
    admitted: bool
    remaining: int
    reset_s: float
    retry_after_s: float


#: ``Decision`` from a tuple of its fields, without the Python-level ``__new__`` of a named tuple
#: (two decisions on every rate-limited request).
_decision = functools.partial(tuple.__new__, Decision)


class _Log:
    """One key's log for one limit: admission times (s) and weights, oldest first, and their running
    total ``used`` (units), so a decision costs O(expired entries), not O(entries in the window).

    An admission within ``granule_s`` (s) of the start of the newest entry joins that entry, which then
    carries the latest time (see the module docstring)."""

    __slots__ = ("granule_s", "newest_start", "times", "used", "weights")

    def __init__(self, granule_s: float) -> None:
        self.granule_s = granule_s
        self.newest_start = -math.inf
        self.times: deque[float] = deque()
        self.weights: deque[int] = deque()
        self.used = 0

    def expire(self, cutoff: float) -> None:
        """Drop the entries logged at or before ``cutoff`` (s)."""
        times, weights = self.times, self.weights
        while times and times[0] <= cutoff:
            times.popleft()
            self.used -= weights.popleft()

    def append(self, now: float, weight: int) -> None:
        """Log ``weight`` units at ``now`` (s), in the newest entry if it started within the granule."""
        self.used += weight
        if self.times and now - self.newest_start < self.granule_s:
            self.times[-1] = now
            self.weights[-1] += weight
            return
        self.newest_start = now
        self.times.append(now)
        self.weights.append(weight)


class SlidingWindowLog:
    """Admission control over :class:`Limit`s per key. Not thread-safe: use it from one event loop,
    where :meth:`admit` runs without awaiting and so is atomic.

    Each log keeps a running total of its weights and at most about ``1 / RESOLUTION`` entries, so
    admitting costs O(1) amortised and memory stays bounded however many requests the window holds.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._logs: dict[tuple[Hashable, str, float], _Log] = {}
        self._groups: dict[Hashable, _Group] = {}  # admit_tokens' logs per key: the very _Log objects of _logs

    def admit(self, key: Hashable, limits: Sequence[Limit], weights: dict[str, int]) -> list[Decision]:
        """Admit a request under every limit, or none: nothing is recorded unless all admit it.

        ``weights`` gives the request's units per dimension (requests: 1; tokens: its estimate).
        Returns one :class:`Decision` per limit, in order; when any refuses, the others' ``remaining``
        and ``reset_s`` are as if the request had not come (nothing of it was counted).
        """
        now = self._clock()
        decisions: list[Decision] = []
        logs: list[tuple[_Log, int]] = []
        admitted = True
        for limit in limits:  # one pass per limit, written out: admit runs on every request
            log_key = (key, limit.dimension, limit.window_s)
            log = self._logs.get(log_key)
            if log is None:
                log = self._logs[log_key] = _Log(limit.window_s * RESOLUTION)
            weight = weights.get(limit.dimension, 1)
            decision = self._decide(log, limit, weight, now)
            admitted = admitted and decision.admitted
            decisions.append(decision)
            logs.append((log, weight))
        if admitted:
            for log, weight in logs:
                log.append(now, weight)
            return decisions
        return self._unspent(decisions, logs)

    def admit_tokens(self, key: Hashable, limits: tuple[Limit, ...],
                     tokens: int) -> tuple[list[Decision], list[RawHeader]]:
        """``admit(key, limits, {"requests": 1, "tokens": tokens})`` and ``raw_headers`` of its decisions, in
        one call: the same decisions, recorded in the same logs (the two ways can be mixed on one key).

        The weight of a ``tokens`` limit is ``tokens`` (the TPM estimate), of any other limit 1. ``limits``
        should be the same tuple object on every call for a key (the stage keeps one per key): the key's
        logs are then found with one lookup; another tuple is looked up again, limit by limit.
        """
        group = self._groups.get(key)
        if group is None or group.limits is not limits:
            group = self._group(key, limits)
        now = self._clock()
        decisions: list[Decision] = []
        admitted = True
        for index, log in enumerate(group.logs):  # admit's loop, with each limit's log and weight at hand
            decision = self._decide(log, limits[index], tokens if group.tokens[index] else 1, now)
            admitted = admitted and decision.admitted
            decisions.append(decision)
        if admitted:
            raw: list[RawHeader] = []
            for index, log in enumerate(group.logs):
                log.append(now, tokens if group.tokens[index] else 1)
                decision = decisions[index]
                limit_name, limit_value, remaining, reset_name = group.names[index]
                raw += ((limit_name, limit_value), (remaining, b"%d" % decision.remaining),
                        (reset_name, b"%ds" % math.ceil(decision.reset_s)))
            return decisions, raw
        decisions = self._unspent(decisions, [(log, tokens if group.tokens[index] else 1)
                                              for index, log in enumerate(group.logs)])
        return decisions, raw_headers(decisions)

    def _decide(self, log: _Log, limit: Limit, weight: int, now: float) -> Decision:
        """``limit``'s decision on ``weight`` more units at ``now`` (s), recording nothing (the entries that
        have left the window are dropped)."""
        times, window_s = log.times, limit.window_s
        if times and times[0] <= now - window_s:
            log.expire(now - window_s)
        if log.used + weight <= limit.limit:
            reset = times[0] + window_s - now if times else window_s
            return _decision((limit, True, limit.limit - log.used - weight, max(reset, 0.0), 0.0))
        return self._refusal(log, limit, weight, now)

    @staticmethod
    def _unspent(decisions: list[Decision], logs: list[tuple[_Log, int]]) -> list[Decision]:
        """The decisions of a refused request, each limit's log and the weight it would have taken at hand:
        nothing was logged, so what a limit that would have admitted reports is what is left without this
        request (the x-ratelimit-* headers of the 429 must agree with what was counted)."""
        return [d if not d.admitted else _decision((d.limit, True, d.remaining + weight,
                                                    d.reset_s if log.times else 0.0, 0.0))
                for d, (log, weight) in zip(decisions, logs, strict=True)]

    def _group(self, key: Hashable, limits: tuple[Limit, ...]) -> _Group:
        """The logs of ``key``'s ``limits`` (made where missing), held together for :meth:`admit_tokens`."""
        logs = []
        for limit in limits:
            log_key = (key, limit.dimension, limit.window_s)
            log = self._logs.get(log_key)
            if log is None:
                log = self._logs[log_key] = _Log(limit.window_s * RESOLUTION)
            logs.append(log)
        group = self._groups[key] = _Group(limits, logs)
        return group

    @staticmethod
    def too_large(decision: Decision, weight: int) -> bool:
        """Whether a refused ``decision`` refused a request of ``weight`` units that no window can ever
        admit (``weight`` over the limit itself): waiting never helps, the request must shrink."""
        return not decision.admitted and weight > decision.limit.limit

    def _refusal(self, log: _Log, limit: Limit, weight: int, now: float) -> Decision:
        reset = log.times[0] + limit.window_s - now if log.times else 0.0
        retry = self._wait(log, log.used + weight - limit.limit, limit.window_s, now)
        return Decision(limit, False, max(limit.limit - log.used, 0), max(reset, 0.0), retry)

    @staticmethod
    def _wait(log: _Log, excess: int, window_s: float, now: float) -> float:
        """Seconds until ``excess`` units have left the window (the window if the request can never fit)."""
        freed = 0
        for stamp, units in zip(log.times, log.weights, strict=True):
            freed += units
            if freed >= excess:
                return max(stamp + window_s - now, 0.0)
        return window_s

    def reset(self) -> None:
        """Forget every log (the control API's reset)."""
        self._logs.clear()
        self._groups.clear()


class _Group:
    """One key's logs for its limits, in the limits' order, with what :meth:`SlidingWindowLog.admit_tokens`
    needs of each limit at hand: whether it counts tokens, and its header names (:func:`header_names`)."""

    __slots__ = ("limits", "logs", "names", "tokens")

    def __init__(self, limits: tuple[Limit, ...], logs: list[_Log]) -> None:
        self.limits = limits
        self.logs = logs
        self.tokens = [limit.dimension == "tokens" for limit in limits]
        self.names = [header_names(limit) for limit in limits]


@functools.cache
def header_names(limit: Limit) -> tuple[bytes, bytes, bytes, bytes]:
    """The raw ``x-ratelimit-limit-<dimension>`` header name and value of ``limit``, and the names of its
    ``-remaining-`` and ``-reset-`` headers (the same on every answer: built once per limit)."""
    limit_name, remaining, reset = [f"x-ratelimit-{part}-{limit.dimension}".encode("latin-1")
                                    for part in ("limit", "remaining", "reset")]
    return limit_name, b"%d" % limit.limit, remaining, reset


def raw_headers(decisions: Sequence[Decision]) -> list[RawHeader]:
    """``x-ratelimit-limit-<dimension>``, ``-remaining-`` (units) and ``-reset-`` (``<s>s``, whole s rounded
    up) of each decision, raw, in the decisions' order (OpenAI's rate-limit headers)."""
    raw: list[RawHeader] = []
    for decision in decisions:
        limit_name, limit_value, remaining, reset = header_names(decision.limit)
        raw += ((limit_name, limit_value), (remaining, b"%d" % decision.remaining),
                (reset, b"%ds" % math.ceil(decision.reset_s)))
    return raw


def retry_after_header(decisions: Sequence[Decision]) -> str:
    """The Retry-After value (whole s, rounded up, at least 1) for the refused decisions."""
    wait = max((d.retry_after_s for d in decisions if not d.admitted), default=0.0)
    return str(max(1, math.ceil(wait)))
