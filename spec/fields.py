"""Find the schema of one field of a request or response by its path, through ``$ref``, ``allOf``,
``oneOf`` and ``anyOf``.

A path is dotted property names, ``[]`` stepping into array items: ``data[].url``,
``messages[].content[].source.type``. Where a schema offers alternatives (``oneOf`` branches,
``allOf`` parts) a path may match in several of them, so a lookup answers every match, each a
:class:`FieldMatch`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from spec.loader import Operation, resolve

_BRANCHES = ("allOf", "oneOf", "anyOf")


@dataclass(frozen=True)
class FieldMatch:
    """One schema the path leads to; ``required`` says whether the enclosing object requires it."""

    schema: Mapping[str, Any]
    required: bool


def alternatives(api: str, schema: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """``schema`` and every schema its ``allOf``/``oneOf``/``anyOf`` offer, refs resolved, depth first."""
    node = resolve(api, schema)
    yield node
    for keyword in _BRANCHES:
        for branch in node.get(keyword, []):
            yield from alternatives(api, branch)


def find_field(api: str, schema: Mapping[str, Any], path: str) -> list[FieldMatch]:
    """Every schema that field ``path`` of ``schema`` has in ``api``'s bundle; ``[]`` if none."""
    current = [FieldMatch(schema, True)]
    for step in _steps(path):
        found: list[FieldMatch] = []
        for match in current:
            for node in alternatives(api, match.schema):
                if step == "[]":
                    if "items" in node:
                        found.append(FieldMatch(node["items"], True))
                elif step in node.get("properties", {}):
                    found.append(FieldMatch(node["properties"][step], step in node.get("required", [])))
        current = found
    return [FieldMatch(resolve(api, match.schema), match.required) for match in current]


def top_level_fields(api: str, schema: Mapping[str, Any]) -> dict[str, bool]:
    """``{property name: required}`` of an object schema, over all its alternatives, in spec order."""
    fields: dict[str, bool] = {}
    for node in alternatives(api, schema):
        required = set(node.get("required", []))
        for name in node.get("properties", {}):
            fields[name] = fields.get(name, False) or name in required
    return fields


def request_schemas(operation: Operation) -> dict[str, Mapping[str, Any]]:
    """``{media type: schema}`` of ``operation``'s request body; empty if it takes none."""
    content = operation.spec.get("requestBody", {}).get("content", {})
    return {media_type: dict(media.get("schema", {})) for media_type, media in content.items()}


def _steps(path: str) -> list[str]:
    """``"data[].url"`` -> ``["data", "[]", "url"]``."""
    steps: list[str] = []
    for part in path.split("."):
        name = part.replace("[]", "")
        if name:
            steps.append(name)
        steps.extend(["[]"] * part.count("[]"))
    return steps
