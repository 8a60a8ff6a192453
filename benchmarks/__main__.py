"""Every benchmark of the performance budget, one after another: ``python -m benchmarks``.

Each script prints its Markdown section (figures and a verdict per budget); this runs them in turn
with their default sizes, after one line on the machine and the commit measured, so the whole output
can be pasted into ``benchmarks/RESULTS.md``. ``--only`` picks some by name; ``--quick`` passes each
script its smaller sizes (a smoke run: the figures are noisier). Takes about 10 minutes in full.

    .venv/bin/pip install -e '.[bench]' && apt-get install -y wrk && .venv/bin/python -m benchmarks
"""

from __future__ import annotations

import argparse
import importlib
import subprocess
import time

from benchmarks.common import ROOT, machine

#: Benchmarks by name: (module, arguments of a full run, arguments of a quick run).
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "throughput": ("benchmarks.bench_throughput", [], ["--duration", "2", "--rounds", "2"]),
    "streaming": ("benchmarks.bench_streaming", ["--stacks", "uvloop,asyncio"],
                  ["--streams", "200", "--rounds", "1", "--starts", "2"]),
    "journal": ("benchmarks.bench_journal", [], ["--duration", "2", "--rounds", "2"]),
    "observability": ("benchmarks.bench_observability", [], ["--duration", "2", "--rounds", "2"]),
    "latency": ("benchmarks.bench_latency", [], ["--quick"]),
    "fleet": ("benchmarks.bench_fleet", [], ["--duration", "2", "--rounds", "2"]),
    "ledger": ("benchmarks.bench_ledger", ["--http"], ["--charges", "500", "--rounds", "1", "--concurrency", "1,64"]),
    "peers": ("benchmarks.bench_peers", [], ["--duration", "2", "--rounds", "2", "--streams", "200",
                                             "--sse-rounds", "1"]),
    "suite": ("benchmarks.bench_suite", [], []),
    "refusal": ("benchmarks.bench_refusal", [], ["--max-mb", "3.5"]),
    "schemathesis": ("benchmarks.bench_schemathesis", [], ["--max-examples", "5"]),
    "structured": ("benchmarks.bench_structured", [], ["--answers", "20"]),
}


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks in order; returns 0 (the figures, not the exit code, are the result)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated subset of {', '.join(BENCHMARKS)}")
    parser.add_argument("--quick", action="store_true", help="smaller sizes: a smoke run")
    args = parser.parse_args(argv)
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip() or "unknown"
    print(f"# Benchmarks, {time.strftime('%Y-%m-%d %H:%M %Z')}, commit {commit}")
    print(f"machine: {machine()}\n")
    for name in names:
        module, full, quick = BENCHMARKS[name]
        started = time.perf_counter()
        importlib.import_module(module).main(quick if args.quick else full)
        print(f"\n({name}: {time.perf_counter() - started:.0f} s)\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
