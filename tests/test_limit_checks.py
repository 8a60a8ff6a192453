"""The rate-limit, billing, safety and reconciliation checks judged on hand-made exchanges: each rule's
pass and fail cases, including those no broken target reaches (optional headers, refused answers that
claim a charge)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conformance.checks import REGISTRY
from conformance.checks.credits import Measured
from conformance.failures import CheckFailure
from conformance.http import Exchange
from spec import find_operation

CHAT = find_operation("openai_gateway", "createChatCompletion")
MANAGED = find_operation("credits_api", "getManagedUsage")
LIMITED = {"error": {"type": "rate_limit_error", "message": "Rate limit reached"}}


def _exchange(status: int, body: Any, **headers: str) -> Exchange:
    return Exchange("POST", "http://127.0.0.1:1/x", {}, status,
                    {"content-type": "application/json", **{k.replace("_", "-"): v for k, v in headers.items()}},
                    json.dumps(body).encode())


def _429(**headers: str) -> Exchange:
    return _exchange(429, LIMITED, retry_after="2", **headers)


def test_rpm_burst_passes_with_consistent_headers_and_without_any() -> None:
    ok = [_exchange(200, {}), _exchange(200, {}), _429(x_ratelimit_limit_requests="2",
                                                       x_ratelimit_remaining_requests="0")]
    REGISTRY["gateway_rate_limit_429"](ok, CHAT, "requests", 2)
    REGISTRY["gateway_rate_limit_429"]([_exchange(200, {}), _429()], CHAT, "requests", 2)
    # headers describing another limit (an upstream's passed through, an organisation's) are not a violation
    REGISTRY["gateway_rate_limit_429"]([_exchange(200, {}), _429(x_ratelimit_limit_requests="100",
                                                                 x_ratelimit_remaining_requests="37")],
                                       CHAT, "requests", 2)


@pytest.mark.parametrize(("burst", "expected"), [
    ([_exchange(200, {})] * 3, "a 429 within 3"),
    ([_exchange(200, {})] * 3 + [_429()], "at most 2 admitted"),
    ([_exchange(200, {}), _exchange(429, LIMITED)], "Retry-After"),
    ([_exchange(429, {"error": {"type": "upstream_error"}}, retry_after="1")], "rate_limit_error"),
    ([_429(x_ratelimit_limit_requests="lots")], "x-ratelimit-limit-requests: a non-negative integer"),
    ([_429(x_ratelimit_limit_requests="2", x_ratelimit_remaining_requests="5")], "remaining 5 of 2"),
    ([_429(x_ratelimit_remaining_requests="-1")], "x-ratelimit-remaining-requests: a non-negative integer"),
])
def test_rpm_burst_failures(burst: list[Exchange], expected: str) -> None:
    with pytest.raises(CheckFailure, match=expected):
        REGISTRY["gateway_rate_limit_429"](burst, CHAT, "requests", 2)


def test_tpm_probe_needs_its_429_by_the_second_request() -> None:
    REGISTRY["gateway_rate_limit_429"]([_exchange(200, {}), _429(x_ratelimit_limit_tokens="600")], CHAT, "tokens", 600)
    with pytest.raises(CheckFailure, match="a 429 within 2"):
        REGISTRY["gateway_rate_limit_429"]([_exchange(200, {})] * 2, CHAT, "tokens", 600)
    with pytest.raises(CheckFailure, match="x-ratelimit-limit-tokens: a non-negative integer"):
        REGISTRY["gateway_rate_limit_429"]([_429(x_ratelimit_limit_tokens="9.5")], CHAT, "tokens", 600)


def test_retry_after_admitted() -> None:
    REGISTRY["retry_after_admitted"](_429(), _exchange(200, {}), CHAT)
    with pytest.raises(CheckFailure, match="admitted after waiting"):
        REGISTRY["retry_after_admitted"](_429(), _429(), CHAT)


def test_billing_and_safety_answers() -> None:
    REGISTRY["gateway_billing_error_402"](_exchange(402, {"error": {"type": "billing_error", "message": "Out."}}),
                                          CHAT)
    with pytest.raises(CheckFailure, match=r"402 with error\.type billing_error"):
        REGISTRY["gateway_billing_error_402"](_exchange(403, {"error": {"type": "permission_error"}}), CHAT)
    reason = {"error": {"type": "invalid_request_error", "message": "The prompt was rejected: violence."}}
    REGISTRY["safety_rejection_reported"](_exchange(400, reason), CHAT)
    with pytest.raises(CheckFailure, match="rejection reason"):
        REGISTRY["safety_rejection_reported"](_exchange(400, {"error": {"type": "invalid_request_error",
                                                                        "message": "Rejected"}}), CHAT)
    with pytest.raises(CheckFailure, match=r"400 with error\.type invalid_request_error"):
        REGISTRY["safety_rejection_reported"](_exchange(200, {"choices": []}), CHAT)


def _usage(remaining: int) -> Exchange:
    return _exchange(200, {"credits_remaining": remaining, "credits_used": 0})


def test_reconcile_counts_200s_and_nothing_for_refusals() -> None:
    calls = [_exchange(200, {"credits_used": 14}), _exchange(200, {"credits_used": 50}), _429(),
             _exchange(402, {"error": {"type": "billing_error"}})]
    REGISTRY["credits_reconcile_over_run"]([Measured(_usage(1000), calls, _usage(936))], MANAGED)
    with pytest.raises(CheckFailure, match="fell by 78"):
        REGISTRY["credits_reconcile_over_run"]([Measured(_usage(1000), calls, _usage(922))], MANAGED)
    claimed = _exchange(429, {"error": {"type": "rate_limit_error"}, "credits_used": 14})
    with pytest.raises(CheckFailure, match="no credits_used on a 429"):
        REGISTRY["credits_reconcile_over_run"]([Measured(_usage(1000), [claimed], _usage(1000))], MANAGED)
