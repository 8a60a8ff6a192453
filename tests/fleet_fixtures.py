"""A real Redis (Debian's ``redis-server``) and replicas of ``mock-server serve --state redis://...`` on
127.0.0.1, for the fleet and workers tests and ``benchmarks/bench_fleet.py`` and ``bench_workers.py``.
Every process started here is stopped by its owner (the fixtures, or the context managers' exits)."""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest

from mock_server.catalogue import load_catalogue
from mock_server.config import MockConfig
from mock_server.sim.spend import MICROS, micros

#: Seconds a process gets to start answering.
START_TIMEOUT_S = 30.0
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def workers_of(pid: int) -> list[int]:
    """The worker processes of ``mock-server serve --workers N`` running as ``pid``: its children but
    multiprocessing's resource tracker (``/proc/<pid>/task/<pid>/children``)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(child) for child in children
            if b"resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes()]


class RedisServer:
    """``redis-server`` on 127.0.0.1:``port`` with its AOF in ``directory`` (``appendonly yes``,
    ``appendfsync`` as given), no RDB snapshots. :meth:`start` again after :meth:`kill` reopens the AOF."""

    def __init__(self, directory: Path, fsync: str = "everysec") -> None:
        self.directory = directory
        self.port = free_port()
        self.fsync = fsync
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it and wait until it answers PING."""
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
             "--save", "", "--appendonly", "yes", "--appendfsync", self.fsync, "--protected-mode", "no",
             "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final save (what a crash does)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None


class Replica:
    """One ``mock-server serve`` of the fleet on its own port (``python -m mock_server``)."""

    def __init__(self, config: Path, state: str, extra: Sequence[str] = ()) -> None:
        self.config = config
        self.state = state
        self.extra = tuple(extra)
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> None:
        """Start the process (without waiting: :meth:`wait_ready`)."""
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mock_server", "serve", "--config", str(self.config), "--state", self.state,
             "--port", str(self.port), "--log-level", "warning", "--no-access-log", *self.extra])

    def wait_ready(self) -> None:
        """Wait until ``/health`` answers. Raises RuntimeError if the process exits or never answers."""
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return
            assert self.process is not None
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"replica on port {self.port} did not start")
            time.sleep(0.1)

    def kill(self) -> None:
        """``kill -9`` the replica."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        """SIGTERM (a clean shutdown), then SIGKILL if it lingers."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None


@contextlib.contextmanager
def redis_for_tests(directory: Path) -> Iterator[RedisServer]:
    """A :class:`RedisServer` in ``directory`` for a test module, killed on exit; the test is skipped
    (saying why) where ``redis-server`` is not installed."""
    if not Path(REDIS_SERVER).exists():
        pytest.skip("redis-server is not installed (.ci/run installs Debian's redis-server)")
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@contextlib.contextmanager
def replicas(config: Path, state: str, count: int, extra: Sequence[str] = ()) -> Iterator[list[Replica]]:
    """``count`` replicas started together, stopped on exit."""
    fleet = [Replica(config, state, extra) for _ in range(count)]
    try:
        for replica in fleet:
            replica.launch()
        for replica in fleet:
            replica.wait_ready()
        yield fleet
    finally:
        for replica in fleet:
            replica.stop()


def spend_fits(answers: Sequence[httpx.Response], limit_usd: float) -> int:
    """How many of ``answers`` (chat completions of one body, so of one price) a spend limit of
    ``limit_usd`` pays for: the limit in micro-dollars over one answer's price (its usage at the
    catalogue's price, rounded up to a micro-dollar as the mock charges it). Raises AssertionError
    unless some answer is a 200 and every 200 has the same usage."""
    usages = {(answer.json()["model"], answer.json()["usage"]["prompt_tokens"],
               answer.json()["usage"]["completion_tokens"]) for answer in answers if answer.status_code == 200}
    assert len(usages) == 1, usages
    model, prompt, completion = usages.pop()
    price = load_catalogue(MockConfig().catalogue)[model].price
    assert price is not None, f"{model} is free: no spend limit applies"
    return round(limit_usd * MICROS) // micros(price.tokens_usd(prompt, completion))


def assert_spent_exactly(answers: Sequence[httpx.Response], fits: int) -> None:
    """Exactly ``fits`` of ``answers`` are 200 and the others the gateway's 402 in its error envelope
    (001 and 002 "Errors": ``billing_error``, "hit a spend limit"; code ``spend_limit_reached``)."""
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) == fits and statuses.count(402) == len(answers) - fits, (fits, statuses)
    for refused in (answer for answer in answers if answer.status_code == 402):
        error = refused.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, error
        assert (error["type"], error["code"], error["param"]) == ("billing_error", "spend_limit_reached", None), error
        assert "spend limit" in error["message"], error
