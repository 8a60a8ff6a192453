"""``mock-server serve [--config FILE] [--host 127.0.0.1] [--port N] [--seed N] [--no-latency]
[--time-scale X] [--stack uvloop|asyncio] [--no-access-log] [--state URL] [--state-namespace NAME]
[--workers N]``: the mock under uvicorn, in this process or in ``N`` worker processes sharing the port.

The configuration is one YAML file (default: the shipped ``mock_server/data/default_config.yaml``:
the key ``sk-test``, rate limits on, simulated latency on at real time, no faults), validated by
:func:`~mock_server.config.load_config`; the options override it. The CLI only builds a
:class:`MockConfig` and hands it to :func:`create_app`; exit codes are decided here and nowhere
else: 0 after a clean shutdown, 2 for a bad command line or configuration file (the message names
the bad key; no traceback), for ``--workers N`` > 1 without shared state (``--state redis://...``) and
when a worker cannot start.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import json
import os
import re
import sqlite3
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from mock_server import compiled
from mock_server.app import create_app
from mock_server.config import (
    DEFAULT_CONFIG_FILE,
    STATE_NAMESPACE_PATTERN,
    STATE_URL_PATTERN,
    ConfigError,
    MockConfig,
    load_config,
)
from mock_server.http_stack import PROTOCOLS, STACKS
from spec import project_version

#: Exit code of a bad command line or configuration file (argparse's own usage code).
EXIT_USAGE = 2
def default_stack() -> str:
    """``uvloop`` when uvloop and httptools are importable (the runtime dependencies), else ``asyncio``."""
    found = all(importlib.util.find_spec(name) is not None for name in ("uvloop", "httptools"))
    return "uvloop" if found else "asyncio"


#: Most worker processes ``--workers`` takes (a sanity bound: more than the cores only adds contention).
MAX_WORKERS = 64
#: The environment variable through which ``serve --workers N`` hands its command line to each worker
#: process (uvicorn starts them by an import string, :func:`worker_app`, never with the parent's app).
WORKER_ARGV_ENV = "MOCK_SERVER_WORKER_ARGV"


def _workers(text: str) -> int:
    """A ``--workers`` value: an integer from 1 to :data:`MAX_WORKERS`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_WORKERS}, got {value}")
    return value


def _time_scale(text: str) -> float:
    """A ``--time-scale`` value: a number >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


#: uvicorn's log levels, the only ones ``--log-level`` takes.
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
#: What ``mock-server --help`` says above the commands (plain text: argparse prints it as is).
DESCRIPTION = """\
Serve the mock of the multimodal gateway APIs (OpenAI-compatible, Messages, credits API).

  mock-server serve                                    # the shipped defaults on 127.0.0.1:8000
  mock-server serve --config my-mock.yaml --seed 7     # your configuration file
  mock-server serve --no-latency --time-scale 0.01     # fast answers for tests
  mock-server serve --workers 2 --state redis://127.0.0.1:6379/0   # two processes, one shared state

The configuration is one YAML file (default: mock_server/data/default_config.yaml, which documents
every key); the options below override it. Exit codes: 0 after a clean shutdown, 2 for a bad
command line or configuration file (the message names the bad key and the allowed values), for
--workers N > 1 without --state redis://..., or when a worker cannot start."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``mock-server``."""
    parser = argparse.ArgumentParser(prog="mock-server", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # the version, and which hot modules run compiled (mock_server/compiled.py), so a benchmark can say what ran
    parser.add_argument("--version", action="version", version=f"%(prog)s {project_version()} ({compiled.describe()})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{serve}")
    serve = commands.add_parser("serve", help="serve the mock over HTTP",
                                description="Serve the mock over HTTP under uvicorn until interrupted.")
    serve.add_argument("--config", type=Path, default=DEFAULT_CONFIG_FILE,
                       help="YAML configuration file (default: the shipped defaults, data/default_config.yaml)")
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    serve.add_argument("--seed", type=int, default=None,
                       help="seed of every generated answer and simulated draw (default: the file's, else 0)")
    serve.add_argument("--no-latency", action="store_true", help="turn simulated latency off (answers at once)")
    serve.add_argument("--time-scale", type=_time_scale, default=None, metavar="X",
                       help="multiply every simulated delay by X >= 0 (0.01: a 30 s video job takes 0.3 s)")
    serve.add_argument("--log-level", choices=LOG_LEVELS, default="info", help="uvicorn log level (default info)")
    serve.add_argument("--no-access-log", action="store_true",
                       help="no log line per request (load tests: the line costs about 2 us per request)")
    serve.add_argument("--state", default=None, metavar="URL",
                       help="where the state lives: memory (this process, the default) or redis://HOST:PORT/DB, "
                            "shared by a fleet of mock-server processes (README \"A mock fleet\")")
    serve.add_argument("--state-namespace", default=None, metavar="NAME",
                       help="prefix of the fleet's Redis keys (default mock), so that fleets can share one Redis")
    serve.add_argument("--workers", type=_workers, default=1, metavar="N",
                       help=f"worker processes sharing the port, 1 to {MAX_WORKERS} (default 1: this process "
                            "alone); N > 1 needs --state redis://... so that rate limits and credits hold over "
                            "all of them (README \"Several workers on one host\")")
    serve.add_argument("--stack", choices=sorted(STACKS), default=None,
                       help="event loop and HTTP parser: uvloop (uvloop+httptools, the default where installed) "
                            "or asyncio (asyncio+h11)")
    return parser


def config_from_args(args: argparse.Namespace) -> MockConfig:
    """The configuration ``serve`` runs with: ``--config`` loaded with the options as overrides.

    Raises :class:`~mock_server.config.ConfigError` naming the bad key of a bad file.
    """
    overrides: dict[str, Any] = {} if args.seed is None else {"seed": args.seed}
    if args.state is not None or args.state_namespace is not None:
        state = load_config(args.config).state
        state = dataclasses.replace(state, url=args.state or state.url,
                                    namespace=args.state_namespace or state.namespace)
        if not re.match(STATE_URL_PATTERN, state.url) or not re.match(STATE_NAMESPACE_PATTERN, state.namespace):
            raise ConfigError(f"--state {state.url!r} / --state-namespace {state.namespace!r}: the state is 'memory' "
                              "or redis://HOST:PORT/DB, the namespace 1-64 letters, digits, '_', '.', '-'")
        overrides["state"] = state
    config = load_config(args.config, **overrides)
    latency = config.latency
    if args.no_latency:
        latency = dataclasses.replace(latency, enabled=False)
    if args.time_scale is not None:
        latency = dataclasses.replace(latency, time_scale=args.time_scale)
    return dataclasses.replace(config, latency=latency)


#: The collector's third threshold while serving: a full collection after this many second-generation ones
#: (CPython's default is 10). A full collection scans every live object at once, with the event loop
#: stopped: with 1,000 SSE streams open that pause put the p99 gap between events at 20-35 ms (5 ms and
#: less without it; benchmarks/RESULTS.md, sixth session). Requests make almost no cyclic garbage, so
#: what waits longer for a full collection is small.
FULL_COLLECTION_EVERY = 1000


def settle_heap() -> None:
    """Put what start-up built out of the garbage collector's sight before serving, and make its full
    collections rare (:data:`FULL_COLLECTION_EVERY`). ``benchmarks/paired.py`` calls it too, so that its
    instruction counts are a served process's."""
    # What start-up built (specs, compiled validators, the catalogue) lives as long as the process:
    # out of the collector's sight, a collection under load scans only what requests allocate.
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``mock-server``; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except ConfigError as error:
        print(f"mock-server: bad configuration: {error}", file=sys.stderr)
        return EXIT_USAGE
    if args.workers > 1 and not config.state.shared:
        print(f"mock-server: --workers {args.workers} needs shared state: with state in each process, every "
              "worker would keep its own rate-limit windows, credits ledger, video jobs and hosted media (each "
              f"key would get {args.workers} times its limits and credits). Add --state redis://HOST:PORT/DB "
              "(or state.url in the configuration file), or serve with --workers 1 "
              "(README \"Several workers on one host\").", file=sys.stderr)
        return EXIT_USAGE
    stack = STACKS[args.stack or default_stack()]
    options: dict[str, Any] = {"host": args.host, "port": args.port, "log_level": args.log_level,
                               "access_log": not args.no_access_log, "loop": stack["loop"],
                               "http": PROTOCOLS[stack["http"]]}
    if args.workers > 1:
        return _serve_workers(argv, args.workers, options)
    try:
        app = create_app(config)
    except (OSError, sqlite3.Error, ValueError) as error:  # the catalogue or ledger file the config names
        print(f"mock-server: cannot start with {args.config}: {error}", file=sys.stderr)
        return EXIT_USAGE
    settle_heap()
    uvicorn.run(app, **options)
    return 0


def _serve_workers(argv: list[str], workers: int, options: Mapping[str, Any]) -> int:
    """Serve with uvicorn's process model: this process binds the port and supervises ``workers`` worker
    processes that accept on it, each a replica of the fleet whose state is in Redis (``replica.py``).
    SIGINT or SIGTERM stops every worker cleanly (each finishes its lifespan); a worker that dies after
    start-up is replaced. Returns 0, or :data:`EXIT_USAGE` when a worker could not start (its message
    is on stderr); a port that cannot be bound exits with uvicorn's code 3, as one process does."""
    os.environ[WORKER_ARGV_ENV] = json.dumps(argv)  # the spawned workers inherit the environment
    server = uvicorn.Config("mock_server.cli:worker_app", factory=True, workers=workers, **options)
    supervisor = Multiprocess(server, sockets=[server.bind_socket()])
    supervisor.run()
    failed = any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes)
    return EXIT_USAGE if failed else 0


def worker_app() -> Starlette:
    """The app of one worker process of ``serve --workers N`` (uvicorn's app factory): the configuration
    built again from the parent's command line (:data:`WORKER_ARGV_ENV`). A worker that cannot start
    says why on stderr and exits with uvicorn's start-up failure code, which stops the parent."""
    args = build_parser().parse_args(json.loads(os.environ[WORKER_ARGV_ENV]))
    try:
        app = create_app(config_from_args(args))
    except (OSError, sqlite3.Error, ValueError) as error:  # ConfigError is a ValueError
        print(f"mock-server: worker cannot start with {args.config}: {error}", file=sys.stderr)
        sys.exit(STARTUP_FAILURE)
    settle_heap()
    return app


if __name__ == "__main__":
    sys.exit(main())
