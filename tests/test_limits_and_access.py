"""Rate limits, scopes and tiers through HTTP (001 "Errors": 403, 429; 004 per-endpoint limits, tiers)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from starlette.testclient import TestClient

from conformance.embedded import serve
from mock_server import MockConfig, create_app
from mock_server.config import KeyConfig, RateLimitConfig
from spec import find_operation
from spec.extensions import rate_limit

TTS_PATH = "/api/v1/multimodal/tts"
CHAT_PATH = "/v1/chat/completions"
CHAT_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def _auth(key: str = "sk-test") -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_concurrent_burst_admits_exactly_the_documented_limit() -> None:
    limit = rate_limit(find_operation("credits_api", "createMultimodalTts"))
    assert limit is not None and limit.requests == 10  # 004: "Rate limit: 10/min"
    with serve(create_app(MockConfig())) as url, httpx.Client(base_url=url, timeout=60) as http:
        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(lambda i: http.post(TTS_PATH, json={"text": f"burst {i}"}, headers=_auth()),
                                    range(25)))
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200] * limit.requests + [429] * 15
        refused = next(answer for answer in answers if answer.status_code == 429)
        assert refused.json()["error"]["type"] == "rate_limit_error"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        # the window is still full, and the refusals charged nothing
        assert http.post(TTS_PATH, json={"text": "x"}, headers=_auth()).status_code == 429
        balance = http.get("/api/v1/managed/usage", headers=_auth()).json()["credits_used"]
        assert balance == 10 * 14


def test_admitted_answers_carry_rate_limit_headers() -> None:
    config = MockConfig(rate_limits=RateLimitConfig(rpm=3, tpm=1_000_000))
    with TestClient(create_app(config)) as client:
        first = client.post(CHAT_PATH, json=CHAT_BODY, headers=_auth())
        assert first.headers["x-ratelimit-limit-requests"] == "3"
        assert first.headers["x-ratelimit-remaining-requests"] == "2"
        assert "x-ratelimit-remaining-tokens" in first.headers
        statuses = [client.post(CHAT_PATH, json=CHAT_BODY, headers=_auth()).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]


def test_tpm_counts_tokens_and_a_key_may_have_its_own_limits() -> None:
    keys = (KeyConfig("sk-test"), KeyConfig("sk-big", tpm=100_000))
    config = MockConfig(keys=keys, rate_limits=RateLimitConfig(rpm=100, tpm=50))
    with TestClient(create_app(config)) as client:
        body = {**CHAT_BODY, "max_tokens": 40}
        assert client.post(CHAT_PATH, json=body, headers=_auth()).status_code == 200
        refused = client.post(CHAT_PATH, json=body, headers=_auth())
        assert refused.status_code == 429 and "tokens" in refused.json()["error"]["message"]
        assert client.post(CHAT_PATH, json=body, headers=_auth("sk-big")).status_code == 200


def test_scope_and_tier_are_403_permission_error() -> None:
    keys = (KeyConfig("sk-chat-only", scopes=frozenset({"createChatCompletion"})),
            KeyConfig("sk-standard", tier="standard"))
    with TestClient(create_app(MockConfig(keys=keys))) as client:
        assert client.post(CHAT_PATH, json=CHAT_BODY, headers=_auth("sk-chat-only")).status_code == 200
        scoped = client.post(TTS_PATH, json={"text": "hi"}, headers=_auth("sk-chat-only"))
        assert scoped.status_code == 403 and scoped.json()["error"]["type"] == "permission_error"
        tiered = client.post("/api/v1/multimodal/video/t2v", json={"prompt": "waves"}, headers=_auth("sk-standard"))
        assert tiered.status_code == 403 and "premium" in tiered.json()["error"]["message"]
        assert client.get("/api/v1/managed/usage", headers=_auth("sk-standard")).json()["credits_used"] == 0


def test_a_request_over_the_tpm_limit_alone_is_openais_request_too_large_and_not_retried() -> None:
    """Issue 17: waiting never admits it, so no Retry-After and x-should-retry: false; nothing is counted."""
    config = MockConfig(rate_limits=RateLimitConfig(rpm=100, tpm=50))
    with TestClient(create_app(config)) as client:
        body = {**CHAT_BODY, "max_tokens": 500}
        refused = client.post(CHAT_PATH, json=body, headers=_auth())
        assert refused.status_code == 429
        error = refused.json()["error"]
        assert error["type"] == "rate_limit_error" and error["code"] == "rate_limit_exceeded"
        assert "Request too large for gpt-4o-mini" in error["message"] and "Limit 50, Requested 5" in error["message"]
        assert "retry-after" not in refused.headers and refused.headers["x-should-retry"] == "false"
        # the headers agree with the decision: nothing of the refused request was counted
        assert refused.headers["x-ratelimit-remaining-requests"] == "100"
        assert refused.headers["x-ratelimit-remaining-tokens"] == "50"
        assert refused.headers["x-ratelimit-reset-requests"] == "0s"
        admitted = client.post(CHAT_PATH, json={**CHAT_BODY, "max_tokens": 20}, headers=_auth())
        assert admitted.status_code == 200 and admitted.headers["x-ratelimit-remaining-requests"] == "99"
        tokens_left = int(admitted.headers["x-ratelimit-remaining-tokens"])
        assert 0 < tokens_left < 50
        # a request that would fit an empty window is the ordinary 429 with a Retry-After that helps
        later = client.post(CHAT_PATH, json={**CHAT_BODY, "max_tokens": 35}, headers=_auth())
        assert later.status_code == 429 and int(later.headers["retry-after"]) >= 1
        assert "x-should-retry" not in later.headers
        assert later.headers["x-ratelimit-remaining-requests"] == "99"
        assert later.headers["x-ratelimit-remaining-tokens"] == str(tokens_left)


def test_the_sdk_does_not_retry_a_request_too_large() -> None:
    """With retries on, the official SDK sends a too-large request once; a 500 it does retry (the proof
    that the count below sees a retry). The Messages protocol has no TPM limit (its spec's
    ``x-rate-limit`` is RPM only), so this is the OpenAI SDK's case."""
    sent: list[str] = []
    hooks = {"request": [lambda request: sent.append(request.url.path)]}
    config = MockConfig(rate_limits=RateLimitConfig(rpm=100, tpm=50))
    with serve(create_app(config)) as url, \
            openai.OpenAI(base_url=f"{url}/v1", api_key="sk-test", max_retries=2,
                          http_client=openai.DefaultHttpxClient(event_hooks=hooks)) as sdk:
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.chat.completions.create(model="gpt-4o-mini", max_tokens=500,
                                        messages=[{"role": "user", "content": "Hello"}])
        assert caught.value.code == "rate_limit_exceeded" and sent == ["/v1/chat/completions"]
        with pytest.raises(openai.InternalServerError):
            sdk.with_options(max_retries=1).chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}],
                extra_headers={"X-Mock-Fault": "500"})
        assert len(sent) == 3
