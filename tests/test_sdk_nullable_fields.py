"""Where the official SDK takes ``null`` in an answer's field, the spec does too (issue 13).

OpenAI's API and its SDK mark many response fields optional *and* nullable (``Optional[...]`` in
the SDK's pydantic models: OpenAI's own answers carry ``"logprobs": null``, ``"refusal": null``,
``"service_tier": null``, and OpenAI-compatible gateways send ``"tool_calls": null`` or
``"usage": null`` on stream chunks). A spec that refuses the null would make the suite fail a
harmless, SDK-compatible answer. This test walks the installed ``openai`` SDK's models of the
documented answers and, for each field the spec also describes, requires the spec's schema to take
``null`` wherever the SDK does. It fails when a new SDK makes another field nullable.
"""

from __future__ import annotations

import typing
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from openai import BaseModel as SdkModel
from openai.types import ImagesResponse
from openai.types.audio import Transcription
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from spec import find_operation, resolve, response_schema, schema_validator

#: (api, operationId, media type, the SDK model of its 200 answer or of one event's payload)
ANSWERS = [
    ("openai_gateway", "createChatCompletion", "application/json", ChatCompletion),
    ("multi_protocol", "createChatCompletion", "application/json", ChatCompletion),
    ("openai_gateway", "createImage", "application/json", ImagesResponse),
    ("openai_gateway", "createTranscription", "application/json", Transcription),
]
#: Fields the SDK lets be null that the documents narrow to present values, with the reason.
NARROWED = {
    ("createChatCompletion", "usage"): "002 'Native image generation (Response)': a chat answer gives its usage "
                                      "(image tokens billed apart); the suite's usage checks rely on it",
    ("createImage", "data"): "002 'Example': the answer's data holds the generated images",
}
CHUNKS = [("openai_gateway", "createChatCompletion", ChatCompletionChunk),
          ("multi_protocol", "createChatCompletion", ChatCompletionChunk)]


def _nullable(annotation: Any) -> bool:
    return type(None) in typing.get_args(annotation)


def _models(annotation: Any) -> Iterator[tuple[type[SdkModel], bool]]:
    """The SDK models inside ``annotation`` (through Optional, List, Union), each with whether it is
    reached through a list."""
    stack = [(annotation, False)]
    while stack:
        node, listed = stack.pop()
        if isinstance(node, type) and issubclass(node, SdkModel):
            yield node, listed
            continue
        origin = typing.get_origin(node)
        for argument in typing.get_args(node):
            stack.append((argument, listed or origin is list))


def _branches(api: str, schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    schema = resolve(api, schema)
    yield schema
    for key in ("allOf", "oneOf", "anyOf"):
        for branch in schema.get(key, []):
            yield from _branches(api, branch)


def _property(api: str, schema: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    return next((branch["properties"][name] for branch in _branches(api, schema)
                 if name in branch.get("properties", {})), None)


def _items(api: str, schema: Mapping[str, Any]) -> Mapping[str, Any] | None:
    return next((branch["items"] for branch in _branches(api, schema) if "items" in branch), None)


def drift(api: str, model: type[SdkModel], schema: Mapping[str, Any], path: str = "") -> list[str]:
    """The fields of ``model`` the SDK lets be null and ``schema`` (spec ``api``) refuses null in, as paths."""
    found = []
    for name, field in model.model_fields.items():
        key = field.alias or name
        node = _property(api, schema, key)
        if node is None:
            continue  # a field the spec does not describe: not a contract the suite checks
        where = f"{path}.{key}" if path else key
        if _nullable(field.annotation) and not schema_validator(api, node).is_valid(None):
            found.append(where)
        for inner, listed in _models(field.annotation):
            inner_schema = _items(api, node) if listed else node
            if inner_schema is not None:
                found += drift(api, inner, inner_schema, f"{where}[]" if listed else where)
    return found


@pytest.mark.parametrize(("api", "operation_id", "media_type", "model"), ANSWERS,
                         ids=[f"{a}-{o}" for a, o, _, _ in ANSWERS])
def test_the_spec_takes_null_where_the_sdk_does(api: str, operation_id: str, media_type: str,
                                                model: type[SdkModel]) -> None:
    schema = response_schema(find_operation(api, operation_id), 200, media_type)
    assert schema is not None
    assert [path for path in drift(api, model, schema) if (operation_id, path) not in NARROWED] == []


@pytest.mark.parametrize(("api", "operation_id", "model"), CHUNKS, ids=[f"{a}-{o}" for a, o, _ in CHUNKS])
def test_stream_chunks_take_null_where_the_sdk_does(api: str, operation_id: str, model: type[SdkModel]) -> None:
    from spec import response_media

    item = response_media(find_operation(api, operation_id), 200)["text/event-stream"]["x-sse"]["item"]
    assert drift(api, model, item) == []


def test_the_walk_finds_a_refused_null() -> None:
    """The test can fail: a schema refusing null in ``system_fingerprint`` (nullable in the SDK) is drift."""
    strict = {"type": "object", "properties": {"system_fingerprint": {"type": "string"},
                                               "id": {"type": "string"}}}
    assert drift("openai_gateway", ChatCompletion, strict) == ["system_fingerprint"]


def test_each_narrowed_field_is_still_one_the_sdk_lets_be_null() -> None:
    """The list of narrowed fields stays honest: each is a field the SDK takes null in and the spec refuses."""
    found = {(operation_id, path) for api, operation_id, media_type, model in ANSWERS
             for path in drift(api, model, response_schema(find_operation(api, operation_id), 200, media_type) or {})}
    assert set(NARROWED) <= found
