"""Golden fixtures (``fixtures/<api>/<operationId>/*.yaml``) replayed against the target."""

from __future__ import annotations

from urllib.parse import quote

from conformance.golden import GoldenCase, files, render, verify
from conformance.http import TargetClient
from conformance.target import Target

#: Headers for each value a fixture's ``request.auth`` may take (valid: the target's key; none: no header).
_AUTH = {"valid": {}, "none": {}, "invalid": {"Authorization": "Bearer sk-conformance-invalid-key"}}


def test_golden(case: GoldenCase, client: TargetClient, target: Target) -> None:
    auth = case.request.get("auth", "valid")
    style = "messages" if case.operation.spec.get("x-mirrors") == "anthropic" else "bearer"
    # path parameters percent-encoded as the official SDKs send them (a model id's "/" as %2F)
    values = render(case.request.get("path", {}), target)
    path = case.operation.path.format(**{name: quote(str(value), safe="") for name, value in values.items()})
    headers = {**_AUTH[auth], **render(case.request.get("headers", {}), target)}  # a null value drops a header
    exchange = client.request(case.operation.method.upper(), path, json_body=render(case.request.get("json"), target),
                              data=render(case.request.get("multipart"), target), files=files(case),
                              params=render(case.request.get("query"), target), headers=headers,
                              auth=None if auth == "none" else style)
    verify(case, exchange, download=lambda url: client.request("GET", url, auth=None), target=target)
