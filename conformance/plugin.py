"""The pytest plugin that turns the suite's test modules into a run against one target.

``conformance run`` creates a :class:`ConformancePlugin` from a :class:`RunConfig` and hands it to
``pytest.main``. The plugin provides the fixtures the suite uses (``target``, ``client``), feeds
golden fixtures to tests that take ``case``, and collects one report row per test from what the
test ran: a registered check, a golden case, or the ``capability`` marker.

A concurrent run is pytest-xdist's: each worker process registers its own plugin from the pickled
:class:`RunConfig` (``pytest_configure_node`` puts it in the worker's input), computes each test's
row where the test ran and ships it in the test report's ``user_properties``; the controller's
plugin collects the rows (``pytest_runtest_logreport``) and rewrites report.json as they arrive
(progress on the console is ``conformance/console.py``'s). Budgets and the stop reason are shared through
:class:`~conformance.budget.RunState`'s file.
"""

from __future__ import annotations

import contextlib
import copyreg
import gc
import io
import json
import pickle
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from conformance import batch, profiles, report
from conformance.budget import BudgetExhausted, Limits, RunState, skip_reason
from conformance.checks import REGISTRY, Check
from conformance.checks.hosted import IssuedUrl
from conformance.failures import CheckFailure
from conformance.golden import GoldenCase, load_cases
from conformance.http import TargetClient
from conformance.suite import jobs
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
#: The ``user_properties`` key of a test report that carries its report row (a dict of :class:`report.Row`).
ROW_PROPERTY = "conformance_row"
#: Least time between two incremental writes of report.json during a run, in s.
WRITE_INTERVAL_S = 1.0
#: An incremental write of report.json waits at least this many times as long as the last one took (a long
#: run's report takes a tenth of a second to build: rewritten each second it cost the run 10% of its time).
WRITE_COST_FACTOR = 20.0
#: The credits API's tests (golden cases, behavioural checks, generated cases): its per-minute limits
#: (1-10/min per key and operation, 004) make them share one window and its golden cases name earlier
#: answers (``${last:...}``), so a concurrent run keeps them in order on one worker, as without concurrency.
RATE_LIMITED_GROUP = "credits_api"



def read_only(mapping: dict[str, Any]) -> MappingProxyType[str, Any]:
    """``MappingProxyType(mapping)``: how a pickled read-only mapping is rebuilt."""
    return MappingProxyType(mapping)


# The run's configuration crosses to xdist workers pickled; read-only mappings pickle as their dict.
copyreg.pickle(MappingProxyType, lambda proxy: (read_only, (dict(proxy),)))


@dataclass(frozen=True)
class RunConfig:
    """One run: the target, where golden fixtures live, and where the report goes."""

    target: Target
    fixtures_dir: Path
    report_dir: Path
    profile: str = "quick"
    baseline: frozenset[str] = frozenset()
    """Ids of known failures (``--baseline``): reported, but they do not fail the run."""
    state_path: Path | None = None
    """The :class:`~conformance.budget.RunState` file shared by the run's processes (None: a private one
    is made next to the report, for a plugin used alone)."""
    limits: Limits = field(default_factory=Limits)
    phases: tuple[str, ...] = PHASES
    """The phases this run was asked for, in order (the report says which of them ran)."""


class ConformancePlugin:
    """Fixtures, parametrisation and report collection for one run; see the module docstring.

    Used alone (one pytest session) it writes the final reports when the session ends; the CLI, whose
    run is several sessions, sets :attr:`owns_run` False and writes them with :meth:`write_report`.
    """

    def __init__(self, run: RunConfig) -> None:
        self.run = run
        self.rows: list[report.Row] = []
        self.owns_run = True
        """Whether the end of a pytest session is the end of the run (its final reports)."""
        self.expected: dict[str, str] = {}
        """Collected test ids -> phase, over the run's pytest sessions (to tell which phases finished)."""
        self.state = RunState(run.state_path or run.report_dir / ".run-state.json", run.limits)
        self.carry = jobs.Carried()
        """The rate-limit bursts and video jobs the run carries across its sessions (``suite/jobs.py``)."""
        self.worker = False
        self._started = datetime.now(UTC)
        self._clock = time.monotonic()
        self._written = 0.0
        self._write_cost = 0.0

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
    def hosted_urls(self) -> IssuedUrls:
        """Hosted media URLs the run's answers carried, for their download later in the run
        (``checks/hosted.py``); tests that receive one append it (shared by the run's processes)."""
        return IssuedUrls(self.state.path.with_name(".hosted-urls.jsonl"))

    @pytest.fixture(scope="session")
    def client(self, target: Target) -> Iterator[TargetClient]:
        """A :class:`TargetClient` shared by the whole run (of this process), counting against its budgets."""
        with TargetClient(target, self.state) as client:
            yield client

    @pytest.fixture(scope="session")
    def carried(self) -> jobs.Carried:
        """The run's carried bursts and video jobs (:class:`~conformance.suite.jobs.Carried`), across its sessions."""
        return self.carry

    @pytest.fixture(scope="session")
    def run_state(self) -> RunState:
        """The run's budgets and pacing (:class:`~conformance.budget.RunState`), for requests not sent by
        the ``client`` (schemathesis' cases, the SDKs)."""
        return self.state

    # ---- collection ------------------------------------------------------------------------
    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "capability(name, source): the matrix row a test counts for")
        config.addinivalue_line("markers", "api(name, operation=None): the spec (and operationId) a test exercises")
        config.addinivalue_line("markers", "check(name): the registered check a test runs (its report row)")
        config.addinivalue_line("markers", "serial: measures state other tests change (balances, rate-limit "
                                           "windows, credits sequences): runs alone, with no other test in flight")
        config.addinivalue_line("markers", "last_in_phase: runs after its phase's other tests (judges what they left)")
        config.addinivalue_line("markers", f"{AFTER_SERIAL}: runs after the serial stage in a concurrent run "
                                           "(added to the upstream phase's tests and the credits API's generated ones)")
        self.worker = hasattr(config, "workerinput")
        profiles.activate(self.run.profile, profiles.cache_dir())

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node: Any) -> None:
        """pytest-xdist: hand the run's configuration to a worker (see :func:`pytest_configure`)."""
        node.workerinput[RUN_INPUT] = pickle.dumps(self.run)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """pytest-xdist: its scope scheduling, a test per scope except the credits API's tests, one scope
        (:data:`RATE_LIMITED_GROUP`). xdist's own ``xdist_group`` marker cannot do it under pytest 9, whose
        node ids xdist 3.8 no longer rewrites."""
        from xdist.scheduler import LoadScopeScheduling

        class CreditsInOrder(LoadScopeScheduling):  # type: ignore[misc]
            def _split_scope(self, nodeid: str) -> str:
                return RATE_LIMITED_GROUP if is_rate_limited(nodeid) else nodeid

        return CreditsInOrder(config, log)

    @pytest.hookimpl(optionalhook=True)
    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        """pytest-xdist: the tests a worker collected (each worker collects them all)."""
        self.expected.update({nodeid: phase_of_module(nodeid.split("::", 1)[0]) for nodeid in ids})

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Note the collected tests, then move every object alive now (modules, the specs and their
        schemathesis schemas, the collected tests) out of the garbage collector's reach until the session
        finishes (``gc.freeze``): the run's full collections then scan only what its tests make. They
        scanned the whole heap each time, about 2 s of a 30 s quick run against the embedded mock."""
        self.expected.update({item.nodeid: phase_of(item) for item in session.items})
        gc.collect()  # what is garbage already is not kept
        gc.freeze()

    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.state.check()  # a stopped run, or one out of time, skips the test
        reason = self.target_skips(item)
        if reason is not None:
            pytest.skip(reason)

    def target_skips(self, item: pytest.Item) -> str | None:
        """Why the target file skips a test (an API it does not claim, an operation it excludes); None: it runs."""
        api, operation = _api(item)
        if api and not self.run.target.claims(api):
            return f"{NOT_CLAIMED}: the target does not claim {api}"
        if operation and operation in self.run.target.exclude_operations:
            return f"{operation} is excluded by the target file"
        return None

    def start_video_jobs(self, alone_stage: list[str]) -> None:
        """Start the serial stage's video jobs and the bursts that carry them now, before the run's first
        session (``jobs.start_video_jobs``), when their keys allow it (``jobs.starts_before_the_run``): they
        then run on the target while the golden and behavioural checks do. ``alone_stage`` is the serial
        stage's pytest argv; a collection of it (nothing runs) tells which tests it runs, so ``-k``,
        ``--phases`` and the target file's exclusions decide which jobs start, as in that stage. What breaks a
        start is kept and raised to the first test that asks for the jobs (``Carried.error``)."""
        if not jobs.starts_before_the_run(self.run.target):
            return
        collected: list[pytest.Item] = []

        class Collected:
            @staticmethod
            def pytest_collection_finish(session: pytest.Session) -> None:
                collected.extend(session.items)

        with contextlib.redirect_stdout(io.StringIO()):  # pytest's list of the collected tests
            code = pytest.main([*alone_stage, "--collect-only"], plugins=[self, Collected()])
        if code == pytest.ExitCode.INTERRUPTED:  # a signal came while collecting (pytest stops on it): no start
            return
        items = [item for item in collected if self.target_skips(item) is None]
        with TargetClient(self.run.target, self.state) as client:
            try:
                jobs.start_video_jobs(self.carry, items, client, self.run.target)
            except (Exception, pytest.skip.Exception) as error:  # a signal's Interrupted goes on
                self.carry.error = error

    def pytest_itemcollected(self, item: pytest.Item) -> None:
        """Mark :data:`AFTER_SERIAL` the tests a concurrent run keeps for its stage after the serial one
        (:func:`runs_after_serial`), for the CLI's ``-m`` expressions."""
        if runs_after_serial(item):
            item.add_marker(AFTER_SERIAL)

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Run the phases in order: golden fixtures, behavioural checks, upstream, then the property-based
        ones; in each phase, tests marked ``serial`` or ``last_in_phase`` after the others (as the CLI's
        stages run them: :func:`runs_alone`).

        Generated cases come last because they spend the target's credits and rate limits, which
        the precise checks before them must find untouched. Tests marked ``last_in_phase`` end their phase.
        In a pytest-xdist worker (a concurrent stage, whose tests run together whatever their order) the
        tests :func:`starts_first` are first: xdist hands out its scopes in the workers' collection order.
        """
        items.sort(key=lambda item: (not (self.worker and starts_first(item)), PHASES.index(phase_of(item)),
                                     runs_alone(item)))
        for item in items:
            _unique_node_id(item)

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "case" in metafunc.fixturenames:
            cases = load_cases(self.run.fixtures_dir)
            metafunc.parametrize("case", cases, ids=[case.id for case in cases])

    @pytest.hookimpl(wrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> Any:
        """A property test (one per operation and mode) sends its generated cases through a batch of the
        target's ``concurrency`` (the credits API's one at a time: its per-minute limits), whose verdicts
        are raised when Hypothesis has drawn them all (``conformance/batch.py``)."""
        if getattr(pyfuncitem, "operation_label", None) is None:
            return (yield)
        width = 1 if is_rate_limited(pyfuncitem.nodeid) else self.run.target.concurrency
        with batch.opened(width) as cases:
            try:
                result = yield
            except BaseException:
                cases.abandon()
                raise
            cases.finish()
        return result

    # ---- results ---------------------------------------------------------------------------
    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        rep = yield
        if rep.when == "call" or (rep.when == "setup" and not rep.passed):
            row = json.loads(json.dumps(asdict(self._row(item, rep, call)), default=repr))  # plain data for xdist
            rep.user_properties.append((ROW_PROPERTY, row))
        return rep

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Record a test's row (where the run is controlled: the only process, or xdist's controller)."""
        if self.worker:
            return
        for key, value in report.user_properties:
            if key == ROW_PROPERTY:
                self.record(_as_row(value))

    def record(self, row: report.Row) -> None:
        """Add ``row`` to the run, stop the run when the target stopped accepting connections, and rewrite
        report.json when :data:`WRITE_INTERVAL_S` (or :data:`WRITE_COST_FACTOR` times the last write's
        duration, if longer) has passed since the last write."""
        self.rows.append(row)
        if row.failure and row.failure.get("check") == "target_reachable" and "ConnectError" in str(
                row.failure.get("received")):
            self.state.stop(f"the target stopped accepting connections ({row.failure['received']})")
        if time.monotonic() - self._written >= max(WRITE_INTERVAL_S, WRITE_COST_FACTOR * self._write_cost):
            began = time.monotonic()
            self.write_report(None, json_only=True)
            self._write_cost = time.monotonic() - began

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
        gc.unfreeze()  # the session's objects can be collected again (pytest_collection_finish)
        if not self.worker:
            self.write_report(None, json_only=not self.owns_run, final=self.owns_run)

    def write_report(self, stopped: str | None, *, json_only: bool = False, final: bool = False) -> None:
        """Write the report of the rows so far: the four files, or report.json alone (``json_only``).
        Until the ``final`` write the report says the run is still going; the final one says it is
        incomplete when ``stopped`` (why the run ended early) or the run's stop reason is set."""
        self._written = time.monotonic()
        reason = stopped or self.state.read()["stopped"]
        if not final:
            reason = reason or "the run was still going when this report was written (a killed run ends here)"
        incomplete = {"reason": reason, "phases": self.phase_states(reason)} if reason else None
        finished = datetime.now(UTC)
        document = report.build(self.run.target, self.rows, self._started.isoformat(timespec="seconds"),
                                finished.isoformat(timespec="seconds"), time.monotonic() - self._clock, incomplete)
        report.write(document, self.run.report_dir, json_only=json_only)

    def phase_states(self, stopped: str | None) -> dict[str, str]:
        """``{phase: "complete" | "partial" | "not run"}`` for the run's phases: a phase is complete when
        each of its collected tests has a row and none was skipped because the run stopped."""
        phrase = skip_reason(stopped) if stopped else None
        ran: dict[str, int] = {}
        unrun: dict[str, int] = {}
        for row in self.rows:
            counter = unrun if phrase and row.reason == phrase else ran
            counter[row.phase] = counter.get(row.phase, 0) + 1
        wanted: dict[str, int] = {}
        for phase in self.expected.values():
            wanted[phase] = wanted.get(phase, 0) + 1
        states = {}
        for phase in self.run.phases:
            done = ran.get(phase, 0)
            complete = done and not unrun.get(phase) and done >= wanted.get(phase, 0)
            states[phase] = "complete" if complete else "partial" if done else "not run"
        return states


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


#: The key of a worker's input that carries the pickled :class:`RunConfig`.
RUN_INPUT = "conformance_run"


def pytest_configure(config: pytest.Config) -> None:
    """On a pytest-xdist worker (``-p conformance.plugin``), register the run's plugin from its input."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is not None and RUN_INPUT in workerinput:
        plugin = ConformancePlugin(pickle.loads(workerinput[RUN_INPUT]))
        config.pluginmanager.register(plugin, "conformance-run")  # its pytest_configure is replayed (historic)


#: The ``-m`` expression of the tests that run alone, after the concurrent tests of their stage.
ALONE = "serial or last_in_phase"


#: The marker of the tests a concurrent run starts after its serial stage (:func:`runs_after_serial`).
AFTER_SERIAL = "after_serial"


def runs_after_serial(item: pytest.Item) -> bool:
    """Whether a concurrent run keeps a test for its stage after the serial one: the upstream phase's tests (the
    phase order), and the credits API's generated cases, which spend the per-minute windows and the balance the
    serial stage's credits sequences and bursts measure (004: 1-10 calls a minute per key and operation). The
    other generated cases (the gateways' APIs: no credits, and the probes' key is not theirs) run with the
    golden and behavioural checks."""
    phase = phase_of(item)
    return phase == "upstream" or (phase == "property" and is_rate_limited(item.nodeid))


def starts_first(item: pytest.Item) -> bool:
    """Whether a concurrent stage starts a test before its others: the gateways' generated tests, which run with
    the golden and behavioural checks (:func:`runs_after_serial`). Each sends tens of cases whose answers queue
    on the target's few GPU slots (a positive image test 10-18 s against ``mock-server serve``, against 1-11 s
    for a golden or behavioural check), so started last they ended the stage on one or two busy workers while
    the others had nothing left; started first, the short checks fill the workers around them (longest first)."""
    return phase_of(item) == "property" and not runs_after_serial(item)


def runs_alone(item: pytest.Item) -> bool:
    """Whether a test is marked ``serial`` (it needs a quiet key) or ``last_in_phase`` (it judges what the
    phase's other tests left): :data:`ALONE`."""
    return any(item.get_closest_marker(name) is not None for name in ("serial", "last_in_phase"))


class IssuedUrls:
    """Hosted URLs the run's answers carried (:class:`~conformance.checks.hosted.IssuedUrl`), kept in a
    JSON-lines file so that every process of a concurrent run adds to, and reads, the same list."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, url: IssuedUrl) -> None:
        """Add one URL."""
        self.extend([url])

    def extend(self, urls: Iterable[IssuedUrl]) -> None:
        """Add URLs (one appended write: whole lines, whichever process writes)."""
        lines = "".join(json.dumps(asdict(url)) + "\n" for url in urls)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(lines)

    def __iter__(self) -> Iterator[IssuedUrl]:
        if not self.path.exists():
            return iter(())
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return iter([IssuedUrl(**json.loads(line)) for line in lines if line])


def is_rate_limited(nodeid: str) -> bool:
    """Whether a test (by node id) is one of the credits API's (see :data:`RATE_LIMITED_GROUP`)."""
    return RATE_LIMITED_GROUP in nodeid or nodeid.startswith("test_credits_behaviour.py")


def _as_row(value: Any) -> report.Row:
    return report.Row(**value)


def _unique_node_id(item: pytest.Item) -> None:
    """Give a schemathesis item (one per operation) its operation in its node id, as it had before pytest 9.

    Under pytest 9 the items of one generated test share a node id (``test_positive_cases_credits_api``):
    pytest-xdist schedules tests by node id, so all but one of them would never run on its workers.
    """
    label = getattr(item, "operation_label", None)
    node_id = getattr(item, "_id", None)
    if label and getattr(node_id, "params", "") is None and hasattr(node_id, "with_params"):
        item._id = node_id.with_params(label)  # type: ignore[union-attr]


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
    return str(reason).removeprefix("Skipped: ").removeprefix(f"{BudgetExhausted.__module__}.BudgetExhausted: ")


def _longrepr(rep: pytest.TestReport) -> str:
    text = str(rep.longrepr or "")
    return text[-1500:]
