"""Pipeline stage: rate limits per API key and operation (sliding-window log, ``sim/ratelimit.py``).

- The credits API's per-minute limits come from the spec (``x-rate-limit: {requests, window_s}``,
  004: "Rate limit: 10/min" and the like).
- The gateways name RPM and TPM without figures (001 "Errors": "RPM or TPM exceeded"; the spec's
  ``x-rate-limit: {dimensions: [rpm, tpm]}`` or ``{configurable: true}``): the figures come from
  the configuration (``rate_limits.rpm``/``tpm``, or a key's own ``rpm``/``tpm``).

Over a limit: 429 rate_limit_error with Retry-After (s) and the ``x-ratelimit-*`` headers; every
admitted answer carries the ``x-ratelimit-*`` headers too. A refused request uses up nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from starlette.responses import Response

from mock_server.context import Call, Services
from mock_server.errors import ApiError
from mock_server.sim.ratelimit import Decision, Limit, retry_after_header
from mock_server.stages import Stage
from mock_server.textgen import count_tokens
from spec import Operation
from spec.extensions import rate_limit

#: Window of the gateways' RPM and TPM, in s.
MINUTE_S = 60.0


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def estimated_tokens(body: Any) -> int:
    """A request's TPM weight: the tokens of its text plus the output it asks room for (max_tokens)."""
    room = 0
    if isinstance(body, dict):
        for name in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
            if isinstance(body.get(name), int | float):
                room = int(body[name])
                break
    return sum(count_tokens(text) for text in _strings(body)) + room


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

    def limits(self, call: Call) -> Sequence[Limit]:
        """The limits that apply to ``call``'s key."""
        if self.fixed:
            return self.fixed
        settings = call.services.config.rate_limits
        entry = call.services.config.key(call.api_key)
        rpm = entry.rpm if entry is not None and entry.rpm else settings.rpm
        tpm = entry.tpm if entry is not None and entry.tpm else settings.tpm
        out = [Limit("requests", rpm, MINUTE_S)]
        if "tpm" in self.dimensions:
            out.append(Limit("tokens", tpm, MINUTE_S))
        return out

    async def before(self, call: Call) -> None:
        """Raises ApiError 429 rate_limit_error (with Retry-After) when a limit is reached."""
        limits = self.limits(call)
        weights = {"requests": 1, "tokens": estimated_tokens(call.body) if len(limits) > 1 else 0}
        decisions = call.services.limiter.admit(f"{call.api_key}:{self.operation_id}", limits, weights)
        call.state["rate_limits"] = decisions
        refused = [d for d in decisions if not d.admitted]
        if refused:
            what = ", ".join(f"{d.limit.limit} {d.limit.dimension} per {d.limit.window_s:g} s" for d in refused)
            raise ApiError(429, f"Rate limit reached for {self.operation_id}: {what}. Retry after the "
                                f"Retry-After header's seconds.", code="rate_limit_exceeded",
                           headers={"Retry-After": retry_after_header(refused), **headers(decisions)})

    async def after(self, call: Call, response: Response) -> Response:
        """Adds the ``x-ratelimit-*`` headers."""
        response.headers.update(headers(call.state.get("rate_limits", ())))
        return response


def headers(decisions: Sequence[Decision]) -> dict[str, str]:
    """``x-ratelimit-limit-<dimension>``, ``-remaining-`` and ``-reset-`` (``<s>s``) per limit."""
    out = {}
    for decision in decisions:
        name = decision.limit.dimension
        out[f"x-ratelimit-limit-{name}"] = str(decision.limit.limit)
        out[f"x-ratelimit-remaining-{name}"] = str(decision.remaining)
        out[f"x-ratelimit-reset-{name}"] = f"{math.ceil(decision.reset_s)}s"
    return out


def build(operation: Operation, services: Services) -> Stage | None:
    """A :class:`RateLimits` stage when limits are on and the spec gives the operation one."""
    if not services.config.rate_limits.enabled or not operation.security or rate_limit(operation) is None:
        return None
    return RateLimits(operation, services)
