"""Fleet mode (issue 18): three replicas of ``mock-server serve --state redis://...`` and a real Redis
(Debian's ``redis-server``, AOF on), all on 127.0.0.1, spoken to over HTTP only.

Each test uses its own API key, so that the rate-limit windows and balances of one test are not
another's; the fleet and Redis are started once for the module. Bursts are small (the machine has 2
cores): what is proven is exactness, not speed (``benchmarks/bench_fleet.py`` measures that)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from mock_server.fleet.ledger import SharedLedger
from mock_server.fleet.store import RedisStore
from tests.fleet_fixtures import (
    RedisServer,
    Replica,
    assert_spent_exactly,
    redis_for_tests,
    replicas,
    spend_fits,
)

CONTROL = {"Authorization": "Bearer ctl-key"}
#: A fleet key's RPM (chat) in the burst test.
BURST_RPM = 12
#: Starting credits of the overspend test's key: three TTS calls (14 credits each) and 8 left.
SPEND_CREDITS = 50
#: Seconds a CogVideoX job takes in this fleet (its latency model, fixed): long enough to kill its replica.
JOB_S = 2.5
#: The spend-limit test's key's gateway spend limit (USD): a few dozen micro-dollar chat answers.
SPEND_LIMIT_USD = 0.00005
KEYS = ["sk-burst", "sk-spend", "sk-video-a", "sk-video-b", "sk-image", "sk-control", "sk-durable", "sk-capped"]


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    with redis_for_tests(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="module")
def fleet(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Replica]]:
    config = tmp_path_factory.mktemp("fleet") / "mock.yaml"
    config.write_text(yaml.safe_dump({
        "keys": [{"key": key, **({"rpm": BURST_RPM} if key == "sk-burst" else {}),
                  **({"credits": SPEND_CREDITS} if key == "sk-spend" else {}),
                  **({"spend_limit_usd": SPEND_LIMIT_USD} if key == "sk-capped" else {})} for key in KEYS],
        "control": {"enabled": True, "key": "ctl-key"},
        "latency": {"enabled": True, "operations": {"createCogVideoX": {"first": {"fixed": JOB_S}}}},
    }))
    with replicas(config, redis_server.url, 3) as started:
        yield started


def remaining(replica: Replica, key: str) -> int:
    """The key's ``credits_remaining`` as ``replica`` answers it."""
    return int(httpx.get(replica.url + "/api/v1/managed/usage", headers=auth(key), timeout=10).json()[
        "credits_remaining"])


def chat(text: str = "hello") -> dict[str, Any]:
    """A small chat completion request."""
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}], "max_tokens": 5}


async def _spread(fleet: list[Replica], path: str, key: str, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """Send every body at once, round-robin over the replicas."""
    async with httpx.AsyncClient(timeout=30) as client:
        return await asyncio.gather(*(client.post(fleet[index % len(fleet)].url + path, json=body, headers=auth(key))
                                      for index, body in enumerate(bodies)))


def test_a_burst_spread_over_the_replicas_admits_exactly_the_limit(fleet: list[Replica]) -> None:
    answers = asyncio.run(_spread(fleet, "/v1/chat/completions", "sk-burst",
                                  [chat(f"burst {i}") for i in range(3 * BURST_RPM)]))
    statuses = [answer.status_code for answer in answers]
    assert statuses.count(200) == BURST_RPM, statuses
    assert statuses.count(429) == 2 * BURST_RPM, statuses
    refused = next(answer for answer in answers if answer.status_code == 429)
    assert refused.json()["error"]["type"] == "rate_limit_error"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert int(refused.headers["Retry-After"]) >= 1


def test_concurrent_charges_over_the_replicas_never_overspend(fleet: list[Replica]) -> None:
    answers = asyncio.run(_spread(fleet, "/api/v1/multimodal/tts", "sk-spend",
                                  [{"text": f"charge {i}"} for i in range(9)]))
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * 3 + [402] * 6, statuses
    ledger = httpx.get(fleet[1].url + "/_mock/ledger", params={"api_key": "sk-spend"}, headers=CONTROL).json()
    assert ledger["balance"] == SPEND_CREDITS - 3 * 14
    assert ledger["total_records"] == 3
    assert sum(record["credits"] for record in ledger["usage"]) == ledger["credits_used"] == 3 * 14
    assert {record["usage_id"] for record in ledger["usage"]} == {
        answer.json()["usage_id"] for answer in answers if answer.status_code == 200}


def test_concurrent_priced_requests_over_the_replicas_never_spend_past_the_limit(fleet: list[Replica]) -> None:
    body = chat("spend me")  # every answer the same tokens, so the same price
    answers = asyncio.run(_spread(fleet, "/v1/chat/completions", "sk-capped", [body] * 30))
    fits = spend_fits(answers, SPEND_LIMIT_USD)
    assert 1 <= fits < 30
    assert_spent_exactly(answers, fits)
    # the spend outlives the replica that answered (kill -9), and the restarted replica refuses too
    fleet[0].kill()
    fleet[0].launch()
    fleet[0].wait_ready()
    assert httpx.post(fleet[0].url + "/v1/chat/completions", json=body, headers=auth("sk-capped"),
                      timeout=10).status_code == 402
    # the control API's reset, on any replica, forgets it on all
    assert httpx.post(fleet[1].url + "/_mock/reset", headers=CONTROL, timeout=10).status_code == 200
    assert [httpx.post(replica.url + "/v1/chat/completions", json=body, headers=auth("sk-capped"),
                       timeout=10).status_code for replica in fleet] == [200] * 3


def _completed(replica: Replica, key: str, usage_id: str, patience_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + patience_s
    while True:
        record = httpx.get(f"{replica.url}/api/v1/multimodal/usage/{usage_id}", headers=auth(key), timeout=10).json()
        if record["status"] in ("completed", "failed") or time.monotonic() > deadline:
            return dict(record)
        time.sleep(0.2)


def _video(fleet: list[Replica], on: int, key: str) -> dict[str, Any]:
    answer = httpx.post(fleet[on].url + "/api/v1/multimodal/video/cogvideox", json={"prompt": "a fleet"},
                        headers=auth(key), timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "queued"
    return dict(answer.json())


def test_a_job_made_on_one_replica_completes_when_polled_on_another(fleet: list[Replica]) -> None:
    started = _video(fleet, 0, "sk-video-a")
    path = httpx.URL(started["video_url"]).path
    assert httpx.get(fleet[2].url + path, timeout=10).status_code == 425  # reserved for the whole fleet
    record = _completed(fleet[1], "sk-video-a", started["usage_id"], 10 * JOB_S)
    assert record["status"] == "completed", record
    video = httpx.get(fleet[2].url + path, timeout=10)
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert video.content[4:8] == b"ftyp"


def test_a_job_and_charges_survive_kill_9_of_the_replica_that_answered(fleet: list[Replica]) -> None:
    started = _video(fleet, 0, "sk-video-b")
    fleet[0].kill()  # at once: the job is queued or processing on the dead replica
    try:
        account = httpx.get(fleet[1].url + "/api/v1/managed/usage", headers=auth("sk-video-b"), timeout=10).json()
        assert account == {"credits_remaining": 10_000 - 800, "credits_used": 800}
        record = _completed(fleet[1], "sk-video-b", started["usage_id"], 20 * JOB_S)
        assert record["status"] == "completed", record
        video = httpx.get(fleet[2].url + httpx.URL(started["video_url"]).path, timeout=10)
        assert video.status_code == 200 and video.content[4:8] == b"ftyp"
    finally:
        fleet[0].launch()
        fleet[0].wait_ready()


def test_a_hosted_url_made_on_one_replica_is_served_by_the_others(fleet: list[Replica]) -> None:
    answer = httpx.post(fleet[1].url + "/v1/images/generations", headers=auth("sk-image"), timeout=30,
                        json={"model": "dall-e-3", "prompt": "a lighthouse", "response_format": "url"})
    assert answer.status_code == 200, answer.text
    path = httpx.URL(answer.json()["data"][0]["url"]).path
    bodies = {httpx.get(replica.url + path, timeout=10).content for replica in fleet}
    assert len(bodies) == 1 and next(iter(bodies)).startswith(b"\x89PNG")
    assert httpx.get(fleet[0].url + path + "x", timeout=10).status_code == 404


def test_the_control_api_acts_on_the_whole_fleet(fleet: list[Replica]) -> None:
    first, second, third = fleet
    faults = httpx.put(first.url + "/_mock/faults", json={"createChatCompletion": {"503": 1.0}}, headers=CONTROL)
    assert faults.status_code == 200
    assert httpx.post(third.url + "/v1/chat/completions", json=chat(), headers=auth("sk-control")).status_code == 503
    assert httpx.get(second.url + "/_mock/faults", headers=CONTROL).json() == {"createChatCompletion": {"503": 1.0}}
    topped = httpx.post(first.url + "/_mock/credits", json={"api_key": "sk-control", "credits": 5}, headers=CONTROL)
    assert topped.json()["balance"] == 10_005
    assert remaining(third, "sk-control") == 10_005
    assert httpx.post(second.url + "/_mock/reset", headers=CONTROL).status_code == 200
    assert remaining(first, "sk-control") == 10_000
    assert httpx.post(first.url + "/v1/chat/completions", json=chat(), headers=auth("sk-control")).status_code == 200
    script = httpx.post(second.url + "/_mock/scripts", headers=CONTROL, json={
        "match": {"nonce": "nonce-fleet-7"}, "steps": [{"answer": "error", "status": 503, "times": 2}]})
    assert script.status_code == 200, script.text
    statuses = [httpx.post(replica.url + "/v1/chat/completions", json=chat("say nonce-fleet-7"),
                           headers=auth("sk-control")).status_code for replica in fleet]
    assert statuses == [503, 503, 200]  # "the next 2 matching requests", counted over the fleet
    journal = httpx.get(third.url + "/_mock/journal", params={"nonce": "nonce-fleet-7"}, headers=CONTROL).json()
    assert [entry["response"]["status"] for entry in journal["entries"]] == [503, 503, 200]
    last = journal["entries"][-1]["id"]
    kept = httpx.get(f"{first.url}/_mock/journal/{last}/response", headers=CONTROL)
    assert kept.status_code == 200 and kept.json()["object"] == "chat.completion"
    assert httpx.delete(first.url + "/_mock/journal", headers=CONTROL).json()["cleared"] >= 3
    assert httpx.get(second.url + "/_mock/journal", headers=CONTROL).json()["entries"] == []


def test_redis_away_is_503_in_the_envelope_and_a_restart_loses_nothing_answered(
        fleet: list[Replica], redis_server: RedisServer) -> None:
    answered = [httpx.post(fleet[i].url + "/api/v1/multimodal/tts", json={"text": f"keep {i}"},
                           headers=auth("sk-durable"), timeout=30) for i in range(2)]
    assert [answer.status_code for answer in answered] == [200, 200]
    redis_server.kill()  # SIGKILL: only what the AOF holds comes back
    try:
        began = time.monotonic()
        for replica in fleet:
            refused = httpx.post(replica.url + "/v1/chat/completions", json=chat(), headers=auth("sk-durable"),
                                 timeout=10)
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "state_unavailable"
            assert refused.headers["Retry-After"] == "1"
        tts = httpx.post(fleet[0].url + "/api/v1/multimodal/tts", json={"text": "no"}, headers=auth("sk-durable"))
        assert tts.status_code == 503 and tts.json()["error"]["code"] == "state_unavailable"
        assert httpx.get(fleet[1].url + "/ready", timeout=10).status_code == 503
        assert time.monotonic() - began < 10  # answered at once, never a hang
    finally:
        redis_server.start()
    deadline = time.monotonic() + 15
    while httpx.post(fleet[2].url + "/v1/chat/completions", json=chat(),
                     headers=auth("sk-durable"), timeout=10).status_code != 200:
        assert time.monotonic() < deadline, "the fleet did not recover when Redis came back"
        time.sleep(0.2)
    records = httpx.get(fleet[1].url + "/api/v1/multimodal/usage", headers=auth("sk-durable"), timeout=10).json()
    assert {record["usage_id"] for record in records["items"]} == {answer.json()["usage_id"] for answer in answered}
    assert httpx.get(fleet[0].url + "/api/v1/managed/usage", headers=auth("sk-durable")).json() == {
        "credits_remaining": 10_000 - 2 * 14, "credits_used": 2 * 14}


def test_two_fleets_share_one_redis_under_their_namespaces(redis_server: RedisServer) -> None:
    async def run() -> tuple[int, int]:
        ours, theirs = RedisStore(redis_server.url, "ns-ours"), RedisStore(redis_server.url, "ns-theirs")
        try:
            await SharedLedger(ours, 100, {}, "r", 1000).charge("sk-same", "tts", 14)
            return ((await SharedLedger(ours, 100, {}, "r", 1000).balance("sk-same")),
                    (await SharedLedger(theirs, 100, {}, "r", 1000).balance("sk-same")))
        finally:
            await ours.close()
            await theirs.close()

    assert asyncio.run(run()) == (86, 100)
