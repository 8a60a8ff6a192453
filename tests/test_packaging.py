"""Each half installs alone (issue 17): the ``[mock]`` extra holds none of the suite's dependencies and
the ``[suite]`` extra none of the mock's, and neither package imports the other half's modules; the
``[test]`` extra holds everything (the README's two commands). Cheap: no install, only import
checks in a subprocess whose import system refuses the other half's modules."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
EXTRAS = PROJECT["optional-dependencies"]
#: Distributions (and their import names) only one half needs.
SUITE_ONLY = {"pytest": "pytest", "schemathesis": "schemathesis", "openai": "openai", "hypothesis": "hypothesis",
              "httpx": "httpx", "httpx-sse": "httpx_sse", "jsonpath-ng": "jsonpath_ng", "anthropic": "anthropic"}
MOCK_ONLY = {"starlette": "starlette", "orjson": "orjson",  # (jsonschema-rs: schemathesis needs it too)
             "prometheus-client": "prometheus_client", "python-multipart": "multipart", "httptools": "httptools",
             "uvloop": "uvloop", "jsf": "jsf"}

#: A subprocess that refuses to import ``sys.argv[1]`` (comma-separated top-level names), then imports
#: every module of package ``sys.argv[2]`` and runs ``sys.argv[3]``.
_BLOCKED = """
import importlib, importlib.abc, pkgutil, sys
blocked = set(sys.argv[1].split(","))
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r} (the other half's)", name=name)
        return None
sys.meta_path.insert(0, Refuse())
package = importlib.import_module(sys.argv[2])
for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
    if not module.name.endswith(".__main__"):  # __main__ would run the CLI
        importlib.import_module(module.name)
exec(sys.argv[3])
"""


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[<>=;\\[ ]", requirement, maxsplit=1)[0].lower() for requirement in requirements}


def test_extras_split_the_halves() -> None:
    base, mock, suite = _names(PROJECT["dependencies"]), _names(EXTRAS["mock"]), _names(EXTRAS["suite"])
    assert not (base | mock) & set(SUITE_ONLY), "the mock would install the suite's dependencies"
    assert not (base | suite) & set(MOCK_ONLY), "the suite would install the mock's server"
    assert "gateway-conformance" in _names(EXTRAS["test"])
    assert "gateway-conformance[mock,suite]" in EXTRAS["test"]  # the README's '.[test]' installs both halves


def test_every_dependency_says_why() -> None:
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    section = text[text.index("dependencies = ["):text.index("[project.scripts]")]
    for line in section.splitlines():
        if line.strip().startswith('"') and "#" not in line:
            previous = section.splitlines()[section.splitlines().index(line) - 1]
            assert previous.strip().startswith("#"), f"no comment says why: {line.strip()}"


def _run(blocked: dict[str, str], package: str, code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _BLOCKED, ",".join(blocked.values()), package, code],
                          capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)


def test_the_mock_imports_nothing_of_the_suite() -> None:
    done = _run({**SUITE_ONLY, "conformance": "conformance"}, "mock_server",
                "from mock_server import create_app; from mock_server.cli import build_parser; create_app(); "
                "build_parser()")
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_suite_imports_nothing_of_the_mock() -> None:
    blocked = {**MOCK_ONLY, "mock_server": "mock_server"}
    done = _run(blocked, "conformance", "from conformance.cli import main; import conformance.suite")
    assert done.returncode == 0, done.stderr[-2000:]
    # a suite-only install has the mock_server package (every wheel ships it) but not its dependencies
    refused = _run(MOCK_ONLY, "conformance", "from conformance.cli import main; "
                                           "raise SystemExit(main(['run', '--target', 'mock', '--reports', '/tmp']))")
    assert refused.returncode == 2 and "gateway-conformance[mock]" in refused.stderr + refused.stdout


@pytest.mark.parametrize("blocked", [SUITE_ONLY, MOCK_ONLY])
def test_the_check_can_fail(blocked: dict[str, str]) -> None:
    """Blocking a module the package does use makes the import check fail (the check is not vacuous)."""
    package = "conformance" if blocked is SUITE_ONLY else "mock_server"
    assert _run(blocked, package, "pass").returncode != 0


@pytest.mark.parametrize(("command", "blocked", "extra"), [("mock_server", MOCK_ONLY, "mock"),
                                                          ("conformance", SUITE_ONLY, "suite")])
def test_a_console_script_without_its_half_names_the_extra(command: str, blocked: dict[str, str], extra: str) -> None:
    """With only the other half installed, the console script says which extra to install (exit 2), no traceback."""
    done = _run(blocked, "spec", f"from spec.launch import {command}; raise SystemExit({command}())")
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"pip install 'gateway-conformance[{extra}]'" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["mock_server", "conformance"])
def test_a_console_script_with_its_half_runs_its_cli(command: str) -> None:
    done = _run({}, "spec", f"import sys; sys.argv = ['x', '--help']; from spec.launch import {command}; "
                            f"raise SystemExit({command}())")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout


def test_the_scripts_start_at_the_launcher() -> None:
    """pyproject's scripts go through spec/launch.py, not straight to a half's CLI (whose imports need its extra)."""
    assert PROJECT["scripts"] == {"mock-server": "spec.launch:mock_server", "conformance": "spec.launch:conformance"}


def test_a_run_imports_the_sdks_only_to_run_an_sdk_check() -> None:
    """Importing ``openai`` and ``anthropic`` costs seconds, paid by the CLI and by each xdist worker of each
    stage: collecting the suite (the SDK checks' module included) loads neither; running an SDK call does."""
    code = ("import sys; from conformance.cli import main; import conformance.suite.test_sdk as sdk_tests; "
            "from conformance.checks.sdk import run_sdk; "
            "print(sorted(name for name in ('openai', 'anthropic') if name in sys.modules)); "
            "run_sdk('sdk_chat_completion', 'http://127.0.0.1:9', lambda: None); "
            "print(sorted(name for name in ('openai', 'anthropic') if name in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["[]", "['anthropic', 'openai']"]
