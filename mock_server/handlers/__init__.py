"""Operation handlers, registered by the spec's ``operationId``.

The app builds its routes from the spec; an operation finds its handler here. A module that
defines handlers registers them with :func:`handles` and is imported below.
"""

from __future__ import annotations

from collections.abc import Callable

from mock_server.context import Handler

HANDLERS: dict[str, Handler] = {}


def handles(operation_id: str) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine as the handler of ``operation_id``."""

    def register(handler: Handler) -> Handler:
        if operation_id in HANDLERS:
            raise ValueError(f"two handlers for {operation_id}")
        HANDLERS[operation_id] = handler
        return handler

    return register


# Each module registers its handlers by import.
from mock_server.handlers import audio, chat, credits, images, messages, models, responses  # noqa: E402

__all__ = ["HANDLERS", "audio", "chat", "credits", "handles", "images", "messages", "models", "responses"]
