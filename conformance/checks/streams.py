"""Checks of each protocol's stream, judged from the events as they arrived.

Each takes a :class:`~conformance.http.TimedStream` (read event by event with httpx-sse, every
event's arrival time recorded) and the spec :class:`~spec.Operation` it exercised. The chat
protocol's chunk checks live in :mod:`conformance.checks.streaming`; here are the Responses and
Messages protocols' event grammars, and one check of delivery that every protocol's stream gets.

Sources: 003 "Responses image input" and "Messages image input" (the multi-protocol gateway speaks
OpenAI's Responses and Anthropic's Messages protocols, streams included); the event grammars are
those protocols' own (OpenAI "Streaming responses": ``response.created`` first, ``sequence_number``
counting up, ``response.completed`` last with the usage; Anthropic "Streaming Messages":
``message_start``, then per content block ``content_block_start`` / ``content_block_delta`` /
``content_block_stop``, ``message_delta`` with ``stop_reason`` and usage, ``message_stop``, ``ping``
anywhere). 001 "POST /v1/chat/completions": ``stream: true`` delivers tokens as they are made.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from conformance.checks import check
from conformance.checks.contract import validate_against
from conformance.failures import CheckFailure
from conformance.http import TimedStream
from spec import Operation

RESPONSES = "003 Responses (OpenAI Responses streaming events)"
MESSAGES = "003 Messages (Anthropic Messages streaming events)"
DELIVERY = "001 POST /v1/chat/completions (stream: true delivers tokens as they are made); 003 streams"

#: A stream whose first event came this late (s) had time to be streamed: if it then arrived in
#: one burst, the target held it back. Below this the suite cannot tell a buffered stream from a
#: fast one (the upstream phase can: it paces the upstream's events and measures their gaps).
BUFFERED_AFTER_S = 1.0
#: Events that arrive within this share of the wait for the first one (or 20 ms) came in one burst.
BURST_SHARE = 0.05
#: Fewest events for a verdict on delivery (a short answer may be sent in one piece honestly).
MIN_EVENTS = 8

#: Messages content block types and the delta types each takes (Anthropic "Streaming Messages").
BLOCK_DELTAS = {"text": {"text_delta", "citations_delta"}, "tool_use": {"input_json_delta"},
                "thinking": {"thinking_delta", "signature_delta"}, "redacted_thinking": set()}


def _payloads(stream: TimedStream, name: str) -> list[dict[str, Any]]:
    """The events' JSON payloads, in order; raises :class:`CheckFailure` ``name`` for an answer that is
    not a 200 event stream, one that ended abnormally, a payload that is not a JSON object, or none."""
    exchange = stream.exchange
    if exchange.status != 200 or exchange.media_type != "text/event-stream":
        raise CheckFailure(name, "200 text/event-stream", f"{exchange.status} {exchange.media_type or 'no type'}",
                           exchange.evidence())
    if stream.broken is not None:
        raise CheckFailure(name, "a stream that ends cleanly", f"it broke off: {stream.broken}", exchange.evidence())
    payloads = []
    for index, event in enumerate(stream.events):
        try:
            payload = json.loads(event.data)
        except json.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            raise CheckFailure(name, "each data: payload a JSON object", f"event {index}: {event.data[:120]!r}",
                               exchange.evidence())
        payloads.append(payload)
    if not payloads:
        raise CheckFailure(name, "at least one event", "none", exchange.evidence())
    return payloads


def _fail(name: str, stream: TimedStream, expected: str, received: str) -> CheckFailure:
    return CheckFailure(name, expected, received, stream.exchange.evidence())


def _events_conform(name: str, stream: TimedStream, operation: Operation) -> list[dict[str, Any]]:
    """Every payload valid against the spec's ``x-sse`` item schema, and each SSE ``event:`` name equal
    to its payload's ``type``; returns the payloads."""
    payloads = _payloads(stream, name)
    for index, (event, payload) in enumerate(zip(stream.events, payloads, strict=True)):
        reason = validate_against(operation, 200, "text/event-stream", payload, sse_item=True)
        if reason is not None:
            raise _fail(name, stream, "events valid against the spec", f"event {index} ({payload.get('type')}): "
                                                                        f"{reason}")
        if event.event != payload.get("type"):
            raise _fail(name, stream, "each event: line naming its payload's type",
                        f"event {index}: event: {event.event!r}, type {payload.get('type')!r}")
    return payloads


# ---- Responses -----------------------------------------------------------------------------------

@check(capability="responses.streaming", source=RESPONSES)
def responses_stream_events_conform(stream: TimedStream, operation: Operation) -> None:
    """Every event of a streamed Response is valid against the spec and its ``event:`` names its type."""
    _events_conform("responses_stream_events_conform", stream, operation)


@check(capability="responses.streaming", source=RESPONSES)
def responses_stream_lifecycle(stream: TimedStream, operation: Operation) -> None:
    """``response.created`` comes first and only once; ``response.completed`` comes last, once, with the
    response's usage (input, output and total tokens, the total their sum)."""
    name = "responses_stream_lifecycle"
    payloads = _payloads(stream, name)
    types = [payload.get("type") for payload in payloads]
    if types[0] != "response.created" or types.count("response.created") != 1:
        raise _fail(name, stream, "response.created first, once", f"first {types[0]!r}, "
                                                                   f"{types.count('response.created')} in all")
    if types[-1] != "response.completed" or types.count("response.completed") != 1:
        raise _fail(name, stream, "response.completed last, once", f"last {types[-1]!r}, "
                                                                   f"{types.count('response.completed')} in all")
    usage = payloads[-1].get("response", {}).get("usage")
    counts = [usage.get(key) for key in ("input_tokens", "output_tokens", "total_tokens")] if isinstance(
        usage, dict) else []
    numbers = [count for count in counts if isinstance(count, int) and count >= 0]
    if len(numbers) != 3 or numbers[0] + numbers[1] != numbers[2]:
        raise _fail(name, stream, "response.completed with usage: input_tokens + output_tokens = total_tokens",
                    json.dumps(usage)[:200])


@check(capability="responses.streaming", source=RESPONSES)
def responses_stream_sequence_numbers(stream: TimedStream, operation: Operation) -> None:
    """Every event carries a ``sequence_number``, strictly increasing through the stream."""
    name = "responses_stream_sequence_numbers"
    numbers = [payload.get("sequence_number") for payload in _payloads(stream, name)]
    for index, number in enumerate(numbers):
        if not isinstance(number, int) or (index and number <= numbers[index - 1]):  # type: ignore[operator]
            raise _fail(name, stream, "sequence_number strictly increasing",
                        f"event {index}: {number!r} after {numbers[index - 1] if index else None!r}")


@check(capability="responses.streaming", source=RESPONSES)
def responses_stream_text_matches(stream: TimedStream, operation: Operation) -> None:
    """The ``response.output_text.delta`` deltas of each content part, concatenated, are the text that
    part's ``response.output_text.done`` gives (if sent) and the final response's output holds."""
    name = "responses_stream_text_matches"
    payloads = _payloads(stream, name)
    streamed: dict[tuple[Any, Any], str] = {}
    for payload in payloads:
        key = (payload.get("output_index"), payload.get("content_index"))
        if payload.get("type") == "response.output_text.delta":
            streamed[key] = streamed.get(key, "") + str(payload.get("delta", ""))
        elif payload.get("type") == "response.output_text.done" and payload.get("text") != streamed.get(key, ""):
            raise _fail(name, stream, "output_text.done's text = its deltas joined",
                        f"part {key}: done {str(payload.get('text'))[:80]!r}, deltas {streamed.get(key, '')[:80]!r}")
    final: dict[tuple[Any, Any], str] = {}
    output = payloads[-1].get("response", {}).get("output", []) if payloads[-1].get("type") == "response.completed" \
        else []
    for item_index, item in enumerate(output if isinstance(output, list) else []):
        for part_index, part in enumerate(item.get("content") or [] if isinstance(item, dict) else []):
            if isinstance(part, dict) and part.get("type") == "output_text":
                final[(item_index, part_index)] = str(part.get("text", ""))
    if not streamed and not final:
        raise _fail(name, stream, "a text answer streamed as output_text deltas", "no output text at all")
    if streamed != final:
        raise _fail(name, stream, "the deltas of each part joined = the completed response's text",
                    f"deltas {_short(streamed)}; completed {_short(final)}")


# ---- Messages ------------------------------------------------------------------------------------

@check(capability="messages.streaming", source=MESSAGES)
def messages_stream_events_conform(stream: TimedStream, operation: Operation) -> None:
    """Every event of a streamed message (the ``error`` event too) is valid against the spec and its
    ``event:`` names its type."""
    _events_conform("messages_stream_events_conform", stream, operation)


@check(capability="messages.streaming", source=MESSAGES)
def messages_stream_message_framing(stream: TimedStream, operation: Operation) -> None:
    """``message_start`` exactly once, before anything but ``ping``; ``message_stop`` exactly once, last;
    one ``message_delta`` after the last content block closed and before ``message_stop``."""
    name = "messages_stream_message_framing"
    types = [payload.get("type") for payload in _payloads(stream, name) if payload.get("type") != "ping"]
    if not types or types[0] != "message_start" or types.count("message_start") != 1:
        raise _fail(name, stream, "message_start first (after any ping), once", _sequence(types))
    if types[-1] != "message_stop" or types.count("message_stop") != 1:
        raise _fail(name, stream, "message_stop last, once", _sequence(types))
    if types.count("message_delta") != 1 or types[-2] != "message_delta":
        raise _fail(name, stream, "one message_delta, just before message_stop", _sequence(types))


@check(capability="messages.streaming", source=MESSAGES)
def messages_stream_blocks_in_order(stream: TimedStream, operation: Operation) -> None:
    """Content blocks are streamed one at a time with indexes 0, 1, 2...: ``content_block_start``, its
    ``content_block_delta`` events (of the delta type its block type takes), ``content_block_stop``;
    no delta outside its open block, and no block left open."""
    name = "messages_stream_blocks_in_order"
    open_block: tuple[int, str] | None = None
    next_index = 0
    for position, payload in enumerate(_payloads(stream, name)):
        kind, index = payload.get("type"), payload.get("index")
        if kind == "content_block_start":
            block = payload.get("content_block") or {}
            if open_block is not None or index != next_index:
                raise _fail(name, stream, f"content_block_start of block {next_index} with no block open",
                            f"event {position}: start of block {index!r} (open: {open_block})")
            open_block, next_index = (index, str(block.get("type"))), next_index + 1
        elif kind == "content_block_delta":
            delta_type = (payload.get("delta") or {}).get("type")
            if open_block is None or index != open_block[0]:
                raise _fail(name, stream, "deltas only for the open block",
                            f"event {position}: delta for block {index!r} (open: {open_block})")
            allowed = BLOCK_DELTAS.get(open_block[1])
            if allowed is not None and delta_type not in allowed:
                raise _fail(name, stream, f"{sorted(allowed)} deltas in a {open_block[1]} block",
                            f"event {position}: {delta_type!r}")
        elif kind == "content_block_stop":
            if open_block is None or index != open_block[0]:
                raise _fail(name, stream, "content_block_stop of the open block",
                            f"event {position}: stop of block {index!r} (open: {open_block})")
            open_block = None
        elif kind in ("message_delta", "message_stop") and open_block is not None:
            raise _fail(name, stream, "every block stopped before the message ends",
                        f"event {position}: {kind} with block {open_block[0]} open")
    if next_index == 0:
        raise _fail(name, stream, "at least one content block", "none")


@check(capability="messages.streaming", source=MESSAGES)
def messages_stream_stop_reason_and_usage(stream: TimedStream, operation: Operation) -> None:
    """The ``message_delta`` gives a ``stop_reason`` and ``usage.output_tokens``; ``message_start``'s
    message gives ``usage.input_tokens``."""
    name = "messages_stream_stop_reason_and_usage"
    payloads = _payloads(stream, name)
    start = next((p for p in payloads if p.get("type") == "message_start"), {})
    delta = next((p for p in payloads if p.get("type") == "message_delta"), None)
    if not isinstance((start.get("message") or {}).get("usage", {}).get("input_tokens"), int):
        raise _fail(name, stream, "message_start with message.usage.input_tokens",
                    json.dumps(start.get("message", {}).get("usage"))[:200])
    if delta is None or not (delta.get("delta") or {}).get("stop_reason"):
        raise _fail(name, stream, "message_delta with delta.stop_reason", json.dumps(delta)[:200])
    if not isinstance((delta.get("usage") or {}).get("output_tokens"), int):
        raise _fail(name, stream, "message_delta with usage.output_tokens", json.dumps(delta.get("usage"))[:200])


# ---- every protocol --------------------------------------------------------------------------------

@check(capability="streaming.delivery", source=DELIVERY)
def stream_delivered_incrementally(stream: TimedStream, operation: Operation) -> None:
    """The stream's events arrive as they are made, not held back and sent in one piece. Judged only
    when there is evidence: at least :data:`MIN_EVENTS` events and a first event :data:`BUFFERED_AFTER_S`
    or later (a fast target's whole answer may honestly arrive at once); then the events must not all
    arrive within :data:`BURST_SHARE` of that wait. Evidence gives the arrival times in ms."""
    name = "stream_delivered_incrementally"
    events = stream.events
    if stream.exchange.status != 200 or not events:
        raise _fail(name, stream, "a 200 event stream", f"{stream.exchange.status}, {len(events)} events")
    first, last = events[0].t_s, events[-1].t_s
    if len(events) >= MIN_EVENTS and first >= BUFFERED_AFTER_S and last - first <= max(BURST_SHARE * first, 0.02):
        raise _fail(name, stream, "events spread over the generation, the first one early",
                    f"all {len(events)} events within {(last - first) * 1000:.0f} ms, the first after "
                    f"{first * 1000:.0f} ms: the stream was held back and sent in one piece")


def _short(parts: dict[tuple[Any, Any], str]) -> str:
    return json.dumps({f"{k[0]}/{k[1]}": v[:60] for k, v in parts.items()})[:240]


def _sequence(types: Sequence[Any]) -> str:
    shown = [str(kind) for kind in types]
    return " ".join(shown if len(shown) <= 12 else [*shown[:5], "...", *shown[-5:]])
