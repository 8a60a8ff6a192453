"""Report documents to render in tests: every outcome, every evidence kind, several targets.

The media evidence is made the way a run makes it: a real answer (a PNG of the wrong size, an MP3)
turned into evidence by ``Exchange.evidence()``, which decodes it.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from conformance import media
from conformance.http import Exchange
from conformance.report import Row, build
from conformance.target import Target

URL = "http://gw.example:8080"


def _image_failure() -> dict[str, Any]:
    picture = media.png(96, 64, (200, 40, 40, 255))
    body = json.dumps({"created": 1, "data": [{"b64_json": base64.b64encode(picture).decode()}]}).encode()
    exchange = Exchange("POST", f"{URL}/v1/images/generations", {"model": "gpt-image-1", "prompt": "a red square",
                                                                 "size": "1024x1024"},
                        200, {"content-type": "application/json"}, body)
    return {"check": "image_b64_json_decodes", "expected": "a 1024x1024 image", "received": "96x64",
            "evidence": exchange.evidence().as_dict()}


def _audio_failure() -> dict[str, Any]:
    exchange = Exchange("POST", f"{URL}/v1/audio/speech", {"model": "tts-1", "input": "hi", "response_format": "mp3"},
                        200, {"content-type": "application/octet-stream"}, media.mp3_tone(1.5))
    return {"check": "speech_audio_decodes", "expected": "200 audio/mpeg", "received": "200 application/octet-stream",
            "evidence": exchange.evidence().as_dict()}


def _stream_failure(received: str) -> dict[str, Any]:
    exchange = Exchange("POST", f"{URL}/v1/chat/completions",
                        {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "Hello"}]},
                        200, {"content-type": "text/event-stream"},
                        b'data: {"id":"chatcmpl-1","choices":[{"delta":{"content":"Hi"}}]}\n\n')
    return {"check": "stream_ends_with_done", "expected": "a final data: [DONE]", "received": received,
            "evidence": exchange.evidence().as_dict()}


RELAY = {"scenario": "developer_role", "nonce": "cnf-42", "sent": {"messages": [{"role": "developer", "content": "x"}]},
         "scripted": [], "arrived": [{"operation_id": "createChatCompletion", "path": "/v1/chat/completions",
                                      "status": 200, "script": None, "body": {"messages": [{"role": "system"}]}}],
         "client_status": 200, "measured": {"protocol": "chat", "first_byte_ms": 12.5}}


def sample_rows(variant: int = 0) -> list[Row]:
    """Rows of one run; ``variant`` 1 and 2 change some verdicts (for comparisons)."""
    stream_outcome = ("failed", "passed", "known_failure")[variant % 3]
    rows = [
        Row("test_golden[createChatCompletion/basic]", "golden_fixture", "openai_gateway", "chat.normalisation", "001",
            "passed", 0.01, phase="golden"),
        Row("test_stream_ends_with_done[plain]", "stream_ends_with_done", "openai_gateway", "chat.streaming", "001",
            stream_outcome, 0.2, _stream_failure("no [DONE] after 1 event") if stream_outcome != "passed" else None,
            phase="behavioural"),
        Row("test_stream_ends_with_done[usage]", "stream_ends_with_done", "openai_gateway", "chat.streaming", "001",
            "failed" if variant == 0 else "passed", 0.2,
            _stream_failure("<script>alert(1)</script> and a very long line " + "x" * 400) if variant == 0 else None,
            phase="behavioural"),
        Row("test_chat_input[image]", "chat_input_image_accepted", "openai_gateway", "chat.input.image", "003",
            "passed", 0.1, phase="behavioural"),
        Row("test_image_output[gemini]", "golden_fixture", "openai_gateway", "chat.image_output", "002", "passed", 0.3,
            phase="golden"),
        Row("test_images[b64_json]", "image_b64_json_decodes", "openai_gateway", "images.b64_json", "002",
            "failed" if variant != 1 else "passed", 0.4, _image_failure() if variant != 1 else None,
            phase="behavioural"),
        Row("test_speech[mp3]", "speech_audio_decodes", "openai_gateway", "audio.speech", "000", "failed", 0.3,
            _audio_failure(), phase="behavioural"),
        Row("test_speech[opus]", "speech_audio_decodes", "openai_gateway", "audio.speech", "000", "skipped", 0.0,
            phase="behavioural", reason="opus is excluded by the target file"),
        Row("test_responses[create]", "golden_fixture", "multi_protocol", "responses.create", "005", "passed", 0.1,
            phase="golden"),
        Row("test_messages[create]", "golden_fixture", "multi_protocol", "messages.create", "005",
            "passed" if variant != 2 else "failed", 0.1,
            None if variant != 2 else _stream_failure("an error envelope"), phase="golden"),
        Row("test_auth[missing_key]", "auth_required", "multi_protocol", "auth", "001", "passed", 0.01,
            phase="behavioural"),
        Row("test_errors[invalid]", "error_names_field", "openai_gateway", "errors.invalid_request", "001", "passed",
            0.01, phase="behavioural"),
        Row("test_rate_limit", "rate_limit_enforced", "credits_api", "rate_limits", "004", "not_claimed", 0.0,
            phase="behavioural", reason="not claimed: the target does not claim credits_api"),
        Row("test_credits[tts]", "credits_charged", "credits_api", "credits.tts", "004", "not_claimed", 0.0,
            phase="behavioural", reason="not claimed: the target does not claim credits_api"),
        Row("test_upstream[developer_role]", "upstream_developer_role_as_system", "openai_gateway",
            "upstream.request", "001", "passed", 0.2, phase="upstream", upstream=RELAY),
        Row("test_property[createChatCompletion]", "response_schema_conformance", "openai_gateway",
            "contract.positive", "spec", "passed", 1.0, phase="property"),
    ]
    if variant == 1:
        rows.append(Row("test_sdk[chat]", "sdk_chat", "all", "sdk.openai", "sdk", "passed", 0.5, phase="behavioural"))
    return rows


def sample_report(name: str = "acme-gateway", variant: int = 0) -> dict[str, Any]:
    """A report.json document of :func:`sample_rows`."""
    target = Target(name, URL, "sk-x", apis=frozenset({"openai_gateway", "multi_protocol"}))
    return json.loads(json.dumps(build(target, sample_rows(variant), "2026-12-02T00:00:00+00:00",
                                       "2026-12-02T00:01:00+00:00", 60.0), default=repr))
