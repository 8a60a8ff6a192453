"""The gateway in the middle: the suite talks to a gateway whose upstream provider is our mock.

The suite marks each request with a nonce inside its prompt text (the one field every gateway
forwards), may first script the upstream's answer to requests carrying that nonce ("the next N
answer 503"), sends the request to the gateway, then reads the upstream mock's request journal for
the nonce (``GET /_mock/journal?nonce=``, ``mock_server/journal.py``): what the gateway actually
sent upstream, and how the upstream answered. A :class:`Relay` holds all of it for the checks of
``conformance/checks/upstream.py``.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import httpx

from conformance.failures import Evidence, TargetError, excerpt
from conformance.http import Exchange, TimedStream
from conformance.target import Upstream

#: How long the journal is polled for a request that has not reached it yet, in s.
JOURNAL_PATIENCE_S = 3.0
#: Longest excerpt of one upstream body in the report, in characters.
UPSTREAM_EXCERPT_CHARS = 800


def new_nonce() -> str:
    """A fresh correlation nonce, ``cnf-<16 hex>``, to write into a prompt."""
    return "cnf-" + secrets.token_hex(8)


def correlation_headers(nonce: str) -> dict[str, str]:
    """``X-Request-Id: <nonce>`` and a W3C ``traceparent`` whose trace id carries the nonce's hex: a second
    correlation where a gateway forwards them (none need to)."""
    trace = nonce.removeprefix("cnf-").rjust(32, "0")
    return {"X-Request-Id": nonce, "traceparent": f"00-{trace}-{trace[:16]}-01"}


class UpstreamError(TargetError):
    """The upstream mock's control API did not answer as it should (the set-up, not the gateway, is wrong)."""


class UpstreamControl:
    """A client of the upstream mock's control API (``Authorization: Bearer <control key>``)."""

    def __init__(self, upstream: Upstream, timeout_s: float = 10.0) -> None:
        self.upstream = upstream
        self._client = httpx.Client(base_url=upstream.control_url, timeout=timeout_s,
                                    headers={"Authorization": f"Bearer {upstream.control_key}"})

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            answer = self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise UpstreamError("upstream_reachable", "the upstream mock's control API to answer",
                                f"{type(exc).__name__}: {exc}", Evidence(method, path)) from exc
        if answer.status_code != 200:
            raise UpstreamError("upstream_reachable", f"200 from {method} {path} of the upstream mock",
                                f"{answer.status_code}: {answer.text[:300]}", Evidence(method, path))
        return answer.json()

    def script(self, nonce: str, steps: Sequence[Mapping[str, Any]], operation_id: str | None = None) -> str:
        """Put a script in force for requests carrying ``nonce``; returns its id."""
        match: dict[str, Any] = {"nonce": nonce}
        if operation_id is not None:
            match["operation_id"] = operation_id
        script: dict[str, Any] = self._call("POST", "/_mock/scripts", json={"match": match, "steps": list(steps)})
        return str(script["id"])

    def drop_script(self, script_id: str) -> None:
        """Delete a script if it is still in force (its steps may all be used already)."""
        with contextlib.suppress(httpx.HTTPError):
            self._client.delete(f"/_mock/scripts/{script_id}")

    def response_body(self, entry_id: int) -> bytes:
        """The raw answer body of journal entry ``entry_id`` (while the upstream keeps it), else b""."""
        try:
            answer = self._client.get(f"/_mock/journal/{entry_id}/response")
        except httpx.HTTPError:
            return b""
        return answer.content if answer.status_code == 200 else b""

    def journal_of(self, operation_id: str, limit: int = 200) -> list[dict[str, Any]]:
        """The newest ``limit`` journal entries of one operation, oldest first."""
        entries: list[dict[str, Any]] = self._call("GET", "/_mock/journal",
                                                   params={"operation_id": operation_id, "limit": limit})["entries"]
        return entries

    def journal(self, nonce: str, *, by: str = "nonce", patience_s: float = JOURNAL_PATIENCE_S) -> list[dict[str, Any]]:
        """The journal entries of requests carrying ``nonce`` in their body (``by="nonce"``) or as their
        ``X-Request-Id`` (``by="request_id"``), oldest first; waits up to ``patience_s`` for the first
        one (a gateway may still be forwarding)."""
        deadline = time.monotonic() + patience_s
        while True:
            entries: list[dict[str, Any]] = self._call("GET", "/_mock/journal",
                                                       params={by: nonce, "limit": 100})["entries"]
            if entries or time.monotonic() >= deadline:
                return entries
            time.sleep(0.1)


@dataclass
class Relay:
    """One request through the gateway and what reached its upstream.

    ``sent`` is the body the suite sent, ``answer`` the gateway's answer (None when it did not
    answer: ``failure`` says why), ``stream`` the timed events of a streamed answer, ``arrived`` the
    upstream journal entries carrying ``nonce`` (oldest first), ``steps`` the upstream script, if
    any. Checks record figures (ms, attempts) in ``measured``.
    """

    scenario: str
    nonce: str
    sent: Any
    upstream: Upstream
    answer: Exchange | None = None
    stream: TimedStream | None = None
    failure: str | None = None
    arrived: list[dict[str, Any]] = field(default_factory=list)
    steps: Sequence[Mapping[str, Any]] = ()
    measured: dict[str, Any] = field(default_factory=dict)
    unanswered: Evidence | None = None
    """The request the gateway did not answer (its headers redacted), when ``failure`` is set."""
    upstream_bodies: dict[int, bytes] = field(default_factory=dict)
    """Raw answer bodies of upstream journal entries by id (binary media), and -1: media the client downloaded."""

    @property
    def bodies(self) -> list[Any]:
        """The request bodies that reached the upstream, oldest first."""
        return [entry.get("body") for entry in self.arrived]

    def view(self) -> dict[str, Any]:
        """What the report shows: what was sent against what arrived upstream (excerpts) and the figures."""
        return {
            "scenario": self.scenario, "nonce": self.nonce, "sent": _cut(self.sent),
            "scripted": [dict(step) for step in self.steps],
            "arrived": [{"operation_id": entry.get("operation_id"), "path": entry.get("path"),
                         "status": entry.get("response", {}).get("status"), "script": entry.get("script"),
                         "body": _cut(entry.get("body"))} for entry in self.arrived],
            "client_status": self.answer.status if self.answer is not None else None,
            "measured": {k: v for k, v in self.measured.items() if not k.startswith("video_record")},
        }

    def evidence(self) -> Evidence:
        """The gateway's answer as evidence, with the upstream view attached."""
        if self.answer is None:
            asked = self.unanswered or Evidence("POST", "", self.sent)
            return replace(asked, response_excerpt=self.failure or "", upstream=self.view())
        return replace(self.answer.evidence(), upstream=self.view())


def _cut(value: Any) -> Any:
    """A body as report evidence: long strings (base64 media) shortened, the whole bounded."""
    shortened = _shorten(value)
    text = repr(shortened)
    return shortened if len(text) <= UPSTREAM_EXCERPT_CHARS * 4 else excerpt(text)


def _shorten(value: Any, depth: int = 0) -> Any:
    if depth > 20:
        return "..."
    if isinstance(value, str):
        return value if len(value) <= 200 else f"{value[:120]}... ({len(value)} characters)"
    if isinstance(value, Mapping):
        return {key: _shorten(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_shorten(item, depth + 1) for item in value[:50]]
    return value


def all_strings(value: Any) -> Iterable[str]:
    """Every string value in a parsed JSON body, depth first (iterative)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
