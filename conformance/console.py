"""What ``conformance run`` shows while it runs and when it ends (issue 14, live progress).

:class:`ConsoleReport` is a pytest plugin. Per phase (golden, behavioural, upstream, property) it shows the
checks done of their total, the failures so far, the time spent and an estimate of the time left: as a
``rich`` progress bar on a terminal, and as one plain line every few seconds when the output is not a
terminal (a CI log). It blanks pytest's own line per test, so the console is not a wall of test names, and
ends with the capability summary, the failures in brief and the paths of report.md and report.html.

Progress is driven by ``pytest_runtest_logreport``, the hook pytest calls for each finished test in
whatever order tests finish; under pytest-xdist it fires on the controller as the workers report, and the
totals come from ``pytest_xdist_node_collection_finished`` there instead of the session's items.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import pytest
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from conformance import report
from conformance.plugin import PHASES, phase_of_module

#: Seconds between two plain progress lines when the output is not a terminal (``--progress-every``).
PLAIN_INTERVAL_S = 5.0
#: Most failures listed by name at the end of a run; report.md and report.html list them all.
FAILURES_SHOWN = 10


@dataclass
class PhaseCount:
    """One phase's progress: ``done`` of ``total`` checks (None until known), ``failed`` of them, and
    ``started`` (``time.monotonic()`` of its first finished check, None before)."""

    total: int | None = None
    done: int = 0
    failed: int = 0
    started: float | None = None
    finished: float | None = None

    def elapsed_s(self, now: float) -> float:
        """Seconds since the phase's first check finished (to its last, once it is complete)."""
        return 0.0 if self.started is None else (self.finished or now) - self.started

    def eta_s(self, now: float) -> float | None:
        """Seconds left at the pace so far; None while unknown."""
        if self.total is None or not self.done or self.started is None:
            return None
        return self.elapsed_s(now) / self.done * max(self.total - self.done, 0)


def counts_check(rep: pytest.TestReport) -> bool:
    """Whether a test report is one check's verdict (its call, or a setup that skipped or errored), the
    same rule by which ``ConformancePlugin`` records a report row."""
    return rep.when == "call" or (rep.when == "setup" and not rep.passed)


def clock(seconds: float | None) -> str:
    """``seconds`` as ``m:ss`` (``h:mm:ss`` past an hour); ``-:--`` when unknown."""
    if seconds is None:
        return "-:--"
    minutes, secs = divmod(int(seconds + 0.5), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class ConsoleReport:
    """The run's console; see the module docstring.

    ``rows`` is the list the :class:`~conformance.plugin.ConformancePlugin` appends report rows to (read at
    the end), ``report_dir`` where it writes the reports. ``mode`` is ``bar`` (a terminal), ``lines`` (plain
    lines every ``interval_s`` s), ``none`` (only the end summary) or ``auto`` (bar on a terminal, else
    lines). ``stream`` defaults to a duplicate of the process's stdout taken now, so that pytest's capture of
    each test's output (which redirects file descriptor 1) does not swallow the progress. ``staged``: the
    run is several pytest sessions in turn (``conformance/cli.py``'s stages), the totals add up over them
    and the summary waits for :meth:`close`; else it ends with the one session.
    """

    def __init__(self, rows: Sequence[report.Row], report_dir: Path, *, mode: str = "auto",
                 interval_s: float = PLAIN_INTERVAL_S, stream: TextIO | None = None, staged: bool = False) -> None:
        self.rows = rows
        self.staged = staged
        self._planned: set[str] = set()
        self.report_dir = report_dir
        self._owned = stream is None
        self.stream = stream or _stdout_duplicate()
        self.mode = ("bar" if self.stream.isatty() else "lines") if mode == "auto" else mode
        self.interval_s = interval_s
        self.phases: dict[str, PhaseCount] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    # ---- totals ------------------------------------------------------------------------------
    def pytest_configure(self, config: pytest.Config) -> None:
        if config.pluginmanager.hasplugin("xdist"):
            config.pluginmanager.register(_XdistTotals(self), "conformance-console-xdist")

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        if session.items:
            self.set_totals(item.nodeid for item in session.items)

    def set_totals(self, nodeids: Iterable[str]) -> None:
        """Set each phase's total from the ids of the tests that will run (added to those of the run's
        earlier sessions), and start showing progress."""
        self._planned.update(nodeids)
        totals = Counter(phase_of_module(nodeid.split("::", 1)[0]) for nodeid in self._planned)
        with self._lock:
            for phase in PHASES:
                if totals[phase]:
                    count = self.phases.setdefault(phase, PhaseCount())
                    if count.total is not None and totals[phase] > count.total:
                        count.finished = None  # a later stage of the run adds tests to the phase
                    count.total = totals[phase]
        self._start()

    # ---- progress ----------------------------------------------------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: pytest.TestReport) -> tuple[str, str, str] | None:
        """Keep pytest's tally of outcomes but blank its letter and word per test (the progress shows them)."""
        if report.passed and report.when != "call":
            return None  # setup and teardown that passed: pytest shows nothing for them anyway
        category = "error" if report.failed and report.when != "call" else report.outcome
        return category, "", ""

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not counts_check(report):
            return
        phase = phase_of_module(report.nodeid.split("::", 1)[0])
        now = time.monotonic()
        with self._lock:
            count = self.phases.setdefault(phase, PhaseCount())
            count.started = now if count.started is None else count.started
            count.done += 1
            count.failed += report.failed
            if count.total is not None and count.done > count.total:
                count.total = count.done  # a test that reported twice (a rerun): never past 100 %
            complete = count.total is not None and count.done == count.total
            if complete:
                count.finished = now
            line = self._line(phase, count, now) if complete else None
        if self._progress is not None:
            self._progress.start_task(self._task(phase))
            self._progress.update(self._task(phase), completed=count.done, total=count.total, failed=count.failed)
        elif line is not None and self.mode == "lines":
            self._write(line)

    def _task(self, phase: str) -> TaskID:
        assert self._progress is not None
        if phase not in self._tasks:
            self._tasks[phase] = self._progress.add_task(phase, total=self.phases[phase].total, start=False, failed=0)
        return self._tasks[phase]

    def _start(self) -> None:
        if self.mode == "bar" and self._progress is None:
            console = Console(file=self.stream, force_terminal=True)
            self._progress = Progress(
                TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("[red]{task.fields[failed]} failed"), TextColumn("elapsed"), TimeElapsedColumn(),
                TextColumn("ETA"), TimeRemainingColumn(), console=console, redirect_stdout=False,
                redirect_stderr=False, refresh_per_second=4)
            for phase in PHASES:
                if phase in self.phases:
                    self._task(phase)
            self._progress.start()
        elif self.mode == "lines" and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="conformance-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        """Write the line of each phase under way every ``interval_s`` s until the run ends."""
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            with self._lock:
                lines = [self._line(phase, count, now) for phase, count in self.phases.items()
                         if count.started is not None and count.finished is None]
            for line in lines:
                self._write(line)

    @staticmethod
    def _line(phase: str, count: PhaseCount, now: float) -> str:
        total = "?" if count.total is None else str(count.total)
        share = f" ({100 * count.done // count.total}%)" if count.total else ""
        tail = "done" if count.finished is not None else f"ETA {clock(count.eta_s(now))}"
        return (f"[conformance] {phase}: {count.done}/{total}{share}, {count.failed} failed, "
                f"elapsed {clock(count.elapsed_s(now))}, {tail}")

    def _write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()

    def _stop_progress(self) -> None:
        self._stop.set()
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    # ---- the end -----------------------------------------------------------------------------
    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self) -> None:
        if not self.staged:
            self._finish(summary=False)  # also when the run ends before a summary (an interrupt, an error)

    def pytest_terminal_summary(self) -> None:
        if not self.staged:
            self._stop_progress()
            self._summary()

    def close(self) -> None:
        """End a ``staged`` run's console: stop the progress, write the summary, release the stream."""
        self._finish(summary=True)

    def _finish(self, *, summary: bool) -> None:
        self._stop_progress()
        if summary:
            self._summary()
        if self._owned and self.stream is not sys.stdout and not self.stream.closed:
            self.stream.close()

    def _summary(self) -> None:
        for line in summary_lines(self.rows, self.report_dir):
            self._write(line)


def summary_lines(rows: Sequence[report.Row], report_dir: Path) -> Iterator[str]:
    """The end of a run on the console: the tally, the time per phase, the capability summary per API,
    the first :data:`FAILURES_SHOWN` failures, and the paths of report.md and report.html."""
    counts = Counter(row.outcome for row in rows)
    yield (f"conformance: {counts['passed']} passed, {counts['failed']} failed, {counts['known_failure']} known "
           f"failures, {counts['skipped']} skipped, {counts['not_claimed']} not claimed, of {len(rows)} checks")
    seconds = report.phase_seconds(rows)
    if timed := [f"{phase} {seconds[phase]:.1f} s" for phase in PHASES if phase in seconds]:
        yield "time per phase: " + ", ".join(timed)
    yield "capabilities:"
    for api, capabilities in report.capability_matrix(rows).items():
        verdicts = Counter(capabilities.values())
        failing = sorted(cap for cap, shown in capabilities.items() if shown == "fail")
        tally = ", ".join(f"{verdicts[shown]} {shown}" for shown in ("pass", "fail", "known failure", "skip",
                                                                    "not claimed") if verdicts[shown])
        yield f"  {api}: {tally}" + (f" (failing: {', '.join(failing)})" if failing else "")
    failed = [row for row in rows if row.outcome == "failed"]
    for row in failed[:FAILURES_SHOWN]:
        failure = row.failure or {}
        yield f"  FAIL {row.id}: expected {_short(failure.get('expected'))}; received {_short(failure.get('received'))}"
    if len(failed) > FAILURES_SHOWN:
        yield f"  ... and {len(failed) - FAILURES_SHOWN} more failures (all in the report)"
    yield f"report.md:   {report_dir / 'report.md'}"
    yield f"report.html: {report_dir / 'report.html'}"


def _short(text: Any, chars: int = 90) -> str:
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= chars else flat[:chars - 3] + "..."


def _stdout_duplicate() -> TextIO:
    """A text stream on a duplicate of file descriptor 1 (sys.stdout itself when it has none: embedded runs)."""
    try:
        return open(os.dup(sys.stdout.fileno()), "w", encoding="utf-8", errors="replace",
                    closefd=True)
    except (AttributeError, OSError, ValueError):
        return sys.stdout


class _XdistTotals:
    """Under pytest-xdist the controller collects nothing itself: each worker's collection gives the totals."""

    def __init__(self, console: ConsoleReport) -> None:
        self.console = console
        self._seen = False

    def pytest_xdist_node_collection_finished(self, node: Any, ids: Sequence[str]) -> None:
        if not self._seen:  # every worker collects the same tests
            self._seen = True
            self.console.set_totals(ids)
