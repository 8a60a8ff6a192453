"""Typed readers of the operating figures the specs carry as ``x-`` extensions.

The mock's simulation and the suite's checks read the figures through these functions (credits,
rate limits, tiers, providers, URL lifetimes, upload limits, retry delays, media types), never
from constants of their own. The vocabulary itself is defined in ``shared.yaml``'s description
and, as JSON Schemas, in :mod:`spec.vocabulary`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from spec.loader import Operation, request_body_schema, resolve, response_object


@dataclass(frozen=True)
class CreditCost:
    """What one successful call charges: ``credits`` and the approximate price in US dollars."""

    credits: int
    usd: float


@dataclass(frozen=True)
class RateLimit:
    """``requests`` per ``window_s`` seconds where documented; else None and ``configurable`` is True.

    ``dimensions`` names what is counted (``rpm``, ``tpm``) where a document says so.
    """

    requests: int | None
    window_s: int | None
    dimensions: tuple[str, ...] = ()
    configurable: bool = False


@dataclass(frozen=True)
class Provider:
    """One value of a video operation's ``provider`` field (004 "Video: Image-to-Video (I2V)").

    ``duration_s`` in s, ``width``/``height`` in px, ``credits`` per call, ``usd`` approximate.
    """

    name: str
    duration_s: float
    width: int
    height: int
    quality: str
    credits: int
    usd: float
    premium: bool


def credit_cost(operation: Operation, body: Mapping[str, Any] | None = None) -> CreditCost | None:
    """The credits a successful call of ``operation`` with request ``body`` charges; None if it is free.

    For a per-field price, an omitted field takes its schema default. Raises KeyError for a field value
    the spec prices not.
    """
    figure = operation.spec.get("x-credits")
    if figure is None:
        return None
    if "costs" in figure:
        field = figure["by"]
        value = (body or {}).get(field, _request_default(operation, field))
        figure = figure["costs"][value]
    return CreditCost(int(figure["cost"]), float(figure["usd"]))


def rate_limit(operation: Operation) -> RateLimit | None:
    """The rate limit of ``operation``; None if no document implies one."""
    figure = operation.spec.get("x-rate-limit")
    if figure is None:
        return None
    return RateLimit(
        figure.get("requests"),
        figure.get("window_s"),
        tuple(figure.get("dimensions", ())),
        bool(figure.get("configurable", False)),
    )


def tier(operation: Operation) -> str | None:
    """The account tier ``operation`` requires (``premium``), or None."""
    value = operation.spec.get("x-tier")
    return None if value is None else str(value)


def providers(operation: Operation) -> dict[str, Provider]:
    """``{provider name: Provider}`` of ``operation``; empty if it has no provider choice."""
    out: dict[str, Provider] = {}
    for name, facts in operation.spec.get("x-providers", {}).items():
        size = facts["resolution"]
        out[name] = Provider(
            name,
            float(facts["duration_s"]),
            int(size["width"]),
            int(size["height"]),
            str(facts["quality"]),
            int(facts["credits"]),
            float(facts["usd"]),
            bool(facts["premium"]),
        )
    return out


def hosted_url_ttl_s(operation: Operation) -> int | None:
    """How long, in s, a hosted result URL of ``operation`` stays downloadable; None if not stated."""
    return _int_or_none(operation.spec.get("x-hosted-url-ttl-s"))


def upload_limit_bytes(operation: Operation) -> int | None:
    """The largest file part, in bytes, a multipart ``operation`` accepts; None if no limit is stated."""
    return _int_or_none(operation.spec.get("x-upload-limit-bytes"))


def retry_after_s(operation: Operation, status: int) -> int | None:
    """How long, in s, the document tells clients to wait after a ``status`` answer; None if it does not."""
    response = response_object(operation, status)
    return None if response is None else _int_or_none(response.get("x-retry-after-s"))


def response_media_type(operation: Operation, body: Mapping[str, Any] | None = None, status: int = 200) -> str | None:
    """The Content-Type a ``status`` answer to ``body`` has when a request field selects it (``x-media-type-by``)."""
    response = response_object(operation, status)
    figure = None if response is None else response.get("x-media-type-by")
    if figure is None:
        return None
    field = figure["field"]
    value = (body or {}).get(field, _request_default(operation, field))
    media_type = figure["media_types"].get(value)
    return None if media_type is None else str(media_type)


def _request_default(operation: Operation, field: str) -> Any:
    """The schema default of request ``field`` in whichever media type the request body has."""
    for media_type in operation.spec.get("requestBody", {}).get("content", {}):
        schema = request_body_schema(operation, media_type)
        prop = resolve(operation.api, schema or {}).get("properties", {}).get(field)
        if prop is not None:
            return resolve(operation.api, prop).get("default")
    return None


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
