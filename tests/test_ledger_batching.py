"""Group commit of the credits ledger (mock_server/sim/ledger.py, ``Ledger.charge_async``): concurrent
charges share one transaction, each in its own savepoint, and every caller gets its own outcome.

Batches are made deterministic with the ledger's ``trace`` hook (:class:`Gate`): it holds the writer
thread at a BEGIN IMMEDIATE while the test queues charges, so they are all queued before the batch
that takes them starts; it also records every SQL statement, to count transactions.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

import mock_server.sim.ledger as ledger_module
from mock_server.sim import InsufficientCredits, Ledger, UsageRecord

#: Seconds a test waits for the writer thread before giving up.
WAIT_S = 10.0


class Gate:
    """A ``trace`` hook: records every statement; once :meth:`arm`-ed, holds the next BEGIN IMMEDIATE
    (the writer's next batch, which has already taken its charges) until :attr:`opened` is set."""

    def __init__(self) -> None:
        self.statements: list[str] = []
        self.reached = threading.Event()
        self.opened = threading.Event()
        self._armed = False

    def arm(self) -> None:
        self.reached.clear()
        self.opened.clear()
        self._armed = True

    def __call__(self, statement: str) -> None:
        self.statements.append(statement)
        if self._armed and statement == "BEGIN IMMEDIATE":
            self._armed = False
            self.reached.set()
            self.opened.wait(WAIT_S)

    def count(self, statement: str) -> int:
        return self.statements.count(statement)


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def ledger(gate: Gate) -> Iterator[Ledger]:
    with Ledger(":memory:", 1000, trace=gate) as book:
        yield book


async def _as_one_batch(ledger: Ledger, gate: Gate, charges: list[tuple[str, int]]
                        ) -> list[UsageRecord | BaseException]:
    """Queue ``charges`` ((key, credits) of ``tts``) while the writer is held, so that ONE batch takes
    them all (a 1-credit charge of ``sk-blocker`` is held first); their outcomes, in order."""
    gate.arm()
    blocker = asyncio.ensure_future(ledger.charge_async("sk-blocker", "tts", 1))
    assert await asyncio.to_thread(gate.reached.wait, WAIT_S), "the writer never started a batch"
    tasks = [asyncio.ensure_future(ledger.charge_async(key, "tts", credits)) for key, credits in charges]
    await asyncio.sleep(0)  # every task runs up to its await: all queued
    gate.opened.set()
    await blocker
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_concurrent_charges_past_the_balance_share_one_transaction(ledger: Ledger, gate: Gate) -> None:
    before = (gate.count("BEGIN IMMEDIATE"), gate.count("COMMIT"), ledger.commits)
    outcomes = asyncio.run(_as_one_batch(ledger, gate, [("sk-a", 50)] * 30))
    # the blocker's batch and ONE batch for the 30 charges, each charge in a savepoint
    assert (gate.count("BEGIN IMMEDIATE") - before[0], gate.count("COMMIT") - before[1]) == (2, 2)
    assert ledger.commits - before[2] == 2
    assert gate.count("SAVEPOINT charge") == 31 and gate.count("RELEASE charge") == 31
    assert gate.count("ROLLBACK TO charge") == 10
    records = [outcome for outcome in outcomes if isinstance(outcome, UsageRecord)]
    refused = [outcome for outcome in outcomes if isinstance(outcome, InsufficientCredits)]
    assert outcomes[:20] == records and outcomes[20:] == refused and len(refused) == 10  # queue order
    assert [record.balance_after for record in records] == list(range(950, -1, -50))
    assert all((error.needed, error.balance) == (50, 0) for error in refused)
    assert ledger.balance("sk-a") == 0 and ledger.account("sk-a").used == 1000
    page = ledger.usage("sk-a", limit=100)
    assert page.total == 20 and [r.usage_id for r in reversed(page.items)] == [r.usage_id for r in records]
    assert list(reversed(page.items)) == records


def test_without_the_gate_concurrent_charges_take_fewer_commits_than_charges(ledger: Ledger, gate: Gate) -> None:
    async def charge_all() -> list[UsageRecord]:
        return await asyncio.gather(*(ledger.charge_async(f"sk-{i % 3}", "image", 10) for i in range(60)))

    commits = ledger.commits
    records = asyncio.run(charge_all())
    assert len({r.usage_id for r in records}) == 60 and ledger.commits - commits < 60
    assert sorted(r.balance_after for r in records if r.api_key == "sk-0") == list(range(800, 1000, 10))
    assert sum(ledger.account(f"sk-{i}").used for i in range(3)) == 600


def test_a_failing_charge_is_rolled_back_alone(gate: Gate) -> None:
    ids = itertools.count()

    def new_id() -> str:  # the 3rd charge of the batch reuses the 2nd's id: its INSERT fails
        n = next(ids)
        return f"usage_{min(n, 2) if n in (2, 3) else n}"

    with Ledger(":memory:", 1000, new_id=new_id, trace=gate) as ledger:
        outcomes = asyncio.run(_as_one_batch(ledger, gate, [("sk-a", 100), ("sk-a", 200), ("sk-a", 300),
                                                            ("sk-a", 5000), ("sk-b", 400), ("sk-a", 700)]))
        first, second, clash, short, other, last = outcomes
        assert gate.count("COMMIT") == 3  # schema, blocker, the batch
        assert isinstance(first, UsageRecord) and first.balance_after == 900
        assert isinstance(second, UsageRecord) and second.balance_after == 700
        assert isinstance(clash, sqlite3.IntegrityError)  # its debit, made before the INSERT, is undone
        assert isinstance(short, InsufficientCredits) and (short.needed, short.balance) == (5000, 700)
        assert isinstance(other, UsageRecord) and other.balance_after == 600
        assert isinstance(last, UsageRecord) and last.balance_after == 0
        assert ledger.account("sk-a") == ledger_module.Account(0, 1000)
        assert ledger.usage("sk-a").total == 3 and ledger.balance("sk-b") == 600
        assert ledger.record("sk-a", second.usage_id) == second


def test_a_batch_that_cannot_begin_fails_every_caller_and_the_writer_goes_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "BUSY_TIMEOUT_S", 0.05)
    path = tmp_path / "ledger.sqlite"

    async def charge(ledger: Ledger, n: int) -> list[UsageRecord | BaseException]:
        return await asyncio.gather(*(ledger.charge_async("sk-a", "tts", 14) for _ in range(n)),
                                    return_exceptions=True)

    with Ledger(path, 1000) as ledger:
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        failed = asyncio.run(charge(ledger, 5))
        other.execute("ROLLBACK")
        other.close()
        assert all(isinstance(error, sqlite3.OperationalError) for error in failed)
        assert len({id(error) for error in failed}) == 5  # each caller has its own exception object
        assert ledger.balance("sk-a") == 1000 and ledger.usage("sk-a").total == 0
        recovered = asyncio.run(charge(ledger, 2))
        assert sorted(r.balance_after for r in recovered if isinstance(r, UsageRecord)) == [972, 986]


def test_a_caller_is_answered_after_commit_and_records_survive_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"

    async def charge_and_look(ledger: Ledger, i: int) -> UsageRecord:
        record = await ledger.charge_async("sk-a", "video_i2v", 40, {"n": i})
        with sqlite3.connect(path) as reader:  # another connection sees only what was committed
            seen = reader.execute("SELECT balance_after FROM usage WHERE usage_id = ?", (record.usage_id,)).fetchone()
        reader.close()
        assert seen == (record.balance_after,)
        return record

    async def charge_all(ledger: Ledger) -> list[UsageRecord]:
        return await asyncio.gather(*(charge_and_look(ledger, i) for i in range(25)))

    with Ledger(path, 1000) as first:
        records = asyncio.run(charge_all(first))
    assert sorted(r.balance_after for r in records) == list(range(0, 1000, 40))
    with Ledger(path, 1000) as second:
        assert second.balance("sk-a") == 0
        assert [second.record("sk-a", r.usage_id) for r in records] == records
        assert [r.result["n"] for r in reversed(second.usage("sk-a", limit=100).items)] == list(range(25))


def test_a_cancelled_caller_is_still_charged_and_close_drains_the_queue(ledger: Ledger, gate: Gate) -> None:
    async def run() -> UsageRecord:
        gate.arm()
        cancelled = asyncio.ensure_future(ledger.charge_async("sk-a", "tts", 14))
        assert await asyncio.to_thread(gate.reached.wait, WAIT_S)
        cancelled.cancel()
        after = asyncio.ensure_future(ledger.charge_async("sk-a", "tts", 14))
        await asyncio.sleep(0)
        gate.opened.set()
        return await after

    assert asyncio.run(run()).balance_after == 1000 - 2 * 14  # the cancelled charge was applied first
    assert ledger.usage("sk-a").total == 2


def test_charges_are_refused_early_or_after_close(gate: Gate) -> None:
    ledger = Ledger(":memory:", 1000, trace=gate)

    async def charge(endpoint_type: str, credits: int) -> UsageRecord:
        return await ledger.charge_async("sk-a", endpoint_type, credits)

    with pytest.raises(ValueError, match="endpoint_type"):
        asyncio.run(charge("music", 1))
    with pytest.raises(ValueError):
        asyncio.run(charge("tts", -1))
    assert asyncio.run(charge("tts", 14)).balance_after == 986
    ledger.close()
    with pytest.raises(sqlite3.ProgrammingError):
        asyncio.run(charge("tts", 14))
    ledger.close()  # twice is harmless


def test_synchronous_and_batched_charges_mix(ledger: Ledger) -> None:
    async def run() -> list[UsageRecord]:
        batched = [ledger.charge_async("sk-a", "tts", 10) for _ in range(20)]
        in_threads = [asyncio.to_thread(ledger.charge, "sk-a", "tts", 10) for _ in range(20)]
        return await asyncio.gather(*batched, *in_threads)

    records = asyncio.run(run())
    assert sorted(r.balance_after for r in records) == list(range(600, 1000, 10))
    assert ledger.account("sk-a").used == 400 and ledger.usage("sk-a").total == 40


def test_an_idle_writer_ends_and_a_dropped_ledger_is_collected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_module, "WRITER_IDLE_S", 0.05)
    ledger = Ledger(":memory:", 1000)

    async def charge(book: Ledger) -> UsageRecord:
        return await book.charge_async("sk-a", "tts", 14)

    assert asyncio.run(charge(ledger)).balance_after == 986
    time.sleep(0.3)  # the writer has ended: the next charge starts another
    assert asyncio.run(charge(ledger)).balance_after == 972
    dropped = weakref.ref(ledger)
    del ledger
    deadline = time.monotonic() + WAIT_S
    while dropped() is not None and time.monotonic() < deadline:
        time.sleep(0.05)
        gc.collect()
    assert dropped() is None  # no thread keeps it alive
