"""Evidence a developer can replay: every failure carries its request as a curl command (headers with the
keys as variables, the multipart form as -F parts) and its answer; a property check that finds several
distinct failing cases lists each; skips keep their reason in every report format."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from conformance.embedded import embedded_app, serve
from conformance.failures import curl_command, redact_headers
from conformance.http import TargetClient
from conformance.target import Target


def test_keys_are_recorded_as_their_variables_never_in_clear() -> None:
    shown = redact_headers({"Authorization": "Bearer sk-live-123", "x-api-key": "sk-other", "Cookie": "s=1",
                            "Content-Type": "application/json"}, {"sk-live-123": "$CONFORMANCE_API_KEY"})
    assert shown == {"authorization": "Bearer $CONFORMANCE_API_KEY", "x-api-key": "[redacted]",
                     "cookie": "[redacted]", "content-type": "application/json"}
    command = curl_command({"method": "POST", "url": "http://gw/v1/chat/completions", "headers": shown,
                            "body": {"q": "it's $HOME"}})
    words = shlex.split(command)  # one shell line whose words are what was sent
    assert words[:5] == ["curl", "-sS", "-X", "POST", "http://gw/v1/chat/completions"]
    assert "Authorization: Bearer $CONFORMANCE_API_KEY" in words and '"Authorization: Bearer $CONFORMANCE' in command
    assert json.loads(words[words.index("-d") + 1]) == {"q": "it's $HOME"}
    assert "sk-live-123" not in command


def test_multipart_and_json_requests_carry_headers_form_and_curl() -> None:
    with serve(embedded_app()) as url, TargetClient(Target("mock", url, "sk-test")) as client:
        form = client.request("POST", "/v1/audio/transcriptions",
                              data={"model": "whisper-1", "response_format": "json"},
                              files=[("file", ("speech.wav", b"RIFF0000WAVE", "audio/wav"))])
        chat = client.request("POST", "/v1/chat/completions", json_body={"model": "nope", "messages": []})
    request = form.evidence().as_dict()["request"]
    assert request["form"] == [{"name": "model", "value": "whisper-1"}, {"name": "response_format", "value": "json"},
                               {"name": "file", "filename": "speech.wav", "content_type": "audio/wav", "bytes": 12}]
    words = shlex.split(request["curl"])
    assert words[words.index("model=whisper-1") - 1] == "-F"
    assert "file=@speech.wav;type=audio/wav" in words
    assert not any(word.lower().startswith("content-type: multipart") for word in words)  # curl writes its own
    evidence = chat.evidence().as_dict()
    assert evidence["request"]["headers"]["authorization"] == "Bearer $CONFORMANCE_API_KEY"
    assert evidence["response"]["status"] == chat.status and evidence["response"]["body_excerpt"]
    assert "sk-test" not in json.dumps(evidence)


SUITE = '''
import hypothesis, pytest
from hypothesis import strategies as st
from conformance.failures import CheckFailure
from conformance.http import TargetClient

@pytest.mark.capability("contract.positive", source="test")
@hypothesis.given(n=st.integers(0, 20))
@hypothesis.example(n=2).via("the spec's example")  # explicit cases (schemathesis's examples and coverage
@hypothesis.example(n=3).via("coverage")            # phase) all run, and their distinct failures are grouped
@hypothesis.example(n=7).via("coverage")
@hypothesis.example(n=6).via("coverage")
def test_generated(n, client):
    exchange = client.request("GET", f"/v1/models/m{n}")
    if n % 2:
        raise CheckFailure("odd_case", "even n", f"n={n}", exchange.evidence())
    if n > 4:
        raise CheckFailure("big_case", "n <= 4", f"n={n}", exchange.evidence())

@pytest.mark.capability("contract.positive", source="test")
def test_skipped():
    pytest.skip("needs a premium key: set standard_api_key")
'''

RUNNER = '''
import sys
from pathlib import Path
import pytest
from conformance.plugin import ConformancePlugin, RunConfig
from conformance.target import Target
out = Path(sys.argv[2])
plugin = ConformancePlugin(RunConfig(Target("t", sys.argv[1], "sk-test"), out, out))
sys.exit(pytest.main([sys.argv[3], "-q", "-p", "no:cacheprovider", "--junitxml", str(out / "junit.xml")],
                     plugins=[plugin]))
'''


def _run(tmp_path: Path) -> dict[str, Any]:
    (tmp_path / "test_generated_suite.py").write_text(textwrap.dedent(SUITE))
    with serve(embedded_app()) as url:
        module = str(tmp_path / "test_generated_suite.py")
        done = subprocess.run([sys.executable, "-c", RUNNER, url, str(tmp_path), module],
                              capture_output=True, text=True, timeout=300, check=False,
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert done.returncode == 1, done.stdout + done.stderr
    report: dict[str, Any] = json.loads((tmp_path / "report.json").read_text())
    return report


def test_distinct_failing_cases_are_each_listed_with_request_and_answer(tmp_path: Path) -> None:
    report = _run(tmp_path)
    row = next(row for row in report["checks"] if row["id"] == "test_generated")
    cases = row["failure"]["cases"]
    assert {case["check"] for case in cases} == {"odd_case", "big_case"}
    for case in cases:
        request, response = case["evidence"]["request"], case["evidence"]["response"]
        assert request["method"] == "GET" and "/v1/models/m" in request["url"] and request["curl"].startswith("curl")
        assert response["status"] == 404 and response["body_excerpt"]
    assert "Traceback" not in json.dumps(row) and "None" not in row["failure"]["received"]
    markdown = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    for case in cases:
        assert case["evidence"]["request"]["curl"] in markdown
        assert case["received"] in html
    assert "case 2 of 2" in markdown and html.count('<ol class="cases">') == 1


def test_skips_record_their_reason_in_every_format(tmp_path: Path) -> None:
    report = _run(tmp_path)
    reason = "needs a premium key: set standard_api_key"
    assert next(row for row in report["checks"] if row["id"] == "test_skipped")["reason"] == reason
    for name in ("report.md", "report.html", "junit.xml"):
        assert reason in (tmp_path / name).read_text(), name


def test_a_failed_sdk_check_carries_the_sdk_request_and_answer(tmp_path: Path) -> None:
    from tests.broken_targets import broken_app
    from tests.test_suite_catches_broken_targets import mock_like_target_file, run_suite

    with serve(broken_app("retrieved_model_renamed")) as url:
        code, report, output = run_suite(mock_like_target_file(url, tmp_path), tmp_path, "--phases", "behavioural",
                                         "-k", "sdk")
    assert code == 1, output
    failure = next(row["failure"] for row in report["checks"] if row["check"] == "sdk_models_retrieve")
    request, response = failure["evidence"]["request"], failure["evidence"]["response"]
    assert request["method"] == "GET" and request["url"].startswith(f"{url}/v1/models/")
    assert request["headers"]["authorization"] == "Bearer $CONFORMANCE_API_KEY"
    assert request["curl"].startswith(f"curl -sS {url}/v1/models/")
    assert response["status"] == 200 and "some-other-model" in response["body_excerpt"]


def test_an_upstream_scenario_the_gateway_did_not_answer_keeps_its_request() -> None:
    from conformance.failures import Evidence
    from conformance.target import Upstream
    from conformance.upstream import Relay

    asked = Evidence("POST", "http://gw/v1/chat/completions", {"model": "m", "messages": []},
                     request_headers={"authorization": "Bearer $CONFORMANCE_API_KEY"})
    relay = Relay("chat_forwarded", "cnf-1", asked.request_body, Upstream("http://up", "ctl"),
                  failure="ReadTimeout: timed out", unanswered=asked)
    shown = relay.evidence().as_dict()
    assert shown["request"]["curl"].startswith("curl -sS -X POST http://gw/v1/chat/completions -H \"Authorization")
    assert shown["response"]["body_excerpt"] == "ReadTimeout: timed out" and shown["upstream"]["nonce"] == "cnf-1"
