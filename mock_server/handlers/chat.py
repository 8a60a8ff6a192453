"""POST /v1/chat/completions (001 "Chat Completions"; content parts of 000 and 003; 002 "Native
image generation").

The gateway's normalisation is modelled (001 "Provider routing"): a developer message counts as
system, and max_tokens and max_completion_tokens are both accepted. Answers are deterministic
for the mock's seed and the request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.responses import Response

from mock_server.catalogue import PART_MODALITY, Model
from mock_server.context import Call, Services
from mock_server.errors import ApiError
from mock_server.handlers import handles
from mock_server.handlers.billing import bill
from mock_server.jsoncodec import dumps, json_bytes_response
from mock_server.media import data_url, image_bytes
from mock_server.sse import sse_response
from mock_server.structured import answers as structured_answers
from mock_server.structured import check_nesting, require_support
from mock_server.textgen import HashRandom, count_tokens, key_for, pieces, safe_instance_of, sentence, sentence_for

#: Prompt tokens a non-text content part counts for (the documents leave the rates open).
PART_TOKENS: Mapping[str, int] = {"image_url": 85, "input_audio": 50, "video_url": 300, "video": 100, "file": 200}
#: Image output tokens per generated image, as in 002's example response (1290).
IMAGE_TOKENS = 1290
#: Side of the square PNG a native image-output model returns, in px.
IMAGE_SIDE = 1024
#: Where a json_schema request's schema is (the ``param`` of its errors).
SCHEMA_PARAM = "response_format.json_schema.schema"
#: Tokens of a plain text answer when max_tokens does not cut it shorter.
ANSWER_TOKENS = 24
#: Whether the usual request takes :func:`_usual`'s short way (off: every request the general way, which
#: ``tests/test_fast_paths.py`` compares it with).
USUAL_WAY = True


@dataclass(slots=True)
class Answer:
    """One choice's output before it is rendered as a message or as stream deltas."""

    content: str | None
    finish_reason: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    images: list[dict[str, Any]] = field(default_factory=list)
    content_tokens: int | None = None
    """Tokens of ``content`` when already known (counted on demand otherwise)."""

    @property
    def text_tokens(self) -> int:
        content = self.content_tokens if self.content_tokens is not None else count_tokens(self.content or "")
        if not self.tool_calls:
            return content
        return content + sum(count_tokens(c["function"]["name"] + c["function"]["arguments"]) for c in self.tool_calls)

    @property
    def image_tokens(self) -> int:
        return IMAGE_TOKENS * len(self.images)


@handles("createChatCompletion")
async def create_chat_completion(call: Call) -> Response:
    """Answer a chat completion, as one ``chat.completion`` or an SSE stream of chunks.

    Raises ApiError 400 for an unknown model, a content part the model does not take, tools or
    json_schema on a model without them, a tool_choice naming no declared tool, or a json_schema
    the mock cannot answer (``mock_server.structured``: param ``response_format.json_schema.schema...``);
    402 billing_error when the answer's tokens would take the key past its spend limit
    (``handlers/billing.py``).
    """
    body = call.body
    model = _model(call.services, body["model"], call.operation.operation_id)
    messages = [_normalise(message) for message in body["messages"]]
    _check_parts(model, messages)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    limit = None if limit is None else int(limit)  # JSON Schema integers may arrive as 2.0
    choices = int(body.get("n") or 1)
    response_format = body.get("response_format") or {}
    wanted = response_format.get("json_schema") if response_format.get("type") == "json_schema" else None
    if (USUAL_WAY and choices == 1 and response_format.get("type", "text") == "text" and not body.get("tools")
            and "tool_choice" not in body and (limit is None or limit >= ANSWER_TOKENS)
            and "image" not in model.output and not body.get("stream") and call.services.fleet is None):
        return _usual(call, model, body, messages)
    if wanted is not None:  # before the keys, which hash the schema
        require_support(model, "json_schema", "response_format")
        check_nesting(wanted.get("schema"), SCHEMA_PARAM)
    keys = [key_for(call.services.config.seed, model.id, messages, body.get("tools"), body.get("response_format"),
                    index) for index in range(choices)]
    # 001 "Enforce structured output": each choice's content valid against the whole schema (strict: true
    # enforces OpenAI's strict-schema rules first)
    structured = None if wanted is None else await structured_answers(
        wanted.get("schema") or {"type": "object"}, keys, param=SCHEMA_PARAM, name=wanted.get("name", ""),
        strict=wanted.get("strict") is True)
    answers = [_answer(call.services, model, body, messages, key, structured[index] if structured else None, limit)
               for index, key in enumerate(keys)]
    usage = _usage(messages, answers)
    if model.price is not None:  # 002 "Pricing": per token, image output tokens among the output
        charging = bill(call, model.price.tokens_usd(usage["prompt_tokens"], usage["completion_tokens"]))
        if charging is not None:  # a fleet's shared spend (handlers/billing.py)
            await charging
    completion_id = call.services.new_id("chatcmpl")
    created = int(time.time())
    if body.get("stream"):
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return sse_response(_chunks(completion_id, created, model.id, answers, usage if include_usage else None))
    return json_bytes_response(_rendered(completion_id, created, model.id, answers, usage))


def _usual(call: Call, model: Model, body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]]) -> Response:
    """The answer to the usual request in process (one choice, plain text, no tool, no image output, not
    streamed, max_tokens at least :data:`ANSWER_TOKENS` or none), as the general way gives it but without
    its per-choice lists, :class:`Answer` and usage dicts: a sentence of :data:`ANSWER_TOKENS` tokens,
    finish_reason ``stop``. Raises ApiError 402 as :func:`bill` does. ``tests/test_fast_paths.py``
    compares the two ways."""
    services = call.services
    key = key_for(services.config.seed, model.id, messages, body.get("tools"), body.get("response_format"), 0)
    content = sentence_for(key, ANSWER_TOKENS)
    prompt = _prompt_tokens(messages)
    if model.price is not None:  # 002 "Pricing"; in process the charge is made at once (None to await)
        bill(call, model.price.tokens_usd(prompt, ANSWER_TOKENS))
    completion_id, created = services.new_id("chatcmpl"), int(time.time())
    rendered = _one_text_choice(completion_id, created, model.id, content, "stop", prompt, ANSWER_TOKENS, 0)
    if rendered is None:  # a model id orjson refuses: the general rendering
        answer = Answer(content, "stop", content_tokens=ANSWER_TOKENS)
        rendered = _rendered(completion_id, created, model.id, [answer], _usage(messages, [answer]))
    return json_bytes_response(rendered)


def _completion(completion_id: str, created: int, model_id: str, answers: Sequence[Answer],
                usage: dict[str, Any]) -> dict[str, Any]:
    """The ``chat.completion`` object of ``answers`` (``created`` in s since the epoch)."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model_id,
        "system_fingerprint": "fp_mock",
        "choices": [
            {"index": i, "message": _message(answer), "finish_reason": answer.finish_reason, "logprobs": None}
            for i, answer in enumerate(answers)
        ],
        "usage": usage,
    }


#: The JSON of a one-choice text :func:`_completion`, byte for byte as ``jsoncodec.dumps`` writes it, with
#: ``%`` slots for the id, created, model, content, finish_reason and the four counts of its usage.
_ONE_TEXT_CHOICE = (
    b'{"id":"%s","object":"chat.completion","created":%d,"model":%s,"system_fingerprint":"fp_mock",'
    b'"choices":[{"index":0,"message":{"role":"assistant","content":%s,"refusal":null},"finish_reason":"%s",'
    b'"logprobs":null}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d,'
    b'"completion_tokens_details":{"reasoning_tokens":0,"image_tokens":%d,"audio_tokens":0},'
    b'"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0}}}'
)


def _rendered(completion_id: str, created: int, model_id: str, answers: Sequence[Answer],
              usage: dict[str, Any]) -> bytes:
    """``jsoncodec.dumps(_completion(...))``; the usual answer (one text choice, no tool call, no image)
    filled into :data:`_ONE_TEXT_CHOICE` (:func:`_one_text_choice`) instead of built as nested dicts and
    serialised (about 6,600 instructions fewer a request). ``tests/test_fast_paths.py`` compares the two."""
    if len(answers) == 1:
        answer = answers[0]
        if answer.content is not None and not answer.tool_calls and not answer.images:
            rendered = _one_text_choice(completion_id, created, model_id, answer.content, answer.finish_reason,
                                        usage["prompt_tokens"], usage["completion_tokens"],
                                        usage["completion_tokens_details"]["image_tokens"])
            if rendered is not None:
                return rendered
    return dumps(_completion(completion_id, created, model_id, answers, usage))


def _one_text_choice(completion_id: str, created: int, model_id: str, content: str, finish_reason: str,
                     prompt_tokens: int, completion_tokens: int, image_tokens: int) -> bytes | None:
    """:data:`_ONE_TEXT_CHOICE` filled in (``created`` in s since the epoch); None when orjson refuses the
    model id or the content (a lone surrogate, which only the stdlib encodes). ``completion_id`` and
    ``finish_reason`` are plain ASCII ids (no character JSON escapes); the model id and the content are
    encoded by orjson, as in the whole."""
    try:
        model, text = orjson.dumps(model_id), orjson.dumps(content)
    except orjson.JSONEncodeError:
        return None
    return _ONE_TEXT_CHOICE % (completion_id.encode(), created, model, text, finish_reason.encode(), prompt_tokens,
                               completion_tokens, prompt_tokens + completion_tokens, image_tokens)


def _model(services: Services, model_id: str, operation_id: str) -> Model:
    """The chat model ``model_id`` (or the operation's stand-in, ``unknown_models``). Raises ApiError 400
    ``model_not_found`` for an unknown id, ``model_not_supported`` for a media-only model."""
    model = services.catalogue.find(model_id, operation_id)
    if model is None:
        known = ", ".join(sorted(services.models))
        raise ApiError(400, f"The model '{model_id}' does not exist. Known models: {known}.", param="model",
                       code="model_not_found")
    if "chat" not in model.serves:  # 000 "Picking the right endpoint": media models have their own endpoints
        raise ApiError(400, f"The model '{model_id}' does not support chat completions.", param="model",
                       code="model_not_supported")
    return model


def _normalise(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """001 "Provider routing": developer roles are rewritten to system (in a copy; other messages as sent)."""
    if message["role"] != "developer":
        return message
    return {**message, "role": "system"}


def _parts(message: Mapping[str, Any]) -> Sequence[Mapping[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return ({"type": "text", "text": content},)
    return content if isinstance(content, list) else ()


def _check_parts(model: Model, messages: Sequence[Mapping[str, Any]]) -> None:
    """003 "Multimodal input": whether a model supports a media type depends on the model."""
    for m_index, message in enumerate(messages):
        if isinstance(message.get("content"), str) and "text" in model.input:
            continue  # a plain text message (every chat model takes text)
        for p_index, part in enumerate(_parts(message)):
            modality = PART_MODALITY.get(part["type"], part["type"])
            if modality not in model.input:
                param = f"messages[{m_index}].content[{p_index}]"
                raise ApiError(400, f"Model '{model.id}' does not accept '{part['type']}' content parts "
                               f"(it takes: {', '.join(sorted(model.input))}).", param=param,
                               code="unsupported_content_part")


def _answer(services: Services, model: Model, body: Mapping[str, Any], messages: Sequence[Mapping[str, Any]],
            key: bytes, structured: str | None, limit: int | None) -> Answer:
    """One choice's answer from its random stream ``key`` (a generator is only built off the plain-text
    path, sentence_for); ``structured`` is its json_schema content, if the request asks for one."""
    tools = body.get("tools") or []
    if tools and not model.tools:
        raise ApiError(400, f"Model '{model.id}' does not support tools.", param="tools")
    tool = _chosen_tool(tools, body.get("tool_choice"), messages) if tools or "tool_choice" in body else None
    if tool is not None:
        function = tool["function"]
        arguments = json.dumps(safe_instance_of(function.get("parameters") or {"type": "object"}, HashRandom(key)))
        call = {"id": services.new_id("call"), "type": "function",
                "function": {"name": function["name"], "arguments": arguments}}
        return Answer(content=None, finish_reason="tool_calls", tool_calls=[call])
    text, known = (structured, None) if structured is not None else _text(model, body.get("response_format"), key)
    images = []
    if "image" in model.output:
        png = image_bytes(IMAGE_SIDE, IMAGE_SIDE, HashRandom(key).randrange(64))
        images.append({"type": "image_url", "image_url": {"url": data_url(png, "image/png")}})
    if limit is None or (known is not None and known <= limit):  # within the limit: no need to split it
        return Answer(content=text, finish_reason="stop", images=images, content_tokens=known)
    tokens = pieces(text)
    if len(tokens) > limit:
        return Answer(content="".join(tokens[:limit]), finish_reason="length", images=images, content_tokens=limit)
    return Answer(content=text, finish_reason="stop", images=images, content_tokens=len(tokens))


def _chosen_tool(tools: Sequence[Mapping[str, Any]], choice: Any, messages: Sequence[Mapping[str, Any]]
                 ) -> Mapping[str, Any] | None:
    """The tool to call, or None for a text answer. ``auto`` calls one unless the last turn was a tool result.
    Raises ApiError 400 naming ``tool_choice`` when it names a tool that is not among ``tools``, or asks for
    one (``required`` or a named function) with no ``tools`` at all (the mirrored OpenAI contract's
    "tool_choice is only allowed when tools are specified"; ``auto`` and ``none`` then mean a text answer)."""
    if not tools and (choice == "required" or isinstance(choice, Mapping)):
        raise ApiError(400, "tool_choice asks for a tool call, but no tools were given.", param="tool_choice")
    if not tools or choice == "none":
        return None
    if isinstance(choice, Mapping):
        name = choice["function"]["name"]
        for tool in tools:
            if tool["function"]["name"] == name:
                return tool
        raise ApiError(400, f"tool_choice names '{name}', which is not among the tools.", param="tool_choice")
    if choice == "required" or messages[-1]["role"] != "tool":
        return tools[0]
    return None


def _text(model: Model, response_format: Mapping[str, Any] | None, key: bytes) -> tuple[str, int | None]:
    """The answer's text from the stream of ``key``, and its token count when known without counting
    (a sentence of N tokens)."""
    kind = (response_format or {}).get("type", "text")
    require_support(model, kind, "response_format")
    if kind == "json_object":
        return json.dumps({"answer": sentence(HashRandom(key), 8)}), None
    if "image" in model.output:
        return "Here is the image you asked for.", None
    return sentence_for(key, ANSWER_TOKENS), ANSWER_TOKENS


def _prompt_tokens(messages: Sequence[Mapping[str, Any]]) -> int:
    total = 0
    for message in messages:
        total += 3  # role and separators
        content = message.get("content")
        if isinstance(content, str):  # a plain text message, the usual case: no part to build
            total += count_tokens(content)
        else:
            for part in _parts(message):
                total += count_tokens(part["text"]) if part["type"] == "text" else PART_TOKENS.get(part["type"], 0)
        total += IMAGE_TOKENS * len(message.get("images") or [])
        for tool_call in message.get("tool_calls") or []:
            total += count_tokens(tool_call["function"]["arguments"])
    return total


def _usage(messages: Sequence[Mapping[str, Any]], answers: Sequence[Answer]) -> dict[str, Any]:
    prompt = _prompt_tokens(messages)
    images = completion = 0
    for answer in answers:
        images += answer.image_tokens
        completion += answer.text_tokens
    completion += images
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": images, "audio_tokens": 0},
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
    }


def _message(answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content, "refusal": None}
    if answer.tool_calls:
        message["tool_calls"] = answer.tool_calls
    if answer.images:
        message["images"] = answer.images
    return message


def _chunks(completion_id: str, created: int, model: str, answers: Sequence[Answer],
            usage: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
    """The ``chat.completion.chunk`` payloads of a stream; with include_usage, a last chunk with usage."""
    base = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "fp_mock"}
    if usage is not None:
        base["usage"] = None

    def chunk(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
        return {**base, "choices": [choice]}

    for index, answer in enumerate(answers):
        yield chunk(index, {"role": "assistant", "content": "" if answer.content is not None else None})
        for piece in pieces(answer.content or ""):
            yield chunk(index, {"content": piece})
        for t_index, tool_call in enumerate(answer.tool_calls):
            head = {"index": t_index, "id": tool_call["id"], "type": "function",
                    "function": {"name": tool_call["function"]["name"], "arguments": ""}}
            yield chunk(index, {"tool_calls": [head]})
            for piece in pieces(tool_call["function"]["arguments"]):
                yield chunk(index, {"tool_calls": [{"index": t_index, "function": {"arguments": piece}}]})
        if answer.images:
            yield chunk(index, {"images": answer.images})
        yield chunk(index, {}, answer.finish_reason)
    if usage is not None:
        yield {**base, "choices": [], "usage": usage}
