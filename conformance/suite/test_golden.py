"""Golden fixtures (``fixtures/<api>/<operationId>/*.yaml``) replayed against the target."""

from __future__ import annotations

from conformance.golden import GoldenCase, render, verify
from conformance.http import TargetClient
from conformance.target import Target

#: Headers for each value a fixture's ``request.auth`` may take (valid: the target's key; none: no header).
_AUTH = {"valid": {}, "none": {}, "invalid": {"Authorization": "Bearer sk-conformance-invalid-key"}}


def test_golden(case: GoldenCase, client: TargetClient, target: Target) -> None:
    auth = case.request.get("auth", "valid")
    headers = _AUTH[auth]
    exchange = client.request(case.operation.method.upper(), case.operation.path,
                              json_body=render(case.request.get("json"), target), headers=headers,
                              auth=None if auth == "none" else "bearer")
    verify(case, exchange)
