"""Property-based checks generated from the spec by schemathesis.

Positive cases (valid by the spec) must be answered with a documented status and content type
and a body valid against the documented schema; negative cases (invalid by the spec) must be
rejected with a 4xx in the API's error envelope, never a 5xx or a 2xx.

The number of generated cases per operation follows the active Hypothesis profile
(``conformance run --profile``); schemathesis's deterministic coverage phase adds boundary cases.
"""

from __future__ import annotations

from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import HealthCheck
from schemathesis.core.failures import FailureGroup

from conformance.checks import REGISTRY
from conformance.failures import CheckFailure, Evidence, excerpt
from conformance.http import Exchange
from conformance.target import Target
from spec import find_operation, load_api

#: Operations under property tests: (api, operationId, capability whose model the case uses).
OPERATIONS = [("openai_gateway", "createChatCompletion", "vision")]
#: Statuses that count as a rejection of invalid input.
REJECTIONS = ["400", "401", "403", "404", "405", "413", "415", "422"]
POSITIVE_CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
                   "response_headers_conformance", "response_schema_conformance")
NEGATIVE_CHECKS = ("not_a_server_error", "negative_data_rejection", "status_code_conformance")

load_all_checks()


def _schema(mode: GenerationMode) -> Any:
    raw = load_api(OPERATIONS[0][0])
    wanted = {find_operation(api, op).path for api, op, _ in OPERATIONS}
    raw["paths"] = {path: item for path, item in raw["paths"].items() if path in wanted}
    schema = schemathesis.openapi.from_dict(raw, config=schemathesis.Config())
    schema.config.generation.update(modes=[mode], max_examples=hypothesis.settings().max_examples,
                                    database="none")
    schema.config.suppress_health_check = [HealthCheck.all]
    schema.config.output.sanitization.update(enabled=False)
    schema.config.checks.negative_data_rejection.expected_statuses = REJECTIONS

    @schema.hook
    def map_case(context: Any, case: Any) -> Any:
        # Streams are judged by the streaming checks; here every answer is one JSON document.
        if isinstance(case.body, dict) and case.body.get("stream"):
            case.body = {**case.body, "stream": False}
        return case

    return schema


positive = _schema(GenerationMode.POSITIVE)
negative = _schema(GenerationMode.NEGATIVE)


def _call(case: Any, target: Target) -> tuple[Any, Exchange]:
    headers = {"Authorization": f"Bearer {target.api_key}"}
    response = case.call(base_url=target.base_url, headers=headers, timeout=60)
    request = response.request
    exchange = Exchange(request.method or case.method, request.url or "", case.body, response.status_code,
                        {k.lower(): v[0] if isinstance(v, list) else v for k, v in response.headers.items()},
                        response.content or b"")
    return response, exchange


def _validate(case: Any, response: Any, exchange: Exchange, names: tuple[str, ...], target: Target) -> None:
    """Run each schemathesis check by name; the first failure becomes a :class:`CheckFailure` of that name."""
    headers = {"Authorization": f"Bearer {target.api_key}"}
    for name in names:
        try:
            case.validate_response(response, checks=[CHECKS.get_one(name)], headers=headers,
                                   transport_kwargs={"base_url": target.base_url, "headers": headers})
        except FailureGroup as group:
            first = group.exceptions[0]
            raise CheckFailure(name, f"{name} to hold ({case.meta.generation.mode.value} case)",
                               f"{first.title}: {excerpt(first.message)}", _evidence(exchange)) from None
    REGISTRY["error_envelope_conformance"](exchange, find_operation(OPERATIONS[0][0], OPERATIONS[0][1]))


def _evidence(exchange: Exchange) -> Evidence:
    return exchange.evidence()


@pytest.mark.capability("contract.positive", source="spec: documented status, content type and schema")
@positive.parametrize()
def test_positive_cases(case: Any, target: Target) -> None:
    if isinstance(case.body, dict):
        case.body = {**case.body, "model": target.model(OPERATIONS[0][2])}
    response, exchange = _call(case, target)
    _validate(case, response, exchange, POSITIVE_CHECKS, target)


@pytest.mark.capability("contract.negative", source="001 Errors: invalid input is a 4xx in the envelope")
@negative.parametrize()
def test_negative_cases(case: Any, target: Target) -> None:
    if isinstance(case.body, dict) and isinstance(case.body.get("model"), str) and case.body["model"]:
        case.body = {**case.body, "model": target.model(OPERATIONS[0][2])}
    response, exchange = _call(case, target)
    _validate(case, response, exchange, NEGATIVE_CHECKS, target)
