"""Pipeline stage: scripted upstream behaviour, "the next N matching requests answer F".

A suite checking the gateway in front of the mock tells the mock, through the control API
(``POST /_mock/scripts``), how to fail for the requests of one check only: a script matches by
nonce (a string the suite wrote into the prompt text, found in any string of the body), by
operationId, or both, and holds steps that each answer ``times`` matching requests in turn; when
every step is used the script is gone and matching requests are answered normally. So "fail twice,
then succeed" is ``[{"answer": "error", "status": 503, "times": 2}, {"answer": "pass"}]``.

Answers (``answer``), each from the documents' error tables:

- ``error``: ``status`` one of ``sim.scripts.ERROR_STATUSES`` in the operation's protocol
  envelope, with the documented ``error.type`` (001 "Errors"; the Messages protocol's own types, and its 529
  overloaded_error, for Messages operations only). ``reason`` (400) makes it 002 "Safety"'s
  rejection, "400 invalid_request_error with the rejection reason in error.message";
  ``retry_after`` (s) adds ``Retry-After`` (a 429 also gets ``x-ratelimit-*`` headers; the credits
  API's 500 gets 004's 30 s when none is given); ``message`` replaces the default message.
- ``malformed``: 200 ``application/json`` whose body is not JSON (a truncated object).
- ``cut_stream``: the stream stops after ``after_events`` events; the HTTP body ends normally.
- ``reset_stream``: after ``after_events`` events the connection is closed with the chunked body
  unfinished, which is what a TCP reset looks like to an HTTP client.
- ``pace``: stream events ``gap_ms`` apart (the first is not delayed).
- ``delay``: ``ms`` of added latency before the answer.
- ``pass``: answered normally (a step of a sequence).

Stream answers act on ``text/event-stream`` answers only. The stage runs after authentication,
validation and the scope/tier checks, before faults, rate limits, charges and the handler, so a
scripted error charges nothing and counts against no limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable

from starlette.responses import Response, StreamingResponse

from mock_server.context import Call, Services
from mock_server.errors import ANTHROPIC_ERROR_TYPES, ApiError, style_of
from mock_server.sim.scripts import Step
from mock_server.stages.base import Stage
from mock_server.stages.faults import cut, slowed, sse_events
from spec import Operation
from spec.extensions import retry_after_s

#: The body of a ``malformed`` answer: JSON cut short.
MALFORMED_BODY = b'{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{"index": 0, "mess'
_DEFAULT_MESSAGES = {
    400: "The request was rejected by the upstream provider (scripted).",
    401: "Invalid upstream API key (scripted).",
    402: "Account out of credit (scripted).",
    403: "The key lacks the required scope (scripted).",
    429: "Rate limit exceeded; retry after the given time (scripted).",
    500: "Unexpected provider failure (scripted).",
    502: "Downstream provider failure (scripted).",
    503: "The downstream provider is unavailable (scripted).",
    529: "The provider is overloaded (scripted).",
}


class RawAnswer(ApiError):
    """An answer that is no error envelope at all (a ``malformed`` step's), raised like an ApiError."""

    def __init__(self, status: int, body: bytes, media_type: str) -> None:
        super().__init__(status, "scripted raw answer")
        self.raw = body
        self.media_type = media_type

    def response(self, style: str = "openai") -> Response:  # type: ignore[override]
        """The raw body, whatever the style."""
        return Response(self.raw, status_code=self.status, media_type=self.media_type)


class StreamReset(Exception):
    """Raised by a ``reset_stream`` answer's body: the app closes the connection mid-body."""


class Scripted(Stage):
    """Answers a request as the first script matching it says (module docstring)."""

    after_needs = "script_step"

    def __init__(self, operation: Operation, services: Services) -> None:
        self.operation = operation
        self.operation_id = operation.operation_id
        self.book = services.scripts
        self.protocol = style_of(operation.spec)

    def check(self, call: Call) -> Awaitable[None] | None:
        """None while no script is set (no coroutine per request); else :meth:`scripted`'s, which the pipeline
        awaits."""
        return self.scripted(call) if self.book.scripts else None

    async def scripted(self, call: Call) -> None:
        """Raises the scripted error (ApiError, RawAnswer), sleeps a delay, or notes a stream answer."""
        taken = await self.book.take_async(self.operation_id, call.body)
        if taken is None:
            return
        script, step = taken
        call.state["script"] = f"{script.id}: {step.describe()}"
        if step.answer == "error":
            raise self.error(step)
        if step.answer == "malformed":
            raise RawAnswer(200, MALFORMED_BODY, "application/json")
        if step.answer == "delay":
            await asyncio.sleep(step.ms / 1000.0)
        elif step.answer != "pass":
            call.state["script_step"] = step

    def error(self, step: Step) -> ApiError:
        """The ApiError of an ``error`` step in this operation's protocol."""
        status = step.status or 500
        message = step.message or _DEFAULT_MESSAGES[status]
        code = None
        if step.reason is not None:
            message = f"The prompt was rejected by the provider's content filter: {step.reason}"
            code = "content_policy_violation"
        headers: dict[str, str] = {}
        retry = step.retry_after
        if retry is None and status == 500:
            retry = retry_after_s(self.operation, 500)  # 004: "500 GPU provider error — retry after 30s"
        if retry is None and status == 429:
            retry = 1.0
        if retry is not None:
            headers["Retry-After"] = f"{retry:g}"
        if status == 429:
            headers.update({"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0",
                            "x-ratelimit-reset-requests": f"{retry:g}s"})
        kind = ANTHROPIC_ERROR_TYPES.get(status) if self.protocol == "anthropic" else None
        return ApiError(status, message, type=kind, code=code, headers=headers)

    async def after(self, call: Call, response: Response) -> Response:
        """Cuts, resets or paces an SSE answer when the step says so; anything else passes unchanged."""
        step: Step | None = call.state.get("script_step")
        if step is None or not isinstance(response, StreamingResponse):
            return response
        if not response.headers.get("content-type", "").startswith("text/event-stream"):
            return response
        events = sse_events(response.body_iterator)
        if step.answer == "pace":
            response.body_iterator = slowed(events, step.gap_ms / 1000.0)
        elif step.answer == "cut_stream":
            response.body_iterator = cut(events, step.after_events) if step.after_events else _none(events)
        else:
            response.body_iterator = _reset(events, step.after_events)
        return response


async def _none(events: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    await _close(events)
    return
    yield b""  # an async generator that sends nothing


async def _reset(events: AsyncIterator[bytes], keep: int) -> AsyncIterator[bytes]:
    sent = 0
    try:
        async for event in events:
            if sent >= keep:
                break
            yield event
            sent += 1
    finally:
        await _close(events)
    raise StreamReset(f"scripted reset after {sent} events")


async def _close(events: AsyncIterator[bytes]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()


def build(operation: Operation, services: Services) -> Stage | None:
    """A :class:`Scripted` stage when the control API (which alone sets scripts) is enabled."""
    return Scripted(operation, services) if services.config.control.enabled else None

