"""The documented defaults (004) can fail: each target below is the mock with one default changed on the way in
(a gateway filling in its own value where the client left the field out), and it is reported by the one check
(or golden fixture) of that default and by no other row of the run; the mock itself passes the same run.

Each case runs the real ``conformance run`` CLI in a subprocess against the target served on 127.0.0.1. The usage
list's cases use a mock without rate limits: the check first makes more than 50 usage records, which the
documented limits (15 a minute) would stretch to minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest

from conformance.embedded import EMBEDDED_MODELS, LIMITED_KEY, embedded_app, serve
from mock_server.config import RateLimitConfig
from tests.broken_targets import RequestRewriting
from tests.test_suite_catches_broken_targets import mock_like_target_file, run_suite


def _filling(field_values: dict[str, Any]) -> Callable[[Any], Any]:
    """A gateway that fills in its own value for each field of ``field_values`` the client left out."""
    def change(body: Any) -> Any:
        for name, value in field_values.items():
            body.setdefault(name, value)
        return body

    return change


class QueryFilling:
    """ASGI wrapper of a gateway that adds its own query parameters to GET ``path`` when the client sent none
    of those names."""

    def __init__(self, app: Any, path: str, params: dict[str, str]) -> None:
        self.app, self.path, self.params = app, path, params

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == self.path and scope["method"] == "GET":
            query = dict(parse_qsl(scope["query_string"].decode()))
            scope = {**scope, "query_string": urlencode({**self.params, **query}).encode()}
        await self.app(scope, receive, send)


def _unlimited() -> Any:
    return embedded_app(rate_limits=RateLimitConfig(enabled=False))


@dataclass(frozen=True)
class DefaultBreak:
    """``app()`` serves the broken target; the run (``phases``, ``-k select``) must fail exactly the rows of
    ``check`` whose id contains ``row``; ``correct()`` serves the mock the same run passes on."""

    app: Callable[[], Any]
    check: str
    phases: str
    select: str
    row: str = ""
    correct: Callable[[], Any] = embedded_app


IMAGE, T2V, COGVIDEOX, USAGE = ("/api/v1/multimodal/image", "/api/v1/multimodal/video/t2v",
                                "/api/v1/multimodal/video/cogvideox", "/api/v1/multimodal/usage")
BREAKS: dict[str, DefaultBreak] = {
    "image_size_default_512": DefaultBreak(
        lambda: RequestRewriting(embedded_app(), _filling({"width": 512, "height": 512}), path=IMAGE),
        "golden_fixture", "golden", "createMultimodalImage", row="default_size"),
    "t2v_duration_default_10": DefaultBreak(
        lambda: RequestRewriting(embedded_app(), _filling({"duration": 10}), path=T2V),
        "t2v_duration_default", "behavioural", "t2v_duration_default"),
    "cogvideox_frames_default_17": DefaultBreak(
        lambda: RequestRewriting(embedded_app(), _filling({"num_frames": 17}), path=COGVIDEOX),
        "cogvideox_frames_default", "behavioural", "cogvideox_frames_default"),
    # the same defaults when the run provokes their rate limits too: each job is the first request of its
    # burst on the probes' key, started with the I2V jobs (conformance/suite/jobs.py: carried_video_defaults)
    "t2v_duration_default_10_in_its_burst": DefaultBreak(
        lambda: RequestRewriting(embedded_app(), _filling({"duration": 10}), path=T2V),
        "t2v_duration_default", "behavioural", "t2v_duration_default or test_credits_endpoint_limit"),
    "cogvideox_frames_default_17_in_its_burst": DefaultBreak(
        lambda: RequestRewriting(embedded_app(), _filling({"num_frames": 17}), path=COGVIDEOX),
        "cogvideox_frames_default", "behavioural", "cogvideox_frames_default or test_credits_endpoint_limit"),
    "usage_limit_default_20": DefaultBreak(lambda: QueryFilling(_unlimited(), USAGE, {"limit": "20"}),
                                           "usage_page_defaults", "behavioural", "usage_defaults", correct=_unlimited),
    "usage_skip_default_1": DefaultBreak(lambda: QueryFilling(_unlimited(), USAGE, {"skip": "1"}),
                                         "usage_page_defaults", "behavioural", "usage_defaults", correct=_unlimited),
}


def _run(app: Any, broken: DefaultBreak, tmp_path: Path) -> tuple[int, dict[str, Any], str]:
    with serve(app) as url:
        target = mock_like_target_file(url, tmp_path, models=dict(EMBEDDED_MODELS))
        # thorough: the usage-paging defaults run in that profile only (conformance/suite/test_defaults.py)
        return run_suite(target, tmp_path, "--profile", "thorough", "--phases", broken.phases, "-k", broken.select)


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_default_break_is_reported_by_its_check_alone(name: str, tmp_path: Path) -> None:
    broken = BREAKS[name]
    code, report, output = _run(broken.app(), broken, tmp_path)
    assert code == 1, output
    failed = {(row["check"], row["id"]) for row in report["checks"] if row["outcome"] == "failed"}
    assert failed, output
    assert all(check == broken.check and broken.row in row for check, row in failed), f"{name}: {sorted(failed)}"
    failure = next(row["failure"] for row in report["checks"] if row["outcome"] == "failed")
    assert failure["expected"] and failure["received"]


@pytest.mark.parametrize("name", ["image_size_default_512", "usage_limit_default_20",
                                  "t2v_duration_default_10_in_its_burst", "cogvideox_frames_default_17_in_its_burst"])
def test_the_mock_passes_the_same_runs(name: str, tmp_path: Path) -> None:
    """No false alarm: the mock, whose defaults are the documented ones, passes those rows (the video defaults
    pass in the embedded mock's whole run)."""
    broken = BREAKS[name]
    code, report, output = _run(broken.correct(), broken, tmp_path)
    assert code == 0, output
    rows = [row for row in report["checks"] if row["check"] == broken.check and broken.row in row["id"]]
    assert rows and {row["outcome"] for row in rows} == {"passed"}, output


class KeyRecording:
    """ASGI wrapper recording the key (``Authorization``) of each request to ``path``, in order."""

    def __init__(self, app: Any, path: str) -> None:
        self.app, self.path, self.keys = app, path, list[str]()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == self.path:
            self.keys.append(dict(scope["headers"]).get(b"authorization", b"").decode().removeprefix("Bearer "))
        await self.app(scope, receive, send)


def test_a_video_default_is_the_first_request_of_its_burst(tmp_path: Path) -> None:
    """One window, one burst: with its rate-limit burst in the run, the T2V default's job is that burst's first
    request on the probes' key (the default's, then the burst's refused one: 2 requests in all), not a job of
    its own on the main key before a burst that would then find its window spent."""
    sent: list[Any] = []

    def record(body: Any) -> Any:
        sent.append(dict(body))
        return body

    app = KeyRecording(RequestRewriting(embedded_app(), record, path=T2V), T2V)
    with serve(app) as url:
        target = mock_like_target_file(url, tmp_path, models=dict(EMBEDDED_MODELS))
        code, report, output = run_suite(target, tmp_path, "--phases", "behavioural",
                                         "-k", "t2v_duration_default or test_credits_endpoint_limit")
    assert code == 0, output
    assert {row["id"]: row["outcome"] for row in report["checks"] if "TextToVideo" in row["id"] or "t2v" in row["id"]} \
        == {"test_t2v_duration_default": "passed", "test_credits_endpoint_limit[createTextToVideo]": "passed"}
    assert ["duration" in body for body in sent] == [False, True], sent
    assert app.keys == [LIMITED_KEY, LIMITED_KEY]
