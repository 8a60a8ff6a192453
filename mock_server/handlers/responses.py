"""POST /v1/responses: the OpenAI Responses protocol of the multi-protocol gateway.

003 "Responses image input" gives the content parts (input_text, input_image with ``image_url`` a
string and ``detail``) and "Multimodal input" the rule that a model takes only its own media types;
every other field mirrors OpenAI's Responses API (``x-mirrors: openai`` in spec/multi_protocol.yaml).
The mock keeps no state: ``previous_response_id`` and ``store`` are echoed, never looked up.
Answers are deterministic for the mock's seed and the request.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from starlette.responses import JSONResponse, Response

from mock_server.catalogue import Model
from mock_server.context import Call, Services
from mock_server.errors import ApiError
from mock_server.handlers import handles
from mock_server.handlers.chat import ANSWER_TOKENS, PART_TOKENS
from mock_server.handlers.chat import _model as known_model
from mock_server.sse import typed_sse_response
from mock_server.structured import answers as structured_answers
from mock_server.structured import check_nesting, require_support
from mock_server.textgen import HashRandom, count_tokens, key_for, pieces, safe_instance_of, sentence

#: Input content part ``type`` -> the input modality it needs (003 "Multimodal input").
PART_MODALITY: Mapping[str, str] = {
    "input_text": "text",
    "output_text": "text",
    "refusal": "text",
    "input_image": "image",
    "input_file": "file",
}
#: Prompt tokens of a non-text part: the Chat Completions rates of the same media.
RESPONSES_PART_TOKENS: Mapping[str, int] = {"input_image": PART_TOKENS["image_url"], "input_file": PART_TOKENS["file"]}


def new_id(services: Services, prefix: str) -> str:
    """An id in the protocol's style, ``<prefix>_<24 hex>`` (``resp_...``, ``msg_...``, ``fc_...``)."""
    return f"{prefix}_{services.new_id(prefix).split('-', 1)[1]}"


@handles("createResponse")
async def create_response(call: Call) -> Response:
    """Answer a Responses request with a ``response`` object, or its SSE events when ``stream`` is true.

    The output is one function_call item when a tool is chosen (arguments valid against its
    ``parameters``; never cut), else one message item with an output_text part, cut to
    ``max_output_tokens`` tokens with status ``incomplete``. Raises ApiError 400 for an unknown
    model, a content part the model does not take (``param`` ``input[i].content[j]``), tools or a
    non-text ``text.format`` on a model without them, or a tool_choice naming no declared tool.
    """
    body = call.body
    services = call.services
    model = known_model(services, body["model"], call.operation.operation_id)
    items = _items(body["input"])
    _check_parts(model, items)
    tools = body.get("tools") or []
    if tools and not model.tools:
        raise ApiError(400, f"Model '{model.id}' does not support tools.", param="tools")
    text_format = (body.get("text") or {}).get("format") or {"type": "text"}
    wants_schema = text_format.get("type") == "json_schema"
    if wants_schema:  # checked before the key, which hashes the schema
        require_support(model, "json_schema", "text.format")
        check_nesting(text_format.get("schema"), "text.format.schema")
    key = key_for(services.config.seed, "responses", model.id, body["input"], body.get("instructions"), tools,
                  text_format)
    rng = HashRandom(key)
    tool = _chosen_tool(tools, body.get("tool_choice"), items)
    structured = None if not wants_schema else (await structured_answers(
        text_format.get("schema") or {"type": "object"}, [key], param="text.format.schema",
        name=text_format.get("name", ""), strict=text_format.get("strict") is True))[0]
    status, incomplete = "completed", None
    if tool is not None:
        arguments = json.dumps(safe_instance_of(tool.get("parameters") or {"type": "object"}, rng))
        item: dict[str, Any] = {"type": "function_call", "id": new_id(services, "fc"),
                                "call_id": new_id(services, "call"), "name": tool["name"], "arguments": arguments,
                                "status": "completed"}
        output_tokens = count_tokens(tool["name"] + arguments)
    else:
        tokens = pieces(structured if structured is not None else _text(model, text_format, rng))
        limit = body.get("max_output_tokens")
        if limit is not None and len(tokens) > int(limit):
            tokens = tokens[: int(limit)]
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
        text = "".join(tokens)
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item = {"type": "message", "id": new_id(services, "msg"), "status": status, "role": "assistant",
                "content": [part]}
        output_tokens = len(tokens)
    input_tokens = count_tokens(body.get("instructions") or "") + _input_tokens(items)
    usage = {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
             "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": 0},
             "total_tokens": input_tokens + output_tokens}
    response = _response_object(new_id(services, "resp"), model, body, text_format)
    response.update(status=status, incomplete_details=incomplete, output=[item], usage=usage)
    if body.get("stream"):
        return typed_sse_response(_events(response))
    return JSONResponse(response)


def _items(value: str | Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The input as items; a string is one user message, a message's string content one input_text part."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    items = []
    for item in value:
        content = item.get("content")
        if isinstance(content, str):
            item = {**item, "content": [{"type": "input_text", "text": content}]}
        items.append(item)
    return items


def _check_parts(model: Model, items: Sequence[Mapping[str, Any]]) -> None:
    """003 "Multimodal input": whether a model supports a media type depends on the model."""
    for i_index, item in enumerate(items):
        for p_index, part in enumerate(item.get("content") or []):
            modality = PART_MODALITY.get(part["type"], part["type"])
            if modality not in model.input:
                raise ApiError(400, f"Model '{model.id}' does not accept '{part['type']}' content parts "
                               f"(it takes: {', '.join(sorted(model.input))}).",
                               param=f"input[{i_index}].content[{p_index}]", code="unsupported_content_part")


def _chosen_tool(tools: Sequence[Mapping[str, Any]], choice: Any, items: Sequence[Mapping[str, Any]]
                 ) -> Mapping[str, Any] | None:
    """The function to call, or None for a text answer; ``auto`` calls the first tool unless the last
    input item is a function_call_output (the model has its result and answers in text)."""
    if choice == "none":
        return None
    if isinstance(choice, Mapping):
        for tool in tools:
            if tool["name"] == choice["name"]:
                return tool
        raise ApiError(400, f"tool_choice names '{choice['name']}', which is not among the tools.",
                       param="tool_choice.name")
    if tools and (choice == "required" or items[-1].get("type") != "function_call_output"):
        return tools[0]
    return None


def _text(model: Model, text_format: Mapping[str, Any], rng: Any) -> str:
    """The answer's text: prose, or JSON for ``text.format`` json_object (json_schema: ``mock_server.structured``)."""
    kind = text_format.get("type", "text")
    require_support(model, kind, "text.format")
    if kind == "json_object":
        return json.dumps({"answer": sentence(rng, 8)})
    return sentence(rng, ANSWER_TOKENS)


def _input_tokens(items: Sequence[Mapping[str, Any]]) -> int:
    """Prompt tokens: 3 per item, text by :func:`count_tokens`, other parts by :data:`RESPONSES_PART_TOKENS`."""
    total = 0
    for item in items:
        total += 3
        for part in item.get("content") or []:
            text = part.get("text", part.get("refusal"))
            total += count_tokens(text) if isinstance(text, str) else RESPONSES_PART_TOKENS.get(part["type"], 0)
        for key in ("arguments", "output"):
            total += count_tokens(item.get(key) or "")
        total += sum(count_tokens(s.get("text", "")) for s in item.get("summary") or [])
    return total


def _response_object(response_id: str, model: Model, body: Mapping[str, Any], text_format: Any) -> dict[str, Any]:
    """A ``response`` in progress, echoing the request's settings (OpenAI's defaults where absent)."""
    def given(name: str, default: Any) -> Any:
        value = body.get(name)
        return default if value is None else value

    return {
        "id": response_id, "object": "response", "created_at": int(time.time()), "status": "in_progress",
        "error": None, "incomplete_details": None, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "model": model.id, "output": [],
        "parallel_tool_calls": given("parallel_tool_calls", True),
        "previous_response_id": body.get("previous_response_id"),
        "reasoning": given("reasoning", {"effort": None, "summary": None}), "store": given("store", True),
        "temperature": given("temperature", 1.0), "text": {"format": text_format},
        "tool_choice": given("tool_choice", "auto"), "tools": body.get("tools") or [], "top_p": given("top_p", 1.0),
        "truncation": given("truncation", "disabled"), "usage": None, "user": body.get("user"),
        "metadata": given("metadata", {}),
    }


def _events(response: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The stream of a finished ``response``: created, in_progress, each item's added/delta/done events,
    then completed (or incomplete); ``sequence_number`` counts up from 0 (OpenAI Responses streaming)."""
    sequence = itertools.count()

    def event(kind: str, **fields: Any) -> dict[str, Any]:
        return {"type": kind, "sequence_number": next(sequence), **fields}

    pending = {**response, "status": "in_progress", "incomplete_details": None, "output": [], "usage": None}
    yield event("response.created", response=pending)
    yield event("response.in_progress", response=pending)
    for index, item in enumerate(response["output"]):
        if item["type"] == "message":
            yield event("response.output_item.added", output_index=index,
                        item={**item, "status": "in_progress", "content": []})
            for c_index, part in enumerate(item["content"]):
                where = {"item_id": item["id"], "output_index": index, "content_index": c_index}
                yield event("response.content_part.added", **where, part={**part, "text": ""})
                for piece in pieces(part["text"]):
                    yield event("response.output_text.delta", **where, delta=piece, logprobs=[])
                yield event("response.output_text.done", **where, text=part["text"], logprobs=[])
                yield event("response.content_part.done", **where, part=part)
        else:
            yield event("response.output_item.added", output_index=index,
                        item={**item, "status": "in_progress", "arguments": ""})
            for piece in pieces(item["arguments"]):
                yield event("response.function_call_arguments.delta", item_id=item["id"], output_index=index,
                            delta=piece)
            yield event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                        name=item["name"], arguments=item["arguments"])
        yield event("response.output_item.done", output_index=index, item=item)
    final = "response.completed" if response["status"] == "completed" else "response.incomplete"
    yield event(final, response=response)
