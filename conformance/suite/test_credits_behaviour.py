"""Behavioural checks of the credits API (004): accounting, usage records and rate limits.

The rate-limit burst runs last in this module: it spends the window of the operation it tests. The
module is ``serial``: its credits sequences and burst share per-minute windows (1-10/min, 004) and
module fixtures, so a concurrent run keeps it in order, alone.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from conformance.checks import REGISTRY
from conformance.checks.hosted import IssuedUrl
from conformance.http import Exchange, TargetClient
from conformance.plugin import IssuedUrls
from conformance.target import Target
from spec import find_operation
from spec.extensions import providers, rate_limit

API = "credits_api"
TTS = find_operation(API, "createMultimodalTts")
IMAGE = find_operation(API, "createMultimodalImage")
USAGE = find_operation(API, "listMultimodalUsage")
RECORD = find_operation(API, "getMultimodalUsage")
T2V = find_operation(API, "createTextToVideo")
I2V = find_operation(API, "createImageToVideo")

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
    assert isinstance(usage_id, str), f"the TTS answer names no usage_id: {tts_pair[1].body[:200]!r}"
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


@pytest.mark.api(API, operation="createImageToVideo")
@pytest.mark.check("video_job_completes")
def test_video_job_polled_to_completion(client: TargetClient, target: Target, hosted_urls: IssuedUrls) -> None:
    # A key of its own when the target has one: the golden fixtures used the main key's i2v window.
    style = "standard" if target.standard_api_key else "bearer"
    started = client.request("POST", I2V.path, auth=style, json_body={
        "image_url": "https://example.com/photo.jpg", "motion_prompt": "Clouds drift across the sky"})
    if started.status == 429:
        pytest.skip(f"rate limited (Retry-After {started.headers.get('retry-after')} s): nothing to poll")
    body: Any = started.json()
    usage_id = body.get("usage_id") if isinstance(body, dict) else None
    assert started.status == 200 and isinstance(usage_id, str), f"no job started: {started.status}"
    records: list[Exchange] = []
    deadline = time.monotonic() + target.job_timeout_s
    delay = 0.05
    while time.monotonic() < deadline:
        records.append(client.request("GET", RECORD.path.format(usage_id=usage_id), auth=style))
        record = records[-1].json()
        if not isinstance(record, dict) or record.get("status") in ("completed", "failed") or records[-1].status >= 400:
            break
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)
    final = records[-1].json() if isinstance(records[-1].json(), dict) else {}
    video_url = final.get("video_url") or body.get("video_url") if final.get("status") == "completed" else None
    if video_url:  # a job that never completed has nothing to download: its last status is the verdict
        hosted_urls.append(IssuedUrl(API, str(video_url), "video", "getMultimodalUsage video_url", time.time()))
    video = client.request("GET", str(video_url), auth=None) if video_url else None
    wan22 = providers(I2V)["wan22"]
    REGISTRY["video_job_completes"](records, video, (wan22.width, wan22.height), wan22.duration_s, I2V)


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
