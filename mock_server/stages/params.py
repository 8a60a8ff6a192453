"""Pipeline stage: the operation's query, header and path parameters, coerced and validated.

Each parameter's schema is compiled once at start-up; a query or path value arrives as text and is
converted to the schema's type first (``limit=10`` -> 10). A missing required parameter or a bad
value gets 400 invalid_request_error naming it (``param``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from starlette.requests import Request

from mock_server.errors import ApiError, excerpt
from spec import Operation, load_api, schema_validator


@dataclass(frozen=True)
class Parameter:
    """One compiled parameter: ``location`` is query, header or path."""

    name: str
    location: str
    required: bool
    default: Any
    kind: str
    validator: Draft202012Validator


#: The parameters of an operation that documents none (shared: read-only).
NO_PARAMETERS: Mapping[str, Any] = MappingProxyType({})


class ParameterReader:
    """Reads and validates one operation's parameters; build at start-up, call per request."""

    def __init__(self, operation: Operation) -> None:
        document = load_api(operation.api)
        self.parameters: list[Parameter] = []
        for raw in operation.spec.get("parameters", []):
            spec = _resolve(document, raw)
            if spec.get("in") not in ("query", "header", "path"):
                continue
            schema = _resolve(document, spec.get("schema", {}))
            kind = schema.get("type", "string")
            self.parameters.append(Parameter(
                name=spec["name"], location=spec["in"], required=bool(spec.get("required")),
                default=schema.get("default"), kind=kind if isinstance(kind, str) else "string",
                validator=schema_validator(operation.api, spec.get("schema", {})),
            ))

    def read(self, request: Request) -> Mapping[str, Any]:
        """``{name: value}`` of every parameter given or defaulted. Raises ApiError 400 naming a bad one."""
        if not self.parameters:
            return NO_PARAMETERS
        values: dict[str, Any] = {}
        for parameter in self.parameters:
            source: Mapping[str, str] = {"query": request.query_params, "header": request.headers,
                                         "path": request.path_params}[parameter.location]
            text = source.get(parameter.name.lower() if parameter.location == "header" else parameter.name)
            if text is None:
                if parameter.required:
                    raise ApiError(400, f"Missing required {parameter.location} parameter: '{parameter.name}'.",
                                   param=parameter.name)
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                continue
            value = _convert(text, parameter.kind)
            error = best_match(parameter.validator.iter_errors(value))
            if error is not None:
                raise ApiError(400, f"Invalid value for '{parameter.name}': {excerpt(error.message, 240)}",
                               param=parameter.name)
            values[parameter.name] = value
        return values


def _resolve(document: Mapping[str, Any], node: Mapping[str, Any]) -> Mapping[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def _convert(text: str, kind: str) -> Any:
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text)
    except ValueError:
        return text
    if kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text
