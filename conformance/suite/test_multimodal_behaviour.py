"""Behavioural checks of multimodal input on chat completions (000, 001, 003).

003 "Tips": "Make sure the audio base64 string has no line breaks or extra prefix/suffix": an
``input_audio`` part with wrapped base64 (76-character lines, as MIME encoders write it) or a
``data:`` URL prefix is refused naming the part. 000 "At a glance" and 001 "Reason over images,
audio, and documents": a document (a PDF ``file`` part) is answered by a model that takes documents;
a medium a model does not take (003: "depends on the model") is refused naming the part.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest

from conformance.checks import REGISTRY
from conformance.golden import media_file
from conformance.http import TargetClient
from conformance.target import Target
from spec import find_operation

API = "multi_protocol"
CHAT = find_operation(API, "createChatCompletion")
GATEWAY = "openai_gateway"
GATEWAY_CHAT = find_operation(GATEWAY, "createChatCompletion")

#: variant -> the malformed ``input_audio.data`` of a WAV file's bytes
MALFORMED: dict[str, Callable[[bytes], str]] = {
    "line_breaks": lambda audio: base64.encodebytes(audio).decode("ascii"),
    "data_url_prefix": lambda audio: "data:audio/wav;base64," + base64.b64encode(audio).decode("ascii"),
}


@pytest.mark.api(API, operation="createChatCompletion")
@pytest.mark.check("malformed_audio_base64_refused")
@pytest.mark.parametrize("variant", sorted(MALFORMED))
def test_malformed_audio_base64(variant: str, client: TargetClient, target: Target) -> None:
    data = MALFORMED[variant](media_file("wav"))
    body = {"model": target.model("audio_input"), "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is said here?"},
        {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}]}]}
    REGISTRY["malformed_audio_base64_refused"](client.request("POST", CHAT.path, json_body=body), CHAT)


def _png_url() -> str:
    return "data:image/png;base64," + base64.b64encode(media_file("png_256")).decode("ascii")


def _pdf_url() -> str:
    return "data:application/pdf;base64," + base64.b64encode(media_file("pdf")).decode("ascii")


#: medium -> (question, the content part carrying it): 003's part shapes; the document as OpenAI's ``file``
#: part with the PDF inline (``file_data``), so that no gateway has to fetch anything
PARTS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "image": ("What is in this image?", lambda: {"type": "image_url", "image_url": {"url": _png_url()}}),
    "audio": ("What is said here?", lambda: {"type": "input_audio", "input_audio": {
        "data": base64.b64encode(media_file("wav")).decode("ascii"), "format": "wav"}}),
    "video": ("Summarize what happens in this video.",
              lambda: {"type": "video_url", "video_url": {"url": "https://example.com/video.mp4"}}),
    "document": ("What is the total of this invoice?",
                 lambda: {"type": "file", "file": {"filename": "invoice.pdf", "file_data": _pdf_url()}}),
}


def _ask(medium: str, model: str) -> dict[str, Any]:
    question, part = PARTS[medium]
    return {"model": model, "messages": [{"role": "user", "content": [{"type": "text", "text": question}, part()]}]}


@pytest.mark.api(GATEWAY, operation="createChatCompletion")
@pytest.mark.check("document_input_answered")
def test_document_answered(client: TargetClient, target: Target) -> None:
    exchange = client.request("POST", GATEWAY_CHAT.path, json_body=_ask("document", target.model("document_input")))
    REGISTRY["document_input_answered"](exchange, GATEWAY_CHAT)


@pytest.mark.api(GATEWAY, operation="createChatCompletion")
@pytest.mark.check("document_refused_without_support")
def test_document_refused(client: TargetClient, target: Target) -> None:
    model = target.model_without("document")
    if model is None:
        pytest.skip("the target file names no model without documents (models: without_document or text_only)")
    exchange = client.request("POST", GATEWAY_CHAT.path, json_body=_ask("document", model))
    REGISTRY["document_refused_without_support"](exchange, GATEWAY_CHAT)


@pytest.mark.check("unsupported_medium_refused")
@pytest.mark.parametrize("operation_id", ["createChatCompletion"])
@pytest.mark.parametrize("api", [GATEWAY, API])
@pytest.mark.parametrize("medium", ["image", "audio", "video"])
def test_unsupported_medium_refused(medium: str, api: str, operation_id: str, client: TargetClient,
                                    target: Target) -> None:
    model = target.model_without(medium)
    if model is None:
        pytest.skip(f"the target file names no model without {medium} input (models: without_{medium} or text_only)")
    operation = find_operation(api, operation_id)
    REGISTRY["unsupported_medium_refused"](client.request("POST", operation.path, json_body=_ask(medium, model)),
                                           operation)
