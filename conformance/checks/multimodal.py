"""Checks of multimodal input on chat completions: a medium a model takes is answered, one it lacks is refused.

Sources: 000 "At a glance" (images, video, documents and audio as input to /v1/chat/completions),
001 "What you can do" ("Reason over images, audio, and documents") and 001 "Errors" (400
invalid_request_error, "The message names the offending field"), 003 "Multimodal input" ("whether a
model actually supports a given media type depends on the model").

A refusal names the part when ``error.param`` or ``error.message`` holds the part's path
(``messages[0].content[1]``, or the dotted ``messages.0.content.1`` some validators write) or its
content part ``type`` (``image_url``, ``input_audio``, ``video_url``, ``file``).
"""

from __future__ import annotations

import re
from typing import Any

from conformance.checks import check
from conformance.failures import CheckFailure
from conformance.http import Exchange
from spec import Operation

SOURCE_DOCUMENTS = ('000 At a glance (Documents input /v1/chat/completions); 001 What you can do '
                    '("Reason over images, audio, and documents")')
SOURCE_REFUSAL = ("003 Multimodal input (support for a media type depends on the model); "
                  "001 Errors (400: the message names the offending field)")


def _error(exchange: Exchange) -> dict[str, Any]:
    body = exchange.json()
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else {}


def _part(exchange: Exchange) -> tuple[str, str]:
    """(path, type) of the request's first non-text content part: ``("messages[0].content[1]", "file")``."""
    request = exchange.request_body if isinstance(exchange.request_body, dict) else {}
    for m_index, message in enumerate(request.get("messages") or []):
        content = message.get("content") if isinstance(message, dict) else None
        for p_index, part in enumerate(content if isinstance(content, list) else []):
            if isinstance(part, dict) and part.get("type") != "text":
                return f"messages[{m_index}].content[{p_index}]", str(part.get("type"))
    raise ValueError("the request carries no non-text content part")  # the suite built it wrong


def refused_naming_part(name: str, exchange: Exchange) -> None:
    """Raise CheckFailure ``name`` unless ``exchange`` is a 400 invalid_request_error naming its request's
    first non-text content part (module docstring: by path or by ``type``)."""
    path, part_type = _part(exchange)
    error = _error(exchange)
    if exchange.status != 400 or error.get("type") != "invalid_request_error":
        raise CheckFailure(name, f"400 invalid_request_error refusing the {part_type} part {path}",
                           f"{exchange.status} with error.type {error.get('type')!r}", exchange.evidence())
    said = f"{error.get('param') or ''} {error.get('message') or ''}"
    dotted = path.replace("[", ".").replace("]", "")
    if path not in said and dotted not in said and re.search(rf"\b{re.escape(part_type)}\b", said) is None:
        raise CheckFailure(name, f"error.param or error.message naming the part ({path} or {part_type!r})",
                           f"param {error.get('param')!r}, message {str(error.get('message'))[:200]!r}",
                           exchange.evidence())


@check(capability="chat.input.documents", source=SOURCE_DOCUMENTS)
def document_input_answered(exchange: Exchange, operation: Operation) -> None:
    """A user message with a ``file`` content part (a PDF as a ``data:application/pdf;base64,...``
    ``file_data``) sent to a model that takes documents is answered: 200 ``chat.completion`` whose
    first choice has text content."""
    name = "document_input_answered"
    body = exchange.json()
    choices = body.get("choices") if isinstance(body, dict) else None
    message = choices[0].get("message") if isinstance(choices, list) and choices and isinstance(
        choices[0], dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    kind = body.get("object") if isinstance(body, dict) else None
    if exchange.status != 200 or kind != "chat.completion" or not isinstance(content, str) or not content:
        raise CheckFailure(name, "200 chat.completion answering the document with text",
                           f"{exchange.status}: {exchange.body[:200]!r}", exchange.evidence())


@check(capability="chat.input.documents", source=SOURCE_DOCUMENTS + "; " + SOURCE_REFUSAL)
def document_refused_without_support(exchange: Exchange, operation: Operation) -> None:
    """A ``file`` (document) part sent to a model that does not take documents is refused: 400
    invalid_request_error naming the part, never answered as if the document were not there."""
    refused_naming_part("document_refused_without_support", exchange)


@check(capability="chat.input.refusal", source=SOURCE_REFUSAL)
def unsupported_medium_refused(exchange: Exchange, operation: Operation) -> None:
    """An image, audio or video part sent to a model that does not take that medium is refused: 400
    invalid_request_error naming the part (documents: :func:`document_refused_without_support`)."""
    refused_naming_part("unsupported_medium_refused", exchange)
