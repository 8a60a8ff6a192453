"""Every protocol's stream, read event by event as it arrives and judged by name.

One streamed request per protocol and API (the OpenAI-compatible gateway's chat; the multi-protocol
gateway's chat, Responses and Messages), each read once per run with httpx-sse
(``TargetClient.stream``, every event's arrival time kept). The chat protocol's chunks are judged by
the checks of ``checks/streaming.py`` (so a target claiming only the multi-protocol gateway gets
them too); Responses and Messages by their event grammars (``checks/streams.py``); and every stream
by ``stream_delivered_incrementally``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from conformance.checks import REGISTRY, Check
from conformance.http import TargetClient, TimedStream
from conformance.target import Target
from spec import Operation, find_operation

#: A prompt that asks for an answer long enough to be streamed in many events.
PROMPT = "Describe a lighthouse at night in about eighty words."


@dataclass(frozen=True)
class StreamScenario:
    """One streamed request: its operation, body, key style and the checks that judge the stream."""

    operation: Operation
    body: Callable[[Target], Any]
    auth: str
    checks: tuple[str, ...]


CHAT_CHECKS = ("stream_content_type", "stream_chunks_conform", "stream_ids_consistent", "stream_ends_with_done",
               "stream_finish_reason", "stream_include_usage")
#: Checks that judge the stream's rebuilt :class:`~conformance.http.Exchange` rather than its events.
ON_EXCHANGE = frozenset(CHAT_CHECKS)


def _chat(target: Target) -> dict[str, Any]:
    return {"model": target.model("chat"), "messages": [{"role": "user", "content": PROMPT}], "stream": True,
            "stream_options": {"include_usage": True}}


SCENARIOS: Mapping[str, StreamScenario] = {
    # the OpenAI-compatible gateway's chunk checks run in test_chat_behaviour; its delivery is judged here
    "openai_gateway_chat": StreamScenario(find_operation("openai_gateway", "createChatCompletion"), _chat, "bearer",
                                          ("stream_delivered_incrementally",)),
    "multi_protocol_chat": StreamScenario(find_operation("multi_protocol", "createChatCompletion"), _chat, "bearer",
                                          (*CHAT_CHECKS, "stream_delivered_incrementally")),
    "responses": StreamScenario(
        find_operation("multi_protocol", "createResponse"),
        lambda t: {"model": t.model("responses"), "input": PROMPT, "stream": True}, "bearer",
        ("responses_stream_events_conform", "responses_stream_lifecycle", "responses_stream_sequence_numbers",
         "responses_stream_text_matches", "stream_delivered_incrementally")),
    "messages": StreamScenario(
        find_operation("multi_protocol", "createMessage"),
        lambda t: {"model": t.model("messages"), "max_tokens": 400, "stream": True,
                   "messages": [{"role": "user", "content": PROMPT}]}, "messages",
        ("messages_stream_events_conform", "messages_stream_message_framing", "messages_stream_blocks_in_order",
         "messages_stream_stop_reason_and_usage", "stream_delivered_incrementally")),
}

PAIRS = [(scenario, REGISTRY[name], spec.operation.api, spec.operation.operation_id)
         for scenario, spec in SCENARIOS.items() for name in spec.checks]


@pytest.fixture(scope="session")
def streams() -> dict[str, TimedStream]:
    """Streams already read, by scenario id: each scenario's request is sent once per run."""
    return {}


@pytest.mark.parametrize(("scenario", "check", "api", "operation_id"), PAIRS,
                         ids=[f"{s}-{c.name}" for s, c, _, _ in PAIRS])
def test_stream(scenario: str, check: Check, api: str, operation_id: str, client: TargetClient, target: Target,
                streams: dict[str, TimedStream]) -> None:
    spec = SCENARIOS[scenario]
    if scenario not in streams:
        streams[scenario] = client.stream("POST", spec.operation.path, json_body=spec.body(target), auth=spec.auth)
    stream = streams[scenario]
    check(stream.exchange if check.name in ON_EXCHANGE else stream, spec.operation)
