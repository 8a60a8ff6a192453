"""Fleet mode (issue 18): one replica with its state in Redis against the in-process mock, and the
fleet's exactness under load.

1. Throughput (``benchmarks/paired.py``): non-streaming chat (rate limits on: every request judged,
   in Redis for B) with wrk, ABBA rounds, against the mock with in-process state (A) and one replica
   with ``state.url: redis://...`` (B), a real ``redis-server`` on loopback (AOF on, ``appendfsync
   everysec``, as the README runs it). Goal: B serves at least 0.75 of A's requests/s. Redis runs on
   the same 2 cores, so the ratio includes Redis' own CPU.
2. Exactness under load: three replicas, a key with a per-minute limit of ``--limit``; wrk loads all
   three at once for ``--duration`` s (well under the minute); the 200s over the three must be exactly
   the limit.

    .venv/bin/python -m benchmarks.bench_fleet [--duration 3] [--rounds 8] [--connections 64] [--limit 5000]
"""

from __future__ import annotations

import argparse
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

from benchmarks.common import CHAT_BODY, KEY, base_config, free_port, machine, mock_argv, serve, write_config, wrk
from benchmarks.paired import PATH, add_arguments, compare
from tests.fleet_fixtures import RedisServer

#: Goal of issue 18: one Redis replica serves at least this share of the in-process mock's requests/s.
MIN_RATIO = 0.75
CONNECTIONS = (64,)
REPLICAS = 3


def exactness(directory: Path, state: str, duration_s: float, connections: int, limit: int) -> tuple[int, int]:
    """(requests answered 200, requests) over :data:`REPLICAS` replicas loaded at once for a key of ``limit`` RPM."""
    config = write_config(directory, "fleet", base_config(
        keys=[{"key": KEY, "tier": "premium", "scopes": ["*"], "credits": 10**15, "rpm": limit}],
        state={"url": state, "namespace": "exactness"}))
    ports = [free_port() for _ in range(REPLICAS)]
    with ExitStack() as stack:
        servers = [stack.enter_context(serve(mock_argv(config, port), port)) for port in ports]
        with ThreadPoolExecutor(REPLICAS) as pool:
            runs = list(pool.map(lambda server: wrk(server.url + PATH, CHAT_BODY, max(connections // REPLICAS, 1),
                                                    duration_s), servers))
    requests = sum(run.requests for run in runs)
    return requests - sum(run.non2xx for run in runs), requests


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, run both measurements, print Markdown."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, CONNECTIONS)
    parser.add_argument("--limit", type=int, default=5000, help="RPM of the exactness run's key (default 5000)")
    args = parser.parse_args(argv)
    if args.instructions:
        parser.error("--instructions counts one process's instructions; a fleet's work is partly in redis-server")
    connections = tuple(int(c) for c in args.connections.split(","))
    with tempfile.TemporaryDirectory() as name:
        redis = RedisServer(Path(name))
        redis.start()
        try:
            print(f"## Fleet mode: POST {PATH} (non-streaming), one Redis replica against in process, "
                  f"{args.rounds} x {args.duration:g} s each")
            print(f"machine: {machine()}")
            compare(("in process", "Redis"), (base_config(), base_config(state={"url": redis.url, "namespace": "b"})),
                    args.duration, args.rounds, connections, MIN_RATIO, args.together)
            admitted, requests = exactness(Path(name), redis.url, args.duration, max(connections), args.limit)
        finally:
            redis.kill()
    verdict = "exact" if admitted == args.limit else f"WRONG by {admitted - args.limit:+d}"
    print(f"\n{REPLICAS} replicas loaded at once, {requests:,} requests in {args.duration:g} s for a key of "
          f"{args.limit} RPM: {admitted} admitted ({verdict}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
