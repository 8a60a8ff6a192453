"""Fleet mode (issue 18): one replica with its state in Redis against the in-process mock, and the
fleet's exactness under load.

1. Throughput: chat completions (rate limits on: every request judged) with wrk against the mock
   with in-process state, then against one replica with ``--state redis://...`` (a real
   ``redis-server`` on loopback, AOF on, ``appendfsync everysec``). Goal: the Redis replica serves at
   least 0.75 of the in-process requests/s.
2. Exactness under load: three replicas, a key with a per-minute limit of ``--limit``; wrk loads all
   three at once for ``--seconds`` s (well under the minute), and the 200s counted over the three must
   be exactly the limit.

``python -m benchmarks.bench_fleet [--seconds S] [--connections N] [--limit L]``; prints Markdown.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import tempfile
from pathlib import Path

from benchmarks.common import KEY, base_config, free_port, mock_argv, serve, write_config, wrk
from tests.fleet_fixtures import RedisServer

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 16}


def _throughput(config: Path, seconds: float, connections: int, state: str | None) -> float:
    port = free_port()
    argv = mock_argv(config, port) + (["--state", state] if state else [])
    with serve(argv, port):
        wrk(f"http://127.0.0.1:{port}/v1/chat/completions", CHAT, connections, 1.0)  # warm-up
        return wrk(f"http://127.0.0.1:{port}/v1/chat/completions", CHAT, connections, seconds).rps


def _exactness(directory: Path, state: str, seconds: float, connections: int, limit: int) -> tuple[int, int]:
    """(200s, requests) over three replicas loaded at once, for a key of ``limit`` RPM."""
    config = write_config(directory, "fleet", base_config(
        keys=[{"key": KEY, "tier": "premium", "scopes": ["*"], "credits": 10**15, "rpm": limit}],
        rate_limits={"enabled": True, "rpm": limit, "tpm": 10**12}, state={"url": state, "namespace": "exact"}))
    ports = [free_port() for _ in range(3)]
    with serve(mock_argv(config, ports[0]), ports[0]), serve(mock_argv(config, ports[1]), ports[1]), \
            serve(mock_argv(config, ports[2]), ports[2]), concurrent.futures.ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda port: wrk(f"http://127.0.0.1:{port}/v1/chat/completions", CHAT,
                                              max(connections // 3, 1), seconds), ports))
    requests = sum(run.requests for run in runs)
    return requests - sum(run.non2xx for run in runs), requests


def main() -> None:
    """Run both measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds of load per run (default 5)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--limit", type=int, default=5000, help="RPM of the exactness run's key (default 5000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        redis = RedisServer(directory)
        redis.start()
        try:
            config = write_config(directory, "mock", base_config())
            local = _throughput(config, args.seconds, args.connections, None)
            shared = _throughput(config, args.seconds, args.connections, redis.url)
            admitted, requests = _exactness(directory, redis.url, args.seconds, args.connections, args.limit)
        finally:
            redis.kill()
    print("| state | chat req/s | ratio |\n|---|---|---|")
    print(f"| in process | {local:,.0f} | 1.00 |")
    print(f"| Redis (one replica) | {shared:,.0f} | {shared / local:.2f} (goal >= 0.75) |")
    verdict = "exact" if admitted == args.limit else f"WRONG by {admitted - args.limit:+d}"
    print(f"\nThree replicas, {requests:,} requests in {args.seconds:g} s for a key of {args.limit} RPM: "
          f"{admitted} admitted ({verdict}).")


if __name__ == "__main__":
    main()
