"""Broken targets for the multimodal and media facts (issue 13): the mock with one documented rule broken.

Each :class:`MediaBreak` builds its app and names the check that must report it, and the only other
checks that may fail with it (checks of the very same rule seen from another side), so that the proof
says both "caught" and "by nothing unrelated".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.embedded import embedded_app
from tests.broken_targets import Headers, RequestRewriting, Rewriting, _json_rewrite, _sse_rewrite

#: The mock's catalogue model that takes text only (``mock_server/data/models.yaml``).
TEXT_ONLY = "text-only-mini"


@dataclass(frozen=True)
class MediaBreak:
    """One broken rule: ``app()`` serves it; ``check`` must fail and no check outside ``check`` and ``also``."""

    app: Callable[[], Any]
    check: str
    also: frozenset[str] = frozenset()
    target: Mapping[str, Any] = field(default_factory=dict)
    """Target-file keys of its own (beside the embedded mock's)."""


def _parts(body: Any) -> list[tuple[int, list[Any]]]:
    """``(message index, content list)`` of a chat body's messages whose content is a list of parts."""
    return [(index, message["content"]) for index, message in enumerate(body.get("messages", []))
            if isinstance(message, dict) and isinstance(message.get("content"), list)]


def _refuse_documents(body: Any) -> Any:
    """A gateway that takes no documents at all, whatever the model (000 lists them as chat input)."""
    for m_index, content in _parts(body):
        for p_index, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") == "file":
                param = f"messages[{m_index}].content[{p_index}]"
                return 400, {"error": {"type": "invalid_request_error", "param": param,
                                       "message": f"{param}: documents are not supported"}}
    return body


def _dropping(types: set[str]) -> Callable[[Any], Any]:
    """A gateway that silently drops parts of ``types`` that the text-only model cannot take, and answers."""
    def change(body: Any) -> Any:
        if body.get("model") == TEXT_ONLY:
            for _, content in _parts(body):
                content[:] = [part for part in content if not (isinstance(part, dict) and part.get("type") in types)]
        return body

    return change


def _refuse_developer_for_anthropic(body: Any) -> Any:
    """A gateway that forwards a ``developer`` message to an Anthropic model as it is, which refuses it."""
    roles = [m.get("role") for m in body.get("messages", []) if isinstance(m, dict)]
    if str(body.get("model", "")).startswith("anthropic/") and "developer" in roles:
        index = roles.index("developer")
        return 400, {"error": {"type": "invalid_request_error", "param": f"messages[{index}].role",
                               "message": f"messages[{index}].role: 'developer' is not a valid role"}}
    return body


def _refuse_image_blocks(body: Any) -> Any:
    """A Messages endpoint that refuses image blocks (003 "Messages image input" documents them)."""
    for m_index, content in _parts(body):
        for b_index, block in enumerate(content):
            if isinstance(block, dict) and block.get("type") == "image":
                return 400, {"type": "error", "error": {"type": "invalid_request_error",
                                                        "message": f"messages.{m_index}.content.{b_index}: "
                                                                   "image blocks are not supported"}}
    return body


class OnPath:
    """ASGI wrapper that sends requests to ``path`` through ``wrapped`` (built around the app) and the rest
    to the app as it is."""

    def __init__(self, app: Any, path: str, wrap: Callable[[Any], Any]) -> None:
        self.app, self.path, self.wrapped = app, path, wrap(app)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        inner = self.wrapped if scope["type"] == "http" and scope["path"] == self.path else self.app
        await inner(scope, receive, send)


def _413_as_400(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
    return (400 if status == 413 else status), headers, body


def _5xx_as_bare_500(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
    """A gateway whose image endpoint answers every 5xx as a bare text/plain 500 (002 "Errors": 500
    internal_server_error, 502 / 503 upstream_error, each in the error envelope)."""
    if status < 500:
        return status, headers, body
    kept = [(k, v) for k, v in headers if k != b"content-type"]
    return 500, [*kept, (b"content-type", b"text/plain; charset=utf-8")], b"Internal Server Error"


def _constant_prompt_tokens(status: int, data: Any) -> tuple[int, Any]:
    """A gateway that reports the same usage.prompt_tokens (12) for every chat answer, whatever its images
    (total_tokens kept their sum)."""
    usage = data.get("usage") if isinstance(data, dict) and data.get("object") == "chat.completion" else None
    if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
        usage["prompt_tokens"], usage["total_tokens"] = 12, 12 + usage["completion_tokens"]
    return status, data


def _without_expiry(status: int, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
    return status, [(k, v) for k, v in headers if k not in (b"cache-control", b"expires")], body


def _urls_signed_for_minutes(status: int, data: Any) -> tuple[int, Any]:
    """Hosted image URLs signed for 5 minutes (``X-Amz-Expires=300``; they still download: the lifetime the
    URL states is what is wrong)."""
    for item in data.get("data", []) if isinstance(data, dict) and isinstance(data.get("data"), list) else []:
        if isinstance(item, dict) and isinstance(item.get("url"), str):
            item["url"] += ("&" if "?" in item["url"] else "?") + "X-Amz-Expires=300&X-Amz-Signature=ab"
    return status, data


def _revised_prompt_object(status: int, data: Any) -> tuple[int, Any]:
    for item in data.get("data", []) if isinstance(data, dict) and isinstance(data.get("data"), list) else []:
        if isinstance(item, dict) and item.get("revised_prompt") is not None:
            item["revised_prompt"] = {"text": item["revised_prompt"]}
    return status, data


def _wrapped_audio_base64(status: int, data: Any) -> tuple[int, Any]:
    """The credits API's speech with MIME-style base64: 76-character lines."""
    if isinstance(data, dict) and isinstance(data.get("audio_base64"), str):
        data["audio_base64"] = "\n".join(re.findall(".{1,76}", data["audio_base64"]))
    return status, data


def _message_without_stop_reason(status: int, data: Any) -> tuple[int, Any]:
    if isinstance(data, dict) and data.get("type") == "message":
        data["stop_reason"] = None
    return status, data


def _messages_events_unnamed(body: bytes) -> bytes:
    """A Messages stream whose events have no ``event:`` line (the type only inside ``data``), which the
    official SDK, dispatching on the event name, cannot read."""
    return re.sub(rb"event: (message_\w+|content_block_\w+|ping)\n", b"", body)


def _chat(change: Callable[[Any], Any]) -> Callable[[], Any]:
    return lambda: RequestRewriting(embedded_app(), change)


#: name -> the broken rule
MEDIA_BREAKS: dict[str, MediaBreak] = {
    "refuses_documents": MediaBreak(_chat(_refuse_documents), "document_input_answered"),
    "drops_unsupported_documents": MediaBreak(_chat(_dropping({"file"})), "document_refused_without_support"),
    "drops_unsupported_video": MediaBreak(_chat(_dropping({"video_url", "video"})), "unsupported_medium_refused"),
    "developer_role_unnormalised": MediaBreak(_chat(_refuse_developer_for_anthropic), "same_body_across_providers"),
    "image_edit_limit_not_413": MediaBreak(
        lambda: OnPath(embedded_app(), "/v1/images/edits", lambda app: Rewriting(app, _413_as_400)),
        "image_edit_over_limit_is_413"),
    "image_5xx_unwrapped": MediaBreak(
        lambda: OnPath(embedded_app(), "/v1/images/generations", lambda app: Rewriting(app, _5xx_as_bare_500)),
        "documented_error_status"),
    "constant_prompt_tokens": MediaBreak(
        lambda: Rewriting(embedded_app(), _json_rewrite(_constant_prompt_tokens)), "more_media_more_tokens"),
    "hosted_urls_expire_in_seconds": MediaBreak(
        lambda: Rewriting(embedded_app(hosted_url_ttl_s=5.0), _without_expiry), "hosted_urls_download_later",
        target={"hosted_url_recheck_s": 6.0}),  # fetched again after the 5 s its URLs live
    "hosted_urls_signed_for_minutes": MediaBreak(
        lambda: Rewriting(embedded_app(), _json_rewrite(_urls_signed_for_minutes)), "hosted_urls_download_later"),
    "revised_prompt_not_string": MediaBreak(lambda: Rewriting(embedded_app(), _json_rewrite(_revised_prompt_object)),
                                            "revised_prompt_is_string"),
    "wrapped_audio_base64": MediaBreak(lambda: Rewriting(embedded_app(), _json_rewrite(_wrapped_audio_base64)),
                                       "answer_base64_unwrapped"),
    # the SDK parses any Message alike: the image-block scenario's message lacks stop_reason too
    "messages_without_stop_reason": MediaBreak(
        lambda: Rewriting(embedded_app(), _json_rewrite(_message_without_stop_reason)),
        "sdk_anthropic_messages_create", frozenset({"sdk_anthropic_image_block"})),
    # the stream check on the wire sees the same unnamed events
    "messages_stream_events_unnamed": MediaBreak(
        lambda: Rewriting(embedded_app(), _sse_rewrite(_messages_events_unnamed)), "sdk_anthropic_messages_stream",
        frozenset({"messages_stream_events_conform"})),
    "messages_refuse_image_blocks": MediaBreak(
        lambda: RequestRewriting(embedded_app(), _refuse_image_blocks, path="/v1/messages"),
        "sdk_anthropic_image_block"),
}
