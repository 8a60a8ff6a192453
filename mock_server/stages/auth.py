"""Pipeline stage: the API key, read where the operation's security scheme puts it.

Schemes come from the spec's ``components.securitySchemes``: ``http``/``bearer`` reads
``Authorization: Bearer <key>`` (001 "Endpoints": every endpoint expects a bearer token);
``apiKey`` in a header reads that header (the Messages protocol's ``x-api-key``, 003).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from mock_server.errors import ApiError


@dataclass(frozen=True)
class KeySource:
    """Where a key may be: ``header`` name, and whether it carries a ``Bearer`` prefix."""

    header: str
    bearer: bool


def key_sources(requirements: Sequence[Mapping[str, Any]], schemes: Mapping[str, Any]) -> tuple[KeySource, ...]:
    """The places an operation accepts its key, from its security requirements (alternatives, in order).

    Raises ValueError for a scheme the mock cannot read (e.g. OAuth2), at start-up.
    """
    sources = []
    for requirement in requirements:
        for name in requirement:
            scheme = schemes[name]
            if scheme.get("type") == "http" and scheme.get("scheme", "").lower() == "bearer":
                sources.append(KeySource("authorization", bearer=True))
            elif scheme.get("type") == "apiKey" and scheme.get("in") == "header":
                sources.append(KeySource(scheme["name"].lower(), bearer=False))
            else:
                raise ValueError(f"security scheme {name} is not one the mock reads")
    return tuple(sources)


def authenticate(request: Request, sources: Sequence[KeySource], keys: Collection[str]) -> str:
    """Return the request's API key; raise ApiError 401 authentication_error if missing or unknown."""
    headers = request.headers
    for source in sources:  # the first place that holds a key
        value = headers.get(source.header)
        if value:
            break
    else:
        where = " or ".join("'Authorization: Bearer <key>'" if s.bearer else f"'{s.header}'" for s in sources)
        raise ApiError(401, f"Missing API key: send it as {where}.")
    key = value
    if source.bearer:
        scheme, _, key = value.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise ApiError(401, "Malformed Authorization header: expected 'Bearer <key>'.")
    key = key.strip()
    if key not in keys:
        raise ApiError(401, "Invalid API key.", code="invalid_api_key")
    return key
