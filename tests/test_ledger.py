"""Unit tests of the credits ledger (mock_server/sim/ledger.py) and the file store (sim/files.py)."""

from __future__ import annotations

import itertools
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mock_server.sim import DEFAULT_STARTING_CREDITS, FileStore, FileTooLarge, InsufficientCredits, Ledger, meets
from mock_server.sim.tiers import PREMIUM, key_tier


@pytest.fixture
def ledger() -> Iterator[Ledger]:
    ticks = itertools.count(1_700_000_000)
    with Ledger(":memory:", 1000, clock=lambda: float(next(ticks))) as book:
        yield book


def test_a_new_key_has_the_starting_balance(ledger: Ledger) -> None:
    assert ledger.balance("sk-a") == 1000
    assert ledger.account("sk-a").used == 0
    with Ledger() as default:
        assert default.balance("sk-a") == DEFAULT_STARTING_CREDITS == 10_000


def test_charge_debits_and_records(ledger: Ledger) -> None:
    record = ledger.charge("sk-a", "video_i2v", 400, {"video_url": "http://x/v.mp4", "duration_seconds": 5.0})
    assert (record.credits, record.balance_after, record.status) == (400, 600, "completed")
    assert record.usage_id.startswith("usage_") and record.created_at == 1_700_000_000
    assert ledger.balance("sk-a") == 600 and ledger.account("sk-a").used == 400
    assert ledger.balance("sk-b") == 1000  # balances are per key
    assert ledger.record("sk-a", record.usage_id) == record
    assert ledger.record("sk-a", record.usage_id).result["video_url"] == "http://x/v.mp4"  # type: ignore[union-attr]


def test_a_short_charge_raises_and_leaves_no_trace(ledger: Ledger) -> None:
    ledger.charge("sk-a", "video_cogvideox", 800)
    with pytest.raises(InsufficientCredits) as raised:
        ledger.charge("sk-a", "video_t2v", 1000)
    assert (raised.value.needed, raised.value.balance) == (1000, 200)
    assert ledger.balance("sk-a") == 200 and ledger.account("sk-a").used == 800
    assert ledger.usage("sk-a").total == 1
    assert ledger.usage("sk-a", endpoint_type="video_t2v").items == []


def test_charging_exactly_the_balance_succeeds(ledger: Ledger) -> None:
    assert ledger.charge("sk-a", "video_t2v", 1000).balance_after == 0
    with pytest.raises(InsufficientCredits):
        ledger.charge("sk-a", "tts", 14)


def test_bad_arguments_are_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="endpoint_type"):
        ledger.charge("sk-a", "music", 1)
    with pytest.raises(ValueError):
        ledger.charge("sk-a", "tts", -1)
    with pytest.raises(ValueError):
        ledger.top_up("sk-a", 0)
    with pytest.raises(ValueError):
        ledger.usage("sk-a", limit=0)
    assert ledger.usage("sk-a").total == 0


def test_usage_pages_newest_first_and_filters(ledger: Ledger) -> None:
    kinds = ["tts", "image", "tts", "video_i2v", "tts"]
    ids = [ledger.charge("sk-a", kind, 1).usage_id for kind in kinds]
    ledger.charge("sk-b", "tts", 1)
    page = ledger.usage("sk-a", skip=1, limit=2)
    assert page.total == 5 and [r.usage_id for r in page.items] == [ids[3], ids[2]]
    assert [r.usage_id for r in ledger.usage("sk-a", skip=4, limit=10).items] == [ids[0]]
    assert ledger.usage("sk-a", skip=5).items == []
    tts = ledger.usage("sk-a", endpoint_type="tts")
    assert tts.total == 3 and [r.usage_id for r in tts.items] == [ids[4], ids[2], ids[0]]


def test_a_record_is_only_its_own_keys(ledger: Ledger) -> None:
    record = ledger.charge("sk-a", "image", 50)
    assert ledger.record("sk-b", record.usage_id) is None
    assert ledger.record("sk-a", "usage_unknown") is None


def test_top_up_adds_credits(ledger: Ledger) -> None:
    assert ledger.top_up("sk-a", 500) == 1500
    assert ledger.charge("sk-a", "video_i2v", 1200).balance_after == 300


def test_a_file_ledger_reopened_keeps_balances_and_records(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path, 1000) as first:
        record = first.charge("sk-a", "tts", 14, {"duration_ms": 1600})
    with Ledger(path, 5) as second:  # a new starting balance only applies to new keys
        assert second.balance("sk-a") == 986
        assert second.record("sk-a", record.usage_id) == record
        assert second.balance("sk-new") == 5
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_concurrent_charges_never_overdraw(ledger: Ledger) -> None:
    outcomes: list[bool] = []

    def spend() -> None:
        for _ in range(10):
            try:
                ledger.charge("sk-a", "image", 50)
                outcomes.append(True)
            except InsufficientCredits:
                outcomes.append(False)

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert outcomes.count(True) == 20 and len(outcomes) == 40
    assert ledger.balance("sk-a") == 0 and ledger.usage("sk-a").total == 20


def test_every_key_is_premium_until_tiers_are_configured() -> None:
    assert key_tier("sk-test") == PREMIUM and meets(key_tier(None), "premium")
    assert meets("basic", None) and not meets(key_tier("sk-b", {"sk-b": "basic"}), "premium")


def test_file_store_is_bounded_and_per_key() -> None:
    store = FileStore(max_file_bytes=10, max_total_bytes=25, max_files=3)
    first = store.put("sk-a", "a.bin", "application/octet-stream", b"0123456789")
    assert store.get("sk-a", first.file_id) == first and store.get("sk-b", first.file_id) is None
    store.put("sk-a", "b.bin", "text/plain", b"0123456789")
    store.put("sk-a", "c.bin", "text/plain", b"0123456789")  # 30 bytes > 25: the oldest goes
    assert store.get("sk-a", first.file_id) is None and store.total_bytes == 20
    with pytest.raises(FileTooLarge):
        store.put("sk-a", "d.bin", "text/plain", b"x" * 11)
