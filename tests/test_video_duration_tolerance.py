"""duration_seconds is a float (004 "Video Response": "Video duration"): a gateway that reports the length
its encoder really produced (5.04 s for 5 s asked) is correct, and the checks that read it must say so,
as they do of the decoded video (within 0.5 s); a duration off by more still fails."""

from __future__ import annotations

import json
from typing import Any

import pytest

from conformance.checks.credits import video_provider_cost_and_duration
from conformance.checks.defaults import t2v_duration_default
from conformance.failures import CheckFailure
from conformance.http import Exchange
from mock_server.media_av import mp4
from spec import find_operation
from spec.extensions import providers

I2V = find_operation("credits_api", "createImageToVideo")
T2V = find_operation("credits_api", "createTextToVideo")
JSON = {"content-type": "application/json"}


def _json(body: dict[str, Any]) -> Exchange:
    return Exchange("POST", "http://gw/x", None, 200, JSON, json.dumps(body).encode())


def _video(width: int, height: int, seconds: float) -> tuple[list[Exchange], Exchange]:
    record = _json({"status": "completed", "video_url": "http://gw/v.mp4"})
    return [record], Exchange("GET", "http://gw/v.mp4", None, 200, {"content-type": "video/mp4"},
                              mp4(width, height, seconds))


@pytest.mark.parametrize("stated, passes", [(5.04, True), (5, True), (6.0, False)])
def test_provider_duration_seconds_is_judged_within_the_decoding_tolerance(stated: float, passes: bool) -> None:
    wan22 = providers(I2V)["wan22"]
    records, video = _video(wan22.width, wan22.height, wan22.duration_s)
    started = _json({"usage_id": "u1", "credits_used": wan22.credits, "duration_seconds": stated})
    if passes:
        video_provider_cost_and_duration(started, records, video, wan22, I2V)
    else:
        with pytest.raises(CheckFailure, match="duration_seconds"):
            video_provider_cost_and_duration(started, records, video, wan22, I2V)


@pytest.mark.parametrize("stated, passes", [(5.04, True), (5, True), (7, False)])
def test_t2v_default_duration_seconds_is_judged_within_the_decoding_tolerance(stated: float, passes: bool) -> None:
    records, video = _video(1280, 720, 5.0)
    started = _json({"usage_id": "u1", "duration_seconds": stated})
    if passes:
        t2v_duration_default(started, records, video, T2V)
    else:
        with pytest.raises(CheckFailure, match="duration_seconds"):
            t2v_duration_default(started, records, video, T2V)
