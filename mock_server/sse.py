"""Server-sent events: ``data: <json>`` events and the ``data: [DONE]`` terminator; named (``event:``) events."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from starlette.responses import StreamingResponse

from mock_server import jsoncodec

DONE = "[DONE]"


def encode_event(data: Any) -> bytes:
    """One SSE event: a JSON value (or a raw string such as ``[DONE]``) as ``data: ...\\n\\n``
    (compact UTF-8 JSON, :func:`mock_server.jsoncodec.dumps`)."""
    if isinstance(data, str):
        return f"data: {data}\n\n".encode()
    return b"data: " + jsoncodec.dumps(data) + b"\n\n"


async def _events(payloads: Iterable[Any], terminator: str | None) -> AsyncIterator[bytes]:
    for payload in payloads:
        yield encode_event(payload)
    if terminator is not None:
        yield encode_event(terminator)


def sse_response(payloads: Iterable[Any], terminator: str | None = DONE) -> StreamingResponse:
    """A ``text/event-stream`` response sending each payload, then ``terminator`` if not None."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_events(payloads, terminator), media_type="text/event-stream", headers=headers)


def encode_typed_event(payload: Mapping[str, Any]) -> bytes:
    """One named SSE event: ``event: <payload["type"]>\\ndata: <json>\\n\\n``.

    The Responses and Messages protocols (003; OpenAI Responses and Anthropic streaming) repeat each
    payload's ``type`` as the ``event:`` name, and end without a ``[DONE]`` sentinel.
    """
    return f"event: {payload['type']}\ndata: ".encode() + jsoncodec.dumps(payload) + b"\n\n"


async def _typed_events(payloads: Iterable[Mapping[str, Any]]) -> AsyncIterator[bytes]:
    for payload in payloads:
        yield encode_typed_event(payload)


def typed_sse_response(payloads: Iterable[Mapping[str, Any]]) -> StreamingResponse:
    """A ``text/event-stream`` response of named events (:func:`encode_typed_event`), no terminator."""
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_typed_events(payloads), media_type="text/event-stream", headers=headers)
