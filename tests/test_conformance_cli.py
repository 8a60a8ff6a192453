"""The suite's command line as a gateway team uses it: target files, baselines, compare."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conformance.embedded import serve
from conformance.report import Row, build, compare
from conformance.target import Target, TargetFileError, load_target_file
from tests.broken_targets import broken_app
from tests.test_suite_catches_broken_targets import run_suite


def test_target_file_loads_with_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_KEY", "sk-acme")
    path = tmp_path / "acme.yaml"
    path.write_text(yaml.safe_dump({"name": "acme", "base_url": "https://gw.acme.dev/v1/", "api_key_env": "ACME_KEY",
                                    "apis": ["openai_gateway"], "models": {"chat": "acme-chat"}}))
    target = load_target_file(path)
    assert (target.name, target.base_url, target.api_key) == ("acme", "https://gw.acme.dev", "sk-acme")
    assert target.claims("openai_gateway") and not target.claims("credits_api")
    assert target.model("chat") == "acme-chat" and target.model("speech") == "tts-1"


def test_target_file_declares_billing_key_refused_prompt_and_rate_limits(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_LIMITED", "sk-limited")
    path = tmp_path / "acme.yaml"
    path.write_text(yaml.safe_dump({"base_url": "https://gw.acme.dev", "api_key": "sk-main", "billing_api_key": "sk-b",
                                    "refused_prompt": "Refuse me", "rate_limits": {
                                        "api_key_env": "ACME_LIMITED", "rpm": 3, "tpm": 2000,
                                        "endpoints": ["createMultimodalImage"]}}))
    target = load_target_file(path)
    assert target.billing_api_key == "sk-b" and target.refused_prompt == "Refuse me"
    assert target.rate_limits is not None and target.rate_limits.endpoints == {"createMultimodalImage"}
    assert (target.rate_limits.rpm, target.rate_limits.tpm) == (3, 2000)
    assert target.auth_headers("limited") == {"Authorization": "Bearer sk-limited"}
    assert target.auth_headers("billing") == {"Authorization": "Bearer sk-b"}
    plain = tmp_path / "plain.yaml"
    plain.write_text("base_url: https://x\napi_key: k\n")  # no rate_limits key: the probes use the main key
    assert load_target_file(plain).auth_headers("limited") == {"Authorization": "Bearer k"}


@pytest.mark.parametrize(("content", "named"), [
    ({"base_url": "https://x", "api_key": "k", "rate_limits": {"tpm": 50}}, "rate_limits.tpm"),
    ({"base_url": "https://x", "api_key": "k", "rate_limits": {"rps": 5}}, "rate_limits"),
    ({"base_url": "https://x", "api_key": "k", "apis": ["nope"]}, "apis.0"),
    ({"base_url": "ftp://x", "api_key": "k"}, "base_url"),
    ({"base_url": "https://x", "api_key": "k", "surprise": 1}, "surprise"),
    ({"base_url": "https://x"}, "no API key"),
])
def test_bad_target_file_names_the_key(tmp_path: Path, content: dict[str, object], named: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(content))
    with pytest.raises(TargetFileError, match=named.replace(".", r"\.")):
        load_target_file(path)


def test_baseline_accepts_known_failures_and_fails_on_regressions(tmp_path: Path) -> None:
    baseline = tmp_path / "baseline.yaml"
    with serve(broken_app("no_done")) as url:
        code, _, _ = run_suite(url, tmp_path, "--phases", "behavioural", "-k", "stream",
                               "--write-baseline", str(baseline))
        assert code == 1
        known = yaml.safe_load(baseline.read_text())["known_failures"]
        assert known and all("stream" in item for item in known)
        code, report, output = run_suite(url, tmp_path, "--phases", "behavioural", "-k", "stream",
                                         "--baseline", str(baseline))
    assert code == 0, output
    assert report["summary"]["known_failures"] == len(known) and report["summary"]["failed"] == 0
    with serve(broken_app("chunk_ids_change")) as url:  # a different break is a regression
        code, report, _ = run_suite(url, tmp_path, "--phases", "behavioural", "-k", "stream",
                                    "--baseline", str(baseline))
    assert code == 1 and report["summary"]["failed"] > 0


def _report(name: str, outcome: str) -> dict[str, object]:
    rows = [Row("t1", "stream_ends_with_done", "openai_gateway", "chat.streaming", "001", outcome, 0.1),
            Row("t2", "usage_pagination", "credits_api", "credits.usage", "004", "not_claimed", 0.0)]
    return build(Target(name, "http://x", "k"), rows, "a", "b", 1.0)


def test_compare_puts_targets_side_by_side(tmp_path: Path) -> None:
    text = compare([_report("alpha", "passed"), _report("beta", "failed")])
    line = next(row for row in text.splitlines() if "chat.streaming" in row)
    assert "alpha" in text and "beta" in text
    assert line.count("|") == 5 and "PASS" in line and "FAIL" in line
    assert "not claimed" in next(row for row in text.splitlines() if "credits.usage" in row)
    (tmp_path / "a.json").write_text(json.dumps(_report("alpha", "passed")))
    from conformance.cli import main

    assert main(["compare", str(tmp_path / "a.json"), "--out", str(tmp_path / "c.md"),
                 "--html", str(tmp_path / "c.html")]) == 0
    assert "alpha" in (tmp_path / "c.md").read_text()


def test_unclaimed_apis_are_reported_not_claimed(tmp_path: Path) -> None:
    from conformance.embedded import embedded_app

    path = tmp_path / "partial.yaml"
    with serve(embedded_app()) as url:
        path.write_text(yaml.safe_dump({"name": "under-test", "base_url": url, "api_key": "sk-test",
                                        "apis": ["openai_gateway"]}))
        code, report, output = run_suite(str(path), tmp_path, "--phases", "behavioural")
    assert code == 0, output
    matrix = report["capabilities"]
    assert set(matrix["credits_api"].values()) == {"not claimed"}
    unclaimed = [row for row in report["checks"] if row["outcome"] == "not_claimed"]
    assert unclaimed and all(row["reason"] == f"not claimed: the target does not claim {row['api']}"
                             for row in unclaimed)
    assert "pass" in matrix["openai_gateway"].values()
    markdown = (tmp_path / "under-test" / "latest" / "report.md").read_text()
    count = sum(row["api"] == "credits_api" for row in unclaimed)
    assert f"- credits_api: {count} checks (not claimed: the target does not claim credits_api)" in markdown


@pytest.mark.parametrize(("target", "said"), [("gatway.yaml", "(no such file)"), ("configs/acme", "(no such file)"),
                                              ("gateway.acme.dev", "an http(s) URL")])
def test_a_target_that_is_no_url_file_or_mock_is_refused_by_name(
        target: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.cli import main

    code = main(["run", "--target", target, "--api-key", "k", "--reports", str(tmp_path / "reports")])
    err = capsys.readouterr().err
    assert code == 2 and repr(target) in err and said in err
    assert not (tmp_path / "reports").exists()  # a refused run leaves no folder


def test_a_url_target_still_needs_only_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.cli import main

    monkeypatch.delenv("CONFORMANCE_API_KEY", raising=False)
    code = main(["run", "--target", "https://gateway.acme.dev", "--reports", str(tmp_path / "reports")])
    assert code == 2 and "--api-key" in capsys.readouterr().err


def test_a_url_target_without_a_key_says_how_to_give_one(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from conformance.cli import main

    monkeypatch.delenv("CONFORMANCE_API_KEY", raising=False)
    code = main(["run", "--target", "https://gateway.acme.dev", "--reports", str(tmp_path / "reports")])
    err = capsys.readouterr().err
    assert code == 2
    assert all(way in err for way in ("--api-key", "$CONFORMANCE_API_KEY", "api_key:", "api_key_env:")), err
    assert not (tmp_path / "reports").exists()


@pytest.mark.parametrize(("phases", "said"), [
    ("", "no phase"), (" , ", "no phase"), ("golden,", "an empty phase name"), ("golden,,property", "an empty phase"),
    ("goldne", "unknown phase 'goldne'"), ("golden,behavior", "unknown phase 'behavior'"),
    ("golden,golden", "'golden' named twice"), ("property, property", "'property' named twice"),
])
def test_a_bad_phases_list_is_exit_2_before_anything_starts(
        phases: str, said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.cli import main

    with pytest.raises(SystemExit) as exited:  # argparse refuses it: no mock served, no report folder
        main(["run", "--target", "mock", "--phases", phases, "--reports", str(tmp_path / "reports")])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and said in err and "golden, behavioural, upstream, property" in err, err
    assert not (tmp_path / "reports").exists()


def test_the_upstream_phase_without_an_upstream_section_leaves_no_report_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.cli import main

    path = tmp_path / "gw.yaml"
    path.write_text(yaml.safe_dump({"base_url": "http://127.0.0.1:9", "api_key": "k"}))
    code = main(["run", "--target", str(path), "--phases", "upstream", "--reports", str(tmp_path / "reports")])
    assert code == 2 and "upstream section" in capsys.readouterr().err
    assert not (tmp_path / "reports").exists()
