"""Documented defaults seen from outside (004 parameter tables): each request leaves a field out and the
answer, decoded, must be what the default makes.

T2V (1000 credits, premium, 1/min) and CogVideoX (800 credits, 1/min) are skipped when the target file
excludes them. When the run also provokes their rate limits on the probes' key, each job is the first
request of that burst, started with the I2V jobs (``jobs.start_video_jobs``, before the run's first session);
otherwise T2V uses the main key and CogVideoX the standard key when there is one (a rate-limit window
the golden fixture did not use). Their jobs are polled at the same time. The usage list needs
more records than the default ``limit``: it is judged last in the phase, after the run made its own,
and tops up with TTS and image calls (14 and 50 credits) when there are not enough, waiting out
their rate limits (15 a minute) for at most 5 minutes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from conformance.checks import REGISTRY
from conformance.checks.defaults import documented_default
from conformance.http import Exchange, TargetClient, retry_after_s
from conformance.suite.jobs import (
    VIDEO_DEFAULTS,
    Carried,
    VideoJob,
    poll_video,
    polled,
    selected,
    start_video_jobs,
)
from conformance.target import Target
from spec import find_operation

API = "credits_api"
T2V = find_operation(API, "createTextToVideo")
COGVIDEOX = find_operation(API, "createCogVideoX")
TTS = find_operation(API, "createMultimodalTts")
USAGE = find_operation(API, "listMultimodalUsage")
#: Longest wait for a video endpoint's per-minute window (004: T2V and CogVideoX allow 1 a minute), in s.
VIDEO_WINDOW_WAIT_S = 65.0
#: Most records the usage list may answer (the spec's ``limit`` maximum, 100).
WIDEST_LIMIT = 100
#: The cheapest charged calls (004: TTS 14 credits, 10/min; an image 50 credits, 5/min), one usage record each.
RECORD_MAKERS = ((TTS, {"text": "One usage record."}),
                 (find_operation(API, "createMultimodalImage"), {"prompt": "A grey square", "width": 512,
                                                                 "height": 512}))
#: Longest the usage records are made for, in s (the rate limits allow 15 a minute).
TOP_UP_DEADLINE_S = 300.0

pytestmark = pytest.mark.api(API)


def _start_and_poll(operation_id: str, client: TargetClient, target: Target, profile: str) -> VideoJob:
    """Start the video of :data:`VIDEO_DEFAULTS` ``operation_id`` without the field, waiting out one 429 of the
    1/min window (a golden fixture may have used it): in the thorough profile for at most
    :data:`VIDEO_WINDOW_WAIT_S`, in the quick one (a CI gate) only within the target's ``max_retry_wait_s``,
    else skipped with that reason; then poll the video: (the start's answer, the polled records, the
    download or None)."""
    _, body, style = VIDEO_DEFAULTS[operation_id]
    auth = style if style == "bearer" or target.standard_api_key else "bearer"
    operation = find_operation(API, operation_id)
    started = client.request("POST", operation.path, json_body=body, auth=auth, honour_429=False)
    wait = retry_after_s(started.headers) if started.status == 429 else None
    if wait is not None and profile != "thorough" and wait > target.max_retry_wait_s:
        pytest.skip(f"{operation_id}'s 1/min window is in use (Retry-After {wait:g} s, more than max_retry_wait_s "
                    f"{target.max_retry_wait_s:g} s): waited for in the thorough profile only")
    if wait is not None and wait <= VIDEO_WINDOW_WAIT_S:
        time.sleep(wait)
        started = client.request("POST", operation.path, json_body=body, auth=auth)
    records, video = poll_video(client, started, auth)
    return started, records, video


@pytest.fixture(scope="module")
def video_defaults(request: pytest.FixtureRequest, client: TargetClient, target: Target, profile: str,
                   carried: Carried) -> Iterator[dict[str, Future[VideoJob]]]:
    """The video defaults' jobs (:data:`VIDEO_DEFAULTS` whose tests this session runs, but those the target file
    excludes), polled at the same time in threads: each job takes tens of seconds on a real GPU, and one
    after another their waits added up. Those a rate-limit burst carries were started with the I2V jobs
    (``jobs.start_video_jobs``: before the run's first session in a concurrent run); the others start here,
    when the first of their tests runs. Each test takes its own job's result (a skip or a target error is
    raised there)."""
    start_video_jobs(carried, request.session.items, client, target)
    starts = carried.video_defaults or {}
    with ThreadPoolExecutor(len(VIDEO_DEFAULTS), thread_name_prefix="video-default") as pool:
        yield {operation_id: pool.submit(polled, client, starts[operation_id], "limited") if operation_id in starts
               else pool.submit(_start_and_poll, operation_id, client, target, profile)
               for operation_id, (check, _, _) in VIDEO_DEFAULTS.items()
               if selected(request.session.items, check) and operation_id not in target.exclude_operations}


def _video_default(operation_id: str, video_defaults: dict[str, Future[VideoJob]]) -> None:
    """Judge the video default of ``operation_id`` by its check, from its job in ``video_defaults``."""
    started, records, video = video_defaults[operation_id].result()
    check = VIDEO_DEFAULTS[operation_id][0]
    REGISTRY[check](started, records, video or started, find_operation(API, operation_id))


def _widest(client: TargetClient) -> Exchange:
    return client.request("GET", USAGE.path, params={"skip": 0, "limit": WIDEST_LIMIT})


def _count(exchange: Exchange) -> int | None:
    body: Any = exchange.json()
    items = next((body[key] for key in ("items", "records", "data", "usage") if isinstance(body.get(key), list)),
                 None) if isinstance(body, dict) else None
    return len(items) if items is not None else None


def make_usage_records(client: TargetClient, target: Target, count: int) -> int:
    """Make ``count`` usage records with the cheapest charged calls (:data:`RECORD_MAKERS`, taken in turn so
    both rate-limit windows are used), waiting out each 429's Retry-After, for at most
    :data:`TOP_UP_DEADLINE_S` s; returns how many were made (fewer when the time ran out, a call failed, or
    every maker is excluded by the target file)."""
    makers = [(operation, body) for operation, body in RECORD_MAKERS
              if operation.operation_id not in target.exclude_operations]
    ready_at = [0.0] * len(makers)
    made, deadline = 0, time.monotonic() + TOP_UP_DEADLINE_S
    while made < count and makers and time.monotonic() < deadline:
        now = time.monotonic()
        index = min(range(len(makers)), key=lambda i: ready_at[i])
        if ready_at[index] > now:
            time.sleep(min(ready_at[index], deadline) - now)
            continue
        operation, body = makers[index]
        answer = client.request("POST", operation.path, json_body=body, honour_429=False)
        if answer.status == 429:
            ready_at[index] = time.monotonic() + max(retry_after_s(answer.headers) or 1.0, 0.1)
        elif answer.status == 200:
            made += 1
        else:
            return made
    return made


@pytest.mark.last_in_phase
@pytest.mark.api(API, operation="listMultimodalUsage")
@pytest.mark.check("usage_page_defaults")
def test_usage_defaults(client: TargetClient, target: Target, profile: str) -> None:
    """004 Usage History: more than ``limit``'s default (50) records, then a list without skip and limit.
    Thorough profile only: making 51 records within the documented 10/min (tts) and 5/min (image) takes
    minutes and spends about 700-1,000 credits, too long and dear for a CI gate."""
    if profile != "thorough":
        pytest.skip("thorough profile only: more than 50 usage records take minutes at 004's per-minute limits")
    limit = int(documented_default(USAGE, "query", "limit"))
    widest = _widest(client)
    have = _count(widest)
    if have is not None and have <= limit:
        made = make_usage_records(client, target, limit + 1 - have)
        if have + made <= limit:
            pytest.skip(f"{have + made} usage records, not more than the default limit {limit}: the calls that make "
                        f"records ({', '.join(op.operation_id for op, _ in RECORD_MAKERS)}) are excluded, failed or "
                        f"rate limited past {TOP_UP_DEADLINE_S:g} s")
        widest = _widest(client)
    REGISTRY["usage_page_defaults"](client.request("GET", USAGE.path), widest, USAGE)


@pytest.mark.last_in_phase  # after the usage records are made: the golden T2V's 1/min window has passed by then
@pytest.mark.api(API, operation="createTextToVideo")
@pytest.mark.check("t2v_duration_default")
def test_t2v_duration_default(video_defaults: dict[str, Any]) -> None:
    """004 T2V: ``duration`` left out (default 5 s); the premium key (T2V is premium only)."""
    _video_default("createTextToVideo", video_defaults)


@pytest.mark.last_in_phase
@pytest.mark.api(API, operation="createCogVideoX")
@pytest.mark.check("cogvideox_frames_default")
def test_cogvideox_frames_default(video_defaults: dict[str, Any]) -> None:
    """004 CogVideoX: ``num_frames`` (and guidance_scale, num_inference_steps) left out (default 49 frames)."""
    _video_default("createCogVideoX", video_defaults)
