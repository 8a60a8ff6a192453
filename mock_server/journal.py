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

Recording costs one tuple and one ring append per request. The tuple holds only flat values (str,
bytes, numbers, tuples of them), which the garbage collector stops walking after one pass, so a
full ring costs the other requests nothing; answer bodies, uploads' digests and stream events sit
in side tables keyed by entry id. Everything a reader wants (redaction, digests, the JSON of
bodies, nonce search) is worked out when the journal is read (:class:`JournalEntry`).
"""

from __future__ import annotations

import hashlib
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from itertools import chain
from typing import Any

from starlette.datastructures import UploadFile
from starlette.responses import Response, StreamingResponse

from mock_server import jsoncodec
from mock_server.sim.scripts import strings
from mock_server.stages.body import Body

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


#: Most request headers flattened with ``sum`` (its copying grows with the square of their number).
SUMMED_HEADERS = 32
#: The side tables are pruned of entries the ring let go once per this many + 1 records (a mask).
PRUNE_EVERY = 255
#: Fields of a ring record, in order (a plain tuple: see the module docstring).
_ID, _CLOCK, _STARTED, _METHOD, _PATH, _QUERY, _HEADERS, _OPERATION, _RAW, _DATA, _STATUS, _TYPE, _SCRIPT = range(13)


class JournalEntry:
    """One journal record as a reader sees it. Times: ``time`` s since the epoch when the pipeline took
    the request; ``started_ms`` (the answer's start) and each stream event's ``t_ms`` in ms after it.
    ``response_body`` is the answer while the journal keeps it; ``dropped`` ``(bytes, sha256)`` once the
    body budget let it go; ``events`` ``[(t_ms, bytes)]`` and ``complete`` for a stream."""

    def __init__(self, record: tuple[Any, ...], journal: Journal) -> None:
        self._record = record
        self.id: int = record[_ID]
        self.method: str = record[_METHOD]
        self.path: str = record[_PATH]
        self.query: bytes = record[_QUERY]
        fields = record[_HEADERS].split(b"\n") if record[_HEADERS] else []
        self.headers: tuple[tuple[bytes, bytes], ...] = tuple(zip(fields[::2], fields[1::2], strict=True))
        self.operation_id: str | None = record[_OPERATION]
        """The spec operation the request matched; None for a path or method that matches none (a 404 or 405)."""
        self.status: int = record[_STATUS]
        self.content_type: str = record[_TYPE] or ""
        """The answer's media type, without parameters (``application/json``)."""
        self.script: str | None = record[_SCRIPT]
        self.response_body: bytes | None = journal.bodies.get(self.id)
        self.dropped: tuple[int, str] | None = journal.dropped.get(self.id)
        stream = journal.streams.get(self.id)
        self.events: list[tuple[float, bytes]] | None = stream[0] if stream is not None else None
        self.complete: bool = bool(stream[1]) if stream is not None else True
        self.uploads: dict[str, list[dict[str, Any]]] | None = journal.uploads.get(self.id)

    @property
    def body(self) -> Any:
        """The request body, parsed (None when it was refused before it was read)."""
        raw = self._record[_RAW]
        if raw is None:
            return self._record[_DATA]
        try:
            return jsoncodec.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")[:EVENT_TEXT_CHARS]

    @property
    def time(self) -> float:
        """When the pipeline took the request, in s since the epoch."""
        return float(time.time() - (time.monotonic() - self._record[_CLOCK]))

    @property
    def started_ms(self) -> float:
        """When the answer was ready to send, in ms after the request was taken."""
        return float((self._record[_STARTED] - self._record[_CLOCK]) * 1000.0)

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
        wanted, raw = nonce.encode(), self._record[_RAW]
        if wanted in self.query or (raw is not None and wanted in raw):
            return True
        if raw is not None and b"\\u" not in raw:
            return False  # no escapes: the bytes said it all
        return any(nonce in text for text in strings(self.body))

    def as_dict(self) -> dict[str, Any]:
        """The entry as the control API shows it (secrets redacted, bodies as JSON where they are)."""
        response: dict[str, Any] = {"status": self.status, "content_type": self.content_type,
                                    "started_ms": round(self.started_ms, 3)}
        body = self.response_body
        if body is not None:
            response.update(bytes=len(body), sha256=hashlib.sha256(body).hexdigest(),
                            body=_shown(body, self.content_type), body_kept=True)
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
    """The bounded ring of request records (see the module docstring).

    ``size`` is the most entries kept; ``body_bytes`` the most answer-body bytes kept over all of
    them (a body larger than that alone is kept as its digest only); ``ids`` the entry ids, increasing
    (default 1, 2, 3...; a fleet's replicas use :func:`fleet_entry_ids`). Side tables by entry id:
    ``bodies`` (answers kept, oldest first), ``dropped`` (digests of answers let go), ``streams``
    (``[events, complete]``), ``uploads`` (digests of uploaded files).
    """

    def __init__(self, size: int = DEFAULT_SIZE, body_bytes: int = DEFAULT_BODY_BYTES,
                 ids: Iterator[int] | None = None) -> None:
        self.size = size
        self.body_bytes = body_bytes
        self.records: deque[tuple[Any, ...]] = deque(maxlen=size)
        # OrderedDicts, not dicts: a dict emptied from the front makes ``next(iter(d))`` step over every
        # deleted slot (4 us per request at 2,000 entries); an OrderedDict finds its oldest key at once
        self.bodies: OrderedDict[int, bytes] = OrderedDict()
        self.dropped: OrderedDict[int, tuple[int, str]] = OrderedDict()
        self.streams: OrderedDict[int, list[Any]] = OrderedDict()
        self.uploads: OrderedDict[int, dict[str, list[dict[str, Any]]]] = OrderedDict()
        self._kept = 0
        self._ids = ids if ids is not None else itertools.count(1)

    @property
    def entries(self) -> list[JournalEntry]:
        """Every entry in the ring, oldest first."""
        return [JournalEntry(record, self) for record in self.records]

    def record(self, scope: Mapping[str, Any], operation_id: str | None, body: Body, clock: float, response: Response,
               script: str | None = None) -> Response:
        """Append an entry for a request taken at ``clock`` (``time.monotonic()``) and answered ``response``;
        returns the response to send (a stream is wrapped so that each event's send time is recorded).
        ``body``'s uploads are digested now (before the pipeline closes them); ``script`` is the
        scripted step that answered, if any."""
        entry_id = next(self._ids)
        raw = body.raw
        # the headers as one bytes object (names and values joined by LF, which neither may hold): a ring
        # of thousands of requests' header tuples kept 20 objects each alive, and cost ~5% of throughput.
        # Flattened by sum() where they are a few tuples (ASGI's usual form): twice as fast as chain's iterator
        headers = scope["headers"]
        try:
            flat = sum(headers, ()) if len(headers) <= SUMMED_HEADERS else chain.from_iterable(headers)
        except TypeError:  # an iterable that is no list, or pairs that are no tuples (ASGI allows both)
            flat = chain.from_iterable(headers)
        self.records.append((entry_id, clock, time.monotonic(), scope["method"], scope["path"],
                             scope["query_string"], b"\n".join(flat), operation_id,
                             raw,
                             body.data if raw is None else None, response.status_code,
                             response.media_type or _content_type(response), script))
        if not entry_id & PRUNE_EVERY:
            self._prune()
        if body.files:
            self.uploads[entry_id] = {name: [_upload_digest(upload) for upload in items]
                                      for name, items in body.files.items()}
        if isinstance(response, StreamingResponse):
            self.streams[entry_id] = stream = [[], False]
            response.body_iterator = _recorded(stream, clock, response.body_iterator)
            return response
        answer: bytes = getattr(response, "body", b"")
        if len(answer) > self.body_bytes:
            self.dropped[entry_id] = (len(answer), hashlib.sha256(answer).hexdigest())
            return response
        self.bodies[entry_id] = answer
        self._kept += len(answer)
        while self._kept > self.body_bytes and self.bodies:  # the oldest bodies go first
            oldest, kept = self.bodies.popitem(last=False)
            self._kept -= len(kept)
            self.dropped[oldest] = (len(kept), hashlib.sha256(kept).hexdigest())
        return response

    def _prune(self) -> None:
        """Drop the side tables' rows of entries the ring has let go (their ids are below the oldest's;
        the tables are in id order)."""
        oldest = self.records[0][_ID] if self.records else 1 << 62
        bodies = self.bodies
        while bodies and next(iter(bodies)) < oldest:
            self._kept -= len(bodies.popitem(last=False)[1])
        for table in (self.dropped, self.streams, self.uploads):
            while table and next(iter(table)) < oldest:
                table.popitem(last=False)

    def clear(self) -> int:
        """Forget every entry; returns how many there were."""
        count = len(self.records)
        for table in (self.records, self.bodies, self.dropped, self.streams, self.uploads):
            table.clear()
        self._kept = 0
        return count

    def find(self, entry_id: int) -> JournalEntry | None:
        """The entry with ``entry_id`` if it is still in the ring."""
        record = next((record for record in self.records if record[_ID] == entry_id), None)
        return JournalEntry(record, self) if record is not None else None

    def select(self, *, nonce: str | None = None, operation_id: str | None = None, request_id: str | None = None,
               trace_id: str | None = None, since_id: int = 0, limit: int = 100) -> list[JournalEntry]:
        """The newest ``limit`` entries matching every filter given, oldest first."""
        found: list[JournalEntry] = []
        for record in reversed(self.records):
            if record[_ID] <= since_id:
                break
            if operation_id is not None and record[_OPERATION] != operation_id:
                continue
            entry = JournalEntry(record, self)
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


def fleet_entry_ids() -> Iterator[int]:
    """Entry ids for a replica of a fleet: increasing, and in time order across replicas (the wall clock's
    milliseconds times 1024 plus a counter's low bits), so that ``since_id`` and sorting by id work on
    the journal gathered from every replica. Below 2**53 (exact in any JSON reader) until the year 2248."""
    last, count = 0, 0
    while True:
        count += 1
        last = max(last + 1, time.time_ns() // 1_000_000 * 1024 + (count & 1023))
        yield last


async def _recorded(stream: list[Any], clock: float, chunks: AsyncIterable[Any]) -> AsyncIterator[Any]:
    """``chunks`` passed on, each one's send time (ms after ``clock``) and bytes appended to ``stream[0]``
    (at most 100,000); ``stream[1]`` becomes True when the stream ends whole."""
    events: list[tuple[float, bytes]] = stream[0]
    try:
        async for chunk in chunks:
            yield chunk
            if len(events) < 100_000:
                events.append(((time.monotonic() - clock) * 1000.0, chunk.encode() if isinstance(chunk, str)
                               else bytes(chunk)))
        stream[1] = True
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


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


def _content_type(response: Response) -> str:
    """The Content-Type header of an answer built without a ``media_type``."""
    return next((value.decode("latin-1") for key, value in response.raw_headers if key == b"content-type"), "")


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
