"""A rate-limit burst that starts other checks' jobs (``conformance/suite/jobs.carried_burst``) is sent once a
run: a burst that broke off (a request got no answer) is recorded as broken, its check skips with that
reason, and a caller that asks again (a fixture that failed before recording its jobs) sends nothing, where a
second burst would meet the spent window's 429 and judge a gateway that admits too many as correct."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from conformance.failures import Evidence, TargetError
from conformance.http import Exchange
from conformance.suite import jobs
from conformance.target import RateLimitProbes, Target
from spec import find_operation

T2V = find_operation("credits_api", "createTextToVideo")


class _Item:
    """A collected test of ``credits_rate_limits_enforced`` for ``operation_id`` (what ``jobs.selected`` reads)."""

    def __init__(self, operation_id: str) -> None:
        self.callspec = SimpleNamespace(params={"operation_id": operation_id})

    def get_closest_marker(self, name: str) -> Any:
        return SimpleNamespace(args=("credits_rate_limits_enforced",)) if name == "check" else None


class _Client:
    """Answers 200 to the first ``answered`` requests, then raises TargetError (no answer); counts them."""

    def __init__(self, answered: int) -> None:
        self.answered, self.sent = answered, 0

    def request(self, method: str, path: str, **_: Any) -> Exchange:
        self.sent += 1
        if self.sent > self.answered:
            raise TargetError("target_reachable", "an HTTP answer", "ReadError", Evidence(method, path, None))
        return Exchange(method, path, None, 200, {"content-type": "application/json"}, b'{"usage_id": "u"}', {})


def _items() -> list[Any]:
    return [_Item("createTextToVideo")]


def _target() -> Target:
    return Target("t", "http://127.0.0.1:9", "k", rate_limits=RateLimitProbes(endpoints=frozenset({T2V.operation_id})))


@pytest.fixture(autouse=True)
def _no_boundary_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "BOUNDARY_MARGIN_S", 0.0)


def test_a_burst_that_broke_off_is_not_judged_and_not_sent_again() -> None:
    carried, client = jobs.Carried(), _Client(answered=1)
    with pytest.raises(TargetError):
        jobs.carried_burst(carried, _items(), client, _target(), T2V, [{"prompt": "a boat"}])
    assert client.sent == 2
    with pytest.raises(pytest.skip.Exception, match="broke off after 0 answers \\(ReadError\\)"):
        carried.bursts[T2V.operation_id].judgeable()
    assert jobs.carried_burst(carried, _items(), client, _target(), T2V, [{"prompt": "a boat"}]) is None
    assert client.sent == 2  # nothing more was sent into the spent window


def test_a_whole_burst_is_kept_for_its_check() -> None:
    carried, client = jobs.Carried(), _Client(answered=10)
    answers = jobs.carried_burst(carried, _items(), client, _target(), T2V, [{"prompt": "a boat"}])
    limit = jobs.rate_limit(T2V)
    assert limit is not None and limit.requests is not None
    assert answers is not None and len(answers) == 1 and client.sent == limit.requests + 1
    assert len(carried.bursts[T2V.operation_id].judgeable()) == limit.requests + 1
