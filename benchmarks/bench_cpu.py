"""CPU time per served chat request, paired: the bare app, the mock, and the mock without one feature (issue 19).

Where ``bench_peers`` judges the goals (requests/s against the bare app and aimock), this script says where
the mock's CPU goes when served, in the unit that moves least with the machine's other load: CPU time
(user and system, from ``/proc/<pid>/stat``) per answered request. Every server runs side by side on
127.0.0.1; each round runs wrk (``-t2``, ``--connections``, ``--duration`` s) on each server in turn, the
order rotated every round, so that a drift of the machine weighs on each alike. The request is
``bench_peers.PEER_CHAT_BODY`` (323 bytes).

Servers (``--servers``, comma-separated; default all):

- ``bare``: ``benchmarks/bare_app.py`` under uvicorn (uvloop + httptools), as ``bench_peers`` runs it.
- ``mock``: ``mock-server serve`` with ``bench_peers.MOCK_CONFIG`` (every feature on).
- ``mock-no-journal``, ``mock-no-metrics``, ``mock-no-limits``: the same without the request journal,
  without observability (``/metrics`` counting and ``X-Request-Id``), without rate limits (the RPM and
  TPM stage and its six headers). The difference to ``mock`` is that feature's served cost.
- ``mock-base``: the mock of :data:`MOCK_CONFIG` run from another copy of the code (``--baseline DIR``, for
  example ``git archive main | tar -x -C DIR``), so that a change is measured side by side with the code
  it replaces (``python -P``: DIR's code, not this tree's, is what runs).

    .venv/bin/python -m benchmarks.bench_cpu [--servers bare,mock] [--rounds 3] [--duration 3] [--connections 64]
    .venv/bin/python -m benchmarks.bench_cpu --servers mock-base,mock --baseline /tmp/main-copy

Figures are printed, never asserted; every wrk run is bounded by ``--duration``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.bench_peers import CONTROL, MOCK_CONFIG, PATH, PEER_CHAT_BODY
from benchmarks.common import (
    Server,
    bare_argv,
    base_config,
    free_port,
    machine,
    mock_argv,
    print_table,
    serve,
    write_config,
    wrk,
)

#: Each server's configuration (None: the bare app).
CONFIGS: Mapping[str, Mapping[str, Any] | None] = {
    "bare": None,
    "mock": MOCK_CONFIG,
    "mock-no-journal": base_config(control=CONTROL, journal={"enabled": False}, observability={"enabled": True}),
    "mock-no-metrics": base_config(control=CONTROL, journal={"enabled": True}, observability={"enabled": False}),
    "mock-no-limits": {**MOCK_CONFIG, "rate_limits": {"enabled": False}},
    "mock-base": MOCK_CONFIG,
}
#: The server that runs the code of ``--baseline`` rather than this tree's.
BASELINE = "mock-base"


def baseline_argv(tree: Path, config: Path, port: int) -> tuple[list[str], dict[str, str]]:
    """``mock-server serve`` of ``config`` on ``port`` run from the code in ``tree`` (argv, environment)."""
    argv = mock_argv(config, port)
    return [sys.executable, "-P", "-m", "mock_server", *argv[1:]], {"PYTHONPATH": str(tree)}


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU time process ``pid`` has used so far, in s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def run(names: list[str], rounds: int, duration_s: float, connections: int,
        baseline: Path | None = None) -> dict[str, list[tuple[float, ...]]]:
    """Rotating rounds of wrk on each server of ``names``; returns per server one (req/s, user us/request,
    system us/request) per round. ``baseline``: the tree whose code :data:`BASELINE` runs. Raises
    RuntimeError when a server answers anything but 2xx."""
    results: dict[str, list[tuple[float, ...]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        servers: dict[str, Server] = {}
        for name in names:
            port = free_port()
            config = CONFIGS[name]
            env: dict[str, str] = {}
            if config is None:
                argv = bare_argv(port, "uvloop")
            elif name == BASELINE:
                if baseline is None:
                    raise ValueError(f"{BASELINE} needs --baseline")
                argv, env = baseline_argv(baseline, write_config(Path(tmp), name, config), port)
            else:
                argv = mock_argv(write_config(Path(tmp), name, config), port)
            servers[name] = stack.enter_context(serve(argv, port, probe=PATH, env=env))
        for server in servers.values():  # warm-up: connections, caches, the journal's ring filled
            wrk(server.url + PATH, PEER_CHAT_BODY, connections, 2, 2)
        for index in range(rounds):
            shift = index % len(names)
            for name in names[shift:] + names[:shift]:
                server = servers[name]
                before = cpu_times(server.process.pid)
                result = wrk(server.url + PATH, PEER_CHAT_BODY, connections, duration_s, 2)
                after = cpu_times(server.process.pid)
                if result.non2xx or result.errors or result.timeouts:
                    raise RuntimeError(f"{name}: {result}")
                per = 1e6 / max(result.requests, 1)
                results[name].append((result.rps, (after[0] - before[0]) * per, (after[1] - before[1]) * per))
        rss = {name: server.rss_mb() for name, server in servers.items()}
    rows = []
    mock_cpu = statistics.median(u + s for _, u, s in results["mock"]) if "mock" in results else None
    for name, rounds_of in results.items():
        total = [user + system for _, user, system in rounds_of]
        median = statistics.median(total)
        user, system = (statistics.median(r[i] for r in rounds_of) for i in (1, 2))
        rows.append([name, f"{statistics.median(r[0] for r in rounds_of):,.0f}", f"{median:.1f}",
                     f"{user:.1f} / {system:.1f}",
                     " ".join(f"{t:.1f}" for t in total),
                     f"{median - mock_cpu:+.1f}" if mock_cpu is not None and name != "mock" else "",
                     f"{rss[name]:.0f}"])
    print_table(["server", "req/s (median)", "CPU us/request (median)", "user / system us", "per round",
                 "against mock us", "RSS MB"], rows)
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, run, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--servers", default=",".join(name for name in CONFIGS if name != BASELINE),
                        help=f"default {','.join(name for name in CONFIGS if name != BASELINE)}")
    parser.add_argument("--rounds", type=int, default=3, help="rotating rounds (default 3)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run (default 3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--baseline", type=Path, help=f"a copy of the code that {BASELINE} runs")
    args = parser.parse_args(argv)
    names = args.servers.split(",")
    if BASELINE in names and args.baseline is None:
        parser.error(f"{BASELINE} needs --baseline DIR")
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown server(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    print(f"## CPU per served request: POST {PATH} (323-byte body), wrk -t2 -c{args.connections}, "
          f"{args.rounds} x {args.duration:g} s, order rotated each round")
    print(f"machine: {machine()}")
    run(names, args.rounds, args.duration, args.connections, args.baseline)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
