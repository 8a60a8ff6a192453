"""Scaling past one core (issue 19): ``mock-server serve --workers N`` against one process.

Non-streaming chat (rate limits and the ledger on: every request judged) with wrk at each connection
count, against three servers up side by side:

- **1 in process**: ``mock-server serve`` with its state in the process (the default);
- **1 Redis**: one worker with ``--state redis://...`` (a real ``redis-server`` on loopback, AOF on,
  ``appendfsync everysec``, as the README runs it);
- **N Redis**: ``--workers N --state redis://...`` (default N = 2), each worker a replica of that state.

Rounds rotate the order (A B C, C B A, ...) so that drift of a shared machine hits all alike; each
figure is the median over the rounds. Besides requests/s and latency it prints:

- the CPU per request (us, from ``/proc``) of the server's processes and of Redis: steadier than
  requests/s on a shared machine, and what sizing needs (a worker serves at most 1e6 / its CPU us
  per request on a core of its own);
- the cores the server and Redis kept busy (fewer than the machine's: wrk or other load had the rest);
- how the N workers shared their CPU (wrk opens its connections at once and the kernel hands each to
  whichever worker accepts first: the split says whether they were evenly loaded).

The scaling is N Redis over 1 Redis (the same state home); N Redis over 1 in process is what an
operator gains by the switch. Redis, wrk and the workers share the machine's cores: on 2 cores, 2
workers cannot reach twice one worker.

    .venv/bin/python -m benchmarks.bench_workers [--workers 2] [--duration 3] [--rounds 3] [--connections 64,256]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import (
    CHAT_BODY,
    Server,
    base_config,
    cpu_s,
    descendants,
    free_port,
    machine,
    mock_argv,
    print_table,
    serve,
    write_config,
    wrk,
)
from tests.fleet_fixtures import RedisServer, workers_of

PATH = "/v1/chat/completions"
CONNECTIONS = "64,256"


@dataclass
class Setup:
    """One server under test: its label, its process (once started) and its worker count."""

    label: str
    workers: int
    server: Server | None = None

    def processes(self) -> list[int]:
        """The server's pids: the process itself and every process below it (workers, offload children)."""
        assert self.server is not None
        return [self.server.process.pid, *descendants(self.server.process.pid)]

    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the server itself, or with workers its direct children."""
        assert self.server is not None
        pid = self.server.process.pid
        return [pid] if self.workers == 1 else workers_of(pid)


@dataclass
class Sample:
    """One wrk run: requests/s, p50/p99 (ms), CPU per request (us) of the server's processes and of Redis,
    and each worker's share of the server's CPU."""

    rps: float
    p50_ms: float
    p99_ms: float
    cpu_us: float
    redis_us: float
    split: list[float]
    failed: int


def _cpu(pids: list[int]) -> list[float]:
    times = []
    for pid in pids:
        try:
            times.append(cpu_s(pid))
        except OSError:  # the process ended meanwhile
            times.append(0.0)
    return times


def run(setup: Setup, redis_pid: int, connections: int, duration_s: float) -> Sample:
    """Load ``setup`` with wrk for ``duration_s`` s over ``connections`` connections."""
    assert setup.server is not None
    everything, workers = setup.processes(), setup.worker_pids()
    before = _cpu(everything + workers + [redis_pid])
    result = wrk(setup.server.url + PATH, CHAT_BODY, connections, duration_s)
    used = [after - start for after, start in zip(_cpu(everything + workers + [redis_pid]), before, strict=True)]
    server_s, worker_s = sum(used[:len(everything)]), used[len(everything):-1]
    redis_s = used[-1] if "Redis" in setup.label else 0.0
    total = sum(worker_s) or 1.0
    per_request = 1e6 / max(result.requests, 1)
    return Sample(result.rps, result.p50_ms, result.p99_ms, server_s * per_request, redis_s * per_request,
                  [share / total for share in worker_s], result.non2xx + result.errors + result.timeouts)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, measure, print Markdown."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the third server (default 2)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run (default 3)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the three servers (default 3)")
    parser.add_argument("--connections", default=CONNECTIONS, help=f"comma-separated (default {CONNECTIONS})")
    args = parser.parse_args(argv)
    connections = [int(c) for c in args.connections.split(",")]
    setups = [Setup("1 in process", 1), Setup("1 Redis", 1), Setup(f"{args.workers} Redis", args.workers)]
    samples: dict[tuple[str, int], list[Sample]] = {(s.label, c): [] for s in setups for c in connections}
    with tempfile.TemporaryDirectory() as name, ExitStack() as stack:
        redis = RedisServer(Path(name))
        redis.start()
        stack.callback(redis.kill)
        assert redis.process is not None
        for index, setup in enumerate(setups):
            state = {"url": redis.url, "namespace": f"workers{index}"} if "Redis" in setup.label else {}
            config = write_config(Path(name), f"setup{index}", base_config(**({"state": state} if state else {})))
            port = free_port()
            argv = mock_argv(config, port) + (["--workers", str(setup.workers)] if setup.workers > 1 else [])
            setup.server = stack.enter_context(serve(argv, port))
        print(f"## Scaling past one core: POST {PATH} (non-streaming), {args.rounds} rounds x "
              f"{args.duration:g} s per server and connection count")
        print(f"machine: {machine()}\n")
        for round_index in range(args.rounds):
            order = setups if round_index % 2 == 0 else setups[::-1]
            for count in connections:
                for setup in order:
                    samples[(setup.label, count)].append(run(setup, redis.process.pid, count, args.duration))
    _report(setups, connections, samples)
    return 0


def _report(setups: list[Setup], connections: list[int], samples: dict[tuple[str, int], list[Sample]]) -> None:
    rows = []
    for count in connections:
        base = {setup.label: statistics.median(s.rps for s in samples[(setup.label, count)]) for setup in setups}
        for setup in setups:
            runs = samples[(setup.label, count)]
            rps = base[setup.label]
            split = "/".join(f"{statistics.median(s.split[i] for s in runs):.0%}" for i in range(len(runs[0].split)))
            rows.append([setup.label, count, f"{rps:,.0f}", f"{rps / base[setups[0].label]:.2f}",
                         f"{rps / base[setups[1].label]:.2f}",
                         f"{statistics.median(s.p50_ms for s in runs):.1f}",
                         f"{statistics.median(s.p99_ms for s in runs):.1f}",
                         f"{statistics.median(s.cpu_us for s in runs):.0f}",
                         f"{statistics.median(s.redis_us for s in runs):.0f}",
                         f"{statistics.median((s.cpu_us + s.redis_us) * s.rps / 1e6 for s in runs):.2f}",
                         split if setup.workers > 1 else "-", sum(s.failed for s in runs)])
    print_table(["server", "connections", "req/s", "x 1 in process", "x 1 Redis", "p50 ms", "p99 ms",
                 "server CPU us/req", "Redis CPU us/req", "cores busy", "workers' CPU split", "non-2xx/errors"], rows)
    last = setups[-1]
    for count in connections:
        with contextlib.suppress(statistics.StatisticsError):
            one = statistics.median(s.rps for s in samples[(setups[1].label, count)])
            many = statistics.median(s.rps for s in samples[(last.label, count)])
            print(f"\nScaling at {count} connections: {last.workers} workers serve {many / one:.2f} x one Redis "
                  f"worker ({many / one / last.workers:.0%} of linear).")


if __name__ == "__main__":
    raise SystemExit(main())
