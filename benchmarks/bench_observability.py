"""Observability's cost (issue 17): non-streaming chat throughput with metrics and X-Request-Id on
against off, with wrk, and in instructions per request with callgrind.

Goal: with ``observability`` on (``/metrics`` counting every answer, the latency histogram, the
``X-Request-Id`` middleware) the mock serves at least 95% of the requests/s it serves with it off,
which is the pipeline as it was before them. The machinery (ABBA rounds of two servers, callgrind's
count of the in-process pipeline) is ``benchmarks/paired.py``'s, shared with ``bench_journal.py``.

    .venv/bin/python -m benchmarks.bench_observability [--duration 3] [--rounds 8] [--connections 64,256]
    .venv/bin/python -m benchmarks.bench_observability --instructions      # needs Debian's valgrind
    .venv/bin/python -m benchmarks.bench_observability --served            # the served process under cachegrind
"""

from __future__ import annotations

import argparse

from benchmarks.common import base_config, machine
from benchmarks.paired import MIN_RATIO, PATH, add_arguments, compare, count_instructions, served_cost

CONNECTIONS = (64, 256)
#: The configurations compared: observability off (the pipeline as before issue 17), and on (the default).
CONFIGS = (base_config(observability={"enabled": False}), base_config(observability={"enabled": True}))


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, run, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, CONNECTIONS)
    args = parser.parse_args(argv)
    if args.served:
        print("## Observability: per served chat request (cachegrind on mock-server serve), off against on")
        served_cost(("off", "on"), CONFIGS, low=1000, high=5000)
        return 0
    if args.instructions:
        print("## Observability: instructions per chat request in process (callgrind), off against on")
        count_instructions(("off", "on"), CONFIGS)
        return 0
    print(f"## Observability: POST {PATH} (non-streaming), metrics and X-Request-Id on against off, "
          f"{args.rounds} x {args.duration:g} s each")
    print(f"machine: {machine()}")
    compare(("off", "on"), CONFIGS, args.duration, args.rounds, tuple(int(c) for c in args.connections.split(",")),
            MIN_RATIO, args.together)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
