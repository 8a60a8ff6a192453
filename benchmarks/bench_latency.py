"""Latency-model fidelity and GPU-pool queueing: client-side latency against the configured model.

Budget (issue 7): with the latency model on, observed p50 and p95 per operation within 5% of the
configured model under 200 concurrent clients; the GPU-pool queueing shows up as configured.

A request's simulated delay (``mock_server/stages/latency.py``) is a ``queue`` draw, then the wait for
a GPU slot of its model, then ``first + per_unit x work`` (one ``per_unit`` draw per request), all
times ``latency.time_scale``; the work is measured from the answer in the model's ``unit``.

1. Fidelity (:data:`FIDELITY`): four operations, each with its own model (uniform ``queue``,
   lognormal ``first`` and ``per_unit``; ``listModels`` through ``latency.default``), ``gpu_slots``
   high enough that no request waits for a slot, time scale 1. Per operation, ``--clients``
   closed-loop clients, started spread over :data:`RAMP_S`, send ``--requests`` requests in all over
   one keep-alive connection each (opened beforehand by an answer the mock does not delay); latency
   is the client's, from sending to the whole body read, with nothing subtracted (the mock's and the
   client's own work are in it). The client is a few lines of HTTP/1.1 on asyncio streams (uvloop)
   in this process, the server another process: httpx.AsyncClient cost about 3 ms of CPU per
   request here (15% of a core at 50 requests/s), a tenth of that is enough.
   The EXPECTED p50/p95 come from a Monte-Carlo sample (:data:`MC_SAMPLES` draws) of the configured
   model, drawn by this script from the config's documented meaning (``lognormal`` from its p50 and
   p95; not with the simulator's code), times the work each answer reports (chat: its
   ``usage.completion_tokens``; speech: the length of its pcm audio; image: n x width x height;
   listModels: 1). "noise" is the 95% band of the error that ``n`` draws of the model alone give
   (resampled from the Monte-Carlo sample): the part of the error not due to the mock. The server's
   and this process's CPU over the phase (% of one core) show that neither was the bottleneck.
2. GPU pool (:data:`GPU_MODEL`): one model with ``gpu_slots`` 4 and a fixed service time (``first``
   1 s at time scale 0.1: 0.1 s; no queue, no per_unit), ``--clients`` closed-loop clients. Expected:
   throughput = slots / service (40 req/s) and, FIFO, every request after the first round waits
   for the clients ahead of it: latency = clients / throughput (5 s). The clients start at once; their
   first round (latencies from one service time to clients / throughput) is left out of the latency
   figures, and throughput is counted from its last answer to the last answer of the run.

    .venv/bin/python -m benchmarks.bench_latency [--clients 200] [--requests 2000] [--gpu-requests 400] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from benchmarks.common import (
    KEY,
    Server,
    base_config,
    free_port,
    machine,
    mock_argv,
    percentile,
    print_table,
    serve,
    verdict,
    write_config,
)

#: The budget: |observed / expected - 1| of p50 and p95, and of the GPU pool's throughput and latency.
MAX_ERROR = 0.05
#: Draws of the Monte-Carlo sample of each operation's model.
MC_SAMPLES = 200_000
#: Resamples of ``n`` draws behind the "noise" band.
NOISE_RESAMPLES = 400
#: z-score of the 95th percentile of a standard normal distribution (a lognormal's p95 from its p50).
Z95 = statistics.NormalDist().inv_cdf(0.95)
#: Seconds a request may take before the client gives up (the GPU-pool latency is ~5 s).
TIMEOUT_S = 120.0
#: A request the mock refuses (400: unknown model) without delay: opens the clients' connections.
WARM_BODY: Mapping[str, Any] = {"model": "no-such-model", "messages": [{"role": "user", "content": "hi"}]}
#: Spoken input of the speech case: 5 words, 2 s of audio at 150 words/min.
SPOKEN = "Welcome to the latency benchmark."
#: pcm speech: 24 kHz, 16-bit, mono, in bytes per s of audio.
PCM_BYTES_PER_S = 24_000 * 2
IMAGE_SIDE = 256


def _pcm_seconds(request: Mapping[str, Any], answer: bytes) -> float:
    return len(answer) / PCM_BYTES_PER_S


def _completion_tokens(request: Mapping[str, Any], answer: bytes) -> float:
    return float(orjson.loads(answer)["usage"]["completion_tokens"])


def _megapixels(request: Mapping[str, Any], answer: bytes) -> float:
    width, height = map(int, request["size"].split("x"))
    return len(orjson.loads(answer)["data"]) * width * height / 1e6


def _one(request: Mapping[str, Any], answer: bytes) -> float:
    return 1.0


@dataclass(frozen=True)
class Case:
    """One measured operation: its request, its latency model (config form, s) and how its work is
    read from an answer (in the model's ``unit``)."""

    operation: str
    method: str
    path: str
    body: Mapping[str, Any] | None
    model: Mapping[str, Any]
    work: Callable[[Mapping[str, Any], bytes], float]

    def wire(self, port: int) -> bytes:
        """The HTTP/1.1 request, head and body, as sent."""
        body = orjson.dumps(self.body) if self.body is not None else b""
        head = (f"{self.method} {self.path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {KEY}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        return head.encode() + body


#: The fidelity cases; delays are in s at time scale 1 (medians about 0.7-1 s, so 200 clients send
#: about 250 requests/s and the mock's own ~1 ms per request is small beside them).
FIDELITY: Sequence[Case] = (
    Case("createChatCompletion", "POST", "/v1/chat/completions",
         {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello, how are you today?"}]},
         {"queue": {"uniform": [0.0, 0.1]}, "first": {"lognormal": {"p50": 0.4, "p95": 0.6}},
          "per_unit": {"lognormal": {"p50": 0.02, "p95": 0.03}}, "unit": "tokens"}, _completion_tokens),
    Case("createSpeech", "POST", "/v1/audio/speech",
         {"model": "tts-1", "voice": "alloy", "input": SPOKEN, "response_format": "pcm"},
         {"queue": {"uniform": [0.0, 0.1]}, "first": {"lognormal": {"p50": 0.5, "p95": 0.8}},
          "per_unit": {"lognormal": {"p50": 0.1, "p95": 0.15}}, "unit": "audio_s"}, _pcm_seconds),
    Case("createImage", "POST", "/v1/images/generations",
         {"model": "dall-e-2", "prompt": "a lighthouse at dawn", "size": f"{IMAGE_SIDE}x{IMAGE_SIDE}", "n": 1,
          "response_format": "b64_json"},
         {"queue": {"uniform": [0.0, 0.2]}, "first": {"lognormal": {"p50": 0.6, "p95": 1.0}},
          "per_unit": {"lognormal": {"p50": 4.0, "p95": 6.0}}, "unit": "megapixels"}, _megapixels),
    Case("listModels", "GET", "/v1/models", None,
         {"first": {"lognormal": {"p50": 0.6, "p95": 0.9}}, "per_unit": {"fixed": 0.1}, "unit": "requests"}, _one),
)
#: Fidelity clients start spread over this many s (about one request's latency), as independent
#: clients would, rather than all in the same ms: a burst of ``--clients`` requests at once would
#: queue in the mock's event loop, a start-up artefact rather than the model's latency.
RAMP_S = 0.8
#: The GPU-pool case: chat on one model with a fixed service time (config s; times GPU_TIME_SCALE).
GPU_MODEL: Mapping[str, Any] = {"queue": 0, "first": {"fixed": 1.0}, "per_unit": 0, "unit": "tokens"}
GPU_SLOTS = 4
GPU_TIME_SCALE = 0.1


@dataclass(frozen=True)
class Sample:
    """One request: start and end (``time.perf_counter``, s), HTTP status, and the answer's work."""

    start: float
    end: float
    status: int
    work: float

    @property
    def latency_s(self) -> float:
        """End - start, in s."""
        return self.end - self.start


@dataclass(frozen=True)
class Phase:
    """A closed-loop run: its samples, wall time (s) and CPU of the server and of this process (% of one core)."""

    samples: list[Sample]
    wall_s: float
    server_cpu: float
    client_cpu: float


def _draw(spec: Any, rng: random.Random) -> float:
    """One draw, in s, of a distribution in config form (README / default_config.yaml semantics)."""
    if isinstance(spec, int | float):
        return float(spec)
    if "fixed" in spec:
        return float(spec["fixed"])
    if "uniform" in spec:
        low, high = spec["uniform"]
        return rng.uniform(low, high)
    p50, p95 = spec["lognormal"]["p50"], spec["lognormal"]["p95"]
    return float(p50 * math.exp(math.log(p95 / p50) / Z95 * rng.gauss(0.0, 1.0)))


def expected_sample(model: Mapping[str, Any], works: Sequence[float], scale: float, count: int,
                    seed: int = 1) -> list[float]:
    """``count`` Monte-Carlo draws of a request's delay in s: ``(queue + first + per_unit x work) x scale``,
    ``work`` picked from ``works`` (the answers' measured work), no wait for a slot; sorted."""
    rng = random.Random(seed)
    parts = [model.get(name, 0) for name in ("queue", "first", "per_unit")]
    draws = [(_draw(parts[0], rng) + _draw(parts[1], rng) + _draw(parts[2], rng) * rng.choice(works)) * scale
             for _ in range(count)]
    return sorted(draws)


def _sorted_percentile(ordered: Sequence[float], q: float) -> float:
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def noise_band(population: Sequence[float], n: int, q: float, resamples: int = NOISE_RESAMPLES,
               seed: int = 2) -> float:
    """The 95th percentile of |p_q(n draws) / p_q(population) - 1| over ``resamples`` sets of ``n``
    draws from ``population``: how far ``n`` draws of the model alone stray, as a fraction."""
    rng = random.Random(seed)
    truth = _sorted_percentile(population, q)
    errors = sorted(abs(_sorted_percentile(sorted(rng.choices(population, k=n)), q) / truth - 1)
                    for _ in range(resamples))
    return _sorted_percentile(errors, 95)


def _cpu_s(pid: int) -> float:
    """User + system CPU of process ``pid`` so far, in s (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Connection:
    """One keep-alive HTTP/1.1 connection to 127.0.0.1:``port``, one request at a time. Cheaper than an
    httpx.AsyncClient (it parses only the status, Content-Length or chunks, and Connection: close)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def exchange(self, wire: bytes) -> tuple[int, bytes]:
        """Send ``wire`` (a whole request); returns the answer's status and body. Raises OSError,
        asyncio.IncompleteReadError or TimeoutError (after :data:`TIMEOUT_S`); the connection then reopens."""
        try:
            async with asyncio.timeout(TIMEOUT_S):
                if self._reader is None or self._writer is None or self._reader.at_eof():
                    self.close()
                    self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
                reader = self._reader
                self._writer.write(wire)
                head = (await reader.readuntil(b"\r\n\r\n")).lower()
                length = re.search(rb"\r\ncontent-length: *(\d+)", head)
                if length is not None:
                    body = await reader.readexactly(int(length.group(1)))
                else:  # chunked
                    parts = []
                    while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                        parts.append(await reader.readexactly(size))
                        await reader.readexactly(2)
                    await reader.readuntil(b"\r\n")  # the end of the (empty) trailer
                    body = b"".join(parts)
        except BaseException:
            self.close()
            raise
        if b"\r\nconnection: close" in head:
            self.close()
        return int(head[9:12]), body

    def close(self) -> None:
        """Close the socket, if open."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


async def _connections(port: int, clients: int) -> list[Connection]:
    """``clients`` open connections, each opened by an answer the mock does not delay (400)."""
    connections = [Connection(port) for _ in range(clients)]
    warm = Case("createChatCompletion", "POST", "/v1/chat/completions", WARM_BODY, {}, _one).wire(port)
    await asyncio.gather(*(connection.exchange(warm) for connection in connections))
    return connections


async def closed_loop(server: Server, connections: Sequence[Connection], case: Case, requests: int,
                      ramp_s: float = 0.0) -> Phase:
    """One worker per connection, each sending ``case``'s request again as soon as its answer is read,
    until ``requests`` have been sent; worker ``i`` of ``k`` starts after ``i / k x ramp_s`` s. The
    work of each 200 answer is read by ``case.work``; a request that fails (connection lost, timeout)
    counts with status 0."""
    issued = 0
    samples: list[Sample] = []
    body = dict(case.body or {})
    wire = case.wire(server.port)

    async def worker(connection: Connection, delay_s: float) -> None:
        nonlocal issued
        await asyncio.sleep(delay_s)
        while issued < requests:
            issued += 1
            start = time.perf_counter()
            try:
                status, answer = await connection.exchange(wire)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                status, answer = 0, b""
            end = time.perf_counter()
            samples.append(Sample(start, end, status, case.work(body, answer) if status == 200 else 0.0))

    server_cpu, client_cpu, started = _cpu_s(server.process.pid), time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(connection, index / len(connections) * ramp_s)
                           for index, connection in enumerate(connections)))
    wall = time.perf_counter() - started
    return Phase(samples, wall, 100 * (_cpu_s(server.process.pid) - server_cpu) / wall,
                 100 * (time.process_time() - client_cpu) / wall)


def _error(observed: float, expected: float) -> float:
    return observed / expected - 1


async def fidelity(server: Server, clients: int, requests: int) -> list[tuple[Case, Phase]]:
    """Run every :data:`FIDELITY` case in turn over the same ``clients`` connections."""
    connections = await _connections(server.port, clients)
    for case in FIDELITY:  # fill the media caches (first encode) outside the measurement
        await connections[0].exchange(case.wire(server.port))
    phases = [(case, await closed_loop(server, connections, case, requests, RAMP_S)) for case in FIDELITY]
    for connection in connections:
        connection.close()
    return phases


def fidelity_row(case: Case, phase: Phase) -> list[object]:
    """The table row of one fidelity case: observed against the Monte-Carlo expectation."""
    ok = [s for s in phase.samples if s.status == 200]
    failed = len(phase.samples) - len(ok)
    works = sorted({round(s.work, 6) for s in ok}) or [0.0]
    population = expected_sample(case.model, works, 1.0, MC_SAMPLES)
    latencies = [s.latency_s for s in ok]
    row: list[object] = [case.operation, len(ok), failed, ", ".join(f"{w:g}" for w in works) + " "
                         + case.model["unit"], f"{len(ok) / phase.wall_s:.0f}"]
    passed = failed == 0
    for q in (50, 95):
        expected, observed = _sorted_percentile(population, q), percentile(latencies, q)
        error = _error(observed, expected)
        passed = passed and abs(error) <= MAX_ERROR
        row += [f"{expected * 1000:.0f}", f"{observed * 1000:.0f}", f"{error:+.1%}",
                f"±{noise_band(population, max(len(ok), 1), q):.1%}"]
    return [*row, f"{phase.server_cpu:.0f} / {phase.client_cpu:.0f}", verdict(passed)]


async def gpu_pool(server: Server, clients: int, steady: int) -> Phase:
    """Run the GPU-pool case: ``clients`` first-round requests, then ``steady`` more."""
    case = Case("createChatCompletion", "POST", "/v1/chat/completions", FIDELITY[0].body, GPU_MODEL, _one)
    connections = await _connections(server.port, clients)
    phase = await closed_loop(server, connections, case, clients + steady)
    for connection in connections:
        connection.close()
    return phase


def gpu_rows(phase: Phase, clients: int) -> list[list[object]]:
    """The GPU-pool table: throughput and latency after the first round against slots / service."""
    service_s = GPU_MODEL["first"]["fixed"] * GPU_TIME_SCALE
    expected_rps = GPU_SLOTS / service_s
    expected_latency = max(clients, GPU_SLOTS) / expected_rps
    by_start = sorted(phase.samples, key=lambda s: s.start)
    measured = by_start[clients:]
    ends = sorted(s.end for s in phase.samples)
    window_start = ends[clients - 1]
    rps = sum(1 for end in ends if end > window_start) / (ends[-1] - window_start)
    latencies = [s.latency_s for s in measured]
    failed = sum(1 for s in phase.samples if s.status != 200)
    rps_error = _error(rps, expected_rps)
    rows: list[list[object]] = [["throughput (req/s)", len(measured), f"{expected_rps:.1f}", f"{rps:.2f}",
                                 f"{rps_error:+.1%}", verdict(abs(rps_error) <= MAX_ERROR and failed == 0)]]
    for name, value in (("latency p50 (s)", percentile(latencies, 50)), ("latency p95 (s)", percentile(latencies, 95)),
                        ("latency mean (s)", statistics.fmean(latencies))):
        error = _error(value, expected_latency)
        rows.append([name, len(measured), f"{expected_latency:.3f}", f"{value:.3f}", f"{error:+.1%}",
                     verdict(abs(error) <= MAX_ERROR and failed == 0)])
    first_round = [s.latency_s for s in by_start[:clients]]
    rows.append(["first round latency min..max (s), left out", clients, f"{service_s:.3f}..{expected_latency:.3f}",
                 f"{min(first_round):.3f}..{max(first_round):.3f}", "", ""])
    rows.append(["server / client CPU (% of a core)", len(phase.samples), "",
                 f"{phase.server_cpu:.0f} / {phase.client_cpu:.0f}", "", f"{failed} failed"])
    return rows


def _latency_config(time_scale: float, gpu_slots: int, default: Mapping[str, Any],
                    operations: Mapping[str, Any]) -> dict[str, Any]:
    return base_config(latency={"enabled": True, "time_scale": time_scale, "gpu_slots": gpu_slots,
                                "default": dict(default), "operations": dict(operations)})


def run(clients: int, requests: int, gpu_requests: int) -> None:
    """Both parts, each on its own server; prints two tables."""
    runner: Callable[[Any], Any] = asyncio.run
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # the mock's stack falls back to asyncio too
        pass
    default = next(case.model for case in FIDELITY if case.operation == "listModels")
    operations = {case.operation: case.model for case in FIDELITY if case.operation != "listModels"}
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), "fidelity", _latency_config(1.0, 100_000, default, operations))
        port = free_port()
        print(f"### 1. Fidelity: {clients} closed-loop clients, {requests} requests per operation, "
              f"gpu_slots 100000, time scale 1")
        with serve(mock_argv(config, port), port) as server:
            phases = runner(fidelity(server, clients, requests))
        print_table(["operation", "n", "failed", "work per request", "req/s", "expected p50 ms", "observed p50 ms",
                     "p50 error", "p50 noise", "expected p95 ms", "observed p95 ms", "p95 error", "p95 noise",
                     "server / client CPU %", "budget p50, p95 within 5%"],
                    [fidelity_row(case, phase) for case, phase in phases])
        config = write_config(Path(tmp), "gpu", _latency_config(GPU_TIME_SCALE, GPU_SLOTS, {},
                                                                {"createChatCompletion": GPU_MODEL}))
        port = free_port()
        service_ms = GPU_MODEL["first"]["fixed"] * GPU_TIME_SCALE * 1000
        print(f"\n### 2. GPU pool: {GPU_SLOTS} slots of one model (gpt-4o-mini), fixed service {service_ms:g} ms, "
              f"{clients} closed-loop clients, {clients} first-round + {gpu_requests} measured requests")
        with serve(mock_argv(config, port), port) as server:
            phase = runner(gpu_pool(server, clients, gpu_requests))
        print_table(["figure", "n", "expected", "observed", "error", "budget within 5%"], gpu_rows(phase, clients))


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, run, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=200, help="concurrent closed-loop clients (default 200)")
    parser.add_argument("--requests", type=int, default=2000, help="fidelity requests per operation (default 2000)")
    parser.add_argument("--gpu-requests", type=int, default=400,
                        help="GPU-pool requests measured after the first round (default 400)")
    parser.add_argument("--quick", action="store_true", help="smoke sizes: 400 requests per operation, 120 GPU-pool")
    args = parser.parse_args(argv)
    if min(args.clients, args.requests, args.gpu_requests) < 1:
        parser.error("--clients, --requests and --gpu-requests must be >= 1")
    requests, gpu_requests = (400, 120) if args.quick else (args.requests, args.gpu_requests)
    print(f"## Latency model: fidelity and GPU-pool queueing ({'quick' if args.quick else 'full'})")
    print(f"machine: {machine()}")
    run(args.clients, requests, gpu_requests)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
