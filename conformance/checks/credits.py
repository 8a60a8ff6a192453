"""Checks of the credits API's accounting, limits and usage records (004 "Multimodal API").

Costs and limits are read from the spec's ``x-credits`` and ``x-rate-limit``, never repeated here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from conformance import media
from conformance.checks import check
from conformance.failures import CheckFailure
from conformance.http import Exchange, retry_after_s
from spec import Operation
from spec.extensions import credit_cost, rate_limit

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
    name = "rate_limit_enforced"
    limit = rate_limit(operation)
    if limit is None or limit.requests is None:
        return
    statuses = [exchange.status for exchange in burst]
    if 429 not in statuses:
        raise CheckFailure(name, f"a 429 within {limit.requests + 1} requests", f"statuses {statuses}",
                           burst[-1].evidence())
    first = statuses.index(429)
    admitted = sum(1 for status in statuses[:first] if status < 400)
    rejected = burst[first]
    body = rejected.json()
    if admitted > limit.requests:
        raise CheckFailure(name, f"at most {limit.requests} admitted per {limit.window_s} s", f"{admitted} admitted",
                           rejected.evidence())
    if retry_after_s(rejected.headers) is None:
        raise CheckFailure(name, "429 with a Retry-After header in s", f"headers {dict(rejected.headers)}",
                           rejected.evidence())
    if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
        raise CheckFailure(name, "429 in the error envelope", rejected.body[:120].decode("utf-8", "replace"),
                           rejected.evidence())


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
    name = "video_job_completes"
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
