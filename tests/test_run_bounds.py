"""The suite as a CI tool against real, slow gateways (issue 14): bounded, concurrent, always reporting.

In-process tests cover the pieces (whole-answer deadlines, the preflight probe, budgets, stages);
the subprocess tests run ``conformance run`` as CI does against tiny local targets that are slow,
silent, dying or never finishing a job, and stop it with SIGTERM/SIGINT in each phase.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from conformance import preflight
from conformance.budget import BudgetExhausted, Limits, RunState, call_cost
from conformance.embedded import embedded_app, embedded_mock, serve
from conformance.failures import TargetError
from conformance.http import TargetClient
from conformance.target import Target
from tests import misbehaving_servers as servers
from tests.broken_targets import Rewriting, broken_app
from tests.test_suite_catches_broken_targets import mock_like_target_file, run_suite

# ---- whole-answer deadlines ------------------------------------------------------------------


def test_a_dripping_answer_fails_target_reachable_at_timeout_s() -> None:
    with servers.serving(servers.dripping(gap_s=0.5)) as url, \
            TargetClient(Target("drip", url, "k", timeout_s=1.5)) as client, pytest.raises(TargetError) as raised:
        client.request("GET", "/v1/models")
    assert raised.value.check == "target_reachable" and "timeout_s (1.5 s)" in raised.value.received


def test_a_dripping_stream_is_cut_at_timeout_s() -> None:
    with servers.serving(servers.dripping(gap_s=0.5)) as url, \
            TargetClient(Target("drip", url, "k", timeout_s=1.5)) as client:
        timed = client.stream("POST", "/v1/chat/completions", json_body={})
    assert timed.broken is not None and "timeout_s" in timed.broken


@pytest.mark.parametrize(("handler", "said"), [
    (servers.closes_idle_connections, ("without sending a response",)),
    (servers.resets_idle_connections, ("readerror", "writeerror", "without sending"))])  # as the RST is read
def test_a_get_on_a_connection_closed_while_idle_is_sent_again_and_a_post_is_not(
        handler: Any, said: tuple[str, ...]) -> None:
    with servers.serving(handler) as url, \
            TargetClient(Target("idle", url, "k", timeout_s=5)) as client:
        # the 2nd and 3rd GETs are each a connection's second request: each is resent on a new connection
        assert [client.request("GET", "/v1/models").status for _ in range(3)] == [200, 200, 200]
        with pytest.raises(TargetError) as raised:  # the third connection's second request: a POST is not resent
            client.request("POST", "/v1/chat/completions", json_body={})
    assert raised.value.check == "target_reachable" and any(word in raised.value.received.lower() for word in said)


# ---- the preflight probe -----------------------------------------------------------------------


@pytest.mark.parametrize(("handler", "said"), [
    (servers.silent, "Timeout"), (servers.garbage, "RemoteProtocolError"), (servers.html_page, "text/html"),
    (servers.redirect_loop, "a redirect (301) to /v1/models")])
def test_preflight_says_what_answered_instead_of_the_api(handler: Any, said: str) -> None:
    with servers.serving(handler) as url:
        failure = preflight.probe(Target("odd", url, "k", timeout_s=1.0))
    assert failure is not None and failure.check == "target_reachable" and said in failure.received


def test_preflight_passes_the_api_and_refuses_a_closed_port() -> None:
    with embedded_mock() as url:
        assert preflight.probe(Target("mock", url, "sk-test")) is None
        refused = preflight.probe(Target("mock", url, "wrong-key"))  # one failure, not a 401 per check
        assert refused is not None and "refuses the run's API key" in refused.received
    failure = preflight.probe(Target("gone", servers.refused_url(), "k"))
    assert failure is not None and "ConnectError" in failure.received


# ---- budgets -------------------------------------------------------------------------------------


def test_documented_costs_are_added_before_a_call() -> None:
    costs = {("/api/v1/multimodal/tts", None): 14, ("/api/v1/multimodal/image", None): 50,
             ("/api/v1/multimodal/video/i2v", "wan22"): 400, ("/api/v1/multimodal/video/i2v", "seedance"): 520,
             ("/api/v1/multimodal/video/i2v", "sora2"): 800, ("/api/v1/multimodal/video/t2v", None): 1000,
             ("/api/v1/multimodal/video/cogvideox", None): 800, ("/v1/chat/completions", None): 0}
    for (path, provider), cost in costs.items():
        assert call_cost("POST", path, {"provider": provider} if provider else {}) == cost, path
    assert call_cost("POST", "/api/v1/multimodal/video/i2v", {}) == 400  # the default provider


def test_a_call_past_max_credits_is_never_started(tmp_path: Path) -> None:
    state = RunState(tmp_path / "state.json", Limits(max_credits=1500))
    state.reserve(1000)
    with pytest.raises(BudgetExhausted, match=r"--max-credits 1500 reached \(1000 spent; the next call costs 1000\)"):
        state.reserve(1000)
    assert state.read()["credits"] == 1000
    with pytest.raises(BudgetExhausted):  # the run is stopped: nothing else starts
        state.reserve(0)


def test_max_requests_and_max_duration_end_the_run(tmp_path: Path) -> None:
    state = RunState(tmp_path / "a.json", Limits(max_requests=2))
    state.reserve()
    state.reserve()
    with pytest.raises(BudgetExhausted, match="--max-requests 2 reached"):
        state.reserve()
    late = RunState(tmp_path / "b.json", Limits(deadline=time.time() - 1, max_duration_s=30))
    with pytest.raises(BudgetExhausted, match="--max-duration 30 s reached"):
        late.check()


def test_requests_are_paced_to_the_declared_rpm(tmp_path: Path) -> None:
    target = Target("paced", "http://x", "k", rpm=300)  # one request per 0.2 s
    state = RunState(tmp_path / "state.json", Limits(interval_s=target.interval_s))
    first = time.time()
    for _ in range(3):
        state.reserve()
    assert state.read()["next_slot"] >= first + 3 * 0.2 - 0.01  # three slots of 0.2 s handed out


# ---- concurrency ---------------------------------------------------------------------------------


def test_serial_checks_run_alone_between_the_concurrent_stages() -> None:
    from conformance.cli import _stages, build_parser

    args = build_parser().parse_args(["run", "--target", "mock"])
    stages = _stages(args, Target("t", "http://x", "k", concurrency=4))
    alone = "serial or last_in_phase"
    # the gateways' generated cases run with the golden and behavioural checks, the credits API's after the serial
    # stage, in this process (one at a time) when no upstream phase needs workers there
    assert [(marks, workers) for _, marks, workers in stages] == [(f"not ({alone}) and not after_serial", 4),
                                                                  (alone, 0), (f"not ({alone}) and after_serial", 0)]
    assert all("test_properties" not in module for module in stages[1][0])
    # each stage collects only its own generated tests (their boundary cases are drawn as they are collected)
    generated = [[module.split("::")[1] for module in stages[i][0] if "test_properties" in module] for i in (0, 2)]
    assert generated == [["test_positive_cases_multi_protocol", "test_negative_cases_multi_protocol",
                          "test_positive_cases_openai_gateway", "test_negative_cases_openai_gateway"],
                         ["test_positive_cases_credits_api", "test_negative_cases_credits_api"]]
    assert _stages(args, Target("t", "http://x", "k", concurrency=1))[0][1:] == ("", 0)


class InFlight:
    """ASGI wrapper: each request takes ``delay_s`` s longer; records the most requests in flight at once."""

    def __init__(self, app: Any, delay_s: float) -> None:
        self.app, self.delay_s, self.now, self.most = app, delay_s, 0, 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.now += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(self.delay_s)
            await self.app(scope, receive, send)
        finally:
            self.now -= 1


def test_checks_run_concurrently_up_to_the_target_concurrency(tmp_path: Path) -> None:
    app = InFlight(embedded_app(), delay_s=0.3)
    with serve(app) as url:
        code, report, output = run_suite(mock_like_target_file(url, tmp_path, concurrency=3), tmp_path,
                                         "--phases", "behavioural", "-k", "speech_format or chat_behaviour")
    assert code == 0, output
    assert report["summary"]["passed"] >= 6 and 2 <= app.most <= 3


def test_generated_cases_of_one_operation_are_sent_concurrently(tmp_path: Path) -> None:
    app = InFlight(embedded_app(), delay_s=0.2)
    with serve(app) as url:
        code, report, output = run_suite(mock_like_target_file(url, tmp_path, concurrency=3), tmp_path,
                                         "--phases", "property", "-k", "positive_cases_openai_gateway and speech")
    assert code == 0, output
    assert [row["outcome"] for row in report["checks"]] == ["passed"]
    assert 2 <= app.most <= 3  # one test on one worker: its cases, up to the concurrency at once


def test_a_batch_raises_its_cases_verdicts_in_drawing_order() -> None:
    from conformance.batch import CaseBatch
    from conformance.failures import CheckFailure

    def failing(name: str, after_s: float) -> Any:
        def send() -> None:
            time.sleep(after_s)
            raise CheckFailure(name, "a pass", "a failure")
        return send

    def skipped() -> None:
        raise BudgetExhausted("budget: --max-requests 1 reached")

    batch = CaseBatch(3)
    for send in (skipped, failing("first_drawn", 0.2), failing("second_drawn", 0.0)):
        batch.submit(send)
    with pytest.raises(BaseExceptionGroup) as group:  # the later-drawn case ended first: order kept
        batch.finish()
    assert [error.check for error in group.value.exceptions] == ["first_drawn", "second_drawn"]
    alone = CaseBatch(2)
    alone.submit(lambda: None)
    alone.submit(skipped)
    with pytest.raises(BudgetExhausted):  # no failure: the budget's skip
        alone.finish()


def test_a_concurrently_sent_case_that_breaks_the_contract_fails_its_check(tmp_path: Path) -> None:
    with serve(broken_app("drops_usage")) as url:
        code, report, output = run_suite(mock_like_target_file(url, tmp_path, concurrency=2), tmp_path,
                                         "--phases", "property", "-k", "positive_cases_openai_gateway and chat")
    assert code == 1, output
    failed = [row for row in report["checks"] if row["outcome"] == "failed"]
    assert [row["check"] for row in failed] == ["response_schema_conformance"], failed
    assert failed[0]["failure"]["evidence"]["request"]["url"].startswith(url)


# ---- --target mock as users start it ---------------------------------------------------------------


def test_target_mock_serves_on_the_mock_servers_own_stack() -> None:
    with embedded_mock(time_scale=0.001) as url:
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            answer = sock.recv(4096)
    assert b"application/json" in answer and b"malformed_http" in answer  # mock_server/http_stack.py's 400


# ---- early stop ----------------------------------------------------------------------------------------


def test_an_unreachable_target_is_one_failure_and_the_rest_skipped(tmp_path: Path) -> None:
    code, report, output = run_suite(servers.refused_url(), tmp_path, "--phases", "golden,behavioural")
    assert code == 1, output
    failed = [row for row in report["checks"] if row["outcome"] == "failed"]
    assert [row["check"] for row in failed] == ["target_reachable"]
    skipped = [row for row in report["checks"] if row["outcome"] == "skipped"]
    assert len(skipped) > 50 and all(row["reason"].startswith("not run: the target is not reachable as the API")
                                     for row in skipped)
    assert report["incomplete"]["phases"] == {"golden": "not run", "behavioural": "not run"}


class Slow:
    """ASGI wrapper: every request ``delay_s`` s slower."""

    def __init__(self, app: Any, delay_s: float) -> None:
        self.app, self.delay_s = app, delay_s

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(self.delay_s)
        await self.app(scope, receive, send)


def _rows(report_dir: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads((report_dir / "latest" / "report.json").read_text())["checks"])
    except (OSError, ValueError, KeyError):
        return []


def _wait_for(predicate: Any, seconds: float = 240.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.2)


def _start(target: str, reports: Path, *extra: str, name: str = "under-test") -> subprocess.Popen[str]:
    """``conformance run`` in a subprocess; a target file's own key unless it is a mock-like one."""
    key = ["--api-key", "sk-test"] if name == "under-test" else []
    return subprocess.Popen([sys.executable, "-m", "conformance", "run", "--target", target, *key, "--name", name,
                             "--reports", str(reports), "-q", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_a_target_that_dies_mid_run_gives_target_reachable_failures(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    with serve(Slow(embedded_app(), delay_s=0.2)) as url:
        run = _start(mock_like_target_file(url, tmp_path, concurrency=1), reports, "--phases", "behavioural")
        _wait_for(lambda: len(_rows(reports / "under-test")) >= 3)
    output, _ = run.communicate(timeout=300)
    report = json.loads((reports / "under-test" / "latest" / "report.json").read_text())
    assert run.returncode == 1, output
    failures = [row["failure"] for row in report["checks"] if row["outcome"] == "failed"]
    assert failures and {f["check"] for f in failures} == {"target_reachable"}, failures
    assert all(f["expected"] != "the check to pass" for f in failures)  # no exception reported as a failure
    assert any(row["reason"].startswith("not run: the target stopped accepting connections")
               for row in report["checks"])


# ---- video jobs -----------------------------------------------------------------------------------------


def _never_completes(status: int, headers: Any, body: bytes) -> tuple[int, Any, bytes]:
    if b'"completed"' in body:
        data = json.loads(body)
        data.update(status="processing", video_url=None)
        body = json.dumps(data).encode()
    return status, headers, body


def test_a_video_job_that_never_completes_fails_with_its_last_status(tmp_path: Path) -> None:
    with serve(Rewriting(embedded_app(), _never_completes)) as url:
        code, report, output = run_suite(mock_like_target_file(url, tmp_path, job_timeout_s=1), tmp_path,
                                         "--phases", "behavioural", "-k", "video_job")
    assert code == 1, output
    row = next(row for row in report["checks"] if row["check"] == "video_job_completes")
    assert row["outcome"] == "failed" and "last status 'processing'" in row["failure"]["received"]


# ---- budgets end to end ------------------------------------------------------------------------------------


def test_max_requests_skips_what_did_not_run_with_that_reason(tmp_path: Path) -> None:
    code, report, output = run_suite("mock", tmp_path, "--phases", "behavioural", "--max-requests", "5",
                                     "--concurrency", "1", "-k", "chat_behaviour or speech")
    assert code == 0, output
    skipped = [row for row in report["checks"] if row["outcome"] == "skipped"]
    assert skipped and all(row["reason"] == "budget: --max-requests 5 reached" for row in skipped)
    assert report["incomplete"]["reason"] == "budget: --max-requests 5 reached"
    assert report["incomplete"]["phases"] == {"behavioural": "partial"}


# ---- a report, always -----------------------------------------------------------------------------------------


def _stop_and_read(target: str, reports: Path, phase: str, signal_number: int, name: str = "under-test") -> None:
    """Start a run of ``phase``, send ``signal_number`` once a row of that phase is in report.json, and
    prove that all four reports say the run is incomplete, with exit code 2."""
    run = _start(target, reports, "--phases", phase, name=name)
    _wait_for(lambda: any(row["phase"] == phase for row in _rows(reports / name)))
    run.send_signal(signal_number)
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 2, output
    latest = reports / name / "latest"
    report = json.loads((latest / "report.json").read_text())
    said = f"stopped by {signal.Signals(signal_number).name}"
    assert report["incomplete"] == {"reason": said, "phases": {phase: "partial"}}
    assert report["checks"] and "Incomplete run" in (latest / "report.md").read_text()
    assert said in (latest / "report.html").read_text()
    error = ET.parse(latest / "junit.xml").getroot().find(".//testcase[@name='run_complete']/error")
    assert error is not None and said in error.attrib["message"]


@pytest.mark.parametrize(("phase", "signal_number", "concurrency"), [
    ("golden", signal.SIGTERM, 1), ("behavioural", signal.SIGTERM, 2), ("property", signal.SIGTERM, 1),
    ("behavioural", signal.SIGINT, 1)])
def test_a_signal_stops_the_run_and_leaves_four_reports_marked_incomplete(
        phase: str, signal_number: int, concurrency: int, tmp_path: Path) -> None:
    with serve(Slow(embedded_app(), delay_s=0.3)) as url:
        _stop_and_read(mock_like_target_file(url, tmp_path, concurrency=concurrency), tmp_path / "reports", phase,
                       signal_number)


def test_sigterm_in_the_upstream_phase_leaves_reports_marked_incomplete(tmp_path: Path) -> None:
    from mock_server import DEV_API_KEY
    from tests.gateway_under_test import gateway_app
    from tests.test_upstream_phase import target_file, upstream_mock

    with serve(Slow(upstream_mock(), delay_s=0.2)) as upstream_url, \
            serve(gateway_app(upstream_url, DEV_API_KEY)) as gateway_url:
        _stop_and_read(str(target_file(tmp_path, gateway_url, upstream_url)), tmp_path / "reports", "upstream",
                       signal.SIGTERM, name="gateway-under-test")


def test_a_refused_run_creates_no_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from conformance.cli import main

    for bad, says in ((["--phases", "bogus"], "unknown phase"), (["--max-duration", "0"], "must be > 0")):
        with pytest.raises(SystemExit) as exited:
            main(["run", "--target", "mock", *bad, "--reports", str(tmp_path / "r")])
        assert exited.value.code == 2 and says in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
