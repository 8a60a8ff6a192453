"""The mock's credits-based multimodal API (004, spec/credits_api.yaml), driven with plain httpx.

Served-mock tests share the session's ledger, so they compare balances before and after a call;
tests that need a known balance or key use in-process apps with their own MockConfig.
"""

from __future__ import annotations

import base64
import functools
import io
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import av
import httpx
import pytest
from PIL import Image
from starlette.testclient import TestClient

from conformance.embedded import serve
from mock_server import DEV_API_KEY, MockConfig, create_app
from mock_server.config import KeyConfig, RateLimitConfig
from spec import find_operation, response_schema, schema_validator
from spec.extensions import credit_cost, providers

API = "credits_api"
AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}
ROOT = "/api/v1/multimodal"
I2V = {"image_url": "https://example.com/photo.jpg", "motion_prompt": "Camera slowly zooms in"}


@functools.cache
def _validator(operation_id: str, status: int) -> Any:
    schema = response_schema(find_operation(API, operation_id), status)
    assert schema is not None, f"{operation_id} documents no JSON {status}"
    return schema_validator(API, schema)


def _json(response: Any, operation_id: str, status: int = 200) -> Any:
    """The response's JSON, after checking its status and validating it against the spec."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    _validator(operation_id, status).validate(body)
    return body


def _cost(operation_id: str, body: dict[str, Any] | None = None) -> int:
    cost = credit_cost(find_operation(API, operation_id), body)
    assert cost is not None
    return cost.credits


def _balance(client: httpx.Client | TestClient, headers: dict[str, str] = AUTH) -> int:
    balance: int = _json(client.get("/api/v1/managed/usage", headers=headers), "getManagedUsage")["credits_remaining"]
    return balance


def _mp4(content: bytes) -> tuple[str, str, int, int, float]:
    """(container, codec, width, height, duration in s) of an MP4, decoding every frame."""
    with av.open(io.BytesIO(content), mode="r") as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
        assert frames, "no decodable frame"
        return (container.format.name, stream.codec_context.name, frames[0].width, frames[0].height,
                container.duration / av.time_base if container.duration else 0.0)


@pytest.fixture
def http(mock_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock_url, timeout=30) as client:
        yield client


def _app(**config: Any) -> TestClient:
    return TestClient(create_app(MockConfig(**config)))


# ---- generations against the served mock ----

def test_tts_answers_real_mp3_of_its_duration(http: httpx.Client) -> None:
    before = _balance(http)
    body = _json(http.post(f"{ROOT}/tts", json={"text": "Welcome to AINative Studio.", "voice": "Wise_Woman"},
                           headers=AUTH), "createMultimodalTts")
    assert body["format"] == "mp3" and body["credits_used"] == _cost("createMultimodalTts") == 14
    assert body["credits_remaining"] == before - 14 == _balance(http)
    with av.open(io.BytesIO(base64.b64decode(body["audio_base64"])), mode="r") as container:
        stream = container.streams.audio[0]
        assert container.format.name == "mp3"
        decoded_ms = sum(frame.samples for frame in container.decode(stream)) * 1000 / stream.rate
    assert abs(decoded_ms - body["duration_ms"]) <= 50 and body["duration_ms"] > 0
    record = _json(http.get(f"{ROOT}/usage/{body['usage_id']}", headers=AUTH), "getMultimodalUsage")
    assert record["endpoint_type"] == "tts" and record["credits_used"] == 14 and record["voice"] == "Wise_Woman"


@pytest.mark.parametrize(("width", "height"), [(None, None), (512, 768), (2048, 512)])
def test_image_is_a_png_of_the_asked_size(http: httpx.Client, width: int | None, height: int | None) -> None:
    request: dict[str, Any] = {"prompt": "A futuristic cityscape at sunset with neon lights"}
    request.update({k: v for k, v in {"width": width, "height": height}.items() if v is not None})
    before = _balance(http)
    body = _json(http.post(f"{ROOT}/image", json=request, headers=AUTH), "createMultimodalImage")
    expected = (width or 1024, height or 1024)
    assert (body["width"], body["height"]) == expected and body["format"] == "png"
    assert body["credits_used"] == _cost("createMultimodalImage") == 50 and _balance(http) == before - 50
    with Image.open(io.BytesIO(base64.b64decode(body["image_base64"]))) as image:
        assert image.format == "PNG" and image.size == expected


@pytest.mark.parametrize(("path", "operation_id", "request_body", "duration_s"), [
    ("video/t2v", "createTextToVideo", {"prompt": "A serene ocean wave", "duration": 3}, 3.0),
    ("video/cogvideox", "createCogVideoX", {"prompt": "A robot in the rain", "num_frames": 17}, 17 / 8),
    ("video/i2v", "createImageToVideo", I2V, 5.0),
])
def test_video_url_downloads_as_h264_mp4(http: httpx.Client, path: str, operation_id: str,
                                         request_body: dict[str, Any], duration_s: float) -> None:
    before = _balance(http)
    body = _json(http.post(f"{ROOT}/{path}", json=request_body, headers=AUTH), operation_id)
    cost = _cost(operation_id, request_body)
    assert body["format"] == "mp4" and body["duration_seconds"] == pytest.approx(duration_s)
    assert body["credits_used"] == cost and body["credits_remaining"] == before - cost == _balance(http)
    assert body["status"] in ("queued", "processing", "completed")  # 004 "For AI Agents": poll the record
    _wait_completed(http, body["usage_id"])
    download = http.get(body["video_url"])
    assert download.status_code == 200 and download.headers["content-type"] == "video/mp4"
    container, codec, width, height, seconds = _mp4(download.content)
    assert "mp4" in container and codec == "h264" and (width, height) == (1280, 720)
    assert seconds == pytest.approx(duration_s, abs=0.13)  # within one frame at 8 fps
    record = _json(http.get(f"{ROOT}/usage/{body['usage_id']}", headers=AUTH), "getMultimodalUsage")
    assert record["video_url"] == body["video_url"] and record["credits_used"] == cost


def _wait_completed(client: httpx.Client | TestClient, usage_id: str, polls: int = 400) -> None:
    """Poll GET /usage/{usage_id} (at most ``polls`` times, 25 ms apart) until the video job completed."""
    for _ in range(polls):
        record = _json(client.get(f"{ROOT}/usage/{usage_id}", headers=AUTH), "getMultimodalUsage")
        if record["status"] == "completed":
            return
        assert record["status"] in ("queued", "processing"), record
        time.sleep(0.025)
    raise AssertionError(f"video job {usage_id} did not complete")


# ---- costs, tiers and refusals in in-process apps with a known ledger ----

@pytest.mark.parametrize("provider", [None, *providers(find_operation(API, "createImageToVideo"))])
def test_i2v_charges_and_lasts_per_provider(provider: str | None) -> None:
    request = I2V if provider is None else {**I2V, "provider": provider}
    facts = providers(find_operation(API, "createImageToVideo"))[provider or "wan22"]
    with _app(starting_credits=2000) as client:
        body = _json(client.post(f"{ROOT}/video/i2v", json=request, headers=AUTH), "createImageToVideo")
        assert body["credits_used"] == facts.credits == _cost("createImageToVideo", request)
        assert body["credits_remaining"] == 2000 - facts.credits == _balance(client)
        assert body["duration_seconds"] == facts.duration_s
        _wait_completed(client, body["usage_id"])
        _, codec, width, height, seconds = _mp4(client.get(body["video_url"]).content)
    assert (codec, width, height) == ("h264", facts.width, facts.height)
    assert seconds == pytest.approx(facts.duration_s, abs=0.13)
    assert {"wan22": 400, "seedance": 520, "sora2": 800}[facts.name] == facts.credits  # 004 "Credit Costs Summary"


def test_cogvideox_defaults_to_49_frames_and_t2v_to_5_s() -> None:
    with _app() as client:
        cog = _json(client.post(f"{ROOT}/video/cogvideox", json={"prompt": "robot"}, headers=AUTH), "createCogVideoX")
        t2v = _json(client.post(f"{ROOT}/video/t2v", json={"prompt": "waves"}, headers=AUTH), "createTextToVideo")
        assert cog["duration_seconds"] == 49 / 8 and cog["credits_used"] == 800
        assert t2v["duration_seconds"] == 5 and t2v["credits_used"] == 1000
        assert t2v["credits_remaining"] == 10_000 - 1800 == _balance(client)


@pytest.mark.parametrize(("path", "operation_id", "request_body"), [
    ("video/i2v", "createImageToVideo", I2V),
    ("video/t2v", "createTextToVideo", {"prompt": "waves"}),
    ("image", "createMultimodalImage", {"prompt": "a cat"}),
])
def test_short_balance_is_402_and_charges_nothing(path: str, operation_id: str, request_body: dict[str, Any]) -> None:
    with _app(starting_credits=40) as client:
        error = _json(client.post(f"{ROOT}/{path}", json=request_body, headers=AUTH), operation_id, 402)
        assert error["error"]["code"] == "insufficient_credits" and "40" in error["error"]["message"]
        assert _balance(client) == 40
        assert client.get("/api/v1/managed/usage", headers=AUTH).json()["credits_used"] == 0
        assert _json(client.get(f"{ROOT}/usage", headers=AUTH), "listMultimodalUsage")["total"] == 0
        tts = _json(client.post(f"{ROOT}/tts", json={"text": "hi"}, headers=AUTH), "createMultimodalTts")
        assert tts["credits_remaining"] == 26 == _balance(client)


def test_premium_rules_read_the_spec() -> None:
    with _app(keys=(KeyConfig("sk-test", tier="basic"),)) as client:
        _json(client.post(f"{ROOT}/video/t2v", json={"prompt": "waves"}, headers=AUTH), "createTextToVideo", 403)
        sora = {**I2V, "provider": "sora2"}
        _json(client.post(f"{ROOT}/video/i2v", json=sora, headers=AUTH), "createImageToVideo", 403)
        assert _balance(client) == 10_000
        _json(client.post(f"{ROOT}/video/i2v", json=I2V, headers=AUTH), "createImageToVideo")
        assert _balance(client) == 10_000 - 400


def test_concurrent_calls_never_overspend() -> None:
    """20 simultaneous TTS calls against a balance for 10: exactly 10 succeed, the rest are 402."""
    no_limits = RateLimitConfig(enabled=False)  # this test is about the ledger, not the 10/min rate limit
    with serve(create_app(MockConfig(starting_credits=10 * 14, rate_limits=no_limits))) as url, \
            httpx.Client(base_url=url, timeout=30) as http:
        with ThreadPoolExecutor(max_workers=20) as pool:
            statuses = list(pool.map(lambda i: http.post(f"{ROOT}/tts", json={"text": f"word {i}"},
                                                         headers=AUTH).status_code, range(20)))
        assert sorted(statuses) == [200] * 10 + [402] * 10
        assert _balance(http) == 0
        assert _json(http.get(f"{ROOT}/usage", headers=AUTH), "listMultimodalUsage")["total"] == 10


# ---- usage records ----

def test_usage_pages_and_filters() -> None:
    with _app() as client:
        made = []
        for index in range(5):
            path, op = ("tts", "createMultimodalTts") if index % 2 == 0 else ("image", "createMultimodalImage")
            request = {"text": f"call {index}"} if path == "tts" else {"prompt": f"call {index}", "width": 512}
            made.append(_json(client.post(f"{ROOT}/{path}", json=request, headers=AUTH), op))
        pages = [_json(client.get(f"{ROOT}/usage", params={"skip": skip, "limit": 2}, headers=AUTH),
                       "listMultimodalUsage") for skip in (0, 2, 4)]
        assert [len(page["items"]) for page in pages] == [2, 2, 1] and {page["total"] for page in pages} == {5}
        listed = [item for page in pages for item in page["items"]]
        tts_ids = [m["usage_id"] for m in made if "usage_id" in m]
        assert [i["usage_id"] for i in listed if i["endpoint_type"] == "tts"] == tts_ids[::-1]  # newest first
        assert [i["endpoint_type"] for i in listed] == ["tts", "image", "tts", "image", "tts"]
        images = _json(client.get(f"{ROOT}/usage", params={"endpoint_type": "image"}, headers=AUTH),
                       "listMultimodalUsage")
        assert images["total"] == 2 and {i["endpoint_type"] for i in images["items"]} == {"image"}
        assert images["limit"] == 50 and images["skip"] == 0
        assert sum(i["credits_used"] for i in listed) == 3 * 14 + 2 * 50
        for bad in ({"limit": 0}, {"limit": 101}, {"endpoint_type": "music"}, {"skip": -1}):
            _json(client.get(f"{ROOT}/usage", params=bad, headers=AUTH), "listMultimodalUsage", 400)
        far = _json(client.get(f"{ROOT}/usage", params={"skip": 10**25}, headers=AUTH), "listMultimodalUsage")
        assert far["items"] == [] and far["total"] == 5


def test_odd_text_never_breaks_a_usage_answer() -> None:
    """A lone surrogate (legal in a JSON escape, not in UTF-8) is refused at parse time, naming the field
    (issue 16), so it never reaches a usage record; nothing is charged."""
    with _app() as client:
        raw = b'{"text": "hi \\ud800", "voice": "\\ud800Wise"}'
        refused = _json(client.post(f"{ROOT}/tts", content=raw, headers={**AUTH, "content-type": "application/json"}),
                        "createMultimodalTts", 400)
        assert refused["error"]["param"] == "text"
        assert _json(client.get(f"{ROOT}/usage", headers=AUTH), "listMultimodalUsage")["total"] == 0


def test_a_usage_record_is_only_its_keys() -> None:
    other = {"Authorization": "Bearer sk-other"}
    with _app(keys=(KeyConfig(DEV_API_KEY), KeyConfig("sk-other"))) as client:
        made = _json(client.post(f"{ROOT}/tts", json={"text": "mine"}, headers=AUTH), "createMultimodalTts")
        mine = _json(client.get(f"{ROOT}/usage/{made['usage_id']}", headers=AUTH), "getMultimodalUsage")
        assert mine["usage_id"] == made["usage_id"] and mine["status"] == "completed"
        assert mine["created_at"].endswith("Z")
        for headers, usage_id in ((other, made["usage_id"]), (AUTH, "usage_unknown")):
            error = _json(client.get(f"{ROOT}/usage/{usage_id}", headers=headers), "getMultimodalUsage", 404)
            assert error["error"]["param"] == "usage_id"
        assert _json(client.get(f"{ROOT}/usage", headers=other), "listMultimodalUsage")["total"] == 0
        assert _balance(client, other) == 10_000


def test_managed_usage_tracks_the_balance_and_spend() -> None:
    with _app(starting_credits=500) as client:
        assert _json(client.get("/api/v1/managed/usage", headers=AUTH), "getManagedUsage") == {
            "credits_remaining": 500, "credits_used": 0}
        client.post(f"{ROOT}/tts", json={"text": "one"}, headers=AUTH)
        assert _json(client.get("/api/v1/managed/usage", headers=AUTH), "getManagedUsage") == {
            "credits_remaining": 486, "credits_used": 14}
        _json(client.get("/api/v1/managed/usage"), "getManagedUsage", 401)


def test_a_file_ledger_outlives_the_app(tmp_path: Any) -> None:
    path = tmp_path / "credits.sqlite"
    with _app(ledger_path=path, starting_credits=100) as client:
        _json(client.post(f"{ROOT}/image", json={"prompt": "x", "width": 512, "height": 512}, headers=AUTH),
              "createMultimodalImage")
        client.app.state.services.ledger.close()  # type: ignore[attr-defined]
    with _app(ledger_path=path, starting_credits=100) as client:
        assert _balance(client) == 50
        client.app.state.services.ledger.close()  # type: ignore[attr-defined]


# ---- file storage ----

def test_upload_stores_raw_and_multipart_files() -> None:
    with _app() as client:
        op = "uploadZeroDbFile"
        url = "/api/v1/public/zerodb/files/upload"
        raw = _json(client.post(url, content=b"ID3-bytes", headers={**AUTH, "content-type": "audio/mpeg"}), op)
        assert raw["size_bytes"] == 9 and raw["content_type"] == "audio/mpeg"
        form = _json(client.post(url, files={"file": ("clip.mp4", b"\x00" * 100, "video/mp4")}, headers=AUTH), op)
        assert (form["filename"], form["content_type"], form["size_bytes"]) == ("clip.mp4", "video/mp4", 100)
        store = client.app.state.services.files  # type: ignore[attr-defined]
        assert store.get(DEV_API_KEY, form["file_id"]).content == b"\x00" * 100
        form_type = {**AUTH, "content-type": "multipart/form-data; boundary=x"}
        not_a_form = client.post(url, content=b"[1, 2]", headers=form_type)
        assert _json(not_a_form, op)["size_bytes"] == 6  # stored as sent
        no_file = client.post(url, data={"name": "x"}, files={"dummy": ("", b"")}, headers=AUTH)
        assert no_file.status_code == 200
        assert client.post(url, content=b"", headers=AUTH).status_code == 400
        too_big = client.post(url, content=b"x" * (store.max_file_bytes + 1), headers=AUTH)
        assert too_big.status_code == 413 and too_big.json()["error"]["code"] == "request_too_large"
        assert client.post(url, content=b"x").status_code == 401
