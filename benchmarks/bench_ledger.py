"""Ledger writes: charges/s of the credits ledger under N concurrent charging coroutines on one event loop.

Issue 7: "ledger writes should not serialise all requests behind one lock if SQLite can batch them
safely". Two ways of charging are compared, in one run, on the same loop, with the same charges:

- ``thread``: what the credits handler did before group commit: ``anyio.to_thread.run_sync(ledger.charge)``,
  one worker-thread hop and one ``BEGIN IMMEDIATE ... COMMIT`` per charge, behind the ledger's lock;
- ``batch``: ``await ledger.charge_async(...)``, the handler's path now (group commit: the charges
  queued together share one transaction, each in its own SAVEPOINT).

Each is run on a ``":memory:"`` ledger and on a file ledger (WAL, ``synchronous=NORMAL``) in a temporary
directory, a fresh ledger per run, one key with a balance that never runs out. For each concurrency N,
``--charges`` charges are split over N coroutines; the rounds alternate thread, batch, thread, batch...
so a busy neighbour hurts both alike, and the ratio is the median of the per-round ratios. Latency is
per charge (call to answer), in ms. There is no budget figure in the issue: the verdict is ``ok`` when
group commit is at least as fast as the per-charge path (ratio >= 1.0) at N >= 16, where there is
something to batch. ``charges/commit`` is the mean batch size.

``--http`` adds a figure through the whole server: wrk POSTs ``/api/v1/multimodal/tts`` (14 credits,
the cheapest charged call; a short text whose speech is cached) to a spawned mock with latency and
rate limits off and the key's balance at 10**15, once per ledger kind. It is absolute (one handler per
run), so compare it across runs of the same machine only.

    .venv/bin/python -m benchmarks.bench_ledger [--charges 4000] [--rounds 3] [--concurrency 1,16,64,256]
        [--loop uvloop|asyncio] [--http] [--duration 5] [--connections 64]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio.to_thread

from benchmarks.common import (
    KEY,
    base_config,
    free_port,
    machine,
    mock_argv,
    percentile,
    print_table,
    serve,
    verdict,
    write_config,
    wrk,
)
from mock_server.sim.ledger import Ledger

#: Balance of the benchmark's key, in credits: no charge is ever refused.
HUGE_BALANCE = 10**15
#: Credits per charge (a TTS call's).
COST = 14
#: The verdict's threshold: batch charges/s over thread charges/s, from this concurrency up.
MIN_RATIO = 1.0
BATCH_FROM_N = 16
TTS_PATH = "/api/v1/multimodal/tts"
TTS_BODY = {"text": "hi"}

Charger = Callable[[Ledger], Awaitable[Any]]


async def _thread_charge(ledger: Ledger) -> Any:
    """The pre-group-commit handler path: the synchronous charge in an anyio worker thread."""
    return await anyio.to_thread.run_sync(functools.partial(ledger.charge, KEY, "tts", COST, {"format": "mp3"}))


async def _batch_charge(ledger: Ledger) -> Any:
    """Group commit: the ledger's asynchronous charge."""
    return await ledger.charge_async(KEY, "tts", COST, {"format": "mp3"})


MODES: dict[str, Charger] = {"thread": _thread_charge, "batch": _batch_charge}


async def _load(ledger: Ledger, charger: Charger, concurrency: int, charges: int) -> tuple[float, list[float]]:
    """Run ``charges`` charges over ``concurrency`` coroutines; returns (elapsed s, per-charge latencies in s)."""
    latencies: list[float] = []
    per_worker = [charges // concurrency + (1 if i < charges % concurrency else 0) for i in range(concurrency)]

    async def worker(count: int) -> None:
        for _ in range(count):
            started = time.perf_counter()
            await charger(ledger)
            latencies.append(time.perf_counter() - started)

    await charger(ledger)  # warm-up: opens the account, starts any worker thread
    started = time.perf_counter()
    await asyncio.gather(*(worker(count) for count in per_worker))
    return time.perf_counter() - started, latencies


def _one(path: str, charger: Charger, concurrency: int, charges: int, loop: str) -> dict[str, float]:
    """One run on a fresh ledger at ``path``: charges/s, p50/p99 ms, charges per commit."""
    with Ledger(path, HUGE_BALANCE) as ledger:
        commits_before = ledger.commits
        elapsed, latencies = _runner(loop)(_load(ledger, charger, concurrency, charges))
        commits = ledger.commits - commits_before
        if ledger.usage(KEY, limit=1).total != charges + 1:
            raise RuntimeError("a charge was lost")
    return {"rate": charges / elapsed, "p50": percentile(latencies, 50) * 1000, "p99": percentile(latencies, 99) * 1000,
            "per_commit": (charges + 1) / commits}  # + 1: the warm-up charge


def _runner(loop: str) -> Callable[[Any], Any]:
    if loop == "uvloop":
        import uvloop

        return uvloop.run
    return asyncio.run


def run_ledger(charges: int, rounds: int, concurrency: tuple[int, ...], loop: str) -> list[list[object]]:
    """Measure every ledger kind, concurrency and mode; print a table; return its rows."""
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = 0
        for kind in ("memory", "file"):
            for n in concurrency:
                results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
                for _ in range(rounds):
                    for mode, charger in MODES.items():
                        runs += 1
                        path = ":memory:" if kind == "memory" else str(Path(tmp) / f"ledger{runs}.sqlite")
                        results[mode].append(_one(path, charger, n, charges, loop))
                rows.extend(_rows(kind, n, results))
    print_table(["ledger", "N", "mode", "charges/s", "p50 / p99 ms", "charges/commit", "batch/thread (median)",
                 "ratios", f"verdict (>= {MIN_RATIO:.1f} at N >= {BATCH_FROM_N})"], rows)
    return rows


def _rows(kind: str, n: int, results: dict[str, list[dict[str, float]]]) -> list[list[object]]:
    rows: list[list[object]] = []
    ratios = [b["rate"] / t["rate"] for t, b in zip(results["thread"], results["batch"], strict=True)]
    for mode, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("rate", "p50", "p99", "per_commit")}
        batch = mode == "batch"
        rows.append([kind, n, mode, f"{med['rate']:,.0f}", f"{med['p50']:.2f} / {med['p99']:.2f}",
                     f"{med['per_commit']:.1f}", f"{statistics.median(ratios):.2f}" if batch else "",
                     " ".join(f"{x:.2f}" for x in ratios) if batch else "",
                     verdict(statistics.median(ratios) >= MIN_RATIO) if batch and n >= BATCH_FROM_N else ""])
    return rows


def run_http(duration_s: float, connections: int) -> list[list[object]]:
    """wrk against the mock's TTS endpoint, with an in-memory then a file ledger; print a table."""
    rows: list[list[object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("memory", "file"):
            ledger = {"path": str(Path(tmp) / "ledger.sqlite")} if kind == "file" else {}
            config = write_config(Path(tmp), kind, base_config(
                keys=[{"key": KEY, "tier": "premium", "scopes": ["*"], "credits": HUGE_BALANCE}],
                rate_limits={"enabled": False}, ledger=ledger))
            port = free_port()
            with serve(mock_argv(config, port), port) as mock:
                wrk(mock.url + TTS_PATH, TTS_BODY, connections, 1)  # warm-up
                result = wrk(mock.url + TTS_PATH, TTS_BODY, connections, duration_s)
            rows.append([kind, connections, f"{result.rps:,.0f}", f"{result.p50_ms:.1f} / {result.p99_ms:.1f}",
                         result.non2xx + result.errors + result.timeouts])
    print_table(["ledger", "conns", "req/s", "p50 / p99 ms", "non-2xx/errors"], rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, run, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--charges", type=int, default=4000, help="charges per run (default 4000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating thread/batch rounds (default 3)")
    parser.add_argument("--concurrency", default="1,16,64,256", help="charging coroutines (default 1,16,64,256)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="event loop (default uvloop)")
    parser.add_argument("--http", action="store_true", help="also wrk the mock's TTS endpoint")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    args = parser.parse_args(argv)
    print(f"## Ledger writes: {args.charges} charges per run, {args.rounds} rounds, {args.loop} loop, "
          f"modes {', '.join(MODES)}")
    print(f"machine: {machine()}")
    run_ledger(args.charges, args.rounds, tuple(int(n) for n in args.concurrency.split(",")), args.loop)
    if args.http:
        print(f"\n## HTTP: POST {TTS_PATH} {TTS_BODY}, wrk -t1 -c{args.connections}, {args.duration:g} s, latency off")
        run_http(args.duration, args.connections)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
