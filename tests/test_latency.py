"""Simulated GPU latency (mock_server/stages/latency.py, sim/latency.py), the shipped defaults and the CLI.

Delays are configured large and shrunk by ``latency.time_scale`` so the tests stay fast; elapsed times
are compared with what the configured model gives for the work the answer reports.
"""

from __future__ import annotations

import itertools
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import MappingProxyType
from typing import Any, cast

import httpx
import pytest
from starlette.responses import JSONResponse
from starlette.testclient import TestClient

from conformance.embedded import serve
from mock_server import DEV_API_KEY, MockConfig, create_app
from mock_server.cli import build_parser, config_from_args
from mock_server.config import DEFAULT_CONFIG_FILE, LatencyConfig, RateLimitConfig, load_config
from mock_server.media_av import speech_duration_ms
from mock_server.sim.latency import Distribution, LatencyModel, LatencySimulator
from mock_server.stages.latency import IMAGE_TOKEN_WEIGHT, output_tokens
from mock_server.stages.latency import build as build_latency
from spec import api_names, find_operation, operations

AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}
HELLO = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}
SPOKEN = "Welcome to AINative Studio."
#: Every delay below is configured in "model seconds" and runs at this fraction of them.
SCALE = 0.05
#: What an answer may take beyond its simulated latency (the mock's own work, a busy machine), in s.
SLACK_S = 0.2


def fixed(seconds: float) -> Distribution:
    return Distribution("fixed", value=seconds)


def model(first: float = 0.0, per_unit: float = 0.0, unit: str = "tokens", queue: float = 0.0) -> LatencyModel:
    return LatencyModel(queue=fixed(queue), first=fixed(first), per_unit=fixed(per_unit), unit=unit)


def config(models: Mapping[str, LatencyModel], *, gpu_slots: int = 4, enabled: bool = True) -> MockConfig:
    latency = LatencyConfig(enabled=enabled, time_scale=SCALE, gpu_slots=gpu_slots,
                            operations=MappingProxyType(dict(models)))
    return MockConfig(latency=latency, rate_limits=RateLimitConfig(enabled=False))


TIMED_CALLS = {
    "chat": ("/v1/chat/completions", HELLO),
    "image": ("/api/v1/multimodal/image", {"prompt": "x", "width": 512, "height": 768}),
    "tts": ("/api/v1/multimodal/tts", {"text": SPOKEN}),
    "speech": ("/v1/audio/speech", {"model": "tts-1", "voice": "alloy", "input": SPOKEN}),
}


@pytest.fixture(scope="module")
def timed_url() -> Iterator[str]:
    """A served mock whose four measured operations take first 2 s + work x per_unit (times SCALE); the
    media encoders' caches (process-wide) are warmed first, without latency, so only the model is timed."""
    with TestClient(create_app(MockConfig(rate_limits=RateLimitConfig(enabled=False)))) as warm:
        for path, body in TIMED_CALLS.values():
            assert warm.post(path, json=body, headers=AUTH).status_code == 200
    models = {"createChatCompletion": model(2, 0.2, queue=1), "createMultimodalImage": model(2, 16, "megapixels"),
              "createMultimodalTts": model(2, 2.5, "audio_s"), "createSpeech": model(2, 2.5, "audio_s")}
    with serve(create_app(config(models))) as url:
        yield url


def _timed(client: httpx.Client, case: str) -> tuple[httpx.Response, float]:
    """The answer to the call of ``case`` and its time in s."""
    path, body = TIMED_CALLS[case]
    start = time.monotonic()
    response = client.post(path, json=body, headers=AUTH)
    return response, time.monotonic() - start


@pytest.mark.parametrize("case", list(TIMED_CALLS))
def test_answer_waits_queue_first_and_work_times_per_unit(timed_url: str, case: str) -> None:
    with httpx.Client(base_url=timed_url, timeout=30) as client:
        answer, elapsed = _timed(client, case)
    if case == "chat":
        work, per_unit, queue = answer.json()["usage"]["completion_tokens"], 0.2, 1.0
    elif case == "image":
        work, per_unit, queue = answer.json()["width"] * answer.json()["height"] / 1e6, 16.0, 0.0
    elif case == "tts":
        work, per_unit, queue = answer.json()["duration_ms"] / 1000, 2.5, 0.0
    else:
        work, per_unit, queue = speech_duration_ms(SPOKEN) / 1000, 2.5, 0.0
    assert answer.status_code == 200, answer.text
    expected = (queue + 2 + per_unit * work) * SCALE
    assert work > 0 and per_unit * work * SCALE > 0.1  # the work's share is large enough to be measured
    assert expected - 0.01 <= elapsed <= expected + SLACK_S, (elapsed, expected)


def test_a_chat_completions_choices_are_generated_side_by_side() -> None:
    """``n`` choices take the time of one (a provider batches them): the work is tokens per choice."""
    one = JSONResponse({"choices": [{"index": 0}], "usage": {"completion_tokens": 40}})
    many = JSONResponse({"choices": [{"index": i} for i in range(128)], "usage": {"completion_tokens": 5120}})
    message = JSONResponse({"content": [], "usage": {"output_tokens": 40}})
    assert output_tokens(cast(Any, None), one) == output_tokens(cast(Any, None), many) == 40.0
    assert output_tokens(cast(Any, None), message) == 40.0


def test_image_output_tokens_weigh_less_than_text_tokens() -> None:
    """A native image answer's 1290 image tokens count at IMAGE_TOKEN_WEIGHT: seconds, not text decoding's pace."""
    usage = {"completion_tokens": 1290 + 10, "completion_tokens_details": {"image_tokens": 1290}}
    answer = JSONResponse({"choices": [{"index": 0}], "usage": usage})
    assert output_tokens(cast(Any, None), answer) == 10 + 1290 * IMAGE_TOKEN_WEIGHT
    assert IMAGE_TOKEN_WEIGHT < 1


def test_lognormal_draws_match_their_configured_percentiles() -> None:
    lognormal = LatencyModel(queue=Distribution("uniform", low=0.1, high=0.3),
                             first=Distribution("lognormal", p50=0.4, p95=0.9),
                             per_unit=Distribution("lognormal", p50=0.02, p95=0.035))
    simulator = LatencySimulator({"op": lognormal}, LatencyModel(), time_scale=0.5, seed=7)
    plans = [simulator.plan("op", 100) for _ in range(20_000)]
    firsts = sorted(plan.first_s / 0.5 for plan in plans)
    per_token = sorted(plan.generation_s / 0.5 / 100 for plan in plans)
    for draws, p50, p95 in ((firsts, 0.4, 0.9), (per_token, 0.02, 0.035)):
        assert draws[len(draws) // 2] == pytest.approx(p50, rel=0.1)
        assert draws[int(len(draws) * 0.95)] == pytest.approx(p95, rel=0.1)
    assert all(0.05 <= plan.queue_s <= 0.15 for plan in plans)
    again = LatencySimulator({"op": lognormal}, LatencyModel(), time_scale=0.5, seed=7)
    assert [again.plan("op", 100) for _ in range(50)] == plans[:50]  # seeded: repeatable
    assert simulator.plan("unknown-op", 100).total_s == 0  # the default model: no delay


def _concurrent_wall_s(url: str, bodies: list[dict[str, object]]) -> float:
    with httpx.Client(base_url=url, timeout=30) as client, ThreadPoolExecutor(len(bodies)) as pool:
        start = time.monotonic()
        statuses = list(pool.map(lambda body: client.post("/v1/chat/completions", json=body,
                                                          headers=AUTH).status_code, bodies))
        wall = time.monotonic() - start
    assert statuses == [200] * len(bodies)
    return wall


@pytest.mark.parametrize("gpu_slots", [1, 2])
def test_gpu_slots_make_concurrent_requests_queue(gpu_slots: int) -> None:
    one_s = 8 * SCALE  # first = 8 s of model time; no per-token time
    with serve(create_app(config({"createChatCompletion": model(8)}, gpu_slots=gpu_slots))) as url:
        assert httpx.get(f"{url}/v1/models", headers=AUTH).status_code == 200  # warm up (no latency configured)
        single = _concurrent_wall_s(url, [HELLO])
        same_model = _concurrent_wall_s(url, [HELLO, HELLO])
        other_model = _concurrent_wall_s(url, [HELLO, {**HELLO, "model": "openai/gpt-5-mini"}])
    assert one_s <= single <= one_s + SLACK_S
    assert other_model < 2 * one_s  # each model has its own pool
    if gpu_slots == 1:
        assert 2 * one_s <= same_model <= 2 * one_s + SLACK_S  # the second waited for the GPU
    else:
        assert same_model < 2 * one_s


def _event_times(client: httpx.Client, body: dict[str, object]) -> tuple[list[float], list[str]]:
    start = time.monotonic()
    times, events = [], []
    with client.stream("POST", "/v1/chat/completions", json=body, headers=AUTH) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                times.append(time.monotonic() - start)
                events.append(line[6:])
    return times, events


def test_stream_waits_first_then_paces_each_chunk() -> None:
    first_s, gap_s = 4 * SCALE, 0.8 * SCALE  # 0.2 s, then 40 ms between chunks
    body = {**HELLO, "stream": True, "max_tokens": 8}
    with serve(create_app(config({"createChatCompletion": model(4, 0.8)}))) as url, \
            httpx.Client(base_url=url, timeout=30) as client:
        times, events = _event_times(client, body)
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert events[-1] == "[DONE]" and len(events) >= 8
    assert first_s <= times[0] <= first_s + SLACK_S
    assert all(gap >= gap_s - 0.005 for gap in gaps), gaps
    assert statistics.median(gaps) == pytest.approx(gap_s, abs=0.015)
    assert times[-1] == pytest.approx(first_s + gap_s * len(gaps), abs=SLACK_S)


def test_a_disconnected_stream_frees_its_gpu_slot() -> None:
    models = {"createChatCompletion": model(0, 4), "createResponse": model(1)}  # 0.2 s per chunk; 0.05 s
    with serve(create_app(config(models, gpu_slots=1))) as url, httpx.Client(base_url=url, timeout=30) as client:
        with client.stream("POST", "/v1/chat/completions", json={**HELLO, "stream": True}, headers=AUTH) as stream:
            next(stream.iter_lines())  # the first event; the rest would take about 5 s
        time.sleep(0.05)
        start = time.monotonic()
        answer = client.post("/v1/responses", json={"model": "gpt-4o-mini", "input": "Hello"}, headers=AUTH)
        elapsed = time.monotonic() - start
    assert answer.status_code == 200, answer.text
    assert elapsed < 0.5  # it got the GPU of gpt-4o-mini at once: the stream let go of it


def test_latency_off_costs_nothing() -> None:
    slow = {"createChatCompletion": model(first=100, per_unit=10)}
    app = create_app(config(slow, enabled=False))
    services = app.state.services
    assert build_latency(find_operation("openai_gateway", "createChatCompletion"), services) is None
    with TestClient(app) as client:
        start = time.monotonic()
        assert client.post("/v1/chat/completions", json=HELLO, headers=AUTH).status_code == 200
        assert time.monotonic() - start < 0.5
    assert build_latency(find_operation("openai_gateway", "createChatCompletion"),
                         create_app(config(slow)).state.services) is not None


def test_shipped_defaults_load_with_plausible_models() -> None:
    loaded = load_config(DEFAULT_CONFIG_FILE)
    # the development key, and a key out of credit on the gateway's spend limit (the 402 billing_error example)
    assert loaded.api_keys == {"sk-test", "sk-test-over-limit"} and loaded.rate_limits.enabled
    assert not loaded.control.enabled
    assert loaded.latency.enabled and loaded.latency.time_scale == 1.0 and not loaded.faults.operations
    known = {op.operation_id for api in api_names() for op in operations(api)}
    assert set(loaded.latency.operations) <= known  # no misspelt operationId
    simulator = LatencySimulator(loaded.latency.operations, loaded.latency.default, 1.0, seed=0)

    def median_s(operation_id: str, work: float) -> float:
        return statistics.median(simulator.plan(operation_id, work).total_s for _ in range(2001))

    assert 0.3 <= statistics.median(simulator.plan("createChatCompletion", 0).first_s for _ in range(2001)) <= 0.6
    assert median_s("createChatCompletion", 100) == pytest.approx(0.4 + 100 * 0.02, rel=0.2)  # ~20 ms/token
    assert 2 <= median_s("createImage", 1.048576) <= 8  # a 1024x1024 image takes a few s
    assert 10 <= median_s("createImageToVideo", 5) <= 90  # a 5 s clip takes tens of seconds
    assert median_s("createSpeech", 10) < 10 and median_s("createTranscription", 60) < 60  # faster than real time


def test_serve_options_override_the_file() -> None:
    parsed = build_parser().parse_args(["serve", "--no-latency", "--time-scale", "0.5", "--seed", "7"])
    overridden = config_from_args(parsed)
    assert parsed.config == DEFAULT_CONFIG_FILE
    assert (overridden.seed, overridden.latency.enabled, overridden.latency.time_scale) == (7, False, 0.5)
    assert config_from_args(build_parser().parse_args(["serve"])).latency.enabled


def test_serve_with_a_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("latency:\n  enabled: true\n  gpu_slots: 0\n", encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "mock_server", "serve", "--config", str(bad), "--port", "0"],
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert "latency.gpu_slots" in done.stderr and "Traceback" not in done.stderr
