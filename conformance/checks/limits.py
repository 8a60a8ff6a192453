"""Checks of rate limits: a burst just past a declared limit gets a 429 in the documented shape, and a
retry made after the advertised Retry-After is admitted (001 "Errors": 429 rate_limit_error, "RPM or
TPM exceeded. Respect Retry-After"; 002 "Errors": 429 "RPM exceeded"; 004 per-endpoint limits).

The suite provokes only the limits the target file declares (``rate_limits``), with at most limit + 1
requests; these checks judge the exchanges it made.
"""

from __future__ import annotations

from collections.abc import Sequence

from conformance.checks import check
from conformance.failures import CheckFailure
from conformance.http import Exchange, retry_after_s
from spec import Operation

SOURCE_GATEWAY = "001 Errors (429 rate_limit_error: RPM or TPM exceeded, Retry-After); 002 Errors (429 RPM exceeded)"


def judge_burst(name: str, burst: Sequence[Exchange], limit: int, window: str) -> Exchange:
    """The first 429 of ``burst`` (requests sent one after another), after checking that it came no later
    than request ``limit`` + 1, that at most ``limit`` were admitted before it, and that it carries a
    Retry-After in s and the error envelope. Raises CheckFailure naming ``name`` otherwise; ``window``
    words the limit in messages (``per 60 s``)."""
    statuses = [exchange.status for exchange in burst]
    if 429 not in statuses:
        raise CheckFailure(name, f"a 429 within {limit + 1} requests", f"statuses {statuses}", burst[-1].evidence())
    first = statuses.index(429)
    admitted = sum(1 for status in statuses[:first] if status < 400)
    rejected = burst[first]
    if admitted > limit:
        raise CheckFailure(name, f"at most {limit} admitted {window}", f"{admitted} admitted", rejected.evidence())
    if retry_after_s(rejected.headers) is None:
        raise CheckFailure(name, "429 with a Retry-After header in s", f"headers {dict(rejected.headers)}",
                           rejected.evidence())
    body = rejected.json()
    if not (isinstance(body, dict) and isinstance(body.get("error"), dict)):
        raise CheckFailure(name, "429 in the error envelope", rejected.body[:120].decode("utf-8", "replace"),
                           rejected.evidence())
    return rejected


@check(capability="rate_limits", source=SOURCE_GATEWAY)
def gateway_rate_limit_429(burst: Sequence[Exchange], operation: Operation, dimension: str, limit: int) -> None:
    """A burst past the target's declared RPM (``dimension`` ``requests``: limit + 1 requests) or TPM
    (``tokens``: up to three requests of about 60% of the TPM each) gets a 429 no later than the first
    request over it (for TPM, the last of the burst: a gateway may count tokens before admitting or
    after each answer), with Retry-After (s) and ``error.type`` rate_limit_error. The
    ``x-ratelimit-*`` headers are not in the seeds, so they are judged only when sent, and only for being
    readable and consistent: ``x-ratelimit-limit-<dimension>`` and ``x-ratelimit-remaining-<dimension>``
    non-negative integers, the remaining no more than the limit. Their values are not held to the
    declared limit: a correct gateway may describe another limit there (its upstream's, passed through,
    or an organisation's)."""
    name = "gateway_rate_limit_429"
    most = limit if dimension == "requests" else max(1, len(burst) - 1)
    rejected = judge_burst(name, burst, most, f"under {limit} {dimension} per minute")
    error = rejected.json().get("error", {})
    if error.get("type") != "rate_limit_error":
        raise CheckFailure(name, "error.type rate_limit_error", f"error.type {error.get('type')!r}",
                           rejected.evidence())
    values: dict[str, int] = {}
    for kind in ("limit", "remaining"):
        header = f"x-ratelimit-{kind}-{dimension}"
        sent = rejected.headers.get(header)
        if sent is None:
            continue
        if not sent.strip().isdigit():
            raise CheckFailure(name, f"{header}: a non-negative integer", f"{header}: {sent!r}", rejected.evidence())
        values[kind] = int(sent)
    if values.get("remaining", 0) > values.get("limit", values.get("remaining", 0)):
        raise CheckFailure(name, f"x-ratelimit-remaining-{dimension} at most x-ratelimit-limit-{dimension}",
                           f"remaining {values['remaining']} of {values['limit']}", rejected.evidence())


@check(capability="rate_limits", source="001 Errors (429: Respect Retry-After)")
def retry_after_admitted(rejected: Exchange, retry: Exchange, operation: Operation) -> None:
    """The same request sent again once the 429's Retry-After (s) has passed is admitted (not 429): the
    header told the client how long to wait, and waiting that long must be enough."""
    name = "retry_after_admitted"
    if rejected.status != 429:
        raise CheckFailure(name, "a 429 to retry after", str(rejected.status), rejected.evidence())
    if retry.status >= 400:
        raise CheckFailure(name, f"admitted after waiting Retry-After: {rejected.headers.get('retry-after')} s",
                           f"{retry.status} (Retry-After: {retry.headers.get('retry-after')})", retry.evidence())
