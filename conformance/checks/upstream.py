"""Checks of a gateway's translation layer, judged on what reached its upstream (the upstream phase).

Each check takes a :class:`~conformance.upstream.Relay`: the request the suite sent the gateway,
the gateway's answer, and the upstream mock's journal entries for the request's nonce. Groups
(the capability of each): request translation (``upstream.request``), error translation
(``upstream.errors``), streaming delivery (``upstream.streaming``), media and usage
(``upstream.media``), retries and charges (``upstream.retries``).
"""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Mapping
from typing import Any

import httpx

from conformance.checks import check
from conformance.failures import CheckFailure
from conformance.media import MediaError, from_base64
from conformance.media import audio_video as decode_audio_video
from conformance.media import image as decode_image
from conformance.upstream import Relay, all_strings
from spec.fields import find_field, request_schemas, top_level_fields

SOURCE_ROUTING = "001 Chat Completions: Provider routing"
SOURCE_SAFETY = "002 Image Generation: Safety"
SOURCE_ERRORS = "001 Errors (502 / 503 upstream_error: Downstream provider failure; Respect Retry-After)"
SOURCE_PARTS = "003 Multimodal input (image, audio, video content blocks; Tips)"
#: Fields of the three protocols that carry an answer-length limit.
LIMIT_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
#: The Messages protocol's error type per status (Anthropic's).
MESSAGES_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
                  403: "permission_error", 404: "not_found_error", 413: "request_too_large",
                  429: "rate_limit_error", 500: "api_error", 502: "api_error", 503: "overloaded_error",
                  529: "overloaded_error"}
_UPSTREAM_FAILURE = {(502, "upstream_error"), (503, "upstream_error")}
#: (client status, error.type) pairs a gateway may answer an OpenAI-protocol client with, per upstream
#: status (001 "Errors"): a client error passes through; the gateway's own credentials or account
#: failing upstream may also surface as a downstream failure; a 5xx is a downstream failure.
ACCEPTED_OPENAI: Mapping[int, frozenset[tuple[int, str]]] = {
    400: frozenset({(400, "invalid_request_error")}),
    401: frozenset({(401, "authentication_error"), (500, "internal_server_error"), *_UPSTREAM_FAILURE}),
    402: frozenset({(402, "billing_error"), *_UPSTREAM_FAILURE}),
    403: frozenset({(403, "permission_error"), *_UPSTREAM_FAILURE}),
    429: frozenset({(429, "rate_limit_error"), (503, "upstream_error")}),
    500: frozenset({(500, "internal_server_error"), *_UPSTREAM_FAILURE}),
    502: frozenset(_UPSTREAM_FAILURE),
    503: frozenset(_UPSTREAM_FAILURE),
    529: frozenset({(503, "upstream_error"), (429, "rate_limit_error")}),
}
#: The same for a Messages-protocol client (Anthropic's statuses and types).
ACCEPTED_MESSAGES: Mapping[int, frozenset[tuple[int, str]]] = {
    status: frozenset({(status, MESSAGES_TYPES[status])}) for status in (400, 401, 402, 403, 429)
} | {
    500: frozenset({(500, "api_error"), (502, "api_error"), (503, "overloaded_error"), (529, "overloaded_error")}),
    502: frozenset({(500, "api_error"), (502, "api_error"), (503, "overloaded_error"), (529, "overloaded_error")}),
    503: frozenset({(503, "overloaded_error"), (529, "overloaded_error"), (502, "api_error")}),
    529: frozenset({(529, "overloaded_error"), (503, "overloaded_error")}),
}
_TERMINALS = ("[DONE]",)
_TERMINAL_EVENTS = ("message_stop", "response.completed")


def _fail(name: str, relay: Relay, expected: str, received: str) -> CheckFailure:
    return CheckFailure(name, expected, received, relay.evidence())


def _arrived(name: str, relay: Relay) -> dict[str, Any]:
    """The first request body that reached the upstream; fails the check when none did."""
    if not relay.arrived:
        raise _fail(name, relay, f"a request carrying nonce {relay.nonce} to reach the upstream",
                    "no upstream journal entry carries it" + (f" (the gateway: {relay.failure})" if relay.failure
                                                              else ""))
    body = relay.arrived[0].get("body")
    return body if isinstance(body, dict) else {}


def _answered(name: str, relay: Relay) -> Any:
    """The gateway's answer; fails the check when it gave none (timeout, connection refused)."""
    if relay.answer is None:
        raise _fail(name, relay, "an answer from the gateway", relay.failure or "none")
    return relay.answer


def _texts(content: Any) -> list[str]:
    """The text of a message's content: a string, or its text parts / text blocks."""
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [part["text"] for part in content if isinstance(part, Mapping) and isinstance(part.get("text"), str)]
    return []


def _role_texts(body: Mapping[str, Any], role: str) -> list[str]:
    messages = body.get("messages") if isinstance(body.get("messages"), list) else body.get("input")
    texts: list[str] = []
    for message in messages if isinstance(messages, list) else []:
        if isinstance(message, Mapping) and message.get("role") == role:
            texts += _texts(message.get("content"))
    return texts


# ---- request translation ----------------------------------------------------------------------

@check(capability="upstream.request", source=SOURCE_ROUTING + " (rewriting developer roles to system)")
def upstream_developer_role_as_system(relay: Relay, operation: Any) -> None:
    """A ``developer`` message arrives upstream as ``system``, its text kept."""
    name = "upstream_developer_role_as_system"
    body = _arrived(name, relay)
    developer = " ".join(_role_texts(relay.sent, "developer"))
    roles = [m.get("role") for m in body.get("messages", []) if isinstance(m, Mapping)]
    system = _role_texts(body, "system") + _texts(body.get("system")) + _texts(body.get("instructions"))
    if "developer" in roles or not any(developer in text for text in system):
        raise _fail(name, relay, f"no developer role upstream; a system message with {developer!r}",
                    f"roles {roles}, system texts {system}")


@check(capability="upstream.request", source=SOURCE_ROUTING + " (aligning max_tokens vs max_completion_tokens)")
def upstream_max_tokens_aligned(relay: Relay, operation: Any) -> None:
    """The answer-length limit sent (``max_completion_tokens``) arrives upstream as one limit with that
    value: never two conflicting limits."""
    name = "upstream_max_tokens_aligned"
    body = _arrived(name, relay)
    wanted = next(relay.sent[key] for key in LIMIT_FIELDS if key in relay.sent)
    limits = {key: body[key] for key in LIMIT_FIELDS if key in body}
    if not limits or any(value != wanted for value in limits.values()):
        raise _fail(name, relay, f"the upstream's limit fields all equal {wanted}", f"{limits or 'no limit'}")


@check(capability="upstream.request", source=SOURCE_SAFETY + " (the gateway does not silently rewrite prompts)")
def upstream_prompt_unrewritten(relay: Relay, operation: Any) -> None:
    """The user messages' texts arrive upstream exactly as sent."""
    name = "upstream_prompt_unrewritten"
    body = _arrived(name, relay)
    sent, got = _role_texts(relay.sent, "user"), _role_texts(body, "user")
    if sent != got:
        raise _fail(name, relay, f"user texts {sent}", f"{got}")


@check(capability="upstream.request", source=SOURCE_SAFETY + " (the gateway does not silently rewrite prompts)")
def upstream_image_prompt_unrewritten(relay: Relay, operation: Any) -> None:
    """An image-generation prompt arrives upstream exactly as sent."""
    name = "upstream_image_prompt_unrewritten"
    body = _arrived(name, relay)
    if body.get("prompt") != relay.sent.get("prompt"):
        raise _fail(name, relay, f"prompt {relay.sent.get('prompt')!r}", f"{body.get('prompt')!r}")


@check(capability="upstream.request", source=SOURCE_ROUTING + " (the model id determines the upstream)")
def upstream_model_routed(relay: Relay, operation: Any) -> None:
    """The model id sent reaches the upstream model it routes to (the target file's ``upstream.models``)."""
    name = "upstream_model_routed"
    body = _arrived(name, relay)
    wanted = relay.upstream.upstream_model(str(relay.sent.get("model")))
    if body.get("model") != wanted:
        raise _fail(name, relay, f"upstream model {wanted!r}", f"{body.get('model')!r}")


def _parts(body: Any, kind: str) -> list[Mapping[str, Any]]:
    found = []
    for message in body.get("messages", []) if isinstance(body, Mapping) else []:
        content = message.get("content") if isinstance(message, Mapping) else None
        for part in content if isinstance(content, list) else []:
            if isinstance(part, Mapping) and part.get("type") == kind:
                found.append(part)
    return found


@check(capability="upstream.request", source=SOURCE_PARTS + " (image_url: a public URL or a data URL)")
def upstream_image_parts_intact(relay: Relay, operation: Any) -> None:
    """Image URLs and data-URL bytes arrive upstream unchanged (a data URL stays one on the Chat
    Completions protocol; bridged to another, its base64 payload arrives whole)."""
    name = "upstream_image_parts_intact"
    body = _arrived(name, relay)
    upstream = set(all_strings(body))
    chat = relay.arrived[0].get("operation_id") == "createChatCompletion"
    for part in _parts(relay.sent, "image_url"):
        url = part["image_url"]["url"]
        payload = url.partition(",")[2] if url.startswith("data:") else url
        if url not in upstream and (chat or payload not in upstream):
            raise _fail(name, relay, f"image URL {url[:80]!r} unchanged upstream", "it is not in the upstream body")


@check(capability="upstream.request", source=SOURCE_PARTS + " (base64 with no line breaks or extra prefix/suffix)")
def upstream_audio_part_intact(relay: Relay, operation: Any) -> None:
    """``input_audio`` arrives upstream with the same base64 ``data`` (no line breaks, no prefix) and format."""
    name = "upstream_audio_part_intact"
    body = _arrived(name, relay)
    got = [part.get("input_audio", {}) for part in _parts(body, "input_audio")]
    for part in _parts(relay.sent, "input_audio"):
        sent = part["input_audio"]
        if not any(isinstance(g, Mapping) and g.get("data") == sent["data"] and g.get("format") == sent["format"]
                   for g in got):
            shown = [{"format": g.get("format"), "data": str(g.get("data"))[:60] + "...",
                      "line_breaks": "\n" in str(g.get("data"))} for g in got if isinstance(g, Mapping)]
            raise _fail(name, relay, f"input_audio of format {sent['format']} with the same base64 data",
                        f"{shown}")


@check(capability="upstream.request", source=SOURCE_PARTS + " (video_url, and a video as frames)")
def upstream_video_parts_intact(relay: Relay, operation: Any) -> None:
    """``video_url`` and every frame of a ``video`` part arrive upstream, in order."""
    name = "upstream_video_parts_intact"
    body = _arrived(name, relay)
    sent_urls = [part["video_url"]["url"] for part in _parts(relay.sent, "video_url")]
    got_urls = [part.get("video_url", {}).get("url") for part in _parts(body, "video_url")]
    sent_frames = [part["video"] for part in _parts(relay.sent, "video")]
    got_frames = [part.get("video") for part in _parts(body, "video")]
    if sent_urls != got_urls or sent_frames != got_frames:
        raise _fail(name, relay, f"video_url {sent_urls} and frames {sent_frames}",
                    f"video_url {got_urls} and frames {got_frames}")


@check(capability="upstream.request", source="003 Multimodal input (Messages and Responses image input); "
                                             "001 Provider routing (the same request body works across vendors)")
def upstream_bridged_request_kept(relay: Relay, operation: Any) -> None:
    """A Messages or Responses request keeps its image, its tools and its answer-length limit upstream,
    whichever protocol the gateway bridges it to."""
    name = "upstream_bridged_request_kept"
    body = _arrived(name, relay)
    upstream = set(all_strings(body))
    wanted = next(relay.sent[key] for key in LIMIT_FIELDS if key in relay.sent)
    limits = {key: body[key] for key in LIMIT_FIELDS if key in body}
    missing = [text for text in relay.measured.get("must_arrive", ()) if text not in upstream]
    if missing or not limits or any(value != wanted for value in limits.values()):
        raise _fail(name, relay, f"image URL and tool name upstream, and a limit of {wanted}",
                    f"missing {missing}, limits {limits or 'none'}")


# ---- error translation -------------------------------------------------------------------------

def _error_of(relay: Relay) -> tuple[int, str | None, str, bool]:
    """(status, error.type, error.message, whether the envelope is the client protocol's)."""
    answer = relay.answer
    assert answer is not None
    body = answer.json()
    messages = relay.measured.get("protocol") == "messages"
    if messages:
        error = body.get("error") if isinstance(body, dict) and body.get("type") == "error" else None
    else:
        error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, Mapping):
        return answer.status, None, "", False
    kind, message = error.get("type"), error.get("message")
    return answer.status, kind if isinstance(kind, str) else None, str(message or ""), isinstance(kind, str)


@check(capability="upstream.errors", source=SOURCE_ERRORS + "; 002 Errors (500, 502 / 503 of the Images API); "
                                                            "004 Error Codes")
def upstream_error_translated(relay: Relay, operation: Any) -> None:
    """A scripted upstream failure reaches the client with a documented status and ``error.type`` for it,
    in the client protocol's envelope."""
    name = "upstream_error_translated"
    _answered(name, relay)
    upstream_status = int(relay.steps[0]["status"])
    accepted = (ACCEPTED_MESSAGES if relay.measured.get("protocol") == "messages" else ACCEPTED_OPENAI)[upstream_status]
    if relay.measured.get("protocol") == "credits":  # 004: the credits API's errors reach the client as they are
        accepted = frozenset({(upstream_status, kind) for _, kind in accepted if _ == upstream_status})
    status, kind, _, envelope = _error_of(relay)
    if not envelope or (status, kind) not in accepted:
        raise _fail(name, relay, f"one of {sorted(accepted)} in the {relay.measured.get('protocol')} envelope "
                                 f"for an upstream {upstream_status}",
                    f"{status} with error.type {kind!r}" + ("" if envelope else " (no error envelope)"))


@check(capability="upstream.errors", source=SOURCE_ERRORS)
def upstream_failure_not_200(relay: Relay, operation: Any) -> None:
    """No upstream failure reaches the client as a success."""
    name = "upstream_failure_not_200"
    answer = _answered(name, relay)
    if 200 <= answer.status < 300:
        raise _fail(name, relay, f"an error status for an upstream {relay.steps[0].get('status')}",
                    f"{answer.status}")


@check(capability="upstream.errors", source="001 Errors (429: Respect Retry-After); 004 Error Codes (retry after 30s)")
def upstream_retry_after_kept(relay: Relay, operation: Any) -> None:
    """The upstream's Retry-After reaches the client (at least as long) on a 429 and on the credits API's 500."""
    name = "upstream_retry_after_kept"
    answer = _answered(name, relay)
    wanted = float(relay.measured["retry_after_s"])
    value = answer.headers.get("retry-after")
    try:
        seconds = float(value) if value is not None else None
    except ValueError:
        seconds = None
    if seconds is None or seconds < wanted:
        raise _fail(name, relay, f"Retry-After of at least {wanted:g} s", f"Retry-After: {value}")


@check(capability="upstream.errors", source=SOURCE_SAFETY + " (400 invalid_request_error with the rejection reason)")
def upstream_safety_reason_kept(relay: Relay, operation: Any) -> None:
    """The upstream content filter's rejection reaches the client as 400 invalid_request_error whose
    message carries the reason."""
    name = "upstream_safety_reason_kept"
    _answered(name, relay)
    status, kind, message, _ = _error_of(relay)
    reason = str(relay.steps[0]["reason"])
    if status != 400 or kind != "invalid_request_error" or reason not in message:
        raise _fail(name, relay, f"400 invalid_request_error with {reason!r} in error.message",
                    f"{status} {kind!r}: {message[:200]!r}")


@check(capability="upstream.errors", source=SOURCE_ERRORS + " (a malformed upstream answer is a provider failure)")
def upstream_malformed_answer_handled(relay: Relay, operation: Any) -> None:
    """An upstream answer that is not JSON becomes a documented 5xx error in the envelope, not a 200 or a hang."""
    name = "upstream_malformed_answer_handled"
    _answered(name, relay)
    status, kind, _, envelope = _error_of(relay)
    accepted = _UPSTREAM_FAILURE | {(500, "internal_server_error")}
    if not envelope or (status, kind) not in accepted:
        raise _fail(name, relay, f"one of {sorted(accepted)} in the error envelope",
                    f"{status} with error.type {kind!r}" + ("" if envelope else " (no error envelope)"))


@check(capability="upstream.errors", source=SOURCE_ERRORS + " (a cut upstream stream is a provider failure)")
def upstream_cut_stream_reported(relay: Relay, operation: Any) -> None:
    """An upstream stream cut short (ended early, or its connection reset) does not reach the client as
    a complete stream: no terminal event (``[DONE]``, ``message_stop``, ``response.completed``); the
    stream ends (an error event, or a dropped connection), never hangs."""
    name = "upstream_cut_stream_reported"
    stream = relay.stream
    if stream is None:
        answer = _answered(name, relay)
        if 200 <= answer.status < 300:
            raise _fail(name, relay, "an error for a cut upstream stream", f"{answer.status} without a stream")
        return
    terminal = [e.data for e in stream.events if e.data in _TERMINALS or e.event in _TERMINAL_EVENTS]
    if terminal:
        raise _fail(name, relay, "no terminal event after an upstream stream was cut",
                    f"terminal event {terminal[-1]!r} after {len(stream.events)} events")


# ---- streaming delivery ------------------------------------------------------------------------

def _upstream_event_ms(name: str, relay: Relay) -> list[float]:
    _arrived(name, relay)
    events = relay.arrived[0].get("response", {}).get("events") or []
    return [float(event["t_ms"]) for event in events]


@check(capability="upstream.streaming", source="001 Chat Completions (stream: true for token-by-token delivery)")
def upstream_stream_not_buffered(relay: Relay, operation: Any) -> None:
    """With the upstream pacing its events at a known gap, the client receives them as they come: spread
    over at least half the upstream's span, at a median gap of at least half the upstream's."""
    name = "upstream_stream_not_buffered"
    upstream = _upstream_event_ms(name, relay)
    stream = relay.stream
    if stream is None or len(stream.events) < 3 or len(upstream) < 3:
        raise _fail(name, relay, "a stream of 3 events or more", f"{len(stream.events) if stream else 0} events")
    client = [event.t_s * 1000.0 for event in stream.events]
    client_span, upstream_span = client[-1] - client[0], upstream[-1] - upstream[0]
    gap = float(relay.measured["gap_ms"])
    median = statistics.median(b - a for a, b in itertools.pairwise(client))
    relay.measured.update(client_span_ms=round(client_span, 1), upstream_span_ms=round(upstream_span, 1),
                          client_median_gap_ms=round(median, 1))
    if client_span < 0.5 * upstream_span or median < 0.5 * gap:
        raise _fail(name, relay, f"events spread over >= {0.5 * upstream_span:.0f} ms at a median gap >= "
                                 f"{0.5 * gap:.0f} ms (upstream: {upstream_span:.0f} ms, gap {gap:.0f} ms)",
                    f"spread over {client_span:.0f} ms, median gap {median:.0f} ms (buffered)")


@check(capability="upstream.streaming", source="001 Chat Completions (streaming); the target file's "
                                               "upstream.max_first_byte_overhead_ms")
def upstream_first_byte_overhead(relay: Relay, operation: Any) -> None:
    """The time the gateway adds before a stream's first event (the client's time to it less the
    upstream's), in ms, is within the target file's budget; the figure is reported either way."""
    name = "upstream_first_byte_overhead"
    upstream = _upstream_event_ms(name, relay)
    stream = relay.stream
    if stream is None or not stream.events or not upstream:
        raise _fail(name, relay, "a stream with events on both sides", "no events")
    overhead = stream.events[0].t_s * 1000.0 - upstream[0]
    relay.measured["first_byte_overhead_ms"] = round(overhead, 1)
    budget = relay.upstream.max_first_byte_overhead_ms
    if overhead > budget:
        raise _fail(name, relay, f"at most {budget:g} ms added before the first event", f"{overhead:.0f} ms")


# ---- media and usage ---------------------------------------------------------------------------

def _upstream_json(name: str, relay: Relay) -> Any:
    _arrived(name, relay)
    successes = [e for e in relay.arrived if 200 <= int(e.get("response", {}).get("status") or 0) < 300]
    if not successes:
        raise _fail(name, relay, "an upstream success to compare with", "the upstream answered no 2xx")
    return successes[-1].get("response", {}).get("body")


@check(capability="upstream.media", source="002 Native image generation (usage); 001 Chat Completions")
def upstream_usage_kept(relay: Relay, operation: Any) -> None:
    """The usage the client is told equals the upstream's (prompt, completion and total tokens)."""
    name = "upstream_usage_kept"
    answer = _answered(name, relay)
    upstream = _upstream_json(name, relay)
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    body = answer.json()
    got = {k: (body.get("usage") or {}).get(k) for k in keys} if isinstance(body, dict) else {}
    wanted = {k: (upstream.get("usage") or {}).get(k) for k in keys} if isinstance(upstream, dict) else {}
    if got != wanted:
        raise _fail(name, relay, f"usage {wanted}", f"{got}")


def _image_size(name: str, relay: Relay, b64: Any, whose: str) -> tuple[int, int]:
    try:
        decoded = decode_image(from_base64(str(b64)))
    except MediaError as exc:
        raise _fail(name, relay, f"{whose} image to decode", str(exc)) from None
    return decoded.width, decoded.height


def _decoded(name: str, relay: Relay, content: bytes, whose: str) -> Any:
    try:
        return decode_audio_video(content)
    except MediaError as exc:
        raise _fail(name, relay, f"{whose} audio or video to decode", str(exc)) from None


def _audio_intact(name: str, relay: Relay, answer: Any) -> None:
    successes = [e for e in relay.arrived if int(e["id"]) in relay.upstream_bodies]
    if not successes:
        raise _fail(name, relay, "the upstream's audio to compare with", "the upstream kept no audio answer")
    upstream = _decoded(name, relay, relay.upstream_bodies[int(successes[-1]["id"])], "the upstream's")
    client = _decoded(name, relay, answer.body, "the client's")
    relay.measured.update(client_audio_s=round(client.decoded_s, 3), upstream_audio_s=round(upstream.decoded_s, 3))
    if client.format != upstream.format or abs(client.decoded_s - upstream.decoded_s) > max(
            0.1, 0.05 * upstream.decoded_s):
        raise _fail(name, relay, f"{upstream.format} audio decoding to {upstream.decoded_s:.2f} s",
                    f"{client.format} audio decoding to {client.decoded_s:.2f} s")


@check(capability="upstream.media", source="002 Images API (b64_json); 000 Text-to-Speech; 003 Tips (validate "
                                           "image size)")
def upstream_media_intact(relay: Relay, operation: Any) -> None:
    """Generated media reaches the client decodable as the upstream made it: an image with the
    upstream's dimensions, speech in its format with its duration (within 5%)."""
    name = "upstream_media_intact"
    answer = _answered(name, relay)
    if answer.media_type.startswith("audio/"):
        _audio_intact(name, relay, answer)
        return
    upstream = _upstream_json(name, relay)
    body = answer.json()
    try:
        got, wanted = body["data"][0]["b64_json"], upstream["data"][0]["b64_json"]
    except (KeyError, IndexError, TypeError):
        raise _fail(name, relay, "data[0].b64_json from the gateway and the upstream", answer.media_type) from None
    size, upstream_size = _image_size(name, relay, got, "the client's"), _image_size(name, relay, wanted, "upstream")
    if size != upstream_size:
        raise _fail(name, relay, f"a {upstream_size[0]}x{upstream_size[1]} image", f"{size[0]}x{size[1]}")


def _revised_prompts(body: Any) -> list[Any]:
    """``data[i].revised_prompt`` of an images answer, one per entry (None where an entry has none)."""
    data = body.get("data") if isinstance(body, Mapping) else None
    return [item.get("revised_prompt") if isinstance(item, Mapping) else None
            for item in (data if isinstance(data, list) else [])]


@check(capability="upstream.media", source=SOURCE_SAFETY + " (if a model returns revised_prompt, that came from "
                                                           "the provider)")
def upstream_revised_prompt_from_provider(relay: Relay, operation: Any) -> None:
    """Each image of the client's answer carries exactly the ``revised_prompt`` the upstream's answer gave it:
    the provider's text unchanged where it sent one, and none where it sent none (the gateway neither invents
    nor rewrites one). What was compared is reported (``measured.revised_prompts``)."""
    name = "upstream_revised_prompt_from_provider"
    answer = _answered(name, relay)
    upstream = _revised_prompts(_upstream_json(name, relay))
    if answer.status != 200:
        raise _fail(name, relay, "200 with the images the upstream made", str(answer.status))
    got = _revised_prompts(answer.json())
    relay.measured["revised_prompts"] = {"upstream": upstream, "client": got}
    if got != upstream:
        raise _fail(name, relay, f"revised_prompt per image as the upstream sent it: {upstream}", f"{got}")


@check(capability="upstream.media", source="002 Images API (url; download URLs are short-lived)")
def upstream_media_url_downloads(relay: Relay, operation: Any) -> None:
    """An image URL the gateway hands out (its own or re-hosted) downloads and decodes with the size asked for."""
    name = "upstream_media_url_downloads"
    answer = _answered(name, relay)
    body = answer.json()
    try:
        url = str(body["data"][0]["url"])
    except (KeyError, IndexError, TypeError):
        raise _fail(name, relay, "data[0].url", answer.media_type) from None
    target = httpx.URL(answer.url)
    try:
        download = httpx.get(str(target.join(url)), timeout=30.0)
    except httpx.HTTPError as exc:
        raise _fail(name, relay, f"{url} to download", f"{type(exc).__name__}: {exc}") from None
    if download.status_code != 200:
        raise _fail(name, relay, f"200 from {url}", str(download.status_code))
    try:
        decoded = decode_image(download.content)
    except MediaError as exc:
        raise _fail(name, relay, "the downloaded image to decode", str(exc)) from None
    wanted = str(relay.sent.get("size", "")).split("x")
    if [str(decoded.width), str(decoded.height)] != wanted:
        raise _fail(name, relay, f"a {relay.sent.get('size')} image", f"{decoded.width}x{decoded.height}")


@check(capability="upstream.media", source="004 Video: Image-to-Video; Video Response (video_url, duration_seconds); "
                                           "For AI Agents (poll usage records)")
def upstream_video_delivered(relay: Relay, operation: Any) -> None:
    """A video job made through the gateway completes when polled through it, and its ``video_url``
    downloads through the gateway as a video of the duration the upstream made."""
    name = "upstream_video_delivered"
    answer = _answered(name, relay)
    if answer.status != 200:
        raise _fail(name, relay, "200 with a usage_id for the video job", str(answer.status))
    record = relay.measured.get("video_record")
    if not isinstance(record, Mapping) or record.get("status") != "completed":
        status = record.get("status") if isinstance(record, Mapping) else record
        raise _fail(name, relay, "the job to complete when polled through the gateway", f"last status {status!r}")
    if relay.measured.get("video_status") != 200 or -1 not in relay.upstream_bodies:
        raise _fail(name, relay, f"200 from video_url {record.get('video_url')}",
                    str(relay.measured.get("video_status")))
    video = _decoded(name, relay, relay.upstream_bodies[-1], "the client's")
    upstream = relay.measured.get("upstream_video_record") or {}
    wanted = upstream.get("duration_seconds") if isinstance(upstream, Mapping) else None
    relay.measured.update(client_video_s=round(video.duration_s, 3), upstream_video_s=wanted)
    if not isinstance(wanted, int | float) or abs(video.duration_s - float(wanted)) > max(0.2, 0.05 * float(wanted)):
        raise _fail(name, relay, f"a video of {wanted} s (the upstream's record)", f"{video.duration_s:.2f} s")


def _request_defaults(operation: Any) -> dict[str, Any]:
    """``{field: documented default}`` of the top-level fields of ``operation``'s JSON request body."""
    found: dict[str, Any] = {}
    for schema in request_schemas(operation).values():
        for name in top_level_fields(operation.api, schema):
            for match in find_field(operation.api, schema, name):
                if "default" in match.schema and match.schema["default"] is not None:
                    found.setdefault(name, match.schema["default"])
    return found


@check(capability="upstream.request", source="004 parameter tables (Default: TTS voice Wise_Woman; CogVideoX "
                                             "guidance_scale 6.0, num_inference_steps 50)")
def upstream_defaults_kept(relay: Relay, operation: Any) -> None:
    """Each field with a documented default that the client left out arrives upstream either left out too (the
    provider applies its default) or as that default: the gateway substitutes no value of its own. What
    arrived is reported (``measured.defaults_upstream``)."""
    name = "upstream_defaults_kept"
    body = _arrived(name, relay)
    omitted = {key: value for key, value in _request_defaults(operation).items() if key not in relay.sent}
    arrived = {key: body.get(key, "(left out)") for key in omitted}
    relay.measured["defaults_upstream"] = arrived
    wrong = {key: value for key, value in arrived.items() if key in body and body[key] != omitted[key]}
    if wrong:
        raise _fail(name, relay, f"left out or the documented default: {({k: omitted[k] for k in wrong})}",
                    f"{wrong}")


# ---- retries -----------------------------------------------------------------------------------

@check(capability="upstream.retries", source=SOURCE_ERRORS + " (a downstream failure; 500: safe to retry)")
def upstream_retry_attempts(relay: Relay, operation: Any) -> None:
    """For a retriable upstream failure, the gateway's upstream attempts are counted and reported; none
    is made after an upstream success, and the client's verdict matches the last attempt."""
    name = "upstream_retry_attempts"
    answer = _answered(name, relay)
    _arrived(name, relay)
    statuses = [int(e.get("response", {}).get("status") or 0) for e in relay.arrived]
    relay.measured["upstream_attempts"] = len(statuses)
    succeeded = [i for i, status in enumerate(statuses) if 200 <= status < 300]
    if succeeded and succeeded[0] != len(statuses) - 1:
        raise _fail(name, relay, "no upstream attempt after an upstream success", f"attempt statuses {statuses}")
    if (200 <= answer.status < 300) != bool(succeeded):
        raise _fail(name, relay, f"the client's answer to follow the upstream's last ({statuses[-1]})",
                    f"client {answer.status}")


@check(capability="upstream.retries", source="004 Multimodal API (all endpoints consume credits)")
def upstream_single_charge(relay: Relay, operation: Any) -> None:
    """One client request to the credits API is charged upstream at most once, and the client is told
    the credits the upstream charged."""
    name = "upstream_single_charge"
    answer = _answered(name, relay)
    _arrived(name, relay)
    if answer.status != 200:
        raise _fail(name, relay, "200 for the credits-API call whose charge is judged", str(answer.status))
    charged = [e for e in relay.arrived if 200 <= int(e.get("response", {}).get("status") or 0) < 300]
    relay.measured["upstream_charges"] = len(charged)
    if len(charged) > 1:
        raise _fail(name, relay, "at most one charged upstream call", f"{len(charged)} charged calls")
    body, upstream = answer.json(), charged[0].get("response", {}).get("body") if charged else None
    if charged and isinstance(body, dict) and isinstance(upstream, dict) and \
            body.get("credits_used") != upstream.get("credits_used"):
        raise _fail(name, relay, f"credits_used {upstream.get('credits_used')}", f"{body.get('credits_used')}")
