"""What every benchmark shares: servers on loopback, the wrk load generator, RSS, machine facts.

Servers are separate processes bound to 127.0.0.1 on a free port (:class:`Server`); every load run
is bounded in time (wrk ``-d``) and stops by itself. Figures are printed, never asserted.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from mock_server.http_stack import STACKS as STACKS  # the server stacks compared: uvicorn's --loop and --http

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
#: The development key of every benchmark configuration.
KEY = "sk-test"
#: A plain chat completion request, the throughput benchmark's body.
CHAT_BODY: Mapping[str, Any] = {"model": "gpt-4o-mini",
                                "messages": [{"role": "user", "content": "Hello, how are you today?"}]}
#: Seconds to wait for a server to answer its first request.
START_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    """Resident set size of process ``pid``, in MB (``VmRSS`` of ``/proc/<pid>/status``)."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", text)
    return int(match.group(1)) / 1024 if match else 0.0


def descendants(pid: int) -> list[int]:
    """The pids of every process below ``pid`` (children, their children...), from ``/proc/<pid>/task/*/children``."""
    found: list[int] = []
    stack = [pid]
    while stack:
        for task in Path(f"/proc/{stack.pop()}/task").glob("*"):
            try:
                children = [int(child) for child in (task / "children").read_text().split()]
            except OSError:  # the process ended meanwhile
                continue
            found += children
            stack += children
    return found


def cpu_s(pid: int) -> float:
    """CPU time (user + system) process ``pid`` has used so far, in s (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class Server:
    """A server process on 127.0.0.1:``port``; ``ready_s`` is the time from spawn to its first answer (s)."""

    process: subprocess.Popen[bytes]
    port: int
    ready_s: float

    @property
    def url(self) -> str:
        """Root URL."""
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        """The process's current RSS, in MB."""
        return rss_mb(self.process.pid)

    def children_rss_mb(self) -> float:
        """The RSS of the processes the server started (e.g. the mock's worker process), in MB."""
        total = 0.0
        for child in descendants(self.process.pid):
            with contextlib.suppress(OSError):  # the process ended meanwhile
                total += rss_mb(child)
        return total

    def cpu_s(self) -> float:
        """CPU time the process has used so far, in s."""
        return cpu_s(self.process.pid)


@contextmanager
def serve(argv: Sequence[str], port: int, probe: str = "/v1/models", env: Mapping[str, str] | None = None
          ) -> Iterator[Server]:
    """Run ``argv`` (a server listening on 127.0.0.1:``port``) until the block ends; yields a :class:`Server`
    once ``GET probe`` answers (any status). Raises RuntimeError if it is not up in :data:`START_TIMEOUT_S`."""
    started = time.perf_counter()
    process = subprocess.Popen(list(argv), cwd=ROOT, env={**os.environ, **(env or {})},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ready_s = _wait_ready(process, f"http://127.0.0.1:{port}{probe}", started)
        yield Server(process, port, ready_s)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(process: subprocess.Popen[bytes], url: str, started: float) -> float:
    with httpx.Client(timeout=1.0) as client:
        while time.perf_counter() - started < START_TIMEOUT_S:
            if process.poll() is not None:
                error = process.stderr.read().decode(errors="replace") if process.stderr else ""
                raise RuntimeError(f"server exited with {process.returncode}: {error[-2000:]}")
            try:
                client.get(url, headers={"Authorization": f"Bearer {KEY}"})
                return time.perf_counter() - started
            except httpx.TransportError:
                time.sleep(0.01)
    raise RuntimeError(f"server not up within {START_TIMEOUT_S} s")


def mock_argv(config: Path, port: int, stack: str | None = None) -> list[str]:
    """``mock-server serve`` of ``config`` on ``port`` (``--stack`` when given), access log off as the bare app's."""
    argv = [str(VENV_BIN / "mock-server"), "serve", "--config", str(config), "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", "--no-access-log"]
    return argv + (["--stack", stack] if stack else [])


def bare_argv(port: int, stack: str) -> list[str]:
    """The bare app (``benchmarks/bare_app.py``) under uvicorn with the same stack, the same protocol classes
    (``mock_server/http_stack.py``) and worker count (1) as ``mock-server serve``, access log off."""
    return [sys.executable, "-m", "benchmarks.bare_app", "--host", "127.0.0.1", "--port", str(port),
            "--stack", stack, "--log-level", "warning"]


def write_config(directory: Path, name: str, config: Mapping[str, Any]) -> Path:
    """Write a mock configuration file ``<directory>/<name>.yaml``; returns its path."""
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(dict(config), sort_keys=False))
    return path


def base_config(**changes: Any) -> dict[str, Any]:
    """The benchmarks' mock configuration: the development key with credits and limits high enough
    never to refuse (rate limiting and the ledger stay ON: every request is judged and logged),
    latency off; ``changes`` replace top-level keys."""
    config: dict[str, Any] = {
        "seed": 0,
        "keys": [{"key": KEY, "tier": "premium", "scopes": ["*"], "credits": 10**15}],
        "rate_limits": {"enabled": True, "rpm": 10**9, "tpm": 10**12},
        "latency": {"enabled": False},
    }
    config.update(changes)
    return config


#: wrk script: a POST of WRK_BODY with the key, and a last line of JSON with the percentiles.
_WRK_LUA = """
wrk.method = "POST"
wrk.body = os.getenv("WRK_BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("WRK_KEY")
function done(summary, latency, requests)
  local s = summary
  io.write(string.format(
    'JSON {"requests": %d, "duration_us": %d, "non2xx": %d, "errors": %d, "timeouts": %d, '
    .. '"p50_ms": %.3f, "p95_ms": %.3f, "p99_ms": %.3f, "max_ms": %.3f}\\n',
    s.requests, s.duration, s.errors.status, s.errors.connect + s.errors.read + s.errors.write,
    s.errors.timeout, latency:percentile(50) / 1000, latency:percentile(95) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
"""


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: ``rps`` requests/s, latency percentiles in ms, and the failures it counted."""

    requests: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    non2xx: int
    errors: int
    timeouts: int


def wrk_path() -> str:
    """The wrk binary; raises SystemExit with the install command when it is missing."""
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk (Debian's package)")
    return found


def wrk(url: str, body: Mapping[str, Any], connections: int, duration_s: float, threads: int = 1,
        timeout_s: float = 10.0) -> WrkResult:
    """POST ``body`` to ``url`` over ``connections`` keep-alive connections for ``duration_s`` s."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(_WRK_LUA)
    try:
        argv = [wrk_path(), f"-t{threads}", f"-c{connections}", f"-d{duration_s:g}s", f"--timeout={timeout_s:g}s",
                "-s", script.name, url]
        env = {**os.environ, "WRK_BODY": json.dumps(body), "WRK_KEY": KEY}
        out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=duration_s + 60, check=True)
    finally:
        os.unlink(script.name)
    line = next(line for line in out.stdout.splitlines() if line.startswith("JSON "))
    data = json.loads(line[5:])
    return WrkResult(requests=data["requests"], rps=data["requests"] / (data["duration_us"] / 1e6),
                     p50_ms=data["p50_ms"], p95_ms=data["p95_ms"], p99_ms=data["p99_ms"], max_ms=data["max_ms"],
                     non2xx=data["non2xx"], errors=data["errors"], timeouts=data["timeouts"])


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``values`` by linear interpolation; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


#: Additions in :func:`python_pace_ms`'s loop.
PACE_ADDITIONS = 2_000_000


def python_pace_ms() -> float:
    """This hour's speed of the interpreter, in ms: the best of 3 timings of a pure-Python loop of
    :data:`PACE_ADDITIONS` additions. The machine (a shared VM) runs the same code up to twice as slowly
    in some hours as in others. A different pace says two hours differ; the same pace does not say they
    are alike (RESULTS.md, "Eighth session": the suite and the servers ran 1.7-1.8x slowly at a fast pace),
    so compare only runs paired in the same hour."""
    best = float("inf")
    for _ in range(3):
        start, total = time.perf_counter(), 0
        for number in range(PACE_ADDITIONS):
            total += number
        best = min(best, time.perf_counter() - start)
    return best * 1000


def machine() -> str:
    """One line on the machine: CPU model, cores, memory, OS, Python, the load average now and the
    interpreter's pace (:func:`python_pace_ms`)."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))  # type: ignore[union-attr]
    except OSError:
        mem_kb = 0
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (f"{cpu}, {os.cpu_count()} cores, {mem_kb / 1024 / 1024:.1f} GiB, {platform.platform()}, "
            f"Python {platform.python_version()}; load average {load}; pace {python_pace_ms():.0f} ms "
            f"({PACE_ADDITIONS:,} additions in a Python loop, best of 3)")


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a Markdown table."""
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")


def verdict(ok: bool) -> str:
    """``ok`` or ``MISSED`` for a budget line."""
    return "ok" if ok else "MISSED"
