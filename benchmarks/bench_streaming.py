"""Streaming, memory and start time: 1,000 concurrent SSE chat streams, the mock against the bare app.

Budgets (issue 7), one verdict per line:

1. Streaming: ``--streams`` (1,000) concurrent ``POST /v1/chat/completions`` with ``"stream": true``
   are held with none lost, and the lateness of the inter-chunk gaps (p50 and p99) is at most 1.5x
   the bare app's (``bare_app.py``, ``BARE_GAP_S`` = ``--gap``) on the same uvicorn stack.
2. Memory: the mock's peak RSS while the streams are held is under 150 MB.
3. Start: ``mock-server serve`` with the shipped default configuration answers its first request
   (``GET /v1/models``) in under 2 s: the median of ``--starts`` (5) starts, the max shown beside it.

What is measured. The mock runs with latency on and a FIXED inter-token gap for createChatCompletion
(queue 0, first 0, per_unit ``--gap`` s per token), GPU slots >= the stream count (no stream queues)
and rate limits on but high (``base_config``). Its default answer has 24 tokens, so a choice is 26
``data:`` events (role, 24 content chunks, finish); each stream asks for ``--choices`` (n, 4)
choices, streamed one after the other, then ``[DONE]``: 105 events, 104 gaps, 5.2 s at 50 ms, so
all streams are open together for seconds after the ramp (one choice, 1.3 s, is shorter than
opening 1,000 streams takes). The bare app sends as many events (``BARE_STREAM_PIECES``).

The client is this process (the servers are separate processes): a minimal asyncio client (uvloop
when installed; a Protocol per connection, HTTP/1.1, the chunked body split into SSE events) that
records ``time.perf_counter()`` at the arrival of every ``data:`` event. Connections open in
batches of :data:`RAMP_BATCH` every :data:`RAMP_PAUSE_S` s (far under uvicorn's backlog of 2048).
Lateness of a gap = observed gap - configured gap, in ms. The budget figures use only the gaps of
the full-concurrency window: both ends after the last stream's first event and before the first
stream's last event, so every stream was open throughout (the "all gaps" column includes the
ramp and the tail). p50/p99 are compared as max(mock, 1 ms) / max(bare, 1 ms) (under 1 ms both
are timer noise) per round, the mock's run against the bare run just before it, and the budget
judges the median of the rounds' ratios, as the throughput benchmark does: a neighbour's burst
during one run then moves one ratio, not the verdict. The table pools every round's gaps.
A stream is lost when it got a non-200, a transport error or a timeout, or did
not end with ``data: [DONE]`` as its expected event (the count is checked). For each stack the
runs alternate bare, mock, bare, mock... (``--rounds``), after a small warm-up run on each; gaps
are pooled over the rounds. RSS is ``VmRSS`` of the server process, sampled every
:data:`RSS_EVERY_S` s during each run. CPU % is a process's CPU time over the run's wall time (100 =
one core busy; median over rounds): a server near 100 is saturated, and a client near 100 would be
measuring its own delays.

    .venv/bin/python -m benchmarks.bench_streaming [--streams 1000] [--gap 0.05] [--choices 4] [--rounds 3] \
        [--stacks uvloop,asyncio] [--starts 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, cast

from benchmarks.common import (
    CHAT_BODY,
    KEY,
    STACKS,
    VENV_BIN,
    bare_argv,
    base_config,
    free_port,
    machine,
    mock_argv,
    percentile,
    print_table,
    rss_mb,
    serve,
    verdict,
    write_config,
)

#: Budget 1: the mock's gap lateness (p50 and p99) over the bare app's.
MAX_LATENESS_RATIO = 1.5
#: Floor of both lateness figures in the ratio, in ms (below it lateness is timer noise).
LATENESS_FLOOR_MS = 1.0
#: Budget 2: the mock's peak RSS with the streams held, in MB.
MAX_RSS_MB = 150.0
#: Budget 3: spawn of ``mock-server serve`` to its first answer, in s.
MAX_START_S = 2.0
#: ``data:`` events of one choice of the mock's default answer: role, its 24 tokens, finish.
CHOICE_EVENTS = 1 + 24 + 1
#: Connections opened at once, and the pause between batches (s).
RAMP_BATCH = 100
RAMP_PAUSE_S = 0.05
#: Streams of the warm-up run on each server before the measured rounds.
WARMUP_STREAMS = 50
#: Seconds between two RSS samples of the server.
RSS_EVERY_S = 0.05
#: A stream not ended after this many s (from its request) is lost.
STREAM_TIMEOUT_S = 60.0
PATH = "/v1/chat/completions"


@dataclass
class Stream:
    """One SSE stream as the client saw it: ``times`` are the arrival times of its ``data:`` events
    (``time.perf_counter()``, s); ``status`` 0 until the response head arrives."""

    expected: int
    status: int = 0
    times: list[float] = field(default_factory=list)
    done: bool = False
    ended: bool = False
    error: str | None = None

    @property
    def lost(self) -> bool:
        """Not a 200 that ended with ``data: [DONE]`` as its ``expected``-th event."""
        return not (self.status == 200 and self.done and self.error is None and len(self.times) == self.expected)


class SseClient(asyncio.Protocol):
    """One HTTP/1.1 request; reads the chunked SSE answer into ``stream`` and resolves ``finished``
    (with None) when the terminal chunk arrives or the connection ends."""

    def __init__(self, request: bytes, stream: Stream, finished: asyncio.Future[None]) -> None:
        self.request = request
        self.stream = stream
        self.finished = finished
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.events = bytearray()
        self.in_body = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not an asyncio.Transport subclass
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buffer += data
        if not self.in_body:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buffer[:end]).lower()
            del self.buffer[:end + 4]
            self.stream.status = int(head.split(b" ", 2)[1])
            if self.stream.status != 200 or b"transfer-encoding: chunked" not in head:
                self._end("status" if self.stream.status != 200 else "not chunked")
                return
            self.in_body = True
        while True:
            line = self.buffer.find(b"\r\n")
            if line < 0:
                return
            size = int(bytes(self.buffer[:line]).split(b";")[0], 16)
            if size == 0:
                self.stream.ended = True
                self._end(None)
                return
            if len(self.buffer) < line + 2 + size + 2:
                return
            self.events += self.buffer[line + 2:line + 2 + size]
            del self.buffer[:line + 2 + size + 2]
            while (cut := self.events.find(b"\n\n")) >= 0:
                event = bytes(self.events[:cut])
                del self.events[:cut + 2]
                if event.startswith(b"data: "):
                    self.stream.times.append(now)
                    self.stream.done = event == b"data: [DONE]"

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.stream.ended and self.stream.error is None:
            self.stream.error = repr(exc) if exc else "closed early"
        self._end(None)

    def _end(self, error: str | None) -> None:
        if error and self.stream.error is None:
            self.stream.error = error
        if self.transport is not None:
            self.transport.close()
        if not self.finished.done():
            self.finished.set_result(None)


def _request(port: int, choices: int) -> bytes:
    body = json.dumps({**CHAT_BODY, "stream": True, **({"n": choices} if choices > 1 else {})}).encode()
    return (f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {KEY}\r\n"
            f"Content-Type: application/json\r\nAccept: text/event-stream\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode() + body


async def _one(port: int, request: bytes, stream: Stream) -> None:
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()
    try:
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            transport, _ = await loop.create_connection(lambda: SseClient(request, stream, finished),
                                                        "127.0.0.1", port)
            try:
                await finished
            finally:
                transport.close()
    except (OSError, TimeoutError) as error:
        stream.error = stream.error or repr(error)


@dataclass
class Run:
    """One run's streams; the server's peak RSS (MB) and CPU time (s), the client's CPU time (s),
    and the run's wall time (s)."""

    streams: list[Stream]
    rss_peak_mb: float
    server_cpu_s: float
    client_cpu_s: float
    wall_s: float


def cpu_s(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, in s (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _streams(port: int, count: int, choices: int, pid: int, expected: int | None = None) -> Run:
    """Open ``count`` streams of ``choices`` choices in batches, sampling the server's RSS; wait for all.
    ``expected``: the ``data:`` events a whole stream has (default: the mock's, :func:`expected_events`)."""
    started, server_cpu, client_cpu = time.perf_counter(), cpu_s(pid), time.process_time()
    request = _request(port, choices)
    streams = [Stream(expected or expected_events(choices)) for _ in range(count)]
    peak = 0.0
    running = True

    async def sample() -> None:
        nonlocal peak
        while running:
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(RSS_EVERY_S)

    sampler = asyncio.create_task(sample())
    tasks = []
    for start in range(0, count, RAMP_BATCH):
        tasks += [asyncio.create_task(_one(port, request, s)) for s in streams[start:start + RAMP_BATCH]]
        if start + RAMP_BATCH < count:
            await asyncio.sleep(RAMP_PAUSE_S)
    await asyncio.gather(*tasks)
    running = False
    await sampler
    return Run(streams, peak, cpu_s(pid) - server_cpu, time.process_time() - client_cpu,
               time.perf_counter() - started)


def run_streams(port: int, count: int, choices: int, pid: int, expected: int | None = None) -> Run:
    """:func:`_streams` on a fresh event loop (uvloop when installed): bounded by :data:`STREAM_TIMEOUT_S`."""
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    try:
        import uvloop
        factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(_streams(port, count, choices, pid, expected))


@dataclass
class Measure:
    """The streams of one app pooled over its rounds: lateness in ms, RSS in MB."""

    opened: int = 0
    completed: int = 0
    lost: int = 0
    errors: list[str] = field(default_factory=list)
    held: list[int] = field(default_factory=list)
    window_s: list[float] = field(default_factory=list)
    steady: list[float] = field(default_factory=list)
    every: list[float] = field(default_factory=list)
    rss_peak: float = 0.0
    server_cpu: list[float] = field(default_factory=list)
    client_cpu: list[float] = field(default_factory=list)
    per_round: list[tuple[float, float]] = field(default_factory=list)
    """(p50, p99) lateness of each round's full-concurrency window, in ms."""

    def add(self, run: Run, gap_s: float) -> None:
        """Pool one run: lateness of each gap (ms), that of the full-concurrency window apart; CPU in % of
        one core over the run."""
        streams, rss = run.streams, run.rss_peak_mb
        self.server_cpu.append(100 * run.server_cpu_s / run.wall_s)
        self.client_cpu.append(100 * run.client_cpu_s / run.wall_s)
        self.opened += len(streams)
        self.completed += sum(not s.lost for s in streams)
        self.lost += sum(s.lost for s in streams)
        self.errors += [s.error or f"status {s.status}, {len(s.times)} events" for s in streams if s.lost][:3]
        self.rss_peak = max(self.rss_peak, rss)
        started = [s.times for s in streams if s.times]
        all_open = max(t[0] for t in started) if started else 0.0
        first_end = min(t[-1] for t in started) if started else 0.0
        self.held.append(_peak_concurrency(started))
        self.window_s.append(max(first_end - all_open, 0.0))
        steady = []
        for times in started:
            for a, b in pairwise(times):
                lateness = (b - a - gap_s) * 1000
                self.every.append(lateness)
                if a >= all_open and b <= first_end:
                    steady.append(lateness)
        self.steady += steady
        self.per_round.append((percentile(steady, 50), percentile(steady, 99)))

    def lateness(self, q: float, steady: bool = True) -> float:
        """The ``q``-th percentile of gap lateness (ms)."""
        return percentile(self.steady if steady else self.every, q)


def _peak_concurrency(started: list[list[float]]) -> int:
    """Most streams open at once, a stream being open from its first event to its last."""
    edges = sorted([(t[0], 1) for t in started] + [(t[-1], -1) for t in started], key=lambda e: (e[0], -e[1]))
    peak = now = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def streaming_config(gap_s: float, streams: int) -> dict[str, Any]:
    """The mock's configuration: :func:`base_config` with latency on, a fixed ``gap_s`` per token for
    createChatCompletion, no queue or first-token time, and ``streams`` GPU slots."""
    chat = {"queue": 0, "first": 0, "per_unit": {"fixed": gap_s}, "unit": "tokens"}
    return base_config(latency={"enabled": True, "time_scale": 1.0, "gpu_slots": max(streams, 1),
                                "operations": {"createChatCompletion": chat}})


def expected_events(choices: int) -> int:
    """``data:`` events of a stream of ``choices`` choices: :data:`CHOICE_EVENTS` each, then ``[DONE]``."""
    return choices * CHOICE_EVENTS + 1


def run_streaming(streams: int, gap_s: float, choices: int, rounds: int, stacks: list[str]) -> list[dict[str, Any]]:
    """Measure every stack: bare and mock side by side, alternating rounds; print a table; return its rows."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), "streaming", streaming_config(gap_s, streams))
        # the bare stream: role, pieces, finish, [DONE]: as many events as the mock's
        bare_env = {"BARE_GAP_S": str(gap_s), "BARE_STREAM_PIECES": str(expected_events(choices) - 3)}
        for stack in stacks:
            bare_port, mock_port = free_port(), free_port()
            with serve(bare_argv(bare_port, stack), bare_port, probe=PATH, env=bare_env) as bare, \
                    serve(mock_argv(config, mock_port, stack), mock_port) as mock:
                for server in (bare, mock):
                    run_streams(server.port, min(WARMUP_STREAMS, streams), choices, server.process.pid)
                idle = mock.rss_mb()
                measures = {"bare": Measure(), "mock": Measure()}
                for _ in range(rounds):
                    for name, server in (("bare", bare), ("mock", mock)):
                        measures[name].add(run_streams(server.port, streams, choices, server.process.pid), gap_s)
            rows.append(_row(stack, streams, measures["bare"], measures["mock"], idle))
    print_table(["stack", "app", "opened / completed / lost", "held at once", "window s", "gaps (window)",
                 "lateness p50 / p99 ms (window)", "lateness p50 / p99 ms (all gaps)", "RSS peak MB",
                 "server / client CPU %"],
                [line for row in rows for line in row["lines"]])
    for row in rows:
        for name, errors in row["errors"].items():
            if errors:
                print(f"{row['stack']} {name}: first losses: {'; '.join(errors)}")
    return rows


def _row(stack: str, streams: int, bare: Measure, mock: Measure, idle_mb: float) -> dict[str, Any]:
    lines = []
    for name, m in (("bare", bare), ("mock", mock)):
        lines.append([stack, name, f"{m.opened} / {m.completed} / {m.lost}", " ".join(map(str, m.held)),
                      " ".join(f"{w:.2f}" for w in m.window_s), len(m.steady),
                      f"{m.lateness(50):.2f} / {m.lateness(99):.2f}",
                      f"{m.lateness(50, False):.2f} / {m.lateness(99, False):.2f}", f"{m.rss_peak:.0f}",
                      f"{statistics.median(m.server_cpu):.0f} / {statistics.median(m.client_cpu):.0f}"])
    # per round, mock over the bare run just before it (noise of a round hits both), then the median
    round_ratios = [[max(m[i], LATENESS_FLOOR_MS) / max(b[i], LATENESS_FLOOR_MS) for b, m in
                     zip(bare.per_round, mock.per_round, strict=True)] for i in (0, 1)]
    ratios = [statistics.median(r) for r in round_ratios]
    held = all(h == streams for h in mock.held)
    return {"stack": stack, "lines": lines, "errors": {"bare": bare.errors, "mock": mock.errors},
            "ratios": ratios, "round_ratios": round_ratios, "mock": mock, "bare": bare, "idle_mb": idle_mb,
            "stream_ok": held and mock.lost == 0 and bool(mock.steady) and max(ratios) <= MAX_LATENESS_RATIO}


def run_start(starts: int) -> list[float]:
    """Start ``mock-server serve`` (shipped defaults) ``starts`` times; returns each ready time (s)."""
    times = []
    for _ in range(starts):
        port = free_port()
        argv = [str(VENV_BIN / "mock-server"), "serve", "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning", "--no-access-log"]
        with serve(argv, port) as server:
            times.append(server.ready_s)
    return times


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, run, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=1000, help="concurrent streams (default 1000)")
    parser.add_argument("--gap", type=float, default=0.05, help="configured inter-token gap, s (default 0.05)")
    parser.add_argument("--choices", type=int, default=4,
                        help="choices (n) per stream, to hold the streams open longer than the ramp (default 4)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating bare/mock runs per stack (default 5)")
    parser.add_argument("--stacks", default="uvloop", help="comma-separated: uvloop,asyncio (default uvloop)")
    parser.add_argument("--starts", type=int, default=5, help="starts of mock-server serve timed (default 5)")
    args = parser.parse_args(argv)
    if min(args.streams, args.choices, args.rounds, args.starts) < 1 or args.gap <= 0:
        parser.error("--streams, --choices, --rounds and --starts must be >= 1, --gap > 0")
    stacks = args.stacks.split(",")
    unknown = [s for s in stacks if s not in STACKS]
    if unknown:
        parser.error(f"unknown stack(s): {', '.join(unknown)}")
    print(f"## Streaming: {args.streams} concurrent SSE streams of POST {PATH}, gap {args.gap * 1000:g} ms, "
          f"n={args.choices} choices: {expected_events(args.choices)} events each, {args.rounds} round(s) per app")
    print(f"machine: {machine()}")
    rows = run_streaming(args.streams, args.gap, args.choices, args.rounds, stacks)
    print(f"\n## Start: mock-server serve (shipped defaults) to first answer, {args.starts} starts")
    starts = run_start(args.starts)
    print("ready s: " + " ".join(f"{s:.2f}" for s in starts))
    median, worst = statistics.median(starts), max(starts)
    print("\n## Budgets")
    budget_rows = []
    for row in rows:
        mock: Measure = row["mock"]
        budget_rows.append([f"streaming ({row['stack']})",
                            f"{mock.opened} opened, {mock.lost} lost, held at once {min(mock.held)}; "
                            f"lateness mock/bare p50 {row['ratios'][0]:.2f}, p99 {row['ratios'][1]:.2f} "
                            f"(median of rounds: p50 {' '.join(f'{r:.2f}' for r in row['round_ratios'][0])}, "
                            f"p99 {' '.join(f'{r:.2f}' for r in row['round_ratios'][1])}; "
                            f"floor {LATENESS_FLOOR_MS:g} ms)"
                            + ("" if mock.steady and row["bare"].steady else
                               "; NO full-concurrency window: raise --choices"),
                            f"0 lost, ratios <= {MAX_LATENESS_RATIO}", verdict(row["stream_ok"])])
    for row in rows:
        mock = row["mock"]
        budget_rows.append([f"memory ({row['stack']})", f"peak {mock.rss_peak:.0f} MB (idle {row['idle_mb']:.0f})",
                            f"< {MAX_RSS_MB:g} MB", verdict(mock.rss_peak < MAX_RSS_MB)])
    budget_rows.append(["start", f"median {median:.2f} s, max {worst:.2f} s", f"< {MAX_START_S:g} s",
                        verdict(median < MAX_START_S)])
    print_table(["line", "measured", "budget", "verdict"], budget_rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
