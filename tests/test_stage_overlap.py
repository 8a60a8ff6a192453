"""A concurrent run sends the gateways' generated cases with its golden and behavioural checks, and keeps the
credits API's generated cases for after its serial stage (``conformance/cli.py`` ``_stages``,
``plugin.runs_after_serial``): those spend the per-minute windows and the balance that the serial stage's credits
sequences measure, alone; the gateways' cases touch neither."""

from __future__ import annotations

from pathlib import Path

from conformance.embedded import embedded_app, serve
from tests.test_early_video_jobs import Recorded
from tests.test_suite_catches_broken_targets import mock_like_target_file, run_suite


def test_the_gateways_generated_cases_run_before_the_serial_stage_and_the_credits_apis_after(tmp_path: Path) -> None:
    app = Recorded(embedded_app())
    with serve(app) as url:
        code, report, output = run_suite(mock_like_target_file(url, tmp_path, concurrency=2), tmp_path,
                                         "--phases", "behavioural,property",
                                         "-k", "credits_reconcile or positive_cases and (speech or tts)")
    assert code == 0, output
    outcomes = {row["id"]: row["outcome"] for row in report["checks"]}
    assert set(outcomes.values()) == {"passed"} and len(outcomes) == 3, outcomes
    reconcile = [at for at, _, path, _ in app.requests if path == "/api/v1/managed/usage"]
    speech = [at for at, _, path, _ in app.requests if path == "/v1/audio/speech"]
    tts = [at for at, _, path, _ in app.requests if path == "/api/v1/multimodal/tts"]
    assert reconcile and speech and tts
    assert max(speech) < min(reconcile)  # the gateway's generated cases went before the serial stage
    # the credits API's went after it (the reconciliation's own TTS calls are between its usage reads)
    assert [at for at in tts if at > max(reconcile)] and not [at for at in tts if at < min(reconcile)]


def test_a_concurrent_stage_starts_its_generated_tests_before_its_golden_cases(tmp_path: Path) -> None:
    """pytest-xdist hands out a stage's tests in its workers' collection order, and the plugin puts the gateways'
    generated tests (tens of GPU-bound cases each) first there (``plugin.starts_first``): started last, they
    ended the stage on one or two workers while the others had nothing left. With 2 workers, the speech
    property test's first case is sent while the golden chat cases are still to come; in phase order it
    waited for all but the last few of them."""
    app = Recorded(embedded_app(time_scale=0.3))
    with serve(app) as url:
        code, report, output = run_suite(mock_like_target_file(url, tmp_path, concurrency=2), tmp_path,
                                         "--phases", "golden,property",
                                         "-k", "createChatCompletion or positive_cases and speech")
    assert code == 0, output
    goldens = [row["id"] for row in report["checks"] if row["id"].startswith("test_golden")]
    assert len(goldens) > 16 and report["summary"]["failed"] == 0, report["summary"]
    speech = min(at for at, _, path, _ in app.requests if path == "/v1/audio/speech")
    before = [path for at, _, path, _ in app.requests if at < speech]
    assert len(before) < 6, before  # the other worker's first golden cases
