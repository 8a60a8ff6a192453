"""Checks of chat completion conversations beyond one request: the tool loop, one body across providers.

Source: 001 "What you can do": "everything from one-shot completions to multi-turn agentic loops"
and "Call tools - register JSON-schema function definitions and let the model decide when to invoke
them" (the OpenAI tool-calling contract: the assistant turn's ``tool_calls`` sent back, then a
``tool`` message per call with its ``tool_call_id``, answered by the next assistant turn); 001
"Provider routing": the gateway normalises vendors' differences "so the same request body works across
vendors".
"""

from __future__ import annotations

from typing import Any

from conformance.checks import check
from conformance.failures import CheckFailure
from conformance.http import Exchange
from spec import Operation

SOURCE = "001 What you can do (multi-turn agentic loops; Call tools)"


def _choice(name: str, exchange: Exchange, turn: str) -> dict[str, Any]:
    body = exchange.json()
    choices = body.get("choices") if isinstance(body, dict) else None
    if exchange.status != 200 or not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise CheckFailure(name, f"{turn}: 200 with a choice", f"{exchange.status} {str(body)[:160]}",
                           exchange.evidence())
    return choices[0]


@check(capability="chat.tools", source=SOURCE)
def tool_result_turn_answered(call_turn: Exchange, result_turn: Exchange, operation: Operation) -> None:
    """A conversation that sends back the assistant's ``tool_calls`` and a ``tool`` result for each is
    answered by an assistant turn: 200, ``finish_reason`` ``stop`` or ``length``, text content. The first
    turn (``tool_choice: required``) must have produced the call: ``finish_reason`` ``tool_calls`` and
    at least one call with an id."""
    name = "tool_result_turn_answered"
    first = _choice(name, call_turn, "the turn that calls the tool")
    calls = (first.get("message") or {}).get("tool_calls") or []
    if first.get("finish_reason") != "tool_calls" or not calls or not all(
            isinstance(call, dict) and call.get("id") for call in calls):
        raise CheckFailure(name, "the first turn: finish_reason tool_calls with calls that have ids",
                           f"finish_reason {first.get('finish_reason')!r}, tool_calls {str(calls)[:160]}",
                           call_turn.evidence())
    answer = _choice(name, result_turn, "the turn after the tool results")
    content = (answer.get("message") or {}).get("content")
    if answer.get("finish_reason") not in ("stop", "length") or not isinstance(content, str) or not content:
        raise CheckFailure(name, "an assistant answer to the tool results: finish_reason stop, text content",
                           f"finish_reason {answer.get('finish_reason')!r}, content {str(content)[:120]!r}",
                           result_turn.evidence())


@check(capability="chat.routing", source='001 Provider routing ("the same request body works across vendors")')
def same_body_across_providers(answers: dict[str, Exchange], operation: Operation) -> None:
    """One chat request body (a ``developer`` message and ``max_tokens``, the differences 001 says the
    gateway normalises) sent with the model of each provider (``answers``: provider name -> its answer)
    is answered by every one: 200 ``chat.completion`` whose first choice has text content. Needs two
    providers or more."""
    name = "same_body_across_providers"
    if len(answers) < 2:
        raise ValueError("same_body_across_providers needs the answers of two providers or more")
    for provider, exchange in answers.items():
        body = exchange.json()
        content = (_choice(name, exchange, f"the {provider} model").get("message") or {}).get("content")
        if body.get("object") != "chat.completion" or not isinstance(content, str) or not content:
            raise CheckFailure(name, f"the {provider} model: a chat.completion with text content",
                               f"object {body.get('object')!r}, content {str(content)[:120]!r}", exchange.evidence())
