"""Suite: ``conformance run --profile quick`` end to end, against the embedded mock and a real-latency mock.

Two targets, as a gateway team meets them (issue 14):

- ``--target mock``: the embedded mock (the shipped configuration, latency scaled by the profile's
  time scale, ``conformance/profiles.py``). Goal: under 30 s.
- ``mock-server serve`` with its shipped configuration and real-time GPU latency (time scale 1: a
  chat answer takes about 0.4 s to its first token, an image a few s), as a slow real gateway.
  Goal: under 120 s on the 2-core reference machine.

The quick profile spends fewer generated cases on the operations whose every answer costs GPU time
(chat, responses, messages, images, audio, video starts: their positive cases leave out schemathesis's
boundary cases, ``conformance/profiles.py`` ``GPU_BOUND``); the thorough profile keeps them.

Each run is a subprocess, as a CI job runs it; its wall time includes start-up (imports, spec
bundling, the workers of the target's concurrency) and collection. The time per phase is the sum of
the checks' durations the run's ``report.json`` records (with concurrency it can exceed the wall time).

    .venv/bin/python -m benchmarks.bench_suite [--runs 1] [--only embedded,serve] [--concurrency N]
        [--keep-reports DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import yaml

from benchmarks.common import (
    KEY,
    ROOT,
    VENV_BIN,
    free_port,
    machine,
    mock_argv,
    print_table,
    serve,
    verdict,
    write_config,
)
from conformance import embedded
from mock_server.config import DEFAULT_CONFIG_FILE

#: Target name -> its budget, in s.
BUDGETS = {"embedded": 30.0, "serve": 120.0, "serve-one-key": 120.0}
PHASES = ("golden", "behavioural", "upstream", "property")


def run_once(target: str, reports: Path, extra: Sequence[str] = ()) -> dict[str, float | str]:
    """One quick run of ``target`` into ``reports``; returns ``{"wall": s, <phase>: s..., "checks", "passed",
    "failed", "skipped", "stopped"}``. Raises RuntimeError when the run cannot be made (exit code 2)."""
    argv = [str(VENV_BIN / "conformance"), "run", "--target", target, "--api-key", KEY, "--name", "bench",
            "--profile", "quick", "-q", "--reports", str(reports), *extra]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
    wall = time.perf_counter() - started
    if done.returncode == 2:
        raise RuntimeError(f"conformance run failed to run: {done.stdout[-1500:]}{done.stderr[-1500:]}")
    report = json.loads((reports / "bench" / "latest" / "report.json").read_text())
    seconds, summary = report["phase_seconds"], report["summary"]
    return {"wall": wall, **{phase: float(seconds.get(phase, 0.0)) for phase in PHASES},
            "checks": summary["total"], "passed": summary["passed"], "failed": summary["failed"],
            "skipped": summary["skipped"], "stopped": (report.get("incomplete") or {}).get("reason", "")}


def measure(name: str, extra: Sequence[str], keep: Path | None = None) -> dict[str, float | str]:
    """One run against target ``name`` (``embedded`` or ``serve``); its reports go to ``keep`` when given
    (``keep/bench/latest/report.json`` holds each check's duration), else to a temporary folder."""
    with tempfile.TemporaryDirectory() as tmp:
        reports = keep or Path(tmp)
        if name == "embedded":
            return run_once("mock", reports, extra)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        if name == "serve-one-key":
            with serve(mock_argv(DEFAULT_CONFIG_FILE, port), port):
                return run_once(url, reports, extra)
        config, target = suite_keys_files(Path(tmp), url)
        with serve(mock_argv(config, port), port):
            return run_once(str(target), reports, extra)


#: The probes' key's window on the ``serve`` target, in s. The embedded mock's window
#: (``embedded.LIMITED_WINDOW_S``, 2 s) holds its RPM burst of rpm + 1 = 4 chats because they answer in
#: milliseconds there; at time scale 1 they take about 0.7 s each, so a 2 s sliding window has moved on
#: before the 4th and admits it (a correct mock then fails ``gateway_rate_limit_429``, which judges the
#: burst as one window).
SERVE_PROBE_WINDOW_S = 5.0


def suite_keys_files(directory: Path, url: str) -> tuple[Path, Path]:
    """The ``serve`` target's files in ``directory``: the shipped configuration (its latency at time scale 1,
    rate limits, ledger, safety filter) with the keys ``--target mock`` gives the suite in place of the
    shipped two (``conformance.embedded.embedded_app``), and a target file for ``url`` declaring them as
    the embedded mock's target does (``TARGET_FILE_OPTIONS``). With the shipped keys alone every I2V call
    goes on ``sk-test``, whose documented 2 calls a minute (004) put five I2V starts at least 120 s apart."""
    shipped = yaml.safe_load(DEFAULT_CONFIG_FILE.read_text())
    optional = ("credits", "rpm", "tpm", "rate_window_s", "spend_limit_usd")
    keys = [{"key": k.key, "tier": k.tier, "scopes": sorted(k.scopes),
             **{field: getattr(k, field) for field in optional if getattr(k, field) is not None}}
            for k in embedded.suite_keys()]
    for key in keys:
        if "rate_window_s" in key:  # the probes' window must hold a burst of real-time answers
            key["rate_window_s"] = max(key["rate_window_s"], SERVE_PROBE_WINDOW_S)
    config = write_config(directory, "serve", {**shipped, "keys": keys})
    target = directory / "serve-target.yaml"
    declared = {"name": "bench", "base_url": url, "api_key": KEY, **embedded.TARGET_FILE_OPTIONS}
    target.write_text(yaml.safe_dump(declared))
    return config, target


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``--runs`` quick runs per target, a table of their times and the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1, help="runs per target (default 1)")
    parser.add_argument("--only", default="embedded,serve",
                        help="targets: embedded, serve, serve-one-key (default embedded,serve)")
    parser.add_argument("--concurrency", type=int, help="passed to conformance run (default: its own)")
    parser.add_argument("--keep-reports", type=Path,
                        help="keep each run's reports under this folder (DIR/<target>-<run>/bench/latest/report.json)")
    args = parser.parse_args(argv)
    extra = ["--concurrency", str(args.concurrency)] if args.concurrency else []
    print("## Suite: conformance run --profile quick (embedded mock; mock-server serve with real-time latency)")
    print(f"machine: {machine()}")
    rows = []
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        walls = []
        for index in range(1, args.runs + 1):
            keep = args.keep_reports / f"{name}-{index}" if args.keep_reports else None
            result = measure(name, extra, keep)
            walls.append(float(result["wall"]))
            rows.append([name, index, f"{result['wall']:.1f}", *(f"{float(result[p]):.1f}" for p in PHASES),
                         result["checks"], result["passed"], result["failed"], result["skipped"],
                         result["stopped"] or "-",
                         verdict(float(result["wall"]) < BUDGETS[name] and result["failed"] == 0)])
        if len(walls) > 1:
            print(f"{name}: median wall time {statistics.median(walls):.1f} s")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (other work on the machine "
          "stretches these runs: compare runs made at the same load)")
    print_table(["target", "run", "wall s", *(f"{p} s" for p in PHASES), "checks", "passed", "failed", "skipped",
                 "stopped", "budget (embedded < 30 s, serve < 120 s)"], rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
