"""What ``conformance run`` shows (issue 14, live progress): per phase a bar on a terminal or a plain line every
few seconds in a CI log, no line per pytest test, and at the end the capability summary and the report paths."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

from conformance.console import ConsoleReport, clock
from conformance.embedded import serve
from tests.broken_targets import broken_app


def _conformance(*args: str) -> list[str]:
    return [sys.executable, "-m", "conformance", "run", "--name", "under-test", "--api-key", "sk-test", *args]


def _last_lines_name_the_reports(lines: list[str], reports: Path) -> None:
    report_dir = (reports / "under-test" / "latest").resolve()
    assert lines[-2] == f"report.md:   {reports / 'under-test' / report_dir.name / 'report.md'}"
    assert lines[-1] == f"report.html: {reports / 'under-test' / report_dir.name / 'report.html'}"
    assert (report_dir / "report.md").is_file() and (report_dir / "report.html").is_file()


def test_a_ci_log_gets_plain_progress_lines_and_ends_with_the_summary(tmp_path: Path) -> None:
    with serve(broken_app("no_done")) as url:
        done = subprocess.run(_conformance("--target", url, "--reports", str(tmp_path), "--phases", "behavioural",
                                           "-k", "stream", "--progress-every", "0.2"),
                              capture_output=True, text=True, timeout=300, check=False)
    lines = done.stdout.rstrip("\n").splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    progress = [line for line in lines if line.startswith("[conformance] ")]
    assert progress and all(re.fullmatch(r"\[conformance\] behavioural: \d+/\d+ \(\d+%\), \d+ failed, "
                                         r"elapsed \d+:\d\d, (ETA (\d+:\d\d|-:--)|done)", line) for line in progress)
    total = int(re.search(r"/(\d+) ", progress[-1]).group(1))  # type: ignore[union-attr]
    assert progress[-1].startswith(f"[conformance] behavioural: {total}/{total} (100%), ")
    assert progress[-1].endswith(", done") and " 0 failed" not in progress[-1]
    assert not [line for line in lines if "::" in line or "PASSED" in line or "Traceback" in line]
    assert len(lines) < len(progress) + 30, done.stdout  # no wall: progress, the summary and the paths
    assert any(line.startswith("  multi_protocol: ") or line.startswith("  openai_gateway: ") for line in lines)
    assert any(line.startswith("  FAIL test_stream") for line in lines)
    _last_lines_name_the_reports(lines, tmp_path)


def test_a_terminal_gets_a_bar_per_phase(tmp_path: Path) -> None:
    main, child = pty.openpty()
    process = subprocess.Popen(_conformance("--target", "mock", "--reports", str(tmp_path),
                                            "--phases", "golden,behavioural", "-k", "stream or chat"),
                               stdout=child, stderr=child, env={**os.environ, "COLUMNS": "140"})
    os.close(child)
    output = bytearray()
    while True:
        ready, _, _ = select.select([main], [], [], 1.0)
        chunk = b""
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the child closed the terminal
                chunk = b""
            output += chunk
        if not chunk and process.poll() is not None:
            break
    os.close(main)
    assert process.wait(timeout=60) == 0, output.decode(errors="replace")
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", output.decode("utf-8", "replace"))
    for phase in ("golden", "behavioural"):
        bar = re.search(rf"{phase} +\u2501+ +(\d+)/(\d+) +(\d+) failed elapsed (\d+:\d\d:\d\d) ETA", text)
        assert bar, text[-2000:]
    lines = [line for line in text.replace("\r\n", "\n").split("\n") if line.strip()]
    assert lines[-3].startswith("  ") and ": " in lines[-3]  # the capability summary, then the paths
    _last_lines_name_the_reports([line.strip("\r") for line in lines], tmp_path)


def _report(nodeid: str, outcome: str, when: str = "call") -> pytest.TestReport:
    return pytest.TestReport(nodeid, ("x", 1, "t"), {}, outcome, None, when)


def test_progress_counts_reports_in_any_order_as_a_concurrent_run_delivers_them(tmp_path: Path) -> None:
    stream = io.StringIO()
    console = ConsoleReport([], tmp_path, mode="lines", interval_s=60.0, stream=stream)
    ids = [f"test_golden.py::test_case[{n}]" for n in range(3)] + [f"test_properties.py::test_p[{n}]" for n in range(2)]
    console.set_totals(ids)
    for nodeid, outcome in [(ids[3], "passed"), (ids[0], "failed"), (ids[4], "failed"), (ids[1], "passed")]:
        console.pytest_runtest_logreport(_report(nodeid, outcome))
    console.pytest_runtest_logreport(_report(ids[2], "skipped", "setup"))
    console.pytest_runtest_logreport(_report(ids[2], "passed", "teardown"))  # not a verdict: not counted
    golden, prop = console.phases["golden"], console.phases["property"]
    assert (golden.done, golden.total, golden.failed) == (3, 3, 1) and (prop.done, prop.total, prop.failed) == (2, 2, 1)
    written = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in written] == ["[conformance] property: 2/2 (100%)",
                                                        "[conformance] golden: 3/3 (100%)"]
    assert console.pytest_report_teststatus(_report(ids[0], "failed")) == ("failed", "", "")
    assert console.pytest_report_teststatus(_report(ids[0], "failed", "setup")) == ("error", "", "")
    console.pytest_unconfigure()
    assert (clock(None), clock(59.6), clock(3725)) == ("-:--", "1:00", "1:02:05")
