"""Observability (issue 17): X-Request-Id on every answer, /metrics in Prometheus' format, /health, /ready."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from conformance.embedded import serve
from mock_server import MockConfig, create_app
from mock_server.config import LatencyConfig, RateLimitConfig
from mock_server.sim.latency import GpuPool, LatencyModel

BEARER = {"Authorization": "Bearer sk-test"}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


def scraped(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of a scrape, parsed by prometheus-client's own parser."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def samples(client: TestClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """:func:`scraped` of ``client``'s ``GET /metrics``, checked to be Prometheus' text format."""
    scrape = client.get("/metrics")
    assert scrape.status_code == 200 and scrape.headers["content-type"].startswith("text/plain; version=0.0.4")
    return scraped(scrape.text)


@pytest.fixture
def observed() -> Iterator[TestClient]:
    with TestClient(create_app(MockConfig(rate_limits=RateLimitConfig(rpm=2)))) as client:
        yield client


def test_every_answer_carries_a_request_id(observed: TestClient) -> None:
    answers = [observed.post("/v1/chat/completions", headers=BEARER, json=CHAT),
               observed.post("/v1/chat/completions", json=CHAT),                         # 401
               observed.post("/v1/chat/completions", headers=BEARER, json={"model": "x"}),  # 400
               observed.get("/no/such/path"), observed.delete("/v1/models"),           # 404, 405
               observed.post("/v1/messages/nope", headers=BEARER),                     # Messages envelope
               observed.get("/health"), observed.get("/metrics")]
    ids = [answer.headers.get("x-request-id") for answer in answers]
    assert all(found and found.startswith("req_") and len(found) == 28 for found in ids), ids
    assert len(set(ids)) == len(ids)
    with observed.stream("POST", "/v1/chat/completions", headers={**BEARER, "X-Request-Id": "trace-42/a"},
                         json={**CHAT, "stream": True}) as stream:
        assert stream.headers["x-request-id"] == "trace-42/a"
        assert stream.read().endswith(b"data: [DONE]\n\n")
    for unusable in ("has space", "x" * 129):
        echoed = observed.get("/health", headers={"X-Request-Id": unusable}).headers["x-request-id"]
        assert echoed.startswith("req_")


def test_metrics_count_requests_rejections_credits_and_streams(observed: TestClient) -> None:
    statuses = [observed.post("/v1/chat/completions", headers=BEARER, json=CHAT).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    with observed.stream("POST", "/v1/responses", headers=BEARER,
                         json={"model": "openai/gpt-5-mini", "input": "Hi", "stream": True}) as stream:
        stream.read()
    assert observed.post("/api/v1/multimodal/tts", headers=BEARER, json={"text": "Hi"}).status_code == 200
    found = samples(observed)
    chat = (("operation", "createChatCompletion"),)
    assert found[("mock_requests_total", (*chat, ("status", "200")))] == 2
    assert found[("mock_requests_total", (*chat, ("status", "429")))] == 1
    assert found[("mock_request_duration_seconds_count", chat)] == 3
    assert found[("mock_rate_limit_rejections_total", (("dimension", "requests"), *chat))] == 1
    assert found[("mock_rate_limit_rejections_total", (("dimension", "tokens"), *chat))] == 0
    assert found[("mock_credits_charged_total", (("operation", "createMultimodalTts"),))] == 14
    assert found[("mock_active_streams", (("operation", "createResponse"),))] == 0  # the stream ended
    assert found[("mock_requests_total", (("operation", "createResponse"), ("status", "200")))] == 1


def test_metrics_count_requests_that_match_no_operation(observed: TestClient) -> None:
    observed.post("/v1/chat/completion", headers=BEARER, json=CHAT)
    observed.get("/v1/nowhere")
    observed.get("/v1/chat/completions", headers=BEARER)
    counted = samples(observed)
    assert counted[("mock_requests_total", (("operation", "(unmatched)"), ("status", "404")))] == 2
    assert counted[("mock_requests_total", (("operation", "(unmatched)"), ("status", "405")))] == 1


def test_active_streams_while_a_stream_is_held() -> None:
    config = MockConfig(latency=LatencyConfig(enabled=True, time_scale=1.0, operations={
        "createChatCompletion": LatencyModel.parse({"first": 0.0, "per_unit": 0.05, "unit": "tokens"})}))
    with serve(create_app(config)) as url, httpx.Client(base_url=url, timeout=10) as client, client.stream(
            "POST", "/v1/chat/completions", headers=BEARER, json={**CHAT, "stream": True}) as stream:
        chunks = stream.iter_bytes()  # kept: a dropped iterator would close the stream
        next(chunks)
        held = scraped(client.get("/metrics").text)
        assert held[("mock_active_streams", (("operation", "createChatCompletion"),))] == 1
        assert held[("mock_gpu_busy_slots", (("model", "gpt-4o-mini"),))] == 1
        assert held[("mock_gpu_queue_depth", (("model", "gpt-4o-mini"),))] == 0
        assert held[("mock_simulated_latency_seconds_count", (("operation", "createChatCompletion"),))] == 1


def test_gpu_queue_depth_counts_waiting_generations() -> None:
    async def scenario() -> dict[str, tuple[int, int]]:
        pool = GpuPool(1)
        release = asyncio.Event()

        async def generate() -> None:
            async with pool.slot("m"):
                await release.wait()

        tasks = [asyncio.create_task(generate()) for _ in range(3)]
        await asyncio.sleep(0.01)
        usage = pool.usage()
        release.set()
        await asyncio.gather(*tasks)
        return usage

    assert asyncio.run(scenario()) == {"m": (1, 2)}


def test_health_and_ready(observed: TestClient) -> None:
    assert observed.get("/health").json() == {"status": "ok"}
    assert observed.get("/ready").json() == {"status": "ready"}
    observed.app.state.services.ledger.close()  # type: ignore[attr-defined]
    not_ready = observed.get("/ready")
    assert not_ready.status_code == 503 and "credits ledger" in not_ready.json()["reason"]


def test_observability_off_is_todays_mock() -> None:
    with TestClient(create_app(MockConfig(observability=False))) as client:
        answer = client.post("/v1/chat/completions", headers=BEARER, json=CHAT)
        assert answer.status_code == 200 and "x-request-id" not in answer.headers
        assert client.get("/metrics").status_code == 404


def test_a_served_mock_is_scraped_over_http(mock_url: str) -> None:
    httpx.get(f"{mock_url}/v1/models", headers=BEARER)
    scrape = httpx.get(f"{mock_url}/metrics")
    assert 'mock_requests_total{operation="listModels",status="200"}' in scrape.text


def test_a_bug_500_carries_the_request_id_too() -> None:
    app = create_app(MockConfig())

    async def broken(call: object) -> None:
        raise RuntimeError("a bug")

    app.router.static[("/v1/models", "GET")].endpoint.handler = broken  # type: ignore[attr-defined]
    with TestClient(app, raise_server_exceptions=False) as client:
        answer = client.get("/v1/models", headers={**BEARER, "X-Request-Id": "bug-1"})
    assert answer.status_code == 500 and answer.headers["x-request-id"] == "bug-1"
    assert answer.json()["error"]["type"] == "internal_server_error"
