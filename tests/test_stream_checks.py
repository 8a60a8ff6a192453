"""The stream checks of every protocol (``conformance/checks/streams.py``, issue 13) can fail and can pass.

The mock's own streams, read as the suite reads them, pass every check of their scenario; each
mutation below breaks one rule of one protocol's stream and is caught by that rule's check, and
by no other check of the scenario except the ones named beside it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from conformance.checks import REGISTRY
from conformance.embedded import embedded_app, serve
from conformance.failures import CheckFailure
from conformance.http import TargetClient, TimedEvent, TimedStream
from conformance.suite.test_streams import ON_EXCHANGE, SCENARIOS
from conformance.target import Target

Payloads = list[dict[str, Any]]


@pytest.fixture(scope="module")
def streams() -> Iterator[dict[str, TimedStream]]:
    with serve(embedded_app()) as url, TargetClient(Target("mock", url, "sk-test")) as client:
        yield {name: client.stream("POST", spec.operation.path, json_body=spec.body(client.target), auth=spec.auth)
               for name, spec in SCENARIOS.items()}


def failing(scenario: str, stream: TimedStream) -> set[str]:
    """The names of the scenario's checks that fail on ``stream``."""
    spec = SCENARIOS[scenario]
    failed = set()
    for name in spec.checks:
        check = REGISTRY[name]
        try:
            check(stream.exchange if name in ON_EXCHANGE else stream, spec.operation)
        except CheckFailure:
            failed.add(name)
    return failed


def with_payloads(stream: TimedStream, change: Callable[[Payloads], Payloads]) -> TimedStream:
    """``stream`` with its payloads changed (each event's name follows its payload's type)."""
    payloads = change([json.loads(event.data) for event in stream.events])
    events = tuple(TimedEvent(stream.events[min(i, len(stream.events) - 1)].t_s, p.get("type", "message"),
                              json.dumps(p)) for i, p in enumerate(payloads))
    return replace(stream, events=events)


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_the_mocks_streams_pass_every_check(streams: dict[str, TimedStream], scenario: str) -> None:
    assert len(streams[scenario].events) >= 8
    assert failing(scenario, streams[scenario]) == set()


def _index(payloads: Payloads, kind: str, nth: int = 0) -> int:
    return [i for i, p in enumerate(payloads) if p.get("type") == kind][nth]


def _drop(kind: str) -> Callable[[Payloads], Payloads]:
    return lambda ps: [p for p in ps if p.get("type") != kind]


def _twice(kind: str) -> Callable[[Payloads], Payloads]:
    return lambda ps: [*ps[:_index(ps, kind) + 1], ps[_index(ps, kind)], *ps[_index(ps, kind) + 1:]]


def _set(kind: str, path: tuple[str, ...], value: Any, nth: int = 0) -> Callable[[Payloads], Payloads]:
    def change(ps: Payloads) -> Payloads:
        node = ps[_index(ps, kind, nth)]
        for key in path[:-1]:
            node = node[key]
        if value is _DELETE:
            del node[path[-1]]
        else:
            node[path[-1]] = value
        return ps
    return change


_DELETE = object()


def _delta_after_stop(ps: Payloads) -> Payloads:
    delta = ps[_index(ps, "content_block_delta")]
    rest = [p for p in ps if p is not delta]
    stop = _index(rest, "content_block_stop")
    return [*rest[:stop + 1], delta, *rest[stop + 1:]]


def _block_index_skips(ps: Payloads) -> Payloads:
    for p in ps:
        if p.get("type", "").startswith("content_block"):
            p["index"] = 1
    return ps


MUTATIONS: list[tuple[str, str, Callable[[Payloads], Payloads], str, set[str]]] = [
    # (scenario, mutation id, change, the check that must catch it, others allowed to fail with it)
    ("responses", "no_response_created", _drop("response.created"), "responses_stream_lifecycle", set()),
    ("responses", "no_response_completed", _drop("response.completed"), "responses_stream_lifecycle",
     {"responses_stream_text_matches"}),
    ("responses", "completed_without_usage", _set("response.completed", ("response", "usage"), None),
     "responses_stream_lifecycle", {"responses_stream_events_conform"}),
    ("responses", "sequence_number_repeats", _set("response.output_text.delta", ("sequence_number",), 2, nth=1),
     "responses_stream_sequence_numbers", set()),
    ("responses", "a_delta_changed", _set("response.output_text.delta", ("delta",), " CHANGED", nth=2),
     "responses_stream_text_matches", set()),
    ("responses", "delta_not_a_string", _set("response.output_text.delta", ("delta",), 7),
     "responses_stream_events_conform", {"responses_stream_text_matches"}),
    ("messages", "no_message_stop", _drop("message_stop"), "messages_stream_message_framing", set()),
    ("messages", "message_start_twice", _twice("message_start"), "messages_stream_message_framing", set()),
    ("messages", "no_message_delta", _drop("message_delta"), "messages_stream_message_framing",
     {"messages_stream_stop_reason_and_usage"}),
    ("messages", "delta_after_block_stop", _delta_after_stop, "messages_stream_blocks_in_order", set()),
    ("messages", "block_index_starts_at_1", _block_index_skips, "messages_stream_blocks_in_order", set()),
    ("messages", "block_never_stopped", _drop("content_block_stop"), "messages_stream_blocks_in_order", set()),
    ("messages", "wrong_delta_type", _set("content_block_delta", ("delta", "type"), "input_json_delta"),
     "messages_stream_blocks_in_order", {"messages_stream_events_conform"}),
    ("messages", "no_stop_reason", _set("message_delta", ("delta", "stop_reason"), None),
     "messages_stream_stop_reason_and_usage", set()),
    ("messages", "no_output_tokens", _set("message_delta", ("usage", "output_tokens"), _DELETE),
     "messages_stream_stop_reason_and_usage", {"messages_stream_events_conform"}),
    ("messages", "unknown_event_type", _set("ping", ("type",), "pong"), "messages_stream_events_conform",
     set()),
]


@pytest.mark.parametrize(("scenario", "change", "caught_by", "also"), [m[:1] + m[2:] for m in MUTATIONS],
                         ids=[m[1] for m in MUTATIONS])
def test_each_broken_rule_is_caught_by_its_check(streams: dict[str, TimedStream], scenario: str,
                                                 change: Callable[[Payloads], Payloads], caught_by: str,
                                                 also: set[str]) -> None:
    failed = failing(scenario, with_payloads(streams[scenario], change))
    assert caught_by in failed
    assert failed - {caught_by} <= also, f"unrelated checks failed: {sorted(failed - {caught_by} - also)}"


def test_an_event_name_that_is_not_its_type_is_caught(streams: dict[str, TimedStream]) -> None:
    stream = streams["responses"]
    events = (*stream.events[:3], replace(stream.events[3], event="message"), *stream.events[4:])
    assert failing("responses", replace(stream, events=events)) == {"responses_stream_events_conform"}


def _timed(stream: TimedStream, times: list[float]) -> TimedStream:
    return replace(stream, events=tuple(replace(e, t_s=t) for e, t in zip(stream.events, times, strict=False)))


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_a_stream_held_back_then_sent_in_one_piece_is_caught(streams: dict[str, TimedStream], scenario: str) -> None:
    stream = streams[scenario]
    count = len(stream.events)
    held = _timed(stream, [1.5 + 0.0001 * i for i in range(count)])
    assert failing(scenario, held) == {"stream_delivered_incrementally"}
    paced = _timed(stream, [0.3 + 0.05 * i for i in range(count)])  # a slow first token, then paced events
    assert failing(scenario, paced) == set()
    slow_start = _timed(stream, [2.0 + 0.02 * i for i in range(count)])  # a long queue, then real streaming
    assert failing(scenario, slow_start) == set()
    quick = _timed(stream, [0.01] * count)  # too fast to tell: not judged a failure
    assert failing(scenario, quick) == set()
