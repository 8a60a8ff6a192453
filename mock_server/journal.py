"""The request journal: what reached the mock, for a suite that checks the gateway in front of it.

A gateway under test forwards the suite's requests to the mock (its upstream); the suite then asks
the mock, through the control API (``GET /_mock/journal``), what arrived: method, path,
operationId, headers (secrets redacted), the parsed body (uploads as a digest), the answer's
status and body and, for a stream, when each event was sent. The journal is a bounded ring
(``journal.size`` entries, the oldest forgotten first); the answer bodies it keeps are bounded too
(``journal.body_bytes`` in all: past it, the oldest entries' bodies are replaced by their digest).

Correlation survives any gateway: the suite writes a unique nonce into the prompt text (the one
field every gateway forwards) and filters the journal by it (:func:`JournalEntry.mentions`);
``X-Request-Id`` and the trace id of ``traceparent`` (W3C Trace Context) filter too where a
gateway forwards them.

Recording costs one small object and one ring append per request; everything a reader wants
(redaction, digests, the JSON of bodies, nonce search) is worked out when the journal is read.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from starlette.datastructures import UploadFile
from starlette.responses import Response, StreamingResponse

from mock_server import jsoncodec
from mock_server.sim.scripts import strings

#: Request headers whose values the journal never shows (credentials).
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "x-api-key", "api-key", "cookie",
                            "x-goog-api-key"})
#: What a redacted header value reads.
REDACTED = "[redacted]"
#: Default ring size, in entries.
DEFAULT_SIZE = 2000
#: Default budget of answer bodies kept in the journal, in bytes (32 MiB).
DEFAULT_BODY_BYTES = 32 * 1024 * 1024
#: Longest text of one stream event shown by :meth:`JournalEntry.as_dict`, in characters.
EVENT_TEXT_CHARS = 4000


class JournalEntry:
    """One request and its answer. Times: ``time`` s since the epoch when the pipeline took the
    request; ``started_ms`` (the answer's start) and each stream event's ``t_ms`` in ms after it."""

    __slots__ = ("_clock", "body", "complete", "events", "headers", "id", "method", "operation_id", "path",
                 "query", "response_body", "response_digest", "response_type", "script", "started_ms", "status",
                 "time", "uploads")

    def __init__(self, entry_id: int, scope: Mapping[str, Any], operation_id: str, body: Any,
                 clock: float, received: float) -> None:
        self.id = entry_id
        self.time = received
        self._clock = clock
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: bytes = scope.get("query_string", b"")
        self.headers: Sequence[tuple[bytes, bytes]] = scope["headers"]
        self.operation_id = operation_id
        self.body = body
        self.uploads: dict[str, list[dict[str, Any]]] | None = None
        self.status = 0
        self.response_type = ""
        self.response_body: bytes | None = None
        self.response_digest: tuple[int, str] | None = None
        self.started_ms = 0.0
        self.events: list[tuple[float, bytes]] | None = None
        self.complete = True
        self.script: str | None = None

    def header(self, name: str) -> str | None:
        """The first value of request header ``name`` (lower case), or None."""
        wanted = name.encode("latin-1")
        return next((value.decode("latin-1") for key, value in self.headers if key.lower() == wanted), None)

    @property
    def request_id(self) -> str | None:
        """The ``X-Request-Id`` the request carried, if any."""
        return self.header("x-request-id")

    @property
    def trace_id(self) -> str | None:
        """The trace id of the request's ``traceparent`` (``00-<trace id>-<span id>-<flags>``), if any."""
        parts = (self.header("traceparent") or "").strip().split("-")
        return parts[1].lower() if len(parts) == 4 and len(parts[1]) == 32 else None

    def mentions(self, nonce: str) -> bool:
        """Whether ``nonce`` occurs in any string of the request body (or its query string)."""
        if nonce.encode() in self.query:
            return True
        return any(nonce in text for text in strings(self.body))

    def elapsed_ms(self) -> float:
        """ms since the pipeline took the request (on the monotonic clock)."""
        return (time.monotonic() - self._clock) * 1000.0

    def as_dict(self) -> dict[str, Any]:
        """The entry as the control API shows it (secrets redacted, bodies as JSON where they are)."""
        response: dict[str, Any] = {"status": self.status, "content_type": self.response_type,
                                    "started_ms": round(self.started_ms, 3)}
        if self.response_body is not None:
            response["bytes"] = len(self.response_body)
            response["sha256"] = hashlib.sha256(self.response_body).hexdigest()
            response["body"] = _shown(self.response_body, self.response_type)
            response["body_kept"] = True
        elif self.response_digest is not None:
            response["bytes"], response["sha256"] = self.response_digest
            response["body_kept"] = False
        if self.events is not None:
            response["events"] = [{"t_ms": round(t_ms, 3), "data": data.decode("utf-8", "replace")[:EVENT_TEXT_CHARS]}
                                  for t_ms, data in self.events]
            response["complete"] = self.complete
        return {
            "id": self.id, "time": self.time, "method": self.method, "path": self.path,
            "query": self.query.decode("latin-1"), "operation_id": self.operation_id,
            "headers": redacted(self.headers), "request_id": self.request_id, "trace_id": self.trace_id,
            "body": self.body, "uploads": self.uploads, "response": response, "script": self.script,
        }


class Journal:
    """The bounded ring of :class:`JournalEntry` (see the module docstring).

    ``size`` is the most entries kept; ``body_bytes`` the most answer-body bytes kept over all of
    them (a body larger than that alone is kept as its digest only).
    """

    def __init__(self, size: int = DEFAULT_SIZE, body_bytes: int = DEFAULT_BODY_BYTES) -> None:
        self.size = size
        self.body_bytes = body_bytes
        self.entries: deque[JournalEntry] = deque(maxlen=size)
        self._ids = itertools.count(1)
        self._kept = 0  # bytes of the answer bodies held, oldest first in _holders (a ring entry, or one
        self._holders: deque[JournalEntry] = deque()  # pushed out of it: freed when the budget needs room)

    def open(self, scope: Mapping[str, Any], operation_id: str, body: Any, clock: float) -> JournalEntry:
        """A new entry for a request taken at ``clock`` (``time.monotonic()``), appended to the ring."""
        entry = JournalEntry(next(self._ids), scope, operation_id, body, clock,
                             time.time() - (time.monotonic() - clock))
        self.entries.append(entry)
        return entry

    def close(self, entry: JournalEntry, response: Response,
              uploads: Mapping[str, Sequence[UploadFile]] | None = None) -> Response:
        """Record ``response`` in ``entry``; returns the response to send (a stream is wrapped so that each
        event's send time is recorded)."""
        entry.status = response.status_code
        entry.started_ms = entry.elapsed_ms()
        entry.response_type = response.headers.get("content-type", "")
        if uploads:
            entry.uploads = {name: [_upload_digest(upload) for upload in items] for name, items in uploads.items()}
        if isinstance(response, StreamingResponse):
            entry.events = []
            entry.complete = False
            response.body_iterator = self._recorded(entry, response.body_iterator)
        else:
            self._keep(entry, bytes(getattr(response, "body", b"")))
        return response

    def _keep(self, entry: JournalEntry, body: bytes) -> None:
        if len(body) > self.body_bytes:
            entry.response_digest = (len(body), hashlib.sha256(body).hexdigest())
            return
        entry.response_body = body
        self._kept += len(body)
        self._holders.append(entry)
        while self._kept > self.body_bytes and self._holders:
            oldest = self._holders.popleft()
            if oldest.response_body is not None:
                self._kept -= len(oldest.response_body)
                oldest.response_digest = (len(oldest.response_body), hashlib.sha256(oldest.response_body).hexdigest())
                oldest.response_body = None

    async def _recorded(self, entry: JournalEntry, chunks: AsyncIterable[Any]) -> AsyncIterator[Any]:
        events = entry.events if entry.events is not None else []
        try:
            async for chunk in chunks:
                yield chunk
                data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
                if len(events) < 100_000:
                    events.append((entry.elapsed_ms(), data))
            entry.complete = True
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()

    def clear(self) -> int:
        """Forget every entry; returns how many there were."""
        count = len(self.entries)
        self.entries.clear()
        self._holders.clear()
        self._kept = 0
        return count

    def find(self, entry_id: int) -> JournalEntry | None:
        """The entry with ``entry_id`` if it is still in the ring."""
        return next((entry for entry in self.entries if entry.id == entry_id), None)

    def select(self, *, nonce: str | None = None, operation_id: str | None = None, request_id: str | None = None,
               trace_id: str | None = None, since_id: int = 0, limit: int = 100) -> list[JournalEntry]:
        """The newest ``limit`` entries matching every filter given, oldest first."""
        found: list[JournalEntry] = []
        for entry in reversed(self.entries):
            if entry.id <= since_id:
                break
            if operation_id is not None and entry.operation_id != operation_id:
                continue
            if request_id is not None and entry.request_id != request_id:
                continue
            if trace_id is not None and entry.trace_id != trace_id.lower():
                continue
            if nonce is not None and not entry.mentions(nonce):
                continue
            found.append(entry)
            if len(found) >= limit:
                break
        found.reverse()
        return found


def redacted(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Request headers as ``{name: value}`` (repeated names joined by ``, ``), credentials redacted:
    ``Authorization: Bearer [redacted]`` keeps the scheme, any other secret is :data:`REDACTED`."""
    shown: dict[str, str] = {}
    for raw_name, raw_value in headers:
        name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
        if name in SECRET_HEADERS:
            scheme, _, rest = value.partition(" ")
            value = f"{scheme} {REDACTED}" if rest and name.endswith("authorization") else REDACTED
        shown[name] = f"{shown[name]}, {value}" if name in shown else value
    return shown


def _shown(body: bytes, content_type: str) -> Any:
    """An answer body as the journal shows it: parsed JSON for JSON, else None (bytes and sha256 say it)."""
    if "json" in content_type:
        try:
            return jsoncodec.loads(body)
        except ValueError:
            return body.decode("utf-8", "replace")[:EVENT_TEXT_CHARS]
    if content_type.startswith("text/"):
        return body.decode("utf-8", "replace")[:EVENT_TEXT_CHARS]
    return None


def _upload_digest(upload: UploadFile) -> dict[str, Any]:
    """``{"filename", "content_type", "bytes", "sha256"}`` of one uploaded file (read from its start)."""
    digest = hashlib.sha256()
    size = 0
    handle = upload.file
    try:
        position = handle.tell()
        handle.seek(0)
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
        handle.seek(position)
    except (OSError, ValueError):
        pass
    return {"filename": upload.filename, "content_type": upload.content_type, "bytes": size,
            "sha256": digest.hexdigest()}
