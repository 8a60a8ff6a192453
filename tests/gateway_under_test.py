"""A gateway written for the project's tests: it sits in front of the mock (its upstream) in "upstream mode".

The suite talks to this gateway as a client; the gateway forwards to the mock; the suite then reads the
mock's request journal to check what the gateway sent upstream and compares the gateway's answers with
the mock's. :func:`gateway_app` builds the correct gateway (``breaks=None``), on which every upstream
check passes, or one of the :data:`BROKEN` variants, each of which breaks exactly one documented rule.

The rules, with the seed documents they come from (``/work/shared/seeds``):

- 000 "Same auth, same shape": every endpoint takes ``Authorization: Bearer``; 003 "Messages": the
  Messages protocol's ``x-api-key``. Clients authenticate with :data:`CLIENT_KEY`; the gateway swaps it for
  the upstream key (401 in the client's protocol envelope otherwise).
- 001 "Provider routing": "The model id you send determines which upstream provider handles the request.
  The gateway normalises differences (e.g. rewriting developer roles to system, aligning max_tokens vs
  max_completion_tokens)". Model ids map through :data:`MODEL_MAP`; chat ``developer`` messages become
  ``system``; ``max_completion_tokens`` is sent as ``max_tokens`` (one limit, the value kept).
- 002 "Safety": "The gateway does not silently rewrite prompts" and "Disallowed prompts return 400
  invalid_request_error with the rejection reason in error.message": prompts and content parts pass
  unchanged; an upstream 4xx passes through with its body.
- 003 "Tips": "Make sure the audio base64 string has no line breaks or extra prefix/suffix", data URLs and
  frame lists as the client sent them.
- 001 "Errors": 429 "Respect Retry-After"; 502 / 503 upstream_error "Downstream provider failure";
  004 "Error Codes": "500 GPU provider error — retry after 30s" (the credits API passes through unchanged).
- 001 Chat Completions: streams pass token by token (never buffered); a stream cut short ends with an
  error event, never a normal terminal event.
- 002 "Download URLs are short-lived" / 004 video_url: hosted media URLs of the upstream are re-hosted
  under the gateway's own ``/media/``.

Forwarded client headers: ``Content-Type``, ``Accept``, ``anthropic-version``, ``anthropic-beta``,
``X-Request-Id``, ``traceparent``, ``tracestate``. Never forwarded: the client's key, and test-mode
headers such as ``X-Mock-Fault`` (a real gateway would not pass them on).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import io
import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

#: The one key the gateway accepts from clients (Bearer, or ``x-api-key`` for ``/v1/messages``).
CLIENT_KEY = "gw-test"

#: Gateway model ids -> upstream model ids; other ids pass unchanged. Answers carry the gateway's id.
MODEL_MAP: Mapping[str, str] = {
    "acme-chat": "gpt-4o-mini",
    "acme-vision": "openai/gpt-5-mini",
    "acme-claude": "anthropic/claude-sonnet-4.6",
    "acme-image": "gpt-image-1",
    "acme-tts": "tts-1",
}

#: Broken variants: name -> the one rule it breaks.
BROKEN: dict[str, str] = {
    "keeps_developer_role": "chat: forwards developer messages unchanged (001 'rewriting developer roles to system')",
    "conflicting_max_tokens": "chat: forwards max_completion_tokens as given and adds max_tokens 4096 "
                              "(001 'aligning max_tokens vs max_completion_tokens')",
    "rewrites_prompt": "chat: appends ' Answer briefly.' to the last user text (002 'does not silently rewrite "
                       "prompts')",
    "rewrites_image_prompt": "images/generations: prefixes the prompt with 'High quality: ' (002 'does not "
                             "silently rewrite prompts')",
    "wrong_model": "routes acme-chat to text-only-mini (001 'The model id you send determines which upstream "
                   "provider handles the request')",
    "mangles_image_data_url": "chat: strips the 'data:...;base64,' prefix of image_url data URLs (003 "
                              "'a standard data:image/...;base64,... data URL')",
    "wraps_audio_base64": "chat: inserts a line break every 76 characters of input_audio.data (003 'no line "
                          "breaks or extra prefix/suffix')",
    "drops_video_frames": "chat: keeps only the first frame of a video part (003 'a video split into frames')",
    "messages_max_tokens_floor": "messages: raises max_tokens below 4096 to 4096 (003 Messages 'max_tokens')",
    "errors_as_200": "an upstream 5xx becomes a 200 chat.completion 'Sorry, something went wrong.' (001 'Errors')",
    "wrong_error_type": "an upstream 502/503/529 becomes 500 api_error in the OpenAI envelope (001 '502 / 503 "
                        "upstream_error')",
    "drops_retry_after": "drops Retry-After from every error answer (001 'Respect Retry-After', 004 'retry after "
                         "30s')",
    "hides_safety_reason": "an upstream 400 becomes 400 'Bad request.' (002 'with the rejection reason in "
                           "error.message')",
    "passes_malformed": "a non-JSON upstream body is returned as it is with status 200 (never a 200 for a failure)",
    "completes_cut_stream": "a cut or broken upstream stream gets the normal terminal event instead of an error "
                            "event",
    "buffers_stream": "reads the whole upstream stream before sending it in one piece (001 'token-by-token "
                      "delivery')",
    "changes_usage": "adds 7 to usage.prompt_tokens and usage.total_tokens of chat answers",
    "reencodes_image": "images/generations: re-encodes b64_json images at half width and height (PNG)",
    "breaks_rehosted_url": "rewrites hosted media URLs to /media/... but answers 404 there",
    "truncates_audio": "audio answers (speech) lose their second half on the way (000 'returns an audio file')",
    "double_charges": "sends every credits-API POST upstream twice and returns the second answer (004 credits)",
    "image_errors_unwrapped": "images/generations: an upstream 5xx becomes a bare 500 'Internal Server Error' in "
                              "text/plain (002 'Errors': 500 internal_server_error, 502 / 503 upstream_error)",
    "fills_own_defaults": "credits API: fills in its own voice 'Calm_Man' and guidance_scale 7.5 where the client "
                          "left them out (004: defaults Wise_Woman and 6.0)",
    "invents_revised_prompt": "images/generations: every image gets a revised_prompt 'Enhanced: ...' (the "
                              "provider's altered, or one invented) (002 'Safety': revised_prompt came from the "
                              "provider)",
}

#: Seconds of the upstream timeout (connect, read, write, pool).
UPSTREAM_TIMEOUT_S = 30.0
#: Most attempts of a retried request (the first and 2 retries), and the pause between them.
MAX_ATTEMPTS = 3
RETRY_PAUSE_S = 0.05
#: Upstream statuses that are retried (chat, messages, responses; non-streaming only).
RETRIED_STATUSES = frozenset({502, 503, 529})
#: Longest a stream is relayed, in s: past it the client gets an error event (every loop bounded).
STREAM_DEADLINE_S = 600.0

CHAT = "/v1/chat/completions"
MESSAGES = "/v1/messages"
RESPONSES = "/v1/responses"
IMAGES_GENERATIONS = "/v1/images/generations"
CREDITS_PREFIX = "/api/v1/"
#: Paths whose non-streaming upstream 502/503/529 is retried.
RETRIED_PATHS = frozenset({CHAT, MESSAGES, RESPONSES})
#: Paths whose successful answers are JSON whatever their content type says.
JSON_PATHS = frozenset({CHAT, MESSAGES, RESPONSES, IMAGES_GENERATIONS, "/v1/images/edits", "/v1/models"})
#: The terminal event of each streaming protocol: a stream without it was cut.
TERMINAL_MARKERS: Mapping[str, tuple[bytes, ...]] = {
    CHAT: (b"data: [DONE]",),
    MESSAGES: (b"event: message_stop",),
    RESPONSES: (b"response.completed", b"response.failed", b"response.incomplete"),
}
#: Client request headers forwarded upstream (lower case).
FORWARDED_REQUEST_HEADERS = ("content-type", "accept", "anthropic-version", "anthropic-beta", "x-request-id",
                             "traceparent", "tracestate")
#: Upstream answer headers passed to the client (lower case), besides every ``x-ratelimit-*``.
PASSED_ANSWER_HEADERS = ("retry-after", "x-request-id", "content-disposition")

_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]
_MALFORMED_MESSAGE = "upstream sent a malformed answer"


def gateway_app(upstream_url: str, upstream_key: str, breaks: str | None = None, *,
                transport: httpx.AsyncBaseTransport | None = None) -> Starlette:
    """The gateway as an ASGI app forwarding ``/v1/...`` and ``/api/v1/...`` to ``upstream_url`` with ``upstream_key``.

    ``breaks=None`` is the correct gateway; a name of :data:`BROKEN` is that broken variant (ValueError for
    an unknown name). ``transport`` replaces the network for in-process tests (e.g. ``httpx.MockTransport``).
    Routes: ``/v1/{path}`` and ``/api/v1/{path}`` (forwarded), ``GET /media/{path}`` (re-hosted media).
    """
    if breaks is not None and breaks not in BROKEN:
        raise ValueError(f"unknown broken variant {breaks!r}: use one of {', '.join(sorted(BROKEN))}")
    gateway = _Gateway(upstream_url.rstrip("/"), upstream_key, breaks, transport)
    return Starlette(routes=[
        Route("/media/{path:path}", gateway.media, methods=["GET"]),
        Route("/v1/{path:path}", gateway.proxy, methods=_METHODS),
        Route("/api/v1/{path:path}", gateway.proxy, methods=_METHODS),
    ])


def _protocol(path: str) -> str:
    """The client's protocol by path: ``messages`` (003 Messages envelope), ``credits`` (004) or ``openai``."""
    if path == MESSAGES or path.startswith(MESSAGES + "/"):
        return "messages"
    if path.startswith(CREDITS_PREFIX):
        return "credits"
    return "openai"


def _dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def error_response(protocol: str, status: int, error_type: str, message: str, code: str | None = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    """An error answer in the client's envelope: 001 "Errors" ``{"error": {type, message, param, code}}``, or
    for Messages clients ``{"type": "error", "error": {type, message}}``."""
    if protocol == "messages":
        body: dict[str, Any] = {"type": "error", "error": {"type": error_type, "message": message}}
    else:
        body = {"error": {"type": error_type, "message": message, "param": None, "code": code}}
    return Response(_dumps(body), status_code=status, headers=dict(headers or {}), media_type="application/json")


def _passed_headers(headers: httpx.Headers) -> dict[str, str]:
    """The upstream answer headers the client sees: Retry-After, x-ratelimit-*, X-Request-Id, Content-Disposition."""
    return {name: value for name, value in headers.items()
            if name.lower() in PASSED_ANSWER_HEADERS or name.lower().startswith("x-ratelimit-")}


def _error_message(content: bytes) -> str | None:
    """``error.message`` of an upstream error body in either envelope, or None."""
    try:
        body = json.loads(content)
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    return message if isinstance(message, str) else None


def _sorry_completion(model: str | None) -> dict[str, Any]:
    """The ``errors_as_200`` variant's valid-looking chat completion."""
    return {"id": "chatcmpl-gateway-sorry", "object": "chat.completion", "created": int(time.time()),
            "model": model or "unknown",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "Sorry, something went wrong."}}],
            "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}}


def _half_size_png(b64: str) -> str:
    """The ``reencodes_image`` variant: the image decoded, halved in width and height, PNG, base64 again."""
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(b64))) as image:
        smaller = image.resize((max(1, image.width // 2), max(1, image.height // 2)))
    out = io.BytesIO()
    smaller.save(out, format="PNG")
    return base64.b64encode(out.getvalue()).decode("ascii")


def _stream_error_event(path: str, message: str) -> bytes:
    """The error event a cut stream ends with, in the client's streaming protocol."""
    if path == MESSAGES:
        data = {"type": "error", "error": {"type": "api_error", "message": message}}
        return b"event: error\ndata: " + _dumps(data) + b"\n\n"
    if path == RESPONSES:
        data = {"type": "error", "code": "upstream_error", "message": message}
        return b"event: error\ndata: " + _dumps(data) + b"\n\n"
    return b"data: " + _dumps({"error": {"type": "upstream_error", "message": message}}) + b"\n\n"


def _terminal_event(path: str) -> bytes:
    """The protocol's normal terminal event (what the ``completes_cut_stream`` variant wrongly appends)."""
    if path == MESSAGES:
        return b'event: message_stop\ndata: {"type": "message_stop"}\n\n'
    if path == RESPONSES:
        response = {"id": "resp_gateway", "object": "response", "status": "completed", "output": []}
        return b"event: response.completed\ndata: " + _dumps({"type": "response.completed",
                                                                "response": response}) + b"\n\n"
    return b"data: [DONE]\n\n"


class _Gateway:
    """State of one gateway app: the upstream, its key, the variant and one lazily made httpx client."""

    def __init__(self, upstream: str, upstream_key: str, breaks: str | None,
                 transport: httpx.AsyncBaseTransport | None) -> None:
        self.upstream = upstream
        self.upstream_key = upstream_key
        self.breaks = breaks
        self.transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def client(self) -> httpx.AsyncClient:
        """The app's one httpx client, made on first use (``conformance.embedded.serve`` runs no lifespan);
        a new one if the app is served on another event loop than before."""
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            # No idle keep-alive connections: the app has no shutdown hook to close them (lifespan off), and
            # an open socket left on the server's event loop makes closing that loop fail (uvloop: EBUSY).
            self._client = httpx.AsyncClient(timeout=UPSTREAM_TIMEOUT_S, transport=self.transport,
                                             limits=httpx.Limits(max_keepalive_connections=0),
                                             follow_redirects=False)
            self._loop = loop
        return self._client

    # -- requests ---------------------------------------------------------------------------------------

    @staticmethod
    def authorized(request: Request, protocol: str) -> bool:
        """000 "Same auth, same shape": ``Authorization: Bearer``; 003 Messages: also ``x-api-key``."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and token.strip() == CLIENT_KEY:
            return True
        return protocol == "messages" and request.headers.get("x-api-key") == CLIENT_KEY

    def upstream_headers(self, request: Request, protocol: str) -> dict[str, str]:
        """The forwarded headers (module docstring) and the upstream key: ``x-api-key`` for Messages, else Bearer."""
        headers = {name: request.headers[name] for name in FORWARDED_REQUEST_HEADERS if name in request.headers}
        headers["accept-encoding"] = "identity"  # raw chunks are relayed as they are
        if protocol == "messages":
            headers["x-api-key"] = self.upstream_key
        else:
            headers["authorization"] = f"Bearer {self.upstream_key}"
        return headers

    def map_model(self, model: str) -> str:
        """001 "Provider routing": the upstream id of a gateway model id (:data:`MODEL_MAP`; others unchanged)."""
        if self.breaks == "wrong_model" and model == "acme-chat":
            return "text-only-mini"
        return MODEL_MAP.get(model, model)

    def translate(self, path: str, body: dict[str, Any]) -> None:
        """The request translations, in place: the model id on every JSON body; chat normalisation (001);
        everything else (prompts, content parts, Messages and Responses bodies) as sent (002 "Safety")."""
        if isinstance(body.get("model"), str):
            body["model"] = self.map_model(body["model"])
        if path == CHAT:
            self.translate_chat(body)
        elif path == IMAGES_GENERATIONS and self.breaks == "rewrites_image_prompt" \
                and isinstance(body.get("prompt"), str):
            body["prompt"] = "High quality: " + body["prompt"]
        elif path.startswith(CREDITS_PREFIX) and self.breaks == "fills_own_defaults":
            own = {"/tts": ("voice", "Calm_Man"), "/cogvideox": ("guidance_scale", 7.5)}
            for suffix, (name, value) in own.items():
                if path.endswith(suffix):
                    body.setdefault(name, value)
        elif path == MESSAGES and self.breaks == "messages_max_tokens_floor" \
                and isinstance(body.get("max_tokens"), int) and body["max_tokens"] < 4096:
            body["max_tokens"] = 4096

    def translate_chat(self, body: dict[str, Any]) -> None:
        """001 "Provider routing": ``developer`` -> ``system``; ``max_completion_tokens`` sent as ``max_tokens``
        (never two conflicting limits, the client's value kept). Content parts unchanged (003 "Tips")."""
        messages = body.get("messages")
        if isinstance(messages, list):
            for message in messages:
                if not isinstance(message, dict):
                    continue
                if message.get("role") == "developer" and self.breaks != "keeps_developer_role":
                    message["role"] = "system"
                if isinstance(message.get("content"), list):
                    for part in message["content"]:
                        if isinstance(part, dict):
                            self.break_part(part)
            if self.breaks == "rewrites_prompt":
                _append_to_last_user_text(messages, " Answer briefly.")
        if "max_completion_tokens" in body:
            if self.breaks == "conflicting_max_tokens":
                body["max_tokens"] = 4096
            else:
                body["max_tokens"] = body.pop("max_completion_tokens")

    def break_part(self, part: dict[str, Any]) -> None:
        """The content-part variants (the correct gateway changes no part)."""
        kind = part.get("type")
        if self.breaks == "mangles_image_data_url" and kind == "image_url" and isinstance(part.get("image_url"), dict):
            url = part["image_url"].get("url")
            if isinstance(url, str) and url.startswith("data:") and ";base64," in url:
                part["image_url"]["url"] = url.split(",", 1)[1]
        elif self.breaks == "wraps_audio_base64" and kind == "input_audio" \
                and isinstance(part.get("input_audio"), dict):
            data = part["input_audio"].get("data")
            if isinstance(data, str):
                part["input_audio"]["data"] = "\n".join(data[i:i + 76] for i in range(0, len(data), 76))
        elif self.breaks == "drops_video_frames" and kind == "video" and isinstance(part.get("video"), list):
            part["video"] = part["video"][:1]

    async def proxy(self, request: Request) -> Response:
        """Forwards one request under ``/v1/`` or ``/api/v1/`` upstream and translates its answer."""
        path = request.url.path
        protocol = _protocol(path)
        if not self.authorized(request, protocol):
            return error_response(protocol, 401, "authentication_error", "Missing or invalid API key.",
                                  code="invalid_api_key")
        content = await request.body()
        body: Any = None
        if content and "json" in request.headers.get("content-type", "").lower():
            try:
                body = json.loads(content)
            except ValueError:
                body = None  # forwarded as sent: the upstream words the 400
        client_model: str | None = None
        stream = False
        if isinstance(body, dict):
            client_model = body.get("model") if isinstance(body.get("model"), str) else None
            stream = body.get("stream") is True
            translated = copy.deepcopy(body)
            self.translate(path, translated)
            if translated != body:
                content = _dumps(translated)
        query = request.url.query
        upstream_request = self.client().build_request(
            request.method, self.upstream + path + (f"?{query}" if query else ""), content=content or None,
            headers=self.upstream_headers(request, protocol))
        try:
            if stream:
                return await self.relay_stream(request, path, protocol, upstream_request, client_model)
            answer = await self.send(path, protocol, request.method, upstream_request, stream=False)
        except httpx.HTTPError as exc:
            return self.unreachable(protocol, exc)
        return self.answer(request, path, protocol, answer.status_code, answer.headers, answer.content, client_model)

    async def send(self, path: str, protocol: str, method: str, upstream_request: httpx.Request,
                   stream: bool) -> httpx.Response:
        """Sends upstream. Non-streaming chat, messages and responses requests are retried on 502/503/529 (at most
        :data:`MAX_ATTEMPTS`, :data:`RETRY_PAUSE_S` apart); the credits API (it charges) and streams never."""
        attempts = MAX_ATTEMPTS if path in RETRIED_PATHS and not stream else 1
        if self.breaks == "double_charges" and protocol == "credits" and method == "POST":
            await self.client().send(upstream_request)  # the first answer is thrown away
        response = await self.client().send(upstream_request, stream=stream)
        for _ in range(attempts - 1):
            if response.status_code not in RETRIED_STATUSES:
                break
            await asyncio.sleep(RETRY_PAUSE_S)
            response = await self.client().send(upstream_request, stream=stream)
        return response

    def unreachable(self, protocol: str, exc: Exception) -> Response:
        """An upstream connection error or timeout: 502 upstream_error (Messages: 502 api_error), never a hang."""
        message = f"Downstream provider failure: the upstream could not be reached ({type(exc).__name__})."
        if protocol == "messages":
            return error_response(protocol, 502, "api_error", message)
        return error_response(protocol, 502, "upstream_error", message, code="upstream_unreachable")

    # -- answers ----------------------------------------------------------------------------------------

    def answer(self, request: Request, path: str, protocol: str, status: int, headers: httpx.Headers,
               content: bytes, client_model: str | None) -> Response:
        """A complete upstream answer as the client gets it: errors translated, JSON checked and mapped back."""
        if status >= 400:
            if self.breaks == "image_errors_unwrapped" and path == IMAGES_GENERATIONS and status >= 500:
                return Response(b"Internal Server Error", status_code=500, media_type="text/plain")
            return self.error(protocol, status, headers, content, client_model)
        media_type = headers.get("content-type", "application/octet-stream")
        passed = _passed_headers(headers)
        if "json" not in media_type.lower() and path not in JSON_PATHS:
            if self.breaks == "truncates_audio" and media_type.startswith("audio/"):
                content = content[: len(content) // 2]
            return Response(content, status_code=status, headers=passed, media_type=media_type)
        try:
            body = json.loads(content)
        except ValueError:
            if self.breaks == "passes_malformed":
                return Response(content, status_code=200, headers=passed, media_type=media_type)
            if protocol == "messages":
                return error_response(protocol, 502, "api_error", _MALFORMED_MESSAGE)
            return error_response(protocol, 502, "upstream_error", _MALFORMED_MESSAGE, code="upstream_malformed")
        body = self.rehost(body, str(request.base_url).rstrip("/"))
        if isinstance(body, dict):
            if client_model in MODEL_MAP and "model" in body:
                body["model"] = client_model  # the gateway's own id back (001 "Provider routing")
            if self.breaks == "changes_usage" and path == CHAT and isinstance(body.get("usage"), dict):
                for field in ("prompt_tokens", "total_tokens"):
                    if isinstance(body["usage"].get(field), int):
                        body["usage"][field] += 7
            if self.breaks == "reencodes_image" and path == IMAGES_GENERATIONS and isinstance(body.get("data"), list):
                for item in body["data"]:
                    if isinstance(item, dict) and isinstance(item.get("b64_json"), str):
                        item["b64_json"] = _half_size_png(item["b64_json"])
            if self.breaks == "invents_revised_prompt" and path == IMAGES_GENERATIONS \
                    and isinstance(body.get("data"), list):
                for item in body["data"]:
                    if isinstance(item, dict):
                        item["revised_prompt"] = "Enhanced: " + str(item.get("revised_prompt") or "a detailed image")
        return Response(_dumps(body), status_code=status, headers=passed, media_type="application/json")

    def rehost(self, value: Any, base: str) -> Any:
        """Hosted media URLs of the upstream (``{upstream}/hosted/<id>``, a usage record's ``video_url``)
        rewritten to the gateway's ``{base}/media/...`` (002 "Download URLs are short-lived": still downloadable)."""
        prefix = self.upstream + "/"
        if isinstance(value, str):
            return base + "/media/" + value[len(prefix):] if value.startswith(prefix) else value
        if isinstance(value, list):
            return [self.rehost(item, base) for item in value]
        if isinstance(value, dict):
            return {key: self.rehost(item, base) for key, item in value.items()}
        return value

    def error(self, protocol: str, status: int, headers: httpx.Headers, content: bytes,
              client_model: str | None) -> Response:
        """001 "Errors": an upstream 4xx passes through (status, body, Retry-After, x-ratelimit-*); 500/502 ->
        502 and 503/529 -> 503 upstream_error (Messages: 502 api_error, 529 overloaded_error). 004 "Error Codes":
        the credits API's answers pass through unchanged. Retry-After is kept on every error."""
        passed = _passed_headers(headers)
        if self.breaks == "drops_retry_after":
            passed = {name: value for name, value in passed.items() if name.lower() != "retry-after"}
        media_type = headers.get("content-type", "application/json")
        if status == 400 and self.breaks == "hides_safety_reason":
            return error_response(protocol, 400, "invalid_request_error", "Bad request.", headers=passed)
        if status < 500 or protocol == "credits":
            return Response(content, status_code=status, headers=passed, media_type=media_type)
        if self.breaks == "errors_as_200":
            return Response(_dumps(_sorry_completion(client_model)), status_code=200, media_type="application/json")
        message = _error_message(content) or "Downstream provider failure."
        if self.breaks == "wrong_error_type" and status in RETRIED_STATUSES:
            return error_response("openai", 500, "api_error", message, headers=passed)
        overloaded = status in (503, 529)
        if protocol == "messages":
            kind = "overloaded_error" if overloaded else "api_error"
            return error_response(protocol, 529 if overloaded else 502, kind, message, headers=passed)
        return error_response(protocol, 503 if overloaded else 502, "upstream_error", message,
                              code=f"upstream_{status}", headers=passed)

    # -- streams ----------------------------------------------------------------------------------------

    async def relay_stream(self, request: Request, path: str, protocol: str, upstream_request: httpx.Request,
                           client_model: str | None) -> Response:
        """001 Chat Completions "token-by-token delivery": each upstream chunk goes to the client as it arrives,
        unchanged. An upstream error status, or a non-SSE answer, is handled as a complete answer."""
        response = await self.send(path, protocol, request.method, upstream_request, stream=True)
        media_type = response.headers.get("content-type", "")
        if response.status_code >= 400 or "text/event-stream" not in media_type.lower():
            try:
                content = await response.aread()
            finally:
                await response.aclose()
            return self.answer(request, path, protocol, response.status_code, response.headers, content, client_model)
        headers = _passed_headers(response.headers)
        headers["cache-control"] = "no-cache"
        return StreamingResponse(self.stream_body(path, response), status_code=response.status_code,
                                 headers=headers, media_type=media_type)

    async def stream_body(self, path: str, response: httpx.Response) -> AsyncIterator[bytes]:
        """The relayed chunks; a stream that ends without its terminal event (:data:`TERMINAL_MARKERS`) or breaks
        (RemoteProtocolError, ReadError, timeout) ends with an error event in the client's protocol, no terminal."""
        markers = TERMINAL_MARKERS.get(path, ())
        keep = max((len(marker) for marker in markers), default=0)
        tail = b""
        seen = not markers
        failure: str | None = None
        held: list[bytes] = []
        deadline = time.monotonic() + STREAM_DEADLINE_S
        try:
            async for chunk in response.aiter_raw():
                window = tail + chunk
                seen = seen or any(marker in window for marker in markers)
                tail = window[-keep:] if keep else b""
                if self.breaks == "buffers_stream":
                    held.append(chunk)
                else:
                    yield chunk
                if time.monotonic() > deadline:
                    failure = "the upstream stream took too long"
                    break
        except httpx.HTTPError as exc:
            failure = f"the upstream stream broke ({type(exc).__name__})"
        finally:
            await response.aclose()
        if held:
            yield b"".join(held)
        if seen and failure is None:
            return
        if self.breaks == "completes_cut_stream":
            yield _terminal_event(path)
        else:
            reason = failure or "the upstream stream ended without its terminal event"
            yield _stream_error_event(path, f"Downstream provider failure: {reason}.")

    # -- media ------------------------------------------------------------------------------------------

    async def media(self, request: Request) -> Response:
        """``GET /media/{path}``: the upstream's ``GET {upstream}/{path}``, bytes and status passed through
        (a 425 keeps its Retry-After)."""
        if self.breaks == "breaks_rehosted_url":
            return error_response("openai", 404, "invalid_request_error", "No such media.", code="not_found")
        query = request.url.query
        url = f"{self.upstream}/{request.path_params['path']}" + (f"?{query}" if query else "")
        try:
            response = await self.client().get(url, headers={"authorization": f"Bearer {self.upstream_key}",
                                                             "accept-encoding": "identity"})
        except httpx.HTTPError as exc:
            return self.unreachable("openai", exc)
        return Response(response.content, status_code=response.status_code, headers=_passed_headers(response.headers),
                        media_type=response.headers.get("content-type", "application/octet-stream"))


def _append_to_last_user_text(messages: list[Any], suffix: str) -> None:
    """The ``rewrites_prompt`` variant: ``suffix`` appended to the last user message's text (its string
    content, or its last text part)."""
    for message in reversed(messages):
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            message["content"] = content + suffix
        elif isinstance(content, list):
            for part in reversed(content):
                if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
                    part["text"] += suffix
                    break
        return
