"""``conformance run --target URL|mock [--api-key KEY]``: run the suite against a target.

The CLI builds a :class:`RunConfig`, starts the embedded mock for ``--target mock``, and runs the
suite's test modules under pytest with the :class:`ConformancePlugin`. Exit codes: 0 every check
passed, 1 a check failed, 2 the run itself could not be made (bad arguments, no tests, crash).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conformance.plugin import ConformancePlugin, RunConfig
from conformance.profiles import PROFILES
from conformance.target import Target, name_for, root_url

REPO_ROOT = Path(__file__).resolve().parent.parent
SUITE_DIR = Path(__file__).resolve().parent / "suite"
MOCK_KEY = "sk-test"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``conformance``."""
    parser = argparse.ArgumentParser(prog="conformance", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the suite against a target and write a report")
    run.add_argument("--target", required=True, help="the target's root URL, or 'mock' for the embedded mock")
    run.add_argument("--api-key", default=os.environ.get("CONFORMANCE_API_KEY"),
                     help="Bearer key for the target (default $CONFORMANCE_API_KEY; sk-test for the mock)")
    run.add_argument("--name", help="target name used for the report folder (default: from the URL)")
    run.add_argument("--reports", type=Path, default=Path("reports"), help="reports root (default ./reports)")
    run.add_argument("--fixtures", type=Path, default=REPO_ROOT / "fixtures", help="golden fixtures folder")
    run.add_argument("--profile", choices=sorted(PROFILES), default="quick",
                     help="how many generated cases per operation: quick (CI) or thorough (default quick)")
    run.add_argument("-k", dest="keyword", help="only checks whose id matches this pytest -k expression")
    run.add_argument("-q", "--quiet", action="store_true", help="one character per check instead of one line")
    return parser


@contextlib.contextmanager
def _resolve(target: str) -> Iterator[str]:
    if target == "mock":
        from conformance.embedded import embedded_mock

        with embedded_mock() as url:
            yield url
    else:
        yield root_url(target)


def run(args: argparse.Namespace) -> int:
    """Run the suite for parsed ``args``; returns the exit code."""
    name = args.name or ("mock" if args.target == "mock" else name_for(args.target))
    api_key = args.api_key or (MOCK_KEY if args.target == "mock" else None)
    if not api_key:
        print("conformance: --api-key (or $CONFORMANCE_API_KEY) is required for a remote target", file=sys.stderr)
        return 2
    report_dir = args.reports / name
    with _resolve(args.target) as base_url:
        plugin = ConformancePlugin(RunConfig(Target(name, base_url, api_key), args.fixtures, report_dir,
                                           args.profile))
        pytest_args = [str(SUITE_DIR), "-c", str(SUITE_DIR / "pytest.ini"), "--rootdir", str(SUITE_DIR),
                       # anyio's plugin is imported already (httpx): keep pytest from warning about it
                       "-p", "no:anyio", "-W", "ignore::pytest.PytestAssertRewriteWarning",
                       "--junitxml", str(report_dir / "junit.xml"), "-o", "junit_suite_name=conformance",
                       "-q" if args.quiet else "-v"]
        if args.keyword:
            pytest_args += ["-k", args.keyword]
        code = pytest.main(pytest_args, plugins=[plugin])
    if code == pytest.ExitCode.OK:
        return 0
    return 1 if code == pytest.ExitCode.TESTS_FAILED else 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``conformance``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
