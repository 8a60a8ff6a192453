"""The cost of one feature, measured two ways on a noisy machine: paired wrk rounds and instruction counts.

Two ``mock-server serve`` processes run side by side on the default stack, identical but for the
feature (configuration A without it, B with it); rounds alternate A, B, B, A... (ABBA) so that drift
of the machine hits both alike, and the figure is the median of the per-round ratios B/A. CPU time
per request (us, from ``/proc``) is printed too.

On a shared VM requests/s swing by tens of percent from one 3 s run to the next, so
:func:`count_instructions` also counts instructions with valgrind's callgrind, which counts the same
for the same work whatever else runs: the mock's pipeline called in process (no server) for 1,000 and
3,000 chat requests under each configuration; the difference over 2,000 is the cost per request.
:func:`served_cost` goes one step further: it runs the real ``mock-server serve`` process (uvicorn,
uvloop, httptools: everything a served request costs in user space) under valgrind's cachegrind,
sends it a fixed number of chat requests over keep-alive connections, and differences two such runs:
instructions and simulated cache misses per served request, combined into cachegrind's usual
estimate of cycles. Unlike wrk's req/s, these do not move with the machine's other load, and unlike
the in-process count they include the server stack and the cost of what a feature keeps alive
(cache misses), so the ratio of estimated cycles is the served throughput ratio of a single-threaded
server at saturation, as far as a simulated CPU can say.
Used by ``bench_journal.py`` (issue 12) and ``bench_observability.py`` (issue 17).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.common import (
    CHAT_BODY,
    KEY,
    ROOT,
    WrkResult,
    free_port,
    mock_argv,
    print_table,
    serve,
    verdict,
    write_config,
    wrk,
)

#: The usual goal: with the feature, at least 95% of the requests/s (and instructions) without it.
MIN_RATIO = 0.95
PATH = "/v1/chat/completions"


def compare(labels: tuple[str, str], configs: tuple[Mapping[str, Any], Mapping[str, Any]], duration_s: float,
            rounds: int, connections: tuple[int, ...], goal: float = MIN_RATIO,
            together: bool = False) -> list[dict[str, object]]:
    """ABBA rounds of non-streaming chat with wrk, per connection count; prints a table, returns its rows.

    ``labels`` name configuration A (without the feature) and B (with it) in the table. ``together``:
    load both servers at once in each round instead (a paired measurement: whatever else loads the
    machine loads both alike, so the ratio holds still where ABBA rounds swing by tens of percent).
    """
    rows: list[dict[str, object]] = []
    a_name, b_name = labels
    with tempfile.TemporaryDirectory() as tmp:
        a_file = write_config(Path(tmp), "a", configs[0])
        b_file = write_config(Path(tmp), "b", configs[1])
        a_port, b_port = free_port(), free_port()
        with serve(mock_argv(a_file, a_port), a_port) as a_server, serve(mock_argv(b_file, b_port), b_port) as b_server:
            for conns in connections:
                wrk(a_server.url + PATH, CHAT_BODY, conns, 2)  # warm-up
                wrk(b_server.url + PATH, CHAT_BODY, conns, 2)
                results: dict[str, list[WrkResult]] = {"a": [], "b": []}
                cpu: dict[str, list[float]] = {"a": [], "b": []}
                for index in range(rounds):
                    pair = [("a", a_server), ("b", b_server)]
                    if together:
                        started = {name: server.cpu_s() for name, server in pair}
                        with ThreadPoolExecutor(2) as pool:
                            runs = {name: pool.submit(wrk, server.url + PATH, CHAT_BODY, conns, duration_s)
                                    for name, server in pair}
                        for name, server in pair:
                            results[name].append(runs[name].result())
                            cpu[name].append((server.cpu_s() - started[name]) / max(results[name][-1].requests, 1)
                                             * 1e6)
                        continue
                    for name, server in pair if index % 2 == 0 else reversed(pair):
                        before = server.cpu_s()
                        results[name].append(wrk(server.url + PATH, CHAT_BODY, conns, duration_s))
                        cpu[name].append((server.cpu_s() - before) / max(results[name][-1].requests, 1) * 1e6)
                ratios = [b.rps / a.rps for a, b in zip(results["a"], results["b"], strict=True)]
                ratio = statistics.median(ratios)
                failures = sum(r.non2xx + r.errors + r.timeouts for name in results for r in results[name])
                rows.append({"conns": conns, "a": f"{statistics.median(r.rps for r in results['a']):,.0f}",
                             "b": f"{statistics.median(r.rps for r in results['b']):,.0f}", "ratio": f"{ratio:.3f}",
                             "ratios": " ".join(f"{x:.2f}" for x in ratios),
                             "cpu": f"{statistics.median(cpu['a']):.1f} / {statistics.median(cpu['b']):.1f}",
                             "rss": f"{a_server.rss_mb():.0f} / {b_server.rss_mb():.0f}", "failures": failures,
                             "verdict": verdict(ratio >= goal and failures == 0)})
    print_table(["conns", f"{a_name} req/s", f"{b_name} req/s", "ratio (median)", "ratios",
                 f"CPU us/req {a_name} / {b_name}", f"RSS MB {a_name} / {b_name}", "non-2xx/errors",
                 f"goal >= {goal:g}"],
                [[r["conns"], r["a"], r["b"], r["ratio"], r["ratios"], r["cpu"], r["rss"], r["failures"],
                  r["verdict"]] for r in rows])
    return rows


def add_arguments(parser: argparse.ArgumentParser, connections: tuple[int, ...]) -> None:
    """The options every paired benchmark takes: ``--duration`` (s per wrk run), ``--rounds``,
    ``--connections`` (comma-separated, default ``connections``), ``--together`` and ``--instructions``."""
    parser.add_argument("--duration", type=float, default=3.0, help="seconds per wrk run (default 3)")
    parser.add_argument("--rounds", type=int, default=8, help="alternating off/on rounds (default 8)")
    parser.add_argument("--connections", default=",".join(map(str, connections)),
                        help=f"default {','.join(map(str, connections))}")
    parser.add_argument("--together", action="store_true",
                        help="load both servers at once each round (paired: robust to the machine's other load)")
    parser.add_argument("--instructions", action="store_true", help="count instructions with callgrind instead")
    parser.add_argument("--served", action="store_true",
                        help="count instructions and simulated cache misses of the served process (cachegrind)")


#: The in-process driver callgrind counts: ``python -c DRIVER <configuration as JSON> N <chat body as JSON>``
#: (configuration ``null``: the bare app instead of the mock).
DRIVER = """
import asyncio, json, sys, tempfile
from pathlib import Path
from benchmarks.common import write_config
from benchmarks.profile_chat import _run
from mock_server import create_app
from mock_server.config import load_config
from mock_server.cli import settle_heap
config = json.loads(sys.argv[1])
if config is None:  # the bare app (benchmarks/bare_app.py), the reference of the ratios
    from benchmarks.bare_app import app
else:
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(load_config(write_config(Path(tmp), "driver", config)))
settle_heap()  # as mock-server serve does before serving
body = json.loads(sys.argv[3])
asyncio.run(_run(app, 300, body))
asyncio.run(_run(app, int(sys.argv[2]), body))
"""


def instructions(config: Mapping[str, Any] | None, requests: int, body: Mapping[str, Any] = CHAT_BODY) -> int:
    """Instructions callgrind counts for the driver's whole run of ``requests`` chat requests of ``body``
    under ``config`` (None: the bare app's)."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={tmp}/out",
                               sys.executable, "-c", DRIVER, json.dumps(config), str(requests),
                               json.dumps(body)], cwd=ROOT,
                              capture_output=True, text=True, check=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    found = re.search(r"Collected : (\d+)", done.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no count: {done.stderr[-500:]}")
    return int(found.group(1))


def count_instructions(labels: tuple[str, str], configs: tuple[Mapping[str, Any], Mapping[str, Any]],
                       goal: float = MIN_RATIO, low: int = 1000, high: int = 3000) -> dict[str, float]:
    """Print the instructions per request under configuration A and B and their ratio; return them:
    the counts of ``high`` and ``low`` requests, differenced (a feature that fills a ring should
    pass ``low`` beyond the ring's size, so that the steady state is measured)."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install -y valgrind (Debian's package)")
    per = {label: (instructions(config, high) - instructions(config, low)) / (high - low)
           for label, config in zip(labels, configs, strict=True)}
    a, b = (per[label] for label in labels)
    print_table([f"instructions/request {labels[0]}", f"instructions/request {labels[1]}", "added",
                 f"{labels[0]} / {labels[1]}", f"goal >= {goal:g}"],
                [[f"{a:,.0f}", f"{b:,.0f}", f"{b - a:,.0f} ({(b / a - 1) * 100:.1f}%)", f"{a / b:.3f}",
                  verdict(a / b >= goal)]])
    return per


#: Cachegrind's events, in the order of its output file's ``events:`` line (valgrind 3.19, cache simulation on).
CACHE_EVENTS = ("Ir", "I1mr", "ILmr", "Dr", "D1mr", "DLmr", "Dw", "D1mw", "DLmw")
#: The events ``--branch-sim=yes`` adds: conditional branches and their mispredictions, indirect branches
#: (the interpreter's dispatch among them) and theirs.
BRANCH_EVENTS = ("Bc", "Bcm", "Bi", "Bim")
#: Most time a server under cachegrind may take to start, in s (valgrind runs Python ~50x slower).
VALGRIND_START_S = 1200.0


def estimated_cycles(events: Mapping[str, float]) -> float:
    """Cachegrind's customary cost estimate: instructions + 10 per first-level miss + 100 per last-level miss."""
    return (events["Ir"] + 10 * (events["I1mr"] + events["D1mr"] + events["D1mw"])
            + 100 * (events["ILmr"] + events["DLmr"] + events["DLmw"]))


def _send(url: str, requests: int, connections: int, body: Mapping[str, Any] = CHAT_BODY) -> None:
    """``requests`` non-streaming chat requests of ``body`` to ``url`` over ``connections`` keep-alive
    connections; raises RuntimeError on any answer but 200."""
    import asyncio

    import httpx

    async def main() -> None:
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(limits=limits, timeout=600.0,
                                     headers={"Authorization": f"Bearer {KEY}"}) as client:
            remaining = iter(range(requests))

            async def worker() -> None:
                for _ in remaining:
                    answer = await client.post(url, json=body)
                    if answer.status_code != 200:
                        raise RuntimeError(f"{answer.status_code}: {answer.text[:300]}")

            await asyncio.gather(*(worker() for _ in range(connections)))

    asyncio.run(main())


def served_events(config: Mapping[str, Any] | None, requests: int, connections: int = 16,
                  body: Mapping[str, Any] = CHAT_BODY, branches: bool = False,
                  last_level: str | None = None) -> dict[str, float]:
    """Cachegrind's totals (:data:`CACHE_EVENTS`, and :data:`BRANCH_EVENTS` with ``branches``: its branch
    predictor simulated too; ``last_level``, cachegrind's ``--LL=size,associativity,line size``, simulates
    that last-level cache instead of the host's) for one ``mock-server serve`` process run under ``config``
    that starts, answers one probe and ``requests`` chat requests of ``body``, and stops on SIGINT.
    ``config`` None: the bare app (``benchmarks/bare_app.py``) under uvicorn on the mock's default stack
    (uvloop + httptools, the mock's protocol classes) instead, counted the same way."""
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install -y valgrind (Debian's package)")
    import signal
    import time

    import httpx

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        argv = ["valgrind", "--tool=cachegrind", "--cache-sim=yes", f"--branch-sim={'yes' if branches else 'no'}",
                *([f"--LL={last_level}"] if last_level else []), f"--cachegrind-out-file={tmp}/out", sys.executable]
        if config is None:  # on the mock's protocol classes, as bare_argv serves it
            argv += ["-m", "benchmarks.bare_app", "--stack", "uvloop"]
        else:
            if "state" in config:  # a fleet replica: a namespace of its own, so runs side by side share no windows
                config = {**config, "state": {**config["state"], "namespace": f"served-{port}"}}
            config_file = write_config(Path(tmp), "served", config)
            argv += ["-m", "mock_server", "serve", "--config", str(config_file)]
        argv += ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
        process = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + VALGRIND_START_S
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server under valgrind did not start: {process.returncode}")
                try:
                    httpx.get(url + "/v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=5.0)
                    break
                except httpx.TransportError:
                    time.sleep(0.5)
            _send(url + PATH, requests, connections, body)
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=VALGRIND_START_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        text = Path(tmp, "out").read_text()
    events = re.search(r"^events: (.+)$", text, re.M)
    summary = re.search(r"^summary: (.+)$", text, re.M)
    if events is None or summary is None:
        raise SystemExit("cachegrind wrote no summary")
    return dict(zip(events.group(1).split(), map(float, summary.group(1).split()), strict=True))


def served_cost(labels: tuple[str, str], configs: tuple[Mapping[str, Any], Mapping[str, Any]],
                goal: float = MIN_RATIO, low: int = 1000, high: int = 3000) -> dict[str, dict[str, float]]:
    """Print, per served chat request under configuration A and B, instructions, last-level cache misses and
    :func:`estimated_cycles`, and the ratio A/B of the cycles (the served throughput ratio); return them.
    The four server runs (two configurations, ``low`` and ``high`` requests) go two at a time."""
    with ThreadPoolExecutor(2) as pool:
        runs = {(label, n): pool.submit(served_events, config, n)
                for label, config in zip(labels, configs, strict=True) for n in (low, high)}
        totals = {key: run.result() for key, run in runs.items()}
    per: dict[str, dict[str, float]] = {}
    for label in labels:
        a, b = totals[(label, low)], totals[(label, high)]
        per[label] = {event: (b[event] - a[event]) / (high - low) for event in a}
        per[label]["cycles"] = estimated_cycles(per[label])
        per[label]["l1"] = per[label]["I1mr"] + per[label]["D1mr"] + per[label]["D1mw"]
        per[label]["ll"] = per[label]["ILmr"] + per[label]["DLmr"] + per[label]["DLmw"]
    first, second = (per[label] for label in labels)
    ratio = first["cycles"] / second["cycles"]
    shown = (("instructions", "Ir"), ("first-level misses", "l1"), ("last-level misses", "ll"),
             ("estimated cycles", "cycles"))
    print_table(["per served request", labels[0], labels[1], "added"],
                [[name, f"{first[key]:,.1f}", f"{second[key]:,.1f}", f"{second[key] - first[key]:+,.1f}"
                  + (f" ({(second[key] / first[key] - 1) * 100:+.1f}%)" if first[key] >= 100 else "")]
                 for name, key in shown])
    print(f"served throughput ratio {labels[1]} / {labels[0]} (estimated cycles {labels[0]} / {labels[1]}): "
          f"{ratio:.3f}, goal >= {goal:g}: {verdict(ratio >= goal)}")
    return per
