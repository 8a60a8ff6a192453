"""Asynchronous video jobs (004 "For AI Agents": poll usage records to check generation status).

The video endpoints answer at once; ``GET /api/v1/multimodal/usage/{usage_id}`` shows the job moving
queued -> processing -> completed, and only then does ``video_url`` serve the H.264 MP4.
"""

from __future__ import annotations

import asyncio
import functools
import io
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

import av
import httpx
import pytest
from starlette.testclient import TestClient

from conformance.embedded import serve
from mock_server import DEV_API_KEY, MockConfig, create_app
from mock_server.config import LatencyConfig, RateLimitConfig
from mock_server.sim import Ledger
from mock_server.sim.jobs import INTERRUPTED, Job, JobRunner
from mock_server.sim.latency import Distribution, GpuPool, LatencyModel, Plan
from mock_server.sim.ledger import QUEUED
from spec import find_operation, response_schema, schema_validator

API = "credits_api"
AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}
ROOT = "/api/v1/multimodal"
I2V = {"image_url": "https://example.com/photo.jpg", "motion_prompt": "Camera slowly zooms in"}
#: Polls of a usage record before a test gives up (at :data:`POLL_S` apart).
MAX_POLLS = 400
POLL_S = 0.02


@functools.cache
def _validator(operation_id: str, status: int) -> Any:
    schema = response_schema(find_operation(API, operation_id), status)
    assert schema is not None
    return schema_validator(API, schema)


def _json(response: Any, operation_id: str, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    body = response.json()
    _validator(operation_id, status).validate(body)
    return body


def _fixed(seconds: float) -> Distribution:
    return Distribution("fixed", value=seconds)


def _poll(client: httpx.Client | TestClient, usage_id: str) -> tuple[list[str], dict[str, Any]]:
    """The distinct statuses the record shows, in order, until it ends (completed or failed)."""
    seen: list[str] = []
    for _ in range(MAX_POLLS):
        record = _json(client.get(f"{ROOT}/usage/{usage_id}", headers=AUTH), "getMultimodalUsage")
        if not seen or seen[-1] != record["status"]:
            seen.append(record["status"])
        if record["status"] in ("completed", "failed"):
            return seen, record
        time.sleep(POLL_S)
    raise AssertionError(f"the job never ended; statuses {seen}")


def _mp4(content: bytes) -> tuple[str, int, int, float]:
    """(codec, width, height, duration in s) of an MP4, decoding every frame."""
    with av.open(io.BytesIO(content), mode="r") as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert frames
        return stream.codec_context.name, frames[0].width, frames[0].height, (container.duration or 0) / av.time_base


def test_video_job_polled_to_completion_over_http() -> None:
    # queue 1 s, first 1 s, 0.4 s per second of video: 4 s for wan22's 5 s clip, at time scale 0.1
    video = LatencyModel(queue=_fixed(1), first=_fixed(1), per_unit=_fixed(0.4), unit="video_s")
    latency = LatencyConfig(enabled=True, time_scale=0.1, operations=MappingProxyType({"createImageToVideo": video}))
    app = create_app(MockConfig(latency=latency, rate_limits=RateLimitConfig(enabled=False)))
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as client:
        start = time.monotonic()
        answer = _json(client.post(f"{ROOT}/video/i2v", json=I2V, headers=AUTH), "createImageToVideo")
        answered_s = time.monotonic() - start
        early = client.get(answer["video_url"])
        statuses, record = _poll(client, answer["usage_id"])
        done_s = time.monotonic() - start
        download = client.get(record["video_url"])
    assert answered_s < 0.2 <= done_s  # the answer came at once; the job took its queue + first + generation
    assert done_s >= 0.4 and answer["status"] == "queued" and answer["duration_seconds"] == 5
    assert (answer["credits_used"], answer["credits_remaining"]) == (400, 10_000 - 400)
    assert early.status_code == 425 and early.json()["error"]["code"] == "not_ready"
    assert early.headers["content-type"].startswith("application/json") and early.headers["retry-after"] == "1"
    with pytest.raises(av.FFmpegError):
        _mp4(early.content)  # before completion the URL is no playable video
    assert statuses == ["queued", "processing", "completed"]
    assert record["video_url"] == answer["video_url"] and record["endpoint_type"] == "video_i2v"
    assert download.status_code == 200 and download.headers["content-type"] == "video/mp4"
    codec, width, height, seconds = _mp4(download.content)
    assert (codec, width, height) == ("h264", 1280, 720) and seconds == pytest.approx(5, abs=0.13)


def test_without_latency_a_job_takes_a_short_fixed_time() -> None:
    with TestClient(create_app(MockConfig())) as client:
        start = time.monotonic()
        answer = _json(client.post(f"{ROOT}/video/cogvideox", json={"prompt": "robot", "num_frames": 17},
                                   headers=AUTH), "createCogVideoX")
        statuses, record = _poll(client, answer["usage_id"])
        assert statuses[-1] == "completed" and time.monotonic() - start < 5
        codec, width, height, seconds = _mp4(client.get(record["video_url"]).content)
    assert (codec, width, height) == ("h264", 1280, 720) and seconds == pytest.approx(17 / 8, abs=0.13)


def test_too_many_pending_jobs_is_429_and_charges_nothing() -> None:
    app = create_app(MockConfig())
    app.state.services.jobs.max_pending = 0
    with TestClient(app) as client:
        refused = client.post(f"{ROOT}/video/t2v", json={"prompt": "waves"}, headers=AUTH)
        error = _json(refused, "createTextToVideo", 429)
        assert error["error"]["code"] == "too_many_jobs" and int(refused.headers["retry-after"]) > 0
        assert client.get("/api/v1/managed/usage", headers=AUTH).json()["credits_used"] == 0


async def _two_jobs(runner: JobRunner, ledger: Ledger, produce: Any) -> list[list[str]]:
    """Run two 0.1 s jobs and sample both records' statuses every 25 ms."""
    ids = [ledger.charge("k", "video_t2v", 10, status=QUEUED).usage_id for _ in range(2)]
    for usage_id in ids:
        runner.submit(Job(usage_id, "model", Plan(0.0, 0.1, 0.0), produce))
    samples: list[list[str]] = []
    while runner.pending:
        samples.append([record.status for usage_id in ids if (record := ledger.record("k", usage_id))])
        await asyncio.sleep(0.025)
    await runner.join()
    samples.append([record.status for usage_id in ids if (record := ledger.record("k", usage_id))])
    return samples


def test_jobs_beyond_the_bound_wait_queued() -> None:
    async def produce() -> Mapping[str, Any]:
        return {"video_url": "https://example.invalid/v.mp4"}

    with Ledger() as ledger:
        runner = JobRunner(ledger, GpuPool(4), max_concurrent=1)
        start = time.monotonic()
        samples = asyncio.run(_two_jobs(runner, ledger, produce))
        assert time.monotonic() - start >= 0.2  # one after the other
        assert ["processing", "queued"] in samples and ["completed", "processing"] in samples
        assert samples[-1] == ["completed", "completed"]
        assert ledger.usage("k").items[0].result["video_url"] == "https://example.invalid/v.mp4"


def test_a_failing_job_is_marked_failed_and_discards_its_output() -> None:
    discarded: list[str] = []

    async def produce() -> Mapping[str, Any]:
        raise RuntimeError("encoder exploded")

    async def run(runner: JobRunner, ledger: Ledger) -> str:
        usage_id = ledger.charge("k", "video_t2v", 10, status=QUEUED).usage_id
        runner.submit(Job(usage_id, "model", Plan(0.0, 0.0, 0.0), produce, lambda: discarded.append(usage_id)))
        await runner.join()
        return usage_id

    with Ledger() as ledger:
        usage_id = asyncio.run(run(JobRunner(ledger, GpuPool(1)), ledger))
        record = ledger.record("k", usage_id)
    assert record is not None and record.status == "failed" and "encoder exploded" in record.result["error"]
    assert discarded == [usage_id] and record.credits == 10  # charged: 004 documents no refund


def test_jobs_interrupted_by_a_stop_are_failed_and_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    slow = LatencyModel(first=_fixed(60), unit="video_s")
    latency = LatencyConfig(enabled=True, operations=MappingProxyType({"createTextToVideo": slow}))
    with TestClient(create_app(MockConfig(ledger_path=path, latency=latency))) as client:
        stopped = _json(client.post(f"{ROOT}/video/t2v", json={"prompt": "waves"}, headers=AUTH), "createTextToVideo")
        running = client.get(f"{ROOT}/usage/{stopped['usage_id']}", headers=AUTH).json()
        assert running["status"] in ("queued", "processing")
    with Ledger(path) as ledger:  # a process killed with a job queued leaves it unfinished in the file
        killed = ledger.charge(DEV_API_KEY, "video_cogvideox", 800, {"format": "mp4"}, status=QUEUED).usage_id
    restarted = create_app(MockConfig(ledger_path=path))
    assert restarted.state.services.jobs.interrupted == 1
    with TestClient(restarted) as client:
        for usage_id in (stopped["usage_id"], killed):
            record = _json(client.get(f"{ROOT}/usage/{usage_id}", headers=AUTH), "getMultimodalUsage")
            assert record["status"] == "failed" and record["error"] == INTERRUPTED and "video_url" not in record
        assert client.get("/api/v1/managed/usage", headers=AUTH).json()["credits_used"] == 1000 + 800
