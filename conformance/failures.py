"""What a failed check carries, so that reports are built from objects and not from pytest's text.

Exception tree::

    AssertionError
     └── CheckFailure          one named check found a contract violation
          └── TargetError      the target could not be asked at all (unreachable, timeout)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

#: Longest response excerpt kept as evidence, in characters.
EXCERPT_CHARS = 600


@dataclass(frozen=True)
class Evidence:
    """The exchange behind a verdict: request method, URL and body; response status, headers, excerpt."""

    method: str = ""
    url: str = ""
    request_body: Any = None
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    response_excerpt: str = ""
    upstream: Any = None
    """What reached the gateway's upstream (the upstream phase: journal entries, excerpted), if known."""
    media: dict[str, Any] | None = None
    """What the answer's media decoded as (``conformance.media.summary``: format, size, thumbnail,
    duration), when it carried any."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for report.json."""
        shown = {
            "request": {"method": self.method, "url": self.url, "body": _excerpt_value(self.request_body)},
            "response": {"status": self.status, "headers": self.headers, "body_excerpt": self.response_excerpt},
        }
        if self.upstream is not None:
            shown["upstream"] = self.upstream
        if self.media is not None:
            shown["media"] = self.media
        return shown


def _excerpt_value(value: Any) -> Any:
    """The value itself when it is small JSON, else a cut repr (request bodies may be anything)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return excerpt(repr(value))
    return value if len(text) <= EXCERPT_CHARS else excerpt(text)


def excerpt(text: str | bytes) -> str:
    """The first :data:`EXCERPT_CHARS` characters of a body, bytes decoded leniently."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + "..."


class CheckFailure(AssertionError):
    """A named check failed: ``check`` is the registry name, ``expected``/``received`` the verdict."""

    def __init__(self, check: str, expected: str, received: str, evidence: Evidence | None = None) -> None:
        super().__init__(f"[{check}] expected {expected}; received {received}")
        self.check = check
        self.expected = expected
        self.received = received
        self.evidence = evidence or Evidence()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for report.json."""
        return {
            "check": self.check,
            "expected": self.expected,
            "received": self.received,
            "evidence": self.evidence.as_dict(),
        }


class TargetError(CheckFailure):
    """The target did not answer (connection refused, timeout, protocol error)."""
