"""What a failed check carries, so that reports are built from objects and not from pytest's text.

Exception tree::

    AssertionError
     └── CheckFailure          one named check found a contract violation
          └── TargetError      the target could not be asked at all (unreachable, timeout)
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Longest response excerpt kept as evidence, in characters.
EXCERPT_CHARS = 600
#: Longest request body a reproduction (curl) carries whole, in characters; a longer one is cut like its excerpt.
CURL_BODY_CHARS = 16_000
#: Where the suite's key goes in a reproduction: the variable ``conformance run`` reads it from.
KEY_VARIABLE = "$CONFORMANCE_API_KEY"
#: Request headers whose values are credentials: recorded with the key replaced by its variable
#: (:func:`redact_headers`), never in clear.
SECRET_HEADERS = frozenset({"authorization", "x-api-key", "api-key", "proxy-authorization", "cookie"})
#: Request headers a reproduction leaves to curl (it sets its own, and they say nothing of the contract).
_CURL_OWN_HEADERS = frozenset({"host", "content-length", "connection", "accept-encoding", "user-agent", "accept"})
_PLACEHOLDER = re.compile(r"(\$CONFORMANCE_[A-Z_]+)")


def redact_headers(headers: Mapping[str, str], secrets: Mapping[str, str]) -> dict[str, str]:
    """A request's headers as evidence: names lower case; each known secret value replaced by its
    placeholder (``secrets`` maps value -> ``$CONFORMANCE_...`` variable, the target's key -> :data:`KEY_VARIABLE`),
    and any other value of a :data:`SECRET_HEADERS` header replaced by ``[redacted]`` (its scheme kept)."""
    shown: dict[str, str] = {}
    for name, value in headers.items():
        name = name.lower()
        for secret, placeholder in sorted(secrets.items(), key=lambda item: -len(item[0])):
            if secret:
                value = value.replace(secret, placeholder)
        if name in SECRET_HEADERS and not _PLACEHOLDER.search(value):
            scheme, _, rest = value.partition(" ")
            value = f"{scheme} [redacted]" if rest else "[redacted]"
        shown[name] = value
    return shown


def form_field(name: str, value: Any, filename: str | None = None, content_type: str | None = None) -> dict[str, Any]:
    """One multipart/form-data part as evidence: ``{"name", "value"}`` for a text field, ``{"name", "filename",
    "content_type", "bytes"}`` (size in bytes, content not kept) for a file."""
    if filename is None and not isinstance(value, bytes | bytearray):
        return {"name": name, "value": str(value)}
    size = len(value) if isinstance(value, bytes | bytearray | str) else None
    return {"name": name, "filename": filename or name, "content_type": content_type, "bytes": size}


@dataclass(frozen=True)
class Evidence:
    """The exchange behind a verdict: request method, URL, headers (secrets redacted: :func:`redact_headers`),
    body or multipart form (:func:`form_field` parts); response status, headers, excerpt."""

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
    request_headers: dict[str, str] | None = None
    """The headers sent, already redacted; None when not recorded (the reproduction then sends the usual key)."""
    form: list[dict[str, Any]] | None = None
    """The multipart/form-data parts sent (:func:`form_field`), or None for any other body."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form for report.json; the request carries ``curl``, its reproduction (:func:`curl_command`)."""
        request: dict[str, Any] = {"method": self.method, "url": self.url, "body": _excerpt_value(self.request_body)}
        if self.request_headers is not None:
            request["headers"] = self.request_headers
        if self.form is not None:
            request["form"] = self.form
        whole = _excerpt_value(self.request_body, CURL_BODY_CHARS)
        request["curl"] = curl_command({**request, "body": whole})
        shown = {
            "request": request,
            "response": {"status": self.status, "headers": self.headers, "body_excerpt": self.response_excerpt},
        }
        if self.upstream is not None:
            shown["upstream"] = self.upstream
        if self.media is not None:
            shown["media"] = self.media
        return shown


def _excerpt_value(value: Any, chars: int = EXCERPT_CHARS) -> Any:
    """The value itself when it is JSON of at most ``chars`` characters, else a cut repr (request bodies may
    be anything)."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        return excerpt(repr(value), chars)
    return value if len(text) <= chars else excerpt(text, chars)


def curl_command(request: Mapping[str, Any]) -> str:
    """A curl command line that sends an evidence request (report.json's ``request``) again; "" when it names no
    method and URL. Secrets stay in their variables (:data:`KEY_VARIABLE`), so the line runs where the key is
    set. A multipart form is sent as ``-F`` parts (a file as ``@filename``: its bytes are not kept); a request
    recorded without headers (reports before they were kept) sends the target's usual key and a JSON body."""
    method, url, body = request.get("method") or "", request.get("url") or "", request.get("body")
    if not method or not url:
        return ""
    headers = request.get("headers")
    form = request.get("form")
    if not isinstance(headers, Mapping):
        key = "x-api-key" if "/v1/messages" in url else "authorization"
        headers = {key: KEY_VARIABLE if key == "x-api-key" else f"Bearer {KEY_VARIABLE}"}
        if body is not None:
            headers["content-type"] = "application/json"
    parts = ["curl", "-sS", *(["-X", method] if method != "GET" else []), shlex.quote(url)]
    for name, value in headers.items():
        if name.lower() in _CURL_OWN_HEADERS or (form is not None and name.lower() == "content-type"):
            continue  # curl writes a multipart Content-Type with its own boundary
        parts += ["-H", _shell_word(f"{_header_name(name)}: {value}")]
    if isinstance(form, list):
        for part in form:
            if "filename" in part:
                typed = f";type={part['content_type']}" if part.get("content_type") else ""
                parts += ["-F", shlex.quote(f"{part['name']}=@{part['filename']}{typed}")]
            else:  # -F would read a value starting with @ or < as a file, and split one at ";"
                plain = not str(part["value"]).startswith(("@", "<")) and ";" not in str(part["value"])
                parts += ["-F" if plain else "--form-string", shlex.quote(f"{part['name']}={part['value']}")]
    elif body is not None:
        parts += ["-d", shlex.quote(body if isinstance(body, str) else json.dumps(body))]
    return " ".join(parts)


def _header_name(name: str) -> str:
    """``authorization`` as ``Authorization``, ``x-api-key`` kept: the spelling people write."""
    return name.title() if name.lower() in ("authorization", "content-type") else name


def _shell_word(text: str) -> str:
    """``text`` as one shell word; ``$CONFORMANCE_...`` placeholders in it expanded by the shell, nothing else."""
    if not _PLACEHOLDER.search(text):
        return shlex.quote(text)
    pieces = _PLACEHOLDER.split(text)  # literal, placeholder, literal, ...
    return '"' + "".join(piece if index % 2 else re.sub(r'([\\"`$])', r"\\\1", piece)
                         for index, piece in enumerate(pieces)) + '"'


def excerpt(text: str | bytes, chars: int = EXCERPT_CHARS) -> str:
    """The first ``chars`` (default :data:`EXCERPT_CHARS`) characters of a body, bytes decoded leniently."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return text if len(text) <= chars else text[:chars] + "..."


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
