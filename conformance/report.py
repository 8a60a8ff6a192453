"""The compatibility report: one :class:`Row` per check that ran, rendered as JSON and Markdown.

report.json shape::

    {"target": {"name", "base_url"}, "started", "finished" (ISO 8601 UTC), "duration_s",
     "summary": {"passed", "failed", "skipped", "total"},
     "capabilities": {capability: "pass" | "fail" | "skip"},
     "checks": [{"id", "check", "capability", "source", "outcome", "duration_s", "failure"}]}

``failure`` is None or ``{"check", "expected", "received", "evidence": {"request", "response"}}``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from conformance.target import Target


@dataclass(frozen=True)
class Row:
    """One check run: ``outcome`` is passed, failed or skipped; ``duration_s`` in s."""

    id: str
    check: str
    capability: str
    source: str
    outcome: str
    duration_s: float
    failure: dict[str, Any] | None = None


def capability_matrix(rows: Sequence[Row]) -> dict[str, str]:
    """``{capability: pass|fail|skip}``: fail if any row failed, pass if any passed, else skip."""
    outcomes: dict[str, set[str]] = {}
    for row in rows:
        outcomes.setdefault(row.capability, set()).add(row.outcome)
    return {
        capability: "fail" if "failed" in seen else "pass" if "passed" in seen else "skip"
        for capability, seen in sorted(outcomes.items())
    }


def build(target: Target, rows: Sequence[Row], started: str, finished: str, duration_s: float) -> dict[str, Any]:
    """The report.json document for ``rows``."""
    counts = Counter(row.outcome for row in rows)
    return {
        "target": {"name": target.name, "base_url": target.base_url},
        "started": started,
        "finished": finished,
        "duration_s": round(duration_s, 3),
        "summary": {"passed": counts["passed"], "failed": counts["failed"], "skipped": counts["skipped"],
                    "total": len(rows)},
        "capabilities": capability_matrix(rows),
        "checks": [asdict(row) for row in rows],
    }


def write(report: dict[str, Any], directory: Path) -> None:
    """Write ``report.json`` and ``report.md`` into ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=2, default=repr) + "\n", encoding="utf-8")
    (directory / "report.md").write_text(markdown(report), encoding="utf-8")


_MARK = {"pass": "PASS", "fail": "FAIL", "skip": "skip", "passed": "pass", "failed": "**FAIL**", "skipped": "skip"}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(report: dict[str, Any]) -> str:
    """A human-readable rendering of a report.json document."""
    summary = report["summary"]
    lines = [
        f"# Compatibility report: {report['target']['name']}",
        "",
        f"Target `{report['target']['base_url']}`, run {report['started']} to {report['finished']} "
        f"({report['duration_s']} s).",
        "",
        f"**{summary['passed']} passed, {summary['failed']} failed, {summary['skipped']} skipped** "
        f"of {summary['total']} checks.",
        "",
        "## Capabilities",
        "",
        "| capability | verdict |",
        "|---|---|",
        *[f"| {cap} | {_MARK[verdict]} |" for cap, verdict in report["capabilities"].items()],
        "",
        "## Checks",
        "",
        "| check | case | capability | outcome | source |",
        "|---|---|---|---|---|",
    ]
    for row in report["checks"]:
        lines.append(f"| {row['check']} | {_cell(row['id'])} | {row['capability']} | {_MARK[row['outcome']]} "
                     f"| {_cell(row['source'])} |")
    failures = [row for row in report["checks"] if row["failure"]]
    if failures:
        lines += ["", "## Failures", ""]
        for row in failures:
            failure = row["failure"]
            request = failure["evidence"]["request"]
            response = failure["evidence"]["response"]
            lines += [
                f"### {row['check']}: {row['id']}",
                "",
                f"- expected: {failure['expected']}",
                f"- received: {failure['received']}",
                f"- request: `{request.get('method', '')} {request.get('url', '')}`",
                f"- response: status {response.get('status')}",
                "",
                "```",
                str(response.get("body_excerpt", ""))[:600],
                "```",
                "",
            ]
    return "\n".join(lines) + "\n"
