"""report.html and compare.html, rendered with jinja2 from ``conformance/templates/``.

Both pages are self-contained (inline CSS, no script, nothing fetched) and fit a 1280 px window.
:func:`report_page` shows one run: the grid of capabilities by API (``grid.report_grid``), failures
grouped by check with their evidence folded, skip reasons, every check by capability, and the upstream
view. :func:`compare_page` shows several runs side by side (``grid.compare_grid``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from conformance import grid
from conformance.failures import curl_command

_THUMBNAIL = re.compile(r"data:image/(png|jpeg|webp);base64,[A-Za-z0-9+/]+=*")


@functools.cache
def environment() -> jinja2.Environment:
    """The template environment: package templates, HTML autoescaped, undefined names an error."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("conformance", "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["json_excerpt"] = grid.json_excerpt
    env.tests["binary"] = is_binary
    env.globals.update(labels=grid.OUTCOME_LABELS, capability_anchor=grid.capability_anchor,
                       check_anchor=check_anchor, reproduction=reproduction)
    return env


def check_anchor(check: str) -> str:
    """The id of a check's group of failures in report.html."""
    return grid.anchor("check", check)


def failure_anchor(index: int) -> str:
    """The id of the failure of the ``index``-th entry of report.json ``checks``."""
    return f"f-{index}"


def reproduction(evidence: Mapping[str, Any]) -> str:
    """The curl command of an evidence's request: the one report.json keeps, else one built from the request
    (reports written before it was kept)."""
    request = evidence.get("request") or {}
    return str(request.get("curl") or curl_command(request))


def is_binary(excerpt: str) -> bool:
    """Whether a response excerpt is bytes decoded leniently (media, octets) rather than text: more than 2 %
    of its characters are replacement characters or control codes other than tab and line breaks."""
    odd = sum(1 for char in excerpt if char == "\ufffd" or (ord(char) < 32 and char not in "\t\r\n"))
    return odd > 0.02 * len(excerpt)


def media_view(evidence: Mapping[str, Any]) -> dict[str, Any] | None:
    """The evidence's media summary (``conformance.media.summary``) fit to show, or None: a thumbnail is
    kept only when it is a base64 PNG, JPEG or WebP ``data:`` URL (a report file is data, not markup)."""
    media = evidence.get("media")
    if not isinstance(media, dict):
        return None
    shown = dict(media)
    if not (isinstance(shown.get("thumbnail"), str) and _THUMBNAIL.fullmatch(shown["thumbnail"])):
        shown.pop("thumbnail", None)
    return shown


@dataclass(frozen=True)
class FailureCase:
    """One failed (or known-failed) check entry with what its evidence becomes on the page."""

    index: int
    row: Mapping[str, Any]
    curl: str
    media: dict[str, Any] | None

    @property
    def anchor(self) -> str:
        """Its id in report.html."""
        return failure_anchor(self.index)


@dataclass(frozen=True)
class FailureGroup:
    """The failures of one check, in report order."""

    check: str
    cases: tuple[FailureCase, ...]

    @property
    def known(self) -> int:
        """How many of them the baseline accepts."""
        return sum(case.row["outcome"] == "known_failure" for case in self.cases)


def failure_groups(report: Mapping[str, Any]) -> list[FailureGroup]:
    """The run's failures grouped by check name (groups in name order, cases in report order)."""
    groups: dict[str, list[FailureCase]] = {}
    for index, row in enumerate(report["checks"]):
        failure = row.get("failure")
        if failure and row["outcome"] in ("failed", "known_failure"):
            evidence = failure.get("evidence") or {}
            case = FailureCase(index, row, reproduction(evidence), media_view(evidence))
            groups.setdefault(failure.get("check") or row["check"], []).append(case)
    return [FailureGroup(check, tuple(cases)) for check, cases in sorted(groups.items())]


@dataclass(frozen=True)
class CheckSection:
    """The checks behind one grid cell: its API and capability, their tally, and (index, entry) pairs."""

    api: str
    capability: str
    tally: grid.Tally
    entries: tuple[tuple[int, Mapping[str, Any]], ...]

    @property
    def anchor(self) -> str:
        """Its id in report.html: the target of the grid cell's link."""
        return grid.capability_anchor(self.api, self.capability)


def check_sections(report: Mapping[str, Any], report_grid: grid.Grid) -> list[tuple[str, list[CheckSection]]]:
    """Every check, as (group title, sections) in the grid's order: one section per non-empty cell."""
    entries: dict[tuple[str, str], list[tuple[int, Mapping[str, Any]]]] = {}
    for index, row in enumerate(report["checks"]):
        entries.setdefault((row["api"], row["capability"]), []).append((index, row))
    return [(group.title, [CheckSection(api, row.capability, cell.tally, tuple(entries[(api, row.capability)]))
                           for row in group.rows
                           for api, cell in zip(report_grid.columns, row.cells, strict=True) if cell])
            for group in report_grid.groups]


def report_page(report: Mapping[str, Any]) -> str:
    """One run's report.html from its report.json document."""
    report_grid = grid.report_grid(report)
    checks = report["checks"]
    unclaimed: dict[str, list[Mapping[str, Any]]] = {}
    for row in checks:
        if row["outcome"] == "not_claimed":
            unclaimed.setdefault(row["api"], []).append(row)
    return environment().get_template("report.html.j2").render(
        report=report, grid=report_grid, total=sum(report_grid.tallies, grid.Tally()),
        failures=failure_groups(report), sections=check_sections(report, report_grid),
        skipped=[(index, row) for index, row in enumerate(checks) if row["outcome"] == "skipped"],
        unclaimed=unclaimed, upstream=grid.upstream_view(report), failure_anchor=failure_anchor)


def compare_page(reports: Sequence[Mapping[str, Any]], links: Sequence[str | None]) -> str:
    """compare.html: ``reports`` side by side, one column each; ``links[i]`` is the URL of report i's
    report.html relative to the page (None: not linked). Raises ValueError when the lengths differ."""
    compared = grid.compare_grid(reports, links)
    return environment().get_template("compare.html.j2").render(
        grid=compared, runs=list(zip(reports, links, compared.tallies, strict=True)),
        rows=sum(len(group.rows) for group in compared.groups))
