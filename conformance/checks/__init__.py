"""Checks: plain functions registered by name. The name is the report's row and the baseline's key.

Most checks take the :class:`~conformance.http.Exchange` to judge and the spec
:class:`~spec.Operation` it exercised; a check of a sequence (credits falling, a rate limit) takes
the exchanges it needs first. A check returns None when the property holds and raises
:class:`~conformance.failures.CheckFailure` (naming itself) when it does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

CheckFunction = Callable[..., None]


@dataclass(frozen=True)
class Check:
    """A registered check: ``capability`` is the matrix row it counts for, ``source`` its seed section."""

    name: str
    capability: str
    source: str
    function: CheckFunction

    def __call__(self, *args: Any) -> None:
        self.function(*args)


REGISTRY: dict[str, Check] = {}


def check(capability: str, source: str) -> Callable[[CheckFunction], Check]:
    """Register the decorated function under its own name."""

    def register(function: CheckFunction) -> Check:
        name = function.__name__
        if name in REGISTRY:
            raise ValueError(f"check {name} registered twice")
        REGISTRY[name] = registered = Check(name, capability, source, function)
        return registered

    return register


def get(name: str) -> Check:
    """The registered check called ``name``; KeyError if there is none."""
    return REGISTRY[name]


# registers every check module's checks
from conformance.checks import (  # noqa: E402
    chat,
    contract,
    credits,
    errors,
    hosted,
    limits,
    media,
    multimodal,
    sdk,
    streaming,
    streams,
    upstream,
)

__all__ = ["REGISTRY", "Check", "chat", "check", "contract", "credits", "errors", "get", "hosted", "limits",
           "media", "multimodal", "sdk", "streaming", "streams", "upstream"]
