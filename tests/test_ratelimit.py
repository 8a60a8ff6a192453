"""The sliding-window log admits exactly the limit in any window, and says when to retry."""

from __future__ import annotations

from mock_server.sim.ratelimit import RESOLUTION, Limit, SlidingWindowLog, retry_after_header


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


RPM = Limit("requests", 10, 60.0)


def test_admits_exactly_the_limit_per_window() -> None:
    clock = Clock()
    log = SlidingWindowLog(clock)
    verdicts = [log.admit("k:op", [RPM], {"requests": 1})[0] for _ in range(12)]
    assert [v.admitted for v in verdicts] == [True] * 10 + [False] * 2
    assert verdicts[9].remaining == 0 and verdicts[0].remaining == 9
    assert verdicts[10].retry_after_s == 60.0 and retry_after_header(verdicts[10:11]) == "60"


def test_window_slides_rather_than_resetting_at_an_edge() -> None:
    clock = Clock()
    log = SlidingWindowLog(clock)
    for _ in range(5):
        log.admit("k", [RPM], {})
    clock.now += 30
    for _ in range(5):
        assert log.admit("k", [RPM], {})[0].admitted
    assert not log.admit("k", [RPM], {})[0].admitted  # 10 in the last 60 s
    clock.now += 30.001  # the first 5 left the window
    assert sum(log.admit("k", [RPM], {})[0].admitted for _ in range(6)) == 5


def test_keys_are_independent_and_refusals_record_nothing() -> None:
    clock = Clock()
    log = SlidingWindowLog(clock)
    tpm = Limit("tokens", 100, 60.0)
    assert log.admit("a", [RPM, tpm], {"requests": 1, "tokens": 90})[0].admitted
    refused = log.admit("a", [RPM, tpm], {"requests": 1, "tokens": 20})
    assert [d.admitted for d in refused] == [True, False]
    assert log.admit("a", [RPM, tpm], {"requests": 1, "tokens": 10})[1].remaining == 0  # the refusal took nothing
    assert log.admit("b", [RPM, tpm], {"requests": 1, "tokens": 100})[1].admitted


def test_memory_stays_bounded_and_no_window_admits_more_than_the_limit() -> None:
    """Admissions closer than RESOLUTION of a window share one entry; the merge never frees units early."""
    clock = Clock()
    log = SlidingWindowLog(clock)
    limit = Limit("requests", 50_000, 60.0)
    admitted = 0
    for step in range(100_000):  # 2,000 requests/s for 50 s of the injected clock
        clock.now = 1000.0 + step * 0.0005
        admitted += log.admit("k", [limit], {})[0].admitted
    assert admitted == 50_000  # the first 25 s filled the window
    assert len(log._logs[("k", "requests", 60.0)].times) <= 25 / (60 * RESOLUTION) + 1  # not one per request
    clock.now = 1060.0 - 0.001  # nothing admitted at 1000.0 has left yet
    assert not log.admit("k", [limit], {})[0].admitted
    clock.now = 1060.0 + 60 * RESOLUTION  # the first entry has left, at most a granule late
    assert log.admit("k", [limit], {})[0].admitted


def test_a_refusal_counts_nothing_and_every_decision_says_so() -> None:
    clock = Clock()
    log = SlidingWindowLog(clock)
    tpm = Limit("tokens", 100, 60.0)
    requests, tokens = log.admit("k", [RPM, tpm], {"requests": 1, "tokens": 150})
    assert requests.admitted and (requests.remaining, requests.reset_s) == (10, 0.0)  # nothing was logged
    assert not tokens.admitted and tokens.remaining == 100
    assert SlidingWindowLog.too_large(tokens, 150) and not SlidingWindowLog.too_large(requests, 1)
    assert log.admit("k", [RPM, tpm], {"requests": 1, "tokens": 60})[0].remaining == 9
    requests, tokens = log.admit("k", [RPM, tpm], {"requests": 1, "tokens": 60})
    assert not tokens.admitted and not SlidingWindowLog.too_large(tokens, 60) and tokens.retry_after_s == 60.0
    assert requests.remaining == 9 and tokens.remaining == 40
