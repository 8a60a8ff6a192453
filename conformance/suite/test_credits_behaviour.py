"""Behavioural checks of the credits API (004): accounting, usage records and rate limits.

The TTS rate-limit burst runs after the other TTS checks: it spends the window of the operation it
tests; the reconciliation runs last, on that spent window (its TTS calls then cost little). The
module is ``serial``: its credits sequences and burst share per-minute windows (1-10/min, 004) and
module fixtures, so a concurrent run keeps it in order, alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from conformance.checks import REGISTRY
from conformance.checks.credits import Measured
from conformance.checks.hosted import IssuedUrl
from conformance.failures import CheckFailure
from conformance.http import Exchange, TargetClient
from conformance.plugin import IssuedUrls
from conformance.suite.jobs import I2V, I2V_PROVIDERS, Carried, VideoJob, poll_usage_record, start_video_jobs
from conformance.target import Target
from spec import find_operation
from spec.extensions import rate_limit

API = "credits_api"
TTS = find_operation(API, "createMultimodalTts")
IMAGE = find_operation(API, "createMultimodalImage")
USAGE = find_operation(API, "listMultimodalUsage")
RECORD = find_operation(API, "getMultimodalUsage")
T2V = find_operation(API, "createTextToVideo")
MANAGED = find_operation(API, "getManagedUsage")

pytestmark = [pytest.mark.api(API), pytest.mark.serial]


def _tts(client: TargetClient) -> Exchange:
    return client.request("POST", TTS.path, json_body={"text": "Welcome to AINative Studio.", "voice": "Wise_Woman"})


@pytest.fixture(scope="module")
def tts_pair(client: TargetClient) -> tuple[Exchange, Exchange]:
    """Two TTS calls in a row, made once for the module."""
    return _tts(client), _tts(client)


@pytest.mark.api(API, operation="createMultimodalTts")
@pytest.mark.check("credits_fall_by_cost")
def test_tts_credits_fall(tts_pair: tuple[Exchange, Exchange]) -> None:
    REGISTRY["credits_fall_by_cost"](tts_pair[0], tts_pair[1], TTS)


@pytest.fixture(scope="module")
def image_pair(client: TargetClient) -> tuple[Exchange, Exchange]:
    """Two image generations in a row, made once for the module (5/min: the answers serve every check)."""
    body = {"prompt": "A futuristic cityscape at sunset with neon lights", "width": 512, "height": 512}
    return client.request("POST", IMAGE.path, json_body=body), client.request("POST", IMAGE.path, json_body=body)


@pytest.mark.api(API, operation="createMultimodalImage")
@pytest.mark.check("credits_fall_by_cost")
def test_image_credits_fall(image_pair: tuple[Exchange, Exchange]) -> None:
    REGISTRY["credits_fall_by_cost"](image_pair[0], image_pair[1], IMAGE)


@pytest.mark.check("answer_base64_unwrapped")
@pytest.mark.parametrize("operation_id", ["createMultimodalTts", "createMultimodalImage"])
def test_answer_base64_unwrapped(operation_id: str, tts_pair: tuple[Exchange, Exchange],
                                 image_pair: tuple[Exchange, Exchange]) -> None:
    """004: "All endpoints ... return base64-encoded results": audio_base64 and image_base64 unwrapped."""
    answer = tts_pair[0] if operation_id == "createMultimodalTts" else image_pair[0]
    REGISTRY["answer_base64_unwrapped"](answer, find_operation(API, operation_id))


@pytest.mark.api(API, operation="listMultimodalUsage")
@pytest.mark.check("usage_pagination")
def test_usage_pagination(client: TargetClient, tts_pair: tuple[Exchange, Exchange]) -> None:
    pages = [client.request("GET", USAGE.path, params={"limit": 1, "skip": skip}) for skip in (0, 1)]
    filtered = client.request("GET", USAGE.path, params={"endpoint_type": "tts"})
    REGISTRY["usage_pagination"](pages[0], pages[1], filtered, USAGE)


@pytest.mark.api(API, operation="getMultimodalUsage")
@pytest.mark.check("usage_record_found")
def test_usage_record(client: TargetClient, tts_pair: tuple[Exchange, Exchange]) -> None:
    body: Any = tts_pair[1].json()
    usage_id = body.get("usage_id") if isinstance(body, dict) else None
    if not isinstance(usage_id, str):
        raise CheckFailure("usage_record_found", "a TTS answer naming its usage_id",
                           f"{tts_pair[1].status} {tts_pair[1].media_type} without a usage_id", tts_pair[1].evidence())
    exchange = client.request("GET", RECORD.path.format(usage_id=usage_id))
    REGISTRY["usage_record_found"](exchange, usage_id, RECORD)


@pytest.mark.api(API, operation="createTextToVideo")
@pytest.mark.check("tier_rejected")
def test_premium_only_refuses_standard_key(client: TargetClient, target: Target) -> None:
    if not target.standard_api_key:
        pytest.skip("the target file names no standard_api_key (a key below the premium tier)")
    exchange = client.request("POST", T2V.path, json_body={"prompt": "A serene ocean wave", "duration": 5},
                              auth="standard")
    REGISTRY["tier_rejected"](exchange, T2V)


@pytest.fixture(scope="module")
def i2v_jobs(request: pytest.FixtureRequest, client: TargetClient, target: Target,
             carried: Carried) -> Iterator[dict[str, Future[VideoJob]]]:
    """The I2V jobs of the providers whose tests this session runs, polled at the same time in threads: each
    job takes tens of seconds on a real GPU, and one after another their waits added up. They were started
    together with the video defaults' jobs a burst carries (``jobs.start_video_jobs``: before the run's first
    session in a concurrent run, else here, when the first of their tests runs; the premium providers' starts
    are the I2V burst's first requests). The starts (which charge) are all made before any test of the
    module goes on (``test_credits_reconcile`` measures the keys' balances after); only the polls (which
    charge nothing) run behind."""
    started = start_video_jobs(carried, request.session.items, client, target)
    with ThreadPoolExecutor(max(len(started), 1), thread_name_prefix="i2v-job") as pool:
        yield {provider: pool.submit(_poll, client, target, answer, style)
               for provider, (style, answer) in started.items()}


def _poll(client: TargetClient, target: Target, started: Exchange, style: str) -> VideoJob:
    """The video job of ``started``: (``started``, the usage records polled until the job ends, bounded by the
    target's ``job_timeout_s``, the download of its video_url or None when the job never completed: its last
    status is the verdict). A pytest skip when the start was rate limited; CheckFailure when it started no
    job."""
    if started.status == 429:
        pytest.skip(f"rate limited (Retry-After {started.headers.get('retry-after')} s): nothing to poll")
    body: Any = started.json()
    usage_id = body.get("usage_id") if isinstance(body, dict) else None
    if started.status != 200 or not isinstance(usage_id, str):
        raise CheckFailure("video_job_completes", "200 starting a job with its usage_id",
                           f"{started.status} {started.media_type}, usage_id {usage_id!r}", started.evidence())
    records = poll_usage_record(client, usage_id, style, target.job_timeout_s)
    final = records[-1].json() if isinstance(records[-1].json(), dict) else {}
    completed = final.get("status") == "completed"
    video_url = final.get("video_url") or body.get("video_url") if completed else None
    return started, records, client.request("GET", str(video_url), auth=None) if video_url else None


@pytest.mark.api(API, operation="createImageToVideo")
@pytest.mark.check("video_job_completes")
def test_video_job_polled_to_completion(i2v_jobs: dict[str, Future[VideoJob]], hosted_urls: IssuedUrls) -> None:
    _, records, video = i2v_jobs["wan22"].result()
    if video is not None:  # hosted_urls_download_later fetches it again
        hosted_urls.append(IssuedUrl(API, video.url, "video", "getMultimodalUsage video_url", time.time()))
    wan22 = I2V_PROVIDERS["wan22"]
    REGISTRY["video_job_completes"](records, video, (wan22.width, wan22.height), wan22.duration_s, I2V)


@pytest.mark.api(API, operation="createImageToVideo")
@pytest.mark.check("video_provider_cost_and_duration")
@pytest.mark.parametrize("provider", sorted(I2V_PROVIDERS))
def test_video_provider_facts(provider: str, i2v_jobs: dict[str, Future[VideoJob]]) -> None:
    """004's provider table: cost, duration and resolution per provider (seedance and sora2 cost 520 and
    800 credits on a paid API)."""
    started, records, video = i2v_jobs[provider].result()
    REGISTRY["video_provider_cost_and_duration"](started, records, video, I2V_PROVIDERS[provider], I2V)


@pytest.mark.api(API, operation="createImageToVideo")
@pytest.mark.check("sora2_premium_only")
def test_sora2_refuses_standard_key(client: TargetClient, target: Target) -> None:
    if not target.standard_api_key:
        pytest.skip("the target file names no standard_api_key (a key below the premium tier)")
    exchange = client.request("POST", I2V.path, auth="standard", json_body={
        "image_url": "https://example.com/photo.jpg", "motion_prompt": "Clouds drift", "provider": "sora2"})
    REGISTRY["sora2_premium_only"](exchange, I2V)


@pytest.mark.api(API, operation="createMultimodalTts")
@pytest.mark.check("rate_limit_enforced")
def test_tts_rate_limit(client: TargetClient, tts_pair: tuple[Exchange, Exchange]) -> None:
    limit = rate_limit(TTS)
    assert limit is not None and limit.requests is not None, "the spec gives TTS a rate limit"
    burst: list[Exchange] = []
    for _ in range(limit.requests + 1):
        burst.append(client.request("POST", TTS.path, json_body={"text": "Rate limit probe."}, honour_429=False))
        if burst[-1].status == 429:
            break
    REGISTRY["rate_limit_enforced"](burst, TTS)


@pytest.mark.serial
@pytest.mark.api(API, operation="getManagedUsage")
@pytest.mark.check("credits_reconcile_over_run")
def test_credits_reconcile(client: TargetClient, target: Target) -> None:
    """004: what the answers say they charged is what the balance lost, and 402, 403 and 429 charge nothing.
    Each key is measured around its own calls (so the test must run alone: ``serial``): the main key's TTS,
    image and a TTS burst up to its 429 (its window is mostly spent by the test before), the no-credits
    key's 402, the standard key's 403 (T2V, else sora2)."""
    def usage(style: str) -> Exchange:
        return client.request("GET", MANAGED.path, auth=style)

    def tts(style: str) -> Exchange:
        return client.request("POST", TTS.path, json_body={"text": "Reconcile."}, auth=style, honour_429=False)

    excluded = target.exclude_operations
    if TTS.operation_id in excluded:
        pytest.skip(f"{TTS.operation_id}, the cheapest charged call this test makes, is excluded by the target file")
    limit = rate_limit(TTS)
    assert limit is not None and limit.requests is not None
    runs: list[Measured] = []
    before = usage("bearer")
    calls = [tts("bearer")]
    if IMAGE.operation_id not in excluded:
        calls.append(client.request("POST", IMAGE.path, json_body={"prompt": "A red kite", "width": 512, "height": 512},
                                    honour_429=False))
    for _ in range(limit.requests + 1):
        calls.append(tts("bearer"))
        if calls[-1].status == 429:
            break
    runs.append(Measured(before, calls, usage("bearer")))
    if target.empty_api_key:
        before = usage("empty")
        runs.append(Measured(before, [tts("empty")], usage("empty")))
    if target.standard_api_key and not {T2V.operation_id, I2V.operation_id} <= excluded:
        before = usage("standard")
        refused = (client.request("POST", T2V.path, json_body={"prompt": "A wave", "duration": 1}, auth="standard")
                   if T2V.operation_id not in excluded else
                   client.request("POST", I2V.path, auth="standard", json_body={
                       "image_url": "https://example.com/photo.jpg", "motion_prompt": "Drift", "provider": "sora2"}))
        runs.append(Measured(before, [refused], usage("standard")))
    REGISTRY["credits_reconcile_over_run"](runs, MANAGED)
