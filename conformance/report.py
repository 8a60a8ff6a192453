"""The compatibility report: one :class:`Row` per check that ran, rendered as JSON, Markdown and HTML.

report.json shape::

    {"target": {"name", "base_url", "apis"}, "started", "finished" (ISO 8601 UTC), "duration_s",
     "summary": {"passed", "failed", "known_failures", "skipped", "not_claimed", "total"},
     "capabilities": {api: {capability: "pass" | "fail" | "known failure" | "skip" | "not claimed"}},
     "checks": [{"id", "check", "api", "capability", "source", "outcome", "duration_s", "failure", "phase",
                 "upstream"}]}

``outcome`` is passed, failed, known_failure (failed but in the baseline), skipped or not_claimed;
``failure`` is None or ``{"check", "expected", "received", "evidence": {"request", "response"}}``
(and ``"upstream"`` in the evidence of an upstream-phase check); ``upstream`` is None, or for an
upstream-phase check what was sent against what reached the gateway's upstream
(``conformance.upstream.Relay.view``), shown as the report's "Upstream view".
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
    upstream: dict[str, Any] | None = None
    """Upstream-phase rows: what was sent against what reached the upstream (``Relay.view``)."""


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
    return "\n".join(lines + _upstream_markdown(report)) + "\n"


#: Longest JSON excerpt of one body in the upstream view, in characters.
UPSTREAM_VIEW_CHARS = 600


def upstream_view(report: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
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


def _json_excerpt(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= UPSTREAM_VIEW_CHARS else text[:UPSTREAM_VIEW_CHARS] + "..."


def _upstream_markdown(report: dict[str, Any]) -> list[str]:
    view = upstream_view(report)
    if not view:
        return []
    lines = ["", "## Upstream view", "",
             "What the suite sent the gateway against what reached the gateway's upstream (the mock's journal).", ""]
    for capability, scenarios in sorted(view.items()):
        lines += [f"### {capability}", ""]
        for name, seen in scenarios.items():
            relay = seen["relay"]
            verdicts = ", ".join(f"{check} {_MD[outcome]}" for check, outcome in seen["checks"].items())
            lines += [f"#### {name} (nonce `{relay['nonce']}`): {verdicts}", "",
                      f"- sent: `{_json_excerpt(relay['sent'])}`"]
            if relay["scripted"]:
                lines.append(f"- upstream scripted: `{_json_excerpt(relay['scripted'])}`")
            for entry in relay["arrived"] or [{"operation_id": None}]:
                if entry["operation_id"] is None:
                    lines.append("- arrived upstream: nothing")
                    continue
                lines.append(f"- arrived upstream: {entry['operation_id']} -> {entry['status']}: "
                             f"`{_json_excerpt(entry['body'])}`")
            lines.append(f"- gateway answered: {relay['client_status']}")
            measured = {k: v for k, v in relay["measured"].items() if k not in ("protocol", "must_arrive")}
            if measured:
                lines.append(f"- measured: {', '.join(f'{k} {v}' for k, v in measured.items())}")
            lines.append("")
    return lines


def _upstream_html(report: dict[str, Any]) -> list[str]:
    e = html.escape
    view = upstream_view(report)
    if not view:
        return []
    parts = ["<h2>Upstream view</h2><p>What the suite sent the gateway against what reached the gateway's "
             "upstream (the mock's journal).</p>"]
    for capability, scenarios in sorted(view.items()):
        parts.append(f"<h3>{e(capability)}</h3>")
        for name, seen in scenarios.items():
            relay = seen["relay"]
            verdicts = ", ".join(f"<span class='{_css(o)}'>{e(c)} {e(o)}</span>" for c, o in seen["checks"].items())
            arrived = "".join(f"<li>{e(str(a['operation_id']))} &rarr; {e(str(a['status']))}: "
                              f"<code>{e(_json_excerpt(a['body']))}</code>" for a in relay["arrived"]) or "<li>nothing"
            measured = {k: v for k, v in relay["measured"].items() if k not in ("protocol", "must_arrive")}
            parts.append(f"<details><summary>{e(name)}: {verdicts}</summary><ul><li>sent: "
                         f"<code>{e(_json_excerpt(relay['sent']))}</code><li>scripted: "
                         f"<code>{e(_json_excerpt(relay['scripted']))}</code>{arrived}<li>gateway answered "
                         f"{e(str(relay['client_status']))}<li>measured: {e(_json_excerpt(measured))}</ul></details>")
    return parts


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
    return "".join(parts + _upstream_html(report)) + "\n"


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
