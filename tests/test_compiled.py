"""The hot modules compiled with mypyc (``setup.py``, ``mock_server/compiled.py``): which ran is said, the
pure-Python switch works, compiled and source modules behave alike, and a failed build leaves Python to run."""

from __future__ import annotations

import importlib.util
import os
import runpy
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mock_server import compiled
from mock_server.sim import ratelimit
from tests.test_ratelimit import LIMIT_SETS, STEPS, Clock

ROOT = Path(__file__).resolve().parent.parent
MOCK_SERVER = Path(sys.executable).parent / "mock-server"


def _built(name: str) -> bool:
    """Whether an extension of module ``name`` was built beside its source (an install that compiled)."""
    package, _, leaf = name.rpartition(".")
    return any(path.suffix in (".so", ".pyd") for path in (ROOT / package.replace(".", "/")).glob(f"{leaf}.*"))


def _source_module(name: str) -> ModuleType:
    """Module ``name`` loaded from its ``.py`` source under another name, whatever the usual import gives."""
    path = ROOT / (name.replace(".", "/") + ".py")
    spec = importlib.util.spec_from_file_location(f"source_of_{name.replace('.', '_')}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the dataclass-like NamedTuples look their module up
    spec.loader.exec_module(module)
    return module


def _version(env: dict[str, str]) -> str:
    out = subprocess.run([str(MOCK_SERVER), "--version"], capture_output=True, text=True, timeout=60, check=True,
                         env={**os.environ, **env}, cwd=ROOT)
    return out.stdout.strip()


def test_mock_server_version_says_which_modules_run_compiled() -> None:
    """``mock-server --version`` names the compiled modules this process loads; every module whose extension
    was built runs compiled (the import takes the extension, not the source beside it)."""
    env = {compiled.PURE_PYTHON_ENV: ""}
    running = compiled.compiled_modules()
    assert running == [name for name in compiled.MODULES if _built(name)]
    expected = ("compiled: " + ", ".join(running)) if running else "compiled: none: pure Python, not built at install"
    assert _version(env).endswith(f"({expected})")
    assert not os.environ.get(compiled.PURE_PYTHON_ENV), "the suite runs what was installed"


def test_the_pure_python_switch_imports_the_sources() -> None:
    """``MOCK_SERVER_PURE_PYTHON=1`` when the mock runs: the Python source, even where extensions are built."""
    assert _version({compiled.PURE_PYTHON_ENV: "1"}).endswith(
        "(compiled: none: pure Python, MOCK_SERVER_PURE_PYTHON is set)")
    probe = ("import mock_server, mock_server.sim.ratelimit as r, mock_server.tokens as t; "
             "print(r.__file__); print(t.__file__)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True,
                         env={**os.environ, compiled.PURE_PYTHON_ENV: "1"}, cwd=ROOT).stdout.split()
    assert out == [str(ROOT / "mock_server/sim/ratelimit.py"), str(ROOT / "mock_server/tokens.py")]


@pytest.fixture(scope="module")
def source_ratelimit() -> ModuleType:
    return _source_module("mock_server.sim.ratelimit")


@settings(max_examples=150, deadline=None)
@given(steps=STEPS)
def test_the_installed_limiter_decides_as_its_source(source_ratelimit: ModuleType, steps: list[Any]) -> None:
    """The limiter that runs (compiled where it was built) and its Python source give the same decisions and
    headers for any sequence (where nothing was compiled, the source is compared with itself)."""
    clock = Clock()
    running, source = ratelimit.SlidingWindowLog(clock), source_ratelimit.SlidingWindowLog(clock)
    as_source = {limits: tuple(source_ratelimit.Limit(*limit) for limit in limits) for limits in LIMIT_SETS}
    for key, which, _, tokens, step, way in steps:
        clock.now += step
        limits = LIMIT_SETS[which]
        if way == "reset":
            running.reset()
            source.reset()
            continue
        decisions, raw = running.admit_tokens(key, limits, tokens)
        theirs, their_raw = source.admit_tokens(key, as_source[limits], tokens)
        assert [tuple(d[1:]) for d in decisions] == [tuple(d[1:]) for d in theirs] and raw == their_raw
        weights = {"requests": 1, "tokens": tokens}
        assert [tuple(d[1:]) for d in running.admit(key, limits, weights)] == \
            [tuple(d[1:]) for d in source.admit(key, as_source[limits], weights)]


#: JSON values as the mock parses them (orjson: no NaN, no infinity).
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
                    | st.text(max_size=30),
                    lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.sampled_from(["content", "max_tokens", "max_output_tokens", "role", "x"]),
                                      inner, max_size=4), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(body=JSON, text=st.text(max_size=60))
def test_the_installed_token_count_and_estimate_are_their_sources(body: Any, text: str) -> None:
    """``count_tokens`` and the TPM estimate that run (compiled where built) agree with their Python source."""
    from mock_server import tokens

    source = _source_module("mock_server.tokens")
    assert tokens.count_tokens(text) == source.count_tokens(text) == len(source.pieces(text))
    assert tokens.estimated_tokens(body) == source.estimated_tokens(body)


def _compiler() -> str | None:
    return shutil.which((sysconfig.get_config_var("CC") or "cc").split()[0])


@pytest.mark.skipif(_compiler() is None, reason="no C compiler to build with")
@pytest.mark.parametrize("library_builds", [True, False])
def test_a_module_whose_mypyc_library_fails_keeps_no_shim(tmp_path: Path, library_builds: bool) -> None:
    """``setup.py``'s build_ext: the extensions are optional, and a module's shim is not built when its
    ``__mypyc`` library failed (it could not import; without any extension the Python module runs)."""
    build_ext = runpy.run_path(str(ROOT / "setup.py"), run_name="setup_under_test")["BuildExt"]
    from setuptools import Distribution, Extension

    def source(name: str, init: str, good: bool) -> str:
        path = tmp_path / f"{name}.c"
        body = "" if good else "#error this library does not compile\n"
        path.write_text(f"{body}#include <Python.h>\n"
                        f"static struct PyModuleDef d = {{PyModuleDef_HEAD_INIT, \"{init}\", NULL, -1, NULL}};\n"
                        f"PyMODINIT_FUNC PyInit_{init}(void) {{ return PyModule_Create(&d); }}\n")
        return str(path)

    extensions = [Extension("pkg.mod__mypyc", [source("lib", "mod__mypyc", library_builds)], optional=True),
                  Extension("pkg.mod", [source("shim", "mod", True)], optional=True)]
    command = build_ext(Distribution({"name": "probe", "ext_modules": extensions}))
    command.build_lib, command.build_temp = str(tmp_path / "lib"), str(tmp_path / "temp")
    command.ensure_finalized()
    command.run()
    built = sorted(path.name.split(".")[0] for path in (tmp_path / "lib").rglob("*") if path.is_file())
    assert built == (["mod", "mod__mypyc"] if library_builds else [])
