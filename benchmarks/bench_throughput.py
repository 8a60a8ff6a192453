"""Throughput: non-streaming POST /v1/chat/completions, the mock against the bare app, with wrk.

Budget (issue 7): the mock, with latency off but auth, request validation, rate limiting and the
credits ledger on, serves at least 50% of the requests/s of the bare Starlette app
(``bare_app.py``) on the same uvicorn stack and worker count (1). Both servers run side by side;
for each stack and connection count the runs alternate bare, mock, mock, bare, bare, mock...
(``--rounds`` pairs of short runs, the order flipped every round so a drift in the machine's speed
weighs on both alike), and the ratio is the median of the per-round ratios.
p50 and p99 latency are wrk's, at 64 and 256 connections. Each server's CPU time per request (us,
from ``/proc``) is printed too: on a shared machine it moves less than requests/s, so its ratio
(bare CPU per request over the mock's) is a steadier view of the same budget.

    .venv/bin/python -m benchmarks.bench_throughput [--duration 3] [--rounds 8] [--stacks uvloop,asyncio]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from benchmarks.common import (
    CHAT_BODY,
    STACKS,
    WrkResult,
    bare_argv,
    base_config,
    free_port,
    machine,
    mock_argv,
    print_table,
    serve,
    verdict,
    write_config,
    wrk,
)

#: The budget: the mock's requests/s over the bare app's.
MIN_RATIO = 0.5
#: Connection counts the issue asks latency for.
CONNECTIONS = (64, 256)
PATH = "/v1/chat/completions"


def run(duration_s: float, rounds: int, stacks: list[str], connections: tuple[int, ...]) -> list[dict[str, object]]:
    """Measure every stack and connection count; print a table; return its rows."""
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), "throughput", base_config())
        for stack in stacks:
            bare_port, mock_port = free_port(), free_port()
            with serve(bare_argv(bare_port, stack), bare_port, probe=PATH) as bare, \
                    serve(mock_argv(config, mock_port, stack), mock_port) as mock:
                for conns in connections:
                    wrk(bare.url + PATH, CHAT_BODY, conns, 2)  # warm-up: connections, caches
                    wrk(mock.url + PATH, CHAT_BODY, conns, 2)
                    bares: list[WrkResult] = []
                    mocks: list[WrkResult] = []
                    cpu_us: dict[str, list[float]] = {"bare": [], "mock": []}
                    for index in range(rounds):
                        pair = [("bare", bare, bares), ("mock", mock, mocks)]
                        for name, server, results in pair if index % 2 == 0 else reversed(pair):  # ABBA
                            before = server.cpu_s()
                            results.append(wrk(server.url + PATH, CHAT_BODY, conns, duration_s))
                            cpu_us[name].append((server.cpu_s() - before) / max(results[-1].requests, 1) * 1e6)
                    rows.append(_row(stack, conns, bares, mocks, mock.rss_mb(), cpu_us))
    print_table(["stack", "conns", "bare req/s", "mock req/s", "ratio (median)", "ratios", "bare p50/p99 ms",
                 "mock p50/p99 ms", "CPU us/req bare / mock", "CPU ratio", "mock non-2xx/errors", "mock RSS MB",
                 "budget >= 0.50"],
                [[r["stack"], r["conns"], r["bare_rps"], r["mock_rps"], r["ratio"], r["ratios"], r["bare_lat"],
                  r["mock_lat"], r["cpu"], r["cpu_ratio"], r["failures"], r["rss"], r["verdict"]] for r in rows])
    return rows


def _row(stack: str, conns: int, bares: list[WrkResult], mocks: list[WrkResult], rss: float,
         cpu_us: dict[str, list[float]]) -> dict[str, object]:
    ratios = [m.rps / b.rps for b, m in zip(bares, mocks, strict=True)]
    bare_cpu, mock_cpu = statistics.median(cpu_us["bare"]), statistics.median(cpu_us["mock"])
    ratio = statistics.median(ratios)
    bare = statistics.median(r.rps for r in bares)
    mock = statistics.median(r.rps for r in mocks)
    failures = sum(r.non2xx + r.errors + r.timeouts for r in mocks)
    return {
        "stack": f"{stack} ({'+'.join(STACKS[stack].values())})", "conns": conns, "bare_rps": f"{bare:,.0f}",
        "mock_rps": f"{mock:,.0f}", "ratio": f"{ratio:.2f}", "ratios": " ".join(f"{x:.2f}" for x in ratios),
        "bare_lat": " / ".join(f"{statistics.median(getattr(r, k) for r in bares):.1f}" for k in ("p50_ms", "p99_ms")),
        "mock_lat": " / ".join(f"{statistics.median(getattr(r, k) for r in mocks):.1f}" for k in ("p50_ms", "p99_ms")),
        "cpu": f"{bare_cpu:.0f} / {mock_cpu:.0f}", "cpu_ratio": f"{bare_cpu / mock_cpu:.2f}",
        "failures": failures, "rss": f"{rss:.0f}", "ratio_value": ratio,
        "verdict": verdict(ratio >= MIN_RATIO and failures == 0),
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, run, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run (default 3)")
    parser.add_argument("--rounds", type=int, default=8, help="alternating bare/mock rounds (default 8)")
    parser.add_argument("--stacks", default=",".join(STACKS), help="comma-separated: uvloop,asyncio")
    parser.add_argument("--connections", default=",".join(map(str, CONNECTIONS)), help="default 64,256")
    args = parser.parse_args(argv)
    print(f"## Throughput: POST {PATH} (non-streaming), wrk -t1, {args.rounds} x {args.duration:g} s per app")
    print(f"machine: {machine()}")
    run(args.duration, args.rounds, args.stacks.split(","), tuple(int(c) for c in args.connections.split(",")))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
