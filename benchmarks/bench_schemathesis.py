"""schemathesis' own CLI, all phases and all checks, against ``mock-server serve`` for each spec.

Issue 16: an outside view of the mock's robustness, apart from the suite's own property tests. For
each ``spec/*.yaml`` (the vendor specs; ``shared.yaml`` is their common components) this runs
``schemathesis run SPEC --url URL --phases examples,coverage,fuzzing,stateful --checks all`` against
a mock with rate limits and credits too high to refuse, and prints schemathesis' summary counts
(operations, test cases, failures by check). Figures are printed, never asserted.

    .venv/bin/python -m benchmarks.bench_schemathesis [--max-examples 20]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.common import KEY, ROOT, VENV_BIN, base_config, free_port, machine, mock_argv, serve, write_config

#: The vendor specs (``shared.yaml`` holds components only).
SPECS = ("openai_gateway", "multi_protocol", "credits_api")
PHASES = "examples,coverage,fuzzing,stateful"


def run_one(spec: str, url: str, max_examples: int) -> tuple[float, str]:
    """One schemathesis run of ``spec``; returns (wall s, the summary part of its output)."""
    argv = [str(VENV_BIN / "schemathesis"), "run", str(ROOT / "spec" / f"{spec}.yaml"), "--url", url,
            "--phases", PHASES, "--checks", "all", "--max-examples", str(max_examples),
            "-H", f"Authorization: Bearer {KEY}", "-H", f"x-api-key: {KEY}", "-H", "anthropic-version: 2023-06-01",
            "--request-timeout", "30", "--no-color"]
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=3600, check=False)
    wall = time.perf_counter() - started
    out = done.stdout
    summary = out[out.find("SUMMARY"):] if "SUMMARY" in out else out[-3000:]
    return wall, re.sub(r"\n{3,}", "\n\n", summary).strip()


def main(argv: list[str] | None = None) -> int:
    """Entry point: schemathesis' summary per spec."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-examples", type=int, default=20, help="schemathesis -n per operation (default 20)")
    parser.add_argument("--specs", default=",".join(SPECS), help="comma-separated subset of the specs")
    args = parser.parse_args(argv)
    print(f"## schemathesis run, phases {PHASES}, --checks all, -n {args.max_examples}")
    print(f"machine: {machine()}\n")
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), "schemathesis", base_config())
        port = free_port()
        with serve(mock_argv(config, port), port) as server:
            for spec in [name.strip() for name in args.specs.split(",") if name.strip()]:
                wall, summary = run_one(spec, server.url, args.max_examples)
                print(f"### {spec}.yaml ({wall:.0f} s)\n\n```\n{summary}\n```\n", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
