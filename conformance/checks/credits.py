"""Checks of the credits API's accounting, limits and usage records (004 "Multimodal API").

Costs and limits are read from the spec's ``x-credits`` and ``x-rate-limit``, never repeated here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conformance import media
from conformance.checks import check
from conformance.checks.defaults import about
from conformance.checks.errors import expect_403
from conformance.checks.limits import judge_burst
from conformance.failures import CheckFailure
from conformance.http import Exchange
from spec import Operation
from spec.extensions import Provider, credit_cost, rate_limit

SOURCE = "004 Credit Costs Summary"


def _body(name: str, exchange: Exchange) -> dict[str, Any]:
    body = exchange.json()
    if exchange.status != 200 or not isinstance(body, dict):
        raise CheckFailure(name, "200 with a JSON object", f"{exchange.status} {exchange.media_type}",
                           exchange.evidence())
    return body


@check(capability="credits.accounting", source=SOURCE)
def credits_fall_by_cost(first: Exchange, second: Exchange, operation: Operation) -> None:
    """Of two calls in a row, the second reports credits_used = the documented cost and credits_remaining
    lower than the first's by exactly that cost."""
    name = "credits_fall_by_cost"
    before, after = _body(name, first), _body(name, second)
    request = second.request_body if isinstance(second.request_body, dict) else {}
    cost = credit_cost(operation, request)
    if cost is None:
        return
    if after.get("credits_used") != cost.credits:
        raise CheckFailure(name, f"credits_used {cost.credits}", f"credits_used {after.get('credits_used')!r}",
                           second.evidence())
    if "credits_remaining" in before and "credits_remaining" in after:
        fell = before["credits_remaining"] - after["credits_remaining"] if isinstance(
            before["credits_remaining"], int) and isinstance(after["credits_remaining"], int) else None
        if fell != cost.credits:
            raise CheckFailure(name, f"credits_remaining to fall by {cost.credits}",
                               f"{before['credits_remaining']!r} then {after['credits_remaining']!r}",
                               second.evidence())


@check(capability="rate_limits", source="004 per-endpoint rate limits; 001 Errors (429, Retry-After)")
def rate_limit_enforced(burst: Sequence[Exchange], operation: Operation) -> None:
    """A burst of more than the documented requests per window gets a 429 no later than request limit + 1,
    with a Retry-After in s and the error envelope; no more than the limit is admitted before it."""
    limit = rate_limit(operation)
    if limit is not None and limit.requests is not None:
        judge_burst("rate_limit_enforced", burst, limit.requests, f"per {limit.window_s} s")


@check(capability="rate_limits", source="004 Image Generation (5/min), Video: Image-to-Video (2/min), "
                                        "Text-to-Video (1/min), CogVideoX (1/min)")
def credits_rate_limits_enforced(burst: Sequence[Exchange], operation: Operation) -> None:
    """The credits API's other per-endpoint limits, as :func:`rate_limit_enforced` judges TTS's: a burst of
    limit + 1 requests to image (5/min), image-to-video (2/min), text-to-video (1/min) or CogVideoX
    (1/min) gets a 429 no later than the last one, with Retry-After and the error envelope."""
    limit = rate_limit(operation)
    if limit is None or limit.requests is None:
        raise CheckFailure("credits_rate_limits_enforced", f"a documented limit for {operation.operation_id}",
                           "none in the spec", burst[-1].evidence())
    judge_burst("credits_rate_limits_enforced", burst, limit.requests, f"per {limit.window_s} s")


def _records(name: str, exchange: Exchange) -> list[Any]:
    body = _body(name, exchange)
    for key in ("records", "data", "items", "usage"):
        if isinstance(body.get(key), list):
            return list(body[key])
    raise CheckFailure(name, "a list of usage records", f"keys {sorted(body)}", exchange.evidence())


def _id(record: Any) -> Any:
    return record.get("usage_id", record.get("id")) if isinstance(record, dict) else None


@check(capability="credits.usage", source="004 Usage History (skip, limit, endpoint_type)")
def usage_pagination(first_page: Exchange, second_page: Exchange, filtered: Exchange, operation: Operation) -> None:
    """limit=1 pages hold at most one record each and skip moves on; endpoint_type filters records."""
    name = "usage_pagination"
    page_a, page_b = _records(name, first_page), _records(name, second_page)
    if len(page_a) > 1 or len(page_b) > 1:
        raise CheckFailure(name, "at most 1 record with limit=1", f"{len(page_a)} and {len(page_b)} records",
                           first_page.evidence())
    if page_a and page_b and _id(page_a[0]) == _id(page_b[0]):
        raise CheckFailure(name, "skip=1 to give another record", f"the same record {_id(page_a[0])!r}",
                           second_page.evidence())
    wanted = dict(p.split("=", 1) for p in filtered.url.split("?", 1)[-1].split("&") if "=" in p).get("endpoint_type")
    wrong = [r for r in _records(name, filtered) if isinstance(r, dict) and r.get("endpoint_type") != wanted]
    if wrong:
        raise CheckFailure(name, f"only endpoint_type {wanted}", f"{len(wrong)} other records", filtered.evidence())


@check(capability="credits.usage", source="004 For AI Agents (poll usage records)")
def usage_record_found(exchange: Exchange, usage_id: str, operation: Operation) -> None:
    """GET /usage/{usage_id} of a call just made answers that record."""
    body = _body("usage_record_found", exchange)
    if _id(body) != usage_id:
        raise CheckFailure("usage_record_found", f"the record {usage_id}", f"{_id(body)!r}", exchange.evidence())


@check(capability="credits.video_jobs", source="004 For AI Agents (poll usage records); Video Response")
def video_job_completes(records: Sequence[Exchange], video: Exchange | None, size: tuple[int, int],
                        duration_s: float, operation: Operation) -> None:
    """Polling GET /usage/{usage_id} of a video request ends in ``completed`` (within the target's
    ``job_timeout_s``) with a video_url that downloads as an MP4 of the documented resolution and duration
    (within 0.5 s). ``video`` is the download, None when the job never completed (nothing to download)."""
    _judge_video("video_job_completes", records, video, size, duration_s)


def _judge_video(name: str, records: Sequence[Exchange], video: Exchange | None, size: tuple[int, int],
                 duration_s: float) -> None:
    """Raises CheckFailure naming ``name`` unless the polled ``records`` end ``completed`` and ``video``
    (None: the job never completed) decodes (PyAV) as an MP4 of ``size`` px lasting ``duration_s`` s
    (within 0.5 s)."""
    final = records[-1].json() if records else None
    statuses = [r.json().get("status") if isinstance(r.json(), dict) else r.status for r in records]
    if not isinstance(final, dict) or final.get("status") != "completed" or video is None:
        last = statuses[-1] if statuses else None
        raise CheckFailure(name, "the record to reach status completed within job_timeout_s",
                           f"last status {last!r} after {len(records)} polls (statuses {statuses[-12:]})",
                           records[-1].evidence() if records else None)
    if video.status != 200:
        raise CheckFailure(name, "the video_url to download (200)", str(video.status), video.evidence())
    try:
        decoded = media.audio_video(video.body)
    except media.MediaError as exc:
        raise CheckFailure(name, "a decodable MP4", str(exc), video.evidence()) from None
    if "mp4" not in decoded.format.split(",") or (decoded.width, decoded.height) != size:
        raise CheckFailure(name, f"an MP4 of {size[0]}x{size[1]}", f"{decoded.format} {decoded.width}x{decoded.height}",
                           video.evidence())
    if abs(decoded.duration_s - duration_s) > 0.5:
        raise CheckFailure(name, f"about {duration_s} s of video", f"{decoded.duration_s:.2f} s", video.evidence())


@check(capability="credits.video_jobs", source="004 Video: Image-to-Video (I2V) (provider table: cost, duration, "
                                               "resolution); Credit Costs Summary")
def video_provider_cost_and_duration(started: Exchange, records: Sequence[Exchange], video: Exchange | None,
                                     provider: Provider, operation: Operation) -> None:
    """An I2V call with ``provider`` answers ``credits_used`` = the provider's documented cost (wan22 400,
    seedance 520, sora2 800) and ``duration_seconds`` its duration (wan22 and seedance 5 s, sora2 4 s; within
    0.5 s, :func:`~conformance.checks.defaults.about`),
    and its video, polled to completion, decodes as an MP4 of the provider's resolution lasting that long."""
    name = "video_provider_cost_and_duration"
    body = _body(name, started)
    if body.get("credits_used") != provider.credits:
        raise CheckFailure(name, f"credits_used {provider.credits} for {provider.name}",
                           f"credits_used {body.get('credits_used')!r}", started.evidence())
    if not about(body.get("duration_seconds"), provider.duration_s):
        raise CheckFailure(name, f"duration_seconds {provider.duration_s:g} for {provider.name}",
                           f"duration_seconds {body.get('duration_seconds')!r}", started.evidence())
    _judge_video(name, records, video, (provider.width, provider.height), provider.duration_s)


@check(capability="auth.tier", source="004 Video: Image-to-Video (I2V) (sora2 (premium)); 001 Errors (403)")
def sora2_premium_only(exchange: Exchange, operation: Operation) -> None:
    """I2V with ``provider: sora2`` called with a key below the premium tier is answered 403 in the error
    envelope (004 marks sora2 "(premium)"; the spec infers the 403 from T2V's "Tier: Premium only")."""
    expect_403("sora2_premium_only", exchange)


@dataclass(frozen=True)
class Measured:
    """One key's calls between two readings of GET /api/v1/managed/usage (``before``, ``after``)."""

    before: Exchange
    calls: Sequence[Exchange]
    after: Exchange


#: Statuses that must charge nothing (004 "Error Codes": 402 insufficient credits, 429; 001: 403).
UNCHARGED = (402, 403, 429)


@check(capability="credits.accounting", source="004 Credit Costs Summary; For AI Agents (check credits via GET "
                                               "/api/v1/managed/usage); Error Codes (402, 429)")
def credits_reconcile_over_run(measured: Sequence[Measured], operation: Operation) -> None:
    """For each key, the fall of ``credits_remaining`` (GET /api/v1/managed/usage) across its calls equals
    the sum of the ``credits_used`` its 200 answers reported, and so its 402, 403 and 429 answers charged
    nothing; a refused answer reporting ``credits_used`` above 0 fails too. The calls must be the key's
    only ones meanwhile (the suite runs this check alone)."""
    name = "credits_reconcile_over_run"
    for run in measured:
        before, after = _body(name, run.before), _body(name, run.after)
        charged, refused = 0, []
        for call in run.calls:
            body = call.json() if isinstance(call.json(), dict) else {}
            if call.status == 200 and isinstance(body.get("credits_used"), int):
                charged += body["credits_used"]
            elif call.status in UNCHARGED:
                refused.append(call.status)
                if isinstance(body.get("credits_used"), int) and body["credits_used"] > 0:
                    raise CheckFailure(name, f"no credits_used on a {call.status}",
                                       f"credits_used {body['credits_used']}", call.evidence())
        if not (isinstance(before.get("credits_remaining"), int) and isinstance(after.get("credits_remaining"), int)):
            raise CheckFailure(name, "credits_remaining (int) in GET /api/v1/managed/usage",
                               f"{before.get('credits_remaining')!r} then {after.get('credits_remaining')!r}",
                               run.after.evidence())
        fell = before["credits_remaining"] - after["credits_remaining"]
        if fell != charged:
            statuses = [call.status for call in run.calls]
            raise CheckFailure(name, f"the balance to fall by the {charged} credits_used reported "
                                     f"(refused {refused} charging nothing)",
                               f"it fell by {fell} over statuses {statuses}", run.after.evidence())
