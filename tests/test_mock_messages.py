"""The multi-protocol gateway (003) over the Anthropic Messages protocol: POST /v1/messages through the
official ``anthropic`` SDK against the served mock, every answer validated against spec/multi_protocol.yaml."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import jsonschema
import pytest

from mock_server.media import image_bytes
from tests.protocol_helpers import Contract, check_typed_stream

MESSAGES = Contract("createMessage")
MESSAGE_BODY = MESSAGES.body()
MODEL = "anthropic/claude-sonnet-4.6"
HEADERS = {"x-api-key": "sk-test", "anthropic-version": "2023-06-01"}
IMAGE_INPUT = MESSAGES.operation.spec["requestBody"]["content"]["application/json"]["examples"]["image_input"]["value"]
PNG = base64.b64encode(image_bytes(8, 8, 3)).decode()
WEATHER = {"name": "get_weather", "description": "Weather of a city",
           "input_schema": {"type": "object", "required": ["city"], "additionalProperties": False,
                            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1,
                                                                                  "maximum": 7}}}}
HELLO = [{"role": "user", "content": "Hello"}]


@pytest.fixture
def sdk(mock_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=mock_url, api_key="sk-test", max_retries=0) as client:
        yield client


def create(sdk: anthropic.Anthropic, **body: Any) -> tuple[dict[str, Any], Any]:
    """POST /v1/messages through the SDK: the raw JSON (validated against the spec) and the parsed Message."""
    body.setdefault("model", MODEL)
    body.setdefault("max_tokens", 1024)
    raw = sdk.messages.with_raw_response.create(**body)
    data = raw.http_response.json()
    MESSAGE_BODY.validate(data)
    return data, raw.parse()


def post(mock_url: str, body: dict[str, Any], headers: dict[str, str] = HEADERS) -> httpx.Response:
    return httpx.post(f"{mock_url}/v1/messages", json=body, headers=headers, timeout=10)


def test_text_message(sdk: anthropic.Anthropic) -> None:
    data, message = create(sdk, messages=HELLO, system="Be brief.")
    assert data["id"].startswith("msg_") and data["type"] == "message" and data["role"] == "assistant"
    assert data["model"] == MODEL and data["stop_reason"] == "end_turn" and data["stop_sequence"] is None
    assert message.content[0].type == "text" and message.content[0].text == data["content"][0]["text"] != ""
    assert data["usage"]["input_tokens"] > 0 and data["usage"]["output_tokens"] > 0


def test_image_blocks_url_and_base64(sdk: anthropic.Anthropic) -> None:
    by_url, _ = create(sdk, **IMAGE_INPUT)
    base64_block = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    by_data, _ = create(sdk, messages=[{"role": "user", "content": [{"type": "text", "text": "Describe"},
                                                                     base64_block]}])
    text_block = {"type": "text", "text": "Describe this image"}
    text_only, _ = create(sdk, messages=[{"role": "user", "content": [text_block]}])
    assert by_url["stop_reason"] == by_data["stop_reason"] == "end_turn"
    assert by_url["usage"]["input_tokens"] > text_only["usage"]["input_tokens"], "the image counts as input"


def test_image_block_rejected_by_a_text_only_model(sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(**{**IMAGE_INPUT, "model": "text-only-mini"})
    body = caught.value.response.json()
    MESSAGES.body(400).validate(body)
    assert "messages[0].content[1]" in body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"model": MODEL, "messages": HELLO}, "max_tokens"),
        ({"model": MODEL, "max_tokens": 0, "messages": HELLO}, "max_tokens"),
        ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages[0].role"),
        ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "not base64!"}}]}]},
         "messages[0].content[0].source.data"),
        ({"model": MODEL, "max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": PNG}}]}]},
         "messages[0].content[0].source.data"),
        ({"model": MODEL, "max_tokens": 5, "messages": HELLO, "tools": [WEATHER],
          "tool_choice": {"type": "tool", "name": "nope"}}, "tool_choice.name"),
        ({"model": "dall-e-3", "max_tokens": 5, "messages": HELLO}, "model"),
    ],
)
def test_bad_request_names_the_field(mock_url: str, body: dict[str, Any], field: str) -> None:
    response = post(mock_url, body)
    assert response.status_code == 400
    error = response.json()
    MESSAGES.body(400).validate(error)
    assert error["type"] == "error" and error["error"]["type"] == "invalid_request_error"
    assert field in error["error"]["message"]


def test_missing_version_header_is_400(mock_url: str) -> None:
    response = post(mock_url, {"model": MODEL, "max_tokens": 5, "messages": HELLO}, {"x-api-key": "sk-test"})
    assert response.status_code == 400
    MESSAGES.body(400).validate(response.json())
    assert "anthropic-version" in response.json()["error"]["message"]


@pytest.mark.parametrize("headers", [{"anthropic-version": "2023-06-01"},
                                     {"anthropic-version": "2023-06-01", "x-api-key": "sk-wrong"},
                                     {"anthropic-version": "2023-06-01", "Authorization": "Bearer sk-wrong"},
                                     {"anthropic-version": "2023-06-01", "Authorization": "sk-test"}])
def test_missing_or_wrong_key_is_401(mock_url: str, headers: dict[str, str]) -> None:
    response = post(mock_url, {"model": MODEL, "max_tokens": 5, "messages": HELLO}, headers)
    assert response.status_code == 401
    MESSAGES.body(401).validate(response.json())
    assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("headers", [{"x-api-key": "sk-test"}, {"Authorization": "Bearer sk-test"}])
def test_key_in_x_api_key_or_bearer(mock_url: str, headers: dict[str, str]) -> None:
    """x-api-key is the protocol's header; the official SDK (2.x) sends its api_key as a Bearer token."""
    response = post(mock_url, {"model": MODEL, "max_tokens": 5, "messages": HELLO},
                    {"anthropic-version": "2023-06-01", **headers})
    assert response.status_code == 200
    MESSAGE_BODY.validate(response.json())


def test_sdk_wrong_key_and_unknown_model(mock_url: str, sdk: anthropic.Anthropic) -> None:
    with anthropic.Anthropic(base_url=mock_url, api_key="sk-wrong", max_retries=0) as client, \
            pytest.raises(anthropic.AuthenticationError):
        client.messages.create(model=MODEL, max_tokens=5, messages=HELLO)
    with pytest.raises(anthropic.NotFoundError) as caught:
        sdk.messages.create(model="no-such-model", max_tokens=5, messages=HELLO)
    MESSAGES.body(404).validate(caught.value.response.json())


def test_max_tokens_and_stop_sequences(sdk: anthropic.Anthropic) -> None:
    full, _ = create(sdk, messages=HELLO)
    cut, _ = create(sdk, messages=HELLO, max_tokens=3)
    assert cut["stop_reason"] == "max_tokens" and cut["usage"]["output_tokens"] == 3
    assert full["content"][0]["text"].startswith(cut["content"][0]["text"])
    word = full["content"][0]["text"].split()[4]
    stopped, message = create(sdk, messages=HELLO, stop_sequences=["zzz", f" {word}"])
    assert stopped["stop_reason"] == "stop_sequence" and message.stop_sequence == f" {word}"
    assert full["content"][0]["text"].startswith(stopped["content"][0]["text"] + f" {word}")
    assert f" {word}" not in stopped["content"][0]["text"]


def test_tool_use_and_its_result(sdk: anthropic.Anthropic) -> None:
    data, message = create(sdk, messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=[WEATHER])
    assert data["stop_reason"] == "tool_use"
    (block,) = data["content"]
    assert block["type"] == "tool_use" and block["id"].startswith("toolu_") and block["name"] == "get_weather"
    jsonschema.validate(block["input"], WEATHER["input_schema"])
    assert message.content[0].input == block["input"]
    follow_up = [{"role": "user", "content": "Weather in Oslo?"}, {"role": "assistant", "content": [block]},
                 {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"], "content": "3 C"}]}]
    answer, _ = create(sdk, messages=follow_up, tools=[WEATHER])
    assert answer["stop_reason"] == "end_turn" and answer["content"][0]["type"] == "text"
    forced, _ = create(sdk, messages=follow_up, tools=[WEATHER], tool_choice={"type": "any"})
    assert forced["stop_reason"] == "tool_use"
    none, _ = create(sdk, messages=HELLO, tools=[WEATHER], tool_choice={"type": "none"})
    assert none["stop_reason"] == "end_turn"


def test_stream_events_follow_the_spec(mock_url: str) -> None:
    response = post(mock_url, {"model": MODEL, "max_tokens": 1024, "messages": HELLO, "stream": True})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = check_typed_stream(response.text, MESSAGES)
    kinds = [e["type"] for e in events]
    deltas = kinds.count("content_block_delta")
    assert deltas > 1
    assert kinds == ["message_start", "content_block_start", "ping", *["content_block_delta"] * deltas,
                     "content_block_stop", "message_delta", "message_stop"]
    assert events[0]["message"]["stop_reason"] is None and events[0]["message"]["content"] == []
    assert events[-2]["delta"]["stop_reason"] == "end_turn" and events[-2]["usage"]["output_tokens"] == deltas
    assert {e["delta"]["type"] for e in events if e["type"] == "content_block_delta"} == {"text_delta"}


def test_stream_of_a_tool_use(mock_url: str) -> None:
    body = {"model": MODEL, "max_tokens": 1024, "messages": HELLO, "tools": [WEATHER], "stream": True}
    events = check_typed_stream(post(mock_url, body).text, MESSAGES)
    start = next(e for e in events if e["type"] == "content_block_start")
    assert start["content_block"]["type"] == "tool_use" and start["content_block"]["input"] == {}
    assert {e["delta"]["type"] for e in events if e["type"] == "content_block_delta"} == {"input_json_delta"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_sdk_stream_helper(sdk: anthropic.Anthropic) -> None:
    expected, _ = create(sdk, **IMAGE_INPUT)
    with sdk.messages.stream(**IMAGE_INPUT) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == expected["content"][0]["text"] == final.content[0].text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == expected["usage"]["output_tokens"]
    with sdk.messages.stream(model=MODEL, max_tokens=1024, messages=HELLO, tools=[WEATHER]) as stream:
        final = stream.get_final_message()
    assert final.stop_reason == "tool_use" and final.content[0].type == "tool_use"
    jsonschema.validate(final.content[0].input, WEATHER["input_schema"])


def test_sdk_raw_stream_events_validate(sdk: anthropic.Anthropic) -> None:
    validator = MESSAGES.sse_item()
    events = list(sdk.messages.create(model=MODEL, max_tokens=1024, messages=HELLO, stream=True))
    for event in events:
        validator.validate(event.to_dict())
    assert events[0].type == "message_start" and events[-1].type == "message_stop"
