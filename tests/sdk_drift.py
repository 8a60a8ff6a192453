"""What the official SDKs can send, read from their request parameter types, and how spec/ takes it.

:func:`sdk_fields` walks an SDK ``*Params`` TypedDict (``typing.get_type_hints``, ``get_args``) into
``{field path: Literal values}`` — paths as :mod:`spec.fields` writes them (``reasoning.effort``,
``messages[].content[].type``; an empty set for a field without Literal values) — and
:func:`drift` compares that with an operation's request schema: top-level fields the spec lacks,
and Literal values that the spec's schema at the same path refuses (a value is accepted when any
alternative of any schema the path leads to validates it).
"""

from __future__ import annotations

import collections.abc
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import typing_extensions

from spec import find_operation, schema_validator
from spec.fields import alternatives, find_field, request_schemas, top_level_fields

#: Deepest nesting walked (TypedDicts refer to each other; a path is walked once per TypedDict).
MAX_DEPTH = 12
_WRAPPERS = {typing.Annotated, typing.Required, typing.NotRequired, typing_extensions.Required,
             typing_extensions.NotRequired, typing_extensions.ReadOnly}
_SEQUENCES = {collections.abc.Iterable, collections.abc.Sequence, list, collections.abc.Iterator}


def sdk_fields(params: Any) -> dict[str, set[Any]]:
    """``{path: Literal values}`` of every field an SDK TypedDict ``params`` (or a union of them) can send."""
    out: dict[str, set[Any]] = {}
    _walk(params, "", out, set(), 0)
    return out


def _walk(hint: Any, path: str, out: dict[str, set[Any]], seen: set[tuple[Any, str]], depth: int) -> None:
    if depth > MAX_DEPTH:
        return
    origin = get_origin(hint)
    if origin in _WRAPPERS:
        _walk(get_args(hint)[0], path, out, seen, depth)
    elif origin in (Union, types.UnionType):
        for member in get_args(hint):
            _walk(member, path, out, seen, depth)
    elif origin is Literal:
        out.setdefault(path, set()).update(get_args(hint))
    elif typing_extensions.is_typeddict(hint):
        if (hint, path) in seen:
            return
        seen.add((hint, path))
        for name, inner in get_type_hints(hint, include_extras=True).items():
            child = f"{path}.{name}" if path else name
            out.setdefault(child, set())
            _walk(inner, child, out, seen, depth + 1)
    elif (origin in _SEQUENCES or "SequenceNotStr" in str(origin or hint)) and get_args(hint):
        _walk(get_args(hint)[0], path + "[]", out, seen, depth + 1)


@dataclass
class Drift:
    """One operation's differences: top-level ``fields`` the spec lacks, and ``values`` (path -> Literal
    values the spec refuses there)."""

    fields: set[str] = field(default_factory=set)
    values: dict[str, set[Any]] = field(default_factory=dict)


def drift(api: str, operation_id: str, params: Any) -> Drift:
    """The differences between SDK TypedDict ``params`` and ``operation_id``'s request body schema."""
    operation = find_operation(api, operation_id)
    ((_, schema),) = request_schemas(operation).items()
    sent = sdk_fields(params)
    found = Drift(fields={path for path in sent if "." not in path and "[" not in path}
                  - set(top_level_fields(api, schema)))
    for path, values in sent.items():
        matches = find_field(api, schema, path)
        if not values or not matches:
            continue  # no Literal here, or a field the spec does not describe (counted at top level)
        branches = [node for match in matches for node in alternatives(api, match.schema)]
        refused = {value for value in values if not any(_accepts(api, node, value) for node in branches)}
        if refused:
            found.values[path] = refused
    return found


def _accepts(api: str, schema: Mapping[str, Any], value: Any) -> bool:
    return bool(schema_validator(api, dict(schema)).is_valid(value))
