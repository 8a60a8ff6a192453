"""The pytest plugin that turns the suite's test modules into a run against one target.

``conformance run`` creates a :class:`ConformancePlugin` from a :class:`RunConfig` and hands it to
``pytest.main``. The plugin provides the fixtures the suite uses (``target``, ``client``), feeds
golden fixtures to tests that take ``case``, and collects one report row per test from what the
test ran: a registered check, a golden case, or the ``capability`` marker.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conformance import profiles, report
from conformance.checks import Check
from conformance.failures import CheckFailure
from conformance.golden import GoldenCase, load_cases
from conformance.http import TargetClient
from conformance.target import Target


@dataclass(frozen=True)
class RunConfig:
    """One run: the target, where golden fixtures live, and where the report goes."""

    target: Target
    fixtures_dir: Path
    report_dir: Path
    profile: str = "quick"


class ConformancePlugin:
    """Fixtures, parametrisation and report collection for one run; see the module docstring."""

    def __init__(self, run: RunConfig) -> None:
        self.run = run
        self.rows: list[report.Row] = []
        self._started = datetime.now(UTC)
        self._clock = time.monotonic()

    # ---- fixtures -------------------------------------------------------------------------
    @pytest.fixture(scope="session")
    def target(self) -> Target:
        """The target under test."""
        return self.run.target

    @pytest.fixture(scope="session")
    def client(self, target: Target) -> Iterator[TargetClient]:
        """A :class:`TargetClient` shared by the whole run."""
        with TargetClient(target) as client:
            yield client

    # ---- collection ------------------------------------------------------------------------
    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "capability(name, source): the matrix row a test counts for")
        profiles.activate(self.run.profile, self.run.report_dir / ".hypothesis")

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "case" in metafunc.fixturenames:
            cases = load_cases(self.run.fixtures_dir)
            metafunc.parametrize("case", cases, ids=[case.id for case in cases])

    # ---- results ---------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        rep = yield
        if rep.when == "call" or (rep.when == "setup" and not rep.passed):
            self.rows.append(self._row(item, rep, call))
        return rep

    def _row(self, item: pytest.Item, rep: pytest.TestReport, call: pytest.CallInfo[None]) -> report.Row:
        name, capability, source, single = _meta(item)
        failure = None
        if rep.failed:
            error = call.excinfo.value if call.excinfo else None
            if isinstance(error, CheckFailure):
                failure = error.as_dict()
                name = name if single else error.check  # a test of many checks reports the one that failed
            else:
                failure = {"check": name, "expected": "the check to pass", "received": _longrepr(rep),
                           "evidence": {"request": {}, "response": {}}}
        return report.Row(id=item.nodeid.split("::", 1)[-1], check=name, capability=capability, source=source,
                          outcome=rep.outcome, duration_s=round(rep.duration, 4), failure=failure)

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        finished = datetime.now(UTC)
        document = report.build(self.run.target, self.rows, self._started.isoformat(timespec="seconds"),
                                finished.isoformat(timespec="seconds"), time.monotonic() - self._clock)
        report.write(document, self.run.report_dir)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        terminalreporter.write_line(f"conformance report: {self.run.report_dir / 'report.md'}")


def _meta(item: pytest.Item) -> tuple[str, str, str, bool]:
    """(check name, capability, source, whether the test runs that one check only) of a test item."""
    params = getattr(item, "callspec", None)
    values = params.params if params is not None else {}
    check = values.get("check")
    if isinstance(check, Check):
        return check.name, check.capability, check.source, True
    case = values.get("case")
    if isinstance(case, GoldenCase):
        return "golden_fixture", case.capability, case.source, False
    marker = item.get_closest_marker("capability")
    name = getattr(item, "originalname", item.name)
    if marker is not None:
        return name, str(marker.args[0]), str(marker.kwargs.get("source", "")), False
    return name, "uncategorised", "", False


def _longrepr(rep: pytest.TestReport) -> str:
    text = str(rep.longrepr or "")
    return text[-1500:]
