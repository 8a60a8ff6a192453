"""The credits ledger: one balance per API key and a usage record per charged call, in SQLite.

004 "Multimodal API": "All endpoints consume credits"; a call whose balance is short is refused
with 402 "Insufficient credits" (004 "Error Codes"), so a charge checks the balance and writes the
usage record in ONE ``BEGIN IMMEDIATE`` transaction: it either debits and records, or does nothing.

Storage is stdlib :mod:`sqlite3`: ``":memory:"`` (one app's lifetime) or a file path (WAL mode, so it
survives the process and several processes may share it). One connection serves every thread,
serialised by a lock; each call is a short transaction, so callers on an event loop may run it in a
worker thread (``anyio.to_thread.run_sync``). An account is opened, with the ledger's starting
balance, the first time a charge or top-up touches its key; reopening a file keeps every balance.

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

import json
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


def new_usage_id() -> str:
    """A fresh ``usage_<24 hex>`` id, random so ids stay unique in a file reused across runs."""
    return f"usage_{secrets.token_hex(12)}"


class Ledger:
    """Balances and usage records of API keys in SQLite (see the module docstring).

    ``path`` is a file path or ``":memory:"``; ``starting_credits`` is the balance of a key not seen
    before, unless ``starting_by_key`` names the key. ``clock`` (s since the epoch) and ``new_id`` are
    injectable for tests. Thread-safe. Raises ``sqlite3.Error`` if the file cannot be opened.
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        starting_credits: int = DEFAULT_STARTING_CREDITS,
        *,
        starting_by_key: Mapping[str, int] | None = None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = new_usage_id,
    ) -> None:
        if starting_credits < 0:
            raise ValueError("starting_credits must be >= 0")
        self.path = str(path)
        self.starting_credits = starting_credits
        self.starting_by_key = dict(starting_by_key or {})
        self._clock = clock
        self._new_id = new_id
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False)
        if self.path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across a killed process in WAL mode
        with self._lock, self._transaction() as db:  # executescript would COMMIT first: one statement each
            for statement in filter(str.strip, _SCHEMA.split(";")):
                db.execute(statement)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        """Close the database; the ledger is unusable afterwards."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` (the write lock up front) ... COMMIT, or ROLLBACK on any exception."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

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
        or negative ``credits``.
        """
        if endpoint_type not in ENDPOINT_TYPES:
            raise ValueError(f"unknown endpoint_type {endpoint_type!r}")
        if credits < 0:
            raise ValueError("credits must be >= 0")
        payload = json.dumps(dict(result or {}))
        with self._lock, self._transaction() as db:
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


def _record(row: tuple[Any, ...]) -> UsageRecord:
    usage_id, api_key, endpoint_type, credits, status, created_at, balance_after, result = row
    return UsageRecord(usage_id, api_key, endpoint_type, int(credits), status, float(created_at), int(balance_after),
                       json.loads(result))
