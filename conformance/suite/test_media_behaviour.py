"""Behavioural checks of the OpenAI-compatible gateway's media endpoints (002, 000; OpenAI contract).

Images as b64_json and as hosted URLs that really download (and still do at the end of the phase),
edits with a mask, every speech format, every transcription and translation format (transcribing the
target's own speech), 413 for an upload (and an image edit) over the documented limit, revised_prompt
a string, and base64 answers without line breaks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from conformance.checks import REGISTRY
from conformance.checks.hosted import IssuedUrl, LaterDownload
from conformance.golden import media_file
from conformance.http import Exchange, TargetClient
from conformance.plugin import IssuedUrls
from conformance.target import Target
from spec import find_operation
from spec.extensions import upload_limit_bytes

API = "openai_gateway"
IMAGES = find_operation(API, "createImage")
EDITS = find_operation(API, "createImageEdit")
SPEECH = find_operation(API, "createSpeech")
TRANSCRIPTIONS = find_operation(API, "createTranscription")
SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
TRANSCRIPT_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")


def _image(target: Target, response_format: str) -> dict[str, Any]:
    return {"model": target.model("image_generation"), "prompt": "Studio photo of an orange tabby cat",
            "size": "1024x1024", "n": 1, "response_format": response_format}


@pytest.mark.api(API, operation="createImage")
@pytest.mark.check("image_b64_json_decodes")
def test_image_b64_json(client: TargetClient, target: Target) -> None:
    exchange = client.request("POST", IMAGES.path, json_body=_image(target, "b64_json"))
    REGISTRY["image_b64_json_decodes"](exchange, IMAGES)


@pytest.mark.api(API, operation="createImage")
@pytest.mark.check("image_transparent_background")
def test_image_transparent_background(client: TargetClient, target: Target) -> None:
    body = {**_image(target, "b64_json"), "background": "transparent", "output_format": "png"}
    exchange = client.request("POST", IMAGES.path, json_body=body)
    error = (exchange.json() or {}).get("error") if exchange.status == 400 else None
    if isinstance(error, dict) and error.get("param") == "background":  # 002: "for supported models" only
        pytest.skip(f"the target's image model {body['model']} does not take background: transparent")
    REGISTRY["image_transparent_background"](exchange, IMAGES)


@pytest.mark.api(API, operation="createImage")
@pytest.mark.check("image_url_downloads")
def test_image_url(client: TargetClient, target: Target, hosted_urls: IssuedUrls) -> None:
    exchange = client.request("POST", IMAGES.path, json_body=_image(target, "url"))
    body = exchange.json() if exchange.status == 200 else None
    hosted_urls.extend(IssuedUrl(API, item["url"], "image", f"createImage data[{index}].url", time.time())
                       for index, item in enumerate(body.get("data") or [] if isinstance(body, dict) else [])
                       if isinstance(item, dict) and isinstance(item.get("url"), str))
    REGISTRY["image_url_downloads"](exchange, IMAGES, lambda url: client.request("GET", url, auth=None))


@pytest.mark.api(API, operation="createImageEdit")
@pytest.mark.check("image_edit_decodes")
def test_image_edit_with_mask(client: TargetClient, target: Target) -> None:
    fields = {"model": target.model("image_generation"), "prompt": "Add a red balloon", "size": "1024x1024",
              "response_format": "b64_json"}
    exchange = client.request("POST", EDITS.path, data=fields, files=[
        ("image", ("image.png", media_file("png_1024"), "image/png")),
        ("mask", ("mask.png", media_file("mask_1024"), "image/png"))])
    exchange = replace(exchange, request_body=fields)  # the form's fields, for the check to read
    REGISTRY["image_edit_decodes"](exchange, EDITS)


@pytest.fixture(scope="module")
def spoken(client: TargetClient, target: Target) -> bytes:
    """Audio to transcribe: the target's own speech (so there are words to find), else a WAV tone."""
    if target.claims(API):
        answer = client.request("POST", SPEECH.path, json_body={
            "model": target.model("speech"), "voice": "alloy", "response_format": "wav",
            "input": "The quick brown fox jumps over the lazy dog near the quiet river bank."})
        if answer.status == 200 and answer.body:
            return answer.body
    return media_file("wav")


@pytest.mark.api(API, operation="createSpeech")
@pytest.mark.check("speech_audio_decodes")
@pytest.mark.parametrize("fmt", SPEECH_FORMATS)
def test_speech_format(fmt: str, client: TargetClient, target: Target) -> None:
    body = {"model": target.model("speech"), "voice": "alloy", "input": "Welcome to the conformance suite.",
            "response_format": fmt}
    REGISTRY["speech_audio_decodes"](client.request("POST", SPEECH.path, json_body=body), SPEECH)


def _transcribe(client: TargetClient, target: Target, path: str, audio: bytes, fmt: str) -> Exchange:
    fields = {"model": target.model("transcription"), "response_format": fmt}
    exchange = client.request("POST", path, data=fields, files=[("file", ("speech.wav", audio, "audio/wav"))])
    return replace(exchange, request_body=fields)  # the form's fields, for the check to read


@pytest.mark.api(API)
@pytest.mark.check("transcript_format_conforms")
@pytest.mark.parametrize("operation_id", ["createTranscription", "createTranslation"])
@pytest.mark.parametrize("fmt", TRANSCRIPT_FORMATS)
def test_transcript_format(operation_id: str, fmt: str, client: TargetClient, target: Target, spoken: bytes) -> None:
    operation = find_operation(API, operation_id)
    exchange = _transcribe(client, target, operation.path, spoken, fmt)
    REGISTRY["transcript_format_conforms"](exchange, operation)


@pytest.mark.api(API, operation="createTranscription")
@pytest.mark.check("upload_over_limit_is_413")
def test_upload_over_limit(client: TargetClient, target: Target) -> None:
    limit = upload_limit_bytes(TRANSCRIPTIONS)
    assert limit is not None, "the spec gives createTranscription an x-upload-limit-bytes"
    oversized = bytes(limit + 1)
    exchange = client.request("POST", TRANSCRIPTIONS.path, data={"model": target.model("transcription")},
                              files=[("file", ("big.wav", oversized, "audio/wav"))])
    REGISTRY["upload_over_limit_is_413"](exchange, TRANSCRIPTIONS)


@pytest.mark.api(API, operation="createImageEdit")
@pytest.mark.check("image_edit_over_limit_is_413")
def test_image_edit_over_limit(client: TargetClient, target: Target) -> None:
    limit = upload_limit_bytes(EDITS)
    assert limit is not None, "the spec gives createImageEdit an x-upload-limit-bytes"
    oversized = media_file("png_256")
    oversized += bytes(limit + 1 - len(oversized))  # a PNG one byte over the limit (trailing bytes after IEND)
    fields = {"model": target.model("image_edit"), "prompt": "Add a red balloon"}
    exchange = client.request("POST", EDITS.path, data=fields,
                              files=[("image", ("big.png", oversized, "image/png"))])
    REGISTRY["image_edit_over_limit_is_413"](exchange, EDITS)


@pytest.mark.api(API, operation="createImage")
@pytest.mark.check("revised_prompt_is_string")
def test_revised_prompt(client: TargetClient, target: Target) -> None:
    models = dict.fromkeys((target.model("image_generation"), target.model("image_revising")))
    answers = [client.request("POST", IMAGES.path, json_body={**_image(target, "b64_json"), "model": model})
               for model in models]
    bodies = [answer.json() for answer in answers if answer.status == 200]
    present = [item.get("revised_prompt") for body in bodies if isinstance(body, dict)
               for item in body.get("data") or [] if isinstance(item, dict)]
    if all(value is None for value in present):
        pytest.skip(f"no 200 answer of {', '.join(models)} carried a revised_prompt: nothing to judge")
    REGISTRY["revised_prompt_is_string"](answers, IMAGES)


def _chat_image(target: Target) -> dict[str, Any]:
    return {"model": target.model("image_output"), "messages": [
        {"role": "user", "content": "Generate an image of a cute orange cat wearing sunglasses"}]}


#: source -> (operation, request body factory) of answers that carry base64 media on the OpenAI-style gateway
BASE64_SOURCES: dict[str, tuple[str, Callable[[Target], dict[str, Any]]]] = {
    "images_b64_json": ("createImage", lambda target: _image(target, "b64_json")),
    "chat_images": ("createChatCompletion", _chat_image),  # 002 "Native image generation": message.images
}


@pytest.mark.check("answer_base64_unwrapped")
@pytest.mark.parametrize("api", [API])
@pytest.mark.parametrize(("source", "operation_id"), [(s, op) for s, (op, _) in BASE64_SOURCES.items()],
                         ids=list(BASE64_SOURCES))
def test_answer_base64_unwrapped(source: str, operation_id: str, api: str, client: TargetClient,
                                 target: Target) -> None:
    operation = find_operation(api, operation_id)
    exchange = client.request("POST", operation.path, json_body=BASE64_SOURCES[source][1](target))
    REGISTRY["answer_base64_unwrapped"](exchange, operation)


@pytest.mark.last_in_phase
@pytest.mark.check("hosted_urls_download_later")
@pytest.mark.parametrize("api", [API, "credits_api"])
def test_hosted_urls_download_later(api: str, client: TargetClient, target: Target, hosted_urls: IssuedUrls) -> None:
    issued = [url for url in hosted_urls if url.api == api]
    if not issued:
        pytest.skip(f"no {api} answer of this run carried a hosted URL to download again")
    later_s = target.hosted_url_recheck_s
    wait = later_s - (time.time() - max(url.issued_at for url in issued))
    time.sleep(max(wait, 0.0))  # bounded: at most hosted_url_recheck_s (at most an hour, the target file's schema)
    downloads = [LaterDownload(url, client.request("GET", url.url, auth=None), time.time()) for url in issued]
    REGISTRY["hosted_urls_download_later"](downloads, later_s)
