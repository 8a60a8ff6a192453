"""The ``x-`` vocabulary of the specs as JSON Schemas, and a checker of its use.

``shared.yaml``'s description ("Conventions", "Operating figures") defines the vocabulary in words;
:data:`VOCABULARY` says the same as one JSON Schema per key plus where the key may stand, so that
:func:`vocabulary_problems` can prove every use in a spec file is well formed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from jsonschema import Draft202012Validator  # type: ignore[import-untyped, unused-ignore]

#: The seed documents an ``x-source`` may name (``shared/seeds/``).
SEED_DOCUMENTS = (
    "000_3c33fb39be356c7f.txt",
    "001_f8c89c9bc29d4e32.txt",
    "002_bc006cd1ed3cd735.txt",
    "003_30590426e2108158.txt",
    "004_1e36542453c15fdd.txt",
)

_COUNT = {"type": "integer", "minimum": 1}
_PRICE = {
    "type": "object",
    "required": ["cost", "usd"],
    "additionalProperties": False,
    "properties": {"cost": {"type": "integer", "minimum": 0}, "usd": {"type": "number", "minimum": 0}},
}
_NAMES = {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}

#: ``x-`` key -> (where it may stand, JSON Schema of its value). Places: ``operation``, ``response``
#: (a response object), ``media`` (a media type object) or ``any``.
VOCABULARY: Mapping[str, tuple[str, Mapping[str, Any]]] = {
    "x-source": (
        "any",
        {
            "type": "object",
            "required": ["document", "section"],
            "additionalProperties": False,
            "properties": {"document": {"enum": list(SEED_DOCUMENTS)}, "section": {"type": "string", "minLength": 1}},
        },
    ),
    "x-mirrors": ("any", {"enum": ["openai", "anthropic"]}),
    "x-undocumented": ("any", {"type": "string", "minLength": 1}),
    "x-slashes": ("any", {"const": True}),
    "x-sse": (
        "media",
        {
            "type": "object",
            "required": ["item"],
            "additionalProperties": False,
            "properties": {
                "item": {"type": "object"},
                "terminator": {"type": "string", "minLength": 1},
                "event": {"type": "string", "minLength": 1},
                "first": _NAMES,
                "last": _NAMES,
            },
        },
    ),
    "x-media-type-by": (
        "response",
        {
            "type": "object",
            "required": ["field", "media_types"],
            "additionalProperties": False,
            "properties": {
                "field": {"type": "string", "minLength": 1},
                "media_types": {"type": "object", "minProperties": 1, "additionalProperties": {"type": "string"}},
            },
        },
    ),
    "x-credits": (
        "operation",
        {
            "oneOf": [
                _PRICE,
                {
                    "type": "object",
                    "required": ["by", "costs"],
                    "additionalProperties": False,
                    "properties": {
                        "by": {"type": "string", "minLength": 1},
                        "costs": {"type": "object", "minProperties": 1, "additionalProperties": _PRICE},
                    },
                },
            ],
        },
    ),
    "x-rate-limit": (
        "operation",
        {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "requests": _COUNT,
                "window_s": _COUNT,
                "dimensions": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": ["rpm", "tpm"]}},
                "configurable": {"const": True},
            },
            "oneOf": [{"required": ["requests", "window_s"]}, {"required": ["configurable"]}],
        },
    ),
    "x-tier": ("operation", {"enum": ["premium"]}),
    "x-providers": (
        "operation",
        {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["duration_s", "resolution", "quality", "credits", "usd", "premium"],
                "additionalProperties": False,
                "properties": {
                    "duration_s": {"type": "number", "exclusiveMinimum": 0},
                    "resolution": {
                        "type": "object",
                        "required": ["width", "height"],
                        "additionalProperties": False,
                        "properties": {"width": _COUNT, "height": _COUNT},
                    },
                    "quality": {"type": "string", "minLength": 1},
                    "credits": {"type": "integer", "minimum": 0},
                    "usd": {"type": "number", "minimum": 0},
                    "premium": {"type": "boolean"},
                },
            },
        },
    ),
    "x-hosted-url-ttl-s": ("operation", _COUNT),
    "x-upload-limit-bytes": ("operation", _COUNT),
    "x-retry-after-s": ("response", _COUNT),
}


def vocabulary_problems(document: Mapping[str, Any]) -> list[str]:
    """Every misuse of the vocabulary in an OpenAPI ``document``: unknown ``x-`` keys, keys in the wrong
    place, values that do not match :data:`VOCABULARY`. Each problem names its JSON pointer.
    """
    problems: list[str] = []
    for pointer, key, value in _extensions(document, ()):
        where = "/" + "/".join(pointer)
        if key not in VOCABULARY:
            problems.append(f"{where}: unknown extension {key}")
            continue
        place, schema = VOCABULARY[key]
        if place != "any" and _place(pointer) != place:
            problems.append(f"{where}: {key} belongs on a {place} object")
        for error in Draft202012Validator(schema).iter_errors(value):
            problems.append(f"{where}/{key}: {error.message}")
    return problems


def _extensions(node: Any, pointer: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str, Any]]:
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from _extensions(item, (*pointer, str(index)))
    elif isinstance(node, Mapping):
        names_only = bool(pointer) and pointer[-1] in ("properties", "headers", "examples", "encoding")
        for key, value in node.items():
            if str(key).startswith("x-") and not names_only:
                yield pointer, str(key), value
            elif key != "value":  # example values are data, not spec
                yield from _extensions(value, (*pointer, str(key)))


def _place(pointer: tuple[str, ...]) -> str:
    if len(pointer) == 3 and pointer[0] == "paths":
        return "operation"
    if len(pointer) >= 2 and pointer[-2] == "content":
        return "media"
    if (len(pointer) == 5 and pointer[0] == "paths" and pointer[3] == "responses") or (
        len(pointer) == 3 and pointer[:2] == ("components", "responses")
    ):
        return "response"
    return "other"
