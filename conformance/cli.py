"""``conformance run`` and ``conformance compare``: the suite's command line.

The CLI builds a :class:`RunConfig`, starts the embedded mock for ``--target mock``, and runs the
suite's test modules under pytest with the :class:`ConformancePlugin`. Exit codes of ``run``:
0 no check failed (known failures of ``--baseline`` aside), 1 a check failed, 2 the run itself
could not be made (bad arguments or target file, no tests, an internal error).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import signal
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml

from conformance import pages, preflight, report
from conformance.budget import Limits
from conformance.console import PLAIN_INTERVAL_S, ConsoleReport
from conformance.plugin import (
    AFTER_SERIAL,
    ALONE,
    PHASES,
    ConformancePlugin,
    RunConfig,
    is_rate_limited,
    phase_of_module,
)
from conformance.profiles import MAX_DURATION_S, MOCK_TIME_SCALE, PROFILES
from conformance.suite import generated_test_names
from conformance.target import Target, TargetFileError, load_target_file, name_for, parse_target, root_url
from spec import api_names, load_yaml, project_version

REPO_ROOT = Path(__file__).resolve().parent.parent
SUITE_DIR = Path(__file__).resolve().parent / "suite"
#: The mock's development key (README "Development key").
MOCK_KEY = "sk-test"
#: Checks in flight against ``--target mock`` (``--concurrency`` overrides it): one. The embedded mock
#: answers from this machine's own cores, so pytest-xdist's workers only add their start-up and
#: compete with it (measured on 2 cores: 88 and 60 s with 2 workers, 53 and 47 s with 1). A real
#: target's file keeps its own ``concurrency``.
MOCK_CONCURRENCY = 1


#: What ``conformance --help`` says above the commands (plain text: argparse prints it as is).
DESCRIPTION = """\
Run the gateway conformance suite against a target and write a report, or compare reports.

  conformance run --target mock                                  # the project's own mock
  conformance run --target https://gateway.example --api-key KEY # any gateway, every API
  conformance run --target targets/acme.yaml                     # a target file
  conformance compare reports/a/latest reports/b/latest          # runs side by side

Exit codes of run: 0 no check failed (known failures of --baseline aside), 1 a check failed,
2 the run could not be made (bad arguments or target file, no tests, an internal error) or was
stopped by SIGINT or SIGTERM (its reports are then written and marked incomplete)."""


def _positive(kind: type[float] | type[int]) -> Any:
    def parse(text: str) -> float | int:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return value
    return parse


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``conformance``."""
    parser = argparse.ArgumentParser(prog="conformance", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {project_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{run,compare}")
    run = commands.add_parser("run", help="run the suite against a target and write a report",
                              description="Run the suite against a target and write reports/<target>/<time>/.")
    run.add_argument("--target", required=True, help="a target file (YAML), a server root URL, or 'mock'")
    run.add_argument("--api-key", default=os.environ.get("CONFORMANCE_API_KEY"),
                     help="key for the target (default $CONFORMANCE_API_KEY; the file's; sk-test for the mock)")
    run.add_argument("--name", help="target name used for the report folder (default: file, URL or 'mock')")
    run.add_argument("--reports", type=Path, default=Path("reports"), help="reports root (default ./reports)")
    run.add_argument("--fixtures", type=Path, default=REPO_ROOT / "fixtures", help="golden fixtures folder")
    run.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                     help="generated cases per operation: quick (CI) or thorough (default quick)")
    run.add_argument("--baseline", type=Path, help="known failures (YAML/JSON known_failures: [ids]) to accept")
    run.add_argument("--write-baseline", type=Path, help="write this run's failures as a baseline file")
    run.add_argument("--phases", default=",".join(PHASES), type=phases_argument,
                     help=f"comma-separated phases to run (default all: {','.join(PHASES)})")
    run.add_argument("--max-duration", type=_positive(float), metavar="S",
                     help="stop starting checks after S seconds; the rest is skipped with that reason (default: "
                          + ", ".join(f"{name} {seconds:g} s" for name, seconds in MAX_DURATION_S.items()) + ")")
    run.add_argument("--max-requests", type=_positive(int), metavar="N",
                     help="send at most N requests to the target (default unbounded)")
    run.add_argument("--max-credits", type=_positive(float), metavar="C",
                     help="never start a call whose documented credits would take the run's total past C "
                          "(004 credit costs; default unbounded)")
    run.add_argument("--concurrency", type=_positive(int), metavar="N",
                     help="checks in flight at once (default: the target file's concurrency, else 4)")
    run.add_argument("-k", dest="keyword", help="only checks whose id matches this pytest -k expression")
    run.add_argument("--progress", choices=("auto", "bar", "lines", "none"), default="auto",
                     help="progress per phase: a bar on a terminal, a plain line every few seconds otherwise "
                          "(a CI log); auto picks by whether stdout is a terminal (default auto)")
    run.add_argument("--progress-every", type=float, default=PLAIN_INTERVAL_S, metavar="SECONDS",
                     help=f"seconds between two plain progress lines (default {PLAIN_INTERVAL_S:g})")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress: only the summary at the end")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="pytest's own line per check and tracebacks (to debug the suite) instead of the progress")
    compare = commands.add_parser("compare", help="render several reports side by side",
                                  description="Render several report.json files side by side, one column each.")
    compare.add_argument("reports", nargs="+", type=Path, help="report.json files (or their folders)")
    compare.add_argument("--out", type=Path, help="write the Markdown here instead of printing it")
    compare.add_argument("--html", type=Path, default=Path("reports") / "compare.html",
                         help="write the HTML page here (default reports/compare.html); its cells link to each "
                              "run's report.html")
    return parser


def _target(args: argparse.Namespace, url: str) -> Target:
    if args.target == "mock":
        from conformance.embedded import TARGET_FILE_OPTIONS

        embedded = parse_target({"base_url": url, **TARGET_FILE_OPTIONS, "concurrency": MOCK_CONCURRENCY},
                                "--target mock", args.api_key or MOCK_KEY)
        return dataclasses.replace(embedded, name=args.name or "mock")
    if Path(args.target).is_file():
        target = load_target_file(Path(args.target), args.api_key)
        return Target(**{**target.__dict__, "name": args.name or target.name})
    if not args.target.lower().startswith(("http://", "https://")):
        raise TargetFileError(f"--target {args.target!r} is not `mock`, an http(s) URL or an existing target file"
                              + (" (no such file)" if args.target.endswith((".yaml", ".yml")) or "/" in args.target
                                 else ""))
    if not args.api_key:
        raise TargetFileError(f"--target {args.target} needs a key: pass --api-key KEY, set $CONFORMANCE_API_KEY, "
                              "or use a target file with `api_key: KEY` or `api_key_env: VARIABLE`")
    return Target(args.name or name_for(url), root_url(url), args.api_key)


@contextlib.contextmanager
def _served(target: str, profile: str) -> Iterator[str]:
    if target == "mock":
        from conformance.embedded import embedded_mock, mock_missing

        missing = mock_missing()
        if missing is not None:  # only the suite's half is installed
            raise TargetFileError(f"--target mock serves the project's mock, which is not installed ({missing}): "
                                  "pip install 'gateway-conformance[mock]' (or '.[mock]' in a checkout)")

        with embedded_mock(time_scale=MOCK_TIME_SCALE[profile]) as url:
            yield url
    else:
        yield target


def _baseline(path: Path | None) -> frozenset[str]:
    if path is None:
        return frozenset()
    data = load_yaml(path.read_text(encoding="utf-8")) or {}
    return frozenset(str(item) for item in data.get("known_failures", []))


def _report_dir(root: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    directory = root / name / stamp
    latest = root / name / "latest"
    directory.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(OSError):
        latest.unlink(missing_ok=True)
        latest.symlink_to(stamp, target_is_directory=True)
    return directory


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived: the run stops, its reports are written marked incomplete."""


@contextlib.contextmanager
def _signals() -> Iterator[list[str]]:
    """While the run goes, the first SIGINT or SIGTERM raises :class:`Interrupted` in the main thread (pytest
    stops its session cleanly on it); yields the list the names of the signals that came are added to."""
    received: list[str] = []

    def handler(number: int, frame: FrameType | None) -> None:
        received.append(signal.Signals(number).name)
        if len(received) == 1:  # a second signal does not cut the final reports short
            raise Interrupted(received[-1])

    previous = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for number, action in previous.items():
            signal.signal(number, action)


def run(args: argparse.Namespace) -> int:
    """Run the suite for parsed ``args``; returns the exit code. Arguments, the target file and the
    phases are checked before anything is written: a refused run leaves no report folder."""
    try:
        baseline = _baseline(args.baseline)
        with _served(args.target, args.profile) as url:
            target = _target(args, url)
            if args.concurrency:
                target = dataclasses.replace(target, concurrency=args.concurrency)
            stages = _stages(args, target)
            report_dir = _report_dir(args.reports, target.name)
            with tempfile.TemporaryDirectory(prefix="conformance-") as scratch, _signals() as received:
                plugin = ConformancePlugin(RunConfig(target, args.fixtures, report_dir, args.profile, baseline,
                                                     Path(scratch) / "state.json", _limits(args, target),
                                                     tuple(p for p in PHASES if p in _wanted(args.phases))))
                plugin.owns_run = False  # the stages below are one run: _run_stages writes its final reports
                mode = "none" if args.quiet or args.verbose else args.progress
                console = None if args.verbose else ConsoleReport(
                    plugin.rows, report_dir, mode=mode, interval_s=args.progress_every, staged=True)
                codes = _run_stages(plugin, console, stages, args, received)
    except (TargetFileError, OSError, yaml.YAMLError) as exc:
        print(f"conformance: {exc}", file=sys.stderr)
        return 2
    if args.write_baseline:
        failed = sorted(row.id for row in plugin.rows if row.outcome in ("failed", "known_failure"))
        args.write_baseline.write_text(yaml.safe_dump({"known_failures": failed}), encoding="utf-8")
    if received or any(code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED,
                                    pytest.ExitCode.NO_TESTS_COLLECTED) for code in codes):
        return 2
    if not plugin.rows:
        print("conformance: no checks were collected (see -k and --phases)", file=sys.stderr)
        return 2
    return 1 if plugin.regressions else 0


def _limits(args: argparse.Namespace, target: Target) -> Limits:
    seconds = args.max_duration or MAX_DURATION_S[args.profile]
    return Limits(deadline=time.time() + seconds, max_duration_s=seconds, max_requests=args.max_requests,
                  max_credits=args.max_credits, interval_s=target.interval_s)


#: A stage of a run: (suite modules, pytest -m expression, pytest-xdist workers; 0 runs in this process).
Stage = tuple[list[str], str, int]


def _stages(args: argparse.Namespace, target: Target) -> list[Stage]:
    """The pytest sessions of a run, in order. Without concurrency, one session (the plugin orders its
    tests: golden, behavioural, upstream, property, each phase's ``serial`` and ``last_in_phase`` tests
    after its others). With it, three: golden and behavioural tests and the gateways' generated cases on
    pytest-xdist workers; then the ``serial`` and ``last_in_phase`` tests alone in this process (a quiet
    key; what the others left; the property module is not collected there: its generated tests are never
    serial); then the tests marked ``after_serial`` (``plugin.runs_after_serial``: the upstream phase, and
    the credits API's generated cases, which spend the windows and balance the serial stage measures), on
    workers when the upstream phase is among them, else in this process (the credits API's cases go one at
    a time: workers would only add their start-up). Raises TargetFileError for the upstream phase asked
    for without an upstream section (:func:`_phase_modules`)."""
    modules = _phase_modules(args.phases, target, explicit=args.phases != ",".join(PHASES))
    if target.concurrency <= 1:
        return [(modules, "", 0)]
    early = [test for m in modules if phase_of_module(m) != "upstream" for test in _generated(m, after_serial=False)]
    late = [test for m in modules if phase_of_module(m) in ("upstream", "property")
            for test in _generated(m, after_serial=True)]
    stages: list[Stage] = [(early, f"not ({ALONE}) and not {AFTER_SERIAL}", target.concurrency)] if early else []
    # generated (property) tests are never serial: the stage of those alone does not collect them (building
    # their schemathesis tests costs seconds of start-up)
    alone = [m for m in modules if phase_of_module(m) != "property"]
    if alone:
        stages.append((alone, ALONE, 0))
    upstream = any(phase_of_module(m) == "upstream" for m in late)
    return stages + ([(late, f"not ({ALONE}) and {AFTER_SERIAL}", target.concurrency if upstream else 0)]
                     if late else [])


def _generated(module: str, after_serial: bool) -> list[str]:
    """What a concurrent stage collects of suite ``module``: the module itself, or for the property module
    the node ids of its generated tests that run before the serial stage (``after_serial`` False: the
    gateways') or after it (True: the credits API's, ``plugin.runs_after_serial``). ``test_properties``
    makes a positive and a negative test function per API (``suite.generated_test_names``), and
    schemathesis draws their boundary cases as it collects them: collecting the whole module cost the first
    stage's every worker 2.6 s of CPU for the credits API's tests, and the stage after the serial one 4.2 s
    for the gateways', each deselected by ``-m`` after."""
    if phase_of_module(module) != "property":
        return [module]
    names = [name for api in api_names() for name in generated_test_names(api)]
    return [f"{module}::{name}" for name in names if is_rate_limited(name) == after_serial]


def _run_stages(plugin: ConformancePlugin, console: ConsoleReport | None, stages: list[Stage],
                args: argparse.Namespace, received: list[str]) -> list[int]:
    """Probe the target, start the serial stage's video jobs when a stage runs before it
    (``ConformancePlugin.start_video_jobs``), run each stage's pytest session (with the ``console`` showing
    progress over all of them, None: pytest's own lines), and write the final reports whatever happens
    (marked incomplete when a signal, a budget or an unreachable target ended the run early), then the
    console's summary."""
    codes: list[int] = []
    try:
        plugin.write_report(None)
        failure = preflight.probe(plugin.run.target)
        if failure is not None:
            plugin.state.stop(f"the target is not reachable as the API ({failure.received})")
            plugin.record(report.Row(id=preflight.CHECK, check=preflight.CHECK, api="all",
                                     capability=preflight.CAPABILITY, source=preflight.SOURCE, outcome="failed",
                                     duration_s=0.0, failure=failure.as_dict(), phase="preflight"))
        later = [(modules, marks) for modules, marks, _ in stages[1:] if marks == ALONE]
        if later and not plugin.state.read()["stopped"]:  # the serial stage's video jobs run during the first
            plugin.start_video_jobs(_pytest_args(args, *later[0], 0))
        for modules, marks, workers in stages:
            if received:
                break
            if plugin.state.read()["stopped"]:
                workers = 0  # every test will be skipped: no worker processes for that
            plugins: list[Any] = [plugin] if console is None else [plugin, console]
            codes.append(pytest.main(_pytest_args(args, modules, marks, workers), plugins=plugins))
    except Interrupted:
        pass
    finally:
        stopped = f"stopped by {received[0]}" if received else None
        plugin.write_report(stopped, final=True)
        if console is not None:
            console.close()
    return codes


def _wanted(phases: str) -> set[str]:
    return {phase.strip() for phase in phases.split(",") if phase.strip()}


def phases_argument(text: str) -> str:
    """``--phases`` checked as argparse parses it, so that a bad one is exit 2 before anything starts (no mock
    served, no report folder): a comma-separated list of :data:`PHASES`, none empty, unknown or named twice.
    Returns ``text`` unchanged; raises ``argparse.ArgumentTypeError`` naming the problem."""
    names = [phase.strip() for phase in text.split(",")]
    problems = [f"unknown phase {name!r}" for name in names if name and name not in PHASES]
    problems += [f"{name!r} named twice" for name in sorted({n for n in names if n and names.count(n) > 1})]
    if not any(names) or "" in names:
        problems.append("an empty phase name" if any(names) else "no phase")
    if problems:
        raise argparse.ArgumentTypeError(f"{'; '.join(problems)} in {text!r}: choose from {', '.join(PHASES)}")
    return text


def _phase_modules(phases: str, target: Target, explicit: bool = True) -> list[str]:
    """The suite modules of the named phases (checked by :func:`phases_argument`); raises TargetFileError for
    the upstream phase asked for by name when the target has no ``upstream`` section (without one, the
    default phases leave it out: it needs the gateway's upstream mock)."""
    wanted = _wanted(phases)
    if "upstream" in wanted and target.upstream is None:
        if explicit:
            raise TargetFileError("the upstream phase needs a target file with an upstream section "
                                  "(the control URL and key of the mock the gateway uses as its upstream)")
        wanted.discard("upstream")
    return sorted(str(path) for path in SUITE_DIR.glob("test_*.py") if phase_of_module(path.name) in wanted)


def _pytest_args(args: argparse.Namespace, modules: list[str], marks: str, workers: int) -> list[str]:
    """pytest's argv for one stage: its modules, ``-m marks``, and ``workers`` pytest-xdist workers (0: none)."""
    pytest_args = [*modules, "-c", str(SUITE_DIR / "pytest.ini"), "--rootdir", str(SUITE_DIR),
                   # anyio's plugin is imported already (httpx): keep pytest from warning about it
                   "-p", "no:anyio", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                   # no assert rewriting: the suite's asserts are invariants with their own messages (its checks
                   # raise CheckFailure), and pytest would otherwise rewrite every module of each installed plugin's
                   # distribution imported in the session (schemathesis, faker, xdist: about 300 modules, a
                   # second of CPU in each session and worker; done again by every run when bytecode is not
                   # written, PYTHONDONTWRITEBYTECODE)
                   "--assert=plain",
                   "-p", "conformance.plugin",  # xdist workers register the run's plugin from it
                   # the console (conformance/console.py) shows progress and the summary; pytest's own lines
                   # per check, tracebacks and short summary only with --verbose
                   *(["-v"] if args.verbose else ["-qq", "--tb=no", "-rN", "-o", "console_output_style=classic"])]
    if marks:
        pytest_args += ["-m", marks]
    if workers:
        pytest_args += ["-n", str(workers), "--dist", "loadgroup"]
    else:
        pytest_args += ["-p", "no:xdist"]
    return [*pytest_args, "-k", args.keyword] if args.keyword else pytest_args


def _report_link(report_json: Path, page_dir: Path) -> str | None:
    """The URL of the report.html beside ``report_json``, relative to ``page_dir``; None when there is none.
    Symlinks (``latest``) are resolved, so that the link keeps pointing at this run."""
    html_path = report_json.resolve().parent / "report.html"
    if not html_path.is_file():
        return None
    return urllib.parse.quote(Path(os.path.relpath(html_path, page_dir.resolve())).as_posix())


def compare(args: argparse.Namespace) -> int:
    """Print (or write) the side-by-side comparison of the given reports, and write its HTML page."""
    paths = [path / "report.json" if path.is_dir() else path for path in args.reports]
    try:
        documents = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
        text = report.compare(documents)
        args.html.parent.mkdir(parents=True, exist_ok=True)
        links = [_report_link(path, args.html.parent) for path in paths]
        args.html.write_text(pages.compare_page(documents, links), encoding="utf-8")
        if args.out:
            args.out.write_text(text, encoding="utf-8")
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as exc:
        print(f"conformance: {'not a report.json: missing ' if isinstance(exc, KeyError) else ''}{exc}",
              file=sys.stderr)
        return 2
    if not args.out:
        print(text, end="")
    print(f"comparison page: {args.html}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``conformance``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    return compare(args) if args.command == "compare" else run(args)


if __name__ == "__main__":
    sys.exit(main())
