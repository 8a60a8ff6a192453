"""Pipeline stage: rate limits per API key and operation (sliding-window log, ``sim/ratelimit.py``).

- The credits API's per-minute limits come from the spec (``x-rate-limit: {requests, window_s}``,
  004: "Rate limit: 10/min" and the like).
- The gateways name RPM and TPM without figures (001 "Errors": "RPM or TPM exceeded"; the spec's
  ``x-rate-limit: {dimensions: [rpm, tpm]}`` or ``{configurable: true}``): the figures come from
  the configuration (``rate_limits.rpm``/``tpm``, or a key's own ``rpm``/``tpm``, over a minute or
  the key's ``rate_window_s``).

Over a limit: 429 rate_limit_error with Retry-After (s) and the ``x-ratelimit-*`` headers; every
admitted answer carries the ``x-ratelimit-*`` headers too. A refused request uses up nothing, and
the headers of its 429 say so. A request whose own estimated tokens exceed the TPM limit can never
be admitted: OpenAI's "Request too large" 429, without Retry-After and with ``x-should-retry: false``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

from starlette.responses import Response

from mock_server.context import Call, Services
from mock_server.errors import ApiError
from mock_server.sim.ratelimit import Decision, Limit, SlidingWindowLog, retry_after_header
from mock_server.stages.base import Stage
from mock_server.textgen import count_tokens
from spec import Operation
from spec.extensions import rate_limit

#: Window of the gateways' RPM and TPM, in s.
MINUTE_S = 60.0


#: The fields that ask for output room, first found counts: chat's two spellings, then the Responses API's.
ROOM_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def _strings(body: Any) -> list[str]:
    """Every string of a JSON value, nested objects and arrays included (in no particular order)."""
    out: list[str] = []
    pending = [body]
    while pending:
        value = pending.pop()
        kind = type(value)
        if kind is str:
            out.append(value)
        elif kind is dict:
            pending += value.values()
        elif kind is list:
            pending += value
    return out


def estimated_tokens(body: Any) -> int:
    """A request's TPM weight: the tokens of its text plus the output it asks room for (max_tokens).

    The strings are counted joined by spaces, in one pass: a token never spans white space, so the
    count is the sum of the strings' counts, whatever their order.
    """
    room = 0
    if isinstance(body, dict) and not body.keys().isdisjoint(ROOM_FIELDS):
        for name in ROOM_FIELDS:
            if isinstance(body.get(name), (int, float)):
                room = int(body[name])
                break
    return count_tokens(" ".join(_strings(body))) + room


class RateLimits(Stage):
    """Admits or refuses each request under the operation's limits (see the module docstring)."""

    def __init__(self, operation: Operation, services: Services) -> None:
        self.operation_id = operation.operation_id
        spec_limit = rate_limit(operation)
        self.fixed: tuple[Limit, ...] = ()
        self.dimensions: tuple[str, ...] = ()
        if spec_limit is not None and spec_limit.requests is not None:
            self.fixed = (Limit("requests", spec_limit.requests, float(spec_limit.window_s or MINUTE_S)),)
        elif spec_limit is not None:
            self.dimensions = tuple(spec_limit.dimensions) or ("rpm",)
        self._by_key: dict[str | None, tuple[Limit, ...]] = {}  # the configuration is frozen: built once per key
        self.metrics = services.metrics.operation(self.operation_id) if services.metrics else None

    def limits(self, call: Call) -> Sequence[Limit]:
        """The limits that apply to ``call``'s key."""
        if self.fixed:
            return self.fixed
        found = self._by_key.get(call.api_key)
        if found is not None:
            return found
        settings = call.services.config.rate_limits
        entry = call.services.config.key(call.api_key)
        rpm = entry.rpm if entry is not None and entry.rpm else settings.rpm
        tpm = entry.tpm if entry is not None and entry.tpm else settings.tpm
        window_s = entry.rate_window_s if entry is not None and entry.rate_window_s else MINUTE_S
        out = [Limit("requests", rpm, window_s)]
        if "tpm" in self.dimensions:
            out.append(Limit("tokens", tpm, window_s))
        self._by_key[call.api_key] = tuple(out)
        return out

    def check(self, call: Call) -> None:
        """Raises ApiError 429 rate_limit_error when a limit is reached: with Retry-After when waiting
        will let the request in, or :meth:`_too_large` when it never can."""
        limits = self.limits(call)
        weights = {"requests": 1, "tokens": estimated_tokens(call.body) if len(limits) > 1 else 0}
        decisions = call.services.limiter.admit((call.api_key, self.operation_id), limits, weights)
        call.state["rate_limits"] = decisions
        for decision in decisions:
            if not decision.admitted:
                self.refuse(call, decisions, weights)

    def refuse(self, call: Call, decisions: list[Decision], weights: dict[str, int]) -> None:
        """Raises the 429 of ``decisions``, of which one at least refused (counted in the metrics)."""
        if self.metrics is not None:
            for refused in decisions:
                if not refused.admitted:
                    self.metrics.rejected(refused.limit.dimension)
        tokens = weights["tokens"]
        for refused in decisions:
            if SlidingWindowLog.too_large(refused, weights.get(refused.limit.dimension, 1)):
                self._too_large(call, refused, tokens, decisions)
        self._refuse(decisions)

    def _too_large(self, call: Call, refused: Decision, tokens: int, decisions: Sequence[Decision]) -> None:
        """Raises the answer OpenAI gives a request whose own tokens exceed the TPM limit: 429
        ``rate_limit_exceeded``, "Request too large for <model> ... on tokens per min (TPM): Limit X,
        Requested Y" (as the API answers it, e.g. openai-python users' reports). Waiting never lets such
        a request in, so the answer has no Retry-After and carries ``x-should-retry: false``, which the
        official openai and anthropic SDKs obey before their retry-on-429 rule: no pointless retries.
        The ``x-ratelimit-*`` headers are those of the decision: nothing was counted."""
        model = call.body.get("model") if isinstance(call.body, dict) else None
        raise ApiError(429, f"Request too large for {model or self.operation_id} on tokens per min (TPM): "
                            f"Limit {refused.limit.limit}, Requested {tokens}. The input or output tokens must "
                            f"be reduced in order to run successfully.", code="rate_limit_exceeded",
                       headers={"x-should-retry": "false", **headers(decisions)})

    def _refuse(self, decisions: Sequence[Decision]) -> None:
        """Raises the 429 of the refused ``decisions``."""
        refused = [d for d in decisions if not d.admitted]
        what = ", ".join(f"{d.limit.limit} {d.limit.dimension} per {d.limit.window_s:g} s" for d in refused)
        raise ApiError(429, f"Rate limit reached for {self.operation_id}: {what}. Retry after the "
                            f"Retry-After header's seconds.", code="rate_limit_exceeded",
                       headers={"Retry-After": retry_after_header(refused), **headers(decisions)})

    def finish(self, call: Call, response: Response) -> Response:
        """Adds the ``x-ratelimit-*`` headers (appended to the raw list: no other part sets them, and
        ``MutableHeaders`` would rescan the list for each one)."""
        decisions = call.state.get("rate_limits")
        if decisions:
            response.raw_headers += _raw_headers(decisions)
        return response


class SharedRateLimits(RateLimits):
    """:class:`RateLimits` of a fleet: admitted by the limiter in Redis (``fleet/ratelimit.py``), one
    await per request; its StateUnavailable becomes the app's 503."""

    async def before(self, call: Call) -> None:
        """As :meth:`RateLimits.check`, with every replica's admissions counted (awaiting Redis)."""
        limits = self.limits(call)
        weights = {"requests": 1, "tokens": estimated_tokens(call.body) if len(limits) > 1 else 0}
        limiter = call.services.shared_limiter
        assert limiter is not None  # built only for a fleet
        decisions = await limiter.admit((call.api_key, self.operation_id), limits, weights)
        call.state["rate_limits"] = decisions
        for decision in decisions:
            if not decision.admitted:
                self.refuse(call, decisions, weights)


@functools.cache
def _fixed_headers(limit: Limit) -> tuple[bytes, bytes, bytes, bytes]:
    """The raw ``x-ratelimit-limit-<dimension>`` header and value of ``limit``, and the names of its
    ``-remaining-`` and ``-reset-`` headers (the same on every answer: built once per limit)."""
    limit_name, remaining, reset = (f"x-ratelimit-{part}-{limit.dimension}".encode("latin-1")
                                    for part in ("limit", "remaining", "reset"))
    return limit_name, b"%d" % limit.limit, remaining, reset


def _raw_headers(decisions: Sequence[Decision]) -> list[tuple[bytes, bytes]]:
    """``x-ratelimit-limit-<dimension>``, ``-remaining-`` and ``-reset-`` (``<s>s``) of each decision, raw."""
    raw: list[tuple[bytes, bytes]] = []
    for decision in decisions:
        limit_name, limit_value, remaining, reset = _fixed_headers(decision.limit)
        raw += ((limit_name, limit_value), (remaining, b"%d" % decision.remaining),
                (reset, b"%ds" % math.ceil(decision.reset_s)))
    return raw


def headers(decisions: Sequence[Decision]) -> dict[str, str]:
    """``x-ratelimit-limit-<dimension>``, ``-remaining-`` and ``-reset-`` (``<s>s``) per limit."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in _raw_headers(decisions)}


def build(operation: Operation, services: Services) -> Stage | None:
    """A :class:`RateLimits` stage when limits are on and the spec gives the operation one."""
    if not services.config.rate_limits.enabled or not operation.security or rate_limit(operation) is None:
        return None
    return (SharedRateLimits if services.shared_limiter is not None else RateLimits)(operation, services)
