"""The console scripts' entry points: ``mock-server`` and ``conformance`` (pyproject.toml ``[project.scripts]``).

Both scripts are installed whichever part of the project is installed (a wheel's scripts cannot depend
on an extra), so each starts here, in the layer both halves stand on, and checks that its half's
dependencies are importable before handing over to that half's CLI: with only ``'.[suite]'``
installed, ``mock-server`` says which part to install (exit 2) instead of an ImportError traceback,
and likewise ``conformance`` with only ``'.[mock]'`` (issue 17, "each half installs alone").
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

#: This project's own top-level packages: an import error inside them is a bug, never a missing extra.
OWN_PACKAGES = frozenset({"spec", "mock_server", "conformance"})


def _launch(command: str, module: str, extra: str) -> int:
    """Import ``module`` and run its ``main()``; returns its exit code, or 2 with a message on stderr when a
    dependency of extra ``extra`` is not installed. Raises what ``main`` raises, and ModuleNotFoundError
    when one of the project's own modules is missing (a broken install, not a missing extra)."""
    try:
        cli = importlib.import_module(module)
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] in OWN_PACKAGES:
            raise
        print(f"{command}: the {error.name!r} package is missing: {command} is part of gateway-conformance's "
              f"[{extra}] extra; install it with: pip install 'gateway-conformance[{extra}]' "
              f"(or '.[{extra}]' in a checkout)", file=sys.stderr)
        return 2
    entry: Callable[[], int] = cli.main
    return entry()


def mock_server() -> int:
    """``mock-server``: ``mock_server.cli.main`` when the ``[mock]`` extra is installed."""
    return _launch("mock-server", "mock_server.cli", "mock")


def conformance() -> int:
    """``conformance``: ``conformance.cli.main`` when the ``[suite]`` extra is installed."""
    return _launch("conformance", "conformance.cli", "suite")
