"""The compatibility report: one :class:`Row` per check that ran, rendered as JSON, Markdown and HTML.

report.json shape::

    {"target": {"name", "base_url", "apis"}, "started", "finished" (ISO 8601 UTC), "duration_s",
     "summary": {"passed", "failed", "known_failures", "skipped", "not_claimed", "total"},
     "capabilities": {api: {capability: "pass" | "fail" | "known failure" | "skip" | "not claimed"}},
     "checks": [{"id", "check", "api", "capability", "source", "outcome", "duration_s", "failure"}]}

``outcome`` is passed, failed, known_failure (failed but in the baseline), skipped or not_claimed;
``failure`` is None or ``{"check", "expected", "received", "evidence": {"request", "response"}}``.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from conformance.target import Target

OUTCOMES = ("passed", "failed", "known_failure", "skipped", "not_claimed")


@dataclass(frozen=True)
class Row:
    """One check run: ``outcome`` is one of :data:`OUTCOMES`; ``duration_s`` in s.

    ``id`` is the check's stable key (the baseline file lists ids of known failures).
    """

    id: str
    check: str
    api: str
    capability: str
    source: str
    outcome: str
    duration_s: float
    failure: dict[str, Any] | None = None
    phase: str = ""


def phase_seconds(rows: Sequence[Row]) -> dict[str, float]:
    """Seconds spent per phase (golden, behavioural, property), summed over the rows."""
    seconds: dict[str, float] = {}
    for row in rows:
        seconds[row.phase] = seconds.get(row.phase, 0.0) + row.duration_s
    return {phase: round(total, 3) for phase, total in seconds.items()}


def _verdict(outcomes: set[str]) -> str:
    for outcome, verdict in (("failed", "fail"), ("known_failure", "known failure"), ("passed", "pass"),
                             ("skipped", "skip")):
        if outcome in outcomes:
            return verdict
    return "not claimed"


def capability_matrix(rows: Sequence[Row]) -> dict[str, dict[str, str]]:
    """``{api: {capability: verdict}}``: fail if any row failed, pass if all that ran passed."""
    outcomes: dict[str, dict[str, set[str]]] = {}
    for row in rows:
        outcomes.setdefault(row.api, {}).setdefault(row.capability, set()).add(row.outcome)
    return {api: {cap: _verdict(seen) for cap, seen in sorted(caps.items())} for api, caps in sorted(outcomes.items())}


def build(target: Target, rows: Sequence[Row], started: str, finished: str, duration_s: float) -> dict[str, Any]:
    """The report.json document for ``rows``."""
    counts = Counter(row.outcome for row in rows)
    return {
        "target": {"name": target.name, "base_url": target.base_url, "apis": sorted(target.apis)},
        "started": started,
        "finished": finished,
        "duration_s": round(duration_s, 3),
        "phase_seconds": phase_seconds(rows),
        "summary": {"passed": counts["passed"], "failed": counts["failed"], "known_failures": counts["known_failure"],
                    "skipped": counts["skipped"], "not_claimed": counts["not_claimed"], "total": len(rows)},
        "capabilities": capability_matrix(rows),
        "checks": [asdict(row) for row in rows],
    }


def write(report: dict[str, Any], directory: Path) -> None:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``directory`` (created if missing)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_text(json.dumps(report, indent=2, default=repr) + "\n", encoding="utf-8")
    (directory / "report.md").write_text(markdown(report), encoding="utf-8")
    (directory / "report.html").write_text(page(report), encoding="utf-8")


_MD = {"pass": "PASS", "fail": "**FAIL**", "known failure": "known failure", "skip": "skip",
       "not claimed": "not claimed", "passed": "pass", "failed": "**FAIL**", "known_failure": "known failure",
       "skipped": "skip", "not_claimed": "not claimed"}


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(report: dict[str, Any]) -> str:
    """A human-readable rendering of a report.json document."""
    summary = report["summary"]
    lines = [
        f"# Compatibility report: {report['target']['name']}",
        "",
        f"Target `{report['target']['base_url']}` claiming {', '.join(report['target']['apis'])}; "
        f"run {report['started']} to {report['finished']} ({report['duration_s']} s).",
        "",
        f"**{summary['passed']} passed, {summary['failed']} failed**, {summary['known_failures']} known failures, "
        f"{summary['skipped']} skipped, {summary['not_claimed']} not claimed, of {summary['total']} checks.",
        "",
        "## Capabilities",
        "",
        "| API | capability | verdict |",
        "|---|---|---|",
    ]
    for api, capabilities in report["capabilities"].items():
        lines += [f"| {api} | {cap} | {_MD[verdict]} |" for cap, verdict in capabilities.items()]
    lines += ["", "## Checks", "", "| check | case | API | capability | outcome | source |",
              "|---|---|---|---|---|---|"]
    for row in report["checks"]:
        lines.append(f"| {row['check']} | {_cell(row['id'])} | {row['api']} | {row['capability']} "
                     f"| {_MD[row['outcome']]} | {_cell(row['source'])} |")
    failures = [row for row in report["checks"] if row["failure"] and row["outcome"] != "skipped"]
    if failures:
        lines += ["", "## Failures", ""]
        for row in failures:
            failure = row["failure"]
            request, response = failure["evidence"]["request"], failure["evidence"]["response"]
            lines += [
                f"### {row['check']}: {row['id']}" + (" (known)" if row["outcome"] == "known_failure" else ""),
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


_STYLE = """body{font:14px system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:left}.pass,.passed{background:#d4f7d4}
.fail,.failed{background:#f7d4d4}.known{background:#f7ecd4}.skip,.skipped,.not{color:#777}pre{white-space:pre-wrap}"""


def _css(verdict: str) -> str:
    return verdict.split()[0].split("_")[0]


def page(report: dict[str, Any]) -> str:
    """The report as one self-contained HTML page: summary, capability matrix, checks, failures."""
    e = html.escape
    summary = report["summary"]
    parts = [f"<!doctype html><meta charset=utf-8><title>Compatibility report: {e(report['target']['name'])}</title>",
             f"<style>{_STYLE}</style><h1>Compatibility report: {e(report['target']['name'])}</h1>",
             f"<p>Target <code>{e(report['target']['base_url'])}</code>, {e(report['started'])} "
             f"({report['duration_s']} s). <b>{summary['passed']} passed, {summary['failed']} failed</b>, "
             f"{summary['known_failures']} known failures, {summary['skipped']} skipped, "
             f"{summary['not_claimed']} not claimed.</p>",
             "<h2>Capabilities</h2><table><tr><th>API<th>capability<th>verdict"]
    for api, capabilities in report["capabilities"].items():
        parts += [f"<tr><td>{e(api)}<td>{e(cap)}<td class='{_css(v)}'>{e(v)}" for cap, v in capabilities.items()]
    parts.append("</table><h2>Checks</h2><table><tr><th>check<th>case<th>API<th>capability<th>outcome<th>source")
    for row in report["checks"]:
        parts.append(f"<tr><td>{e(row['check'])}<td>{e(row['id'])}<td>{e(row['api'])}<td>{e(row['capability'])}"
                     f"<td class='{_css(row['outcome'])}'>{e(row['outcome'])}<td>{e(row['source'])}")
    parts.append("</table>")
    for row in report["checks"]:
        failure = row["failure"]
        if failure and row["outcome"] in ("failed", "known_failure"):
            request, response = failure["evidence"]["request"], failure["evidence"]["response"]
            parts.append(f"<h3>{e(row['check'])}: {e(row['id'])}</h3><p>expected {e(str(failure['expected']))}"
                         f"<br>received {e(str(failure['received']))}<br>request <code>{e(str(request.get('method')))} "
                         f"{e(str(request.get('url')))}</code>, response status {e(str(response.get('status')))}</p>"
                         f"<pre>{e(str(response.get('body_excerpt', '')))}</pre>")
    return "".join(parts) + "\n"


def compare(reports: Iterable[dict[str, Any]]) -> str:
    """Several runs side by side as Markdown: one row per (API, capability), one column per target."""
    runs = list(reports)
    keys = sorted({(api, cap) for run in runs for api, caps in run["capabilities"].items() for cap in caps})
    header = "| API | capability | " + " | ".join(run["target"]["name"] for run in runs) + " |"
    lines = ["# Capability comparison", "", header, "|---|---|" + "---|" * len(runs)]
    for api, cap in keys:
        cells = [_MD.get(run["capabilities"].get(api, {}).get(cap, ""), "-") for run in runs]
        lines.append(f"| {api} | {cap} | " + " | ".join(cells) + " |")
    lines += ["", "| | " + " | ".join(run["target"]["name"] for run in runs) + " |", "|---|" + "---|" * len(runs)]
    for field in ("passed", "failed", "known_failures", "skipped", "not_claimed", "total"):
        lines.append(f"| {field} | " + " | ".join(str(run["summary"].get(field, 0)) for run in runs) + " |")
    return "\n".join(lines) + "\n"
