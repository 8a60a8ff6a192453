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

In process, a request is judged in one call of the limiter (``SlidingWindowLog.admit_tokens``: the TPM
estimate given once, the key's logs held together, the headers' values built with the decisions); a
fleet's limits are awaited from Redis (:class:`SharedRateLimits`).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import Response

from mock_server.context import Call, Services
from mock_server.errors import ApiError
from mock_server.sim.ratelimit import Decision, Limit, SlidingWindowLog, raw_headers, retry_after_header
from mock_server.stages.base import Stage
from mock_server.tokens import estimated_tokens
from spec import Operation
from spec.extensions import rate_limit

#: Window of the gateways' RPM and TPM, in s.
MINUTE_S = 60.0


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

    def limits(self, call: Call) -> tuple[Limit, ...]:
        """The limits that apply to ``call``'s key (the same tuple on every call for a key)."""
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
        found = self._by_key[call.api_key] = tuple(out)
        return found

    def check(self, call: Call) -> None:
        """Raises ApiError 429 rate_limit_error when a limit is reached: with Retry-After when waiting
        will let the request in, or :meth:`_too_large` when it never can. Notes the decisions
        (``call.state["rate_limits"]``) and their headers (``"rate_limit_headers"``) for :meth:`finish`."""
        limits = self.fixed or self._by_key.get(call.api_key) or self.limits(call)
        tokens = estimated_tokens(call.body) if len(limits) > 1 else 0
        decisions, raw = call.services.limiter.admit_tokens((call.api_key, self.operation_id), limits, tokens)
        state = call.state
        state["rate_limits"] = decisions
        state["rate_limit_headers"] = raw
        for decision in decisions:
            if not decision.admitted:
                self.refuse(call, decisions, {"requests": 1, "tokens": tokens})

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
        raw = call.state.get("rate_limit_headers")
        if raw:
            response.raw_headers += raw
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
        call.state["rate_limit_headers"] = raw_headers(decisions)
        for decision in decisions:
            if not decision.admitted:
                self.refuse(call, decisions, weights)


def headers(decisions: Sequence[Decision]) -> dict[str, str]:
    """``x-ratelimit-limit-<dimension>``, ``-remaining-`` and ``-reset-`` (``<s>s``) per limit."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in raw_headers(decisions)}


def build(operation: Operation, services: Services) -> Stage | None:
    """A :class:`RateLimits` stage when limits are on and the spec gives the operation one."""
    if not services.config.rate_limits.enabled or not operation.security or rate_limit(operation) is None:
        return None
    return (SharedRateLimits if services.shared_limiter is not None else RateLimits)(operation, services)
