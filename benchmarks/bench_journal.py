"""The request journal's cost: non-streaming chat throughput with the journal on against off, with wrk.

Goal (issue 12): the journal must not make the mock slower for everyone; with it on, the mock serves
at least 95% of the requests/s it serves with it off. Two ``mock-server serve`` processes run side
by side on the default stack, identical but for ``journal.enabled`` (and the control API on in both,
as a gateway team runs the mock as an upstream); rounds alternate off, on, on, off... (ABBA), and
the ratio is the median of the per-round ratios. CPU time per request (us, from ``/proc``) is
printed too.

    .venv/bin/python -m benchmarks.bench_journal [--duration 3] [--rounds 8] [--connections 64,256]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from benchmarks.common import (
    CHAT_BODY,
    WrkResult,
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
from mock_server.journal import DEFAULT_SIZE

#: The goal: requests/s with the journal on over requests/s with it off.
MIN_RATIO = 0.95
CONNECTIONS = (64, 256)
PATH = "/v1/chat/completions"


def run(duration_s: float, rounds: int, connections: tuple[int, ...],
        size: int = DEFAULT_SIZE) -> list[dict[str, object]]:
    """Measure each connection count with a journal of ``size`` entries; print a table; return its rows."""
    rows: list[dict[str, object]] = []
    control = {"enabled": True, "key": "bench-control"}
    with tempfile.TemporaryDirectory() as tmp:
        off = write_config(Path(tmp), "journal-off", base_config(control=control, journal={"enabled": False}))
        journal = {"enabled": True, "size": size}
        on = write_config(Path(tmp), "journal-on", base_config(control=control, journal=journal))
        off_port, on_port = free_port(), free_port()
        with serve(mock_argv(off, off_port), off_port) as without, serve(mock_argv(on, on_port), on_port) as with_:
            for conns in connections:
                wrk(without.url + PATH, CHAT_BODY, conns, 2)  # warm-up
                wrk(with_.url + PATH, CHAT_BODY, conns, 2)
                results: dict[str, list[WrkResult]] = {"off": [], "on": []}
                cpu: dict[str, list[float]] = {"off": [], "on": []}
                for index in range(rounds):
                    pair = [("off", without), ("on", with_)]
                    for name, server in pair if index % 2 == 0 else reversed(pair):
                        before = server.cpu_s()
                        results[name].append(wrk(server.url + PATH, CHAT_BODY, conns, duration_s))
                        cpu[name].append((server.cpu_s() - before) / max(results[name][-1].requests, 1) * 1e6)
                ratios = [b.rps / a.rps for a, b in zip(results["off"], results["on"], strict=True)]
                ratio = statistics.median(ratios)
                failures = sum(r.non2xx + r.errors + r.timeouts for name in results for r in results[name])
                rows.append({"conns": conns, "off": f"{statistics.median(r.rps for r in results['off']):,.0f}",
                             "on": f"{statistics.median(r.rps for r in results['on']):,.0f}", "ratio": f"{ratio:.3f}",
                             "ratios": " ".join(f"{x:.2f}" for x in ratios),
                             "cpu": f"{statistics.median(cpu['off']):.1f} / {statistics.median(cpu['on']):.1f}",
                             "rss": f"{without.rss_mb():.0f} / {with_.rss_mb():.0f}", "failures": failures,
                             "verdict": verdict(ratio >= MIN_RATIO and failures == 0)})
    print_table(["conns", "journal off req/s", "journal on req/s", "ratio (median)", "ratios",
                 "CPU us/req off / on", "RSS MB off / on", "non-2xx/errors", "goal >= 0.95"],
                [[r["conns"], r["off"], r["on"], r["ratio"], r["ratios"], r["cpu"], r["rss"], r["failures"],
                  r["verdict"]] for r in rows])
    return rows


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, run, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run (default 3)")
    parser.add_argument("--rounds", type=int, default=8, help="alternating off/on rounds (default 8)")
    parser.add_argument("--connections", default=",".join(map(str, CONNECTIONS)), help="default 64,256")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"journal entries (default {DEFAULT_SIZE})")
    args = parser.parse_args(argv)
    print(f"## Request journal: POST {PATH} (non-streaming), journal on against off, {args.rounds} x "
          f"{args.duration:g} s each")
    print(f"machine: {machine()}")
    run(args.duration, args.rounds, tuple(int(c) for c in args.connections.split(",")), args.size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
