"""The suite can fail: it reports each deliberately broken target, and passes the mock clean.

Each case runs the real ``conformance run`` CLI in a subprocess against a target served on
127.0.0.1 and reads the report it writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from conformance.embedded import TARGET_FILE_OPTIONS, serve
from tests.broken_targets import BROKEN, broken_app, slow_models_app

#: ``-k`` leaving out the documented-defaults checks (``conformance/suite/test_defaults.py``): they make more than
#: 50 usage records and wait out T2V's 1/min window, minutes a run of a broken target need not spend; they are
#: proven by ``tests/test_defaults_catch_broken_targets.py`` and run in the mock's whole run.
WITHOUT_DEFAULTS = "not test_defaults"


def run_suite(target: str, reports: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    """Run ``conformance run`` and return (exit code, report.json, output)."""
    command = [sys.executable, "-m", "conformance", "run", "--target", target, "--api-key", "sk-test",
               "--name", "under-test", "--reports", str(reports), "-q", *extra]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    report = json.loads((reports / "under-test" / "latest" / "report.json").read_text())
    return done.returncode, report, done.stdout + done.stderr


def test_mock_passes_clean(tmp_path: Path) -> None:
    code, report, output = run_suite("mock", tmp_path)
    assert code == 0, output
    assert report["summary"]["failed"] == 0
    # every check passes but the ones the quick profile leaves to the thorough one (conformance/suite/test_defaults.py)
    skipped = [row for row in report["checks"] if row["outcome"] == "skipped"]
    assert all("thorough profile only" in (row["reason"] or "") for row in skipped), skipped
    assert report["summary"]["passed"] == report["summary"]["total"] - len(skipped) > 20
    latest = tmp_path / "under-test" / "latest"
    assert (latest / "junit.xml").is_file() and (latest / "report.html").is_file()
    assert "| stream_ends_with_done |" in (latest / "report.md").read_text()
    # every fact's pieces ran here, but for the upstream phase's (no upstream in this run)
    facts = report["facts"]["facts"]
    assert not [fact["id"] for fact in facts if fact["verdict"] == "failed"]
    thorough_only = {row["check"] for row in report["checks"]
                     if row["outcome"] == "skipped" and "thorough profile only" in (row["reason"] or "")}
    unmatched = {piece for fact in facts for piece in fact["missing"]
                 if not piece.startswith("upstream_") and piece.split("@")[0] not in thorough_only}
    assert not unmatched, f"fact pieces no row of the mock run matched: {sorted(unmatched)}"
    assert report["facts"]["counts"]["passed"] > 100


def mock_like_target_file(url: str, directory: Path, **extra: object) -> str:
    """A target file for a served mock (or a broken variant) with every key the embedded mock has; checks
    run one after another (``concurrency: 1``: these few-check runs would spend longer starting workers)
    unless ``extra`` says otherwise."""
    path = directory / "target.yaml"
    path.write_text(yaml.safe_dump({"base_url": url, "api_key": "sk-test", **TARGET_FILE_OPTIONS, "concurrency": 1,
                                    **extra}))
    return str(path)


def test_timeout_is_a_reported_failure_not_a_crash(tmp_path: Path) -> None:
    with serve(slow_models_app(delay_s=3.0)) as url:
        target = mock_like_target_file(url, tmp_path, timeout_s=1.0)
        code, report, output = run_suite(target, tmp_path, "--phases", "golden,behavioural",
                                         "-k", "listModels or models")
    assert code == 1, output
    failures = [row["failure"] for row in report["checks"] if row["outcome"] == "failed"]
    assert failures and all(f["check"] in ("target_reachable", "sdk_models_list") for f in failures)
    assert any("Timeout" in f["received"] for f in failures)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_target_is_reported(name: str, tmp_path: Path) -> None:
    broken = BROKEN[name]
    with serve(broken_app(name)) as url:
        code, report, output = run_suite(mock_like_target_file(url, tmp_path), tmp_path, "--phases", broken.phases,
                                         "-k", broken.select or WITHOUT_DEFAULTS)
    assert code == 1, output
    failed = {row["check"] for row in report["checks"] if row["outcome"] == "failed"}
    assert broken.check in failed, f"{name}: failed checks were {sorted(failed)}"
    assert not broken.alone or failed == {broken.check}, f"{name}: unrelated checks failed too: {sorted(failed)}"
    failure = next(row["failure"] for row in report["checks"] if row["check"] == broken.check and row["failure"])
    assert failure["expected"] and failure["received"]
    citing = [fact for fact in report["facts"]["facts"] if broken.check in (p.split("@")[0] for p in fact["pieces"])]
    if citing:  # the documented facts that check covers are shown failing
        assert any(fact["verdict"] == "failed" for fact in citing), f"{name}: {[f['id'] for f in citing]}"
    assert failure["evidence"]["request"]["url"].startswith(url)


def test_unreachable_target_is_a_reported_failure_not_a_crash(tmp_path: Path) -> None:
    code, report, output = run_suite("http://127.0.0.1:9", tmp_path, "--phases", "golden,behavioural")
    assert code == 1, output
    rows = [row for row in report["checks"] if row["outcome"] != "skipped"]
    assert rows and all(row["outcome"] == "failed" for row in rows)
    assert any(row["failure"]["check"] == "target_reachable" for row in rows)
