"""The compatibility report: one :class:`Row` per check that ran, rendered as JSON, Markdown and HTML
(the HTML from templates, by ``pages.py``, as a grid of capabilities by API: ``grid.py``).

report.json shape::

    {"target": {"name", "base_url", "apis"}, "started", "finished" (ISO 8601 UTC), "duration_s",
     "incomplete": None | {"reason", "phases": {phase: "complete" | "partial" | "not run"}},
     "summary": {"passed", "failed", "known_failures", "skipped", "not_claimed", "total"},
     "capabilities": {api: {capability: "pass" | "fail" | "known failure" | "skip" | "not claimed"}},
     "checks": [{"id", "check", "api", "capability", "source", "outcome", "duration_s", "failure", "phase",
                 "upstream", "reason"}],
     "facts": the documented facts judged by these rows (``conformance.facts.facts_view``)}

``outcome`` is passed, failed, known_failure (failed but in the baseline), skipped or not_claimed;
``failure`` is None or ``{"check", "expected", "received", "evidence": {"request", "response"}}``
(and ``"upstream"`` in the evidence of an upstream-phase check, ``"media"`` where the answer carried
media: ``conformance.media.summary``); ``reason`` is why a check was skipped; ``upstream`` is None, or for an
upstream-phase check what was sent against what reached the gateway's upstream
(``conformance.upstream.Relay.view``), shown as the report's "Upstream view".

``incomplete`` says that the run did not finish (a signal, a budget, an unreachable target, or a
report written while the run was still going) and which of its phases ran; the four files say so
at their top (report.md, report.html) or as a ``run_complete`` error case (junit.xml).
"""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from conformance import pages
from conformance.facts import facts_view
from conformance.failures import curl_command
from conformance.grid import OUTCOMES, UPSTREAM_VIEW_CHARS, json_excerpt, upstream_view, verdict
from conformance.target import Target

__all__ = ["OUTCOMES", "UPSTREAM_VIEW_CHARS", "Row", "build", "capability_matrix", "compare", "markdown",
           "upstream_view", "write"]


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
    reason: str = ""
    """Why the check was skipped or not claimed (pytest's skip reason); "" when it ran."""


def phase_seconds(rows: Sequence[Row]) -> dict[str, float]:
    """Seconds spent per phase (golden, behavioural, property), summed over the rows."""
    seconds: dict[str, float] = {}
    for row in rows:
        seconds[row.phase] = seconds.get(row.phase, 0.0) + row.duration_s
    return {phase: round(total, 3) for phase, total in seconds.items()}


def capability_matrix(rows: Sequence[Row]) -> dict[str, dict[str, str]]:
    """``{api: {capability: verdict}}``: fail if any row failed, pass if all that ran passed."""
    outcomes: dict[str, dict[str, set[str]]] = {}
    for row in rows:
        outcomes.setdefault(row.api, {}).setdefault(row.capability, set()).add(row.outcome)
    return {api: {cap: verdict(seen) for cap, seen in sorted(caps.items())} for api, caps in sorted(outcomes.items())}


def build(target: Target, rows: Sequence[Row], started: str, finished: str, duration_s: float,
          incomplete: dict[str, Any] | None = None) -> dict[str, Any]:
    """The report.json document for ``rows``; ``incomplete`` as in the module docstring (None: the run
    finished)."""
    counts = Counter(row.outcome for row in rows)
    return {
        "target": {"name": target.name, "base_url": target.base_url, "apis": sorted(target.apis)},
        "started": started,
        "finished": finished,
        "duration_s": round(duration_s, 3),
        "incomplete": incomplete,
        "phase_seconds": phase_seconds(rows),
        "summary": {"passed": counts["passed"], "failed": counts["failed"], "known_failures": counts["known_failure"],
                    "skipped": counts["skipped"], "not_claimed": counts["not_claimed"], "total": len(rows)},
        "capabilities": capability_matrix(rows),
        "checks": [asdict(row) for row in rows],
        "facts": facts_view([asdict(row) for row in rows], target.apis),
    }


def write(report: dict[str, Any], directory: Path, *, json_only: bool = False) -> None:
    """Write ``report.json``, ``report.md``, ``report.html`` and ``junit.xml`` into ``directory`` (created
    if missing), each atomically (a temporary file renamed over it), so a reader or a killed run never
    leaves half a file. ``json_only`` writes report.json alone (the incremental writes during a run)."""
    directory.mkdir(parents=True, exist_ok=True)
    _replace(directory / "report.json", json.dumps(report, indent=2, default=repr) + "\n")
    if json_only:
        return
    _replace(directory / "report.md", markdown(report))
    _replace(directory / "report.html", pages.report_page(report))
    _replace(directory / "junit.xml", junit(report))


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def junit(report: dict[str, Any]) -> str:
    """JUnit XML of a report.json document, one ``testcase`` per check (classname: its API and capability);
    an incomplete run adds the ``run_complete`` case as an error naming why it stopped."""
    summary = report["summary"]
    suite = ET.Element("testsuite", name="conformance", tests=str(summary["total"]),
                       failures=str(summary["failed"]), skipped=str(summary["skipped"] + summary["not_claimed"]),
                       errors="1" if report.get("incomplete") else "0", time=str(report["duration_s"]),
                       timestamp=str(report["started"]))
    if report.get("incomplete"):
        case = ET.SubElement(suite, "testcase", classname="conformance.run", name="run_complete", time="0")
        ET.SubElement(case, "error", message=f"incomplete run: {report['incomplete']['reason']}").text = json.dumps(
            report["incomplete"]["phases"])
    for row in report["checks"]:
        case = ET.SubElement(suite, "testcase", classname=f"{row['api']}.{row['capability']}", name=row["id"],
                             time=str(row["duration_s"]))
        if row["outcome"] == "failed" and row["failure"]:
            ET.SubElement(case, "failure", message=f"[{row['failure']['check']}] expected {row['failure']['expected']}"
                          f"; received {row['failure']['received']}"[:2000])
        elif row["outcome"] in ("skipped", "not_claimed", "known_failure"):
            ET.SubElement(case, "skipped", message=row.get("reason") or row["outcome"])
    root = ET.Element("testsuites")
    root.append(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


_MD = {"pass": "PASS", "fail": "**FAIL**", "known failure": "known failure", "skip": "skip",
       "not claimed": "not claimed", "passed": "pass", "failed": "**FAIL**", "known_failure": "known failure",
       "skipped": "skip", "not_claimed": "not claimed", "not_run": "not run", "not_covered": "not covered",
       "unobservable": "unobservable"}


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
        *_incomplete_markdown(report.get("incomplete")),
        f"**{summary['passed']} passed, {summary['failed']} failed**, {summary['known_failures']} known failures, "
        f"{summary['skipped']} skipped, {summary['not_claimed']} not claimed, of {summary['total']} checks.",
        "",
        "## Capabilities",
        "",
        "| API | capability | verdict |",
        "|---|---|---|",
    ]
    for api, capabilities in report["capabilities"].items():
        lines += [f"| {api} | {cap} | {_MD[shown]} |" for cap, shown in capabilities.items()]
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
                *_media_markdown(failure["evidence"].get("media")),
                *_evidence_markdown(failure["evidence"]),
            ]
            for number, case in enumerate(failure.get("cases") or [], 1):
                lines += [f"#### case {number} of {len(failure['cases'])}: {case['check']}", "",
                          f"- expected: {case['expected']}", f"- received: {case['received']}",
                          f"- response: status {case['evidence']['response'].get('status')}",
                          *_evidence_markdown(case["evidence"])]
    skipped = [row for row in report["checks"] if row["outcome"] == "skipped"]
    if skipped:
        lines += ["", "## Skipped", "", "| check | case | why |", "|---|---|---|"]
        lines += [f"| {row['check']} | {_cell(row['id'])} | {_cell(row.get('reason') or '')} |" for row in skipped]
    unclaimed = Counter((row["api"], row.get("reason") or "") for row in report["checks"]
                        if row["outcome"] == "not_claimed")
    if unclaimed:
        lines += ["", "## Not claimed", ""]
        lines += [f"- {api}: {count} checks ({reason or 'no reason given'})" for (api, reason), count in
                  sorted(unclaimed.items())]
    return "\n".join(lines + _upstream_markdown(report) + _facts_markdown(report)) + "\n"



def _facts_markdown(report: dict[str, Any]) -> list[str]:
    view = report.get("facts")  # absent from reports written before the facts view
    if not view:
        return []
    counts = ", ".join(f"{n} {verdict.replace('_', ' ')}" for verdict, n in view["counts"].items() if n)
    lines = ["", "## Documented facts", "",
             "Each concrete fact of the seed documents (spec/documented/facts.yaml) judged by this run's checks: "
             f"{counts}.", ""]
    for document in view["documents"]:
        lines += [f"### Document {document}", "", "| fact | kind | verdict | states | section | not run / why |",
                  "|---|---|---|---|---|---|"]
        for fact in (f for f in view["facts"] if f["document"] == document):
            why = ", ".join(fact["missing"]) or fact["note"] if fact["verdict"] != "passed" else ""
            lines.append(f"| {fact['id']} | {fact['kind']} | {_MD.get(fact['verdict'], fact['verdict'])} "
                         f"| {_cell(fact['states'])} | {_cell(fact['section'])} | {_cell(why)} |")
        lines.append("")
    return lines


def _incomplete_markdown(incomplete: dict[str, Any] | None) -> list[str]:
    if not incomplete:
        return []
    phases = ", ".join(f"{phase} {state}" for phase, state in incomplete["phases"].items())
    return [f"> **Incomplete run**: {incomplete['reason']}. Phases: {phases}.", ""]


def _evidence_markdown(evidence: dict[str, Any]) -> list[str]:
    """The reproduction (curl) and the answer's excerpt of a failure's evidence, as Markdown blocks."""
    request, response = evidence.get("request") or {}, evidence.get("response") or {}
    command = request.get("curl") or curl_command(request)
    lines = ["", "```sh", command, "```"] if command else []
    return [*lines, "", "```", str(response.get("body_excerpt", ""))[:600], "```", ""]


def _media_markdown(media: dict[str, Any] | None) -> list[str]:
    if not media:
        return []
    if media.get("error"):
        return [f"- media: a {media['kind']} that does not decode ({media['error']})"]
    size = f", {media['width']}x{media['height']} px" if media.get("width") else ""
    duration = f", {media['duration_s']} s" if media.get("duration_s") is not None else ""
    return [f"- media: {media['kind']} {media.get('format')}{size}{duration}"]


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
                      f"- sent: `{json_excerpt(relay['sent'])}`"]
            if relay["scripted"]:
                lines.append(f"- upstream scripted: `{json_excerpt(relay['scripted'])}`")
            for entry in relay["arrived"] or [{"operation_id": None}]:
                if entry["operation_id"] is None:
                    lines.append("- arrived upstream: nothing")
                    continue
                lines.append(f"- arrived upstream: {entry['operation_id']} -> {entry['status']}: "
                             f"`{json_excerpt(entry['body'])}`")
            lines.append(f"- gateway answered: {relay['client_status']}")
            measured = {k: v for k, v in relay["measured"].items() if k not in ("protocol", "must_arrive")}
            if measured:
                lines.append(f"- measured: {', '.join(f'{k} {v}' for k, v in measured.items())}")
            lines.append("")
    return lines


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
