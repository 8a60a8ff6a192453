"""POST /v1/messages: the Anthropic Messages protocol of the multi-protocol gateway.

003 "Messages image input" gives the blocks (text, and image whose ``source`` is a URL or base64
data) and "Multimodal input" the rule that a model takes only its own media types; every other
field mirrors Anthropic's Messages API (``x-mirrors: anthropic`` in spec/multi_protocol.yaml). The
key (``x-api-key``), the ``anthropic-version`` header, the body's schema and the error envelope are
the pipeline's; this module answers. Answers are deterministic for the mock's seed and the request.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from starlette.responses import JSONResponse, Response

from mock_server.catalogue import Model
from mock_server.context import Call, Services
from mock_server.errors import ApiError
from mock_server.handlers import handles
from mock_server.handlers.chat import ANSWER_TOKENS, PART_TOKENS
from mock_server.handlers.responses import new_id
from mock_server.sse import typed_sse_response
from mock_server.textgen import count_tokens, pieces, rng_for, safe_instance_of, sentence

#: Content block ``type`` -> the input modality it needs (003 "Multimodal input").
BLOCK_MODALITY: Mapping[str, str] = {"image": "image"}
#: Prompt tokens of an image block: the Chat Completions rate of an image part.
IMAGE_TOKENS = PART_TOKENS["image_url"]
#: Leading bytes of each base64 ``media_type`` the protocol accepts, to check the data is that image.
MAGIC: Mapping[str, tuple[bytes, ...]] = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}


@handles("createMessage")
async def create_message(call: Call) -> Response:
    """Answer a Messages request with a ``message``, or its SSE events when ``stream`` is true.

    With a chosen tool the content is one tool_use block (``input`` valid against its
    ``input_schema``; never cut) and stop_reason ``tool_use``; else one text block, ended by the
    first of ``stop_sequences`` (stop_reason ``stop_sequence``), ``max_tokens`` tokens
    (``max_tokens``) or its natural end (``end_turn``). Raises ApiError 404 for an unknown model;
    400 for a block the model does not take (naming ``messages[i].content[j]``), base64 image data
    that is not the stated ``media_type``, tools on a model without them, or a tool_choice naming
    no declared tool.
    """
    body = call.body
    services = call.services
    model = _model(services, body["model"], call.operation.operation_id)
    messages = body["messages"]
    _check_blocks(model, messages)
    tools = body.get("tools") or []
    if tools and not model.tools:
        raise ApiError(400, f"tools: model '{model.id}' does not support tools.", param="tools")
    rng = rng_for(services.config.seed, "messages", model.id, body.get("system"), messages, tools)
    tool = _chosen_tool(tools, body.get("tool_choice") or {"type": "auto"}, messages)
    stop_sequence = None
    if tool is not None:
        arguments = safe_instance_of(tool["input_schema"], rng)
        block: dict[str, Any] = {"type": "tool_use", "id": new_id(services, "toolu"), "name": tool["name"],
                                 "input": arguments if isinstance(arguments, dict) else {}}
        stop_reason = "tool_use"
    else:
        text, stop_reason, stop_sequence = _text(sentence(rng, ANSWER_TOKENS), int(body["max_tokens"]),
                                                 body.get("stop_sequences") or [])
        block = {"type": "text", "text": text}
    usage = {"input_tokens": _input_tokens(body.get("system"), messages), "output_tokens": _output_tokens(block),
             "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "service_tier": "standard"}
    message = {"id": new_id(services, "msg"), "type": "message", "role": "assistant", "model": model.id,
               "content": [block], "stop_reason": stop_reason, "stop_sequence": stop_sequence, "usage": usage}
    if body.get("stream"):
        return typed_sse_response(_events(message))
    return JSONResponse(message)


@handles("countMessageTokens")
async def count_message_tokens(call: Call) -> Response:
    """``{"input_tokens": n}``: the ``usage.input_tokens`` :func:`create_message` reports for the same
    model, system and messages (Anthropic's ``messages.count_tokens``). Raises what
    :func:`create_message` raises for the model and the blocks (404 unknown model, 400 naming a block
    the model does not take or base64 data that is not its media type, tools on a model without them).
    """
    body = call.body
    model = _model(call.services, body["model"], call.operation.operation_id)
    _check_blocks(model, body["messages"])
    tools = body.get("tools") or []
    if tools and not model.tools:
        raise ApiError(400, f"tools: model '{model.id}' does not support tools.", param="tools")
    return JSONResponse({"input_tokens": _input_tokens(body.get("system"), body["messages"])})


def _model(services: Services, model_id: str, operation_id: str) -> Model:
    """The catalogue entry (or the operation's stand-in, ``unknown_models``); ApiError 404 not_found_error
    if unknown, 400 if it is a media-only model."""
    model = services.catalogue.find(model_id, operation_id)
    if model is None:
        raise ApiError(404, f"model: {model_id}", param="model")
    if "chat" not in model.serves:  # 000 "Picking the right endpoint": media models have their own endpoints
        raise ApiError(400, f"model: '{model_id}' does not support messages.", param="model")
    return model


def _blocks(content: str | Sequence[Mapping[str, Any]]) -> Sequence[Mapping[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _check_blocks(model: Model, messages: Sequence[Mapping[str, Any]]) -> None:
    """003 "Multimodal input": an image block (also inside a tool_result) needs a model that takes images;
    base64 data must decode to the stated ``media_type``."""
    for m_index, message in enumerate(messages):
        for b_index, block in enumerate(_blocks(message["content"])):
            where = f"messages[{m_index}].content[{b_index}]"
            nested = block.get("content") if block["type"] == "tool_result" else None
            inner = [(f"{where}.content[{i}]", b) for i, b in enumerate(nested)] if isinstance(nested, list) else []
            for param, item in [(where, block), *inner]:
                _check_block(model, param, item)


def _check_block(model: Model, param: str, block: Mapping[str, Any]) -> None:
    modality = BLOCK_MODALITY.get(block["type"], "text")
    if modality not in model.input:
        raise ApiError(400, f"{param}: model '{model.id}' does not accept '{block['type']}' blocks "
                       f"(it takes: {', '.join(sorted(model.input))}).", param=param)
    source = block.get("source") or {}
    if source.get("type") == "base64":
        try:
            data = base64.b64decode(source["data"], validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, f"{param}.source.data: invalid base64 data.", param=f"{param}.source.data") from None
        if not data.startswith(MAGIC[source["media_type"]]):
            raise ApiError(400, f"{param}.source.data: the image does not match the provided media type "
                           f"{source['media_type']}.", param=f"{param}.source.data")


def _chosen_tool(tools: Sequence[Mapping[str, Any]], choice: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]
                 ) -> Mapping[str, Any] | None:
    """The tool to use, or None for a text answer: ``any`` uses the first, ``tool`` the named one, ``auto``
    the first unless the last user turn carries a tool_result (the model has its result)."""
    kind = choice["type"]
    if kind == "tool":
        name = choice.get("name")
        for tool in tools:
            if tool["name"] == name:
                return tool
        raise ApiError(400, f"tool_choice.name: '{name}' is not among the tools.", param="tool_choice.name")
    if not tools or kind == "none":
        return None
    answered = any(block["type"] == "tool_result" for block in _blocks(messages[-1]["content"]))
    return tools[0] if kind == "any" or not answered else None


def _text(text: str, max_tokens: int, stop_sequences: Sequence[str]) -> tuple[str, str, str | None]:
    """``(text, stop_reason, stop_sequence)``: the text within ``max_tokens`` tokens, ended before the
    earliest stop sequence it contains."""
    tokens = pieces(text)
    text = "".join(tokens[:max_tokens])
    found = [(text.find(seq), seq) for seq in stop_sequences if seq and seq in text]
    if found:
        position, sequence = min(found)
        return text[:position], "stop_sequence", sequence
    return text, ("max_tokens" if len(tokens) > max_tokens else "end_turn"), None


def _input_tokens(system: str | Sequence[Mapping[str, Any]] | None, messages: Sequence[Mapping[str, Any]]) -> int:
    """Prompt tokens: the system prompt, 3 per message, and each block's text, JSON or image rate."""
    total = sum(_block_tokens(block) for block in _blocks(system or []))
    for message in messages:
        total += 3 + sum(_block_tokens(block) for block in _blocks(message["content"]))
    return total


def _block_tokens(block: Mapping[str, Any]) -> int:
    kind = block["type"]
    if kind == "image":
        return IMAGE_TOKENS
    if kind == "tool_result":
        return sum(_block_tokens(inner) for inner in _blocks(block.get("content") or []))
    return _output_tokens(block)


def _output_tokens(block: Mapping[str, Any]) -> int:
    if block["type"] == "tool_use":
        return count_tokens(block["name"] + json.dumps(block["input"]))
    return count_tokens(block.get("text") or block.get("thinking") or "")


def _events(message: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The stream of a finished ``message`` (Anthropic streaming): message_start, per block
    content_block_start (a ping after the first), its deltas and content_block_stop, then
    message_delta (stop_reason, cumulative usage) and message_stop."""
    usage = message["usage"]
    yield {"type": "message_start", "message": {**message, "content": [], "stop_reason": None, "stop_sequence": None,
                                                "usage": {**usage, "output_tokens": 0}}}
    for index, block in enumerate(message["content"]):
        if block["type"] == "tool_use":
            yield {"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}}
            deltas = [{"type": "input_json_delta", "partial_json": p} for p in pieces(json.dumps(block["input"]))]
        else:
            yield {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            deltas = [{"type": "text_delta", "text": p} for p in pieces(block["text"])]
        if index == 0:
            yield {"type": "ping"}
        for delta in deltas:
            yield {"type": "content_block_delta", "index": index, "delta": delta}
        yield {"type": "content_block_stop", "index": index}
    yield {"type": "message_delta",
           "delta": {"stop_reason": message["stop_reason"], "stop_sequence": message["stop_sequence"]},
           "usage": {"input_tokens": usage["input_tokens"], "output_tokens": usage["output_tokens"]}}
    yield {"type": "message_stop"}
