"""Retry-After takes two forms (RFC 9110 section 10.2.3): delay-seconds and an HTTP-date. 001 "Errors" says
"Respect Retry-After" without naming one, so a gateway sending the date form is correct, and the suite
must read it: its 429 checks and its own honouring of a 429 (``TargetClient``)."""

from __future__ import annotations

import json
import time
from email.utils import formatdate

import pytest

from conformance.checks.limits import judge_burst
from conformance.failures import CheckFailure
from conformance.http import Exchange, retry_after_s


def _429(retry_after: str | None) -> Exchange:
    headers = {"content-type": "application/json"} | ({"retry-after": retry_after} if retry_after else {})
    body = {"error": {"type": "rate_limit_error", "message": "slow down"}}
    return Exchange("POST", "http://gw/v1/chat/completions", None, 429, headers, json.dumps(body).encode())


def test_an_http_date_is_read_as_the_seconds_until_it() -> None:
    wait = retry_after_s({"retry-after": formatdate(time.time() + 30, usegmt=True)})
    assert wait is not None and 28 <= wait <= 31
    assert retry_after_s({"retry-after": formatdate(time.time() - 30, usegmt=True)}) == 0.0  # already past
    assert retry_after_s({"retry-after": "12"}) == 12.0


@pytest.mark.parametrize("value", ["soon", "nan", "inf", "-inf", ""])
def test_a_value_of_neither_form_is_none(value: str) -> None:
    assert retry_after_s({"retry-after": value}) is None


def test_a_429_with_an_http_date_retry_after_passes_the_burst_check() -> None:
    judge_burst("gateway_rate_limit_429", [_429(formatdate(time.time() + 20, usegmt=True))], 3, "per 60 s")
    with pytest.raises(CheckFailure, match="Retry-After"):
        judge_burst("gateway_rate_limit_429", [_429(None)], 3, "per 60 s")
