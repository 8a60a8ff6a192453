"""The request journal's cost: non-streaming chat throughput with the journal on against off, with wrk.

Goal (issue 12): the journal must not make the mock slower for everyone; with it on, the mock serves
at least 95% of the requests/s it serves with it off. Two ``mock-server serve`` processes run side
by side on the default stack, identical but for ``journal.enabled`` (and the control API on in both,
as a gateway team runs the mock as an upstream); rounds alternate off, on, on, off... (ABBA), and
the ratio is the median of the per-round ratios. CPU time per request (us, from ``/proc``) is
printed too.

On a shared VM requests/s swing by tens of percent from one 3 s run to the next, so the script also
counts instructions (``--instructions``, valgrind's callgrind, which counts the same for the same
work whatever else runs): the mock's pipeline called in process (no server) for 3,000 and 7,000
chat requests with the journal off and on (both past the ring's 2,000 entries, so that records let
old ones go as in a long run); the difference over 4,000 is the cost per request.

    .venv/bin/python -m benchmarks.bench_journal [--duration 3] [--rounds 8] [--connections 64,256]
    .venv/bin/python -m benchmarks.bench_journal --together          # both servers loaded at once
    .venv/bin/python -m benchmarks.bench_journal --instructions      # needs Debian's valgrind
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import (
    CHAT_BODY,
    ROOT,
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
        size: int = DEFAULT_SIZE, together: bool = False) -> list[dict[str, object]]:
    """Measure each connection count with a journal of ``size`` entries; print a table; return its rows.
    ``together``: load both servers at once in each round (a paired measurement that the machine's
    other load cannot tilt) instead of one after the other."""
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
                    if together:  # both at once: whatever else loads the machine loads both alike
                        before = {name: server.cpu_s() for name, server in pair}
                        with ThreadPoolExecutor(2) as pool:
                            runs = {name: pool.submit(wrk, server.url + PATH, CHAT_BODY, conns, duration_s)
                                    for name, server in pair}
                        for name, server in pair:
                            results[name].append(runs[name].result())
                            cpu[name].append((server.cpu_s() - before[name]) / max(results[name][-1].requests, 1)
                                             * 1e6)
                        continue
                    for name, server in pair if index % 2 == 0 else reversed(pair):
                        before_s = server.cpu_s()
                        results[name].append(wrk(server.url + PATH, CHAT_BODY, conns, duration_s))
                        cpu[name].append((server.cpu_s() - before_s) / max(results[name][-1].requests, 1) * 1e6)
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


#: The in-process driver callgrind counts: ``python -c DRIVER on|off N``.
DRIVER = """
import asyncio, sys, tempfile
from pathlib import Path
from benchmarks.common import base_config, write_config
from benchmarks.profile_chat import _run
from mock_server import create_app
from mock_server.config import load_config
journal = {"enabled": sys.argv[1] == "on"}
with tempfile.TemporaryDirectory() as tmp:
    config = base_config(control={"enabled": True, "key": "bench-control"}, journal=journal)
    app = create_app(load_config(write_config(Path(tmp), "journal", config)))
asyncio.run(_run(app, 300))
asyncio.run(_run(app, int(sys.argv[2])))
"""


def instructions(mode: str, requests: int) -> int:
    """Instructions callgrind counts for the driver's whole run in ``mode`` (``on``/``off``)."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
                               sys.executable, "-c", DRIVER, mode, str(requests)], cwd=ROOT, capture_output=True,
                              text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no count: {done.stderr[-500:]}")
    return int(found.group(1))


def count_instructions() -> None:
    """Print the instructions per request with the journal off and on, and their ratio."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install -y valgrind (Debian's package)")
    # both runs go past the ring's size, so the difference is the steady state: the ring full, each
    # record letting the oldest go (pruning cost nothing while the ring was filling)
    low, high = DEFAULT_SIZE + 1000, DEFAULT_SIZE + 5000
    per = {mode: (instructions(mode, high) - instructions(mode, low)) / (high - low) for mode in ("off", "on")}
    ratio = per["off"] / per["on"]
    print_table(["instructions/request off", "instructions/request on", "added", "off / on", "goal >= 0.95"],
                [[f"{per['off']:,.0f}", f"{per['on']:,.0f}", f"{per['on'] - per['off']:,.0f} "
                  f"({(per['on'] / per['off'] - 1) * 100:.1f}%)", f"{ratio:.3f}", verdict(ratio >= MIN_RATIO)]])


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, run, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run (default 3)")
    parser.add_argument("--rounds", type=int, default=8, help="alternating off/on rounds (default 8)")
    parser.add_argument("--connections", default=",".join(map(str, CONNECTIONS)), help="default 64,256")
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"journal entries (default {DEFAULT_SIZE})")
    parser.add_argument("--together", action="store_true",
                        help="load both servers at once each round (paired: robust to the machine's other load)")
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind instead")
    args = parser.parse_args(argv)
    if args.instructions:
        print("## Request journal: instructions per chat request in process (callgrind), journal off against on")
        count_instructions()
        return 0
    print(f"## Request journal: POST {PATH} (non-streaming), journal on against off, {args.rounds} x "
          f"{args.duration:g} s each")
    print(f"machine: {machine()}")
    run(args.duration, args.rounds, tuple(int(c) for c in args.connections.split(",")), args.size, args.together)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
