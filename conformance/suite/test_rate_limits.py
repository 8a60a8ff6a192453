"""Rate limits the target file declares, provoked on their own key (``rate_limits``; 001 and 002 "Errors":
429 rate_limit_error, "RPM or TPM exceeded. Respect Retry-After"; 004 per-endpoint limits).

Never an unbounded burst: limit + 1 requests at most per limit, and only for limits the target file
names. The tests run in file order and alone (``serial``): the TPM probe first (it needs the RPM
window's room), then the RPM burst, then the retry after its Retry-After. On a paid API the credits
endpoints' bursts cost limit + 1 calls each (image 6 x 50 credits, I2V 3 x 400, T2V 2 x 1000,
CogVideoX 2 x 800): list only those you accept in ``rate_limits.endpoints``, or exclude the operation.
The I2V, T2V and CogVideoX bursts are sent earlier in the run (before its first session in a concurrent
run, else at the serial stage's first video test) when their first requests start video jobs other checks
of the run need (``jobs.carried_burst``: the premium I2V providers, the T2V and CogVideoX defaults), and
judged here: their admitted calls are then those jobs, not calls of their own.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from conformance.checks import REGISTRY
from conformance.http import Exchange, TargetClient, retry_after_s
from conformance.suite.jobs import BURST_BODIES, Carried, send_burst
from conformance.target import RateLimitProbes, Target
from spec import find_operation
from spec.extensions import rate_limit

CHAT = find_operation("openai_gateway", "createChatCompletion")
#: Share of the declared TPM one probe request's prompt takes: one fits, two do not, however a gateway
#: counts (tokenizer words, or characters / 4) and whether it counts max_tokens.
TPM_SHARE = 0.6
#: Most TPM probe requests: a gateway that counts tokens before admitting refuses the second; one that counts
#: each answer's usage after it (the limit is then passed by the request that crosses it) refuses the third.
#: Both enforce "TPM exceeded" (001 "Errors"); three admitted (1.8 times the TPM) is a failure.
TPM_PROBES = 3
#: Longest prompt the TPM probe sends, in words: a larger declared TPM cannot be reached by two requests
#: a chat model's context holds, so it is skipped rather than answered 400 for a too-long prompt.
MAX_PROBE_WORDS = 50_000
pytestmark = pytest.mark.serial


def _probes(target: Target, what: str) -> RateLimitProbes:
    probes = target.rate_limits
    if probes is None or getattr(probes, what, None) in (None, frozenset()):
        pytest.skip(f"the target file declares no rate_limits.{what}: that limit is not provoked")
    assert probes is not None
    return probes


def _chat(target: Target, text: str) -> dict[str, Any]:
    return {"model": target.model("chat"), "messages": [{"role": "user", "content": text}], "max_tokens": 16}


def _burst(client: TargetClient, path: str, body: dict[str, Any], most: int, window_s: float = 60.0) -> list[Exchange]:
    """At most ``most`` requests on the probes' key, one after another, stopping at the first 429, within one
    window (:func:`~conformance.suite.jobs.send_burst`; skipped when it took longer than ``window_s`` allows)."""
    return send_burst(client, path, [body] * most, window_s).judgeable()


@pytest.mark.api("openai_gateway", operation="createChatCompletion")
@pytest.mark.check("gateway_rate_limit_429")
def test_tpm_exceeded(client: TargetClient, target: Target) -> None:
    tpm = _probes(target, "tpm").tpm
    assert tpm is not None
    words = int(tpm * TPM_SHARE)
    if words > MAX_PROBE_WORDS:
        pytest.skip(f"rate_limits.tpm {tpm} needs prompts of {words} words, over the probe's {MAX_PROBE_WORDS}: "
                    "declare a key with a smaller TPM")
    prompt = " ".join(["word"] * words)
    burst = _burst(client, CHAT.path, _chat(target, prompt), TPM_PROBES)
    REGISTRY["gateway_rate_limit_429"](burst, CHAT, "tokens", tpm)


@pytest.fixture(scope="module")
def rpm_burst(client: TargetClient, target: Target) -> list[Exchange]:
    """rpm + 1 small chat requests at most on the probes' key (made once; the retry test reuses its 429)."""
    rpm = _probes(target, "rpm").rpm
    assert rpm is not None
    return _burst(client, CHAT.path, _chat(target, "Say hi."), rpm + 1)


@pytest.mark.api("openai_gateway", operation="createChatCompletion")
@pytest.mark.check("gateway_rate_limit_429")
def test_rpm_exceeded(rpm_burst: list[Exchange], target: Target) -> None:
    rpm = target.rate_limits.rpm if target.rate_limits else None
    assert rpm is not None
    REGISTRY["gateway_rate_limit_429"](rpm_burst, CHAT, "requests", rpm)


@pytest.mark.api("openai_gateway", operation="createChatCompletion")
@pytest.mark.check("retry_after_admitted")
def test_retry_after_the_advertised_wait(rpm_burst: list[Exchange], client: TargetClient, target: Target) -> None:
    rejected = rpm_burst[-1]
    if rejected.status != 429:
        pytest.skip(f"the RPM burst got no 429 to retry after (statuses {[e.status for e in rpm_burst]})")
    wait = retry_after_s(rejected.headers)
    if wait is None:
        pytest.skip("the 429 has no Retry-After to wait for (gateway_rate_limit_429 reports it)")
    if wait > target.max_retry_wait_s:
        pytest.skip(f"Retry-After is {wait:g} s, longer than the target's max_retry_wait_s "
                    f"({target.max_retry_wait_s:g} s)")
    time.sleep(wait)
    retry = client.request("POST", CHAT.path, json_body=_chat(target, "Say hi."), auth="limited", honour_429=False)
    REGISTRY["retry_after_admitted"](rejected, retry, CHAT)


@pytest.mark.api("credits_api")
@pytest.mark.check("credits_rate_limits_enforced")
@pytest.mark.parametrize("operation_id", sorted(BURST_BODIES))
def test_credits_endpoint_limit(operation_id: str, carried: Carried, client: TargetClient, target: Target) -> None:
    """The burst of limit + 1 requests on the probes' key; the one another test sent when its first requests
    started jobs of that test's checks (``jobs.carried_burst``: I2V's premium providers, the T2V and CogVideoX
    defaults), for a second burst in the same window would find it spent."""
    probes = _probes(target, "endpoints")
    if operation_id not in probes.endpoints:
        pytest.skip(f"rate_limits.endpoints does not list {operation_id}: its documented limit is not provoked")
    operation = find_operation("credits_api", operation_id)
    limit = rate_limit(operation)
    assert limit is not None and limit.requests is not None, f"the spec gives {operation_id} a rate limit"
    sent = carried.bursts.pop(operation_id, None)
    burst = (sent.judgeable() if sent is not None else
             _burst(client, operation.path, BURST_BODIES[operation_id], limit.requests + 1,
                    float(limit.window_s or 60)))
    REGISTRY["credits_rate_limits_enforced"](burst, operation)
