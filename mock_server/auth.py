"""Pipeline stage: the Bearer API key (001 "Endpoints": every endpoint expects a bearer token)."""

from __future__ import annotations

from collections.abc import Collection

from starlette.requests import Request

from mock_server.errors import ApiError


def authenticate(request: Request, keys: Collection[str]) -> str:
    """Return the request's API key; raise ApiError 401 authentication_error if missing or unknown."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if not header:
        raise ApiError(401, "Missing API key: send it as 'Authorization: Bearer <key>'.")
    if scheme.lower() != "bearer" or not key.strip():
        raise ApiError(401, "Malformed Authorization header: expected 'Bearer <key>'.")
    key = key.strip()
    if key not in keys:
        raise ApiError(401, "Invalid API key.", code="invalid_api_key")
    return key
