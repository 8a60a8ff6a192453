"""The mock's one exception type and its rendering in each protocol's error envelope.

Every rejection the mock makes is an :class:`ApiError`; the app renders it in the envelope of the
operation's protocol, so no handler builds an error body by hand and no bad input ends as a 500:

- ``openai`` (001 "Errors"): ``{"error": {"type", "message", "param", "code"}}``;
- ``anthropic`` (the Messages protocol of 003): ``{"type": "error", "error": {"type", "message"}}``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from starlette.responses import JSONResponse

#: error.type per HTTP status, as the table of 001 "Errors" gives it.
ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    410: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    500: "internal_server_error",
    501: "internal_server_error",
    502: "upstream_error",
    503: "upstream_error",
}

#: error.type per HTTP status in the Messages protocol (mirrors Anthropic's error types).
ANTHROPIC_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    501: "api_error",
    502: "api_error",
    503: "overloaded_error",
    529: "overloaded_error",
}

#: Longest quote of a client's value in an error message, in characters (a bounded echo).
MAX_EXCERPT_CHARS = 80


def field_path(path: Iterable[Any]) -> str:
    """Render a JSON path as the OpenAI ``param`` style: ``messages[0].content``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def excerpt(text: str, limit: int = MAX_EXCERPT_CHARS) -> str:
    """``text`` cut to at most ``limit`` characters (an ellipsis and the length cut marking a cut), so
    that an error message never echoes a client's huge value whole."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit} more characters)"


#: Envelope styles the mock renders; an operation's ``x-mirrors`` picks one (default openai).
STYLES = ("openai", "anthropic")


def style_of(operation_spec: Mapping[str, Any]) -> str:
    """The error envelope of an operation (its spec object): its ``x-mirrors`` protocol if it is one of
    :data:`STYLES`, else ``openai`` (001 "Errors")."""
    mirrors = operation_spec.get("x-mirrors")
    return mirrors if mirrors in STYLES else "openai"


class ApiError(Exception):
    """A request the mock answers with an error envelope.

    ``status`` is the HTTP status; ``type`` defaults to the documented error.type for it;
    ``param`` names the offending request field (``messages[0].content``) where there is one;
    ``headers`` are extra response headers (e.g. ``Retry-After`` in s).
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.explicit_type = type
        self.type = type or ERROR_TYPES.get(status, "internal_server_error")
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self, style: str = "openai") -> dict[str, Any]:
        """The error envelope of ``style`` (see the module docstring)."""
        if style == "anthropic":
            kind = self.explicit_type or ANTHROPIC_ERROR_TYPES.get(self.status, "api_error")
            return {"type": "error", "error": {"type": kind, "message": self.message}}
        return {"error": {"type": self.type, "message": self.message, "param": self.param, "code": self.code}}

    def response(self, style: str = "openai") -> JSONResponse:
        """The JSON response carrying :meth:`body`, ``status`` and ``headers``."""
        return JSONResponse(self.body(style), status_code=self.status, headers=self.headers)


#: Retry-After (s) of a 503 answered while the shared state store is away.
STATE_RETRY_AFTER_S = 1


def state_unavailable(reason: object) -> ApiError:
    """The 503 a fleet replica answers while its shared state store (Redis, ``fleet/store.py``) is away,
    in the envelope with code ``state_unavailable``, ``Retry-After`` :data:`STATE_RETRY_AFTER_S`
    s (001 "Errors": 503). Nothing was charged or counted for the request."""
    return ApiError(503, f"The mock's shared state is unavailable; retry shortly. ({reason})", code="state_unavailable",
                    headers={"Retry-After": str(STATE_RETRY_AFTER_S)})
