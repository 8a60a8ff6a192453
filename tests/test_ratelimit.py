"""The sliding-window log admits exactly the limit in any window, and says when to retry."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mock_server.sim.ratelimit import RESOLUTION, Limit, SlidingWindowLog, raw_headers, retry_after_header


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


#: The stage's usual limits: RPM alone (a credits API endpoint's fixed limit is the same shape), RPM and TPM,
#: and a short window with small figures, so that sequences reach refusals, expiries and "too large".
LIMIT_SETS = [(RPM,), (RPM, Limit("tokens", 100, 60.0)), (Limit("requests", 2, 1.5), Limit("tokens", 30, 1.5)),
              (Limit("requests", 3, 5.0),)]
STEPS = st.lists(st.tuples(st.sampled_from(["a", "b", ("c", "op")]),  # key
                           st.integers(0, len(LIMIT_SETS) - 1),      # its limits
                           st.booleans(),                            # the same tuple as before, or an equal copy
                           st.integers(0, 120),                      # the TPM estimate
                           st.sampled_from([0.0, 0.0001, 0.01, 0.5, 1.0, 1.5, 7.0, 30.0, 60.0, 61.0]),  # clock step, s
                           st.sampled_from(["fused", "fused", "fused", "admit", "reset"])),  # how B is asked
                 max_size=60)


@settings(max_examples=300, deadline=None)
@given(steps=STEPS)
def test_the_fused_admission_decides_records_and_words_headers_as_admit(steps: list[Any]) -> None:
    """``admit_tokens`` (the stage's fused path) against ``admit`` with the weights the stage gave it:
    the same decisions (admitted, remaining, reset, Retry-After, refused or too large), the same logs
    afterwards, and the header values of those decisions, for any sequence of keys, limits, estimates
    and clock times; the two ways mixed on one limiter share its logs, and a reset forgets both."""
    clock = Clock()
    slow, fused = SlidingWindowLog(clock), SlidingWindowLog(clock)
    for key, which, same, tokens, step, way in steps:
        clock.now += step
        limits = LIMIT_SETS[which] if same else tuple(list(LIMIT_SETS[which]))
        if way == "reset":
            slow.reset()
            fused.reset()
            continue
        expected = slow.admit(key, limits, {"requests": 1, "tokens": tokens})
        if way == "admit":
            assert fused.admit(key, limits, {"requests": 1, "tokens": tokens}) == expected
            continue
        decisions, raw = fused.admit_tokens(key, limits, tokens)
        assert decisions == expected
        assert raw == raw_headers(expected)
        assert [SlidingWindowLog.too_large(d, tokens if d.limit.dimension == "tokens" else 1) for d in decisions] == \
            [SlidingWindowLog.too_large(d, tokens if d.limit.dimension == "tokens" else 1) for d in expected]
    assert _logs(fused) == _logs(slow)


def _logs(limiter: SlidingWindowLog) -> dict[Any, tuple[list[float], list[int], int]]:
    return {key: (list(log.times), list(log.weights), log.used) for key, log in limiter._logs.items()}


def test_the_header_values_of_decisions() -> None:
    """``x-ratelimit-limit-<dimension>``, ``-remaining-`` and ``-reset-`` (whole s rounded up, with an s)."""
    clock = Clock()
    decisions, raw = SlidingWindowLog(clock).admit_tokens("k", (RPM, Limit("tokens", 100, 60.0)), 30)
    assert raw == [(b"x-ratelimit-limit-requests", b"10"), (b"x-ratelimit-remaining-requests", b"9"),
                   (b"x-ratelimit-reset-requests", b"60s"), (b"x-ratelimit-limit-tokens", b"100"),
                   (b"x-ratelimit-remaining-tokens", b"70"), (b"x-ratelimit-reset-tokens", b"60s")]
    assert raw_headers([decisions[0]._replace(reset_s=0.2)])[2] == (b"x-ratelimit-reset-requests", b"1s")
