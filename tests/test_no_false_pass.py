"""No false pass (issue 14): a check that expects an error fails when the target answers what must be refused
with a 200, a 200 HTML page or a 200 of bytes that are no JSON.

Each case runs the real ``conformance run`` (behavioural phase) against the mock behind a rewrite that turns
every error answer into one of those (``tests/broken_targets.ERRORS_ANSWERED_WRONG``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conformance.embedded import EMBEDDED_MODELS, embedded_app, serve
from tests.broken_targets import ERRORS_ANSWERED_WRONG, Rewriting
from tests.test_suite_catches_broken_targets import mock_like_target_file, run_suite

#: Every behavioural check that judges an answer to a request built to be refused (checks/errors.py,
#: contract.py, credits.py, media.py, multimodal.py).
EXPECT_AN_ERROR = ("documented_error_status", "error_envelope_conformance", "invalid_key_rejected",
                   "missing_key_rejected", "invalid_request_names_field", "tier_rejected", "upload_over_limit_is_413",
                   "unknown_path_in_protocol_envelope", "rate_limit_enforced", "malformed_audio_base64_refused",
                   "image_edit_over_limit_is_413", "unsupported_medium_refused", "document_refused_without_support")


@pytest.mark.parametrize("name", sorted(ERRORS_ANSWERED_WRONG))
def test_every_check_expecting_an_error_fails_when_it_is_answered_as_fine(name: str, tmp_path: Path) -> None:
    with serve(Rewriting(embedded_app(), ERRORS_ANSWERED_WRONG[name])) as url:
        target = mock_like_target_file(url, tmp_path, models=dict(EMBEDDED_MODELS))  # a text-only model too
        code, report, output = run_suite(target, tmp_path, "--phases", "behavioural")
    assert code == 1, output
    rows = [row for row in report["checks"] if row["check"] in EXPECT_AN_ERROR or (
        row["failure"] and row["failure"]["check"] in EXPECT_AN_ERROR)]
    ran = {row["check"] for row in rows}
    assert ran == set(EXPECT_AN_ERROR), f"never ran: {set(EXPECT_AN_ERROR) - ran}"
    passed = sorted(f"{row['id']} ({row['outcome']})" for row in rows if row["outcome"] != "failed")
    assert not passed, f"{name}: not failed although the error was answered as fine: {passed}"
    for row in rows:
        assert row["failure"]["evidence"]["response"]["status"] == 200, row["id"]
    for row in report["checks"]:  # every failure, of these checks or others, carries what a developer replays
        if row["outcome"] == "failed":
            assert row["failure"]["evidence"]["request"]["curl"].startswith("curl"), row["id"]
