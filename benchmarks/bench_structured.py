"""Structured output: what one json_schema answer costs the mock (``mock_server.structured``), in process.

For the golden fixture's schema and each schema of the tests' keyword battery this times
``structured.generate`` for one answer: cold (the schema checked, parsed by jsf and cached, then
drawn) and warm (a cached schema, a new key each time: jsf draws until jsonschema accepts one), and
how many draws a warm answer took on average. Then the time to refuse each hostile schema of the
tests (bounded by ``BUDGET_S``). Figures are printed, never asserted.

    .venv/bin/python -m benchmarks.bench_structured [--answers 200]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import ROOT, machine, print_table
from mock_server import structured
from mock_server.errors import ApiError
from tests.test_structured_output import BATTERY, HOSTILE, PARAM

FIXTURE = Path(ROOT) / "fixtures/openai_gateway/createChatCompletion/structured_output.yaml"


def _draws(schema: dict[str, Any], key: bytes) -> int:
    """How many draws the answer for ``key`` takes (the first the schema accepts, counted from 1)."""
    prepared = structured.prepare(schema, param=PARAM)
    for draw in range(structured.MAX_DRAWS):
        value = structured._draw(prepared.generator, structured.key_for(0, key.hex(), draw))
        if value is not structured._MISS and prepared.validator.is_valid(value):
            return draw + 1
    return structured.MAX_DRAWS


def main(argv: list[str] | None = None) -> int:
    """Entry point: a table of answer costs, then one of refusal times."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--answers", type=int, default=200, help="warm answers timed per schema (default 200)")
    args = parser.parse_args(argv)
    fixture = yaml.safe_load(FIXTURE.read_text())["request"]["json"]["response_format"]["json_schema"]["schema"]
    schemas = {"golden fixture (city)": fixture, **BATTERY}
    print("## Structured output: cost of one json_schema answer")
    print(f"machine: {machine()}\n")
    import jsf  # noqa: F401  # its one-off import (about 0.5 s) is not a schema's cost
    rows = []
    for name, schema in schemas.items():
        structured._CACHE.clear()
        started = time.perf_counter()
        structured.generate(schema, [b"\x00" * 32], PARAM)
        cold_ms = (time.perf_counter() - started) * 1000
        keys = [i.to_bytes(32, "big") for i in range(1, args.answers + 1)]
        started = time.perf_counter()
        for key in keys:
            structured.generate(schema, [key], PARAM)
        warm_ms = (time.perf_counter() - started) * 1000 / len(keys)
        draws = sum(_draws(schema, key) for key in keys[:50]) / min(50, len(keys))
        rows.append((name, f"{cold_ms:.1f}", f"{warm_ms:.2f}", f"{draws:.2f}"))
    print_table(("schema", "cold ms", "warm ms per answer", "draws per answer"), rows)
    print("\n### Refusing hostile schemas\n")
    refusals = []
    for name, (schema, _) in HOSTILE.items():
        started = time.perf_counter()
        try:
            structured.generate(schema, [b"\x00" * 32], PARAM)
            outcome = "answered"
        except ApiError as error:
            outcome = f"400 {error.param}"
        refusals.append((name, f"{(time.perf_counter() - started) * 1000:.0f}", outcome))
    print_table(("schema", "ms to the 400", "outcome"), refusals)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
