"""The compatibility grid: report.json documents seen as capabilities by API, ready for a template.

Rows are capabilities, grouped as a reader looks for them (:data:`GROUPS`: chat, streaming, multimodal
input, ...); columns are the spec APIs of one run (:func:`report_grid`) or the targets of several
(:func:`compare_grid`). Each cell is a :class:`Tally` of the check outcomes behind it, so its colour
(the verdict) and its count come from the same rows. Nothing here renders HTML; ``pages.py`` does.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Check outcomes, in the order a tally lists them.
OUTCOMES = ("passed", "failed", "known_failure", "skipped", "not_claimed")

#: What a reader calls each outcome.
OUTCOME_LABELS = {"passed": "passed", "failed": "failed", "known_failure": "known failure", "skipped": "skipped",
                  "not_claimed": "not claimed"}

#: (key, title, capability prefixes): the grid's row groups, in the order shown. A capability goes to the
#: group of its longest matching prefix (``chat.streaming.usage`` to streaming, ``chat.tools`` to chat);
#: one that matches none goes to ``other``.
GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("chat", "Chat completions", ("chat", "models")),
    ("streaming", "Streaming", ("chat.streaming", "streaming")),
    ("input", "Multimodal input", ("chat.input",)),
    ("image_output", "Image output", ("chat.image_output",)),
    ("images", "Images API", ("images",)),
    ("audio", "Audio", ("audio",)),
    ("responses", "Responses", ("responses",)),
    ("messages", "Messages", ("messages",)),
    ("credits", "Credits and usage", ("credits", "uploads.store")),
    ("limits", "Limits", ("rate_limits", "limits", "uploads.limit", "uploads")),
    ("errors", "Errors", ("errors",)),
    ("auth", "Auth", ("auth",)),
    ("upstream", "Upstream (gateway in the middle)", ("upstream",)),
    ("facts", "Documented facts", ("facts", "documented")),
    ("contract", "Schema contract (generated cases)", ("contract",)),
    ("sdk", "Official SDKs", ("sdk",)),
    ("other", "Other", ()),
)

_PREFIXES = sorted(((prefix, key) for key, _, prefixes in GROUPS for prefix in prefixes), key=lambda p: -len(p[0]))


def group_of(capability: str) -> str:
    """The key of the :data:`GROUPS` entry a capability belongs to (``other`` when none matches)."""
    for prefix, key in _PREFIXES:
        if capability == prefix or capability.startswith(prefix + "."):
            return key
    return "other"


def verdict(outcomes: Iterable[str]) -> str:
    """A capability's verdict from its checks' outcomes: ``fail`` if any failed, else ``known failure``,
    else ``pass`` if any passed, else ``skip``, else ``not claimed``."""
    seen = set(outcomes)
    for outcome, name in (("failed", "fail"), ("known_failure", "known failure"), ("passed", "pass"),
                          ("skipped", "skip")):
        if outcome in seen:
            return name
    return "not claimed"


def anchor(*parts: str) -> str:
    """An HTML id made of ``parts`` (``cap-openai_gateway-chat.streaming``): letters, digits, ``_.-`` only."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", "-".join(parts))


def capability_anchor(api: str, capability: str) -> str:
    """The id of a capability's list of checks in report.html: where its grid cell links to."""
    return anchor("cap", api, capability)


@dataclass(frozen=True)
class Tally:
    """How many checks ended in each outcome (keys of :data:`OUTCOMES`, counts >= 0)."""

    counts: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Number of checks counted."""
        return sum(self.counts.values())

    @property
    def verdict(self) -> str:
        """pass, fail, known failure, skip or not claimed (see :func:`verdict`)."""
        return verdict(outcome for outcome, n in self.counts.items() if n)

    @property
    def css(self) -> str:
        """The verdict as a CSS class: pass, fail, known, skip or unclaimed."""
        return {"known failure": "known", "not claimed": "unclaimed"}.get(self.verdict, self.verdict)

    @property
    def detail(self) -> str:
        """The counts in words, ``7 passed · 2 failed``."""
        return " · ".join(f"{self.counts[o]} {OUTCOME_LABELS[o]}" for o in OUTCOMES if self.counts.get(o))

    def segments(self) -> list[tuple[str, int, float]]:
        """(outcome, count, percent of the total) for each outcome counted, for a summary bar."""
        total = self.total or 1
        return [(o, self.counts[o], round(100 * self.counts[o] / total, 2)) for o in OUTCOMES if self.counts.get(o)]

    def __add__(self, other: Tally) -> Tally:
        return Tally(dict(Counter(self.counts) + Counter(other.counts)))


@dataclass(frozen=True)
class Cell:
    """One grid cell: the checks behind it and where it links (``#cap-...`` or another report's URL)."""

    tally: Tally
    href: str | None


@dataclass(frozen=True)
class GridRow:
    """One capability (of ``api``, in a comparison) with a cell per column; None where nothing was run."""

    capability: str
    cells: tuple[Cell | None, ...]
    api: str = ""

    @property
    def differs(self) -> bool:
        """Whether the columns disagree (a verdict differs, or a column ran nothing)."""
        return len({cell.tally.verdict if cell else None for cell in self.cells}) > 1


@dataclass(frozen=True)
class GridGroup:
    """Consecutive rows of one :data:`GROUPS` entry, with the group's tally per column."""

    key: str
    title: str
    rows: tuple[GridRow, ...]
    tallies: tuple[Tally, ...]


@dataclass(frozen=True)
class Grid:
    """Columns (API or target names), each column's overall tally, and the row groups in :data:`GROUPS` order."""

    columns: tuple[str, ...]
    tallies: tuple[Tally, ...]
    groups: tuple[GridGroup, ...]

    @property
    def differing_rows(self) -> int:
        """Rows whose columns disagree."""
        return sum(row.differs for group in self.groups for row in group.rows)


def tallies(checks: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], Tally]:
    """``{(api, capability): Tally}`` over report.json ``checks`` entries."""
    counts: dict[tuple[str, str], Counter[str]] = {}
    for row in checks:
        counts.setdefault((row["api"], row["capability"]), Counter())[row["outcome"]] += 1
    return {key: Tally(dict(counter)) for key, counter in counts.items()}


def _column_total(rows: Iterable[GridRow], column: int) -> Tally:
    return sum((cell.tally for row in rows if (cell := row.cells[column]) is not None), Tally())


def _grouped(rows: Sequence[GridRow], columns: int) -> tuple[GridGroup, ...]:
    groups = []
    for key, title, _ in GROUPS:
        members = tuple(sorted((row for row in rows if group_of(row.capability) == key),
                               key=lambda row: (row.capability, row.api)))
        if members:
            groups.append(GridGroup(key, title, members, tuple(_column_total(members, i) for i in range(columns))))
    return tuple(groups)


def report_apis(report: Mapping[str, Any]) -> tuple[str, ...]:
    """The grid's columns for one run: the APIs the target claims or that checks ran for (``all`` last)."""
    apis = set(report["target"].get("apis", [])) | {row["api"] for row in report["checks"]}
    return tuple(sorted(apis, key=lambda api: (api == "all", api)))


def report_grid(report: Mapping[str, Any]) -> Grid:
    """One run's grid: a column per API, a row per capability, each cell linking to its checks."""
    apis = report_apis(report)
    cells = tallies(report["checks"])
    rows = [GridRow(capability, tuple(Cell(cells[(api, capability)], "#" + capability_anchor(api, capability))
                                      if (api, capability) in cells else None for api in apis))
            for capability in sorted({capability for _, capability in cells})]
    totals = tuple(sum((tally for (api, _), tally in cells.items() if api == column), Tally()) for column in apis)
    return Grid(apis, totals, _grouped(rows, len(apis)))


def compare_grid(reports: Sequence[Mapping[str, Any]], links: Sequence[str | None]) -> Grid:
    """Several runs side by side: a column per run (its target's name), a row per (API, capability).

    ``links[i]`` is the URL of run i's report.html (relative to the page), or None: its cells then
    link nowhere. Raises ValueError when ``links`` and ``reports`` differ in length.
    """
    if len(links) != len(reports):
        raise ValueError(f"{len(reports)} reports but {len(links)} links")
    per_run = [tallies(report["checks"]) for report in reports]
    keys = sorted({key for cells in per_run for key in cells})
    rows = [GridRow(capability, tuple(Cell(cells[(api, capability)],
                                           f"{link}#{capability_anchor(api, capability)}" if link else None)
                                      if (api, capability) in cells else None
                                      for cells, link in zip(per_run, links, strict=True)), api)
            for api, capability in keys]
    totals = tuple(sum(cells.values(), Tally()) for cells in per_run)
    names = tuple(report["target"]["name"] for report in reports)
    return Grid(names, totals, _grouped(rows, len(reports)))


#: Longest JSON excerpt of one body in the upstream view, in characters.
UPSTREAM_VIEW_CHARS = 600


def json_excerpt(value: Any, limit: int = UPSTREAM_VIEW_CHARS) -> str:
    """``value`` as JSON (anything else by repr), cut to ``limit`` characters with ``...``."""
    text = json.dumps(value, default=repr)
    return text if len(text) <= limit else text[:limit] + "..."


def upstream_view(report: Mapping[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """The upstream phase's evidence, ``{capability: {scenario: {"relay": view, "checks": {check: outcome}}}}``:
    per capability, what was sent to the gateway against what reached its upstream."""
    view: dict[str, dict[str, dict[str, Any]]] = {}
    for row in report["checks"]:
        relay = row.get("upstream")
        if not relay:
            continue
        scenario = view.setdefault(row["capability"], {}).setdefault(relay["scenario"], {"relay": relay, "checks": {}})
        scenario["relay"] = relay  # the last view of a scenario carries every check's figures
        scenario["checks"][row["check"]] = row["outcome"]
    return view
