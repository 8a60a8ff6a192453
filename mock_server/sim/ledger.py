"""The credits ledger: one balance per API key and a usage record per charged call, in SQLite.

004 "Multimodal API": "All endpoints consume credits"; a call whose balance is short is refused
with 402 "Insufficient credits" (004 "Error Codes"), so a charge checks the balance and writes the
usage record in ONE ``BEGIN IMMEDIATE`` transaction: it either debits and records, or does nothing.

Storage is stdlib :mod:`sqlite3`: ``":memory:"`` (one app's lifetime) or a file path (WAL mode, so it
survives the process and several processes may share it). One connection serves every thread,
serialised by a lock; each synchronous call is a short transaction, so callers on an event loop may
run it in a worker thread (``anyio.to_thread.run_sync``). An account is opened, with the ledger's
starting balance, the first time a charge or top-up touches its key; reopening a file keeps every balance.

Group commit: :meth:`Ledger.charge_async` queues a charge for the ledger's ONE writer thread, which
takes everything queued (up to :data:`MAX_BATCH` charges) and applies it, under the same lock, in ONE
``BEGIN IMMEDIATE ... COMMIT``, each charge inside its own ``SAVEPOINT``: a charge that fails
(:class:`InsufficientCredits`, any error) is rolled back alone and raised to its caller only. Charges
are applied in the order they were queued (so per key too), and a caller is answered only after the
COMMIT of its batch: an answered charge survives the process being killed (WAL, ``synchronous=NORMAL``).
If the batch itself cannot commit, every charge of it fails, each caller getting the error.

Tables (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`):

- ``accounts(api_key, balance, used)``: credits left and credits spent so far;
- ``usage(seq, usage_id, api_key, endpoint_type, credits, status, created_at, balance_after, result)``:
  ``created_at`` in s since the epoch, ``result`` a JSON object (``video_url``, ``duration_seconds``...).

A generation that runs as an asynchronous job (videos: ``sim/jobs.py``) is charged with status
``queued``; :meth:`Ledger.update` moves it to ``processing``, then ``completed`` or ``failed``, merging
what the job produced into ``result`` (004 "For AI Agents": poll usage records "to check generation
status"). :meth:`Ledger.fail_unfinished` marks the jobs a stopped process left unfinished as failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import queue
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Credits a key starts with when no configuration says otherwise (the mock's choice: 004 gives no
#: figure); enough for every documented call at least once (T2V, the dearest, costs 1000).
DEFAULT_STARTING_CREDITS = 10_000
#: The ``endpoint_type`` values of usage records (004 "Usage History": the filter's values).
ENDPOINT_TYPES = ("tts", "image", "video_i2v", "video_t2v", "video_cogvideox")
#: Status of a generation that has finished.
COMPLETED = "completed"
#: Status of an asynchronous job charged and waiting for a GPU.
QUEUED = "queued"
#: Status of an asynchronous job being generated.
PROCESSING = "processing"
#: Status of an asynchronous job that ended without output (its ``result`` has an ``error``).
FAILED = "failed"
#: Statuses of a job that has not ended yet.
UNFINISHED = (QUEUED, PROCESSING)
#: Version of the table layout, stored in ``PRAGMA user_version``.
SCHEMA_VERSION = 1
#: Largest integer SQLite stores; larger skip/limit values are clamped to it.
SQLITE_MAX_INT = 2**63 - 1
#: Seconds a write waits for another process's lock on a shared file before failing.
BUSY_TIMEOUT_S = 5.0
#: Most charges one group-commit transaction applies; the rest wait for the next batch. Bounds how
#: long a batch holds the lock (synchronous calls wait for it) to a few ms.
MAX_BATCH = 64
#: Seconds the writer thread waits for a charge before it ends (the next charge starts another), so
#: an idle ledger holds no thread and a ledger dropped without :meth:`Ledger.close` can be collected.
WRITER_IDLE_S = 1.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    api_key TEXT PRIMARY KEY,
    balance INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS usage (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    usage_id TEXT NOT NULL UNIQUE,
    api_key TEXT NOT NULL,
    endpoint_type TEXT NOT NULL,
    credits INTEGER NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    balance_after INTEGER NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_by_key ON usage (api_key, endpoint_type, seq);
"""
_COLUMNS = "usage_id, api_key, endpoint_type, credits, status, created_at, balance_after, result"


class InsufficientCredits(Exception):
    """A charge of ``needed`` credits against a ``balance`` that is smaller; nothing was charged.

    004 "Error Codes": 402 "Insufficient credits".
    """

    def __init__(self, api_key: str, needed: int, balance: int) -> None:
        super().__init__(f"{needed} credits needed, {balance} left")
        self.api_key = api_key
        self.needed = needed
        self.balance = balance


@dataclass(frozen=True)
class Account:
    """A key's ``balance`` (credits left) and ``used`` (credits charged so far)."""

    balance: int
    used: int


@dataclass(frozen=True)
class UsageRecord:
    """One charged call: ``credits`` charged, ``balance_after`` the key's balance right after it,
    ``created_at`` in s since the epoch, ``result`` what the call produced (JSON-serialisable)."""

    usage_id: str
    api_key: str
    endpoint_type: str
    credits: int
    status: str
    created_at: float
    balance_after: int
    result: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class UsagePage:
    """A page of a key's usage records, newest first, and ``total``: how many match the filter."""

    items: list[UsageRecord]
    total: int


@dataclass(frozen=True, slots=True)
class _Queued:
    """A charge waiting for the writer thread, and where its answer goes (a future of ``loop``)."""

    api_key: str
    endpoint_type: str
    credits: int
    payload: str
    status: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[UsageRecord]


def new_usage_id() -> str:
    """A fresh ``usage_<24 hex>`` id, random so ids stay unique in a file reused across runs."""
    return f"usage_{secrets.token_hex(12)}"


class Ledger:
    """Balances and usage records of API keys in SQLite (see the module docstring).

    ``path`` is a file path or ``":memory:"``; ``starting_credits`` is the balance of a key not seen
    before, unless ``starting_by_key`` names the key. ``clock`` (s since the epoch) and ``new_id`` are
    injectable for tests; ``trace``, if given, is called with each SQL statement the connection runs
    (any thread: the caller's or the writer's). Raises ``sqlite3.Error`` if the file cannot be opened.

    Thread-safe: every method may be called from any thread (one lock serialises the connection);
    :meth:`charge_async` from a coroutine on any asyncio loop. ``commits`` counts the transactions
    this object committed (schema set-up included); a group-commit batch is one.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        starting_credits: int = DEFAULT_STARTING_CREDITS,
        *,
        starting_by_key: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = new_usage_id,
        trace: Callable[[str], object] | None = None,
    ) -> None:
        if starting_credits < 0:
            raise ValueError("starting_credits must be >= 0")
        self.path = str(path)
        self.starting_credits = starting_credits
        self.starting_by_key = dict(starting_by_key or {})
        self._clock = clock
        self._new_id = new_id
        self._lock = threading.Lock()
        self.commits = 0
        self._queue: queue.SimpleQueue[_Queued | None] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._writer_guard = threading.Lock()  # the writer's start and stop, and the closed flag
        self._closed = False
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        if trace is not None:
            self._db.set_trace_callback(trace)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process in WAL mode
        with self._lock, self._transaction() as db:  # executescript would COMMIT first: one statement each
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Apply the charges already queued, stop the writer thread, close the database; the ledger is
        unusable afterwards (its methods raise ``sqlite3.ProgrammingError``)."""
        with self._writer_guard:
            self._closed = True
            writer, self._writer = self._writer, None
            if writer is not None:
                self._queue.put(None)
        if writer is not None:
            writer.join()
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` (the write lock up front) ... COMMIT, or ROLLBACK on any exception (the
        COMMIT's included; none when SQLite already rolled back). Call with the lock held."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        self.commits += 1

    def account(self, api_key: str) -> Account:
        """The key's :class:`Account`; a key never charged has the starting balance and 0 used."""
        with self._lock:
            row = self._db.execute("SELECT balance, used FROM accounts WHERE api_key = ?", (api_key,)).fetchone()
        if row is None:  # not opened yet: the balance it will open with
            return Account(self.starting_by_key.get(api_key, self.starting_credits), 0)
        return Account(int(row[0]), int(row[1]))

    def balance(self, api_key: str) -> int:
        """Credits the key has left."""
        return self.account(api_key).balance

    def charge(self, api_key: str, endpoint_type: str, credits: int, result: Mapping[str, Any] | None = None,
               status: str = COMPLETED) -> UsageRecord:
        """Debit ``credits`` from the key and record the call, atomically; returns the new record.

        Raises :class:`InsufficientCredits` (nothing charged, nothing recorded) when the balance is
        smaller than ``credits``; ValueError for an ``endpoint_type`` not in :data:`ENDPOINT_TYPES`
        or negative ``credits``. One transaction of its own; from an event loop prefer :meth:`charge_async`.
        """
        payload = _payload(endpoint_type, credits, result)
        with self._lock, self._transaction() as db:
            return self._apply_charge(db, api_key, endpoint_type, credits, payload, status)

    async def charge_async(self, api_key: str, endpoint_type: str, credits: int,
                           result: Mapping[str, Any] | None = None, status: str = COMPLETED) -> UsageRecord:
        """:meth:`charge` by group commit (see the module docstring): queued for the writer thread,
        applied with the charges queued alongside in one transaction, answered after its COMMIT.

        Same record and errors as :meth:`charge` (ValueError at once, before queueing). A charge once
        queued is applied even if the awaiting task is cancelled, as one run in a worker thread was.
        Raises ``sqlite3.ProgrammingError`` on a closed ledger, any ``sqlite3.Error`` of its batch.
        """
        payload = _payload(endpoint_type, credits, result)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[UsageRecord] = loop.create_future()
        queued = _Queued(api_key, endpoint_type, credits, payload, status, loop, future)
        with self._writer_guard:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            if self._writer is None:
                self._writer = threading.Thread(target=self._write_batches, name="ledger-writer", daemon=True)
                self._writer.start()
            self._queue.put(queued)
        return await future

    def _write_batches(self) -> None:
        """The writer thread: take what is queued (at most :data:`MAX_BATCH`), commit it, answer; until
        ``None`` (:meth:`close`) is taken or nothing came for :data:`WRITER_IDLE_S`."""
        while True:
            try:
                first = self._queue.get(timeout=WRITER_IDLE_S)
            except queue.Empty:
                with self._writer_guard:  # charge_async queues under this guard: nothing can slip in
                    if self._queue.empty():
                        if self._writer is threading.current_thread():
                            self._writer = None
                        return
                continue
            if first is None:
                return
            batch, stop = [first], False
            while len(batch) < MAX_BATCH:
                try:
                    queued = self._queue.get_nowait()
                except queue.Empty:
                    break
                if queued is None:
                    stop = True
                    break
                batch.append(queued)
            self._answer(batch, self._commit_batch(batch))
            if stop:
                return

    def _commit_batch(self, batch: list[_Queued]) -> list[UsageRecord | Exception]:
        """Apply ``batch`` in one transaction, each charge in a SAVEPOINT; the outcome of each, in order.
        When the transaction fails as a whole (BEGIN, COMMIT, or SQLite rolling it all back), nothing
        of it is kept and every charge's outcome is that error."""
        outcomes: list[UsageRecord | Exception] = []
        try:
            with self._lock, self._transaction() as db:
                for queued in batch:
                    db.execute("SAVEPOINT charge")
                    try:
                        outcomes.append(self._apply_charge(db, queued.api_key, queued.endpoint_type,
                                                           queued.credits, queued.payload, queued.status))
                    except Exception as error:
                        if not db.in_transaction:  # SQLite rolled the whole transaction back (e.g. disk full)
                            raise
                        db.execute("ROLLBACK TO charge")
                        outcomes.append(error)
                    db.execute("RELEASE charge")
        except Exception as error:
            failed: list[UsageRecord | Exception] = [error]
            return failed + [copy.copy(error) for _ in batch[1:]]  # one exception object per caller
        return outcomes

    @staticmethod
    def _answer(batch: list[_Queued], outcomes: list[UsageRecord | Exception]) -> None:
        """Hand each outcome to its caller's future: one callback per event loop, not one per charge."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[UsageRecord], UsageRecord | Exception]]]
        by_loop = {}
        for queued, outcome in zip(batch, outcomes, strict=True):
            by_loop.setdefault(queued.loop, []).append((queued.future, outcome))
        for loop, answers in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
                loop.call_soon_threadsafe(_settle, answers)

    def _apply_charge(self, db: sqlite3.Connection, api_key: str, endpoint_type: str, credits: int, payload: str,
                      status: str) -> UsageRecord:
        """Inside a transaction: debit and record one charge, or raise InsufficientCredits having written nothing."""
        balance = self._open(db, api_key)
        if balance < credits:
            raise InsufficientCredits(api_key, credits, balance)
        db.execute("UPDATE accounts SET balance = balance - ?, used = used + ? WHERE api_key = ?",
                   (credits, credits, api_key))
        record = UsageRecord(self._new_id(), api_key, endpoint_type, credits, status, self._clock(),
                             balance - credits, json.loads(payload))
        db.execute(f"INSERT INTO usage ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (record.usage_id, api_key, endpoint_type, credits, status, record.created_at,
                    record.balance_after, payload))
        return record

    def top_up(self, api_key: str, credits: int) -> int:
        """Add ``credits`` (> 0) to the key's balance; returns the new balance. Raises ValueError otherwise."""
        if credits <= 0:
            raise ValueError("a top-up must add credits > 0")
        with self._lock, self._transaction() as db:
            balance = self._open(db, api_key) + credits
            db.execute("UPDATE accounts SET balance = ? WHERE api_key = ?", (balance, api_key))
        return balance

    def reset(self) -> None:
        """Forget every account and usage record, atomically: each key starts again from its starting
        balance (the control API's reset). A file-backed ledger is emptied for every process sharing it."""
        with self._lock, self._transaction() as db:
            db.execute("DELETE FROM usage")
            db.execute("DELETE FROM accounts")

    def usage(self, api_key: str, skip: int = 0, limit: int = 50, endpoint_type: str | None = None) -> UsagePage:
        """The key's records, newest first: ``limit`` of them after the first ``skip``, optionally only
        those of ``endpoint_type``. Raises ValueError for a negative skip or a limit < 1; values past
        :data:`SQLITE_MAX_INT` are clamped."""
        if skip < 0 or limit < 1:
            raise ValueError("skip must be >= 0 and limit >= 1")
        where, args = "api_key = ?", [api_key]
        if endpoint_type is not None:
            where, args = where + " AND endpoint_type = ?", [*args, endpoint_type]
        with self._lock:
            total = self._db.execute(f"SELECT COUNT(*) FROM usage WHERE {where}", args).fetchone()[0]
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM usage WHERE {where} ORDER BY seq DESC LIMIT ? OFFSET ?",
                                    [*args, min(limit, SQLITE_MAX_INT), min(skip, SQLITE_MAX_INT)]).fetchall()
        return UsagePage([_record(row) for row in rows], int(total))

    def record(self, api_key: str, usage_id: str) -> UsageRecord | None:
        """The record ``usage_id`` if it belongs to ``api_key``; None if unknown or another key's."""
        with self._lock:
            row = self._db.execute(f"SELECT {_COLUMNS} FROM usage WHERE usage_id = ? AND api_key = ?",
                                   (usage_id, api_key)).fetchone()
        return None if row is None else _record(row)

    def update(self, usage_id: str, status: str, result: Mapping[str, Any] | None = None) -> UsageRecord | None:
        """Set the record's ``status`` and merge ``result`` (JSON-serialisable) into its result, atomically;
        returns the updated record, or None for an unknown ``usage_id``."""
        with self._lock, self._transaction() as db:
            row = db.execute("SELECT result FROM usage WHERE usage_id = ?", (usage_id,)).fetchone()
            if row is None:
                return None
            merged = json.dumps({**json.loads(row[0]), **(result or {})})
            db.execute("UPDATE usage SET status = ?, result = ? WHERE usage_id = ?", (status, merged, usage_id))
            updated = db.execute(f"SELECT {_COLUMNS} FROM usage WHERE usage_id = ?", (usage_id,)).fetchone()
        return _record(updated)

    def fail_unfinished(self, error: str) -> int:
        """Mark every record still ``queued`` or ``processing`` as ``failed`` with ``error`` in its result;
        returns how many. For start-up: their jobs died with the process that ran them (credits stay spent)."""
        with self._lock, self._transaction() as db:
            marks = ",".join("?" * len(UNFINISHED))
            rows = db.execute(f"SELECT usage_id, result FROM usage WHERE status IN ({marks})", UNFINISHED).fetchall()
            for usage_id, result in rows:
                db.execute("UPDATE usage SET status = ?, result = ? WHERE usage_id = ?",
                           (FAILED, json.dumps({**json.loads(result), "error": error}), usage_id))
        return len(rows)

    def _open(self, db: sqlite3.Connection, api_key: str) -> int:
        """Inside a transaction: open the key's account if new; returns its balance."""
        db.execute("INSERT OR IGNORE INTO accounts (api_key, balance, used) VALUES (?, ?, 0)",
                   (api_key, self.starting_by_key.get(api_key, self.starting_credits)))
        return int(db.execute("SELECT balance FROM accounts WHERE api_key = ?", (api_key,)).fetchone()[0])


def _payload(endpoint_type: str, credits: int, result: Mapping[str, Any] | None) -> str:
    """A charge's checked arguments: ``result`` as JSON. Raises ValueError for an unknown endpoint_type
    or negative credits."""
    if endpoint_type not in ENDPOINT_TYPES:
        raise ValueError(f"unknown endpoint_type {endpoint_type!r}")
    if credits < 0:
        raise ValueError("credits must be >= 0")
    return json.dumps(dict(result or {}))


def _settle(answers: list[tuple[asyncio.Future[UsageRecord], UsageRecord | Exception]]) -> None:
    """On the callers' loop: resolve each future (a cancelled one is left alone)."""
    for future, outcome in answers:
        if future.done():
            continue
        if isinstance(outcome, Exception):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _record(row: tuple[Any, ...]) -> UsageRecord:
    usage_id, api_key, endpoint_type, credits, status, created_at, balance_after, result = row
    return UsageRecord(usage_id, api_key, endpoint_type, int(credits), status, float(created_at), int(balance_after),
                       json.loads(result))
