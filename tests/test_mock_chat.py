"""The mock's POST /v1/chat/completions, in-process: validation, auth, normalisation, output."""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import jsonschema
import pytest
from PIL import Image
from starlette.testclient import TestClient

from conformance import media
from mock_server import MockConfig, create_app
from mock_server.config import KeyConfig
from spec import find_operation, response_schema, schema_validator

CHAT = find_operation("openai_gateway", "createChatCompletion")
COMPLETION = schema_validator("openai_gateway", response_schema(CHAT, 200) or {})
AUTH = {"Authorization": "Bearer sk-test"}


def chat(client: TestClient, **body: Any) -> Any:
    body.setdefault("model", "gpt-4o-mini")
    body.setdefault("messages", [{"role": "user", "content": "Hello"}])
    return client.post("/v1/chat/completions", json=body, headers=AUTH)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "bogus", "content": "x"}]}, "messages[0].role"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
         "messages[0].content[0].image_url.url"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "temperature": 3}, "temperature"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "tool", "content": "x"}]}, "messages[0].tool_call_id"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}], "n": 0}, "n"),
        ({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
            {"type": "file", "file": {"filename": "a.pdf"}}]}]}, "messages[0].content[0].file"),  # no file_data/_id
    ],
)
def test_schema_violation_names_the_field(client: TestClient, body: dict[str, Any], param: str) -> None:
    response = client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert param in error["message"]


def test_unparsable_body_is_400_in_the_envelope(client: TestClient) -> None:
    response = client.post("/v1/chat/completions", content=b"{not json", headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic abc"}])
def test_missing_or_unknown_key_is_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []}, headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"


def test_configured_keys_replace_the_development_key() -> None:
    with TestClient(create_app(MockConfig(keys=(KeyConfig("sk-team"),)))) as client:
        assert chat(client).status_code == 401
        ok = client.post("/v1/chat/completions", headers={"Authorization": "Bearer sk-team"},
                         json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
        assert ok.status_code == 200


def test_unknown_path_and_method_answer_in_the_envelope(client: TestClient) -> None:
    assert client.get("/v1/nowhere").json()["error"]["type"] == "invalid_request_error"
    assert client.get("/v1/chat/completions").status_code == 405
    slashed = client.post("/v1/chat/completions/", json={}, follow_redirects=False)  # no empty 307
    assert slashed.status_code == 404 and slashed.json()["error"]["type"] == "invalid_request_error"


def test_completion_validates_against_the_spec(client: TestClient) -> None:
    body = chat(client).json()
    COMPLETION.validate(body)
    usage = body["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0


def test_developer_role_is_accepted_as_system(client: TestClient) -> None:
    developer = chat(client, messages=[{"role": "developer", "content": "Be brief"}, {"role": "user", "content": "x"}])
    system = chat(client, messages=[{"role": "system", "content": "Be brief"}, {"role": "user", "content": "x"}])
    assert developer.status_code == 200
    assert developer.json()["choices"][0]["message"]["content"] == system.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
def test_both_token_limits_cut_the_answer(client: TestClient, field: str) -> None:
    body = chat(client, **{field: 4}).json()
    assert body["usage"]["completion_tokens"] == 4
    assert body["choices"][0]["finish_reason"] == "length"


def test_same_seed_same_answer_other_seed_other_answer() -> None:
    answers = []
    for seed in (1, 1, 2):
        with TestClient(create_app(MockConfig(seed=seed))) as client:
            answers.append(chat(client).json()["choices"][0]["message"]["content"])
    assert answers[0] == answers[1] != answers[2]


def test_content_part_the_model_does_not_take_is_400_naming_it(client: TestClient) -> None:
    parts = [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    response = chat(client, model="text-only-mini", messages=[{"role": "user", "content": parts}])
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages[0].content[1]"
    assert "image_url" in response.json()["error"]["message"]


def test_document_answered_by_a_model_that_takes_files_and_refused_by_one_that_does_not(client: TestClient) -> None:
    pdf = "data:application/pdf;base64," + base64.b64encode(media.pdf("Total 42 EUR")).decode()
    parts = [{"type": "text", "text": "What is the total?"},
             {"type": "file", "file": {"filename": "invoice.pdf", "file_data": pdf}}]
    answered = chat(client, model="gpt-4o-mini", messages=[{"role": "user", "content": parts}])
    assert answered.status_code == 200 and answered.json()["choices"][0]["message"]["content"]
    refused = chat(client, model="gemini-2.5-flash-image-generation", messages=[{"role": "user", "content": parts}])
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "messages[0].content[1]"


def test_image_output_model_returns_png_and_accepts_it_back(client: TestClient) -> None:
    model = "gemini-2.5-flash-image-generation"
    first = chat(client, model=model, messages=[{"role": "user", "content": "A red car"}]).json()
    COMPLETION.validate(first)
    message = first["choices"][0]["message"]
    url = message["images"][0]["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert image.format == "PNG" and image.size == (1024, 1024)
    assert first["usage"]["completion_tokens_details"]["image_tokens"] > 0
    history = [{"role": "user", "content": "A red car"}, message, {"role": "user", "content": "Make it blue"}]
    second = chat(client, model=model, messages=history)
    assert second.status_code == 200
    assert second.json()["choices"][0]["message"]["images"]


def test_tool_call_arguments_satisfy_the_parameters_schema(client: TestClient) -> None:
    parameters = {"type": "object", "required": ["city", "days"],
                  "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7},
                                 "unit": {"enum": ["c", "f"]}}}
    tools = [{"type": "function", "function": {"name": "forecast", "parameters": parameters}}]
    body = chat(client, tools=tools, tool_choice="auto").json()
    call = body["choices"][0]["message"]["tool_calls"][0]
    assert body["choices"][0]["finish_reason"] == "tool_calls"
    jsonschema.validate(json.loads(call["function"]["arguments"]), parameters)
    after = [{"role": "user", "content": "x"}, body["choices"][0]["message"],
             {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]
    assert chat(client, tools=tools, messages=after).json()["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "forecast"}}])
def test_a_tool_choice_without_tools_is_refused(client: TestClient, choice: Any) -> None:
    refused = chat(client, tool_choice=choice)
    assert refused.status_code == 400 and refused.json()["error"]["param"] == "tool_choice"
    assert chat(client, tool_choice="auto").status_code == 200  # auto and none: a text answer
    assert chat(client, tool_choice="none").status_code == 200


def test_json_schema_output_satisfies_the_schema(client: TestClient) -> None:
    schema = {"type": "object", "required": ["name", "tags"], "additionalProperties": False,
              "properties": {"name": {"type": "string", "minLength": 3},
                             "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2}}}
    body = chat(client, response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}})
    jsonschema.validate(json.loads(body.json()["choices"][0]["message"]["content"]), schema)


def _events(text: str) -> list[str]:
    return [line[len("data: "):] for line in text.split("\n\n") if line.startswith("data: ")]


def test_stream_sends_chunks_usage_and_done(client: TestClient) -> None:
    response = chat(client, stream=True, stream_options={"include_usage": True})
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _events(response.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    chunk_schema = schema_validator("openai_gateway", {"$ref": "#/components/schemas/ChatCompletionChunk"})
    for chunk in chunks:
        chunk_schema.validate(chunk)
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] > 0
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks[:-1])
    assert text == chat(client).json()["choices"][0]["message"]["content"]
