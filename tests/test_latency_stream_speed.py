"""A stream has one speed: its inter-chunk gaps are the request's one ``per_unit`` draw (sim/latency.py),
as a whole answer's generation time is, not a fresh draw per chunk that would average a long stream out.

The stage's sleeps are recorded instead of slept, so the test takes no time and measures none.
"""

from __future__ import annotations

import asyncio
from types import MappingProxyType, SimpleNamespace

import pytest
from starlette.testclient import TestClient

from mock_server import DEV_API_KEY, MockConfig, create_app
from mock_server.config import LatencyConfig, RateLimitConfig
from mock_server.sim.latency import Distribution, LatencyModel, LatencySimulator
from mock_server.stages import latency as latency_stage

AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}
STREAM = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}], "stream": True}
#: A wide per-token distribution: two draws are never equal.
PER_TOKEN = Distribution("lognormal", p50=0.02, p95=0.2)
QUEUE_S, FIRST_S = 0.5, 0.25


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The delays the latency stage asks for, in order; each returns at once."""
    recorded: list[float] = []

    async def sleep(delay: float) -> None:
        recorded.append(delay)
        await asyncio.sleep(0)

    monkeypatch.setattr(latency_stage, "asyncio", SimpleNamespace(sleep=sleep))
    return recorded


def test_a_streams_gaps_are_one_per_unit_draw(sleeps: list[float]) -> None:
    chat = LatencyModel(queue=Distribution(value=QUEUE_S), first=Distribution(value=FIRST_S), per_unit=PER_TOKEN)
    latency = LatencyConfig(enabled=True, time_scale=1.0, operations=MappingProxyType({"createChatCompletion": chat}))
    app = create_app(MockConfig(latency=latency, rate_limits=RateLimitConfig(enabled=False)))
    gaps: list[list[float]] = []
    with TestClient(app) as client:
        for _ in range(2):
            sleeps.clear()
            with client.stream("POST", "/v1/chat/completions", json=STREAM, headers=AUTH) as response:
                assert response.status_code == 200
                events = [line for line in response.iter_lines() if line.startswith("data: ")]
            assert sleeps[:2] == [QUEUE_S, FIRST_S]
            gaps.append(sleeps[2:])
            assert len(gaps[-1]) == len(events) - 1 >= 10
    for stream in gaps:
        assert len(set(stream)) == 1, stream  # one speed per stream
    assert gaps[0][0] != gaps[1][0]  # each stream draws its own


def test_a_plans_generation_is_its_unit_draw_times_the_work() -> None:
    simulator = LatencySimulator({"op": LatencyModel(per_unit=PER_TOKEN)}, LatencyModel(), time_scale=0.5, seed=3)
    for work in (0, 1, 24, 1000):
        plan = simulator.plan("op", work)
        assert plan.unit_s > 0
        assert plan.generation_s == pytest.approx(plan.unit_s * work)
