"""Deliberately broken targets: the mock with one contract rule broken on the way out.

Each is an ASGI wrapper around the mock that rewrites whole responses (buffered, which is fine
for the short answers the suite asks for). Used to prove that the suite catches each break.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from conformance import media
from conformance.embedded import embedded_app

#: (status, headers, body) -> (status, headers, body); header names are lower-case bytes.
Headers = list[tuple[bytes, bytes]]
Rewrite = Callable[[int, Headers, bytes], tuple[int, Headers, bytes]]


class Rewriting:
    """ASGI middleware that buffers each HTTP response and passes it through ``rewrite``."""

    def __init__(self, app: Any, rewrite: Rewrite) -> None:
        self.app = app
        self.rewrite = rewrite

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] = {}
        body = bytearray()

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            elif message["type"] == "http.response.body":
                body.extend(message.get("body", b""))
                if not message.get("more_body"):
                    headers = [(k.lower(), v) for k, v in start["headers"] if k.lower() != b"content-length"]
                    status, headers, new_body = self.rewrite(start["status"], headers, bytes(body))
                    headers.append((b"content-length", str(len(new_body)).encode()))
                    await send({"type": "http.response.start", "status": status, "headers": headers})
                    await send({"type": "http.response.body", "body": new_body})

        await self.app(scope, receive, capture)


def _ctype(headers: Headers) -> str:
    return dict(headers).get(b"content-type", b"").decode()


def _json_rewrite(change: Callable[[int, Any], tuple[int, Any]]) -> Rewrite:
    def rewrite(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        if not _ctype(headers).startswith("application/json"):
            return status, headers, body
        new_status, data = change(status, json.loads(body))
        return new_status, headers, json.dumps(data).encode()

    return rewrite


def _sse_rewrite(change: Callable[[bytes], bytes]) -> Rewrite:
    def rewrite(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
        return status, headers, change(body) if _ctype(headers).startswith("text/event-stream") else body

    return rewrite


def _drop_usage(status: int, data: Any) -> tuple[int, Any]:
    if isinstance(data, dict) and data.get("object") == "chat.completion":
        data.pop("usage", None)
    return status, data


def _flat_error(status: int, data: Any) -> tuple[int, Any]:
    if isinstance(data, dict) and "error" in data:
        return status, {"message": data["error"]["message"], "code": status}
    return status, data


def _wrong_error_type(status: int, data: Any) -> tuple[int, Any]:
    if status == 400 and isinstance(data, dict) and isinstance(data.get("error"), dict):
        data["error"]["type"] = "bad_request"
    return status, data


def _401_as_400(status: int, data: Any) -> tuple[int, Any]:
    if status == 401:
        data["error"]["type"] = "invalid_request_error"
        return 400, data
    return status, data


def _scope_ignored(status: int, data: Any) -> tuple[int, Any]:
    """A gateway that maps a missing scope to 401, as if the key were unknown (001: 403 permission_error)."""
    if status == 403 and isinstance(data, dict) and "scope" in str(data.get("error", {}).get("message", "")):
        data["error"]["type"] = "authentication_error"
        return 401, data
    return status, data


def _corrupt_chat_image(status: int, data: Any) -> tuple[int, Any]:
    for choice in data.get("choices", []) if isinstance(data, dict) else []:
        for image in choice["message"].get("images", []):
            image["image_url"]["url"] = "data:image/png;base64,iVBORw0KGgoAAAAN" + "A" * 40
    return status, data


def _corrupt_b64_json(status: int, data: Any) -> tuple[int, Any]:
    for item in data.get("data", []) if isinstance(data, dict) else []:
        if isinstance(item, dict) and "b64_json" in item:
            item["b64_json"] = "iVBORw0KGgoAAAANSUhEUgAA" + "A" * 64
    return status, data


def _images_wrong_size(status: int, data: Any) -> tuple[int, Any]:
    for item in data.get("data", []) if isinstance(data, dict) else []:
        if isinstance(item, dict) and "b64_json" in item:
            item["b64_json"] = base64.b64encode(media.png(64, 48, (30, 120, 200, 255))).decode()
    return status, data


def _transparency_dropped(status: int, data: Any) -> tuple[int, Any]:
    """A gateway that re-encodes images without their alpha channel (say, to save bytes)."""
    for item in data.get("data", []) if isinstance(data, dict) else []:
        if isinstance(item, dict) and "b64_json" in item:
            decoded = media.image(base64.b64decode(item["b64_json"]))
            item["b64_json"] = base64.b64encode(media.png(decoded.width, decoded.height, (200, 80, 40, 255))).decode()
    return status, data


def _dead_image_url(status: int, data: Any) -> tuple[int, Any]:
    for item in data.get("data", []) if isinstance(data, dict) else []:
        if isinstance(item, dict) and "url" in item:
            item["url"] = re.sub(r"/hosted/[^/]+$", "/hosted/gone.png", item["url"])
    return status, data


def _loosen_structured(change: Callable[[Any], Any]) -> Callable[[int, Any], tuple[int, Any]]:
    """A gateway that answers structured output with JSON of the right shape that ignores one keyword:
    ``change`` rewrites each chat choice's parsed ``message.content`` (left alone when it is not JSON)."""
    def rewrite(status: int, data: Any) -> tuple[int, Any]:
        for choice in data.get("choices", []) if isinstance(data, dict) else []:
            message = choice.get("message") or {}
            try:
                content = json.loads(message.get("content") or "")
            except ValueError:
                continue
            message["content"] = json.dumps(change(content))
        return status, data

    return rewrite


def _each(value: Any, leaf: Callable[[Any], Any], array: Callable[[list[Any]], list[Any]] = list) -> Any:
    """``value`` rebuilt with ``leaf`` applied to each scalar and ``array`` to each (rebuilt) list."""
    if isinstance(value, dict):
        return {key: _each(item, leaf, array) for key, item in value.items()}
    if isinstance(value, list):
        return array([_each(item, leaf, array) for item in value])
    return leaf(value)


def _credits_stuck(status: int, data: Any) -> tuple[int, Any]:
    if isinstance(data, dict) and "credits_remaining" in data:
        data["credits_remaining"] = 5_000
    return status, data


def _video_job_fails(status: int, data: Any) -> tuple[int, Any]:
    if isinstance(data, dict) and data.get("status") == "completed" and "endpoint_type" in data:
        data["status"] = "failed"
    return status, data


def _no_retry_after_on_500(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
    return status, [(k, v) for k, v in headers if status != 500 or k != b"retry-after"], body


def _html_error_pages(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
    if status >= 400:
        headers = [(k, b"text/html" if k == b"content-type" else v) for k, v in headers]
        return status, headers, b"<html><body><h1>Error</h1></body></html>"
    return status, headers, body


class Hanging:
    """ASGI wrapper whose answers to GET ``path`` take ``delay_s`` s (a target that times out)."""

    def __init__(self, app: Any, path: str, delay_s: float) -> None:
        self.app, self.path, self.delay_s = app, path, delay_s

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"] == self.path:
            await asyncio.sleep(self.delay_s)
        await self.app(scope, receive, send)


def _new_id_per_chunk(body: bytes) -> bytes:
    counter = iter(range(10**6))
    return re.sub(rb'"id":"chatcmpl-[0-9a-f]+"', lambda m: b'"id":"chatcmpl-%d"' % next(counter), body)


def _no_usage_chunk(body: bytes) -> bytes:
    return re.sub(rb'data: \{[^\n]*"choices":\[\][^\n]*\n\n', b"", body)


def _no_message_stop(body: bytes) -> bytes:
    return re.sub(rb"event: message_stop\ndata: [^\n]*\n\n", b"", body)


def _sequence_restarts(body: bytes) -> bytes:
    counter = iter(range(10**6))
    return re.sub(rb'"sequence_number":\d+', lambda m: b'"sequence_number":%d' % (next(counter) % 3), body)


#: How long the buffering target holds a stream back, in s (past the suite's 1 s of evidence).
HELD_S = 1.3


def _held_back(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
    """A gateway that waits for the whole upstream stream and sends it in one piece (blocking this test
    server's loop while it waits: the suite sends one request at a time)."""
    if _ctype(headers).startswith("text/event-stream"):
        time.sleep(HELD_S)
    return status, headers, body


def _429_without_retry_after(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
    return status, [(k, v) for k, v in headers if k != b"retry-after"], body


def _text_transcript_as_json(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
    if status == 200 and _ctype(headers).startswith("text/plain"):
        headers = [(k, b"application/json" if k == b"content-type" else v) for k, v in headers]
        return status, headers, json.dumps({"text": body.decode()}).encode()
    return status, headers, body


def _speech_as_octets(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
    if _ctype(headers).startswith("audio/"):
        headers = [(k, b"application/octet-stream" if k == b"content-type" else v) for k, v in headers]
    return status, headers, body


def _413_as_400(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
    return (400 if status == 413 else status), headers, body


def _messages_404_in_openai_envelope(status: int, data: Any) -> tuple[int, Any]:
    if status in (404, 405) and isinstance(data, dict) and data.get("type") == "error":
        return status, {"error": data["error"]}
    return status, data


def _retrieved_model_renamed(status: int, data: Any) -> tuple[int, Any]:
    if isinstance(data, dict) and data.get("object") == "model":
        data["id"] = "some-other-model"
    return status, data


def _spend_limit_as_429(status: int, data: Any) -> tuple[int, Any]:
    """A gateway that answers an exhausted spend limit as a rate limit (001: 402 billing_error)."""
    error = data.get("error") if isinstance(data, dict) else None
    if status == 402 and isinstance(error, dict) and error.get("code") == "spend_limit_reached":
        error["type"] = "rate_limit_error"
        return 429, data
    return status, data


def _safety_reason_hidden(status: int, data: Any) -> tuple[int, Any]:
    """A gateway that passes the content filter's 400 on without its reason (002 "Safety")."""
    error = data.get("error") if isinstance(data, dict) else None
    if status == 400 and isinstance(error, dict) and error.get("code") == "content_policy_violation":
        error["message"] = "Bad request"
    return status, data


def _chat_limit_as_503(status: int, data: Any) -> tuple[int, Any]:
    """A gateway that reports its own chat RPM/TPM refusals as an upstream failure (001: 429 rate_limit_error)."""
    error = data.get("error") if isinstance(data, dict) else None
    if status == 429 and isinstance(error, dict) and "createChatCompletion" in str(error.get("message")):
        error["type"] = "upstream_error"
        return 503, data
    return status, data


def _image_limit_not_enforced(status: int, data: Any) -> tuple[int, Any]:
    """A gateway that does not hold the credits API's image endpoint to its 5/min (004)."""
    error = data.get("error") if isinstance(data, dict) else None
    if status == 429 and isinstance(error, dict) and "createMultimodalImage" in str(error.get("message")):
        return 200, {"image_base64": base64.b64encode(media.png(8, 8, (0, 0, 0, 255))).decode(), "format": "png",
                     "width": 512, "height": 512, "credits_used": 50}
    return status, data


def _retry_after_too_short(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
    """A gateway whose Retry-After says 0 s however long its window still holds the client out."""
    if status == 429:
        headers = [(k, b"0" if k == b"retry-after" else v) for k, v in headers]
    return status, headers, body


def _sora2_priced_as_wan22(status: int, data: Any) -> tuple[int, Any]:
    """A gateway that serves sora2 requests with wan22 (400 credits, 5 s) (004 provider table)."""
    if isinstance(data, dict) and "video_url" in data and data.get("credits_used") == 800:
        data.update(credits_used=400, duration_seconds=5.0)
    return status, data


def _sora2_tier_as_402(status: int, data: Any) -> tuple[int, Any]:
    """A gateway that answers sora2 on a standard key with 402 "upgrade" instead of 403 (004 "(premium)")."""
    error = data.get("error") if isinstance(data, dict) else None
    if status == 403 and isinstance(error, dict) and "sora2" in str(error.get("message")):
        error["type"] = "billing_error"
        return 402, data
    return status, data


class ChargingRefusals:
    """The mock, charging a TTS request it refuses with 429 as if it had been served (14 credits, 004):
    a gateway that bills before it rate-limits."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != "/api/v1/multimodal/tts":
            await self.app(scope, receive, send)
            return
        key = dict(scope["headers"]).get(b"authorization", b"").decode().removeprefix("Bearer ")

        async def charging(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] == 429:
                self.app.state.services.ledger.charge(key, "tts", 14, {"format": "mp3"})
            await send(message)

        await self.app(scope, receive, charging)


class I2VLimitOfThree:
    """The mock, letting one I2V request past 004's 2 a minute through (a gateway whose limit is 3 a minute):
    the first 429 of /api/v1/multimodal/video/i2v is answered 200 as a started wan22 job. Caught only by a
    burst sent on a window nothing else used: one sent after the premium providers' jobs took two of its
    calls would see 1 admitted, then a 429, and pass."""

    PATH = "/api/v1/multimodal/video/i2v"

    def __init__(self, app: Any) -> None:
        self.app = app
        self.let_through = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.PATH or self.let_through:
            await self.app(scope, receive, send)
            return
        refused = False

        async def admitting(message: dict[str, Any]) -> None:
            nonlocal refused
            if message["type"] == "http.response.start" and message["status"] == 429:
                refused = self.let_through = True
            if not refused:
                await send(message)
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                body = json.dumps({"usage_id": "let-through", "status": "queued", "credits_used": 400,
                                   "format": "mp4", "credits_remaining": 1000}).encode()
                await send({"type": "http.response.start", "status": 200, "headers": [
                    (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})

        await self.app(scope, receive, admitting)


def _errors_as(status: int, content_type: bytes, body: bytes | None) -> Rewrite:
    """A gateway that answers every error (4xx, 5xx) with ``status``, ``content_type`` and ``body`` (None:
    the error's own body): a portal page, a 200 wrapping the error, bytes that are no JSON."""
    def rewrite(old: int, headers: Headers, old_body: bytes) -> tuple[int, Headers, bytes]:
        if old < 400:
            return old, headers, old_body
        kept = [(k, v) for k, v in headers if k not in (b"content-type", b"retry-after")]
        return status, [*kept, (b"content-type", content_type)], old_body if body is None else body

    return rewrite


#: Gateways that answer what must be refused as if it were fine (issue 14, no false pass): every check that
#: expects an error must fail against each, whatever the body.
ERRORS_ANSWERED_WRONG: dict[str, Rewrite] = {
    "errors_as_200": _errors_as(200, b"application/json", None),
    "errors_as_html_page": _errors_as(200, b"text/html; charset=utf-8",
                                      b"<!doctype html><html><body><h1>Sign in</h1><form></form></body></html>"),
    "errors_as_garbage": _errors_as(200, b"application/json", b"\x00\xff{not json at all]]\x1b"),
}


@dataclass(frozen=True)
class Broken:
    """One broken rule: the rewrite, the check that must report it, and the suite phases to run."""

    rewrite: Rewrite
    check: str
    phases: str = "golden,behavioural"
    select: str = ""
    """A ``-k`` expression narrowing the run to the checks that matter (keeps the proof quick)."""
    wrap: Callable[[Any], Any] | None = None
    """An ASGI wrapper of the mock that breaks the rule on the way in (the request), if any."""
    alone: bool = False
    """Whether ``check`` must be the only check that fails (the break touches no other rule)."""


class RequestRewriting:
    """ASGI middleware that reads each JSON request body to ``path`` (chat by default) and passes it through
    ``change``, which returns the body to forward, or ``(status, body)`` to answer at once instead (a
    gateway's refusal)."""

    def __init__(self, app: Any, change: Callable[[Any], Any], path: str = "/v1/chat/completions") -> None:
        self.app = app
        self.change = change
        self.path = path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        raw = bytearray()
        while True:
            message = await receive()
            raw.extend(message.get("body", b""))
            if not message.get("more_body"):
                break
        changed = self.change(json.loads(raw or b"{}"))
        if isinstance(changed, tuple):
            status, answer = changed
            data = json.dumps(answer).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(data))]})
            await send({"type": "http.response.body", "body": data})
            return
        fixed = json.dumps(changed).encode()
        headers = [(k, v) for k, v in scope["headers"] if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(fixed)).encode()))
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": fixed, "more_body": False}

        await self.app({**scope, "headers": headers}, replay, send)


def _repair_audio(body: Any) -> Any:
    """A gateway that "repairs" an ``input_audio`` part's base64 (drops line breaks and a ``data:`` prefix)
    instead of refusing it, then forwards the request (003 "Tips" says the base64 must have neither)."""
    for message in body.get("messages", []) if isinstance(body, dict) else []:
        for part in message.get("content", []) if isinstance(message.get("content"), list) else []:
            audio = part.get("input_audio") if isinstance(part, dict) else None
            if isinstance(audio, dict) and isinstance(audio.get("data"), str):
                audio["data"] = re.sub(r"\s|^data:[^,]*,", "", audio["data"])
    return body


def _unchanged(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
    return status, headers, body


def _refuse_tool_results(body: Any) -> Any:
    """A gateway whose translation has no place for ``tool`` messages: it refuses the tool-result turn."""
    messages = body.get("messages", []) if isinstance(body, dict) else []
    for index, message in enumerate(messages):
        if isinstance(message, dict) and message.get("role") == "tool":
            return 400, {"error": {"type": "invalid_request_error", "param": f"messages[{index}].role",
                                   "message": f"messages[{index}].role: 'tool' is not supported"}}
    return body


BROKEN: dict[str, Broken] = {
    "drops_usage": Broken(_json_rewrite(_drop_usage), "response_schema_conformance", "property",
                          "positive_cases_openai_gateway"),
    "no_done": Broken(_sse_rewrite(lambda body: body.replace(b"data: [DONE]\n\n", b"")), "stream_ends_with_done"),
    "no_include_usage_chunk": Broken(_sse_rewrite(_no_usage_chunk), "stream_include_usage"),
    "chunk_ids_change": Broken(_sse_rewrite(_new_id_per_chunk), "stream_ids_consistent"),
    "flat_error_envelope": Broken(_json_rewrite(_flat_error), "error_envelope_conformance"),
    "wrong_error_type": Broken(_json_rewrite(_wrong_error_type), "error_envelope_conformance"),
    "401_as_400": Broken(_json_rewrite(_401_as_400), "missing_key_rejected"),
    "429_without_retry_after": Broken(_429_without_retry_after, "rate_limit_enforced"),
    "corrupt_chat_image": Broken(_json_rewrite(_corrupt_chat_image), "golden_fixture"),
    "corrupt_b64_json_image": Broken(_json_rewrite(_corrupt_b64_json), "image_b64_json_decodes"),
    "images_wrong_size": Broken(_json_rewrite(_images_wrong_size), "image_b64_json_decodes", "behavioural",
                                "image_b64"),
    "transparency_dropped": Broken(_json_rewrite(_transparency_dropped), "image_transparent_background",
                                   "behavioural", "transparent"),
    "tolerates_malformed_audio_base64": Broken(_unchanged,
                                               "malformed_audio_base64_refused", "behavioural", "malformed",
                                               wrap=lambda app: RequestRewriting(app, _repair_audio)),
    "refuses_tool_results": Broken(_unchanged, "tool_result_turn_answered", "behavioural", "tool_loop",
                                   wrap=lambda app: RequestRewriting(app, _refuse_tool_results)),
    "missing_scope_as_401": Broken(_json_rewrite(_scope_ignored), "documented_error_status", "behavioural",
                                   "scope"),
    "dead_image_url": Broken(_json_rewrite(_dead_image_url), "image_url_downloads"),
    "text_transcript_as_json": Broken(_text_transcript_as_json, "transcript_format_conforms"),
    "speech_as_octet_stream": Broken(_speech_as_octets, "speech_audio_decodes"),
    "upload_limit_not_413": Broken(_413_as_400, "upload_over_limit_is_413"),
    "credits_do_not_fall": Broken(_json_rewrite(_credits_stuck), "credits_fall_by_cost"),
    "video_job_never_completes": Broken(_json_rewrite(_video_job_fails), "video_job_completes"),
    "gpu_error_without_retry_after": Broken(_no_retry_after_on_500, "documented_error_status"),
    "messages_stream_without_message_stop": Broken(_sse_rewrite(_no_message_stop), "messages_stream_message_framing",
                                                   "behavioural", "test_stream and messages"),
    "responses_sequence_restarts": Broken(_sse_rewrite(_sequence_restarts), "responses_stream_sequence_numbers",
                                          "behavioural", "test_stream and responses"),
    "streams_held_back": Broken(_held_back, "stream_delivered_incrementally", "behavioural",
                                "test_stream and stream_delivered_incrementally"),
    "html_error_pages": Broken(_html_error_pages, "error_envelope_conformance"),
    "messages_404_in_openai_envelope": Broken(_json_rewrite(_messages_404_in_openai_envelope),
                                              "unknown_path_in_protocol_envelope", select="unknown_messages_path"),
    # structured output that ignores multipleOf (each integer one more: district populations are multiples of
    # 100), or pattern (upper case letters lowered: "^[A-Z]{2}$" country codes, "^D-[0-9]{2}$" district codes)
    "structured_output_ignores_multiple_of": Broken(
        _json_rewrite(_loosen_structured(lambda v: _each(
            v, lambda x: x + 1 if isinstance(x, int) and not isinstance(x, bool) else x))),
        "structured_output_honours_schema", "golden", "structured_output"),
    "structured_output_ignores_pattern": Broken(
        _json_rewrite(_loosen_structured(lambda v: _each(v, lambda x: x.lower() if isinstance(x, str) else x))),
        "structured_output_honours_schema", "golden", "structured_output"),
    "retrieved_model_renamed": Broken(_json_rewrite(_retrieved_model_renamed), "sdk_models_retrieve",
                                      select="retrieve"),
    "spend_limit_as_429": Broken(_json_rewrite(_spend_limit_as_429), "gateway_billing_error_402", "behavioural",
                                 "error_statuses", alone=True),
    "safety_reason_hidden": Broken(_json_rewrite(_safety_reason_hidden), "safety_rejection_reported", "behavioural",
                                   "error_statuses", alone=True),
    "chat_limit_as_503": Broken(_json_rewrite(_chat_limit_as_503), "gateway_rate_limit_429", "behavioural",
                                "test_rate_limits", alone=True),
    "image_limit_not_enforced": Broken(_json_rewrite(_image_limit_not_enforced), "credits_rate_limits_enforced",
                                       "behavioural", "test_rate_limits", alone=True),
    "retry_after_too_short": Broken(_retry_after_too_short, "retry_after_admitted", "behavioural", "test_rate_limits",
                                    alone=True),
    "sora2_priced_as_wan22": Broken(_json_rewrite(_sora2_priced_as_wan22), "video_provider_cost_and_duration",
                                    "behavioural", "video", alone=True),
    "sora2_tier_as_402": Broken(_json_rewrite(_sora2_tier_as_402), "sora2_premium_only", "behavioural", "sora2",
                                alone=True),
    "charges_refused_requests": Broken(_unchanged, "credits_reconcile_over_run", "behavioural", "credits_behaviour",
                                       wrap=ChargingRefusals, alone=True),
    # the I2V burst with the premium providers' jobs it starts (their tests selected too: one window, one burst)
    "i2v_limit_of_three": Broken(_unchanged, "credits_rate_limits_enforced", "behavioural",
                                 "video_provider_facts or test_credits_endpoint_limit", wrap=I2VLimitOfThree,
                                 alone=True),
}


def broken_app(name: str) -> Any:
    """The mock, configured as ``--target mock`` serves it, wrapped so that it breaks rule ``name``."""
    broken = BROKEN[name]
    app = embedded_app()
    return Rewriting(broken.wrap(app) if broken.wrap else app, broken.rewrite)



def slow_models_app(delay_s: float) -> Any:
    """The mock whose GET /v1/models answers only after ``delay_s`` s."""
    return Hanging(embedded_app(), "/v1/models", delay_s)
