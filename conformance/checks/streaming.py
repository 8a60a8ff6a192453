"""Checks of a streamed chat completion (``stream: true``): SSE framing, chunks and the end.

Source: 001 "POST /v1/chat/completions" (token-by-token delivery with ``stream: true``), and the
OpenAI streaming contract it mirrors: ``chat.completion.chunk`` objects sharing one id,
``stream_options.include_usage`` adding a last chunk with empty choices and the usage, and a final
``data: [DONE]``.
"""

from __future__ import annotations

import json
from typing import Any

from conformance.checks import check
from conformance.checks.contract import validate_against
from conformance.failures import CheckFailure
from conformance.http import Exchange
from spec import Operation

DONE = "[DONE]"
SOURCE = "001 POST /v1/chat/completions (stream: true)"


def _chunks(exchange: Exchange) -> list[Any]:
    """The JSON payloads before ``[DONE]``; a payload that is not JSON fails ``stream_chunks_conform``."""
    out = []
    for data in exchange.sse_data():
        if data == DONE:
            break
        try:
            out.append(json.loads(data))
        except json.JSONDecodeError:
            raise CheckFailure("stream_chunks_conform", "each data: payload to be JSON",
                               f"{data[:120]!r}", exchange.evidence()) from None
    return out


@check(capability="chat.streaming", source=SOURCE)
def stream_content_type(exchange: Exchange, operation: Operation) -> None:
    """A stream is answered 200 with ``Content-Type: text/event-stream``."""
    if exchange.status != 200 or exchange.media_type != "text/event-stream":
        raise CheckFailure("stream_content_type", "200 text/event-stream",
                           f"{exchange.status} {exchange.media_type or 'no Content-Type'}", exchange.evidence())


@check(capability="chat.streaming", source=SOURCE)
def stream_chunks_conform(exchange: Exchange, operation: Operation) -> None:
    """Every ``data:`` payload before ``[DONE]`` is a chunk valid against the spec's ``x-sse`` item schema."""
    chunks = _chunks(exchange)
    if not chunks:
        raise CheckFailure("stream_chunks_conform", "at least one chunk", "none", exchange.evidence())
    for index, chunk in enumerate(chunks):
        reason = validate_against(operation, 200, "text/event-stream", chunk, sse_item=True)
        if reason is not None:
            raise CheckFailure("stream_chunks_conform", "chunks valid against the spec",
                               f"chunk {index}: {reason}", exchange.evidence())


@check(capability="chat.streaming", source=SOURCE)
def stream_ids_consistent(exchange: Exchange, operation: Operation) -> None:
    """All chunks of one stream share ``id``, ``created`` and ``model``."""
    chunks = [c for c in _chunks(exchange) if isinstance(c, dict)]
    for key in ("id", "created", "model"):
        values = {json.dumps(c.get(key)) for c in chunks}
        if len(values) > 1:
            raise CheckFailure("stream_ids_consistent", f"one {key} across the stream",
                               f"{len(values)} values: {', '.join(sorted(values)[:3])}", exchange.evidence())


@check(capability="chat.streaming", source=SOURCE)
def stream_ends_with_done(exchange: Exchange, operation: Operation) -> None:
    """The last event is ``data: [DONE]`` and it appears once."""
    data = exchange.sse_data()
    if not data or data[-1] != DONE or data.count(DONE) != 1:
        last = data[-1][:80] if data else "no events"
        raise CheckFailure("stream_ends_with_done", "a single final data: [DONE]", f"last event {last!r}",
                           exchange.evidence())


@check(capability="chat.streaming", source=SOURCE)
def stream_finish_reason(exchange: Exchange, operation: Operation) -> None:
    """Each choice index gets exactly one non-null ``finish_reason``, in its last chunk."""
    reasons: dict[int, int] = {}
    for chunk in (c for c in _chunks(exchange) if isinstance(c, dict)):
        for choice in chunk.get("choices") or []:
            reasons.setdefault(choice.get("index", 0), 0)
            if choice.get("finish_reason") is not None:
                reasons[choice.get("index", 0)] += 1
    wrong = {index: count for index, count in reasons.items() if count != 1}
    if not reasons or wrong:
        got = ", ".join(f"choice {i}: {n}" for i, n in sorted(wrong.items())) or "no choices"
        raise CheckFailure("stream_finish_reason", "one finish_reason per choice", got, exchange.evidence())


@check(capability="chat.streaming.usage", source=SOURCE + "; stream_options.include_usage")
def stream_include_usage(exchange: Exchange, operation: Operation) -> None:
    """With ``include_usage``, the last chunk before ``[DONE]`` has empty choices and the usage; no other has usage."""
    request = exchange.request_body if isinstance(exchange.request_body, dict) else {}
    if not (request.get("stream_options") or {}).get("include_usage"):
        return
    chunks = [c for c in _chunks(exchange) if isinstance(c, dict)]
    with_usage = [i for i, c in enumerate(chunks) if c.get("usage")]
    if with_usage != [len(chunks) - 1] or chunks[-1].get("choices") != []:
        got = f"usage in chunks {with_usage} of {len(chunks)}" if with_usage else "no chunk with usage"
        raise CheckFailure("stream_include_usage", "usage only in a last chunk with choices []", got,
                           exchange.evidence())
    usage = chunks[-1]["usage"]
    if usage.get("total_tokens") != usage.get("prompt_tokens", 0) + usage.get("completion_tokens", 0):
        raise CheckFailure("stream_include_usage", "total_tokens = prompt_tokens + completion_tokens",
                           json.dumps(usage), exchange.evidence())
