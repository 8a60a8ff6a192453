"""Machine-readable OpenAPI 3.1 documents of the gateways in ``shared/seeds/``, and their loader.

This package is the lowest layer of the project: it knows YAML and ``$ref`` and nothing of HTTP,
the mock or the suite. See ``ARCHITECTURE.md``.
"""

from __future__ import annotations

from spec.loader import (
    SPEC_DIR,
    Operation,
    api_names,
    find_operation,
    load_api,
    operations,
    request_body_schema,
    response_media,
    response_schema,
    schema_validator,
)

__all__ = [
    "SPEC_DIR",
    "Operation",
    "api_names",
    "find_operation",
    "load_api",
    "operations",
    "request_body_schema",
    "response_media",
    "response_schema",
    "schema_validator",
]
