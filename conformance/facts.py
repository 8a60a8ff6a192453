"""The report's "documented facts" view: each fact of ``spec/documented/facts.yaml`` judged by the rows of one run.

A fact's *pieces* are what covers it: each check it names (``name@part`` only the rows whose id
holds ``part``), each golden fixture (the ``golden_fixture`` row of that case) and each spec field the
property phase tests (that operation's generated-case rows: positive ones for a response field, both
for a request field), plus its upstream-phase checks. Check rows count for a fact only on the fact's
API (or ``all``). A piece *passed* when at least one of its rows passed and none failed, *failed* when
one failed (``known_failure`` when only baselined ones did), and is *missing* when no row of it ran
(absent from the run, skipped or not claimed).

A fact's verdict, in this order:

- ``not_covered``: no check yet (``gap``); ``unobservable``: nothing can see it (``unobservable``);
- ``not_claimed``: the target does not claim the fact's API;
- ``failed`` / ``known_failure``: a piece failed (a baselined failure only: ``known_failure``);
- ``passed``: every piece that covers it from outside passed (its upstream checks, when they ran,
  passed too); for a fact seen only upstream, every upstream check passed;
- ``not_run``: something it needs did not run (listed in ``missing``): a skipped check, a check of a
  profile or phase not run.

View shape (report.json ``facts``)::

    {"counts": {verdict: n}, "documents": {document: {verdict: n}},
     "facts": [{"id", "document", "section", "kind", "states", "api", "verdict", "pieces": {piece: state},
                "missing": [piece], "note"}]}
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from spec import find_operation
from spec.facts import DOCUMENTS, Fact, facts

#: Every verdict, in the order the report lists them.
VERDICTS = ("passed", "failed", "known_failure", "not_run", "not_claimed", "not_covered", "unobservable")
_FAILED = ("failed", "known_failure")


def facts_view(rows: Sequence[Mapping[str, Any]], claimed: Iterable[str],
               items: Sequence[Fact] | None = None) -> dict[str, Any]:
    """The facts view of a run: ``rows`` are report.json ``checks`` entries, ``claimed`` the target's APIs."""
    claimed_apis = set(claimed)
    judged = [_judge(fact, rows, claimed_apis) for fact in (facts() if items is None else items)]
    counts = Counter(entry["verdict"] for entry in judged)
    documents = {doc: Counter(e["verdict"] for e in judged if e["document"] == doc) for doc in DOCUMENTS}
    return {"counts": {verdict: counts.get(verdict, 0) for verdict in VERDICTS},
            "documents": {doc: {verdict: tally[verdict] for verdict in VERDICTS if tally[verdict]}
                          for doc, tally in documents.items() if tally}, "facts": judged}


def _judge(fact: Fact, rows: Sequence[Mapping[str, Any]], claimed: set[str]) -> dict[str, Any]:
    outside = {**{ref: _state(_check_rows(ref, fact, rows)) for ref in fact.checks},
               **{name: _state(_fixture_rows(name, rows)) for name in fact.fixtures}}
    if fact.outside:
        outside.update({f"property: {ref}": _state(_property_rows(ref, fact, rows)) for ref in fact.property_fields})
    upstream = {ref: _state(_check_rows(ref, fact, rows)) for ref in fact.upstream_checks}
    pieces = {**outside, **upstream}
    needed = outside if fact.outside else upstream
    missing = [piece for piece, state in needed.items() if state == "missing"]
    states = set(pieces.values())
    if fact.gap and not fact.outside:
        verdict = "not_covered"
    elif fact.unobservable and not fact.outside:
        verdict = "unobservable"
    elif fact.api not in claimed:
        verdict = "not_claimed"
    elif "failed" in states or "known_failure" in states:
        verdict = "failed" if "failed" in states else "known_failure"
    elif needed and not missing:
        verdict = "passed"
    else:
        verdict = "not_run"
    return {"id": fact.id, "document": fact.document, "section": fact.section, "kind": fact.kind,
            "states": fact.states, "api": fact.api, "verdict": verdict, "pieces": pieces, "missing": missing,
            "note": fact.gap or fact.unobservable or fact.untestable}


def _state(rows: list[Mapping[str, Any]]) -> str:
    outcomes = {row["outcome"] for row in rows}
    if "failed" in outcomes:
        return "failed"
    if "known_failure" in outcomes:
        return "known_failure"
    return "passed" if "passed" in outcomes else "missing"


def _check_rows(ref: str, fact: Fact, rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    name, _, part = ref.partition("@")
    return [row for row in rows if row["check"] == name and row["api"] in (fact.api, "all") and part in row["id"]]


def _fixture_rows(path: str, rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    case = f"[{path.removesuffix('.yaml')}]"
    return [row for row in rows if row["check"] == "golden_fixture" and row["id"].endswith(case)]


def _property_rows(ref: str, fact: Fact, rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    operation_id, where, _ = ref.split()
    operation = find_operation(fact.api, operation_id)
    label = f"[{operation.method.upper()} {operation.path}]"
    kinds = ("positive",) if where == "response" else ("positive", "negative")
    prefixes = tuple(f"test_{kind}_cases_{fact.api}[" for kind in kinds)
    return [row for row in rows if row["id"].startswith(prefixes) and row["id"].endswith(label)]
