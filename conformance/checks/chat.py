"""Checks of what a chat completion says beyond its shape: the tool loop, one body across providers,
structured output.

Source: 001 "What you can do": "everything from one-shot completions to multi-turn agentic loops"
and "Call tools - register JSON-schema function definitions and let the model decide when to invoke
them" (the OpenAI tool-calling contract: the assistant turn's ``tool_calls`` sent back, then a
``tool`` message per call with its ``tool_call_id``, answered by the next assistant turn); 001
"Provider routing": the gateway normalises vendors' differences "so the same request body works across
vendors"; "Enforce structured output - use response_format: 'json_schema' to get strictly-typed JSON
without parsing".
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
from jsonschema.validators import validator_for

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


STRUCTURED_SOURCE = "001 What you can do (Enforce structured output)"


@check(capability="chat.structured_output", source=STRUCTURED_SOURCE)
def structured_output_honours_schema(exchange: Exchange, operation: Operation) -> None:
    """The answer to a ``json_schema`` structured-output request is JSON valid against the whole schema
    the request sent, with format checking on (jsonschema's format checker: date-time, date, email,
    uri, uuid, ipv4...): pattern, multipleOf, uniqueItems, lengths, enums, ``$defs``, anyOf, nesting,
    ``additionalProperties``. Judges every choice's ``message.content`` of a chat completion, the
    joined ``delta.content`` of each choice of a chat stream, and every ``output_text`` of a Responses
    answer (schema at ``text.format.schema``). Fails on a non-200, no content (a refusal included),
    content that is not JSON, or the first schema violation (its path and keyword)."""
    name = "structured_output_honours_schema"
    request = exchange.request_body if isinstance(exchange.request_body, Mapping) else {}
    if "response_format" in request:
        schema = ((request.get("response_format") or {}).get("json_schema") or {}).get("schema")
    else:
        schema = ((request.get("text") or {}).get("format") or {}).get("schema")
    if not isinstance(schema, Mapping):
        raise CheckFailure(name, "a request that sends a json_schema", "no schema in the request", exchange.evidence())
    if exchange.status != 200:
        raise CheckFailure(name, "200 with structured output", f"{exchange.status} {exchange.body[:160]!r}",
                           exchange.evidence())
    cls = validator_for(schema, default=jsonschema.Draft202012Validator)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    contents = list(_structured_contents(exchange))
    if not contents:
        raise CheckFailure(name, "content to judge", exchange.body[:200].decode("utf-8", "replace"),
                           exchange.evidence())
    for where, content in contents:
        if not isinstance(content, str):
            raise CheckFailure(name, f"{where}: JSON text valid against the request's schema",
                               f"{content!r} (no content)"[:200], exchange.evidence())
        try:
            value = json.loads(content)
        except ValueError:
            raise CheckFailure(name, f"{where}: JSON text", content[:200], exchange.evidence()) from None
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is not None:
            at = "/".join(map(str, error.absolute_path)) or "(root)"
            keyword = "/".join(map(str, error.absolute_schema_path))
            raise CheckFailure(name, f"{where}: valid against the request's schema ({keyword})",
                               f"at {at}: {error.message[:200]}", exchange.evidence())


def _structured_contents(exchange: Exchange) -> Iterator[tuple[str, Any]]:
    """(where, content) of each answer a structured-output exchange holds: chat choices (whole or
    streamed) or Responses ``output_text`` parts."""
    if exchange.media_type == "text/event-stream":
        joined: dict[int, str] = {}
        for data in exchange.sse_data():
            try:
                chunk = json.loads(data)
            except ValueError:
                continue  # [DONE]; the stream checks judge the framing
            for choice in chunk.get("choices") or [] if isinstance(chunk, dict) else []:
                piece = (choice.get("delta") or {}).get("content")
                if isinstance(piece, str):
                    joined[choice.get("index", 0)] = joined.get(choice.get("index", 0), "") + piece
        for index, text in sorted(joined.items()):
            yield f"choices[{index}] streamed content", text
        return
    body = exchange.json()
    if not isinstance(body, dict):
        return
    for index, choice in enumerate(body.get("choices") or []):
        message = choice.get("message") or {} if isinstance(choice, dict) else {}
        yield f"choices[{index}].message.content", message.get("content") or message.get("refusal")
    for i_index, item in enumerate(body.get("output") or []):
        for c_index, part in enumerate(item.get("content") or [] if isinstance(item, dict) else []):
            if isinstance(part, dict) and part.get("type") in ("output_text", "refusal"):  # a refusal has no text
                yield f"output[{i_index}].content[{c_index}]", part.get("text")
