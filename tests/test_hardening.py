"""The reproductions of issue 16's attack on the mock, each kept as a test (none timed)."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
from starlette.testclient import TestClient

from mock_server import DEV_API_KEY, create_app
from mock_server.handlers import HANDLERS
from mock_server.hosted import MAX_ITEMS_PER_KEY, HostedMedia
from mock_server.http_stack import H11Protocol, HttpToolsProtocol

AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}
MESSAGES = {"x-api-key": DEV_API_KEY, "anthropic-version": "2023-06-01"}


@pytest.fixture(scope="module")
def app_client() -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/responses", {"model": "gpt-4o-mini", "input": [{}] * 100_000}, "input[0]"),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{}] * 300_000}, "messages[0]"),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
                              "stop": list(range(300_000))}, "stop"),
    ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "a"}] * 50_000 + [{}]}]}, "messages[0].content[50000]"),
])
def test_a_huge_invalid_body_is_refused_naming_its_first_offending_field(
        app_client: TestClient, path: str, body: Any, param: str) -> None:
    response = app_client.post(path, content=orjson.dumps(body), headers={**AUTH, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"]["param"].startswith(param)


def test_a_huge_invalid_value_is_quoted_as_an_excerpt(app_client: TestClient) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "temperature": "t" * 10_000_000}
    response = app_client.post("/v1/chat/completions", json=body, headers=AUTH)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "temperature"
    assert len(response.content) < 1000


@pytest.mark.parametrize(("path", "field", "extra"), [
    ("/v1/chat/completions", "temperature", {}), ("/v1/chat/completions", "top_p", {}),
    ("/v1/chat/completions", "presence_penalty", {}), ("/v1/chat/completions", "frequency_penalty", {}),
    ("/v1/responses", "temperature", {}), ("/v1/responses", "top_p", {}), ("/v1/audio/speech", "speed", {}),
    ("/v1/messages", "temperature", MESSAGES), ("/api/v1/multimodal/video/cogvideox", "guidance_scale", {}),
])
def test_nan_is_a_400_naming_the_field(app_client: TestClient, path: str, field: str, extra: dict[str, str]) -> None:
    raw = b'{"model": "gpt-4o-mini", "input": "hi", "prompt": "a cat", "voice": "alloy", "%s": NaN}' % field.encode()
    response = app_client.post(path, content=raw, headers={**AUTH, **extra, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert field in response.text


def test_deep_nesting_in_the_control_api_is_a_400() -> None:
    from mock_server import MockConfig
    from mock_server.config import ControlConfig
    app = create_app(MockConfig(control=ControlConfig(enabled=True, key="ctl")))
    with TestClient(app, raise_server_exceptions=False) as client:
        raw = b'{"createChatCompletion": ' + b"[" * 5000 + b"]" * 5000 + b"}"
        response = client.put("/_mock/faults", content=raw, headers={"Authorization": "Bearer ctl"})
        assert response.status_code == 400
        assert client.put("/_mock/faults", content=b'{"x": NaN}', headers={"Authorization": "Bearer ctl"}
                          ).json()["error"]["param"] == "x"


def test_messages_paths_answer_404_405_and_500_in_the_messages_envelope(monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(call: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setitem(HANDLERS, "createMessage", broken)
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        wrong_method = client.get("/v1/messages", headers=MESSAGES)
        assert wrong_method.status_code == 405
        assert wrong_method.headers["allow"] == "POST"
        unknown = client.post("/v1/messages/nope", headers=MESSAGES)
        body = {"model": "claude-sonnet-4", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]}
        failed = client.post("/v1/messages", json=body, headers=MESSAGES)
        for response, status in ((wrong_method, 405), (unknown, 404), (failed, 500)):
            assert response.status_code == status
            assert response.json()["type"] == "error", response.text
        assert client.delete("/v1/chat/completions", headers=AUTH).json()["error"]["type"] == "invalid_request_error"


def test_one_key_cannot_evict_another_keys_hosted_media() -> None:
    store = HostedMedia()
    kept = store.put(b"mine", "image/png", 3600, owner="sk-a")
    for _ in range(MAX_ITEMS_PER_KEY + 10):
        store.put(b"x", "image/png", 3600, owner="sk-b")
    assert store.get(kept.rsplit("/", 1)[-1]).content == b"mine"
    ids = [store.put(b"y", "image/png", 3600, owner="sk-a") for _ in range(MAX_ITEMS_PER_KEY)]
    with pytest.raises(Exception, match="No hosted file"):  # at its own bound, a key's oldest goes first
        store.get(kept.rsplit("/", 1)[-1])
    assert store.get(ids[-1].rsplit("/", 1)[-1]).content == b"y"


@pytest.fixture(params=[HttpToolsProtocol, H11Protocol], ids=["httptools", "h11"])
def served_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """The mock under uvicorn with the CLI's protocol classes, on 127.0.0.1."""
    config = uvicorn.Config(create_app(), host="127.0.0.1", port=0, log_level="info", lifespan="off",
                            http=request.param)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield server.servers[0].sockets[0].getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)


def _exchange(port: int, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def test_both_content_length_and_transfer_encoding_are_refused_and_the_connection_closed(served_port: int) -> None:
    pipelined = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test\r\n"
                 b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                 b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test\r\n\r\n")
    answer = _exchange(served_port, pipelined)
    assert answer.startswith(b"HTTP/1.1 400")
    assert answer.count(b"HTTP/1.1") == 1  # the pipelined request is never answered
    assert b'"error"' in answer


def test_malformed_http_is_answered_in_json(served_port: int) -> None:
    answer = _exchange(served_port, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                                    b"\r\n\r\nzz\r\nabc\r\n")
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"application/json" in answer and b'"malformed_http"' in answer


def test_a_client_gone_mid_body_is_one_log_line(served_port: int, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    with socket.create_connection(("127.0.0.1", served_port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer sk-test\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\": ")
        time.sleep(0.2)
    deadline = time.monotonic() + 5
    while not any("disconnected" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
        time.sleep(0.05)
    mock_records = [r for r in caplog.records if r.name == "mock_server"]
    assert [r.levelno for r in mock_records] == [logging.INFO]
    assert "disconnected" in mock_records[0].getMessage() and mock_records[0].exc_info is None
    assert httpx.get(f"http://127.0.0.1:{served_port}/v1/models", headers=AUTH).status_code == 200
