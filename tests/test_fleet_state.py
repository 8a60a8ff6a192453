"""The fleet's Redis homes of the mock's state keep the in-process rules (``tests/test_ratelimit.py``,
``tests/test_ledger.py``, ``tests/test_hardening.py``): each algorithm against a real ``redis-server``,
two instances standing for two replicas where sharing is the point."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from mock_server import cli as mock_cli
from mock_server.config import DEFAULT_CONFIG_FILE, ConfigError, load_config
from mock_server.errors import ApiError
from mock_server.fleet.ledger import SharedLedger
from mock_server.fleet.media import SharedHostedMedia
from mock_server.fleet.ratelimit import SharedSlidingWindow
from mock_server.fleet.scripts import SharedScriptBook
from mock_server.fleet.spend import SharedSpendMeter
from mock_server.fleet.store import RedisStore
from mock_server.sim import InsufficientCredits
from mock_server.sim.ratelimit import Limit
from mock_server.sim.scripts import Step
from mock_server.sim.spend import SpendLimitReached, SpendMeter
from tests.fleet_fixtures import redis_for_tests

T = TypeVar("T")
RPM = Limit("requests", 10, 60.0)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_for_tests(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


_namespaces = iter(range(1, 10**6))


def run(redis_url: str, body: Callable[[RedisStore], Awaitable[T]]) -> T:
    """``body`` on a store of a fresh namespace, on a fresh event loop."""
    async def main() -> T:
        store = RedisStore(redis_url, f"t{next(_namespaces)}-{time.monotonic_ns()}")
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(main())


def test_the_shared_window_admits_exactly_the_limit_and_says_when_to_retry(redis_url: str) -> None:
    async def body(store: RedisStore) -> None:
        limiter = SharedSlidingWindow(store)
        verdicts = [(await limiter.admit(("k", "op"), [RPM], {"requests": 1}))[0] for _ in range(12)]
        assert [v.admitted for v in verdicts] == [True] * 10 + [False] * 2
        assert verdicts[0].remaining == 9 and verdicts[9].remaining == 0
        assert 59.0 < verdicts[10].retry_after_s <= 60.0 and verdicts[10].remaining == 0

    run(redis_url, body)


def test_replicas_racing_share_one_window(redis_url: str) -> None:
    async def body(store: RedisStore) -> int:
        replicas = [SharedSlidingWindow(store), SharedSlidingWindow(RedisStore(store.url, store.namespace))]
        limit = Limit("requests", 50, 60.0)
        verdicts = await asyncio.gather(*(replicas[i % 2].admit("k", [limit], {}) for i in range(300)))
        await replicas[1].store.close()
        return sum(v[0].admitted for v in verdicts)

    assert run(redis_url, body) == 50


def test_a_refusal_under_one_limit_counts_nothing_under_any(redis_url: str) -> None:
    async def body(store: RedisStore) -> None:
        limiter = SharedSlidingWindow(store)
        tpm = Limit("tokens", 100, 60.0)
        requests, tokens = await limiter.admit("k", [RPM, tpm], {"requests": 1, "tokens": 150})
        assert requests.admitted and (requests.remaining, requests.reset_s) == (10, 0.0)  # nothing was logged
        assert not tokens.admitted and tokens.remaining == 100 and tokens.retry_after_s == 60.0
        assert (await limiter.admit("k", [RPM, tpm], {"requests": 1, "tokens": 90}))[1].admitted
        requests, tokens = await limiter.admit("k", [RPM, tpm], {"requests": 1, "tokens": 20})
        assert requests.admitted and not tokens.admitted and requests.remaining == 9
        assert (await limiter.admit("k", [RPM, tpm], {"requests": 1, "tokens": 10}))[1].remaining == 0
        assert (await limiter.admit("other", [RPM, tpm], {"requests": 1, "tokens": 100}))[1].admitted

    run(redis_url, body)


def test_the_shared_window_slides(redis_url: str) -> None:
    async def body(store: RedisStore) -> None:
        limiter = SharedSlidingWindow(store)
        window = Limit("requests", 5, 2.0)
        began = time.monotonic()
        assert all([(await limiter.admit("k", [window], {}))[0].admitted for _ in range(3)])
        await asyncio.sleep(1.0)
        assert all([(await limiter.admit("k", [window], {}))[0].admitted for _ in range(2)])
        assert not (await limiter.admit("k", [window], {}))[0].admitted
        await asyncio.sleep(max(began + 2.1 - time.monotonic(), 0))  # the first 3 left; the last 2 have not
        assert [(await limiter.admit("k", [window], {}))[0].admitted for _ in range(4)] == [True] * 3 + [False]

    run(redis_url, body)


def test_the_shared_ledger_charges_atomically_and_pages_its_records(redis_url: str) -> None:
    async def body(store: RedisStore) -> None:
        ledger = SharedLedger(store, 100, {"rich": 10_000}, "replica", 1000)
        first = await ledger.charge("k", "tts", 30, {"format": "mp3"})
        await ledger.charge("k", "image", 40)
        with pytest.raises(InsufficientCredits) as short:
            await ledger.charge("k", "tts", 31)
        assert (short.value.needed, short.value.balance) == (31, 30)
        account = await ledger.account("k")
        assert (account.balance, account.used) == (30, 70)
        page = await ledger.usage("k")
        assert page.total == 2 and [r.endpoint_type for r in page.items] == ["image", "tts"]  # newest first
        assert (await ledger.usage("k", endpoint_type="tts")).items[0].result == {"format": "mp3"}
        assert (await ledger.usage("k", skip=1, limit=1)).items[0].usage_id == first.usage_id
        assert await ledger.record("other", first.usage_id) is None
        assert (await ledger.balance("rich")) == 10_000 and await ledger.top_up("k", 5) == 35
        assert await ledger.update(first.usage_id, "failed", {"error": "x"})
        updated = await ledger.record("k", first.usage_id)
        assert updated is not None and updated.status == "failed"
        assert updated.result == {"format": "mp3", "error": "x"}
        await ledger.reset()
        assert (await ledger.usage("k")).total == 0 and await ledger.balance("k") == 100

    run(redis_url, body)


def test_concurrent_charges_from_two_replicas_never_overspend(redis_url: str) -> None:
    async def body(store: RedisStore) -> tuple[int, int, int]:
        other = RedisStore(store.url, store.namespace)
        ledgers = [SharedLedger(store, 100, {}, "a", 1000), SharedLedger(other, 100, {}, "b", 1000)]
        outcomes = await asyncio.gather(*(ledgers[i % 2].charge("k", "tts", 7) for i in range(40)),
                                        return_exceptions=True)
        await other.close()
        page = await ledgers[0].usage("k", limit=100)
        charged = sum(not isinstance(outcome, BaseException) for outcome in outcomes)
        return charged, sum(record.credits for record in page.items), (await ledgers[0].account("k")).used

    assert run(redis_url, body) == (14, 98, 98)  # 100 // 7 charges, and the records sum to what was used


def test_scripts_count_the_matching_requests_of_every_replica(redis_url: str) -> None:
    async def body(store: RedisStore) -> list[Any]:
        first, second = SharedScriptBook(store), SharedScriptBook(store)
        script = await first.add_async([Step("error", times=2, status=503)], "nonce-1", None)
        await second.refresh()
        body_ = {"messages": [{"content": "a nonce-1 b"}]}
        taken = [await book.take_async("createChatCompletion", body_) for book in (first, second, second)]
        assert [t[1].status if t else None for t in taken] == [503, 503, None]
        assert taken[0] is not None and taken[0][0].id == script.id
        return await first.listed()

    assert run(redis_url, body) == []


def test_hosted_media_is_bounded_per_key_and_expires_with_410(redis_url: str) -> None:
    async def body(store: RedisStore) -> None:
        media = SharedHostedMedia(store, max_items=3)

        class Request:
            base_url = "http://fleet/"

        async def put(owner: str, ttl_s: float = 60.0) -> str:
            url = await media.publish(Request(), b"x" + owner.encode(), "image/png", ttl_s, owner=owner)  # type: ignore[arg-type]
            return url.rsplit("/", 1)[-1]

        kept = await put("sk-a")
        for _ in range(5):
            await put("sk-b")
        assert (await media.serve(kept)).content == b"xsk-a"  # another key's stores never evict it
        newest = [await put("sk-a") for _ in range(3)]
        with pytest.raises(ApiError, match="No hosted file"):  # at its own bound, a key's oldest goes first
            await media.serve(kept)
        assert (await media.serve(newest[-1])).content == b"xsk-a"
        short = await put("sk-c", ttl_s=0.2)
        await asyncio.sleep(0.3)
        with pytest.raises(ApiError) as gone:
            await media.serve(short)
        assert gone.value.status == 410
        reserved = await media.reserve_path("video/mp4", 60.0, ".mp4", owner="sk-c")
        with pytest.raises(ApiError) as early:
            await media.serve(reserved.rsplit("/", 1)[-1])
        assert early.value.status == 425
        await media.fill_path(reserved, b"movie", "video/mp4", 60.0)
        assert (await media.serve(reserved.rsplit("/", 1)[-1])).content == b"movie"

    run(redis_url, body)


@pytest.mark.parametrize(("argv", "message"), [
    (["--state", "http://127.0.0.1:6379"], "--state 'http://127.0.0.1:6379'"),
    (["--state", "redis://127.0.0.1:6379/0", "--state-namespace", "a b"], "--state-namespace 'a b'"),
])
def test_a_bad_state_option_exits_2_naming_it(argv: list[str], message: str,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    assert mock_cli.main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_state_section_is_validated_and_excludes_a_ledger_file(tmp_path: Path) -> None:
    path = tmp_path / "mock.yaml"
    path.write_text("state: {url: redis://127.0.0.1:6379/0, namespace: load-test}\n")
    state = load_config(path).state
    assert (state.url, state.namespace, state.shared) == ("redis://127.0.0.1:6379/0", "load-test", True)
    assert not load_config(DEFAULT_CONFIG_FILE).state.shared  # in process by default
    path.write_text("state: {url: mysql://x}\n")
    with pytest.raises(ConfigError, match=r"state\.url"):
        load_config(path)
    path.write_text("state: {url: redis://127.0.0.1:6379/0}\nledger: {path: /tmp/x.sqlite}\n")
    with pytest.raises(ConfigError, match=r"ledger\.path: a fleet.s ledger is in Redis"):
        load_config(path)


def test_the_shared_spend_meter_keeps_the_in_process_rules_over_two_replicas(redis_url: str) -> None:
    limits = {"sk-capped": 0.03, "sk-broke": 0.0}

    async def body(store: RedisStore) -> None:
        first, second = SharedSpendMeter(store, SpendMeter(limits)), SharedSpendMeter(store, SpendMeter(limits))
        assert await first.charge("sk-capped", 0.011) == pytest.approx(0.011)
        assert await second.charge("sk-capped", 0.011) == pytest.approx(0.022)  # one spend for both replicas
        with pytest.raises(SpendLimitReached) as refused:
            await first.charge("sk-capped", 0.011)
        assert (refused.value.spent_usd, refused.value.limit_usd) == (pytest.approx(0.022), 0.03)
        assert await second.charge("sk-capped", 0.008) == pytest.approx(0.03)  # the refusal charged nothing
        with pytest.raises(SpendLimitReached):
            await second.charge("sk-broke", 0.000001)  # a limit of 0 refuses every priced request
        assert await first.charge("sk-broke", 0.0) == 0.0  # and admits a free one
        assert await first.charge("sk-free", 5.0) == 5.0  # no limit: counted by the replica, never refused
        assert [key async for key in store.client.scan_iter(match=store.key("spend", "sk-free"))] == []
        await second.reset()
        assert await first.charge("sk-capped", 0.03) == pytest.approx(0.03)

    run(redis_url, body)
