"""The mock against the fastest peer mock (issue 19): non-streaming chat with wrk, and 1,000 SSE streams.

Three servers side by side on 127.0.0.1, one process each:

- ``bare``: the bare Starlette app (``bare_app.py``) on the mock's stack (uvicorn, uvloop, httptools) and its
  protocol classes (``mock_server/http_stack.py``), so that the ratio is the mock's own work.
- ``mock``: ``mock-server serve`` with every feature a user would leave on: the key check, request
  validation, rate limits (RPM and TPM, high enough never to refuse), and the request journal and
  the metrics of issues 12 and 17 (control API on, so the journal records; observability on:
  ``/metrics`` counting and ``X-Request-Id``). Latency simulation off; chat charges no credits, so
  the ledger is not on its path.
- ``aimock``: CopilotKit's ``@copilotkit/aimock`` (:data:`AIMOCK_VERSION`, npm), installed by
  :func:`setup_aimock` into ``benchmarks/.peers/`` (gitignored), run under ``node`` with its key check
  on (``auth.apiKeys``) and one fixture that answers the request's user message with a fixed text.

What each does per request, so that the figures compare like with like:

| | bare | mock | aimock |
|---|---|---|---|
| key check | no | yes (key, scopes, tier) | yes (``auth.apiKeys``) |
| body parsed | no | yes (orjson) | yes (``JSON.parse``) |
| JSON Schema validation of the body | no | yes (the spec's request schema, Rust) | no |
| rate limits | no | RPM and TPM sliding windows, six ``x-ratelimit-*`` headers | no (static headers on 429s only) |
| answer | a fixed dict | generated (hash-keyed words), usage counted | the fixture's fixed text, usage estimated |
| journal | no | a flat record and the answer body in a ring of 2,000 | an entry in a list of 1,000 |
| metrics | no | counter and latency histogram per operation | off (its default; ``--aimock-metrics``) |
| request id | no | ``X-Request-Id`` | ``X-Request-Id`` and CORS headers |

Throughput: for each connection count, ``--rounds`` rounds of ``--duration`` s of wrk (``-t2``) on
each server, the order rotated each round (bare, mock, aimock; then mock, aimock, bare; ...) so that
a drift of the machine weighs on each alike; every request is :data:`PEER_CHAT_BODY` (about 330
bytes with a system and a user message, temperature and max_tokens). Per server: req/s, p50/p99
(wrk), CPU time per request (us, ``/proc``: the whole process, node's threads included), RSS; and
per round the ratios mock/aimock and mock/bare, judged on their median. The goal: mock/aimock
>= 1.0 at 64 and 256 connections, mock/bare >= 0.6, with no error and no non-2xx answer.

SSE: ``--streams`` (1,000) concurrent streams on the mock and on aimock (the client, the ramp and
the lateness measure are ``bench_streaming.py``'s), each paced at ``--gap`` (50 ms) per event: the
mock with a fixed per-token latency and n=4 choices (105 ``data:`` events), aimock with ``latency``
and a fixture text of 102 chunks (role, 102 content chunks, finish, ``[DONE]``: 105 events; aimock
writes ``[DONE]`` right after the finish chunk, so that last gap, 0 ms by design, is left out of
its lateness). Reported: streams held at once and lost, gap lateness p50/p99 in the window where
all streams are open, peak RSS, server CPU, and the mock/aimock lateness ratio per round.

    .venv/bin/python -m benchmarks.bench_peers --setup       # npm install into benchmarks/.peers/
    .venv/bin/python -m benchmarks.bench_peers [--duration 8] [--rounds 5] [--connections 64,256] \
        [--streams 1000] [--sse-rounds 3] [--skip-sse] [--skip-throughput]
    .venv/bin/python -m benchmarks.bench_peers --instructions  # bare and mock instructions/request in process
    .venv/bin/python -m benchmarks.bench_peers --served        # the same per served request (cachegrind)
    .venv/bin/python -m benchmarks.bench_peers --served --branches  # and branch mispredictions per request
    .venv/bin/python -m benchmarks.bench_peers --served --last-level 2097152,16,64  # misses of a 2 MiB L2
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.bench_streaming import Measure, expected_events, run_streams, streaming_config
from benchmarks.common import (
    KEY,
    ROOT,
    STACKS,
    Server,
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

#: The peer, pinned: the version issue 19 measured.
AIMOCK_PACKAGE = "@copilotkit/aimock"
AIMOCK_VERSION = "1.43.0"
#: Where the benchmark installs its peers (gitignored; never committed).
PEERS = ROOT / "benchmarks" / ".peers"
PATH = "/v1/chat/completions"
CONNECTIONS = (64, 256)
#: Goals of issue 19: the mock's req/s over aimock's, and over the bare app's.
MIN_AIMOCK_RATIO = 1.0
MIN_BARE_RATIO = 0.6
#: The request of every throughput run: about 330 bytes, as a chat client sends it.
PEER_CHAT_BODY: Mapping[str, Any] = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "system", "content": "You are a helpful assistant. Answer briefly and plainly."},
                 {"role": "user", "content": "Hello, how are you today? Please tell me in one or two sentences "
                                             "what a mock server is good for."}],
    "temperature": 0.7, "max_tokens": 64, "user": "bench-user-0001",
}
#: aimock's fixed answer: 24 words and a full stop, about as long as the mock's generated one.
AIMOCK_ANSWER = ("A mock server answers like the real service would, so that tests of the client run fast, "
                 "offline and the same every time they run.")
#: Control API on (so that the journal records) with its own key, as a gateway team runs the mock upstream.
CONTROL = {"enabled": True, "key": "bench-control"}
#: The mock's configuration: every feature on (journal, metrics, limits, validation, auth).
MOCK_CONFIG = base_config(control=CONTROL, journal={"enabled": True}, observability={"enabled": True})
#: Content chunks of aimock's stream: with its role, finish and [DONE] events, as many as the mock's n=4.
AIMOCK_STREAM_CHUNKS = expected_events(4) - 3
AIMOCK_CHUNK_CHARS = 6


def aimock_cli() -> Path:
    """The installed aimock CLI (``dist/aimock-cli.js``)."""
    return PEERS / "node_modules" / AIMOCK_PACKAGE / "dist" / "aimock-cli.js"


def installed_version() -> str | None:
    """The aimock version installed under :data:`PEERS`, or None."""
    manifest = PEERS / "node_modules" / AIMOCK_PACKAGE / "package.json"
    if not manifest.exists():
        return None
    version: str = json.loads(manifest.read_text())["version"]
    return version


def setup_aimock() -> Path:
    """Install :data:`AIMOCK_PACKAGE` at :data:`AIMOCK_VERSION` into :data:`PEERS` with npm unless it is
    there already; returns the CLI's path. Raises SystemExit naming what is missing (node, npm)."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: apt-get install -y nodejs npm (aimock needs Node >= 20)")
    if installed_version() != AIMOCK_VERSION:
        PEERS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(PEERS), "--no-audit", "--no-fund", "--ignore-scripts",
                        f"{AIMOCK_PACKAGE}@{AIMOCK_VERSION}"], check=True, timeout=600)
    return aimock_cli()


def write_aimock(directory: Path, name: str, latency_ms: float = 0.0, answer: str = AIMOCK_ANSWER,
                 chunk_chars: int | None = None, metrics: bool = False) -> Path:
    """aimock's configuration ``<directory>/<name>.json`` and its fixture file: the key check on (the
    benchmarks' key), one fixture answering any request whose last user message holds "Hello" with
    ``answer``, streamed in ``chunk_chars``-character chunks ``latency_ms`` apart; its logging silent."""
    fixtures = directory / f"{name}-fixtures.json"
    fixtures.write_text(json.dumps({"fixtures": [{"match": {"userMessage": "Hello"},
                                                  "response": {"content": answer}}]}))
    llm: dict[str, Any] = {"fixtures": str(fixtures), "logLevel": "silent", "latency": latency_ms}
    if chunk_chars is not None:
        llm["chunkSize"] = chunk_chars
    config = directory / f"{name}.json"
    config.write_text(json.dumps({"auth": {"apiKeys": [KEY]}, "llm": llm, "metrics": metrics}))
    return config


def aimock_argv(config: Path, port: int) -> list[str]:
    """aimock's CLI serving ``config`` on 127.0.0.1:``port``."""
    return ["node", str(aimock_cli()), "--config", str(config), "--host", "127.0.0.1", "--port", str(port)]


def _rotated(names: list[str], index: int) -> list[str]:
    shift = index % len(names)
    return names[shift:] + names[:shift]


def run_throughput(duration_s: float, rounds: int, connections: tuple[int, ...], threads: int,
                   aimock_metrics: bool) -> list[dict[str, Any]]:
    """Rotating rounds of wrk on the three servers per connection count; prints the tables; returns a
    row per connection count with each server's results and the per-round ratios."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        mock_config = write_config(Path(tmp), "mock", MOCK_CONFIG)
        aimock_config = write_aimock(Path(tmp), "aimock", metrics=aimock_metrics)
        ports = {name: free_port() for name in ("bare", "mock", "aimock")}
        with serve(bare_argv(ports["bare"], "uvloop"), ports["bare"], probe=PATH) as bare, \
                serve(mock_argv(mock_config, ports["mock"]), ports["mock"]) as mock, \
                serve(aimock_argv(aimock_config, ports["aimock"]), ports["aimock"], probe="/health") as aimock:
            servers: dict[str, Server] = {"bare": bare, "mock": mock, "aimock": aimock}
            for conns in connections:
                for server in servers.values():  # warm-up: connections, caches, JIT
                    wrk(server.url + PATH, PEER_CHAT_BODY, conns, 2, threads)
                results: dict[str, list[WrkResult]] = {name: [] for name in servers}
                cpu_us: dict[str, list[float]] = {name: [] for name in servers}
                for index in range(rounds):
                    for name in _rotated(list(servers), index):
                        server = servers[name]
                        before = server.cpu_s()
                        results[name].append(wrk(server.url + PATH, PEER_CHAT_BODY, conns, duration_s, threads))
                        cpu_us[name].append((server.cpu_s() - before) / max(results[name][-1].requests, 1) * 1e6)
                rows.append({"conns": conns, "results": results, "cpu_us": cpu_us,
                             "rss": {name: server.rss_mb() for name, server in servers.items()}})
    _print_throughput(rows)
    return rows


def _ratios(results: Mapping[str, list[WrkResult]], over: str) -> list[float]:
    return [m.rps / o.rps for m, o in zip(results["mock"], results[over], strict=True)]


def _print_throughput(rows: list[dict[str, Any]]) -> None:
    lines = []
    for row in rows:
        for name, results in row["results"].items():
            lines.append([row["conns"], name, f"{statistics.median(r.rps for r in results):,.0f}",
                          " ".join(f"{r.rps:,.0f}" for r in results),
                          f"{statistics.median(r.p50_ms for r in results):.1f} / "
                          f"{statistics.median(r.p99_ms for r in results):.1f}",
                          f"{statistics.median(row['cpu_us'][name]):.0f}", f"{row['rss'][name]:.0f}",
                          sum(r.non2xx + r.errors + r.timeouts for r in results)])
    print_table(["conns", "server", "req/s (median)", "req/s per round", "p50 / p99 ms", "CPU us/req", "RSS MB",
                 "non-2xx/errors"], lines)
    print()
    goals = []
    for row in rows:
        failures = sum(r.non2xx + r.errors + r.timeouts for results in row["results"].values() for r in results)
        cpu = row["cpu_us"]
        for over, goal in (("aimock", MIN_AIMOCK_RATIO), ("bare", MIN_BARE_RATIO)):
            ratios = _ratios(row["results"], over)
            median = statistics.median(ratios)
            cpu_ratio = statistics.median(cpu[over]) / statistics.median(cpu["mock"])
            goals.append([row["conns"], f"mock / {over}", f"{median:.2f}", " ".join(f"{r:.2f}" for r in ratios),
                          f"{cpu_ratio:.2f}", f">= {goal:g}", verdict(median >= goal and failures == 0)])
    print_table(["conns", "ratio", "req/s ratio (median)", "per round", f"CPU/req ratio ({'other / mock'})", "goal",
                 "verdict"], goals)


def run_sse(streams: int, gap_s: float, rounds: int) -> dict[str, Measure]:
    """``streams`` concurrent SSE streams on the mock and on aimock, alternating rounds; prints a table."""
    choices = 4
    aimock_events = AIMOCK_STREAM_CHUNKS + 3
    answer = ("x" * (AIMOCK_STREAM_CHUNKS * AIMOCK_CHUNK_CHARS))
    measures = {"mock": Measure(), "aimock": Measure()}
    with tempfile.TemporaryDirectory() as tmp:
        mock_config = write_config(Path(tmp), "mock-sse", {**streaming_config(gap_s, streams), "control": CONTROL,
                                                          "journal": {"enabled": True},
                                                          "observability": {"enabled": True}})
        aimock_config = write_aimock(Path(tmp), "aimock-sse", latency_ms=gap_s * 1000, answer=answer,
                                     chunk_chars=AIMOCK_CHUNK_CHARS)
        ports = {"mock": free_port(), "aimock": free_port()}
        with serve(mock_argv(mock_config, ports["mock"]), ports["mock"]) as mock, \
                serve(aimock_argv(aimock_config, ports["aimock"]), ports["aimock"], probe="/health") as aimock:
            plans = {"mock": (mock, choices, None), "aimock": (aimock, 1, aimock_events)}
            idle = {name: plan[0].rss_mb() for name, plan in plans.items()}
            for server, n, expected in plans.values():  # warm-up
                run_streams(server.port, min(50, streams), n, server.process.pid, expected)
            for index in range(rounds):
                for name in _rotated(list(plans), index):
                    server, n, expected = plans[name]
                    run = run_streams(server.port, streams, n, server.process.pid, expected)
                    if name == "aimock":  # its [DONE] follows the finish chunk at once: not a paced gap
                        for stream in run.streams:
                            if stream.done:
                                stream.times.pop()
                                stream.expected -= 1
                    measures[name].add(run, gap_s)
    lines = []
    for name, m in measures.items():
        lines.append([name, f"{m.opened} / {m.completed} / {m.lost}", " ".join(map(str, m.held)),
                      f"{m.lateness(50):.2f} / {m.lateness(99):.2f}",
                      f"{m.lateness(50, False):.2f} / {m.lateness(99, False):.2f}",
                      f"{m.rss_peak:.0f} (idle {idle[name]:.0f})", f"{statistics.median(m.server_cpu):.0f}"])
    print_table(["server", "opened / completed / lost", "held at once", "lateness p50 / p99 ms (window)",
                 "lateness p50 / p99 ms (all gaps)", "RSS peak MB", "server CPU %"], lines)
    floor = 1.0
    ratios = [[max(m[i], floor) / max(a[i], floor) for m, a in
               zip(measures["mock"].per_round, measures["aimock"].per_round, strict=True)] for i in (0, 1)]
    print(f"\nmock / aimock gap lateness per round (floor {floor:g} ms): p50 "
          f"{' '.join(f'{r:.2f}' for r in ratios[0])}, p99 {' '.join(f'{r:.2f}' for r in ratios[1])}; "
          f"medians {statistics.median(ratios[0]):.2f} / {statistics.median(ratios[1]):.2f}")
    for name, m in measures.items():
        if m.errors:
            print(f"{name}: first losses: {'; '.join(m.errors)}")
    return measures


def count_instructions(served: bool = False, branches: bool = False, last_level: str | None = None) -> None:
    """Instructions per request of the bare app and of the mock (:data:`MOCK_CONFIG`) on
    :data:`PEER_CHAT_BODY`, the noise-immune figures of their cost (7,000 minus 3,000 requests, past the
    journal's ring), and the ratio bare / mock that the goal of 0.6 of the bare app's req/s asks of them.
    In process (callgrind, the app called as ASGI without a server), or ``served``: each a real server
    process (the mock under ``mock-server serve``, the bare app under uvicorn, both on uvloop + httptools)
    under cachegrind, so that uvicorn's per-request work, paid by both, is in the figures; with ``branches``
    cachegrind simulates the branch predictor too and the table adds mispredictions per request (the
    interpreter's dispatch is an indirect branch: a cost instructions do not show); ``last_level``
    (``size,associativity,line size``) simulates that last-level cache instead of the host's (the host's
    L3 holds both whole: ``2097152,16,64``, the reference machine's L2 per core, counts what leaves it)."""
    from benchmarks.paired import estimated_cycles, instructions, served_events  # valgrind is only needed here

    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed: apt-get install -y valgrind (Debian's package)")
    low, high = 3000, 7000
    configs: dict[str, Mapping[str, Any] | None] = {"bare": None, "mock": MOCK_CONFIG}
    per: dict[str, dict[str, float]] = {}
    if served:
        with ThreadPoolExecutor(2) as pool:
            runs = {(name, n): pool.submit(served_events, config, n, 16, PEER_CHAT_BODY, branches, last_level)
                    for name, config in configs.items() for n in (low, high)}
            totals = {key: run.result() for key, run in runs.items()}
        for name in configs:
            per[name] = {event: (totals[(name, high)][event] - totals[(name, low)][event]) / (high - low)
                         for event in totals[(name, low)]}
            per[name]["cycles"] = estimated_cycles(per[name])
    else:
        with ThreadPoolExecutor(2) as pool:
            counts = {(name, n): pool.submit(instructions, config, n, PEER_CHAT_BODY)
                      for name, config in configs.items() for n in (low, high)}
            per = {name: {"Ir": (counts[(name, high)].result() - counts[(name, low)].result()) / (high - low)}
                   for name in configs}
    where = "per served request (cachegrind)" if served else "per request in process (callgrind)"
    rows = [["instructions", f"{per['bare']['Ir']:,.0f}", f"{per['mock']['Ir']:,.0f}",
             f"{per['mock']['Ir'] - per['bare']['Ir']:+,.0f}", f"{per['bare']['Ir'] / per['mock']['Ir']:.3f}"]]
    if served:
        rows.append(["estimated cycles", f"{per['bare']['cycles']:,.0f}", f"{per['mock']['cycles']:,.0f}",
                     f"{per['mock']['cycles'] - per['bare']['cycles']:+,.0f}",
                     f"{per['bare']['cycles'] / per['mock']['cycles']:.3f}"])
    if served:
        last = "last-level misses" + (f" ({last_level})" if last_level else "")
        for label, events in (("first-level misses", ("I1mr", "D1mr", "D1mw")), (last, ("ILmr", "DLmr", "DLmw"))):
            bare, mock = (sum(per[name][event] for event in events) for name in ("bare", "mock"))
            rows.append([label, f"{bare:,.0f}", f"{mock:,.0f}", f"{mock - bare:+,.0f}",
                         f"{bare / mock:.3f}" if mock else "-"])
    if served and branches:
        for label, event in (("conditional branches", "Bc"), ("  mispredicted", "Bcm"), ("indirect branches", "Bi"),
                             ("  mispredicted", "Bim")):
            rows.append([label, f"{per['bare'][event]:,.0f}", f"{per['mock'][event]:,.0f}",
                         f"{per['mock'][event] - per['bare'][event]:+,.0f}",
                         f"{per['bare'][event] / per['mock'][event]:.3f}"])
    print(f"## Peers: {where}, {len(json.dumps(PEER_CHAT_BODY))}-byte chat request, mock with all features on")
    print_table([where, "bare", "mock", "mock's own", f"bare / mock (goal >= {MIN_BARE_RATIO:g})"], rows)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, install aimock if needed, run, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setup", action="store_true", help="only install aimock into benchmarks/.peers/")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run (default 8)")
    parser.add_argument("--rounds", type=int, default=5, help="rotating rounds per connection count (default 5)")
    parser.add_argument("--connections", default=",".join(map(str, CONNECTIONS)), help="default 64,256")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--aimock-metrics", action="store_true", help="turn aimock's own /metrics on")
    parser.add_argument("--streams", type=int, default=1000, help="concurrent SSE streams (default 1000)")
    parser.add_argument("--gap", type=float, default=0.05, help="SSE gap between events, s (default 0.05)")
    parser.add_argument("--sse-rounds", type=int, default=3, help="alternating SSE rounds (default 3)")
    parser.add_argument("--skip-sse", action="store_true", help="throughput only")
    parser.add_argument("--skip-throughput", action="store_true", help="SSE only")
    parser.add_argument("--instructions", action="store_true",
                        help="count the bare app's and the mock's instructions per request in process (callgrind)")
    parser.add_argument("--served", action="store_true",
                        help="count them per served request, each a real server process under cachegrind")
    parser.add_argument("--branches", action="store_true",
                        help="with --served: simulate the branch predictor too (mispredictions per request)")
    parser.add_argument("--last-level", default=None, metavar="SIZE,ASSOC,LINE",
                        help="with --served: the last-level cache cachegrind simulates (e.g. 2097152,16,64: an L2)")
    args = parser.parse_args(argv)
    if args.instructions or args.served:
        count_instructions(args.served, args.branches, args.last_level)
        return 0
    cli = setup_aimock()
    if args.setup:
        print(f"aimock {installed_version()} at {cli}")
        return 0
    connections = tuple(int(c) for c in args.connections.split(","))
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout.strip()
    print(f"## Peers: POST {PATH} ({len(json.dumps(PEER_CHAT_BODY))}-byte body), bare / mock / aimock "
          f"{installed_version()} (node {node}), wrk -t{args.threads}, {args.rounds} x {args.duration:g} s, "
          f"order rotated each round; stack {'+'.join(STACKS['uvloop'].values())}")
    print(f"machine: {machine()}")
    if not args.skip_throughput:
        run_throughput(args.duration, args.rounds, connections, args.threads, args.aimock_metrics)
    if not args.skip_sse:
        print(f"\n## Peers: {args.streams} concurrent SSE streams, gap {args.gap * 1000:g} ms, "
              f"{expected_events(4)} events each, {args.sse_rounds} round(s) per server")
        run_sse(args.streams, args.gap, args.sse_rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
