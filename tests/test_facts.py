"""The documented facts (``spec/documented/facts.yaml``): every fact of the five seeds is traced to a check, a
golden fixture, a spec field the property phase tests, or an upstream-phase check with the reason no
outside request sees it; and the report shows each fact's verdict (issue 13, "Documented facts, traced")."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from conformance import report
from conformance.checks import REGISTRY
from conformance.facts import facts_view
from conformance.report import Row
from conformance.target import Target
from spec.facts import Fact, facts, load, problems

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
#: CI keeps the seeds beside the checkout, as the worktrees have them.
SEEDS = ROOT.parent / "shared" / "seeds"

#: Facts visible from outside that no check covers yet (each carries ``gap:`` saying what is missing).
KNOWN_GAPS = frozenset({
    "002.errors.500", "002.errors.502_503", "002.safety.revised_prompt_from_provider",
    "003.tips.more_media_more_tokens", "004.tts.voice.default",
    "004.image.width.default", "004.image.height.default", "004.t2v.duration.default",
    "004.cogvideox.num_frames.default", "004.cogvideox.guidance_scale.default",
    "004.cogvideox.num_inference_steps.default", "004.usage.skip.default", "004.usage.limit.default",
})


def _problems(items: list[Fact] | tuple[Fact, ...], gaps: frozenset[str] = frozenset()) -> list[str]:
    return problems(items, checks=set(REGISTRY), fixtures_dir=FIXTURES,
                    seeds_dir=SEEDS if SEEDS.is_dir() else None, gaps=gaps)


def test_every_fact_is_traced() -> None:
    assert _problems(facts(), KNOWN_GAPS) == []


def test_the_seeds_are_reachable_for_the_section_check() -> None:
    if not SEEDS.is_dir():
        pytest.skip(f"no seeds at {SEEDS}: sections are not matched against the seed text")
    assert len(list(SEEDS.glob("00[0-4]_*.txt"))) == 5


def test_every_document_and_kind_has_facts() -> None:
    items = facts()
    assert {fact.document for fact in items} == {"000", "001", "002", "003", "004"}
    assert {fact.kind for fact in items} >= {"endpoint", "field", "content_part", "response_field", "status", "cost",
                                             "rate_limit", "tier", "behaviour"}
    assert len(items) >= 200


GOOD = Fact(id="004.tts.cost.sample", document="004", section="Text-to-Speech (TTS)", kind="cost",
            states="TTS costs 14 credits.", api="credits_api", checks=("credits_fall_by_cost",))


@pytest.mark.parametrize(("change", "complaint"), [
    ({"checks": ()}, "no coverage"),
    ({"checks": ("no_such_check",)}, "is not registered"),
    ({"fixtures": ("credits_api/createMultimodalTts/nope.yaml",)}, "is not a file"),
    ({"section": "No Such Section"}, "does not occur in seed"),
    ({"id": "004.Bad Id"}, "id must be"),
    ({"kind": "rumour"}, "kind"),
    ({"api": "no_api"}, "has no spec"),
    ({"checks": (), "untestable": "only the provider sees it"}, "names no upstream check"),
    ({"checks": (), "untestable": "x", "upstream_checks": ("credits_fall_by_cost",)}, "not an upstream-phase check"),
    ({"checks": (), "property_fields": ("createMultimodalTts request nope",)}, "no such field"),
    ({"checks": (), "property_fields": ("createMultimodalTts request text",), "schema": {"maxLength": 4000}},
     "carries"),
    ({"checks": (), "property_fields": ("createMultimodalTts request voice",), "schema": {"default": "Wise_Woman"}},
     "no coverage"),
    ({"checks": (), "gap": "no check yet"}, "not in the allowed gaps"),
    ({"gap": "no check yet"}, "drop the gap"),
])
def test_a_bad_fact_is_caught(change: dict[str, object], complaint: str) -> None:
    if "section" in change and not SEEDS.is_dir():
        pytest.skip("no seeds to match sections against")
    assert _problems([GOOD]) == []
    found = _problems([replace(GOOD, **change)])  # type: ignore[arg-type]
    assert any(complaint in line for line in found), found


def test_a_repeated_id_is_caught() -> None:
    assert any("used twice" in line for line in _problems([GOOD, GOOD]))


def test_an_allowed_gap_that_was_closed_is_caught() -> None:
    """A fact that gained coverage must leave KNOWN_GAPS, so the list of gaps stays true."""
    assert any("no fact of that id carries gap" in line for line in _problems([GOOD], frozenset({GOOD.id})))


def test_unknown_keys_in_the_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "facts.yaml"
    path.write_text("- document: '004'\n  api: credits_api\n  sections:\n    - section: Error Codes\n      facts:\n"
                    "        - {id: 004.x.y, kind: status, states: s, checks: [a], chekcs: [b]}\n", encoding="utf-8")
    with pytest.raises(ValueError, match="chekcs"):
        load(path)


# ---- the report's view ------------------------------------------------------------------------------

TARGET = Target(name="t", base_url="http://gw.example", api_key="sk-test",
                apis=frozenset({"credits_api", "openai_gateway"}))


def _row(check: str, outcome: str, api: str = "credits_api", row_id: str = "") -> Row:
    return Row(row_id or f"test_{check}", check, api, "cap", "004", outcome, 0.1)


def _verdicts(rows: list[Row], items: list[Fact]) -> dict[str, str]:
    view = facts_view([row.__dict__ for row in rows], TARGET.apis, items)
    return {fact["id"]: fact["verdict"] for fact in view["facts"]}


def test_a_failing_check_fails_its_fact() -> None:
    cost = GOOD
    limit = replace(GOOD, id="004.tts.rate.sample", checks=("rate_limit_enforced",))
    verdicts = _verdicts([_row("credits_fall_by_cost", "failed"), _row("rate_limit_enforced", "passed")],
                         [cost, limit])
    assert verdicts == {"004.tts.cost.sample": "failed", "004.tts.rate.sample": "passed"}


def test_verdicts_follow_fixtures_property_rows_and_claims() -> None:
    fixture = replace(GOOD, id="004.a.fixture", checks=(), fixtures=("credits_api/createMultimodalTts/welcome.yaml",))
    prop = replace(GOOD, id="004.a.property", checks=(), property_fields=("createMultimodalTts request text",))
    unclaimed = replace(GOOD, id="004.a.unclaimed", api="multi_protocol", checks=("stream_chunks_conform",))
    unrun = replace(GOOD, id="004.a.unrun", checks=("credits_fall_by_cost", "usage_record_found"))
    gap = replace(GOOD, id="004.a.gap", checks=(), gap="nothing yet")
    rows = [_row("golden_fixture", "passed", row_id="test_golden[credits_api/createMultimodalTts/welcome]"),
            _row("test_positive_cases_credits_api", "failed",
                 row_id="test_positive_cases_credits_api[POST /api/v1/multimodal/tts]"),
            _row("credits_fall_by_cost", "passed"), _row("usage_record_found", "skipped")]
    verdicts = _verdicts(rows, [fixture, prop, unclaimed, unrun, gap])
    assert verdicts == {"004.a.fixture": "passed", "004.a.property": "failed", "004.a.unclaimed": "not_claimed",
                        "004.a.unrun": "not_run", "004.a.gap": "not_covered"}


def test_the_row_selector_narrows_a_check_to_its_rows() -> None:
    fact = replace(GOOD, checks=("documented_error_status@-500",))
    rows = [_row("documented_error_status", "failed", row_id="test_provoked_5xx[credits_api-createMultimodalTts-502]"),
            _row("documented_error_status", "passed", row_id="test_provoked_5xx[credits_api-createMultimodalTts-500]")]
    assert _verdicts(rows, [fact]) == {GOOD.id: "passed"}


def test_the_report_shows_a_failing_fact(tmp_path: Path) -> None:
    rows = [_row("credits_fall_by_cost", "failed", row_id="test_tts_credits_fall")]
    document = report.build(TARGET, rows, "2026-12-07T00:00:00+00:00", "2026-12-07T00:00:01+00:00", 1.0)
    by_id = {fact["id"]: fact for fact in document["facts"]["facts"]}
    assert by_id["004.tts.cost"]["verdict"] == "failed"
    assert by_id["004.cogvideox.cost"]["verdict"] == "not_run"
    assert by_id["001.errors.401"]["verdict"] == "not_run"
    assert document["facts"]["counts"]["failed"] >= 1
    report.write(document, tmp_path)
    markdown = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "## Documented facts" in markdown and "| 004.tts.cost | cost |" in markdown
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert 'id="facts"' in html and "004.tts.cost" in html
