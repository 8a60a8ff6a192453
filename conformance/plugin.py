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
from conformance.checks import REGISTRY, Check
from conformance.checks.hosted import IssuedUrl
from conformance.failures import CheckFailure
from conformance.golden import GoldenCase, load_cases
from conformance.http import TargetClient
from conformance.target import Target

#: The suite's phases, in the order they run.
PHASES = ("golden", "behavioural", "upstream", "property")


def phase_of_module(module: str) -> str:
    """The phase of a suite module (file name or path): test_golden, test_upstream, test_properties,
    else behavioural."""
    if module.endswith("test_golden.py"):
        return "golden"
    if module.endswith("test_upstream.py"):
        return "upstream"
    return "property" if module.endswith("test_properties.py") else "behavioural"


def phase_of(item: pytest.Item) -> str:
    """The phase of a suite test item."""
    return phase_of_module(item.nodeid.split("::", 1)[0])


#: The skip reason that marks a test of an API the target does not claim.
NOT_CLAIMED = "not claimed"


@dataclass(frozen=True)
class RunConfig:
    """One run: the target, where golden fixtures live, and where the report goes."""

    target: Target
    fixtures_dir: Path
    report_dir: Path
    profile: str = "quick"
    baseline: frozenset[str] = frozenset()
    """Ids of known failures (``--baseline``): reported, but they do not fail the run."""


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
    def profile(self) -> str:
        """The run's profile (``quick`` or ``thorough``, ``conformance/profiles.py``)."""
        return self.run.profile

    @pytest.fixture(scope="session")
    def hosted_urls(self) -> list[IssuedUrl]:
        """Hosted media URLs the run's answers carried, for their download later in the run
        (``checks/hosted.py``); tests that receive one append it."""
        return []

    @pytest.fixture(scope="session")
    def client(self, target: Target) -> Iterator[TargetClient]:
        """A :class:`TargetClient` shared by the whole run."""
        with TargetClient(target) as client:
            yield client

    # ---- collection ------------------------------------------------------------------------
    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "capability(name, source): the matrix row a test counts for")
        config.addinivalue_line("markers", "api(name, operation=None): the spec (and operationId) a test exercises")
        config.addinivalue_line("markers", "check(name): the registered check a test runs (its report row)")
        config.addinivalue_line("markers", "last_in_phase: runs after its phase's other tests (judges what they left)")
        config.addinivalue_line("markers", "serial: measures state other tests change (balances, rate-limit "
                                           "windows): run it alone, with no other test in flight")
        profiles.activate(self.run.profile, profiles.cache_dir())

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        api, operation = _api(item)
        if api and not self.run.target.claims(api):
            pytest.skip(f"{NOT_CLAIMED}: the target does not claim {api}")
        if operation and operation in self.run.target.exclude_operations:
            pytest.skip(f"{operation} is excluded by the target file")

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Run the phases in order: golden fixtures, behavioural checks, then the property-based ones.

        Generated cases come last because they spend the target's credits and rate limits, which
        the precise checks before them must find untouched. Tests marked ``last_in_phase`` end their phase.
        """
        items.sort(key=lambda item: (PHASES.index(phase_of(item)),
                                     item.get_closest_marker("last_in_phase") is not None))

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
        row_id = _row_id(item)
        outcome: str = rep.outcome
        if rep.skipped and NOT_CLAIMED in str(rep.longrepr):
            outcome = "not_claimed"
        elif rep.failed and row_id in self.run.baseline:
            outcome = "known_failure"
        failure = None
        if rep.failed:
            found = check_failures(call.excinfo.value if call.excinfo else None)
            if found:
                failure = found[0].as_dict()
                if len(found) > 1:  # Hypothesis found several distinct failing cases: each is listed
                    failure["cases"] = [error.as_dict() for error in found]
                name = name if single else found[0].check  # a test of many checks reports the one that failed
            else:
                failure = {"check": name, "expected": "the check to pass", "received": _longrepr(rep),
                           "evidence": {"request": {}, "response": {}}}
        upstream = next((value for key, value in rep.user_properties if key == "upstream" and isinstance(value, dict)),
                        None)
        return report.Row(id=row_id, check=name, api=_api(item)[0] or "all", capability=capability, source=source,
                          outcome=outcome, duration_s=round(rep.duration, 4), failure=failure, phase=phase_of(item),
                          upstream=upstream, reason=_skip_reason(rep))

    @property
    def regressions(self) -> list[report.Row]:
        """Failed rows that the baseline does not list: what makes the run fail."""
        return [row for row in self.rows if row.outcome == "failed"]

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        finished = datetime.now(UTC)
        document = report.build(self.run.target, self.rows, self._started.isoformat(timespec="seconds"),
                                finished.isoformat(timespec="seconds"), time.monotonic() - self._clock)
        report.write(document, self.run.report_dir)


def check_failures(error: BaseException | None) -> list[CheckFailure]:
    """The :class:`CheckFailure` (s) behind a failed test: the error itself, or each one in an exception group
    (Hypothesis raises one when it finds several distinct failing cases), depth first, distinct by verdict.
    A leaf that is no CheckFailure (a crash) becomes one of check ``suite_error``, its request unknown."""
    if error is None:
        return []
    if isinstance(error, CheckFailure):
        return [error]
    if not isinstance(error, BaseExceptionGroup):
        return []
    found: dict[tuple[str, str, str], CheckFailure] = {}
    for leaf in _leaves(error):
        failure = leaf if isinstance(leaf, CheckFailure) else CheckFailure(
            "suite_error", "the test to run to its verdict", f"{type(leaf).__name__}: {leaf}"[:1500])
        found.setdefault((failure.check, failure.received, failure.evidence.url), failure)
    return list(found.values())


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    return [leaf for error in group.exceptions
            for leaf in (_leaves(error) if isinstance(error, BaseExceptionGroup) else [error])]


def _row_id(item: pytest.Item) -> str:
    """The stable id of a test's report row: its name, with the operation for generated tests."""
    label = getattr(item, "operation_label", None)  # schemathesis items: one per operation
    name = item.nodeid.split("::", 1)[-1]
    return f"{name.split('[', 1)[0]}[{label}]" if label and "[" not in name else name


def _api(item: pytest.Item) -> tuple[str | None, str | None]:
    """(spec name, operationId) a test exercises, from its golden case, ``api`` param or marker."""
    params = getattr(item, "callspec", None)
    values = params.params if params is not None else {}
    case = values.get("case")
    if isinstance(case, GoldenCase):
        return case.operation.api, case.operation.operation_id
    if isinstance(values.get("api"), str):
        return values["api"], values.get("operation_id")
    marker = item.get_closest_marker("api")
    if marker is not None:
        return str(marker.args[0]), marker.kwargs.get("operation") or values.get("operation_id")
    return None, None


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
    named = item.get_closest_marker("check")
    if named is not None:
        registered = REGISTRY[str(named.args[0])]
        return registered.name, registered.capability, registered.source, True
    marker = item.get_closest_marker("capability")
    name = getattr(item, "originalname", item.name)
    if marker is not None:
        return name, str(marker.args[0]), str(marker.kwargs.get("source", "")), False
    return name, "uncategorised", "", False


def _skip_reason(rep: pytest.TestReport) -> str:
    """Why a skipped test was skipped (pytest keeps ``(path, line, "Skipped: reason")``); "" otherwise."""
    if not rep.skipped:
        return ""
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr or "")
    return str(reason).removeprefix("Skipped: ")


def _longrepr(rep: pytest.TestReport) -> str:
    text = str(rep.longrepr or "")
    return text[-1500:]
