"""One request to the target and everything needed to judge it: the :class:`Exchange`."""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import json
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.from_thread
import httpx
from httpx_sse import EventSource

from conformance import media
from conformance.budget import RunState, call_cost
from conformance.failures import (
    KEY_VARIABLE,
    CheckFailure,
    Evidence,
    TargetError,
    excerpt,
    form_field,
    redact_headers,
)
from conformance.target import Target

#: Largest body read from the target, in bytes; more is cut (a runaway stream must not hang the suite).
MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Exchange:
    """A finished request/response pair; ``headers`` keys are lower case, ``body`` the raw bytes.
    ``request_headers`` are the headers sent, secrets already redacted (``failures.redact_headers``), None when
    not recorded;
    ``form`` the multipart/form-data parts sent (``failures.form_field``), None for any other body."""

    method: str
    url: str
    request_body: Any
    status: int
    headers: Mapping[str, str]
    body: bytes
    request_headers: Mapping[str, str] | None = None
    form: tuple[dict[str, Any], ...] | None = None

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
        """The exchange as report evidence (body cut to an excerpt; media in it summarised, decoded)."""
        keep = ("content-type", "retry-after", "x-request-id")
        headers = {k: v for k, v in self.headers.items() if k in keep or k.startswith("x-ratelimit")}
        sent = None if self.request_headers is None else dict(self.request_headers)
        return Evidence(self.method, self.url, self.request_body, self.status, headers, excerpt(self.body),
                        media=media.summary(self.media_type, self.body), request_headers=sent,
                        form=list(self.form) if self.form is not None else None)


@dataclass(frozen=True)
class TimedEvent:
    """One server-sent event as it arrived: ``t_s`` s after the request was sent, its ``event`` name
    (``message`` when the stream names none) and ``data``."""

    t_s: float
    event: str
    data: str


@dataclass(frozen=True)
class TimedStream:
    """A streamed answer read event by event (httpx-sse): the :class:`Exchange` (its body rebuilt from
    the events), each event with its arrival time, and ``broken``: why the stream ended abnormally
    (the connection dropped mid-body), or None when it ended cleanly."""

    exchange: Exchange
    events: tuple[TimedEvent, ...]
    broken: str | None
    elapsed_s: float

    @property
    def data(self) -> list[str]:
        """The events' ``data`` payloads, in order."""
        return [event.data for event in self.events]


def secrets_of(target: Target) -> dict[str, str]:
    """The target's keys -> the variables a reproduction names them by (the key: ``$CONFORMANCE_API_KEY``)."""
    keys = {"API": target.api_key, "STANDARD_API": target.standard_api_key, "EMPTY_API": target.empty_api_key,
            "SCOPED_API": target.scoped_api_key}
    return {value: KEY_VARIABLE.replace("API", name, 1) for name, value in keys.items() if value}


def form_parts(data: Mapping[str, Any] | None, files: Any) -> tuple[dict[str, Any], ...] | None:
    """httpx's ``data``/``files`` arguments as evidence parts (``failures.form_field``); None when neither."""
    if data is None and files is None:
        return None
    parts = [form_field(name, item) for name, value in (data or {}).items()
             for item in (value if isinstance(value, list | tuple) else [value])]
    for name, value in files.items() if isinstance(files, Mapping) else files or []:
        upload = value if isinstance(value, tuple) else (None, value)
        parts.append(form_field(name, upload[1], upload[0] or name, upload[2] if len(upload) > 2 else None))
    return tuple(parts)


class Recorder:
    """Keeps the last answer an SDK's own HTTP client received (httpx event hooks: pass :attr:`hooks` as the
    ``event_hooks`` of the client the SDK is given), so that a failed SDK check carries the request and answer
    behind it like any other check. The SDK's client may be its own httpx build (openai's ``httpx2``): the
    response is read by its attributes only."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.last: Any = None

    @property
    def hooks(self) -> dict[str, list[Any]]:
        """``event_hooks`` for ``httpx.Client``."""
        return {"response": [self._keep]}

    def _keep(self, response: Any) -> None:
        self.last = response

    def evidence(self) -> Evidence:
        """The last exchange as evidence (the answer's excerpt empty when the SDK streamed it); empty before any."""
        if self.last is None:
            return Evidence()
        request, response = self.last.request, self.last
        try:
            body = bytes(response.content)
        except RuntimeError:  # ResponseNotRead: streamed, read event by event by the SDK
            body = b""
        sent = request.content.decode("utf-8", "replace") if request.content else None
        with contextlib.suppress(ValueError, TypeError):
            sent = json.loads(sent) if sent else None
        exchange = Exchange(request.method, str(request.url), sent, response.status_code,
                            {k.lower(): v for k, v in response.headers.items()}, body,
                            redact_headers(dict(request.headers), secrets_of(self.target)))
        return exchange.evidence()

    @contextlib.contextmanager
    def attached(self) -> Iterator[None]:
        """Give a :class:`CheckFailure` raised inside that names no request this recorder's last exchange."""
        self.last = None
        try:
            yield
        except CheckFailure as failure:
            if not failure.evidence.method:
                failure.evidence = self.evidence()
            raise


#: Most times one request is re-sent after a 429 whose Retry-After the target's patience allows.
MAX_RETRIES = 3


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The Retry-After header in s from now: its delay-seconds, or the time until its HTTP-date (RFC 9110
    10.2.3 allows both; 001 "Errors" names neither), 0 for a date already past; None when absent or
    neither (not a finite number, not a date)."""
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:  # "-0000": RFC 5322's unknown zone; HTTP-dates are GMT
            moment = moment.replace(tzinfo=datetime.UTC)
        seconds = moment.timestamp() - time.time()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


#: Methods RFC 9110 (9.2.2) calls idempotent: a client may send them again when the connection closed
#: before any answer came.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


#: How long the suite's client keeps an idle connection, in s: less than the common servers' idle timeouts
#: (uvicorn's and Node's 5 s, httpx's own default), so a request rarely meets the server closing it.
KEEPALIVE_EXPIRY_S = 2.0


def _closed_while_idle(method: str, exc: httpx.TransportError) -> bool:
    """Whether ``exc`` may be a keep-alive connection the server closed just as the request went out (its idle
    timeout met the request: a clean close, "Server disconnected without sending a response", or a reset when
    the request's bytes were unread), for a request that may be sent again (:data:`IDEMPOTENT_METHODS`).
    A POST is never resent: it may have started a job."""
    if method.upper() not in IDEMPOTENT_METHODS:
        return False
    if isinstance(exc, httpx.RemoteProtocolError):
        return "without sending a response" in str(exc)
    return isinstance(exc, httpx.ReadError | httpx.WriteError)  # a reset: the message may be empty


class TargetClient:
    """Sends requests to a :class:`Target` with its key; use as a context manager.

    Each request first asks the run's :class:`~conformance.budget.RunState` (when given) for its
    budgets and its pacing slot (``target.interval_s`` apart, shared by every process of the run);
    without one, requests are paced ``target.interval_s`` apart by this client. A 429 is honoured:
    the request is sent again after its Retry-After when that is at most ``target.max_retry_wait_s``
    (up to :data:`MAX_RETRIES` times), so a real gateway is not failed for its own rate limits.

    ``target.timeout_s`` bounds a whole answer (connection, headers and body), not each read: the
    requests run on httpx's async client in a background event loop (anyio's blocking portal) under
    ``anyio.fail_after``, so a target that drips a byte every few seconds fails at ``timeout_s``.
    """

    def __init__(self, target: Target, state: RunState | None = None) -> None:
        self.target = target
        self.state = state
        self._portal_context = anyio.from_thread.start_blocking_portal()
        self._portal = self._portal_context.__enter__()
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=20,  # httpx's defaults
                              keepalive_expiry=KEEPALIVE_EXPIRY_S)
        self._client = httpx.AsyncClient(base_url=target.base_url, timeout=target.timeout_s, limits=limits)
        self._last_sent = 0.0

    def __enter__(self) -> TargetClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self._close(exc)

    def close(self) -> None:
        """Close the connection pool and stop the background event loop."""
        self._close((None, None, None))

    def _close(self, exc: tuple[Any, Any, Any]) -> None:
        """Leaving on an exception (a signal stopping the run) cancels a request still in flight instead
        of waiting up to ``timeout_s`` for it."""
        if exc[0] is None:
            with contextlib.suppress(Exception):
                self._portal.call(self._client.aclose)
        with contextlib.suppress(Exception):
            self._portal_context.__exit__(*exc)

    def request(self, method: str, path: str, *, json_body: Any = None,
                headers: Mapping[str, str | None] | None = None,
                auth: str | None = "bearer", content: bytes | None = None, files: Any = None,
                data: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
                honour_429: bool = True) -> Exchange:
        """Send one request and read the whole answer (at most :data:`MAX_BODY_BYTES`).

        ``auth`` is the key's style (``bearer``, ``messages``) or None for no key; ``headers``
        override the defaults (a None value removes that header); ``files``/``data`` send
        multipart/form-data. ``honour_429=False`` returns a 429 as it is (for the rate-limit checks).
        Raises :class:`TargetError` when the target does not answer within ``timeout_s`` (refused,
        timeout, protocol error), and :class:`~conformance.budget.BudgetExhausted` (a pytest skip)
        when the call would pass the run's budget. A GET (any of :data:`IDEMPOTENT_METHODS`) whose keep-alive
        connection the target closed before answering is sent once more, on a new connection.
        """
        merged: dict[str, str | None] = {**(self.target.auth_headers(auth) if auth else {}), **(headers or {})}
        sent = {name: value for name, value in merged.items() if value is not None}
        for _ in range(MAX_RETRIES):
            exchange = self._send(method, path, json_body, sent, content, files, data, params)
            wait = retry_after_s(exchange.headers)
            if not honour_429 or exchange.status != 429 or wait is None or wait > self.target.max_retry_wait_s:
                return exchange
            time.sleep(wait)
        return exchange

    def stream(self, method: str, path: str, *, json_body: Any, headers: Mapping[str, str] | None = None,
               auth: str | None = "bearer", max_events: int = 10_000) -> TimedStream:
        """Send one request whose answer is an SSE stream and read it event by event, recording when each
        arrives (a stream buffered and sent in one piece shows as events arriving together). A non-SSE
        answer is read whole. At most ``max_events`` events are read. Raises :class:`TargetError` when the
        target does not answer at all within ``timeout_s``; a connection dropped mid-stream, or a stream
        still running at ``timeout_s``, is ``broken``, not an error.
        """
        sent = {**(self.target.auth_headers(auth) if auth else {}), **(headers or {})}
        url = str(self._client.base_url.join(path))
        shown = self._shown(self._client.headers, sent, {"content-type": "application/json"})
        self.before_call(method, path, json_body)
        try:
            timed: TimedStream = self._portal.call(self._stream, method, path, json_body, sent, shown, max_events)
            return timed
        except (httpx.HTTPError, TimeoutError) as exc:
            raise TargetError("target_reachable", "an HTTP answer", self._reason(exc),
                              Evidence(method, url, json_body, request_headers=shown)) from exc

    def before_call(self, method: str, path: str, body: Any) -> None:
        """Count a call against the run's budgets and wait for its pacing slot (see the class docstring).
        Raises :class:`~conformance.budget.BudgetExhausted` when the call would pass a budget."""
        if self.state is not None:
            self.state.reserve(call_cost(method, path, body))
            return
        pause = self._last_sent + self.target.interval_s - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        self._last_sent = time.monotonic()

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return f"Timeout: no complete answer within timeout_s ({self.target.timeout_s:g} s)"
        return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__

    async def _stream(self, method: str, path: str, json_body: Any, sent: Mapping[str, str],
                      shown: dict[str, str], max_events: int) -> TimedStream:
        began = time.monotonic()
        events: list[TimedEvent] = []
        broken = None
        status: int | None = None
        answer_headers: dict[str, str] = {}
        url = str(self._client.base_url.join(path))
        with anyio.CancelScope(deadline=anyio.current_time() + self.target.timeout_s) as scope:
            async with self._client.stream(method, path, json=json_body, headers=sent) as response:
                status, answer_headers = response.status_code, {k.lower(): v for k, v in response.headers.items()}
                url = str(response.request.url)
                if "text/event-stream" not in answer_headers.get("content-type", ""):
                    body = await response.aread()
                    exchange = Exchange(method, url, json_body, status, answer_headers, body,
                                        self._shown(response.request.headers))
                    return TimedStream(exchange, (), None, time.monotonic() - began)
                try:
                    async for event in EventSource(response).aiter_sse():
                        events.append(TimedEvent(time.monotonic() - began, event.event, event.data))
                        if len(events) >= max_events:
                            break
                except httpx.HTTPError as exc:  # dropped mid-body: a verdict for the checks, not a crash
                    broken = f"{type(exc).__name__}: {exc}"
        if scope.cancelled_caught:
            if status is None:
                raise TimeoutError
            broken = f"the stream had not ended at timeout_s ({self.target.timeout_s:g} s)"
        assert status is not None
        body = "".join((f"event: {e.event}\n" if e.event != "message" else "") + f"data: {e.data}\n\n"
                       for e in events).encode()
        exchange = Exchange(method, url, json_body, status, answer_headers, body, shown)
        return TimedStream(exchange, tuple(events), broken, time.monotonic() - began)

    def _send(self, method: str, path: str, json_body: Any, headers: Mapping[str, str], content: bytes | None,
              files: Any, data: Mapping[str, Any] | None, params: Mapping[str, Any] | None) -> Exchange:
        url = str(self._client.base_url.join(path))
        form = form_parts(data, files)
        options = dict(json=json_body, content=content, headers=headers, files=files, data=data, params=params)
        try:
            try:
                self.before_call(method, path, json_body)
                exchange: Exchange = self._portal.call(self._fetch, method, path, form, options)
                return exchange
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                if not _closed_while_idle(method, exc):
                    raise
            self.before_call(method, path, json_body)  # once more, on a new connection
            exchange = self._portal.call(self._fetch, method, path, form, options)
            return exchange
        except (httpx.HTTPError, TimeoutError) as exc:
            raise TargetError("target_reachable", "an HTTP answer", self._reason(exc),
                              Evidence(method, url, json_body if json_body is not None else data,
                                       request_headers=self._shown(self._client.headers, headers),
                                       form=list(form) if form is not None else None)) from exc

    async def _fetch(self, method: str, path: str, form: tuple[dict[str, Any], ...] | None,
                     options: dict[str, Any]) -> Exchange:
        with anyio.fail_after(self.target.timeout_s):
            async with self._client.stream(method, path, **options) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= MAX_BODY_BYTES:
                        break
                return Exchange(method, str(response.request.url), options["json"], response.status_code,
                                {k.lower(): v for k, v in response.headers.items()}, bytes(body),
                                self._shown(response.request.headers), form)

    def _shown(self, *headers: Mapping[str, str]) -> dict[str, str]:
        """Request headers (later mappings win) as evidence: lower case, the target's keys redacted."""
        merged = {name.lower(): value for mapping in headers for name, value in mapping.items()}
        return redact_headers(merged, secrets_of(self.target))
