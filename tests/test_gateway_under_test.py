"""Smoke tests of the test gateway (``tests/gateway_under_test.py``): in front of the real mock, and in process
over an ``httpx.MockTransport`` upstream that records what it was sent."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
from starlette.testclient import TestClient

from conformance.embedded import embedded_app, serve
from mock_server import MockConfig, create_app
from mock_server.config import FaultConfig
from tests.gateway_under_test import BROKEN, CLIENT_KEY, gateway_app

GW_AUTH = {"Authorization": f"Bearer {CLIENT_KEY}"}
UPSTREAM = "http://upstream.test"
CHAT_BODY = {"model": "acme-chat", "max_completion_tokens": 30,
             "messages": [{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "Hello"}]}


@pytest.fixture(scope="module")
def mock_upstream() -> Iterator[str]:
    """The embedded mock served on loopback: the gateways' upstream."""
    with serve(embedded_app()) as url:
        yield url


class _Chunks(httpx.AsyncByteStream):
    """An upstream body sent in the given chunks (a streamed answer, unlike ``content=``, which httpx reads)."""

    def __init__(self, *chunks: bytes) -> None:
        self.chunks = chunks

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            yield chunk


def _recording(answer: Callable[[httpx.Request], httpx.Response],
               sent: list[httpx.Request]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return answer(request)
    return httpx.MockTransport(handler)


def _completion(request: httpx.Request) -> httpx.Response:
    model = json.loads(request.content)["model"]
    return httpx.Response(200, json={"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": model,
                                     "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1,
                                                              "total_tokens": 4}})


def _gateway(answer: Callable[[httpx.Request], httpx.Response], breaks: str | None = None
             ) -> tuple[TestClient, list[httpx.Request]]:
    sent: list[httpx.Request] = []
    app = gateway_app(UPSTREAM, "sk-up", breaks, transport=_recording(answer, sent))
    return TestClient(app), sent


def test_chat_through_the_mock_answers_with_the_gateway_model_id(mock_upstream: str) -> None:
    with serve(gateway_app(mock_upstream, "sk-test")) as gateway:
        answer = httpx.post(f"{gateway}/v1/chat/completions", json=CHAT_BODY, headers=GW_AUTH, timeout=30)
        refused = httpx.post(f"{gateway}/v1/chat/completions", json=CHAT_BODY,
                             headers={"Authorization": "Bearer sk-test"}, timeout=30)
        with httpx.stream("POST", f"{gateway}/v1/chat/completions", headers=GW_AUTH, timeout=30,
                          json={**CHAT_BODY, "stream": True}) as stream:
            chunks = list(stream.iter_raw())
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "acme-chat"
    assert refused.status_code == 401 and refused.json()["error"]["type"] == "authentication_error"
    assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
    assert len(chunks) > 1 and b"".join(chunks).rstrip().endswith(b"data: [DONE]")


def test_chat_translation_on_the_forwarded_body() -> None:
    client, sent = _gateway(_completion)
    answer = client.post("/v1/chat/completions", json=CHAT_BODY, headers={**GW_AUTH, "X-Mock-Fault": "503",
                                                                          "X-Request-Id": "req-1"})
    assert answer.status_code == 200 and answer.json()["model"] == "acme-chat"
    forwarded = json.loads(sent[0].content)
    assert [m["role"] for m in forwarded["messages"]] == ["system", "user"]
    assert forwarded["max_tokens"] == 30 and "max_completion_tokens" not in forwarded
    assert forwarded["model"] == "gpt-4o-mini" and forwarded["messages"][1]["content"] == "Hello"
    assert sent[0].headers["authorization"] == "Bearer sk-up" and sent[0].headers["x-request-id"] == "req-1"
    assert "x-mock-fault" not in sent[0].headers


def test_a_broken_variant_differs_in_its_one_rule() -> None:
    client, sent = _gateway(_completion, "keeps_developer_role")
    assert client.post("/v1/chat/completions", json=CHAT_BODY, headers=GW_AUTH).status_code == 200
    forwarded = json.loads(sent[0].content)
    assert forwarded["messages"][0]["role"] == "developer" and forwarded["max_tokens"] == 30
    with pytest.raises(ValueError, match="unknown broken variant"):
        gateway_app(UPSTREAM, "sk-up", "no_such_variant")
    for name in BROKEN:
        gateway_app(UPSTREAM, "sk-up", name)


def test_upstream_503_is_retried_then_503_upstream_error() -> None:
    client, sent = _gateway(lambda _: httpx.Response(503, json={"error": {"message": "down"}},
                                                     headers={"Retry-After": "2"}))
    answer = client.post("/v1/chat/completions", json=CHAT_BODY, headers=GW_AUTH)
    assert answer.status_code == 503 and answer.json()["error"]["type"] == "upstream_error"
    assert answer.headers["retry-after"] == "2" and len(sent) == 3
    messages = client.post("/v1/messages", json={"model": "acme-claude", "max_tokens": 10, "messages": []},
                           headers={"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"})
    assert messages.status_code == 529 and messages.json()["error"]["type"] == "overloaded_error"
    assert sent[-1].headers["x-api-key"] == "sk-up" and sent[-1].headers["anthropic-version"] == "2023-06-01"


def test_a_503_of_the_real_mock_becomes_503_upstream_error() -> None:
    faults = FaultConfig(operations={"createChatCompletion": {"503": 1.0}})
    with serve(create_app(MockConfig(faults=faults))) as upstream, serve(gateway_app(upstream, "sk-test")) as gw:
        answer = httpx.post(f"{gw}/v1/chat/completions", json=CHAT_BODY, headers=GW_AUTH, timeout=30)
    assert answer.status_code == 503 and answer.json()["error"]["type"] == "upstream_error"


def test_malformed_answer_and_cut_stream() -> None:
    client, _ = _gateway(lambda _: httpx.Response(200, content=b'{"id": "x", "cho',
                                                  headers={"content-type": "application/json"}))
    malformed = client.post("/v1/chat/completions", json=CHAT_BODY, headers=GW_AUTH)
    assert malformed.status_code == 502 and malformed.json()["error"]["type"] == "upstream_error"

    def cut(_: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=_Chunks(b'data: {"id": "c", "choices": []}\n\n', b": ping\n\n"),
                              headers={"content-type": "text/event-stream"})

    body = {**CHAT_BODY, "stream": True}
    correct, _ = _gateway(cut)
    text = correct.post("/v1/chat/completions", json=body, headers=GW_AUTH).text
    assert '"upstream_error"' in text and "[DONE]" not in text
    broken, _ = _gateway(cut, "completes_cut_stream")
    text = broken.post("/v1/chat/completions", json=body, headers=GW_AUTH).text
    assert text.endswith("data: [DONE]\n\n") and "upstream_error" not in text
