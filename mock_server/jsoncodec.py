"""JSON on the request path: orjson where it gives the standard library's result, the stdlib otherwise.

Parsing a chat request and rendering its answer with :mod:`json` cost about 3 us and 7 us on the
reference machine; orjson takes about 0.5 us each (``benchmarks/RESULTS.md``). Semantics stay the
standard library's:

- :func:`loads` falls back to :func:`json.loads` for what orjson refuses, and for a body with 19 or
  more digits in a row, since orjson reads an integer past 64 bits as a float where the stdlib keeps
  it exact. What the stdlib takes and orjson refuses is not JSON a client may send (RFC 8259
  "Numbers" has no ``NaN`` or infinities; a lone surrogate escape such as ``"\\ud800"`` is no
  Unicode text, and answers echoing it could not be encoded): a fallback value holding one raises
  :class:`UnsafeJson` naming its place, and so does nesting orjson's parser refuses (over 1024
  levels) or the stdlib's recursion limit stops. A valid body parsed by orjson pays for none of it;
- :func:`dumps` renders compact UTF-8 JSON as Starlette's ``JSONResponse`` does
  (``ensure_ascii=False``, separators ``,`` and ``:``), and falls back to that encoder for what
  orjson refuses (integers past 64 bits, non-string keys, lone surrogates), which then raises as
  ``JSONResponse`` would. One difference: NaN and infinity become ``null`` (``JSONResponse``
  raises ValueError for them: a 500).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import orjson
from starlette.responses import Response

#: The stdlib encoder of the fallback, with ``JSONResponse``'s options (built once).
_ENCODER = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))
#: The media type of every JSON answer.
JSON_MEDIA_TYPE = "application/json"
#: A run of digits that may be an integer past 64 bits (2**64 has 20 digits).
_LONG_DIGITS = re.compile(rb"\d{19}")
#: The ASCII digits (what ``\d`` matches in a bytes pattern).
_DIGITS = b"0123456789"


class UnsafeJson(ValueError):
    """A body that parses only by the stdlib's leniency, or nests too deep: ``path`` is where (the keys
    and indexes from the root, ``[]`` for the root itself) and ``message`` says what was found there."""

    def __init__(self, message: str, path: list[str | int]) -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def loads(raw: bytes) -> Any:
    """The JSON value of ``raw``. Raises ``json.JSONDecodeError`` or ``UnicodeDecodeError`` as :func:`json.loads`,
    and :class:`UnsafeJson` for a non-finite number, a lone surrogate or nesting past :data:`MAX_DEPTH` levels."""
    if not long_digits(raw):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            if str(error).startswith("depth limit"):
                raise UnsafeJson(TOO_DEEP, []) from None
    try:
        value = json.loads(raw)
    except RecursionError:
        raise UnsafeJson(TOO_DEEP, []) from None
    _check_standard(value)
    return value


def long_digits(raw: bytes) -> bool:
    """Whether ``raw`` holds a run of 19 digits (:data:`_LONG_DIGITS`: it may be an integer past 64 bits).
    A body with fewer than 19 digits in all cannot: counting them (``bytes.translate``, at C speed) spares
    the usual body the regex's scan, about ten times dearer."""
    if isinstance(raw, bytes) and len(raw) - len(raw.translate(None, _DIGITS)) < 19:
        return False
    return _LONG_DIGITS.search(raw) is not None


#: Deepest nesting :func:`loads` takes (orjson's own limit; the stdlib's recursion limit stops near 1000).
MAX_DEPTH = 1024
#: The message of :class:`UnsafeJson` for a body nested deeper than the parsers go.
TOO_DEEP = "the JSON nests too deeply (arrays and objects about 1,000 levels deep or more)"


def _check_standard(value: Any) -> None:
    """Raises :class:`UnsafeJson` at the first non-finite number or string (key or value) with a lone
    surrogate in ``value`` (depth first, in document order; iterative: no recursion limit)."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, path = stack.pop()
        if isinstance(node, float) and not math.isfinite(node):
            raise UnsafeJson(f"{node} is not a JSON number (RFC 8259 has no NaN or infinity)", path)
        if isinstance(node, str) and _has_surrogate(node):
            raise UnsafeJson("the string holds a lone UTF-16 surrogate (\\ud800-\\udfff), which is not Unicode "
                             "text", path)
        if len(path) > MAX_DEPTH:
            raise UnsafeJson(TOO_DEEP, path[:1])
        if isinstance(node, dict):
            for key in node:
                if _has_surrogate(key):
                    raise UnsafeJson("the key holds a lone UTF-16 surrogate, which is not Unicode text", path)
            stack.extend((item, [*path, key]) for key, item in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((item, [*path, index]) for index, item in reversed(list(enumerate(node))))


def _has_surrogate(text: str) -> bool:
    """Whether ``text`` holds a code point of the surrogate range (it cannot be encoded as UTF-8)."""
    return not text.isascii() and _SURROGATE.search(text) is not None


#: A code point of the UTF-16 surrogate range.
_SURROGATE = re.compile("[\ud800-\udfff]")


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON bytes (the bytes ``JSONResponse`` sends for it, up to the
    spelling of floats). Raises what ``JSONResponse`` raises for a value orjson refuses (TypeError,
    UnicodeEncodeError)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return _ENCODER.encode(value).encode("utf-8")


def json_response(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``content`` as an ``application/json`` answer: ``JSONResponse(content, status_code, headers)``, faster."""
    if headers or status_code != 200:
        return Response(dumps(content), status_code, headers=headers, media_type=JSON_MEDIA_TYPE)
    return _JsonBody(dumps(content))


class _JsonBody(Response):
    """A 200 ``application/json`` answer of ready bytes and no extra header: the two headers Starlette's
    ``init_headers`` would work out (the same names, values and order), set at once."""

    media_type = JSON_MEDIA_TYPE

    def __init__(self, body: bytes) -> None:
        self.status_code = 200
        self.background = None
        self.body = body
        self.raw_headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]


#: ``json_bytes_response(body)``: a 200 ``application/json`` answer of ``body`` (bytes, JSON already encoded),
#: as :func:`json_response` sends it; the class itself, so that building one is a single call.
json_bytes_response = _JsonBody
