"""The mock's modules import each other without circles, and the pipeline's stages know the
pipeline's small interface (``stages/base.py``) and not each other (STYLE.md 9; issue 17).

Every ``import``/``from ... import`` of a ``mock_server`` module counts, lazy ones inside functions
too (a lazy import that dodges a circle is still a circle)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "mock_server"
#: The stage modules of the request pipeline (``mock_server/stages/``), which may import only
#: ``stages.base`` of the package (the pipeline module imports them all, in its order).
STAGES = ("access", "auth", "body", "faults", "latency", "limits", "params", "scripted", "validation")
#: Registries: a package whose ``__init__`` defines a registry and then imports the modules that register
#: with it; their imports of the package are the idiom, not a circle to break.
REGISTRIES = {"mock_server.handlers": "handlers/__init__.py defines HANDLERS and handles() before importing "
                                      "the handler modules, which register with handles()"}
#: A stage module that uses another's helpers, and why (not a circle: faults imports no stage).
STAGE_HELPERS = {("scripted", "faults"): "a script's cut and paced streams reuse the fault stage's stream helpers",
                 ("body", "validation"): "a body of many values is parsed and validated in one call of the worker "
                                         "process (offload.py), so the body stage builds that call's validator"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """``{module: the mock_server modules it imports}`` over every module of the package."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found |= {alias.name for alias in node.names if alias.name in modules}
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mock_server"):
                subs = {f"{node.module}.{alias.name}" for alias in node.names} & modules.keys()
                found |= subs or ({node.module} & modules.keys())
        graph[name] = {target for target in found - {name}
                       if not (target in REGISTRIES and name.startswith(target + "."))}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every import circle found by a depth-first search (each as the modules along it)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in sorted(graph.get(module, ())):
            if state.get(target) == 1:
                found.append([*path[path.index(target):], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    return found


def test_the_mock_has_no_import_circles() -> None:
    assert cycles(import_graph()) == []


def test_the_check_finds_a_circle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]


def test_stages_know_the_interface_and_not_each_other() -> None:
    graph = import_graph()
    for stage in STAGES:
        imported = {target.removeprefix("mock_server.stages.") for target in graph[f"mock_server.stages.{stage}"]
                    if target.startswith("mock_server.stages.")}
        others = imported - {"base"} - {helper for (user, helper) in STAGE_HELPERS if user == stage}
        assert others == set(), f"stages.{stage} imports stages {sorted(others)}"
    assert {f"mock_server.stages.{stage}" for stage in ("access", "faults", "latency", "limits", "scripted")} <= \
        graph["mock_server.stages.pipeline"]
