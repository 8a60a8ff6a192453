"""The upstream phase: the gateway's translation layer, judged on what reached its upstream (our mock).

Runs only for a target file with an ``upstream`` section (``conformance/target.py``). Each scenario
sends one request to the gateway, marked with a fresh nonce in its prompt text, after scripting the
upstream's answer to requests carrying that nonce where the scenario needs a failure; every check
registered for the scenario then judges the gateway's answer against the upstream journal
(``conformance/checks/upstream.py``). Scenarios run once per run, and scripts are scoped by nonce,
so they cannot disturb each other.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from conformance.checks import REGISTRY, Check
from conformance.failures import TargetError
from conformance.http import TargetClient
from conformance.media import png, wav_tone
from conformance.target import Target
from conformance.upstream import Relay, UpstreamControl, correlation_headers, new_nonce
from spec import Operation, find_operation

CHAT = find_operation("openai_gateway", "createChatCompletion")
CROSS_CHAT = find_operation("multi_protocol", "createChatCompletion")
MESSAGES = find_operation("multi_protocol", "createMessage")
RESPONSES = find_operation("multi_protocol", "createResponse")
IMAGES = find_operation("openai_gateway", "createImage")
TTS = find_operation("credits_api", "createMultimodalTts")
SPEECH = find_operation("openai_gateway", "createSpeech")
I2V = find_operation("credits_api", "createImageToVideo")
COGVIDEOX = find_operation("credits_api", "createCogVideoX")
USAGE_RECORD = find_operation("credits_api", "getMultimodalUsage")

IMAGE_URL = "https://example.com/image.png"                      # 003 "Image input"
DATA_URL = "data:image/png;base64," + base64.b64encode(png(8, 8, (200, 40, 40, 255))).decode()
AUDIO_B64 = base64.b64encode(wav_tone(0.25)).decode()             # long enough to need line breaks in MIME
VIDEO_URL = "https://example.com/video.mp4"                      # 003 "Video input"
FRAMES = ["https://example.com/frame-1.jpg", "https://example.com/frame-2.jpg", "https://example.com/frame-3.jpg"]
#: Inter-event gap the upstream paces a stream at, in ms.
PACE_GAP_MS = 150
#: How many times a failing step answers: more than any sensible gateway retries.
FAIL_TIMES = 5
#: Retry-After of the scripted 429, in s.
RETRY_AFTER_S = 7
#: The reason of the scripted safety rejection.
SAFETY_REASON = "the prompt asks for violent imagery"
WEATHER = {"name": "get_weather", "description": "Current weather for a city."}
WEATHER_SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


@dataclass(frozen=True)
class Scenario:
    """One request through the gateway: its body (from the target and the nonce), the upstream script
    (steps; ``script_operation`` scopes it further), the checks that judge it, and whether it streams."""

    api: str
    operation: Operation
    body: Callable[[Target, str], dict[str, Any]]
    checks: tuple[str, ...]
    steps: Sequence[Mapping[str, Any]] = ()
    script_operation: str | None = None
    stream: bool = False
    auth: str = "bearer"
    protocol: str = "openai"
    measured: Mapping[str, Any] = field(default_factory=dict)


def _chat(target: Target, nonce: str, **extra: Any) -> dict[str, Any]:
    return {"model": target.model("chat"), "messages": [{"role": "user", "content": f"Say hello. {nonce}"}], **extra}


def _translation(target: Target, nonce: str) -> dict[str, Any]:
    return {"model": target.model("chat"), "max_completion_tokens": 32, "messages": [
        {"role": "developer", "content": f"Answer in one short line. {nonce}"},
        {"role": "user", "content": f"Say hello. {nonce}"}]}


def _parts(target: Target, nonce: str) -> dict[str, Any]:
    return {"model": target.model("video_input"), "messages": [{"role": "user", "content": [
        {"type": "text", "text": f"Describe these. {nonce}"},
        {"type": "image_url", "image_url": {"url": IMAGE_URL, "detail": "low"}},
        {"type": "image_url", "image_url": {"url": DATA_URL}},
        {"type": "input_audio", "input_audio": {"data": AUDIO_B64, "format": "wav"}},
        {"type": "video_url", "video_url": {"url": VIDEO_URL}},
        {"type": "video", "video": FRAMES}]}]}


def _messages(target: Target, nonce: str) -> dict[str, Any]:
    return {"model": target.model("messages"), "max_tokens": 300,
            "tools": [{**WEATHER, "input_schema": WEATHER_SCHEMA}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": f"Describe this image. {nonce}"},
                {"type": "image", "source": {"type": "url", "url": IMAGE_URL}}]}]}


def _responses(target: Target, nonce: str) -> dict[str, Any]:
    return {"model": target.model("responses"), "max_output_tokens": 300,
            "tools": [{"type": "function", **WEATHER, "parameters": WEATHER_SCHEMA}],
            "input": [{"type": "message", "role": "user", "content": [
                {"type": "input_text", "text": f"Describe this image. {nonce}"},
                {"type": "input_image", "image_url": IMAGE_URL, "detail": "low"}]}]}


def _image(response_format: str, model: str = "image_generation") -> Callable[[Target, str], dict[str, Any]]:
    def body(target: Target, nonce: str) -> dict[str, Any]:
        return {"model": target.model(model), "prompt": f"A red square on white. {nonce}",
                "size": "1024x1024", "n": 1, "response_format": response_format}
    return body


def _speech(target: Target, nonce: str) -> dict[str, Any]:
    return {"model": target.model("speech"), "input": f"Welcome to the gateway. {nonce}", "voice": "alloy",
            "response_format": "mp3"}


def _i2v(target: Target, nonce: str) -> dict[str, Any]:
    return {"image_url": IMAGE_URL, "motion_prompt": f"Camera slowly zooms in. {nonce}", "provider": "wan22"}


def _cogvideox(target: Target, nonce: str) -> dict[str, Any]:
    """num_frames, guidance_scale and num_inference_steps left out (004 defaults 49, 6.0, 50)."""
    return {"prompt": f"A robot walking through a garden in the rain. {nonce}"}


def _tts(target: Target, nonce: str) -> dict[str, Any]:
    return {"text": f"Welcome to AINative Studio. {nonce}"}


def _fail(status: int, **extra: Any) -> tuple[dict[str, Any], ...]:
    return ({"answer": "error", "status": status, "times": FAIL_TIMES, **extra},)


_ERRORS = ("upstream_error_translated", "upstream_failure_not_200")
_BRIDGED = ("upstream_bridged_request_kept", "upstream_model_routed")
SCENARIOS: Mapping[str, Scenario] = {
    "chat_translation": Scenario("openai_gateway", CHAT, _translation, (
        "upstream_developer_role_as_system", "upstream_max_tokens_aligned", "upstream_prompt_unrewritten",
        "upstream_model_routed", "upstream_usage_kept")),
    "multimodal_parts": Scenario("multi_protocol", CROSS_CHAT, _parts, (
        "upstream_image_parts_intact", "upstream_audio_part_intact", "upstream_video_parts_intact")),
    "messages_bridge": Scenario("multi_protocol", MESSAGES, _messages, _BRIDGED, auth="messages",
                                measured={"must_arrive": [IMAGE_URL, WEATHER["name"]]}),
    "responses_bridge": Scenario("multi_protocol", RESPONSES, _responses, _BRIDGED,
                                 measured={"must_arrive": [IMAGE_URL, WEATHER["name"]]}),
    "image_b64": Scenario("openai_gateway", IMAGES, _image("b64_json"), (
        "upstream_image_prompt_unrewritten", "upstream_media_intact", "upstream_model_routed",
        "upstream_revised_prompt_from_provider")),
    # 002 "Safety": a model whose provider revises prompts (dall-e-3); the one above sends none
    "image_revised": Scenario("openai_gateway", IMAGES, _image("b64_json", "image_revising"),
                              ("upstream_revised_prompt_from_provider",)),
    "image_url": Scenario("openai_gateway", IMAGES, _image("url"), ("upstream_media_url_downloads",)),
    "speech": Scenario("openai_gateway", SPEECH, _speech, ("upstream_media_intact", "upstream_model_routed")),
    "video_i2v": Scenario("credits_api", I2V, _i2v, ("upstream_video_delivered",), protocol="credits"),
    "safety_rejection": Scenario("openai_gateway", CHAT, _chat, (*_ERRORS, "upstream_safety_reason_kept"),
                                 steps=_fail(400, reason=SAFETY_REASON)),
    **{f"upstream_{status}": Scenario("openai_gateway", CHAT, _chat, _ERRORS, steps=_fail(status))
       for status in (401, 402, 403, 500, 502, 503)},
    # 002 "Errors": 500 internal_server_error, 502 / 503 upstream_error of the Images API
    **{f"image_error_{status}": Scenario("openai_gateway", IMAGES, _image("b64_json"), _ERRORS, steps=_fail(status),
                                         script_operation="createImage")
       for status in (500, 502, 503)},
    "upstream_429": Scenario("openai_gateway", CHAT, _chat, (*_ERRORS, "upstream_retry_after_kept"),
                             steps=_fail(429, retry_after=RETRY_AFTER_S), measured={"retry_after_s": RETRY_AFTER_S}),
    "messages_529": Scenario("multi_protocol", MESSAGES, _messages, _ERRORS, steps=_fail(529), auth="messages",
                             script_operation="createMessage", protocol="messages"),
    "credits_500": Scenario("credits_api", TTS, _tts, (*_ERRORS, "upstream_retry_after_kept"), steps=_fail(500),
                            protocol="credits", measured={"retry_after_s": 30}),  # 004: "retry after 30s"
    "malformed_answer": Scenario("openai_gateway", CHAT, _chat, ("upstream_malformed_answer_handled",),
                                 steps=({"answer": "malformed", "times": FAIL_TIMES},)),
    "cut_stream": Scenario("openai_gateway", CHAT, lambda t, n: _chat(t, n, stream=True),
                           ("upstream_cut_stream_reported",), stream=True,
                           steps=({"answer": "cut_stream", "after_events": 2, "times": FAIL_TIMES},)),
    "reset_stream": Scenario("openai_gateway", CHAT, lambda t, n: _chat(t, n, stream=True),
                             ("upstream_cut_stream_reported",), stream=True,
                             steps=({"answer": "reset_stream", "after_events": 2, "times": FAIL_TIMES},)),
    "paced_stream": Scenario("openai_gateway", CHAT, lambda t, n: _chat(t, n, stream=True, max_tokens=8),
                             ("upstream_stream_not_buffered", "upstream_first_byte_overhead"), stream=True,
                             steps=({"answer": "pace", "gap_ms": PACE_GAP_MS},), measured={"gap_ms": PACE_GAP_MS}),
    "retry_then_success": Scenario("openai_gateway", CHAT, _chat, ("upstream_retry_attempts",),
                                   steps=({"answer": "error", "status": 503, "times": 2}, {"answer": "pass"})),
    "credits_charge": Scenario("credits_api", TTS, _tts, ("upstream_single_charge", "upstream_defaults_kept"),
                               protocol="credits"),  # voice left out (004: default Wise_Woman)
    "cogvideox_defaults": Scenario("credits_api", COGVIDEOX, _cogvideox, ("upstream_defaults_kept",),
                                   protocol="credits"),
}

PAIRS = [(scenario, REGISTRY[name], SCENARIOS[scenario].api, SCENARIOS[scenario].operation.operation_id)
         for scenario in SCENARIOS for name in SCENARIOS[scenario].checks]


@pytest.fixture(scope="session")
def upstream_control(target: Target) -> Iterator[UpstreamControl]:
    """The control API of the gateway's upstream mock."""
    if target.upstream is None:
        pytest.skip("the target file has no upstream section")
    control = UpstreamControl(target.upstream)
    yield control
    control.close()


@pytest.fixture(scope="session")
def relays() -> dict[str, Relay]:
    """Relays already made, by scenario id: each scenario's request is sent once per run."""
    return {}


def run_scenario(name: str, client: TargetClient, target: Target, control: UpstreamControl) -> Relay:
    """Send scenario ``name`` through the gateway and read what reached the upstream."""
    scenario = SCENARIOS[name]
    assert target.upstream is not None
    nonce = new_nonce()
    body = scenario.body(target, nonce)
    relay = Relay(name, nonce, body, target.upstream, steps=scenario.steps,
                  measured={"protocol": scenario.protocol, **scenario.measured})
    script = control.script(nonce, scenario.steps, scenario.script_operation) if scenario.steps else None
    headers = correlation_headers(nonce)
    try:
        if scenario.stream:
            relay.stream = client.stream("POST", scenario.operation.path, json_body=body, auth=scenario.auth,
                                         headers=headers)
            relay.answer = relay.stream.exchange
        else:
            relay.answer = client.request("POST", scenario.operation.path, json_body=body, auth=scenario.auth,
                                          headers=headers, honour_429=not scenario.steps)
    except TargetError as error:
        relay.failure, relay.unanswered = error.received, error.evidence
    finally:
        if script is not None:
            control.drop_script(script)
    relay.arrived = control.journal(nonce) or control.journal(nonce, by="request_id", patience_s=0)
    for entry in relay.arrived:  # binary answers (audio): their bytes, for the media checks
        kept = entry.get("response", {}).get("body_kept") and entry["response"].get("body") is None
        if kept and 200 <= int(entry["response"].get("status") or 0) < 300:
            relay.upstream_bodies[int(entry["id"])] = control.response_body(int(entry["id"]))
    if scenario.operation is I2V and relay.answer is not None and relay.answer.status == 200:
        follow_video_job(relay, client, control)
    relay.measured["request_id_forwarded"] = any(entry.get("request_id") == nonce for entry in relay.arrived)
    return relay


def follow_video_job(relay: Relay, client: TargetClient, control: UpstreamControl) -> None:
    """Poll the video job through the gateway until it completes (at most the target's ``job_timeout_s``), then
    download its ``video_url`` through the gateway; the upstream's own record of the job comes from its
    journal (the gateway's polls reach it). Results go in ``relay.measured``."""
    usage_id = str((relay.answer.json() if relay.answer else {}).get("usage_id", ""))
    path = USAGE_RECORD.path.replace("{usage_id}", usage_id)
    deadline = time.monotonic() + client.target.job_timeout_s
    record: Any = None
    while usage_id and time.monotonic() < deadline:
        record = client.request("GET", path).json()
        if not isinstance(record, dict) or record.get("status") in ("completed", "failed"):
            break
        time.sleep(0.5)
    relay.measured["video_record"] = record
    url = record.get("video_url") if isinstance(record, dict) else None
    if isinstance(url, str):
        download = client.request("GET", url, auth="bearer")
        relay.measured["video_status"] = download.status
        relay.upstream_bodies[-1] = download.body  # the client's copy, judged by upstream_video_delivered
    polls = [e for e in control.journal_of("getMultimodalUsage") if str(e.get("path", "")).endswith(usage_id)]
    done = [e["response"]["body"] for e in polls if isinstance(e.get("response", {}).get("body"), dict)
            and e["response"]["body"].get("status") == "completed"]
    relay.measured["upstream_video_record"] = done[-1] if done else None


pytestmark = pytest.mark.capability("upstream", source="001 Provider routing; 002 Safety; 001/004 Errors")


@pytest.mark.parametrize(("scenario", "check", "api", "operation_id"), PAIRS,
                         ids=[f"{s}-{c.name}" for s, c, _, _ in PAIRS])
def test_upstream(scenario: str, check: Check, api: str, operation_id: str, client: TargetClient, target: Target,
                  upstream_control: UpstreamControl, relays: dict[str, Relay], request: pytest.FixtureRequest) -> None:
    if scenario not in relays:
        relays[scenario] = run_scenario(scenario, client, target, upstream_control)
    relay = relays[scenario]
    spec = SCENARIOS[scenario]
    if spec.script_operation and relay.arrived and relay.arrived[0].get("operation_id") != spec.script_operation:
        pytest.skip(f"the gateway bridges {operation_id} to {relay.arrived[0].get('operation_id')}: "
                    f"the scripted failure is {spec.script_operation}'s")
    try:
        check(relay, spec.operation)
    finally:
        request.node.user_properties.append(("upstream", relay.view()))
