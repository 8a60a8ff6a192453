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
- ``mock-pure``: ``mock`` with ``MOCK_SERVER_PURE_PYTHON=1``: the modules ``setup.py`` compiles with mypyc
  run from their Python source (``mock_server/compiled.py``); the difference is what compiling saves.
- ``mock-baseline`` (with ``--baseline DIR``): ``mock`` run from the source tree ``DIR`` (another checkout,
  e.g. ``git worktree add /tmp/main main``) on ``PYTHONPATH``: a change against the code before it.

    .venv/bin/python -m benchmarks.bench_cpu [--servers bare,mock] [--rounds 3] [--duration 3] [--connections 64]
                                             [--baseline DIR]

The header says which modules the mock ran compiled (``mock-server --version``).

Figures are printed, never asserted; every wrk run is bounded by ``--duration``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.bench_peers import CONTROL, MOCK_CONFIG, PATH, PEER_CHAT_BODY
from benchmarks.common import (
    VENV_BIN,
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
from mock_server.compiled import PURE_PYTHON_ENV

#: Each server's configuration (None: the bare app).
CONFIGS: Mapping[str, Mapping[str, Any] | None] = {
    "bare": None,
    "mock": MOCK_CONFIG,
    "mock-no-journal": base_config(control=CONTROL, journal={"enabled": False}, observability={"enabled": True}),
    "mock-no-metrics": base_config(control=CONTROL, journal={"enabled": True}, observability={"enabled": False}),
    "mock-no-limits": {**MOCK_CONFIG, "rate_limits": {"enabled": False}},
    "mock-pure": MOCK_CONFIG,
    "mock-baseline": MOCK_CONFIG,
}
#: Environment of a server beside ``os.environ`` (``mock-baseline``'s is ``--baseline``'s PYTHONPATH).
ENVIRONMENTS: dict[str, dict[str, str]] = {"mock-pure": {PURE_PYTHON_ENV: "1"}}


def cpu_times(pid: int) -> tuple[float, float]:
    """(user, system) CPU time process ``pid`` has used so far, in s."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def run(names: list[str], rounds: int, duration_s: float, connections: int) -> dict[str, list[tuple[float, ...]]]:
    """Rotating rounds of wrk on each server of ``names``; returns per server one (req/s, user us/request,
    system us/request) per round. Raises RuntimeError when a server answers anything but 2xx."""
    results: dict[str, list[tuple[float, ...]]] = {name: [] for name in names}
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        servers: dict[str, Server] = {}
        for name in names:
            port = free_port()
            config = CONFIGS[name]
            argv = (bare_argv(port, "uvloop") if config is None
                    else mock_argv(write_config(Path(tmp), name, config), port))
            servers[name] = stack.enter_context(serve(argv, port, probe=PATH, env=ENVIRONMENTS.get(name)))
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
    parser.add_argument("--servers", default=",".join(CONFIGS), help=f"default {','.join(CONFIGS)}")
    parser.add_argument("--rounds", type=int, default=3, help="rotating rounds (default 3)")
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run (default 3)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="source tree of mock-baseline (another checkout; put it in --servers)")
    args = parser.parse_args(argv)
    names = args.servers.split(",")
    if ("mock-baseline" in names) != (args.baseline is not None):
        parser.error("mock-baseline and --baseline DIR go together")
    if args.baseline is not None:
        ENVIRONMENTS["mock-baseline"] = {"PYTHONPATH": str(args.baseline.resolve())}
    unknown = [name for name in names if name not in CONFIGS]
    if unknown:
        parser.error(f"unknown server(s) {', '.join(unknown)}; known: {', '.join(CONFIGS)}")
    print(f"## CPU per served request: POST {PATH} (323-byte body), wrk -t2 -c{args.connections}, "
          f"{args.rounds} x {args.duration:g} s, order rotated each round")
    print(f"machine: {machine()}")
    version = subprocess.run([str(VENV_BIN / "mock-server"), "--version"], capture_output=True, text=True,
                             timeout=60, check=True).stdout.strip()
    pure = "; mock-pure: the same modules from their Python source" if "mock-pure" in names else ""
    print(f"mock: {version}{pure}")
    run(names, args.rounds, args.duration, args.connections)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
