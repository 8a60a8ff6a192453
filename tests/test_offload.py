"""The worker process that judges JSON bodies of many values (``mock_server/offload.py``, issue 16)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from starlette.testclient import TestClient

from mock_server import DEV_API_KEY, create_app, offload
from mock_server.stages.body import Refusal, judge_json

AUTH = {"Authorization": f"Bearer {DEV_API_KEY}", "Content-Type": "application/json"}
MANY = offload.MAX_INLINE_VALUES + 10


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client
    offload.shutdown()


def test_a_call_runs_in_another_process_and_its_exception_comes_back() -> None:
    pid = _run(os.getpid)
    assert pid != os.getpid()
    with pytest.raises(ValueError, match="invalid literal"):
        _run(int, "not a number")
    assert _run(os.getpid) == pid  # the same worker still serves after an exception


def test_the_worker_is_replaced_after_its_share_of_calls() -> None:
    offload.shutdown()
    pids = [_run(os.getpid) for _ in range(offload.TASKS_PER_WORKER + 1)]
    assert len(set(pids[:offload.TASKS_PER_WORKER])) == 1
    assert pids[-1] != pids[0]


@pytest.mark.parametrize(("raw", "complex_"), [
    (b"[" + b",".join([b"1"] * MANY) + b"]", True),
    (b"[" + b",".join([b"1"] * (offload.MAX_INLINE_VALUES - 1)) + b"]", False),
    (b'["' + b"a" * (10 * offload.COMPLEX_FROM_BYTES) + b'"]', False),  # long, but one value
    (b"[" + b",".join([b"1"] * 20_000) + b"]", False),  # many commas, but short
])
def test_only_long_bodies_of_many_values_are_complex(raw: bytes, complex_: bool) -> None:
    assert offload.is_complex(raw) is complex_


CASES = [
    ("/v1/chat/completions", "openai_gateway", "createChatCompletion",
     {"model": "gpt-4o-mini", "messages": [{}] * MANY}, "messages[0]"),
    ("/v1/responses", "multi_protocol", "createResponse", {"model": "gpt-4o-mini", "input": [{}] * MANY}, "input[0]"),
    ("/v1/chat/completions", "openai_gateway", "createChatCompletion",
     {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * MANY + [7]}]},
     f"messages[0].content[{MANY}]"),
]


@pytest.mark.parametrize(("path", "api", "operation_id", "body", "param"), CASES)
def test_the_worker_answers_what_the_pipeline_would(
        client: TestClient, path: str, api: str, operation_id: str, body: Any, param: str) -> None:
    raw = orjson.dumps(body)
    assert offload.is_complex(raw)
    inline = judge_json(api, operation_id, raw)  # the same judgement in this process
    assert isinstance(inline, Refusal) and inline.param is not None and inline.param.startswith(param)
    response = client.post(path, content=raw, headers=AUTH)
    assert response.status_code == inline.status == 400
    assert (response.json()["error"]["param"], response.json()["error"]["message"]) == (inline.param, inline.message)


def test_unparsable_and_unsafe_complex_bodies_are_refused_by_the_worker(client: TestClient) -> None:
    broken = b'{"model": "gpt-4o-mini", "messages": [' + b"{}," * MANY + b"]}"  # a trailing comma
    response = client.post("/v1/chat/completions", content=broken, headers=AUTH)
    assert response.status_code == 400 and "could not parse" in response.json()["error"]["message"]
    nan = b'{"model": "gpt-4o-mini", "messages": [' + b'{"role":"user","content":"a"},' * MANY + b'{"x": NaN}]}'
    response = client.post("/v1/chat/completions", content=nan, headers=AUTH)
    assert response.status_code == 400 and response.json()["error"]["param"] == f"messages[{MANY}].x"


def test_a_valid_complex_body_is_answered(client: TestClient) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}] * MANY}]}
    response = client.post("/v1/chat/completions", content=orjson.dumps(body), headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json()["object"] == "chat.completion"


def test_without_a_worker_the_body_is_judged_inline(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    async def unavailable(*args: Any) -> Any:
        raise offload.WorkerUnavailable("no worker here")

    monkeypatch.setattr(offload, "run", unavailable)
    body = {"model": "gpt-4o-mini", "messages": [{}] * MANY}
    response = client.post("/v1/chat/completions", content=orjson.dumps(body), headers=AUTH)
    assert response.status_code == 400 and response.json()["error"]["param"].startswith("messages[0]")


def test_a_dead_worker_is_unavailable_then_replaced() -> None:
    first = _run(os.getpid)
    with pytest.raises(offload.WorkerUnavailable):
        _run(os._exit, 3)
    assert _run(os.getpid) not in (first, os.getpid())


def _run(function: Any, *args: Any) -> Any:
    import anyio

    async def call() -> Any:
        return await offload.run(function, *args)

    return anyio.run(call)
