"""Build settings that pyproject.toml cannot say: the mock's hot modules compiled to C with mypyc, optionally.

The modules of ``mock_server/compiled.py``'s MODULES (the rate limiter and the TPM estimate, run on every
rate-limited request) are compiled with mypyc (part of mypy, a build requirement in pyproject.toml; black and
mypy ship themselves the same way) into C extensions, one self-contained extension per module. Compiling is
best effort, so that the project installs and works everywhere:

- no C compiler or no Python headers: the extensions are optional (``Extension.optional``), the build says
  so and goes on, and the Python modules run;
- mypyc itself unavailable or failing: a warning, and no extension;
- ``MOCK_SERVER_PURE_PYTHON=1`` at install: nothing is compiled (and at run time the mock imports the
  Python source even where extensions are built, see ``mock_server/compiled.py``).

``mock-server --version`` says which modules run compiled.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CompileError

HERE = Path(__file__).resolve().parent
COMPILED = runpy.run_path(str(HERE / "mock_server" / "compiled.py"))


def extensions() -> list[Extension]:
    """The optional mypyc extensions, or none (see the module docstring)."""
    if COMPILED["pure_python_asked"]():
        print(f"setup.py: {COMPILED['PURE_PYTHON_ENV']} is set: the modules stay pure Python", file=sys.stderr)
        return []
    try:
        from mypyc.build import mypycify
    except ImportError as error:
        print(f"setup.py: mypyc is not available ({error}): the modules stay pure Python", file=sys.stderr)
        return []
    paths = [name.replace(".", "/") + ".py" for name in COMPILED["MODULES"]]
    # the modules import only the standard library: the rest of the project (and its dependencies, absent
    # from pip's isolated build environment) need not be analysed
    options = ["--follow-imports=skip", "--ignore-missing-imports"]
    try:  # run from the project's directory (as pip does): mypyc names modules by their relative paths
        built: list[Extension] = mypycify([*options, *paths], opt_level="3", separate=True)
    except (Exception, SystemExit) as error:  # mypyc reports type errors by SystemExit
        print(f"setup.py: mypyc failed ({error!r}): the modules stay pure Python", file=sys.stderr)
        return []
    for extension in built:
        extension.optional = True  # no compiler or headers: build_ext warns and skips it
    return built


class BuildExt(build_ext):
    """``build_ext`` that skips a module's mypyc shim when the library it loads (``<module>__mypyc``, built
    just before it) failed: a shim without its library would make the module fail to import, where no
    extension at all leaves the Python module to run."""

    def initialize_options(self) -> None:
        """As build_ext's, plus the names of the extensions that failed to build."""
        super().initialize_options()
        self.failed: set[str] = set()

    def build_extension(self, ext: Extension) -> None:
        """Build ``ext``; raises CompileError (skipped: the extensions are optional) for a shim whose library failed."""
        if f"{ext.name}__mypyc" in self.failed:
            raise CompileError(f"{ext.name}: its library {ext.name}__mypyc did not build")
        try:
            super().build_extension(ext)
        except Exception:
            self.failed.add(ext.name)
            raise


def remove_stale_extensions() -> None:
    """Delete extensions of the compiled modules built in the source tree before (an editable install builds
    them there): an editable install that compiles nothing must not leave an older build to be imported.
    Other builds (a wheel) leave the source tree alone."""
    for name in COMPILED["MODULES"]:
        package, _, leaf = name.rpartition(".")
        for pattern in (f"{leaf}.*", f"{leaf}__mypyc.*"):  # the module's shim and its library
            for built in (HERE / package.replace(".", "/")).glob(pattern):
                if built.suffix in (".so", ".pyd"):
                    built.unlink()


if __name__ == "__main__":  # as pip's build backend runs it (tests import BuildExt without building)
    if {"editable_wheel", "develop"} & set(sys.argv):  # only an editable install builds into the source tree
        remove_stale_extensions()
    setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
