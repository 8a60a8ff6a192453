"""Request-body validation against the spec, compiled once per operation at start-up.

A violation becomes ``400 invalid_request_error`` whose ``message`` and ``param`` name the
offending field as a path such as ``messages[0].content[1].image_url.url`` (001 "Errors":
"Schema violation. The message names the offending field.").

Two compiled validators per operation: ``jsonschema_rs`` (Rust) answers "valid?" in about 1 us,
where the Python ``jsonschema`` takes about 300 us for a chat body (``benchmarks/RESULTS.md``);
only a body it rejects goes through Python ``jsonschema``, whose verdict and error are the ones
the client sees. Formats are checked by the Python checkers in both, so the fast path accepts
nothing the Python validator refuses (stricter Rust checks only cost the slow path).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import best_match

from mock_server.errors import ApiError
from spec import Operation, load_api, request_body_schema, schema_validator

#: Keys whose ``const`` picks the branch of a ``oneOf`` (content part ``type``, message ``role``).
DISCRIMINATORS = frozenset({"type", "role"})


def field_path(path: Iterable[Any]) -> str:
    """Render a JSON path as the OpenAI ``param`` style: ``messages[0].content``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class BodyValidator:
    """Validates one operation's JSON request body; build at start-up, call per request."""

    def __init__(self, operation: Operation, media_type: str = "application/json") -> None:
        schema = request_body_schema(operation, media_type)
        self.operation = operation
        self._validator: Draft202012Validator | None = (
            None if schema is None else schema_validator(operation.api, schema)
        )
        self._fast = None if schema is None else fast_validator(operation.api, schema)

    def validate(self, body: Any) -> None:
        """Return None for a valid body; raise :class:`ApiError` (400) naming the bad field."""
        if self._validator is None:
            return
        if self._fast is not None:
            try:
                if self._fast.is_valid(body):
                    return
            except (ValueError, TypeError, OverflowError):  # a value Rust cannot take: let Python judge it
                pass
        error = best_match(self._validator.iter_errors(body), key=_relevance)
        if error is not None:
            raise _to_api_error(_narrow(error))


@functools.cache
def _registry(api: str) -> jsonschema_rs.Registry:
    """The bundled document of spec ``api`` as a ``jsonschema_rs`` resource at ``urn:spec:<api>``."""
    return jsonschema_rs.Registry([(f"urn:spec:{api}", load_api(api))])


def _format_checks() -> dict[str, Callable[[str], bool]]:
    """The Python validator's format checks (``uri``...), for the Rust validator to call."""
    checker = Draft202012Validator.FORMAT_CHECKER
    return {name: functools.partial(lambda fmt, value: checker.conforms(value, fmt), name) for name in checker.checkers}


def fast_validator(api: str, schema: Mapping[str, Any]) -> jsonschema_rs.Validator | None:
    """A ``jsonschema_rs`` validator of ``schema`` whose ``#/components/...`` refs resolve in spec ``api``,
    or None when it cannot compile the schema (the Python validator then judges every body)."""
    uri = f"urn:spec:{api}"
    wrapped = {"$id": f"{uri}:subschema", "allOf": [_absolutise(schema, uri)]}
    try:
        return jsonschema_rs.Draft202012Validator(wrapped, registry=_registry(api), validate_formats=True,
                                                  formats=_format_checks())
    except (ValueError, jsonschema_rs.ReferencingError):
        return None


def _absolutise(node: Any, uri: str) -> Any:
    """A schema fragment with its local ``#/...`` refs pointing into the document at ``uri``."""
    if isinstance(node, list):
        return [_absolutise(item, uri) for item in node]
    if isinstance(node, dict):
        out = {key: _absolutise(value, uri) for key, value in node.items()}
        if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#"):
            out["$ref"] = uri + node["$ref"]
        return out
    return node


def _relevance(error: ValidationError) -> tuple[int, int]:
    # Prefer the deepest error (most specific field); then errors that are not about a branch choice.
    return (-len(error.path), 0 if error.validator in ("oneOf", "anyOf") else 1)


def _narrow(error: ValidationError) -> ValidationError:
    """For a failed ``oneOf``, descend into the branch whose discriminator matched, if any."""
    while error.validator in ("oneOf", "anyOf") and error.context:
        branches: dict[int, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(int(sub.schema_path[0]), []).append(sub)
        chosen = _matching_branch(branches.values())
        if chosen is None:
            return error
        error = min(chosen, key=lambda sub: (-len(sub.path), sub.validator == "required"))
    return error


def _matching_branch(branches: Iterable[Sequence[ValidationError]]) -> Sequence[ValidationError] | None:
    """The one branch with no discriminator mismatch, or None when that is not unique.

    Errors in a ``oneOf`` context carry paths relative to the ``oneOf``'s instance.
    """
    candidates = []
    for errors in branches:
        mismatched = any(
            e.validator in ("const", "enum") and len(e.path) == 1 and e.path[0] in DISCRIMINATORS for e in errors
        )
        type_mismatch = any(e.validator == "type" and len(e.path) == 0 for e in errors)
        if not mismatched and not type_mismatch:
            candidates.append(errors)
    return candidates[0] if len(candidates) == 1 else None


def _to_api_error(error: ValidationError) -> ApiError:
    path = list(error.absolute_path)
    rule: Any = error.validator_value
    if error.validator == "required":
        present = error.instance if isinstance(error.instance, dict) else {}
        missing = [name for name in rule if name not in present]
        required = field_path([*path, missing[0]]) if missing else field_path(path)
        return ApiError(400, f"Missing required parameter: '{required}'.", param=required)
    param = field_path(path) or None
    where = f"'{param}'" if param else "the request body"
    if error.validator == "oneOf":
        allowed = _discriminator_values(error)
        if allowed:
            key, values = allowed
            name = field_path([*path, key])
            got = error.instance.get(key) if isinstance(error.instance, dict) else None
            return ApiError(400, f"Invalid value for '{name}': {got!r} is not one of {values}.", param=name)
        return ApiError(400, f"Invalid value for {where}: it matches none of the allowed shapes.", param=param)
    return ApiError(400, f"Invalid value for {where}: {error.message}", param=param)


def _discriminator_values(error: ValidationError) -> tuple[str, list[Any]] | None:
    """When every branch of a ``oneOf`` rejected the same discriminator key, that key and its allowed values."""
    values: dict[str, list[Any]] = {}
    for sub in error.context or []:
        if sub.validator in ("const", "enum") and len(sub.path) == 1 and sub.path[0] in DISCRIMINATORS:
            rule: Any = sub.validator_value
            options = [rule] if sub.validator == "const" else list(rule)
            values.setdefault(str(sub.path[0]), []).extend(options)
    branches = {sub.schema_path[0] for sub in error.context or []}
    for key, options in values.items():
        if len(options) >= len(branches):
            return key, options
    return None
