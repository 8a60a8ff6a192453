"""Behavioural checks of POST /v1/chat/completions: streaming (structured output too), authentication and
rejections.

Each scenario sends one request, once per run; every check registered for it judges the answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from conformance.checks import REGISTRY, Check
from conformance.http import Exchange, TargetClient
from conformance.target import Target
from spec import Operation, find_operation

CHAT = find_operation("openai_gateway", "createChatCompletion")

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


#: A structured-output request's schema (001 "Enforce structured output"), streamed: the joined deltas
#: must honour pattern, format, uniqueItems, item counts and enum (the golden fixture judges the rest).
TICKET_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "ticket", "strict": True, "schema": {
        "type": "object", "additionalProperties": False, "required": ["ref", "opened", "labels", "priority"],
        "properties": {
            "ref": {"type": "string", "pattern": "^TCK-[0-9]{6}$"},
            "opened": {"type": "string", "format": "date-time"},
            "labels": {"type": "array", "items": {"type": "string", "enum": ["bug", "billing", "docs", "sdk"]},
                       "uniqueItems": True, "minItems": 2, "maxItems": 3},
            "priority": {"type": "integer", "enum": [1, 2, 3]},
        }}},
}


def _chat(target: Target, **extra: Any) -> dict[str, Any]:
    return {"model": target.model("chat"), "messages": [{"role": "user", "content": "Say hello."}], **extra}


#: scenario id -> (request body factory, headers, send the key?)
SCENARIOS: Mapping[str, tuple[Callable[[Target], Any], Mapping[str, str], bool]] = {
    "stream_with_usage": (lambda t: _chat(t, stream=True, stream_options={"include_usage": True}), {}, True),
    "stream_plain": (lambda t: _chat(t, stream=True), {}, True),
    "stream_tool_call": (lambda t: _chat(t, stream=True, tools=[WEATHER_TOOL], tool_choice="required"), {}, True),
    "stream_structured_output": (lambda t: _chat(t, stream=True, response_format=TICKET_FORMAT), {}, True),
    "no_key": (lambda t: _chat(t), {}, False),
    "invalid_key": (lambda t: _chat(t), {"Authorization": "Bearer sk-conformance-invalid-key"}, True),
    "missing_messages": (lambda t: {"model": t.model("chat")}, {}, True),
}

#: scenario id -> names of the checks that judge its answer
JUDGED_BY: Mapping[str, tuple[str, ...]] = {
    "stream_with_usage": ("stream_content_type", "stream_chunks_conform", "stream_ids_consistent",
                          "stream_ends_with_done", "stream_finish_reason", "stream_include_usage"),
    "stream_plain": ("stream_content_type", "stream_chunks_conform", "stream_ends_with_done",
                     "stream_finish_reason"),
    "stream_tool_call": ("stream_content_type", "stream_chunks_conform", "stream_ids_consistent",
                         "stream_ends_with_done", "stream_finish_reason"),
    "stream_structured_output": ("stream_chunks_conform", "stream_ends_with_done", "stream_finish_reason",
                                 "structured_output_honours_schema"),
    "no_key": ("missing_key_rejected", "error_envelope_conformance"),
    "invalid_key": ("invalid_key_rejected", "error_envelope_conformance"),
    "missing_messages": ("invalid_request_names_field", "error_envelope_conformance"),
}

PAIRS = [(scenario, REGISTRY[name]) for scenario, names in JUDGED_BY.items() for name in names]

pytestmark = pytest.mark.api("openai_gateway", operation="createChatCompletion")


@pytest.fixture(scope="session")
def answers() -> dict[str, Exchange]:
    """Answers already received, by scenario id: each scenario's request is sent once per run."""
    return {}


def _answer(scenario: str, client: TargetClient, target: Target, answers: dict[str, Exchange]) -> Exchange:
    if scenario not in answers:
        body, headers, auth = SCENARIOS[scenario]
        answers[scenario] = client.request("POST", CHAT.path, json_body=body(target), headers=headers,
                                           auth="bearer" if auth else None)
    return answers[scenario]


@pytest.mark.parametrize(("scenario", "check"), PAIRS, ids=[f"{s}-{c.name}" for s, c in PAIRS])
def test_chat_behaviour(scenario: str, check: Check, client: TargetClient, target: Target,
                        answers: dict[str, Exchange]) -> None:
    operation: Operation = CHAT
    check(_answer(scenario, client, target, answers), operation)


@pytest.mark.check("tool_result_turn_answered")
def test_tool_loop(client: TargetClient, target: Target) -> None:
    """One round of the tool loop: a forced call, then the call and its result sent back."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": "What is the weather in Paris?"}]
    call_turn = client.request("POST", CHAT.path, json_body={**_chat(target), "messages": messages,
                                                             "tools": [WEATHER_TOOL], "tool_choice": "required"})
    body = call_turn.json()
    message = body["choices"][0].get("message", {}) if isinstance(body, dict) and body.get("choices") else {}
    results = [{"role": "tool", "tool_call_id": call.get("id", ""), "content": '{"temperature_c": 18, "sky": "clear"}'}
               for call in message.get("tool_calls") or [] if isinstance(call, dict)]
    result_turn = client.request("POST", CHAT.path, json_body={
        **_chat(target), "tools": [WEATHER_TOOL],
        "messages": [*messages, {k: v for k, v in message.items() if k in ("role", "content", "tool_calls")},
                     *results]})
    REGISTRY["tool_result_turn_answered"](call_turn, result_turn, CHAT)


#: One body for every provider, with the differences 001 "Provider routing" says the gateway normalises:
#: a ``developer`` message (rewritten to system) and ``max_tokens`` (aligned with max_completion_tokens).
SAME_BODY: dict[str, Any] = {"messages": [{"role": "developer", "content": "Answer in one short sentence."},
                                          {"role": "user", "content": "Say hello."}], "max_tokens": 64}


@pytest.mark.check("same_body_across_providers")
def test_same_body_across_providers(client: TargetClient, target: Target) -> None:
    models = target.provider_models()
    if len(set(models.values())) < 2:
        pytest.skip("the target file names fewer than two provider_<name> models (one chat model per provider)")
    answers = {provider: client.request("POST", CHAT.path, json_body={"model": model, **SAME_BODY})
               for provider, model in models.items()}
    REGISTRY["same_body_across_providers"](answers, CHAT)
