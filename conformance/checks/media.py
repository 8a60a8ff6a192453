"""Checks of media answers: images, speech, transcriptions, upload limits and base64, judged by decoding.

Sources: 002 "Images API" (url or b64_json; hosted URLs download; revised_prompt), 002 "Errors" (413
image file too large), 003 "Tips" and 004 (base64 results), 000 "Picking the right endpoint" (speech
returns an audio file; transcription returns JSON or plain text) and the OpenAI contract they mirror
(speech and transcription formats), as the spec's ``x-media-type-by`` records them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from conformance import media
from conformance.checks import check
from conformance.failures import CheckFailure
from conformance.http import Exchange
from spec import Operation

SOURCE_IMAGES = "002 Images API (Dedicated Endpoint)"
SOURCE_AUDIO = "000 Picking the right endpoint; OpenAI audio contract (x-mirrors)"


def _request(exchange: Exchange) -> dict[str, Any]:
    return exchange.request_body if isinstance(exchange.request_body, dict) else {}


def _ok_json(name: str, exchange: Exchange) -> Any:
    body = exchange.json()
    if exchange.status != 200 or not isinstance(body, dict):
        raise CheckFailure(name, "200 with a JSON object", f"{exchange.status} {exchange.media_type}",
                           exchange.evidence())
    return body


def _expected_size(request: dict[str, Any]) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)x(\d+)", str(request.get("size", "")))
    return (int(match.group(1)), int(match.group(2))) if match else None


def _judge_image(name: str, content: bytes, request: dict[str, Any], exchange: Exchange) -> None:
    try:
        decoded = media.image(content)
    except media.MediaError as exc:
        raise CheckFailure(name, "a decodable image", str(exc), exchange.evidence()) from None
    wanted_format = {"png": "PNG", "jpeg": "JPEG", "webp": "WEBP"}.get(str(request.get("output_format", "png")))
    size = _expected_size(request)
    if wanted_format and decoded.format != wanted_format:
        raise CheckFailure(name, f"a {wanted_format} image", f"a {decoded.format} image", exchange.evidence())
    if size and (decoded.width, decoded.height) != size:
        raise CheckFailure(name, f"a {size[0]}x{size[1]} image", f"{decoded.width}x{decoded.height}",
                           exchange.evidence())


@check(capability="images.b64_json", source=SOURCE_IMAGES)
def image_b64_json_decodes(exchange: Exchange, operation: Operation) -> None:
    """Every ``data[].b64_json`` decodes as an image of the requested size and format."""
    body = _ok_json("image_b64_json_decodes", exchange)
    items = body.get("data") or []
    if not items or not all(isinstance(item, dict) and item.get("b64_json") for item in items):
        raise CheckFailure("image_b64_json_decodes", "data[] entries with b64_json", str(items)[:200],
                           exchange.evidence())
    for item in items:
        try:
            content = media.from_base64(item["b64_json"])
        except media.MediaError as exc:
            raise CheckFailure("image_b64_json_decodes", "base64 image data", str(exc), exchange.evidence()) from None
        _judge_image("image_b64_json_decodes", content, _request(exchange), exchange)


@check(capability="images.background", source=SOURCE_IMAGES + " (background: 'transparent' for supported models)")
def image_transparent_background(exchange: Exchange, operation: Operation) -> None:
    """A request with ``background: transparent`` (PNG) is answered with images that really have
    transparent pixels: an alpha channel with at least one pixel below fully opaque."""
    name = "image_transparent_background"
    body = _ok_json(name, exchange)
    items = [item for item in body.get("data") or [] if isinstance(item, dict) and item.get("b64_json")]
    if not items:
        raise CheckFailure(name, "data[] entries with b64_json", str(body.get("data"))[:200], exchange.evidence())
    for index, item in enumerate(items):
        try:
            decoded = media.image(media.from_base64(item["b64_json"]))
        except media.MediaError as exc:
            raise CheckFailure(name, "a decodable image", str(exc), exchange.evidence()) from None
        if not decoded.transparent:
            raise CheckFailure(name, "an image with transparent pixels (an alpha channel below 255)",
                               f"image {index}: an opaque {decoded.format} {decoded.width}x{decoded.height}",
                               exchange.evidence())


@check(capability="images.url", source=SOURCE_IMAGES + "; Download URLs are short-lived")
def image_url_downloads(exchange: Exchange, operation: Operation, download: Callable[[str], Exchange]) -> None:
    """Every ``data[].url`` downloads (200, without the API key) as an image of the requested size."""
    body = _ok_json("image_url_downloads", exchange)
    items = body.get("data") or []
    if not items or not all(isinstance(item, dict) and item.get("url") for item in items):
        raise CheckFailure("image_url_downloads", "data[] entries with url", str(items)[:200], exchange.evidence())
    for item in items:
        fetched = download(item["url"])
        if fetched.status != 200:
            raise CheckFailure("image_url_downloads", f"200 from {item['url']}", str(fetched.status),
                               fetched.evidence())
        _judge_image("image_url_downloads", fetched.body, _request(exchange), fetched)


@check(capability="images.edits", source="002 Image Generation (edit existing ones with a mask)")
def image_edit_decodes(exchange: Exchange, operation: Operation) -> None:
    """An edit with a mask answers images (b64_json) that decode at the requested size."""
    image_b64_json_decodes.function(exchange, operation)


def _media_type_for(operation: Operation, request: dict[str, Any]) -> str | None:
    by = operation.spec["responses"]["200"].get("x-media-type-by") or {}
    choice = request.get(by.get("field", ""))
    default = {"createSpeech": "mp3"}.get(operation.operation_id, "json")
    media_types: dict[str, str] = by.get("media_types", {})
    return media_types.get(str(choice if choice is not None else default))


@check(capability="audio.speech", source=SOURCE_AUDIO)
def speech_audio_decodes(exchange: Exchange, operation: Operation) -> None:
    """Speech answers the Content-Type of its response_format and audio a decoder accepts (pcm: raw samples)."""
    request = _request(exchange)
    wanted = _media_type_for(operation, request)
    if exchange.status != 200 or (wanted and exchange.media_type != wanted):
        raise CheckFailure("speech_audio_decodes", f"200 {wanted}", f"{exchange.status} {exchange.media_type}",
                           exchange.evidence())
    if request.get("response_format") == "pcm":
        if not exchange.body or len(exchange.body) % 2:
            raise CheckFailure("speech_audio_decodes", "16-bit PCM samples", f"{len(exchange.body)} bytes",
                               exchange.evidence())
        return
    try:
        decoded = media.audio_video(exchange.body)
    except media.MediaError as exc:
        raise CheckFailure("speech_audio_decodes", "decodable audio", str(exc), exchange.evidence()) from None
    if decoded.duration_s <= 0:
        raise CheckFailure("speech_audio_decodes", "audio longer than 0 s", f"{decoded.duration_s} s",
                           exchange.evidence())


_SRT_CUE = re.compile(r"^\d+\s*\n\d{2}:\d{2}:\d{2},\d{3} --> \d{2}:\d{2}:\d{2},\d{3}", re.M)
_VTT_CUE = re.compile(r"\d{2}:\d{2}(:\d{2})?\.\d{3} --> \d{2}:\d{2}(:\d{2})?\.\d{3}")


@check(capability="audio.transcription", source=SOURCE_AUDIO)
def transcript_format_conforms(exchange: Exchange, operation: Operation) -> None:
    """A transcription or translation answers in its response_format: json/verbose_json objects with text,
    text as plain text (not JSON), srt and vtt with their cue timings."""
    name = "transcript_format_conforms"
    request = _request(exchange)
    fmt = str(request.get("response_format") or "json")
    wanted = _media_type_for(operation, request)
    if exchange.status != 200 or (wanted and exchange.media_type != wanted):
        raise CheckFailure(name, f"200 {wanted} for {fmt}", f"{exchange.status} {exchange.media_type}",
                           exchange.evidence())
    text = exchange.body.decode("utf-8", "replace")
    body = exchange.json()
    problems = {
        "json": not (isinstance(body, dict) and isinstance(body.get("text"), str)),
        "verbose_json": not (isinstance(body, dict) and isinstance(body.get("text"), str)
                             and isinstance(body.get("segments"), list) and isinstance(body.get("duration"),
                                                                                        int | float)),
        "text": not text.strip() or isinstance(body, dict),
        "srt": _SRT_CUE.search(text) is None,
        "vtt": not text.startswith("WEBVTT") or _VTT_CUE.search(text) is None,
    }
    if problems.get(fmt, False):
        raise CheckFailure(name, f"a {fmt} transcript", excerpt_text(text), exchange.evidence())


def excerpt_text(text: str) -> str:
    """The first 120 characters of a body, for a verdict line."""
    return repr(text[:120])


@check(capability="uploads.limit", source="000 Picking the right endpoint (speech to text, x-mirrors: openai: "
                                          "its 25 MiB audio limit, x-upload-limit-bytes of createTranscription); "
                                          "413 in the envelope as 002 Errors answers an oversized upload")
def upload_over_limit_is_413(exchange: Exchange, operation: Operation) -> None:
    """A multipart audio upload over the operation's ``x-upload-limit-bytes`` (bytes; the mirrored OpenAI
    contract's 25 MiB for transcriptions, since no seed gives an audio limit) is answered 413 in the error
    envelope, the status 002's "Errors" table gives an oversized upload."""
    body = exchange.json()
    error = body.get("error") if isinstance(body, dict) else None
    if exchange.status != 413 or not isinstance(error, dict) or not error.get("message"):
        raise CheckFailure("upload_over_limit_is_413", "413 with an error envelope",
                           f"{exchange.status} {exchange.media_type}", exchange.evidence())


@check(capability="uploads.limit", source="002 Errors (413 invalid_request_error: Image file too large); "
                                          "x-upload-limit-bytes of createImageEdit")
def image_edit_over_limit_is_413(exchange: Exchange, operation: Operation) -> None:
    """An image edit whose image is one byte over the declared upload limit is answered 413
    ``invalid_request_error`` with a message (002 "Errors": "Image file too large")."""
    name = "image_edit_over_limit_is_413"
    body = exchange.json()
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    kind = error.get("type")
    if exchange.status != 413 or kind != "invalid_request_error" or not error.get("message"):
        raise CheckFailure(name, "413 invalid_request_error with a message",
                           f"{exchange.status} with error.type {kind!r}", exchange.evidence())


@check(capability="images.revised_prompt", source='002 Safety ("if a model returns revised_prompt, that came from '
                                                 'the provider"); 002 Example')
def revised_prompt_is_string(answers: list[Exchange], operation: Operation) -> None:
    """In every 200 images answer, each ``data[].revised_prompt`` that is present is a string (JSON null,
    which the official SDK types as an absent Optional, counts as absent)."""
    name = "revised_prompt_is_string"
    for exchange in answers:
        body = exchange.json() if exchange.status == 200 else None
        for index, item in enumerate(body.get("data") or [] if isinstance(body, dict) else []):
            value = item.get("revised_prompt") if isinstance(item, dict) else None
            if value is not None and not isinstance(value, str):
                raise CheckFailure(name, f"data[{index}].revised_prompt a string",
                                   f"{type(value).__name__}: {str(value)[:120]}", exchange.evidence())


#: Answer fields that carry base64 media: images (002), the credits API's speech and images (004).
BASE64_FIELDS = frozenset({"b64_json", "audio_base64", "image_base64"})


def base64_payloads(value: Any, where: str = "") -> list[tuple[str, str]]:
    """Every base64 text in a JSON answer as ``(path, text)``: the values of :data:`BASE64_FIELDS`, and the
    data of ``data:...;base64,`` URLs (``message.images[].image_url.url``)."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{where}.{key}" if where else str(key)
            if key in BASE64_FIELDS and isinstance(item, str):
                found.append((path, item))
            else:
                found.extend(base64_payloads(item, path))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found.extend(base64_payloads(item, f"{where}[{index}]"))
    elif isinstance(value, str) and value.startswith("data:") and ";base64," in value[:200]:
        found.append((where, value.split(",", 1)[1]))
    return found


@check(capability="images.base64", source='003 Tips (base64 with no line breaks or extra prefix/suffix); 004 '
                                         '("All endpoints ... return base64-encoded results")')
def answer_base64_unwrapped(exchange: Exchange, operation: Operation) -> None:
    """A 200 answer carrying base64 media (``b64_json``, ``message.images`` data URLs, ``audio_base64``,
    ``image_base64``) carries it unwrapped: no line break or other whitespace inside the base64 text."""
    name = "answer_base64_unwrapped"
    payloads = base64_payloads(_ok_json(name, exchange))
    if not payloads:
        raise CheckFailure(name, "an answer carrying base64 media", excerpt_text(exchange.body.decode(
            "utf-8", "replace")), exchange.evidence())
    for path, text in payloads:
        wrapped = re.search(r"\s", text)
        if wrapped is not None:
            raise CheckFailure(name, f"{path}: base64 without line breaks",
                               f"{wrapped.group()!r} at character {wrapped.start()} of {len(text)}",
                               exchange.evidence())
