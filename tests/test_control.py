"""The control API (mock_server/control.py) through HTTP: its own key, reset, top-ups, fault rates, ledger."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from mock_server import DEV_API_KEY, MockConfig, create_app
from mock_server.config import ControlConfig, FaultConfig, KeyConfig
from spec import find_operation, schema_validator
from spec.extensions import credit_cost

AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}
CONTROL_KEY = "ctl-secret"
CONTROL = {"Authorization": f"Bearer {CONTROL_KEY}"}
STARTING_CREDITS = 1000
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
TTS = {"text": "Welcome to AINative Studio."}
ENDPOINTS = [("POST", "/_mock/reset", None), ("POST", "/_mock/credits", {"api_key": DEV_API_KEY, "credits": 5}),
             ("GET", "/_mock/faults", None), ("PUT", "/_mock/faults", {}), ("GET", "/_mock/ledger", None)]
ERROR_ENVELOPE = schema_validator("openai_gateway", {"$ref": "#/components/schemas/ErrorResponse"})


def _tts_cost() -> int:
    cost = credit_cost(find_operation("credits_api", "createMultimodalTts"))
    assert cost is not None
    return cost.credits


def _config(**fields: Any) -> MockConfig:
    return MockConfig(keys=(KeyConfig(DEV_API_KEY, credits=STARTING_CREDITS, rpm=2),),
                      control=ControlConfig(enabled=True, key=CONTROL_KEY), **fields)


@pytest.fixture
def app() -> Iterator[TestClient]:
    with TestClient(create_app(_config())) as client:
        yield client


@pytest.fixture(scope="module")
def guarded() -> Iterator[TestClient]:
    """One app for the 401 cases, which change nothing."""
    with TestClient(create_app(_config())) as client:
        yield client


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    ERROR_ENVELOPE.validate(body)
    error: dict[str, Any] = body["error"]
    return error


def _ledger(client: TestClient) -> dict[str, Any]:
    response = client.get("/_mock/ledger", params={"api_key": DEV_API_KEY}, headers=CONTROL)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _tts(client: TestClient) -> dict[str, Any]:
    response = client.post("/api/v1/multimodal/tts", json=TTS, headers=AUTH)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_control_api_is_absent_unless_enabled(client: TestClient) -> None:
    for method, path, body in ENDPOINTS:
        error = _error(client.request(method, path, json=body, headers=CONTROL), 404)
        assert path in error["message"]


def test_enabled_without_a_key_refuses_to_start() -> None:
    with pytest.raises(ValueError, match=r"control\.key"):
        create_app(MockConfig(control=ControlConfig(enabled=True)))


@pytest.mark.parametrize("headers", [{}, AUTH, {"Authorization": "Bearer wrong"}, {"Authorization": CONTROL_KEY}],
                         ids=["none", "api-key", "wrong", "no-scheme"])
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
def test_every_endpoint_needs_the_control_key(guarded: TestClient, headers: dict[str, str], method: str, path: str,
                                              body: Any) -> None:
    error = _error(guarded.request(method, path, json=body, headers=headers), 401)
    assert error["type"] == "authentication_error" and "control key" in error["message"]


def test_top_up_shows_in_the_next_tts_answer(app: TestClient) -> None:
    response = app.post("/_mock/credits", json={"api_key": DEV_API_KEY, "credits": 500}, headers=CONTROL)
    assert response.status_code == 200, response.text
    assert response.json() == {"api_key": DEV_API_KEY, "credits_added": 500, "balance": STARTING_CREDITS + 500}
    assert _tts(app)["credits_remaining"] == STARTING_CREDITS + 500 - _tts_cost()


@pytest.mark.parametrize(("body", "param"), [
    ({"api_key": DEV_API_KEY, "credits": 0}, "credits"), ({"api_key": DEV_API_KEY, "credits": "5"}, "credits"),
    ({"api_key": DEV_API_KEY, "credits": True}, "credits"), ({"api_key": DEV_API_KEY}, "credits"),
    ({"api_key": "sk-unknown", "credits": 5}, "api_key"), ({"credits": 5}, "api_key"),
    ([1, 2], None), ("not json", None),
])
def test_top_up_rejects_bad_bodies(app: TestClient, body: Any, param: str | None) -> None:
    kwargs: dict[str, Any] = {"content": body} if isinstance(body, str) else {"json": body}
    error = _error(app.post("/_mock/credits", headers=CONTROL, **kwargs), 400)
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert _ledger(app)["balance"] == STARTING_CREDITS


def test_ledger_read(app: TestClient) -> None:
    assert _ledger(app) == {"api_key": DEV_API_KEY, "balance": STARTING_CREDITS, "credits_used": 0,
                            "total_records": 0, "usage": []}
    answer = _tts(app)
    ledger = _ledger(app)
    cost = _tts_cost()
    assert ledger["balance"] == STARTING_CREDITS - cost == answer["credits_remaining"]
    assert ledger["credits_used"] == cost and ledger["total_records"] == 1
    record = ledger["usage"][0]
    assert record["usage_id"] == answer["usage_id"] and record["endpoint_type"] == "tts"
    assert record["credits"] == cost and record["balance_after"] == ledger["balance"]
    assert record["result"]["duration_ms"] == answer["duration_ms"]


@pytest.mark.parametrize("params", [{}, {"api_key": "sk-unknown"}, {"api_key": DEV_API_KEY, "limit": "0"},
                                    {"api_key": DEV_API_KEY, "limit": "x"}])
def test_ledger_read_rejects_bad_queries(app: TestClient, params: dict[str, str]) -> None:
    error = _error(app.get("/_mock/ledger", params=params, headers=CONTROL), 400)
    assert error["param"] in ("api_key", "limit")


def test_reset_forgets_rate_windows_and_the_ledger(app: TestClient) -> None:
    for _ in range(2):  # the key's rpm is 2
        assert app.post("/v1/chat/completions", json=CHAT, headers=AUTH).status_code == 200
    assert app.post("/v1/chat/completions", json=CHAT, headers=AUTH).status_code == 429
    _tts(app)
    assert app.post("/_mock/credits", json={"api_key": DEV_API_KEY, "credits": 7}, headers=CONTROL).status_code == 200
    assert _ledger(app)["total_records"] == 1
    response = app.post("/_mock/reset", headers=CONTROL)
    assert response.status_code == 200 and "ledger" in response.json()["reset"]
    assert app.post("/v1/chat/completions", json=CHAT, headers=AUTH).status_code == 200
    assert _ledger(app) == {"api_key": DEV_API_KEY, "balance": STARTING_CREDITS, "credits_used": 0,
                            "total_records": 0, "usage": []}
    assert _tts(app)["credits_remaining"] == STARTING_CREDITS - _tts_cost()


def test_put_faults_takes_effect_and_reset_restores_the_configured_rates() -> None:
    configured = {"createMultimodalTts": {"500": 1.0}}
    with TestClient(create_app(_config(faults=FaultConfig(operations=configured)))) as app:
        assert app.get("/_mock/faults", headers=CONTROL).json() == configured
        assert app.post("/v1/chat/completions", json=CHAT, headers=AUTH).status_code == 200
        rates = {"createChatCompletion": {"503": 1, "slow_stream": 0.0}}
        response = app.put("/_mock/faults", json=rates, headers=CONTROL)
        assert response.status_code == 200 and response.json() == rates
        assert app.get("/_mock/faults", headers=CONTROL).json() == rates
        assert _error(app.post("/v1/chat/completions", json=CHAT, headers=AUTH), 503)["type"] == "upstream_error"
        assert _tts(app)["credits_used"] == _tts_cost()  # the configured TTS rate was replaced
        assert app.put("/_mock/faults", json={}, headers=CONTROL).json() == {}
        assert app.post("/v1/chat/completions", json=CHAT, headers=AUTH).status_code == 200
        assert app.post("/_mock/reset", headers=CONTROL).status_code == 200
        assert app.get("/_mock/faults", headers=CONTROL).json() == configured
        assert _error(app.post("/api/v1/multimodal/tts", json=TTS, headers=AUTH), 500)["code"] == "gpu_provider_error"


def test_reset_reseeds_the_fault_draws(app: TestClient) -> None:
    assert app.put("/_mock/faults", json={"listModels": {"500": 0.5}}, headers=CONTROL).status_code == 200

    def sequence() -> list[int]:
        return [app.get("/v1/models", headers=AUTH).status_code for _ in range(12)]

    first = sequence()
    assert 200 in first and 500 in first
    app.post("/_mock/reset", headers=CONTROL)
    app.put("/_mock/faults", json={"listModels": {"500": 0.5}}, headers=CONTROL)
    assert sequence() == first


def test_reset_keeps_the_id_sequence(app: TestClient) -> None:
    """Hosted media and video jobs outlive a reset, so the ids issued after it continue the sequence: a
    re-seeded sequence would hand out ``chatcmpl-`` and job ids already in use."""
    def ids() -> list[str]:
        return [app.post("/v1/chat/completions", json=CHAT, headers=AUTH).json()["id"] for _ in range(2)]

    before = ids()
    assert app.post("/_mock/reset", headers=CONTROL).status_code == 200
    after = ids()
    assert len(set(before + after)) == 4, (before, after)


@pytest.mark.parametrize(("rates", "param"), [
    ({"noSuchOperation": {"500": 0.5}}, "noSuchOperation"), ({"createChatCompletion": {"418": 0.5}},
                                                             "createChatCompletion.418"),
    ({"createChatCompletion": {"500": 1.5}}, "createChatCompletion.500"),
    ({"createChatCompletion": {"500": True}}, "createChatCompletion.500"),
    ({"createChatCompletion": 0.5}, "createChatCompletion"),
])
def test_put_faults_rejects_bad_rates_and_keeps_the_old_ones(app: TestClient, rates: dict[str, Any],
                                                             param: str) -> None:
    app.put("/_mock/faults", json={"createImage": {"502": 0.25}}, headers=CONTROL)
    assert _error(app.put("/_mock/faults", json=rates, headers=CONTROL), 400)["param"] == param
    assert app.get("/_mock/faults", headers=CONTROL).json() == {"createImage": {"502": 0.25}}
