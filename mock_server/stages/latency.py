"""Pipeline stage: simulated GPU latency (``sim/latency.py``), on for ``latency.enabled``.

Each operation has a latency model (``latency.operations.<operationId>``, else ``latency.default``)
with a queue time, a time to first token or byte (``first``) and a generation time per unit of
work (``per_unit``, in its ``unit``). The stage measures the work from the handler's answer
(:data:`WORK`): output tokens per choice (``usage.completion_tokens`` / ``usage.output_tokens``), megapixels
(images x width x height), seconds of audio (``duration_ms``, ``duration``, the speech input's
spoken length, or a transcript's words at the speaking rate), seconds of video, or 1 request.

- A JSON (or other whole) answer waits ``queue``, then ``first + generation`` while holding a GPU
  slot of the request's model (``model``, else ``provider``, else the operationId; at most
  ``latency.gpu_slots`` at once per model, so concurrent requests queue as on a real provider).
- A stream (``StreamingResponse``: SSE) waits ``queue``, takes the GPU slot, waits ``first`` before its
  first chunk and one inter-token gap before each following one: the request's one ``per_unit`` draw,
  so a stream has one speed as a whole answer has; the slot is freed when the stream ends, also when
  the client disconnects (:class:`PacedStream`).
- An answer whose handler started an asynchronous job (``call.state["job"]``: videos) is not delayed:
  the job carries the latency (``sim/jobs.py``). Errors are not delayed either.

Every delay is multiplied by ``latency.time_scale`` and drawn from an RNG seeded by ``seed``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Mapping
from typing import Any

from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from mock_server import jsoncodec
from mock_server.context import Call, Services
from mock_server.media_av import WORDS_PER_MINUTE, speech_duration_ms
from mock_server.stages.base import Stage
from spec import Operation

#: ``call.state`` key a handler sets when its answer only starts an asynchronous job.
JOB_STATE = "job"
#: What one image output token of a chat answer weighs in its generation time, in text tokens.
IMAGE_TOKEN_WEIGHT = 0.25
#: Size of an image whose answer and request give none, in px (OpenAI's default 1024x1024).
DEFAULT_IMAGE_SIZE = (1024, 1024)
_SIZE = re.compile(r"^(\d+)x(\d+)$")
_WORD = re.compile(r"[^\W\d_]+")


def _json(response: Response) -> Mapping[str, Any]:
    """The answer's JSON object, or ``{}`` for another media type or shape."""
    if not response.headers.get("content-type", "").startswith("application/json"):
        return {}
    try:
        body = jsoncodec.loads(bytes(response.body))
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _request(call: Call) -> Mapping[str, Any]:
    return call.body if isinstance(call.body, dict) else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def output_tokens(call: Call, response: Response) -> float:
    """Output tokens of a chat completion, a response or a message (their ``usage``) per choice; 0 without
    one. A chat completion's ``n`` choices are generated side by side in one batch, as a provider does: its
    ``usage.completion_tokens`` (all choices') is divided by its number of ``choices``, so ``n: 128`` takes
    about as long as one choice, not 128 times as long. Image output tokens
    (``completion_tokens_details.image_tokens``, 1290 an image as in 002's example) weigh
    :data:`IMAGE_TOKEN_WEIGHT` of a text token each: a native image model answers an image in seconds
    (about 6.5 s at the shipped chat median of 20 ms a token), not at text decoding's pace (26 s)."""
    body = _json(response)
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return 0.0
    tokens = _number(usage.get("completion_tokens")) or _number(usage.get("output_tokens")) or 0.0
    details = usage.get("completion_tokens_details")
    images = _number(details.get("image_tokens")) if isinstance(details, dict) else None
    if images:
        tokens -= images * (1.0 - IMAGE_TOKEN_WEIGHT)
    choices = body.get("choices")
    return tokens / len(choices) if isinstance(choices, list) and choices else tokens


def megapixels(call: Call, response: Response) -> float:
    """Images x width x height / 10^6: ``data`` entries or one ``image_base64``; the size from the answer
    (``width``/``height`` or ``size``), else the request's, else :data:`DEFAULT_IMAGE_SIZE`."""
    body, request = _json(response), _request(call)
    data = body.get("data")
    count = len(data) if isinstance(data, list) else int("image_base64" in body)
    width, height = DEFAULT_IMAGE_SIZE
    for source in (request, body):
        if isinstance(source.get("size"), str) and (match := _SIZE.match(source["size"])):
            width, height = int(match.group(1)), int(match.group(2))
        elif _number(source.get("width")) and _number(source.get("height")):
            width, height = int(source["width"]), int(source["height"])
    return count * width * height / 1e6


def audio_seconds(call: Call, response: Response) -> float:
    """Seconds of audio made or heard: ``duration_ms`` (TTS), ``duration`` (verbose transcripts), the
    speech request's ``input`` at the speaking rate over ``speed``, or a transcript's words at that rate."""
    body, request = _json(response), _request(call)
    if (duration_ms := _number(body.get("duration_ms"))) is not None:
        return duration_ms / 1000
    if (duration := _number(body.get("duration"))) is not None:
        return duration
    if isinstance(request.get("input"), str):
        return speech_duration_ms(request["input"]) / 1000 / (_number(request.get("speed")) or 1.0)
    text = body.get("text") if body else bytes(response.body).decode("utf-8", "replace")
    return len(_WORD.findall(text)) * 60 / WORDS_PER_MINUTE if isinstance(text, str) else 0.0


def video_seconds(call: Call, response: Response) -> float:
    """The answer's ``duration_seconds``; 0 without one."""
    return _number(_json(response).get("duration_seconds")) or 0.0


def one_request(call: Call, response: Response) -> float:
    """1: the work of an operation whose latency does not grow with its answer."""
    return 1.0


#: How the work of a model's ``unit`` is measured from a call and its answer.
WORK: Mapping[str, Callable[[Call, Response], float]] = {
    "tokens": output_tokens, "megapixels": megapixels, "audio_s": audio_seconds, "video_s": video_seconds,
    "requests": one_request,
}


def gpu_model(call: Call) -> str:
    """The GPU pool a request runs on: its ``model``, else its ``provider``, else its operationId."""
    request = _request(call)
    for name in ("model", "provider"):
        if isinstance(request.get(name), str) and request[name]:
            return str(request[name])
    return call.operation.operation_id


class PacedStream(StreamingResponse):
    """``inner``'s status, headers and background, streaming ``paced``, which it closes however the
    stream ends (finished, failed, or the client gone), so the pacing frees its GPU slot."""

    def __init__(self, inner: StreamingResponse, paced: AsyncGenerator[Any, None]) -> None:
        super().__init__(paced, status_code=inner.status_code, background=inner.background)
        self.raw_headers = list(inner.raw_headers)
        self._paced = paced

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._paced.aclose()


class Latency(Stage):
    """Delays the answers of one operation as the module docstring says."""

    def __init__(self, operation: Operation, services: Services) -> None:
        self.operation_id = operation.operation_id
        self.work = WORK[services.latency.model(self.operation_id).unit]
        self.simulated = services.metrics.operation(self.operation_id).simulated if services.metrics else None

    async def after(self, call: Call, response: Response) -> Response:
        """The answer after its simulated latency, or a :class:`PacedStream` of a stream."""
        if JOB_STATE in call.state or response.status_code >= 400:
            return response
        if isinstance(response, StreamingResponse):
            return PacedStream(response, self.paced(call, response.body_iterator))
        services = call.services
        plan = services.latency.plan(self.operation_id, self.work(call, response))
        if self.simulated is not None:
            self.simulated.observe(plan.total_s)
        await asyncio.sleep(plan.queue_s)
        async with services.gpus.slot(gpu_model(call)):
            await asyncio.sleep(plan.first_s + plan.generation_s)
        return response

    async def paced(self, call: Call, chunks: AsyncIterable[Any]) -> AsyncGenerator[Any, None]:
        """``chunks`` after ``queue + first``, one inter-token gap (``plan.unit_s``) apart, holding a GPU
        slot throughout."""
        services = call.services
        plan = services.latency.plan(self.operation_id, 0)
        if self.simulated is not None:
            self.simulated.observe(plan.queue_s + plan.first_s)
        try:
            await asyncio.sleep(plan.queue_s)
            async with services.gpus.slot(gpu_model(call)):
                await asyncio.sleep(plan.first_s)
                first = True
                async for chunk in chunks:
                    if not first:
                        await asyncio.sleep(plan.unit_s)
                    first = False
                    yield chunk
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()


def build(operation: Operation, services: Services) -> Stage | None:
    """A :class:`Latency` stage when ``latency.enabled``; None otherwise (latency off costs nothing)."""
    if not services.config.latency.enabled:
        return None
    return Latency(operation, services)
