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
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Mapping
from typing import Any

from starlette.datastructures import UploadFile
from starlette.responses import Response, StreamingResponse

from mock_server import jsoncodec
from mock_server.body import Body
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
    """One request and its answer, kept as flat values (strings, bytes, tuples: objects the garbage
    collector need not walk, so a full ring costs the other requests nothing); bodies are parsed when
    the journal is read. Times: ``time`` s since the epoch when the pipeline took the request;
    ``started_ms`` (the answer's start) and each stream event's ``t_ms`` in ms after it."""

    __slots__ = (
        "_clock",
        "_data",
        "_raw",
        "_started",
        "complete",
        "content_type",
        "dropped",
        "events",
        "headers",
        "id",
        "method",
        "operation_id",
        "path",
        "query",
        "response_body",
        "script",
        "status",
        "uploads",
    )

    def __init__(self, entry_id: int, scope: Mapping[str, Any], operation_id: str, body: Body, clock: float,
                 response: Response) -> None:
        self.id = entry_id
        self._clock = clock
        self._started = time.monotonic()
        self.method: str = scope["method"]
        self.path: str = scope["path"]
        self.query: bytes = scope.get("query_string", b"")
        self.headers: tuple[tuple[bytes, bytes], ...] = tuple(scope["headers"])
        self.operation_id = operation_id
        self._raw = body.raw
        self._data = body.data if body.raw is None else None
        self.status: int = response.status_code
        self.content_type = ""
        for key, value in response.raw_headers:
            if key == b"content-type":
                self.content_type = value.decode("latin-1")
                break
        self.response_body: bytes | None = None
        """The answer's body while it is kept (never a stream's: its events are)."""
        self.dropped: tuple[int, str] | None = None
        """(bytes, sha256) of an answer whose body is no longer kept."""
        self.events: list[tuple[float, bytes]] | None = None
        self.complete = True
        self.uploads: dict[str, list[dict[str, Any]]] | None = None
        self.script: str | None = None

    @property
    def body(self) -> Any:
        """The request body, parsed (None when it was refused before it was read)."""
        if self._raw is None:
            return self._data
        try:
            return jsoncodec.loads(self._raw)
        except ValueError:
            return self._raw.decode("utf-8", "replace")[:EVENT_TEXT_CHARS]

    @property
    def time(self) -> float:
        """When the pipeline took the request, in s since the epoch."""
        return time.time() - (time.monotonic() - self._clock)

    @property
    def started_ms(self) -> float:
        """When the answer was ready to send, in ms after the request was taken."""
        return (self._started - self._clock) * 1000.0

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
        wanted = nonce.encode()
        if wanted in self.query or (self._raw is not None and wanted in self._raw):
            return True
        if self._raw is not None and b"\\u" not in self._raw:
            return False  # no escapes: the bytes said it all
        return any(nonce in text for text in strings(self.body))

    def as_dict(self) -> dict[str, Any]:
        """The entry as the control API shows it (secrets redacted, bodies as JSON where they are)."""
        content_type = self.content_type
        response: dict[str, Any] = {"status": self.status, "content_type": content_type,
                                    "started_ms": round(self.started_ms, 3)}
        body = self.response_body
        if body is not None:
            response.update(bytes=len(body), sha256=hashlib.sha256(body).hexdigest(), body=_shown(body, content_type),
                            body_kept=True)
        elif self.dropped is not None:
            response.update(bytes=self.dropped[0], sha256=self.dropped[1], body_kept=False)
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
        self._kept = 0  # bytes of the answer bodies held by ring entries, which _holders lists oldest first
        self._holders: deque[JournalEntry] = deque()

    def record(self, scope: Mapping[str, Any], operation_id: str, body: Body, clock: float, response: Response,
               script: str | None = None) -> Response:
        """Append an entry for a request taken at ``clock`` (``time.monotonic()``) and answered ``response``;
        returns the response to send (a stream is wrapped so that each event's send time is recorded).
        ``body``'s uploads are digested now (before the pipeline closes them); ``script`` is the
        scripted step that answered, if any."""
        entry = JournalEntry(next(self._ids), scope, operation_id, body, clock, response)
        entry.script = script
        if len(self.entries) == self.size:  # the oldest leaves the ring: free its body too
            oldest = self.entries.popleft()
            if oldest.response_body is not None:
                self._holders.popleft()  # holders are in ring order, so the oldest holder is it
                self._kept -= len(oldest.response_body)
        self.entries.append(entry)
        if body.files:
            entry.uploads = {name: [_upload_digest(upload) for upload in items] for name, items in body.files.items()}
        if isinstance(response, StreamingResponse):
            entry.events = []
            entry.complete = False
            response.body_iterator = self._recorded(entry, response.body_iterator)
            return response
        answer = getattr(response, "body", b"")
        if len(answer) > self.body_bytes:
            entry.dropped = (len(answer), hashlib.sha256(answer).hexdigest())
            return response
        entry.response_body = bytes(answer)
        self._kept += len(answer)
        self._holders.append(entry)
        while self._kept > self.body_bytes and self._holders:
            oldest = self._holders.popleft()
            kept = oldest.response_body or b""
            self._kept -= len(kept)
            oldest.dropped = (len(kept), hashlib.sha256(kept).hexdigest())
            oldest.response_body = None
        return response

    async def _recorded(self, entry: JournalEntry, chunks: AsyncIterable[Any]) -> AsyncIterator[Any]:
        events = entry.events if entry.events is not None else []
        try:
            async for chunk in chunks:
                yield chunk
                data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
                if len(events) < 100_000:
                    events.append(((time.monotonic() - entry._clock) * 1000.0, data))
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
