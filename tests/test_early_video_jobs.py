"""A concurrent run starts the serial stage's video jobs, and the rate-limit bursts that carry them, before its
first session (``conformance/suite/jobs.py`` ``start_video_jobs``, ``ConformancePlugin.start_video_jobs``): the
jobs run on the target while the golden and behavioural checks do, and the serial stage polls and judges them.
The tests the run selects still decide which jobs start, each burst is sent once a run, and a target whose
probes' key is its main key keeps the jobs in the serial stage (its golden video cases use that key's windows)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from conformance.embedded import LIMITED_KEY, STANDARD_KEY, TARGET_FILE_OPTIONS, embedded_app, serve
from conformance.failures import Evidence, TargetError
from conformance.suite import jobs
from conformance.target import RateLimitProbes, Target
from tests.test_suite_catches_broken_targets import mock_like_target_file, run_suite

VIDEO_PATHS = ("/api/v1/multimodal/video/i2v", "/api/v1/multimodal/video/t2v", "/api/v1/multimodal/video/cogvideox")


class Recorded:
    """ASGI wrapper: each request's (monotonic time, method, path, key) in arrival order."""

    def __init__(self, app: Any) -> None:
        self.app, self.requests = app, []  # type: list[tuple[float, str, str, str]]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            key = headers.get(b"authorization", b"").decode().removeprefix("Bearer ")
            self.requests.append((time.monotonic(), scope["method"], scope["path"], key))
        await self.app(scope, receive, send)

    def video_posts(self, key: str) -> list[tuple[float, str]]:
        return [(at, path) for at, method, path, k in self.requests if method == "POST" and path in VIDEO_PATHS
                and k == key]


def _run(tmp_path: Path, keyword: str, **target: object) -> tuple[int, dict[str, Any], str, Recorded]:
    app = Recorded(embedded_app())
    with serve(app) as url:
        code, report, output = run_suite(mock_like_target_file(url, tmp_path, concurrency=2, **target), tmp_path,
                                         "--phases", "golden,behavioural", "-k", keyword)
    return code, report, output, app


def test_a_concurrent_run_starts_the_video_jobs_before_its_golden_cases_and_judges_them_later(tmp_path: Path) -> None:
    code, report, output, app = _run(tmp_path, "video or credits_endpoint_limit or default")
    assert code == 0, output
    outcomes = {row["id"]: row["outcome"] for row in report["checks"]}
    judged = ["test_video_job_polled_to_completion", "test_video_provider_facts[sora2]", "test_t2v_duration_default",
              "test_cogvideox_frames_default", "test_credits_endpoint_limit[createImageToVideo]",
              "test_credits_endpoint_limit[createTextToVideo]", "test_credits_endpoint_limit[createCogVideoX]"]
    assert all(outcomes[check] == "passed" for check in judged), outcomes
    limited, main = app.video_posts(LIMITED_KEY), app.video_posts("sk-test")
    assert main, "the golden video cases ran"
    # the bursts (premium I2V providers first, the T2V and CogVideoX defaults first) came before any golden case
    assert max(at for at, _ in limited) < min(at for at, _ in main)
    assert min(at for at, _ in app.video_posts(STANDARD_KEY)) < min(at for at, _ in main)  # wan22
    # each burst once: limit + 1 requests (I2V 2/min, T2V and CogVideoX 1/min)
    assert sorted(path.rsplit("/", 1)[1] for _, path in limited) == ["cogvideox"] * 2 + ["i2v"] * 3 + ["t2v"] * 2


def test_the_selected_tests_decide_which_jobs_start_before_the_run(tmp_path: Path) -> None:
    code, report, output, app = _run(tmp_path, "(golden and video or credits_endpoint_limit or default) "
                                               "and not cogvideox")
    assert code == 0, output
    assert "test_cogvideox_frames_default" not in {row["id"] for row in report["checks"]}
    limited = app.video_posts(LIMITED_KEY)
    # no I2V job is tested: the I2V burst is sent by its own test, in the serial stage, after the golden cases
    assert sorted(path.rsplit("/", 1)[1] for _, path in limited) == ["i2v"] * 3 + ["t2v"] * 2
    first_golden = min(at for at, _ in app.video_posts("sk-test"))
    assert [path for at, path in limited if at < first_golden] == ["/api/v1/multimodal/video/t2v"] * 2


def test_with_the_main_key_as_probes_key_the_jobs_start_in_the_serial_stage(tmp_path: Path) -> None:
    probes = {**TARGET_FILE_OPTIONS["rate_limits"], "api_key": "sk-test"}  # type: ignore[dict-item]
    _, _, output, app = _run(tmp_path, "video_job_polled or golden and video", rate_limits=probes)
    wan22 = app.video_posts(STANDARD_KEY)
    assert wan22, output
    golden = [at for at, _ in app.video_posts("sk-test") if at < min(at for at, _ in wan22)]
    assert len(golden) >= 4, output  # every golden video case ran before the first job of the serial stage


def test_the_keys_that_allow_an_early_start() -> None:
    probes = RateLimitProbes(api_key="sk-limited", endpoints=frozenset({"createTextToVideo"}))
    assert jobs.starts_before_the_run(Target("t", "http://x", "k", rate_limits=probes, standard_api_key="sk-std"))
    assert not jobs.starts_before_the_run(Target("t", "http://x", "k", rate_limits=probes))
    assert not jobs.starts_before_the_run(Target("t", "http://x", "k", standard_api_key="sk-std"))
    same = RateLimitProbes(api_key="k", endpoints=probes.endpoints)
    assert not jobs.starts_before_the_run(Target("t", "http://x", "k", rate_limits=same, standard_api_key="sk-std"))


def test_what_broke_the_early_start_is_raised_to_the_first_test_that_asks() -> None:
    carried = jobs.Carried(error=TargetError("target_reachable", "an HTTP answer", "ReadError",
                                             Evidence("POST", "/x", None)), video_defaults={}, i2v={})
    target = Target("t", "http://x", "k")
    with pytest.raises(TargetError):
        jobs.start_video_jobs(carried, [], None, target)  # type: ignore[arg-type]
    assert jobs.start_video_jobs(carried, [], None, target) == {}  # type: ignore[arg-type]


@pytest.mark.parametrize(("collected", "starts"), [(pytest.ExitCode.OK, 1), (pytest.ExitCode.INTERRUPTED, 0)])
def test_a_signal_while_the_serial_stage_is_collected_starts_no_job(
        collected: pytest.ExitCode, starts: int, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from conformance.plugin import ConformancePlugin, RunConfig

    probes = RateLimitProbes(api_key="sk-limited", endpoints=frozenset({"createTextToVideo"}))
    plugin = ConformancePlugin(RunConfig(Target("t", "http://127.0.0.1:9", "k", rate_limits=probes,
                                                standard_api_key="sk-std"), tmp_path, tmp_path))
    monkeypatch.setattr(pytest, "main", lambda *args, **kwargs: collected)
    called: list[Any] = []
    monkeypatch.setattr(jobs, "start_video_jobs", lambda *args: called.append(args))
    plugin.start_video_jobs([])
    assert len(called) == starts
