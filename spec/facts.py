"""The documented facts of the five seed documents, each traced to what covers it.

``spec/documented/facts.yaml`` holds them.

A *fact* is one concrete statement of a seed document: an endpoint, a request field with its type,
range or default, a content-part type, a response field, an error status with its ``error.type``, a
credit cost, a per-endpoint rate limit, a tier rule or a behaviour. Each names its document
(``"000"`` to ``"004"``) and section (a heading or table row as the seed writes it), and what covers it:

- ``checks``: registered check names (``conformance.checks.REGISTRY``); ``name@part`` narrows a check
  to its report rows whose id contains ``part`` (one status of ``documented_error_status``, say);
- ``fixtures``: golden fixture files, relative to ``fixtures/`` (``<api>/<operationId>/<case>.yaml``);
- ``property``: ``"<operationId> <where> <path>"`` (where: request, response, query, path, header;
  path as :func:`spec.fields.find_field` takes it), a field the spec-driven property phase generates
  and validates; ``schema`` then lists JSON Schema keywords one of the field's schemas must carry, so
  the claim holds only while the spec encodes what the document says. The property phase checks
  types, ranges, enums and required fields, never a default's effect: a reference whose ``schema``
  is only ``default`` pins the spec but covers nothing;
- ``untestable`` (why no request from outside can see it) with ``upstream_checks``: the checks of the
  gateway-in-the-middle phase that see it at the gateway's upstream;
- ``unobservable``: why neither a client nor the upstream can see it (a price in dollars, advice).

A fact with none of these fails :func:`problems`: there is no "not covered yet" (issue 13: each fact names
what covers it, or why it cannot be seen from outside and which upstream check sees it).

``python -m spec.facts`` prints the counts; ``--untestable`` the facts no outside check can see, and
why. The project test ``tests/test_facts.py`` holds every fact to its coverage (:func:`problems`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

from spec.fields import find_field, request_schemas
from spec.loader import SPEC_DIR, api_names, find_operation, load_yaml, resolve, response_schema

FACTS_FILE = SPEC_DIR / "documented" / "facts.yaml"
DOCUMENTS = ("000", "001", "002", "003", "004")
KINDS = ("endpoint", "field", "content_part", "response_field", "status", "cost", "rate_limit", "tier", "behaviour")
WHERE = ("request", "response", "query", "path", "header")
_ID = re.compile(r"^(00[0-4])\.[a-z0-9_]+(\.[a-z0-9_]+)+$")


@dataclass(frozen=True)
class Fact:
    """One documented fact and what covers it; see the module docstring for each field's meaning."""

    id: str
    document: str
    section: str
    kind: str
    states: str
    api: str
    checks: tuple[str, ...] = ()
    fixtures: tuple[str, ...] = ()
    property_fields: tuple[str, ...] = ()
    """The YAML key ``property``."""
    schema: Mapping[str, Any] = field(default_factory=dict)
    untestable: str = ""
    upstream_checks: tuple[str, ...] = ()
    unobservable: str = ""

    @property
    def outside(self) -> bool:
        """Whether something run from outside (a check, a fixture, the property phase) covers it."""
        return bool(self.checks or self.fixtures or (self.property_fields and set(self.schema) != {"default"}))

    @property
    def check_names(self) -> tuple[str, ...]:
        """The registered names of every check it names, outside and upstream, ``@part`` dropped."""
        return tuple(ref.split("@", 1)[0] for ref in (*self.checks, *self.upstream_checks))


def load(path: Path = FACTS_FILE) -> list[Fact]:
    """Every fact of ``path``, in file order. Raises ValueError naming a malformed entry.

    The file is a list of groups ``{document, api, sections: [{section, facts: [...]}]}``; a fact may
    override its group's ``api``.
    """
    facts: list[Fact] = []
    for group in load_yaml(path.read_text(encoding="utf-8")):
        for section in group["sections"]:
            for entry in section["facts"]:
                entry = {("property_fields" if key == "property" else key): value for key, value in entry.items()}
                unknown = set(entry) - (set(Fact.__dataclass_fields__) - {"document", "section"})
                if unknown:
                    raise ValueError(f"fact {entry.get('id')}: unknown keys {sorted(unknown)}")
                values = {key: tuple(value) if isinstance(value, list) else value for key, value in entry.items()}
                facts.append(Fact(document=str(group["document"]), section=section["section"],
                                  **{"api": group["api"], **values}))
    return facts


def seed_text(seeds_dir: Path, document: str) -> str | None:
    """The text of seed ``document`` (``000``..``004``) in ``seeds_dir``; None when it is not there."""
    found = sorted(seeds_dir.glob(f"{document}_*.txt"))
    return found[0].read_text(encoding="utf-8") if found else None


def problems(facts: Sequence[Fact], *, checks: Iterable[str], fixtures_dir: Path, seeds_dir: Path | None) -> list[str]:
    """Every way ``facts`` fail their rules, one sentence each; ``[]`` when all hold.

    ``checks`` are the names a fact may cite (the registry, plus any awaited from other branches). Every
    fact must be covered (:func:`_coverage_problems`). The section of each fact must occur in its seed's
    text when ``seeds_dir`` holds the seeds.
    """
    known = set(checks)
    out: list[str] = []
    seen: set[str] = set()
    for fact in facts:
        where = f"fact {fact.id}"
        if fact.id in seen:
            out.append(f"{where}: id used twice")
        seen.add(fact.id)
        if not _ID.match(fact.id) or not fact.id.startswith(fact.document + "."):
            out.append(f"{where}: id must be <document>.<words>.<words> in lowercase, starting with {fact.document}")
        if fact.document not in DOCUMENTS:
            out.append(f"{where}: document {fact.document!r} is none of {', '.join(DOCUMENTS)}")
        if fact.kind not in KINDS:
            out.append(f"{where}: kind {fact.kind!r} is none of {', '.join(KINDS)}")
        if fact.api not in api_names():
            out.append(f"{where}: api {fact.api!r} has no spec")
        if not fact.states.strip() or "\n" in fact.states.strip():
            out.append(f"{where}: states must be one line")
        text = seed_text(seeds_dir, fact.document) if seeds_dir else None
        if text is not None and fact.section not in text:
            out.append(f"{where}: section {fact.section!r} does not occur in seed {fact.document}")
        out += [f"{where}: check {name!r} is not registered" for name in fact.check_names if name not in known]
        out += [f"{where}: upstream check {ref!r} is not an upstream-phase check (upstream_...)"
                for ref in fact.upstream_checks if not ref.startswith("upstream_")]
        out += [f"{where}: fixture {name!r} is not a file under {fixtures_dir}"
                for name in fact.fixtures if not (fixtures_dir / name).is_file()]
        out += [f"{where}: {message}" for ref in fact.property_fields for message in property_problems(fact, ref)]
        if fact.schema and not fact.property_fields:
            out.append(f"{where}: schema keywords without a property reference")
        out += _coverage_problems(fact)
    return out


def _coverage_problems(fact: Fact) -> list[str]:
    """Why ``fact`` is not covered (checks, fixtures or a property field; untestable with upstream checks;
    or unobservable), or ``[]``."""
    where = f"fact {fact.id}"
    if fact.untestable and not fact.upstream_checks:
        return [f"{where}: untestable from outside but names no upstream check (name one, or say unobservable)"]
    if fact.outside or (fact.untestable and fact.upstream_checks) or fact.unobservable:
        return []
    return [f"{where}: no coverage: name checks, fixtures or property, or untestable with upstream_checks, "
            "or unobservable"]


def property_problems(fact: Fact, ref: str) -> list[str]:
    """Why ``ref`` (``"<operationId> <where> <path>"``) names no field of ``fact.api``'s spec, or does
    not carry ``fact.schema``'s keywords; ``[]`` when it holds."""
    parts = ref.split()
    if len(parts) != 3 or parts[1] not in WHERE:
        return [f"property {ref!r} is not '<operationId> <{'|'.join(WHERE)}> <path>'"]
    operation_id, where, path = parts
    try:
        operation = find_operation(fact.api, operation_id)
    except KeyError:
        return [f"property {ref!r}: {fact.api} has no operation {operation_id}"]
    schemas = field_schemas(fact.api, operation_id, where, path)
    if not schemas:
        return [f"property {ref!r}: no such field in {fact.api} {operation.operation_id}"]
    if fact.schema and not any(all(schema.get(k) == v for k, v in fact.schema.items()) for schema in schemas):
        return [f"property {ref!r}: no schema of the field carries {dict(fact.schema)}"]
    return []


def field_schemas(api: str, operation_id: str, where: str, path: str) -> list[Mapping[str, Any]]:
    """The schemas field ``path`` has in ``where`` (request body, 200 response, or a parameter)."""
    operation = find_operation(api, operation_id)
    if where == "request":
        return [m.schema for schema in request_schemas(operation).values() for m in find_field(api, schema, path)]
    if where == "response":
        schema = response_schema(operation, 200)
        return [m.schema for m in find_field(api, schema, path)] if schema else []
    head, _, rest = path.partition(".")
    for parameter in operation.spec.get("parameters", []):
        resolved = resolve(api, parameter)
        if resolved["in"] == where and resolved["name"] == head:
            found = resolve(api, resolved.get("schema", {}))
            return [m.schema for m in find_field(api, found, rest)] if rest else [found]
    return []


@cache
def facts() -> tuple[Fact, ...]:
    """The facts of ``spec/documented/facts.yaml``, loaded once."""
    return tuple(load())


def untestable_lines(items: Sequence[Fact]) -> list[str]:
    """One line per fact no outside check can see: id, what it states, why, and what sees it instead."""
    lines = []
    for fact in items:
        if fact.outside:
            continue
        if fact.untestable:
            lines.append(f"{fact.id}: {fact.states} -- {fact.untestable} (upstream: {', '.join(fact.upstream_checks)})")
        elif fact.unobservable:
            lines.append(f"{fact.id}: {fact.states} -- unobservable: {fact.unobservable}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    """Print the counts of the facts (or, with ``--untestable``, those facts); exit 0."""
    parser = argparse.ArgumentParser(prog="python -m spec.facts",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--untestable", action="store_true", help="the facts no outside check can see, and why")
    args = parser.parse_args(argv)
    items = facts()
    if args.untestable:
        print("\n".join(untestable_lines(items)))
    else:
        by_doc = {doc: sum(fact.document == doc for fact in items) for doc in DOCUMENTS}
        print(f"{len(items)} facts: " + ", ".join(f"{doc} {count}" for doc, count in by_doc.items()))
        print(f"outside checks {sum(f.outside for f in items)}, upstream only "
              f"{sum(bool(not f.outside and f.untestable) for f in items)}, unobservable "
              f"{sum(bool(f.unobservable and not f.outside) for f in items)}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except BrokenPipeError:  # the reader stopped early (``| head``): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(0) from None
