"""Checks that the official ``openai`` and ``anthropic`` SDKs work against the target with only base_url
and api_key set.

Source: 001 "Chat Completions" ("any official OpenAI SDK works out of the box - just point baseURL at
the gateway"), 002 "Images API" ("the official SDK works without changes"), 003 "Messages image
input" (the Messages protocol, which the official Anthropic SDK speaks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.checks import check
from conformance.failures import CheckFailure, Evidence

SOURCE = "001 Chat Completions (any official OpenAI SDK works out of the box)"


def run_sdk(name: str, base_url: str, scenario: Callable[[], Any]) -> Any:
    """Run an SDK call; an SDK exception (the SDK could not parse or accept the answer) fails ``name``.

    The SDKs are imported here, not with the module: importing both costs about 3.7 s, paid by every pytest
    process of a run (the CLI's and each xdist worker's) whether or not it runs an SDK check."""
    import anthropic
    import openai

    try:
        return scenario()
    except (openai.OpenAIError, anthropic.AnthropicError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise CheckFailure(name, "the official SDK call to succeed", f"{type(exc).__name__}: {str(exc)[:300]}",
                           Evidence(url=base_url)) from None


@check(capability="sdk.openai", source=SOURCE)
def sdk_chat_completion(completion: Any, base_url: str) -> None:
    """``chat.completions.create`` returns a parsed completion with content and usage."""
    if not completion.choices or completion.choices[0].message.content is None or completion.usage is None:
        raise CheckFailure("sdk_chat_completion", "choices[0].message.content and usage", repr(completion)[:300],
                           Evidence(url=base_url))


@check(capability="sdk.openai", source=SOURCE + " (stream: true)")
def sdk_chat_stream(chunks: list[Any], base_url: str) -> None:
    """A streamed ``chat.completions.create`` yields chunks with text and, with include_usage, a usage chunk."""
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    last_usage = chunks[-1].usage if chunks else None
    if not text or last_usage is None:
        raise CheckFailure("sdk_chat_stream", "text deltas and a final usage chunk",
                           f"{len(chunks)} chunks, text {text[:60]!r}, last usage {last_usage}", Evidence(url=base_url))


@check(capability="sdk.openai", source="002 Images API (the official SDK works without changes)")
def sdk_images_generate(result: Any, base_url: str) -> None:
    """``images.generate`` with b64_json returns data[0].b64_json."""
    if not result.data or not result.data[0].b64_json:
        raise CheckFailure("sdk_images_generate", "data[0].b64_json", repr(result)[:300], Evidence(url=base_url))


@check(capability="sdk.openai", source="001 Provider routing (Browse available models)")
def sdk_models_list(models: list[Any], base_url: str) -> None:
    """``models.list`` pages through model objects with ids."""
    if not models or not all(getattr(model, "id", None) for model in models):
        raise CheckFailure("sdk_models_list", "a non-empty list of models with ids", repr(models)[:300],
                           Evidence(url=base_url))


@check(capability="sdk.openai", source="001 Provider routing (Browse available models)")
def sdk_models_retrieve(model: Any, wanted: str, base_url: str) -> None:
    """``models.retrieve(id)`` returns the model object of that id."""
    if getattr(model, "id", None) != wanted or getattr(model, "object", None) != "model":
        raise CheckFailure("sdk_models_retrieve", f"a model object with id {wanted!r}", repr(model)[:300],
                           Evidence(url=base_url))


SOURCE_MESSAGES = "003 Messages image input (the Messages protocol, through the official Anthropic SDK)"


def _message_text(name: str, message: Any, base_url: str) -> str:
    """The text of a parsed ``Message``; CheckFailure ``name`` unless it is an assistant message with text,
    a ``stop_reason`` and usage with input and output tokens."""
    blocks = getattr(message, "content", None) or []
    text = "".join(getattr(block, "text", "") or "" for block in blocks if getattr(block, "type", None) == "text")
    usage = getattr(message, "usage", None)
    if (getattr(message, "role", None) != "assistant" or not text or getattr(message, "stop_reason", None) is None
            or not isinstance(getattr(usage, "input_tokens", None), int)
            or not isinstance(getattr(usage, "output_tokens", None), int)):
        raise CheckFailure(name, "an assistant message with text content, stop_reason and usage tokens",
                           repr(message)[:300], Evidence(url=base_url))
    return text


@check(capability="sdk.anthropic", source=SOURCE_MESSAGES)
def sdk_anthropic_messages_create(message: Any, base_url: str) -> None:
    """``messages.create`` returns a parsed ``Message``: assistant, text content, ``stop_reason``, usage."""
    _message_text("sdk_anthropic_messages_create", message, base_url)


@check(capability="sdk.anthropic", source=SOURCE_MESSAGES + " (stream)")
def sdk_anthropic_messages_stream(events: list[Any], final: Any, base_url: str) -> None:
    """``messages.stream`` yields events from ``message_start`` to ``message_stop`` whose text deltas
    make up the final message's text (which has ``stop_reason`` and usage)."""
    name = "sdk_anthropic_messages_stream"
    kinds = [getattr(event, "type", None) for event in events]
    if not kinds or kinds[0] != "message_start" or kinds[-1] != "message_stop":
        raise CheckFailure(name, "events from message_start to message_stop", f"{kinds[:3]} ... {kinds[-3:]}",
                           Evidence(url=base_url))
    streamed = "".join(getattr(event.delta, "text", "") or "" for event in events
                       if getattr(event, "type", None) == "content_block_delta")
    text = _message_text(name, final, base_url)
    if streamed != text:
        raise CheckFailure(name, "text deltas adding up to the final message's text",
                           f"deltas {streamed[:80]!r}, final {text[:80]!r}", Evidence(url=base_url))


@check(capability="sdk.anthropic", source=SOURCE_MESSAGES)
def sdk_anthropic_image_block(message: Any, base_url: str) -> None:
    """``messages.create`` with a user turn holding a text block and an ``image`` block is answered with a
    parsed ``Message`` (assistant text, ``stop_reason``, usage)."""
    _message_text("sdk_anthropic_image_block", message, base_url)
