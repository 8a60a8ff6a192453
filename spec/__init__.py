"""Machine-readable OpenAPI 3.1 documents of the gateways in ``shared/seeds/``, and their loader.

This package is the lowest layer of the project: it knows YAML and ``$ref`` and nothing of HTTP,
the mock or the suite. See ``ARCHITECTURE.md``. Modules: ``loader`` (bundling, operations),
``vocabulary`` (the ``x-`` vocabulary as JSON Schemas), ``extensions`` (typed readers of the
figures), ``fields`` (field lookup by path), ``coverage`` (regenerates ``COVERAGE.md``).
"""

from __future__ import annotations

import importlib.metadata

from spec.loader import (
    SPEC_DIR,
    Operation,
    api_names,
    find_operation,
    load_api,
    load_yaml,
    operations,
    request_body_schema,
    resolve,
    response_media,
    response_object,
    response_schema,
    schema_validator,
)


def project_version() -> str:
    """The installed version of the project (``pyproject.toml``'s), which both CLIs' ``--version`` print;
    ``unknown`` when the package is not installed."""
    try:
        return importlib.metadata.version("gateway-conformance")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


__all__ = [
    "SPEC_DIR",
    "Operation",
    "api_names",
    "find_operation",
    "load_api",
    "load_yaml",
    "operations",
    "project_version",
    "request_body_schema",
    "resolve",
    "response_media",
    "response_object",
    "response_schema",
    "schema_validator",
]
