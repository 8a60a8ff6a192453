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


async def _sent(events: list[bytes]) -> AsyncIterator[bytes]:
    for event in events:
        yield event


def sse_response(payloads: Iterable[Any], terminator: str | None = DONE) -> StreamingResponse:
    """A ``text/event-stream`` response sending each payload, then ``terminator`` if not None.

    Every event is encoded here, before the first is sent: the simulated answer is known whole, so
    a paced stream then does no work between its chunks but sending them (1,000 concurrent streams
    keep their inter-chunk gaps as a bare server does: ``benchmarks/bench_streaming.py``).
    """
    events = [encode_event(payload) for payload in payloads]
    if terminator is not None:
        events.append(encode_event(terminator))
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_sent(events), media_type="text/event-stream", headers=headers)


def encode_typed_event(payload: Mapping[str, Any]) -> bytes:
    """One named SSE event: ``event: <payload["type"]>\\ndata: <json>\\n\\n``.

    The Responses and Messages protocols (003; OpenAI Responses and Anthropic streaming) repeat each
    payload's ``type`` as the ``event:`` name, and end without a ``[DONE]`` sentinel.
    """
    return f"event: {payload['type']}\ndata: ".encode() + jsoncodec.dumps(payload) + b"\n\n"


def typed_sse_response(payloads: Iterable[Mapping[str, Any]]) -> StreamingResponse:
    """A ``text/event-stream`` response of named events (:func:`encode_typed_event`), no terminator;
    encoded before the first is sent, as :func:`sse_response`'s."""
    events = [encode_typed_event(payload) for payload in payloads]
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_sent(events), media_type="text/event-stream", headers=headers)
