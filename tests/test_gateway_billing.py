"""Gateway spend limits (001, 002 "Errors": 402 billing_error; 002 "Pricing") and the shipped safety
filter (002 "Safety"), through HTTP, and the per-key rate window of the embedded mock's probe key."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conformance.embedded import BILLING_KEY, BLOCKED_WORD, LIMITED_KEY, LIMITED_WINDOW_S, embedded_app
from mock_server import MockConfig, create_app
from mock_server.catalogue import load_catalogue
from mock_server.config import DEFAULT_CONFIG_FILE, ControlConfig, KeyConfig, load_config
from mock_server.sim.spend import Price, SpendLimitReached, SpendMeter

CHAT = "/v1/chat/completions"
IMAGES = "/v1/images/generations"


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _chat(text: str = "hi", model: str = "gpt-4o-mini") -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": text}]}


def test_meter_refuses_what_would_pass_the_limit_and_charges_nothing() -> None:
    meter = SpendMeter({"k": 0.05})
    assert meter.charge("k", 0.03) == pytest.approx(0.03)
    with pytest.raises(SpendLimitReached):
        meter.charge("k", 0.03)
    assert meter.spent_usd("k") == pytest.approx(0.03)
    assert meter.charge("k", 0.02) == pytest.approx(0.05)
    assert meter.charge("free", 1000.0) == pytest.approx(1000.0)  # no limit: counted, never refused
    with pytest.raises(SpendLimitReached):
        SpendMeter({"zero": 0.0}).charge("zero", 0.000001)


def test_catalogue_prices_tokens_and_images_by_model_size_and_quality() -> None:
    models = load_catalogue()
    mini = models["gpt-4o-mini"].price
    assert mini is not None and mini.tokens_usd(1_000_000, 1_000_000) == pytest.approx(0.75)
    image = models["gpt-image-1"].price
    assert image is not None
    assert image.images_usd("low", "1024x1024", 1) < image.images_usd("high", "1024x1024", 1)
    assert image.images_usd("high", "1536x1024", 2) == pytest.approx(0.5)
    dalle = models["dall-e-3"].price
    assert dalle is not None and dalle.images_usd("hd", "1792x1024", 1) > dalle.images_usd("standard", "1024x1024", 1)
    assert Price().images_usd("standard", "1024x1024", 3) == 0.0


def test_spend_limit_admits_until_reached_then_402_billing_error() -> None:
    # gpt-image-1 at low quality costs 0.011 USD an image: a 0.03 USD limit pays for two, not three
    keys = (KeyConfig("sk-test"), KeyConfig("sk-capped", spend_limit_usd=0.03))
    body = {"model": "gpt-image-1", "prompt": "A red square", "quality": "low", "response_format": "b64_json"}
    with TestClient(create_app(MockConfig(keys=keys))) as client:
        statuses = [client.post(IMAGES, json=body, headers=_auth("sk-capped")).status_code for _ in range(3)]
        assert statuses == [200, 200, 402]
        refused = client.post(IMAGES, json=body, headers=_auth("sk-capped"))
        error = refused.json()["error"]
        assert refused.status_code == 402 and error["type"] == "billing_error", refused.text
        assert "spend limit" in error["message"]
        # refused requests charged nothing: exactly two images were paid for
        assert client.app.state.services.spend.spent_usd("sk-capped") == pytest.approx(0.022)  # type: ignore[attr-defined]
        # a dearer request is refused while a cheaper one still fits under the limit
        chat = client.post(CHAT, json=_chat(), headers=_auth("sk-capped"))
        assert chat.status_code == 200, chat.text
        assert client.post(IMAGES, json=body, headers=_auth("sk-test")).status_code == 200  # other keys unaffected


def test_embedded_over_limit_key_is_refused_on_chat_streams_and_images() -> None:
    with TestClient(embedded_app()) as client:
        for path, body in ((CHAT, _chat()), (CHAT, {**_chat(), "stream": True}),
                           (IMAGES, {"model": "dall-e-3", "prompt": "A red square"})):
            answer = client.post(path, json=body, headers=_auth(BILLING_KEY))
            assert answer.status_code == 402 and answer.json()["error"]["type"] == "billing_error", answer.text
        assert client.post(CHAT, json=_chat(), headers=_auth("sk-test")).status_code == 200


@pytest.mark.parametrize(("path", "body", "param"), [
    (CHAT, _chat(f"How do I make a {BLOCKED_WORD.upper()}?"), "messages[0].content"),
    (IMAGES, {"model": "gpt-image-1", "prompt": f"A {BLOCKED_WORD} in a lab"}, "prompt"),
])
def test_shipped_and_embedded_safety_filter_refuses_the_blocked_word(path: str, body: dict[str, object],
                                                                      param: str) -> None:
    shipped = load_config(DEFAULT_CONFIG_FILE, latency=MockConfig().latency)
    assert BLOCKED_WORD in shipped.faults.blocklist
    for app in (create_app(shipped), embedded_app()):
        with TestClient(app) as client:
            answer = client.post(path, json=body, headers=_auth("sk-test"))
            error = answer.json()["error"]
            assert answer.status_code == 400 and error["type"] == "invalid_request_error", answer.text
            assert BLOCKED_WORD in error["message"].lower() and error["param"] == param


def test_shipped_configuration_has_an_over_limit_key() -> None:
    shipped = load_config(DEFAULT_CONFIG_FILE, latency=MockConfig().latency)
    assert any(entry.spend_limit_usd == 0 for entry in shipped.keys)


def test_configuration_file_takes_spend_limit_and_rate_window(tmp_path: Path) -> None:
    path = tmp_path / "mock.yaml"
    path.write_text("keys:\n  - {key: sk-a, spend_limit_usd: 1.5, rpm: 2, rate_window_s: 0.5}\n")
    entry = load_config(path).keys[0]
    assert (entry.spend_limit_usd, entry.rpm, entry.rate_window_s) == (1.5, 2, 0.5)


def test_limited_key_window_is_short_and_retry_after_says_so() -> None:
    with TestClient(embedded_app()) as client:
        statuses = [client.post(CHAT, json=_chat(), headers=_auth(LIMITED_KEY)) for _ in range(4)]
        assert [answer.status_code for answer in statuses] == [200, 200, 200, 429]
        wait = int(statuses[-1].headers["retry-after"])
        assert 1 <= wait <= LIMITED_WINDOW_S
        time.sleep(wait)
        assert client.post(CHAT, json=_chat(), headers=_auth(LIMITED_KEY)).status_code == 200


def test_control_reset_forgets_gateway_spend() -> None:
    keys = (KeyConfig("sk-test"), KeyConfig("sk-capped", spend_limit_usd=0.02))
    config = MockConfig(keys=keys, control=ControlConfig(enabled=True, key="ctl"))
    body = {"model": "dall-e-2", "prompt": "A red square", "size": "1024x1024"}  # 0.02 USD an image
    with TestClient(create_app(config)) as client:
        assert [client.post(IMAGES, json=body, headers=_auth("sk-capped")).status_code for _ in range(2)] == [200, 402]
        reset = client.post("/_mock/reset", headers=_auth("ctl"))
        assert reset.status_code == 200 and "spend" in reset.json()["reset"]
        assert client.post(IMAGES, json=body, headers=_auth("sk-capped")).status_code == 200
