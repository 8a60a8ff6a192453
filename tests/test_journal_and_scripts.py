"""The request journal (mock_server/journal.py) and scripted upstream behaviour (mock_server/stages/scripted.py),
through the control API: what reached the mock, and "the next N matching requests answer F"."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from conformance.embedded import serve
from mock_server import DEV_API_KEY, MockConfig, create_app
from mock_server.config import ControlConfig, JournalConfig

AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}
MESSAGES_AUTH = {"x-api-key": DEV_API_KEY, "anthropic-version": "2023-06-01"}
CONTROL = {"Authorization": "Bearer ctl"}


def _config(**fields: Any) -> MockConfig:
    return MockConfig(control=ControlConfig(enabled=True, key="ctl"), **fields)


def _chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], **extra}


@pytest.fixture
def mock() -> Iterator[TestClient]:
    with TestClient(create_app(_config())) as client:
        yield client


@pytest.fixture(scope="module")
def served() -> Iterator[httpx.Client]:
    with serve(create_app(_config())) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def _journal(client: Any, **query: Any) -> list[dict[str, Any]]:
    answer = client.get("/_mock/journal", headers=CONTROL, params=query)
    assert answer.status_code == 200, answer.text
    entries: list[dict[str, Any]] = answer.json()["entries"]
    return entries


def _script(client: Any, match: dict[str, Any], *steps: dict[str, Any]) -> dict[str, Any]:
    answer = client.post("/_mock/scripts", headers=CONTROL, json={"match": match, "steps": list(steps)})
    assert answer.status_code == 200, answer.text
    script: dict[str, Any] = answer.json()
    return script


def test_journal_records_request_and_answer_with_secrets_redacted(mock: TestClient) -> None:
    headers = {**AUTH, "X-Request-Id": "req-42", "traceparent": "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"}
    sent = _chat("hello cnf-0001", max_tokens=5)
    assert mock.post("/v1/chat/completions", headers=headers, json=sent).status_code == 200
    mock.post("/v1/chat/completions", headers=AUTH, json=_chat("another"))
    [entry] = _journal(mock, nonce="cnf-0001")
    assert entry["operation_id"] == "createChatCompletion" and entry["method"] == "POST"
    assert entry["path"] == "/v1/chat/completions" and entry["body"] == sent
    assert entry["headers"]["authorization"] == "Bearer [redacted]" and DEV_API_KEY not in str(entry)
    assert entry["request_id"] == "req-42" and entry["trace_id"] == "ab" * 16
    assert entry["response"]["status"] == 200 and entry["response"]["body"]["object"] == "chat.completion"
    assert [e["id"] for e in _journal(mock, request_id="req-42")] == [entry["id"]]
    assert [e["id"] for e in _journal(mock, trace_id="AB" * 16)] == [entry["id"]]
    assert len(_journal(mock, operation_id="createChatCompletion")) == 2
    assert _journal(mock, operation_id="createImage") == []


def test_journal_records_refusals_and_upload_digests(mock: TestClient) -> None:
    mock.post("/v1/chat/completions", json=_chat("no key cnf-0002"))
    [refused] = _journal(mock, operation_id="createChatCompletion")
    assert refused["response"]["status"] == 401 and refused["body"] is None  # refused before its body was read
    audio = b"RIFF" + b"\0" * 2000
    mock.post("/v1/audio/transcriptions", headers=AUTH, files={"file": ("a.wav", audio, "audio/wav")},
              data={"model": "whisper-1", "prompt": "cnf-0003"})
    [upload] = _journal(mock, nonce="cnf-0003")
    [digest] = upload["uploads"]["file"]
    assert digest["bytes"] == len(audio) and digest["filename"] == "a.wav" and len(digest["sha256"]) == 64


def test_journal_records_requests_that_match_no_operation(mock: TestClient) -> None:
    # a gateway that forwards to a wrong path or method shows in the journal, found by its body's nonce
    mock.post("/v1/chat/completion", headers=AUTH, json=_chat("typo cnf-0004"))
    mock.get("/v1/chat/completions", headers=AUTH, params={"q": "cnf-0005"})
    [wrong_path] = _journal(mock, nonce="cnf-0004")
    assert wrong_path["operation_id"] is None and wrong_path["path"] == "/v1/chat/completion"
    assert wrong_path["response"]["status"] == 404 and wrong_path["body"]["messages"][0]["content"] == "typo cnf-0004"
    assert wrong_path["headers"]["authorization"] == "Bearer [redacted]"
    [wrong_method] = _journal(mock, nonce="cnf-0005")
    assert wrong_method["method"] == "GET" and wrong_method["response"]["status"] == 405
    assert wrong_method["body"] is None


def test_journal_is_a_bounded_ring_and_body_budget() -> None:
    with TestClient(create_app(_config(journal=JournalConfig(size=3, body_bytes=1000)))) as mock:
        for index in range(5):
            mock.post("/v1/chat/completions", headers=AUTH, json=_chat(f"ring {index}"))
        entries = _journal(mock)
        assert [e["body"]["messages"][0]["content"] for e in entries] == ["ring 2", "ring 3", "ring 4"]
        kept = [e["response"]["body_kept"] for e in entries]
        assert kept[-1] and not all(kept)  # 3 answers of ~650 bytes do not fit 1000 bytes
        assert all(len(e["response"]["sha256"]) == 64 for e in entries)
        newest = entries[-1]
        raw = mock.get(f"/_mock/journal/{newest['id']}/response", headers=CONTROL)
        assert raw.status_code == 200 and raw.json() == newest["response"]["body"]
        assert mock.get(f"/_mock/journal/{entries[0]['id']}/response", headers=CONTROL).status_code == 404
        assert mock.delete("/_mock/journal", headers=CONTROL).json() == {"cleared": 3}


def test_journal_can_be_turned_off() -> None:
    with TestClient(create_app(_config(journal=JournalConfig(enabled=False)))) as mock:
        mock.post("/v1/chat/completions", headers=AUTH, json=_chat("off"))
        assert mock.get("/_mock/journal", headers=CONTROL).status_code == 409


@pytest.mark.parametrize(("query", "param"), [
    ({"limit": "5000"}, "limit"), ({"limit": "-1"}, "limit"), ({"operation_id": "nope"}, "operation_id"),
    ({"nonce": "x" * 300}, "nonce"), ({"colour": "red"}, "colour"), ({"since_id": "abc"}, "since_id"),
])
def test_bad_journal_query_is_400_naming_the_field(mock: TestClient, query: dict[str, str], param: str) -> None:
    answer = mock.get("/_mock/journal", headers=CONTROL, params=query)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param


def test_journal_needs_the_control_key(mock: TestClient) -> None:
    assert mock.get("/_mock/journal", headers=AUTH).status_code == 401


def test_fail_twice_then_succeed_only_for_the_matching_nonce(mock: TestClient) -> None:
    _script(mock, {"nonce": "cnf-0004"}, {"answer": "error", "status": 503, "times": 2}, {"answer": "pass"})
    statuses = [mock.post("/v1/chat/completions", headers=AUTH, json=_chat("x cnf-0004")).status_code
                for _ in range(4)]
    assert statuses == [503, 503, 200, 200]
    assert mock.post("/v1/chat/completions", headers=AUTH, json=_chat("other")).status_code == 200
    labels = [e["script"] for e in _journal(mock, nonce="cnf-0004")]
    assert labels == ["script-1: error 503", "script-1: error 503", "script-1: pass", None]
    assert mock.get("/_mock/scripts", headers=CONTROL).json() == {"scripts": []}


def test_scripts_scoped_by_operation_and_deleted(mock: TestClient) -> None:
    script = _script(mock, {"operation_id": "createImage"}, {"answer": "error", "status": 502, "times": 10})
    assert mock.post("/v1/chat/completions", headers=AUTH, json=_chat("chat")).status_code == 200
    image = mock.post("/v1/images/generations", headers=AUTH, json={"model": "gpt-image-1", "prompt": "cat"})
    assert image.status_code == 502 and image.json()["error"]["type"] == "upstream_error"
    assert mock.delete(f"/_mock/scripts/{script['id']}", headers=CONTROL).json() == {"deleted": 1}
    assert mock.delete(f"/_mock/scripts/{script['id']}", headers=CONTROL).status_code == 404
    again = mock.post("/v1/images/generations", headers=AUTH, json={"model": "gpt-image-1", "prompt": "cat"})
    assert again.status_code == 200


@pytest.mark.parametrize(("status", "error_type"), [
    (400, "invalid_request_error"), (401, "authentication_error"), (402, "billing_error"),
    (403, "permission_error"), (429, "rate_limit_error"), (500, "internal_server_error"),
    (502, "upstream_error"), (503, "upstream_error"),
])
def test_error_steps_use_the_documented_type(mock: TestClient, status: int, error_type: str) -> None:
    _script(mock, {"nonce": "cnf-0005"}, {"answer": "error", "status": status})
    answer = mock.post("/v1/chat/completions", headers=AUTH, json=_chat("cnf-0005"))
    assert answer.status_code == status and answer.json()["error"]["type"] == error_type


def test_safety_rejection_429_and_credits_500_headers(mock: TestClient) -> None:
    _script(mock, {"nonce": "cnf-0006"}, {"answer": "error", "status": 400, "reason": "depicts violence"})
    error = mock.post("/v1/chat/completions", headers=AUTH, json=_chat("cnf-0006")).json()["error"]
    assert "depicts violence" in error["message"] and error["code"] == "content_policy_violation"
    _script(mock, {"nonce": "cnf-0007"}, {"answer": "error", "status": 429, "retry_after": 7})
    limited = mock.post("/v1/chat/completions", headers=AUTH, json=_chat("cnf-0007"))
    assert limited.headers["retry-after"] == "7" and limited.headers["x-ratelimit-remaining-requests"] == "0"
    _script(mock, {"nonce": "cnf-0008"}, {"answer": "error", "status": 500})
    gpu = mock.post("/api/v1/multimodal/tts", headers=AUTH, json={"text": "cnf-0008"})
    assert gpu.status_code == 500 and gpu.headers["retry-after"] == "30"  # 004 "retry after 30s"


def test_messages_errors_in_their_envelope_and_529(mock: TestClient) -> None:
    _script(mock, {"operation_id": "createMessage"}, {"answer": "error", "status": 529})
    answer = mock.post("/v1/messages", headers=MESSAGES_AUTH, json={
        "model": "anthropic/claude-sonnet-4.6", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]})
    assert answer.status_code == 529
    assert answer.json()["type"] == "error" and answer.json()["error"]["type"] == "overloaded_error"


def test_malformed_and_delay(mock: TestClient) -> None:
    _script(mock, {"nonce": "cnf-0009"}, {"answer": "malformed"})
    malformed = mock.post("/v1/chat/completions", headers=AUTH, json=_chat("cnf-0009"))
    assert malformed.status_code == 200 and malformed.headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError):
        malformed.json()
    _script(mock, {"nonce": "cnf-0010"}, {"answer": "delay", "ms": 300})
    began = time.monotonic()
    assert mock.post("/v1/chat/completions", headers=AUTH, json=_chat("cnf-0010")).status_code == 200
    assert time.monotonic() - began >= 0.3


@pytest.mark.parametrize(("body", "param"), [
    ({"match": {"operation_id": "nope"}, "steps": [{"answer": "pass"}]}, "match.operation_id"),
    ({"steps": [{"answer": "error", "status": 529}]}, "steps[0].status"),
    ({"steps": [{"answer": "error", "status": 418}]}, "steps[0].status"),
    ({"steps": [{"answer": "pass", "times": -1}]}, "steps[0].times"),
    ({"steps": [{"answer": "explode"}]}, "steps[0].answer"),
    ({"steps": [{"answer": "cut_stream", "after_events": -2}]}, "steps[0].after_events"),
    ({"steps": [{"answer": "pace"}]}, "steps[0].gap_ms"),
    ({"steps": [{"answer": "error", "status": 503, "reason": "x"}]}, "steps[0].reason"),
    ({"steps": []}, "steps"),
    ({"match": {"colour": 1}, "steps": [{"answer": "pass"}]}, "match"),
    ({"steps": [{"answer": "pass", "colour": 1}]}, "steps[0].colour"),
])
def test_bad_script_is_400_naming_the_field(mock: TestClient, body: dict[str, Any], param: str) -> None:
    answer = mock.post("/_mock/scripts", headers=CONTROL, json=body)
    assert answer.status_code == 400 and answer.json()["error"]["param"] == param, answer.text


def _stream_arrivals(client: httpx.Client, text: str) -> tuple[list[float], list[str]]:
    began, arrivals, lines = time.monotonic(), [], []
    with client.stream("POST", "/v1/chat/completions", headers=AUTH,
                       json=_chat(text, stream=True, max_tokens=5)) as answer:
        for line in answer.iter_lines():
            if line:
                arrivals.append(time.monotonic() - began)
                lines.append(line)
    return arrivals, lines


def test_paced_stream_and_its_event_times(served: httpx.Client) -> None:
    _script(served, {"nonce": "cnf-0011"}, {"answer": "pace", "gap_ms": 100})
    arrivals, lines = _stream_arrivals(served, "cnf-0011")
    assert lines[-1] == "data: [DONE]" and arrivals[-1] - arrivals[0] >= 0.1 * (len(arrivals) - 1) * 0.9
    [entry] = _journal(served, nonce="cnf-0011")
    times = [event["t_ms"] for event in entry["response"]["events"]]
    assert entry["response"]["complete"] and len(times) == len(lines)
    assert all(later - earlier >= 90 for earlier, later in itertools.pairwise(times))


def test_cut_stream_after_k_events(served: httpx.Client) -> None:
    _script(served, {"nonce": "cnf-0012"}, {"answer": "cut_stream", "after_events": 2})
    _, lines = _stream_arrivals(served, "cnf-0012")
    assert len(lines) == 2 and "data: [DONE]" not in lines


def test_reset_stream_breaks_the_connection_mid_body(served: httpx.Client) -> None:
    _script(served, {"nonce": "cnf-0013"}, {"answer": "reset_stream", "after_events": 2})
    with pytest.raises(httpx.RemoteProtocolError):
        _stream_arrivals(served, "cnf-0013")
    [entry] = _journal(served, nonce="cnf-0013")
    assert not entry["response"]["complete"] and len(entry["response"]["events"]) == 2
    assert served.post("/v1/chat/completions", headers=AUTH, json=_chat("after reset")).status_code == 200


def test_reset_clears_scripts_and_journal(mock: TestClient) -> None:
    _script(mock, {"nonce": "cnf-0014"}, {"answer": "error", "status": 503})
    mock.post("/v1/chat/completions", headers=AUTH, json=_chat("hello"))
    assert "scripts" in mock.post("/_mock/reset", headers=CONTROL).json()["reset"]
    assert _journal(mock) == [] and mock.get("/_mock/scripts", headers=CONTROL).json() == {"scripts": []}
    assert mock.post("/v1/chat/completions", headers=AUTH, json=_chat("cnf-0014")).status_code == 200
