"""The request journal's cost: non-streaming chat throughput with the journal on against off, with wrk.

Goal (issue 12): the journal must not make the mock slower for everyone; with it on, the mock serves
at least 95% of the requests/s it serves with it off. Two ``mock-server serve`` processes run side
by side on the default stack, identical but for ``journal.enabled`` (and the control API on in both,
as a gateway team runs the mock as an upstream); rounds alternate off, on, on, off... (ABBA), and
the ratio is the median of the per-round ratios. CPU time per request (us, from ``/proc``) is
printed too.

On a shared VM requests/s swing by tens of percent from one 3 s run to the next, so the script also
counts instructions (``--instructions``, valgrind's callgrind, which counts the same for the same
work whatever else runs): the mock's pipeline called in process (no server) for 3,000 and 7,000
chat requests with the journal off and on (both past the ring's 2,000 entries, so that records let
old ones go as in a long run); the difference over 4,000 is the cost per request.

    .venv/bin/python -m benchmarks.bench_journal [--duration 3] [--rounds 8] [--connections 64,256]
    .venv/bin/python -m benchmarks.bench_journal --together          # both servers loaded at once
    .venv/bin/python -m benchmarks.bench_journal --instructions      # needs Debian's valgrind
    .venv/bin/python -m benchmarks.bench_journal --served            # the served process under cachegrind
"""

from __future__ import annotations

import argparse

from benchmarks.common import base_config, machine
from benchmarks.paired import MIN_RATIO, PATH, add_arguments, compare, count_instructions, served_cost
from mock_server.journal import DEFAULT_SIZE

CONNECTIONS = (64, 256)
#: Both servers run the control API, as a gateway team runs the mock as an upstream.
CONTROL = {"enabled": True, "key": "bench-control"}


def configs(size: int = DEFAULT_SIZE) -> tuple[dict[str, object], dict[str, object]]:
    """The configurations compared: journal off, and on with ``size`` entries."""
    return (base_config(control=CONTROL, journal={"enabled": False}),
            base_config(control=CONTROL, journal={"enabled": True, "size": size}))


def run(duration_s: float, rounds: int, connections: tuple[int, ...],
        size: int = DEFAULT_SIZE, together: bool = False) -> list[dict[str, object]]:
    """Measure each connection count with a journal of ``size`` entries; print a table; return its rows.
    ``together``: both servers loaded at once each round (see :func:`benchmarks.paired.compare`)."""
    return compare(("journal off", "journal on"), configs(size), duration_s, rounds, connections, MIN_RATIO,
                   together)


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse options, run, print."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser, CONNECTIONS)
    parser.add_argument("--size", type=int, default=DEFAULT_SIZE, help=f"journal entries (default {DEFAULT_SIZE})")
    args = parser.parse_args(argv)
    if args.served:
        print("## Request journal: per served chat request (cachegrind on mock-server serve), journal off against on")
        served_cost(("off", "on"), configs(args.size), low=args.size + 1000, high=args.size + 5000)
        return 0
    if args.instructions:
        print("## Request journal: instructions per chat request in process (callgrind), journal off against on")
        # both counts past the ring's size: records then let the oldest go, as in a long run
        count_instructions(("off", "on"), configs(args.size), low=args.size + 1000, high=args.size + 5000)
        return 0
    print(f"## Request journal: POST {PATH} (non-streaming), journal on against off, {args.rounds} x "
          f"{args.duration:g} s each")
    print(f"machine: {machine()}")
    run(args.duration, args.rounds, tuple(int(c) for c in args.connections.split(",")), args.size, args.together)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
