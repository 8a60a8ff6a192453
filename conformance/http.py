"""One request to the target and everything needed to judge it: the :class:`Exchange`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from conformance.failures import Evidence, TargetError, excerpt
from conformance.target import Target

#: Seconds to wait for a target's answer before the exchange is a failure.
TIMEOUT_S = 60.0
#: Largest body read from the target, in bytes; more is cut (a runaway stream must not hang the suite).
MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Exchange:
    """A finished request/response pair; ``headers`` keys are lower case, ``body`` the raw bytes."""

    method: str
    url: str
    request_body: Any
    status: int
    headers: Mapping[str, str]
    body: bytes

    @property
    def media_type(self) -> str:
        """The response Content-Type without parameters, lower case (``application/json``)."""
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        """The body parsed as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None

    def sse_data(self) -> list[str]:
        """The ``data:`` payloads of a ``text/event-stream`` body, in order (multi-line data joined by \\n)."""
        events: list[str] = []
        lines: list[str] = []
        for raw in self.body.decode("utf-8", "replace").splitlines():
            if raw == "":
                if lines:
                    events.append("\n".join(lines))
                lines = []
            elif raw.startswith("data:"):
                lines.append(raw[5:].removeprefix(" "))
        if lines:
            events.append("\n".join(lines))
        return events

    def evidence(self) -> Evidence:
        """The exchange as report evidence (body cut to an excerpt)."""
        keep = ("content-type", "retry-after", "x-request-id")
        headers = {k: v for k, v in self.headers.items() if k in keep or k.startswith("x-ratelimit")}
        return Evidence(self.method, self.url, self.request_body, self.status, headers, excerpt(self.body))


class TargetClient:
    """Sends requests to a :class:`Target` with its Bearer key; use as a context manager."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self._client = httpx.Client(base_url=target.base_url, timeout=TIMEOUT_S)

    def __enter__(self) -> TargetClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def request(self, method: str, path: str, *, json_body: Any = None, headers: Mapping[str, str] | None = None,
                auth: bool = True, content: bytes | None = None) -> Exchange:
        """Send one request and read the whole answer (at most :data:`MAX_BODY_BYTES`).

        ``auth=False`` sends no Authorization header; ``headers`` override the defaults.
        Raises :class:`TargetError` when the target does not answer (refused, timeout, protocol error).
        """
        sent: dict[str, str] = {"Authorization": f"Bearer {self.target.api_key}"} if auth else {}
        sent.update(headers or {})
        url = str(self._client.base_url.join(path))
        try:
            with self._client.stream(method, path, json=json_body, content=content, headers=sent) as response:
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) >= MAX_BODY_BYTES:
                        break
                return Exchange(method, url, json_body, response.status_code,
                                {k.lower(): v for k, v in response.headers.items()}, bytes(body))
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise TargetError("target_reachable", "an HTTP answer", reason,
                              Evidence(method, url, json_body)) from exc
