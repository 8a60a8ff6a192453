"""Pipeline stage: simulated faults, by seeded rate or on demand, and the safety filter.

Kinds (:data:`~mock_server.config.FAULT_KINDS`), per operation:

- ``500``: the documented server failure. On the credits API it is 004 "Error Codes": "500 GPU
  provider error — retry after 30s", with ``Retry-After`` (s) from the spec's ``x-retry-after-s``;
  on the gateways 001 "Errors": internal_server_error, "Safe to retry idempotently". The message is
  the spec's description of the operation's 500 response.
- ``502`` / ``503``: 001 "Errors": upstream_error, "Downstream provider failure"; the Messages
  protocol renders its own types (api_error, overloaded_error: ``errors.ANTHROPIC_ERROR_TYPES``).
- ``slow_stream``: an SSE answer whose events arrive :data:`SLOW_STREAM_GAP_S` apart (times
  ``latency.time_scale``; the first event is not delayed).
- ``cut_stream``: an SSE answer that stops after at most :data:`CUT_AFTER_EVENTS` events and never
  sends its last one (``data: [DONE]``, ``message_stop``, ``response.completed``). The HTTP body
  then ends normally (chunked framing closed): the event stream, not TCP, is what is cut.
- ``safety``: 002 "Safety": "Disallowed prompts return 400 invalid_request_error with the rejection
  reason in error.message"; code ``content_policy_violation``, ``param`` the field screened.

Stream kinds act on ``text/event-stream`` answers only; a JSON or media answer passes unchanged.

How a fault is chosen, in this order (the refusing ones before the handler, so nothing is charged
and no rate-limit window counts the request; this stage runs before ``limits.py``):

1. the safety filter, always: a word (or phrase) of ``faults.blocklist`` in the request's prompt
   fields (:data:`SCREENED_FIELDS`; in messages and input items their ``content`` and ``text``),
   matched case-insensitively as a whole word;
2. the ``X-Mock-Fault: <kind>`` request header, when ``faults.header`` is on (the default); an
   unknown kind is 400 naming the header. It uses no random draw;
3. the operation's rates (``Services.fault_rates``, from ``faults.operations``; the control API may
   replace them): ONE draw ``u`` in [0, 1) from ``Services.fault_rng`` (seeded) per request, and the
   kind whose cumulative rate, in :data:`FAULT_KINDS` order, first exceeds ``u``. So 1.0 always
   faults, 0.0 never, and a fixed seed gives a repeatable sequence. Rates summing past 1 leave the
   later kinds less than their rate.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Mapping
from typing import Any

from starlette.responses import Response, StreamingResponse

from mock_server.config import FAULT_KINDS
from mock_server.context import Call, Services
from mock_server.errors import ApiError
from mock_server.stages.base import Stage
from spec import Operation, response_object
from spec.extensions import retry_after_s

#: The request header that triggers a fault on its request.
HEADER = "X-Mock-Fault"
#: Gap between the events of a slow stream, in s, before ``latency.time_scale``.
SLOW_STREAM_GAP_S = 0.5
#: Most events a cut stream sends before it stops.
CUT_AFTER_EVENTS = 3
#: Request fields the safety filter reads (strings; lists and objects through ``content``/``text``).
SCREENED_FIELDS = ("prompt", "motion_prompt", "input", "messages", "text")
#: Kinds that act on the answer's stream rather than refuse the request.
STREAM_KINDS = ("slow_stream", "cut_stream")
#: Default messages and codes of the refusing kinds, when the spec describes no such response.
REFUSALS: Mapping[str, tuple[str, str]] = {
    "500": ("Unexpected gateway failure. Safe to retry idempotently.", "internal_server_error"),
    "502": ("Downstream provider failure.", "bad_gateway"),
    "503": ("The downstream provider is unavailable.", "service_unavailable"),
}


class Faults(Stage):
    """Refuses a request, or spoils its stream, as the module docstring says."""

    after_needs = "fault"

    def __init__(self, operation: Operation, services: Services) -> None:
        self.operation_id = operation.operation_id
        self.header = services.config.faults.header
        self.blocklist = blocklist_pattern(services.config.faults.blocklist)
        self.gap_s = SLOW_STREAM_GAP_S * services.config.latency.time_scale
        self.refusals = {kind: _refusal(operation, int(kind)) for kind in REFUSALS}

    def check(self, call: Call) -> None:
        """Raises ApiError 400 (safety, unknown header kind), 500, 502 or 503; notes a stream kind."""
        if self.blocklist is not None:
            self.screen(call.body)
        kind = self.requested(call) if self.header else None
        if kind is None:
            kind = draw(call.services, self.operation_id)
        if kind is None:
            return
        if kind == "safety":
            raise ApiError(400, "The prompt was rejected by the provider's content filter (simulated).",
                           type="invalid_request_error", code="content_policy_violation")
        if kind in self.refusals:
            status, message, code, headers = self.refusals[kind]
            raise ApiError(status, message, code=code, headers=headers)
        call.state["fault"] = kind

    def screen(self, body: Any) -> None:
        """Raises ApiError 400 content_policy_violation when a screened field holds a blocked word."""
        if self.blocklist is None:
            return
        for param, text in screened_texts(body):
            found = self.blocklist.search(text)
            if found is not None:
                raise ApiError(400, f"The prompt was rejected by the provider's content filter: {param} contains "
                                    f"the disallowed word {found.group(0)!r}.", type="invalid_request_error",
                               param=param, code="content_policy_violation")

    @staticmethod
    def requested(call: Call) -> str | None:
        """The kind the ``X-Mock-Fault`` header asks for, or None. Raises ApiError 400 for an unknown kind."""
        value = call.request.headers.get(HEADER)
        if value is None:
            return None
        kind = value.strip().lower()
        if kind not in FAULT_KINDS:
            raise ApiError(400, f"Unknown {HEADER} {value!r}: use one of {', '.join(FAULT_KINDS)}.", param=HEADER,
                           code="unknown_fault")
        return kind

    async def after(self, call: Call, response: Response) -> Response:
        """Paces or cuts an SSE answer when a stream kind was chosen; anything else passes unchanged."""
        kind = call.state.get("fault")
        if kind not in STREAM_KINDS or not isinstance(response, StreamingResponse):
            return response
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            return response
        events = sse_events(response.body_iterator)
        response.body_iterator = slowed(events, self.gap_s) if kind == "slow_stream" else cut(events, CUT_AFTER_EVENTS)
        return response


def draw(services: Services, operation_id: str) -> str | None:
    """The kind one draw of ``services.fault_rng`` picks under the operation's rates; None (no draw
    made) when the operation has no rates."""
    rates = services.fault_rates.get(operation_id)
    if not rates:
        return None
    point, total = services.fault_rng.random(), 0.0
    for kind in FAULT_KINDS:
        total += rates.get(kind, 0.0)
        if point < total:
            return kind
    return None


@functools.cache
def blocklist_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    """A case-insensitive pattern matching any of ``words`` as a whole word; None for no words."""
    if not words:
        return None
    alternatives = "|".join(re.escape(word) for word in sorted(set(words), key=len, reverse=True))
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def screened_texts(body: Any) -> Iterator[tuple[str, str]]:
    """``(param, text)`` of every string the safety filter reads in a request body (``messages[0].content``)."""
    if isinstance(body, Mapping):
        for name in SCREENED_FIELDS:
            yield from _texts(body.get(name), name)


def _texts(value: Any, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _texts(item, f"{path}[{index}]")
    elif isinstance(value, Mapping):
        for key in ("content", "text"):
            yield from _texts(value.get(key), f"{path}.{key}")


async def sse_events(chunks: AsyncIterable[Any]) -> AsyncIterator[bytes]:
    """The events (each ending ``\\n\\n``) of an SSE body, however its chunks split them."""
    buffer = b""
    try:
        async for chunk in chunks:
            buffer += chunk.encode() if isinstance(chunk, str) else bytes(chunk)
            while (end := buffer.find(b"\n\n")) >= 0:
                yield buffer[:end + 2]
                buffer = buffer[end + 2:]
        if buffer:
            yield buffer
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


async def slowed(events: AsyncIterator[bytes], gap_s: float) -> AsyncIterator[bytes]:
    """``events`` with ``gap_s`` s of silence before each one after the first."""
    first = True
    async for event in events:
        if not first:
            await asyncio.sleep(gap_s)
        first = False
        yield event


async def cut(events: AsyncIterator[bytes], keep: int) -> AsyncIterator[bytes]:
    """At most ``keep`` of ``events``, and never the last one (an event is sent once another follows it)."""
    sent, pending = 0, None
    try:
        async for event in events:
            if pending is not None:
                yield pending
                sent += 1
                if sent >= keep:
                    return
            pending = event
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()


def _refusal(operation: Operation, status: int) -> tuple[int, str, str, dict[str, str]]:
    """(status, message, code, headers) of a refusing fault: the spec's description of that response
    if it documents one, and its ``x-retry-after-s`` as Retry-After."""
    default, code = REFUSALS[str(status)]
    response = response_object(operation, status)
    documented = operation.spec.get("responses", {}).get(str(status)) is not None and response is not None
    message = str(response.get("description", default)).strip() if documented and response else default
    retry = retry_after_s(operation, status) if documented else None
    headers = {"Retry-After": str(retry)} if retry is not None else {}
    if retry is not None and status == 500:
        code = "gpu_provider_error"
    return status, f"{message} (simulated fault {status})", code, headers


def build(operation: Operation, services: Services) -> Stage | None:
    """A :class:`Faults` stage, unless nothing could ever trigger one on ``operation``: no header, no
    blocklist, no rates and no control API to set some at run time."""
    faults = services.config.faults
    if not (faults.header or faults.blocklist or services.config.control.enabled
            or services.fault_rates.get(operation.operation_id)):
        return None
    return Faults(operation, services)
