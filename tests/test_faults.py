"""Simulated faults (mock_server/stages/faults.py) through HTTP: the X-Mock-Fault header, seeded rates, the
safety blocklist, slow and cut streams; refusals charge nothing and count against no rate limit."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from jsonschema import Draft202012Validator
from starlette.testclient import TestClient

from conformance.embedded import serve
from mock_server import DEV_API_KEY, MockConfig, create_app
from mock_server.config import FaultConfig, KeyConfig, LatencyConfig
from mock_server.stages.faults import CUT_AFTER_EVENTS, SLOW_STREAM_GAP_S
from spec import find_operation, response_media, response_schema, schema_validator
from spec.extensions import credit_cost, retry_after_s
from tests.protocol_helpers import read_sse

AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}
MESSAGES_HEADERS = {"x-api-key": DEV_API_KEY, "anthropic-version": "2023-06-01"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
MESSAGE = {"model": "anthropic/claude-sonnet-4.6", "max_tokens": 64, "messages": [{"role": "user", "content": "Hi"}]}
RESPONSE = {"model": "openai/gpt-5-mini", "input": "Say hello"}
TTS = {"text": "Welcome to AINative Studio."}
STARTING_CREDITS = 1000
TIME_SCALE = 0.02
BLOCKLIST = ("forbidden", "bad phrase")


@functools.cache
def _validator(api: str, operation_id: str, status: int) -> Draft202012Validator:
    schema = response_schema(find_operation(api, operation_id), status)
    assert schema is not None, f"{operation_id} documents no JSON {status}"
    return schema_validator(api, schema)


def _error(response: httpx.Response, api: str, operation_id: str, status: int) -> dict[str, Any]:
    """The error object of a response, after checking its status and validating it against the spec."""
    assert response.status_code == status, response.text
    body = response.json()
    _validator(api, operation_id, status).validate(body)
    error: dict[str, Any] = body["error"]
    return error


def _config(**faults: Any) -> MockConfig:
    return MockConfig(keys=(KeyConfig(DEV_API_KEY, credits=STARTING_CREDITS),),
                      faults=FaultConfig(blocklist=BLOCKLIST, **faults), latency=LatencyConfig(time_scale=TIME_SCALE))


@pytest.fixture
def app() -> Iterator[TestClient]:
    with TestClient(create_app(_config())) as client:
        yield client


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    with serve(create_app(_config())) as url:
        yield url


def _balance(client: TestClient) -> int:
    response = client.get("/api/v1/managed/usage", headers=AUTH)
    assert response.status_code == 200
    balance: int = response.json()["credits_remaining"]
    return balance


def _fault(kind: str) -> dict[str, str]:
    return {**AUTH, "X-Mock-Fault": kind}


# ---- refusing faults by header -------------------------------------------------------------------------------


def test_credits_api_500_is_the_gpu_provider_error_with_retry_after_and_charges_nothing(app: TestClient) -> None:
    before = _balance(app)
    for _ in range(12):  # past the TTS limit of 10/min: refused requests are not counted
        response = app.post("/api/v1/multimodal/tts", json=TTS, headers=_fault("500"))
        error = _error(response, "credits_api", "createMultimodalTts", 500)
        assert response.headers["Retry-After"] == "30" == str(retry_after_s(
            find_operation("credits_api", "createMultimodalTts"), 500))
        assert "GPU provider error" in error["message"] and "30s" in error["message"]
    assert _balance(app) == before == STARTING_CREDITS
    ok = app.post("/api/v1/multimodal/tts", json=TTS, headers=AUTH)
    assert ok.status_code == 200, ok.text
    cost = credit_cost(find_operation("credits_api", "createMultimodalTts"))
    assert cost is not None and ok.json()["credits_remaining"] == STARTING_CREDITS - cost.credits
    assert ok.headers["x-ratelimit-remaining-requests"] == "9"


@pytest.mark.parametrize(("kind", "status", "error_type"), [
    ("500", 500, "internal_server_error"), ("502", 502, "upstream_error"), ("503", 503, "upstream_error")])
def test_gateway_chat_faults(app: TestClient, kind: str, status: int, error_type: str) -> None:
    response = app.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=_fault(kind))
    error = _error(response, "openai_gateway", "createChatCompletion", status)
    assert error["type"] == error_type
    assert "Retry-After" not in response.headers
    if kind == "500":
        assert "Safe to retry idempotently" in error["message"]


@pytest.mark.parametrize(("kind", "status", "error_type"), [
    ("500", 500, "api_error"), ("502", 502, "api_error"), ("503", 503, "overloaded_error")])
def test_messages_faults_use_the_messages_envelope(app: TestClient, kind: str, status: int, error_type: str) -> None:
    response = app.post("/v1/messages", json=MESSAGE, headers={**MESSAGES_HEADERS, "X-Mock-Fault": kind})
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type and body["error"]["message"]
    if kind == "500":
        _validator("multi_protocol", "createMessage", 500).validate(body)


def test_unknown_fault_kind_is_400_naming_the_header(app: TestClient) -> None:
    error = _error(app.post("/v1/chat/completions", json=CHAT, headers=_fault("teapot")),
                   "openai_gateway", "createChatCompletion", 400)
    assert error["param"] == "X-Mock-Fault" and "teapot" in error["message"]


def test_header_is_ignored_when_turned_off() -> None:
    with TestClient(create_app(_config(header=False))) as client:
        response = client.post("/v1/chat/completions", json=CHAT, headers=_fault("500"))
    assert response.status_code == 200 and response.json()["object"] == "chat.completion"


@pytest.mark.parametrize("kind", ["slow_stream", "cut_stream"])
def test_stream_kinds_leave_a_json_answer_unchanged(app: TestClient, kind: str) -> None:
    response = app.post("/v1/chat/completions", json=CHAT, headers=_fault(kind))
    assert response.status_code == 200
    _validator("openai_gateway", "createChatCompletion", 200).validate(response.json())


# ---- safety --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("messages", "param"), [
    ([{"role": "user", "content": "Tell me something FORBIDDEN."}], "messages[0].content"),
    ([{"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "fine"},
                                   {"type": "text", "text": "a Bad  phrase? no: bad phrase"}]}],
     "messages[1].content[1].text"),
])
def test_safety_blocks_a_word_in_chat_messages(app: TestClient, messages: list[Any], param: str) -> None:
    error = _error(app.post("/v1/chat/completions", json={**CHAT, "messages": messages}, headers=AUTH),
                   "openai_gateway", "createChatCompletion", 400)
    assert error["type"] == "invalid_request_error" and error["code"] == "content_policy_violation"
    assert error["param"] == param and "rejected" in error["message"]


def test_safety_matches_whole_words_only(app: TestClient) -> None:
    body = {**CHAT, "messages": [{"role": "user", "content": "unforbidden forbiddenness"}]}
    assert app.post("/v1/chat/completions", json=body, headers=AUTH).status_code == 200


def test_safety_blocks_an_image_prompt(app: TestClient) -> None:
    body = {"model": "gpt-image-1", "prompt": "A forbidden cat"}
    error = _error(app.post("/v1/images/generations", json=body, headers=AUTH), "openai_gateway", "createImage", 400)
    assert error["param"] == "prompt" and error["code"] == "content_policy_violation"
    assert "forbidden" in error["message"]


def test_safety_blocks_credits_tts_text_and_charges_nothing(app: TestClient) -> None:
    response = app.post("/api/v1/multimodal/tts", json={"text": "Say the Forbidden word"}, headers=AUTH)
    error = _error(response, "credits_api", "createMultimodalTts", 400)
    assert error["param"] == "text" and error["code"] == "content_policy_violation"
    assert _balance(app) == STARTING_CREDITS


def test_safety_in_the_messages_protocol(app: TestClient) -> None:
    body = {**MESSAGE, "messages": [{"role": "user", "content": [{"type": "text", "text": "forbidden"}]}]}
    response = app.post("/v1/messages", json=body, headers=MESSAGES_HEADERS)
    assert response.status_code == 400
    _validator("multi_protocol", "createMessage", 400).validate(response.json())
    assert "messages[0].content[0].text" in response.json()["error"]["message"]


def test_safety_by_header_rejects_a_clean_prompt(app: TestClient) -> None:
    error = _error(app.post("/v1/chat/completions", json=CHAT, headers=_fault("safety")),
                   "openai_gateway", "createChatCompletion", 400)
    assert error["code"] == "content_policy_violation" and error["message"]


# ---- streams -------------------------------------------------------------------------------------------------


def _chunk_validator() -> Draft202012Validator:
    sse = response_media(find_operation("openai_gateway", "createChatCompletion"), 200)["text/event-stream"]["x-sse"]
    return schema_validator("openai_gateway", sse["item"])


def test_cut_chat_stream_has_no_done(app: TestClient) -> None:
    normal = read_sse(app.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=AUTH).text)
    assert normal[-1] == (None, "[DONE]")
    response = app.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=_fault("cut_stream"))
    assert response.status_code == 200
    events = read_sse(response.text)
    assert 0 < len(events) <= CUT_AFTER_EVENTS < len(normal)
    assert (None, "[DONE]") not in events
    for _, chunk in events:
        _chunk_validator().validate(chunk)
        assert all(choice["finish_reason"] is None for choice in chunk["choices"])


def test_cut_chat_stream_through_the_sdk_ends_without_a_finish(served: str) -> None:
    with openai.OpenAI(base_url=f"{served}/v1", api_key=DEV_API_KEY, max_retries=0) as sdk:
        chunks = list(sdk.chat.completions.create(**CHAT, stream=True, extra_headers={"X-Mock-Fault": "cut_stream"}))
    assert 0 < len(chunks) <= CUT_AFTER_EVENTS
    assert all(choice.finish_reason is None for chunk in chunks for choice in chunk.choices)


def test_cut_messages_stream_has_no_message_stop(app: TestClient) -> None:
    headers = {**MESSAGES_HEADERS, "X-Mock-Fault": "cut_stream"}
    response = app.post("/v1/messages", json={**MESSAGE, "stream": True}, headers=headers)
    assert response.status_code == 200
    names = [name for name, _ in read_sse(response.text)]
    assert names[0] == "message_start" and "message_stop" not in names and len(names) <= CUT_AFTER_EVENTS
    normal = read_sse(app.post("/v1/messages", json={**MESSAGE, "stream": True}, headers=MESSAGES_HEADERS).text)
    assert normal[-1][0] == "message_stop"


def test_cut_responses_stream_has_no_completed_event(app: TestClient) -> None:
    response = app.post("/v1/responses", json={**RESPONSE, "stream": True}, headers=_fault("cut_stream"))
    names = [name for name, _ in read_sse(response.text)]
    assert names and "response.completed" not in names and len(names) <= CUT_AFTER_EVENTS


def _stream_timing(url: str, headers: dict[str, str]) -> tuple[int, float]:
    """(events, seconds from the first event to the end) of a streamed chat answer from the served mock."""
    events, first = 0, 0.0
    with httpx.stream("POST", f"{url}/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers,
                      timeout=10) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data:"):
                events += 1
                first = first or time.monotonic()
    return events, time.monotonic() - first


def test_slow_stream_spaces_its_events(served: str) -> None:
    normal_events, normal_s = _stream_timing(served, AUTH)
    slow_events, slow_s = _stream_timing(served, _fault("slow_stream"))
    gap_s = SLOW_STREAM_GAP_S * TIME_SCALE
    assert slow_events == normal_events > 2  # nothing lost, terminator included
    assert slow_s >= (slow_events - 1) * gap_s * 0.9
    assert slow_s > normal_s + (slow_events - 1) * gap_s * 0.5


# ---- seeded rates --------------------------------------------------------------------------------------------


def _outcomes(rate: float, seed: int, count: int) -> list[bool]:
    """Whether each of ``count`` chat requests was refused with 503 under a 503 rate of ``rate``."""
    config = MockConfig(seed=seed, faults=FaultConfig(operations={"createChatCompletion": {"503": rate}}))
    out = []
    with TestClient(create_app(config)) as client:
        for _ in range(count):
            response = client.post("/v1/chat/completions", json=CHAT, headers=AUTH)
            assert response.status_code in (200, 503), response.text
            out.append(response.status_code == 503)
    return out


def test_rate_one_always_and_zero_never() -> None:
    assert _outcomes(1.0, 0, 8) == [True] * 8
    assert _outcomes(0.0, 0, 8) == [False] * 8


def test_rate_one_half_is_a_repeatable_seeded_sequence() -> None:
    first = _outcomes(0.5, 7, 24)
    assert first == _outcomes(0.5, 7, 24)
    rng = random.Random(7)  # one draw per request from the seeded fault RNG
    assert first == [rng.random() < 0.5 for _ in range(24)]
    assert True in first and False in first
    assert _outcomes(0.5, 8, 24) != first


def test_stream_faults_act_on_a_latency_paced_stream() -> None:
    config = MockConfig(latency=LatencyConfig(enabled=True, time_scale=0.001))
    with TestClient(create_app(config)) as client:
        cut_stream = client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=_fault("cut_stream"))
        slow_stream = client.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=_fault("slow_stream"))
    events = read_sse(cut_stream.text)
    assert 0 < len(events) <= CUT_AFTER_EVENTS and (None, "[DONE]") not in events
    assert read_sse(slow_stream.text)[-1] == (None, "[DONE]")
