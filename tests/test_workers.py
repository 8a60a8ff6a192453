"""``mock-server serve --workers N`` (issue 19): N uvicorn worker processes on one port, each a replica of
the fleet whose state is in Redis (Debian's ``redis-server`` on 127.0.0.1, ``tests/fleet_fixtures.py``).

Spoken to over HTTP only, on fresh connections (so that the kernel hands them to either worker). Bursts
are small (the machine has 2 cores): what is proven is exactness and process handling, not speed
(``benchmarks/bench_workers.py`` measures the scaling)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from mock_server.cli import main
from mock_server.fleet.bus import Bus
from mock_server.fleet.store import RedisStore
from tests.fleet_fixtures import (
    START_TIMEOUT_S,
    RedisServer,
    Replica,
    assert_spent_exactly,
    redis_for_tests,
    spend_fits,
    workers_of,
)

WORKERS = 2
#: A key's RPM (chat) in the burst test.
BURST_RPM = 10
#: Bursts tried (each with its own key) until one reaches both workers: the kernel may hand one worker
#: every connection of a burst (seen about one time in six).
BURST_ATTEMPTS = 4
#: Starting credits of the overspend test's key: three TTS calls (14 credits each) and 8 left.
SPEND_CREDITS = 50
#: The spend-limit test's keys' gateway spend limit (USD): a few dozen micro-dollar chat answers.
SPEND_LIMIT_USD = 0.00005
#: Most requests sent one by one, each on a fresh connection, until every worker has answered one.
SPREAD_TRIES = 200
#: Seconds a stopped server gets to exit.
STOP_TIMEOUT_S = 20.0
FRESH = httpx.Limits(max_keepalive_connections=0)  # every request on its own connection


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def write_config(directory: Path, **extra: Any) -> Path:
    """A configuration file with the keys of these tests and the control API on."""
    path = directory / "mock.yaml"
    path.write_text(yaml.safe_dump({
        "keys": [*({"key": f"sk-burst-{attempt}", "rpm": BURST_RPM} for attempt in range(BURST_ATTEMPTS)),
                 {"key": "sk-spend", "credits": SPEND_CREDITS},
                 {"key": "sk-spread"},
                 *({"key": f"sk-capped-{attempt}", "spend_limit_usd": SPEND_LIMIT_USD}
                   for attempt in range(BURST_ATTEMPTS))],
        "control": {"enabled": True, "key": "ctl-key"}, **extra}))
    return path


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_for_tests(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def served(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    """One ``mock-server serve --workers 2 --state redis://...``."""
    server = Replica(write_config(tmp_path_factory.mktemp("workers")), redis_server.url, ["--workers", str(WORKERS)])
    server.launch()
    try:
        server.wait_ready()
        asyncio.run(_wait_listeners(redis_server.url, WORKERS))
        yield server
    finally:
        server.stop()


async def _wait_listeners(url: str, count: int) -> None:
    """Wait until ``count`` replicas listen on the fleet's bus: ``/health`` answers as soon as one worker
    has started, and on a loaded machine the other may take seconds more. Raises AssertionError after
    START_TIMEOUT_S."""
    store = RedisStore(url, "mock")
    try:
        channel = Bus(store, {}).channel
        deadline = time.monotonic() + START_TIMEOUT_S
        while (listening := sum(n for _, n in await store.client.pubsub_numsub(channel))) < count:
            assert time.monotonic() < deadline, f"{listening} of {count} workers listen on the bus"
            await asyncio.sleep(0.1)
    finally:
        await store.close()


async def _journals(url: str, **filters: Any) -> list[list[dict[str, Any]]]:
    """Each listening replica's journal entries (newest 1,000 matching ``filters``), asked over the fleet's
    bus as the control API does."""
    store = RedisStore(url, "mock")
    try:
        return list(await Bus(store, {}).ask("journal", {"limit": 1000, **filters}))
    finally:
        await store.close()


def test_more_than_one_worker_without_shared_state_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "2", "--port", "0"]) == 2
    message = capsys.readouterr().err
    assert "--workers 2 needs shared state" in message and "--state redis://" in message
    assert "2 times its limits and credits" in message


def test_a_worker_count_out_of_range_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", "--workers", "0"])
    assert exited.value.code == 2
    assert "--workers: must be 1 to 64, got 0" in capsys.readouterr().err


def test_every_worker_is_a_replica_and_answers(served: Replica, redis_server: RedisServer) -> None:
    assert served.process is not None
    assert len(workers_of(served.process.pid)) == WORKERS
    journals: list[list[dict[str, Any]]] = []
    with httpx.Client(base_url=served.url, limits=FRESH, timeout=10) as client:
        for _ in range(SPREAD_TRIES):
            answer = client.get("/v1/models", headers=auth("sk-spread"))
            assert answer.status_code == 200
            journals = asyncio.run(_journals(redis_server.url))
            if all(any(entry["path"] == "/v1/models" for entry in journal) for journal in journals):
                break
    assert len(journals) == WORKERS  # every worker listens on the fleet's bus
    assert all(any(entry["path"] == "/v1/models" for entry in journal) for journal in journals), [
        len(journal) for journal in journals]


async def _burst(url: str, path: str, key: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """Send every body at once, each on its own connection."""
    async with httpx.AsyncClient(base_url=url, limits=FRESH, timeout=30) as client:
        return await asyncio.gather(*(client.post(path, json=body, headers=auth(key)) for body in bodies))


def test_a_burst_over_fresh_connections_admits_exactly_the_limit(served: Replica, redis_server: RedisServer) -> None:
    per_worker: list[int] = []
    for attempt in range(BURST_ATTEMPTS):
        nonce = f"cnf-burst-{attempt}"
        bodies = [{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"{nonce} {i}"}],
                   "max_tokens": 5} for i in range(3 * BURST_RPM)]
        statuses = [answer.status_code for answer in asyncio.run(_burst(served.url, "/v1/chat/completions",
                                                                        f"sk-burst-{attempt}", bodies))]
        assert statuses.count(200) == BURST_RPM, statuses
        assert statuses.count(429) == 2 * BURST_RPM, statuses
        per_worker = [len(journal) for journal in asyncio.run(_journals(redis_server.url, nonce=nonce))]
        if len(per_worker) == WORKERS and all(per_worker):
            break
    assert len(per_worker) == WORKERS and all(per_worker), per_worker  # the burst was judged on both workers


def test_concurrent_charges_never_overspend(served: Replica) -> None:
    answers = asyncio.run(_burst(served.url, "/api/v1/multimodal/tts", "sk-spend",
                                 [{"text": f"charge {i}"} for i in range(9)]))
    assert sorted(answer.status_code for answer in answers) == [200] * 3 + [402] * 6
    ledger = httpx.get(served.url + "/_mock/ledger", params={"api_key": "sk-spend"},
                       headers=auth("ctl-key"), timeout=10).json()
    assert ledger["balance"] == SPEND_CREDITS - 3 * 14
    assert ledger["total_records"] == 3


def test_concurrent_priced_requests_over_the_workers_never_spend_past_the_limit(
        served: Replica, redis_server: RedisServer) -> None:
    per_worker: list[int] = []
    for attempt in range(BURST_ATTEMPTS):
        nonce = f"cnf-spend-{attempt}"
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": nonce}], "max_tokens": 5}
        answers = asyncio.run(_burst(served.url, "/v1/chat/completions", f"sk-capped-{attempt}", [body] * 30))
        fits = spend_fits(answers, SPEND_LIMIT_USD)
        assert 1 <= fits < 30
        assert_spent_exactly(answers, fits)
        per_worker = [len(journal) for journal in asyncio.run(_journals(redis_server.url, nonce=nonce))]
        if len(per_worker) == WORKERS and all(per_worker):
            break
    assert len(per_worker) == WORKERS and all(per_worker), per_worker  # the burst was judged on both workers


def test_a_killed_worker_is_replaced(served: Replica, redis_server: RedisServer) -> None:
    assert served.process is not None
    victim, survivor = workers_of(served.process.pid)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    workers: list[int] = []
    while time.monotonic() < deadline:
        workers = workers_of(served.process.pid)
        if len(workers) == WORKERS and victim not in workers:
            break
        time.sleep(0.2)
    assert survivor in workers and victim not in workers and len(workers) == WORKERS, workers
    served.wait_ready()
    while len(asyncio.run(_journals(redis_server.url))) < WORKERS and time.monotonic() < deadline:
        time.sleep(0.2)  # the new worker listens on the bus once started
    assert len(asyncio.run(_journals(redis_server.url))) == WORKERS
    with httpx.Client(base_url=served.url, limits=FRESH, timeout=10) as client:
        assert all(client.get("/v1/models", headers=auth("sk-spread")).status_code == 200 for _ in range(10))


@pytest.mark.parametrize(("stop", "group"), [(signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGTERM to the server", "SIGINT to its process group (Ctrl-C)"])
def test_a_signal_stops_every_worker_cleanly(stop: signal.Signals, group: bool, redis_server: RedisServer,
                                             tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    server = Replica(write_config(tmp_path), redis_server.url, ["--workers", str(WORKERS), "--log-level", "info"])
    with log.open("wb") as sink:
        server.process = subprocess.Popen(
            [sys.executable, "-m", "mock_server", "serve", "--config", str(server.config), "--state", server.state,
             "--port", str(server.port), *server.extra], stderr=sink, start_new_session=True)
        try:
            server.wait_ready()
            workers = workers_of(server.process.pid)
            assert len(workers) == WORKERS
            if group:
                os.killpg(server.process.pid, stop)
            else:
                server.process.send_signal(stop)
            assert server.process.wait(timeout=STOP_TIMEOUT_S) == 0
        finally:
            server.stop()
    for pid in workers:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    text = log.read_text()
    assert text.count("Application shutdown complete.") == WORKERS, text  # each worker's lifespan ended
    assert "Traceback" not in text and "warning" not in text, text


def test_a_worker_that_cannot_start_stops_the_server_with_exit_2(redis_server: RedisServer, tmp_path: Path) -> None:
    config = write_config(tmp_path, catalogue=str(tmp_path / "missing.yaml"))
    done = subprocess.run([sys.executable, "-m", "mock_server", "serve", "--config", str(config), "--state",
                           redis_server.url, "--port", "0", "--workers", str(WORKERS)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "worker cannot start" in done.stderr and "missing.yaml" in done.stderr
