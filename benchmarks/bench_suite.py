"""Suite: ``conformance run --target mock --profile quick``, timed end to end and per phase.

Budget (issue 7): the quick profile against the embedded mock finishes in under 60 s. The run is a
subprocess, as a CI job runs it; its wall time includes start-up (imports, spec bundling, the
embedded mock) and collection. The time per phase (property-based, golden fixtures, behavioural)
is the sum of the checks' durations the run's ``report.json`` records; what is left of the wall
time is start-up, collection and report writing.

    .venv/bin/python -m benchmarks.bench_suite [--runs 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, VENV_BIN, machine, print_table, verdict

#: The budget, in s.
MAX_WALL_S = 60.0
PHASES = ("property", "golden", "behavioural")


def run_once(reports: Path) -> dict[str, float]:
    """One quick run into ``reports``; returns ``{"wall": s, <phase>: s..., "checks": n, "failed": n}``.
    Raises RuntimeError when the run cannot complete (exit code 2)."""
    argv = [str(VENV_BIN / "conformance"), "run", "--target", "mock", "--profile", "quick", "-q",
            "--reports", str(reports)]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    wall = time.perf_counter() - started
    if done.returncode == 2:
        raise RuntimeError(f"conformance run failed to run: {done.stderr[-2000:]}")
    report = json.loads(next(reports.glob("mock/*/report.json")).read_text())
    seconds = report["phase_seconds"]
    return {"wall": wall, **{phase: float(seconds.get(phase, 0.0)) for phase in PHASES},
            "checks": report["summary"]["total"], "failed": report["summary"]["failed"]}


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``--runs`` quick runs, a table of their times and the verdict."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1, help="runs (default 1); the table gives each and the median")
    args = parser.parse_args(argv)
    print("## Suite: conformance run --target mock --profile quick")
    print(f"machine: {machine()}")
    results = []
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            results.append(run_once(Path(tmp)))
    rows = []
    for index, result in enumerate(results, 1):
        other = result["wall"] - sum(result[phase] for phase in PHASES)
        rows.append([index, f"{result['wall']:.1f}", *(f"{result[phase]:.1f}" for phase in PHASES), f"{other:.1f}",
                     f"{result['checks']:.0f}", f"{result['failed']:.0f}",
                     verdict(result["wall"] < MAX_WALL_S and result["failed"] == 0)])
    print_table(["run", "wall s", *(f"{phase} s" for phase in PHASES), "start-up, collection, report s", "checks",
                 "failed", f"budget < {MAX_WALL_S:.0f} s"], rows)
    if len(results) > 1:
        print(f"median wall time: {statistics.median(r['wall'] for r in results):.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
