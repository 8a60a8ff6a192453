"""Which of the mock's modules run compiled to C (mypyc) and which as Python, and the switch to pure Python.

The modules of :data:`MODULES` run on every rate-limited request (the sliding-window log and the TPM
estimate); ``setup.py`` compiles them with mypyc (part of mypy, as black and mypy itself ship) into C
extensions at install when a C compiler and Python's headers are there. Where they are not, or when
:data:`PURE_PYTHON_ENV` is set at install, nothing is compiled and the same modules run as Python:
same behaviour, slower. Setting :data:`PURE_PYTHON_ENV` when the mock runs makes it import the Python
source even where the extensions were built (for debugging, profiling or comparing the two).

``mock-server --version`` and the control API's ``GET /_mock/info`` say which ran (:func:`describe`), so
that a benchmark's report can say it.

This module imports nothing of the mock (``setup.py`` reads :data:`MODULES` from it before anything is
installed).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

#: The modules compiled at install where they can be (dotted names; ``setup.py`` compiles these).
MODULES = ("mock_server.sim.ratelimit", "mock_server.tokens")

#: Set (to anything but empty or ``0``) at install: build no extension; when the mock runs: import the
#: Python source of :data:`MODULES` even where their extensions are built.
PURE_PYTHON_ENV = "MOCK_SERVER_PURE_PYTHON"


def pure_python_asked() -> bool:
    """Whether :data:`PURE_PYTHON_ENV` asks for pure Python (set, and neither empty nor ``0``)."""
    return os.environ.get(PURE_PYTHON_ENV, "") not in ("", "0")


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was loaded from a C extension (a ``.so`` or ``.pyd``) rather than Python source."""
    return (module.__file__ or "").endswith(tuple(importlib.machinery.EXTENSION_SUFFIXES))


def compiled_modules() -> list[str]:
    """The names of :data:`MODULES` that run compiled in this process (imports them)."""
    return [name for name in MODULES if is_compiled(importlib.import_module(name))]


def describe() -> str:
    """``"compiled: <modules>"``, or ``"compiled: none: pure Python, <why>"`` when none is."""
    names = compiled_modules()
    if names:
        return "compiled: " + ", ".join(names)
    why = f"{PURE_PYTHON_ENV} is set" if pure_python_asked() else "not built at install"
    return f"compiled: none: pure Python, {why}"


class _SourceFirst(importlib.abc.MetaPathFinder):
    """Finds the ``.py`` source of :data:`MODULES` ahead of their built extensions."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        """The source file's spec of a module of :data:`MODULES`; None for any other (the usual finders')."""
        if fullname not in MODULES:
            return None
        leaf = fullname.rpartition(".")[2] + ".py"
        for entry in path if path is not None else sys.path:
            source = os.path.join(entry, leaf)
            if os.path.isfile(source):
                return importlib.util.spec_from_file_location(fullname, source)
        return None


def prefer_source() -> None:
    """When :data:`PURE_PYTHON_ENV` asks for it, import :data:`MODULES` from their Python source from now on
    (call before they are first imported: ``mock_server/__init__.py`` does)."""
    if pure_python_asked() and not any(isinstance(finder, _SourceFirst) for finder in sys.meta_path):
        sys.meta_path.insert(0, _SourceFirst())
