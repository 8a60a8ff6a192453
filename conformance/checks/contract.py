"""Checks of any single answer against its operation's spec: the documented schema and error envelope.

Status codes, content types and response schemas of generated cases are judged by schemathesis's own
checks (``suite/test_properties.py``); :func:`validate_against` serves golden fixtures and streams.

Source: 001 "Errors" (documented statuses and the structured error shape); every operation's
``responses`` in ``spec/``.
"""

from __future__ import annotations

import functools
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

from conformance.checks import check
from conformance.failures import CheckFailure
from conformance.http import Exchange
from spec import Operation, find_operation, response_media, schema_validator


@functools.cache
def _validator(api: str, operation_id: str, status: int, media_type: str,
               sse_item: bool) -> Draft202012Validator | None:
    media = response_media(find_operation(api, operation_id), status).get(media_type, {})
    schema = media.get("x-sse", {}).get("item") if sse_item else media.get("schema")
    return None if schema is None else schema_validator(api, schema)


def validate_against(operation: Operation, status: int, media_type: str, instance: Any, *,
                     sse_item: bool = False) -> str | None:
    """None if ``instance`` satisfies the documented schema (or none is documented), else the reason.

    ``sse_item=True`` validates one ``data:`` payload against the media type's ``x-sse.item``.
    Validators are compiled once per (operation, status, media type).
    """
    validator = _validator(operation.api, operation.operation_id, status, media_type, sse_item)
    if validator is None:
        return None
    error = best_match(validator.iter_errors(instance))
    if error is None:
        return None
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path) or "(root)"
    return f"{where}: {error.message[:300]}"


@check(capability="errors.envelope", source="001 Errors")
def error_envelope_conformance(exchange: Exchange, operation: Operation) -> None:
    """An answer to a request that must be refused is a 4xx/5xx whose body is ``{"error": {"type", "message"}}``
    JSON with the type documented for its status. A 2xx or 3xx fails: the caller asks only where an error is
    due (a refused request, or a generated case the target answered with an error), so "not an error" is never
    a pass."""
    body = exchange.json()
    if exchange.status < 400:
        raise CheckFailure("error_envelope_conformance", "an error status (4xx or 5xx) with the error envelope",
                           f"{exchange.status} {exchange.media_type or 'without a Content-Type'}: "
                           f"{_shape(body, exchange)}", exchange.evidence())
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("type"), str) or not isinstance(
            error.get("message"), str):
        raise CheckFailure("error_envelope_conformance", '{"error": {"type": str, "message": str}}',
                           _shape(body, exchange), exchange.evidence())
    reason = validate_against(operation, exchange.status, "application/json", body)
    if reason is not None:
        raise CheckFailure("error_envelope_conformance", f"the error.type documented for {exchange.status}",
                           f"error.type {error.get('type')!r} ({reason})", exchange.evidence())


def _shape(body: Any, exchange: Exchange) -> str:
    if body is None:
        return f"a non-JSON body ({exchange.media_type or 'no Content-Type'})"
    if isinstance(body, dict):
        return "a JSON object with keys " + ", ".join(sorted(body)) if body else "an empty JSON object"
    return f"JSON of type {type(body).__name__}"
