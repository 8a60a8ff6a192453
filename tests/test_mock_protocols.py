"""The multi-protocol gateway (003) over OpenAI protocols: POST /v1/responses and the 003 content blocks of
POST /v1/chat/completions, through the official ``openai`` SDK against the served mock, every answer
validated against spec/multi_protocol.yaml."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import openai
import pytest

from tests.protocol_helpers import Contract, check_typed_stream, read_sse

RESPONSES = Contract("createResponse")
RESPONSE_BODY = RESPONSES.body()
ERROR_BODY = RESPONSES.body(400)
CHAT = Contract("createChatCompletion")
CHAT_BODY = CHAT.body()
CHUNK = CHAT.sse_item()
MODEL = "openai/gpt-5-mini"
IMAGE_INPUT = RESPONSES.operation.spec["requestBody"]["content"]["application/json"]["examples"]["image_input"]["value"]
CHAT_EXAMPLES = CHAT.operation.spec["requestBody"]["content"]["application/json"]["examples"]
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather of a city",
           "parameters": {"type": "object", "required": ["city", "unit"], "additionalProperties": False,
                          "properties": {"city": {"type": "string", "minLength": 2},
                                         "unit": {"enum": ["celsius", "fahrenheit"]}}}}


@pytest.fixture
def sdk(mock_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{mock_url}/v1", api_key="sk-test", max_retries=0) as client:
        yield client


def create(sdk: openai.OpenAI, **body: Any) -> tuple[dict[str, Any], Any]:
    """POST /v1/responses through the SDK: the raw JSON (validated against the spec) and the parsed Response."""
    raw = sdk.responses.with_raw_response.create(**body)
    data = raw.http_response.json()
    RESPONSE_BODY.validate(data)
    return data, raw.parse()


def raw_stream(mock_url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The SSE payloads of a streamed request, each checked against the spec's x-sse rules."""
    response = httpx.post(f"{mock_url}/v1/responses", json={**body, "stream": True}, timeout=10,
                          headers={"Authorization": "Bearer sk-test"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    return check_typed_stream(response.text, RESPONSES)


def test_text_response(sdk: openai.OpenAI) -> None:
    data, response = create(sdk, model=MODEL, input="Say hello", instructions="Be brief.")
    assert data["id"].startswith("resp_") and data["object"] == "response" and data["status"] == "completed"
    assert data["model"] == MODEL and data["instructions"] == "Be brief."
    (item,) = data["output"]
    assert item["type"] == "message" and item["role"] == "assistant" and item["id"].startswith("msg_")
    assert item["content"][0]["type"] == "output_text"
    assert response.output_text == item["content"][0]["text"] != ""
    usage = data["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0


def test_answers_are_deterministic(sdk: openai.OpenAI) -> None:
    first, _ = create(sdk, model=MODEL, input="Same question")
    second, _ = create(sdk, model=MODEL, input="Same question")
    assert first["output"][0]["content"] == second["output"][0]["content"]
    assert first["id"] != second["id"]


def test_image_input_of_003(sdk: openai.OpenAI) -> None:
    data, response = create(sdk, **IMAGE_INPUT)
    assert data["status"] == "completed" and response.output_text
    text_part = {"type": "input_text", "text": "Describe this image"}
    text_only, _ = create(sdk, model=MODEL, input=[{"type": "message", "role": "user", "content": [text_part]}])
    assert data["usage"]["input_tokens"] > text_only["usage"]["input_tokens"], "the image counts as input"


def test_image_part_rejected_by_a_text_only_model(sdk: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.responses.create(**{**IMAGE_INPUT, "model": "text-only-mini"})
    body = caught.value.response.json()
    ERROR_BODY.validate(body)
    assert body["error"]["param"] == "input[0].content[1]"
    assert "input_image" in body["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": MODEL}, "input"),
        ({"model": MODEL, "input": "x", "max_output_tokens": 3}, "max_output_tokens"),
        ({"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_image"}]}]}, "input[0].content[0]"),
        ({"model": "no-such-model", "input": "x"}, "model"),
        ({"model": "dall-e-3", "input": "x"}, "model"),
        ({"model": MODEL, "input": "x", "tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}},
         "tool_choice.name"),
    ],
)
def test_bad_request_names_the_field(mock_url: str, body: dict[str, Any], param: str) -> None:
    response = httpx.post(f"{mock_url}/v1/responses", json=body, headers={"Authorization": "Bearer sk-test"})
    assert response.status_code == 400
    ERROR_BODY.validate(response.json())
    assert response.json()["error"]["param"] == param


def test_wrong_key_is_401(mock_url: str) -> None:
    with openai.OpenAI(base_url=f"{mock_url}/v1", api_key="sk-wrong", max_retries=0) as client, \
            pytest.raises(openai.AuthenticationError) as caught:
        client.responses.create(model=MODEL, input="x")
    RESPONSES.body(401).validate(caught.value.response.json())


def test_max_output_tokens_cuts_the_answer(sdk: openai.OpenAI) -> None:
    data, _ = create(sdk, model=MODEL, input="Tell me a long story", max_output_tokens=16)
    assert data["status"] == "incomplete"
    assert data["incomplete_details"] == {"reason": "max_output_tokens"}
    assert data["output"][0]["status"] == "incomplete"
    assert data["usage"]["output_tokens"] == 16


def test_function_tool_call_and_its_result(sdk: openai.OpenAI) -> None:
    data, response = create(sdk, model=MODEL, input="Weather in Oslo?", tools=[WEATHER])
    (item,) = data["output"]
    assert item["type"] == "function_call" and item["name"] == "get_weather"
    jsonschema.validate(json.loads(item["arguments"]), WEATHER["parameters"])
    assert response.output[0].call_id == item["call_id"]
    follow_up = [{"role": "user", "content": "Weather in Oslo?"}, {k: v for k, v in item.items() if k != "status"},
                 {"type": "function_call_output", "call_id": item["call_id"], "output": '{"temp": 3}'}]
    answer, _ = create(sdk, model=MODEL, input=follow_up, tools=[WEATHER])
    assert answer["output"][0]["type"] == "message", "after the tool's result the model answers in text"
    forced, _ = create(sdk, model=MODEL, input=follow_up, tools=[WEATHER], tool_choice="required")
    assert forced["output"][0]["type"] == "function_call"
    none, _ = create(sdk, model=MODEL, input="Weather in Oslo?", tools=[WEATHER], tool_choice="none")
    assert none["output"][0]["type"] == "message"


def test_json_schema_text_format(sdk: openai.OpenAI) -> None:
    schema = {"type": "object", "required": ["name", "age"], "additionalProperties": False,
              "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}}
    text_format = {"type": "json_schema", "name": "person", "schema": schema, "strict": True}
    data, response = create(sdk, model=MODEL, input="A person", text={"format": text_format})
    jsonschema.validate(json.loads(response.output_text), schema)
    assert data["text"]["format"]["name"] == "person"


def test_stream_events_follow_the_spec(mock_url: str) -> None:
    events = raw_stream(mock_url, {"model": MODEL, "input": "Hello"})
    kinds = [e["type"] for e in events]
    deltas = kinds.count("response.output_text.delta")
    assert deltas > 1
    assert kinds == ["response.created", "response.in_progress", "response.output_item.added",
                     "response.content_part.added", *["response.output_text.delta"] * deltas,
                     "response.output_text.done", "response.content_part.done", "response.output_item.done",
                     "response.completed"]
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    text = "".join(e["delta"] for e in events if e["type"] == "response.output_text.delta")
    done = next(e for e in events if e["type"] == "response.output_text.done")
    final = events[-1]["response"]
    assert text == done["text"] == final["output"][0]["content"][0]["text"]
    assert events[0]["response"]["status"] == "in_progress" and events[0]["response"]["usage"] is None
    assert final["status"] == "completed" and final["usage"]["output_tokens"] == deltas
    assert {events[0]["response"]["id"]} == {e["response"]["id"] for e in events if "response" in e}


def test_stream_of_a_cut_answer_ends_incomplete(mock_url: str) -> None:
    events = raw_stream(mock_url, {"model": MODEL, "input": "Hello", "max_output_tokens": 16})
    assert events[-1]["type"] == "response.incomplete"
    assert events[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


def test_stream_of_a_function_call(mock_url: str) -> None:
    events = raw_stream(mock_url, {"model": MODEL, "input": "Weather?", "tools": [WEATHER]})
    kinds = [e["type"] for e in events]
    assert "response.function_call_arguments.delta" in kinds and "response.output_text.delta" not in kinds
    arguments = "".join(e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta")
    jsonschema.validate(json.loads(arguments), WEATHER["parameters"])
    assert events[-1]["response"]["output"][0]["arguments"] == arguments


def test_sdk_stream_iteration(sdk: openai.OpenAI) -> None:
    validator = RESPONSES.sse_item()
    events = list(sdk.responses.create(model=MODEL, input="Hello", stream=True))
    for event in events:
        validator.validate(event.to_dict())
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert events[-1].type == "response.completed"
    assert text and events[-1].response.output_text == text


def test_sdk_stream_helper(sdk: openai.OpenAI) -> None:
    with sdk.responses.stream(model=MODEL, input=IMAGE_INPUT["input"]) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text and final.output_text == text and final.status == "completed"
    with sdk.responses.stream(model=MODEL, input="Weather?", tools=[WEATHER]) as stream:
        call = stream.get_final_response().output[0]
    assert call.type == "function_call"
    jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])


# ---- Chat Completions of the multi-protocol gateway: the content blocks of 003 ----


@pytest.mark.parametrize("example", sorted(CHAT_EXAMPLES))
def test_chat_content_blocks_of_003(sdk: openai.OpenAI, example: str) -> None:
    body = CHAT_EXAMPLES[example]["value"]
    raw = sdk.chat.completions.with_raw_response.create(**body)
    data = raw.http_response.json()
    CHAT_BODY.validate(data)
    assert data["model"] == MODEL and data["choices"][0]["message"]["content"]
    text_only = sdk.chat.completions.create(model=MODEL, messages=[
        {"role": "user", "content": [body["messages"][0]["content"][0]]}])
    assert text_only.usage is not None
    assert data["usage"]["prompt_tokens"] > text_only.usage.prompt_tokens, "the media block counts as input"


@pytest.mark.parametrize("example", sorted(CHAT_EXAMPLES))
def test_chat_content_blocks_stream(mock_url: str, example: str) -> None:
    body = {**CHAT_EXAMPLES[example]["value"], "stream": True, "stream_options": {"include_usage": True}}
    response = httpx.post(f"{mock_url}/v1/chat/completions", json=body, headers={"Authorization": "Bearer sk-test"})
    events = read_sse(response.text)
    assert events[-1] == (None, "[DONE]")
    for _, chunk in events[:-1]:
        CHUNK.validate(chunk)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for _, c in events[:-1] if c["choices"])


@pytest.mark.parametrize("example", sorted(CHAT_EXAMPLES))
def test_chat_media_block_rejected_by_a_text_only_model(sdk: openai.OpenAI, example: str) -> None:
    body = {**CHAT_EXAMPLES[example]["value"], "model": "text-only-mini"}
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.chat.completions.create(**body)
    error = caught.value.response.json()
    CHAT.body(400).validate(error)
    assert error["error"]["param"] == "messages[0].content[1]"
