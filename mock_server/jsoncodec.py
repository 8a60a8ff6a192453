"""JSON on the request path: orjson where it gives the standard library's result, the stdlib otherwise.

Parsing a chat request and rendering its answer with :mod:`json` cost about 3 us and 7 us on the
reference machine; orjson takes about 0.5 us each (``benchmarks/RESULTS.md``). Semantics stay the
standard library's:

- :func:`loads` falls back to :func:`json.loads` for what orjson refuses and the stdlib takes
  (``NaN``, lone surrogate escapes such as ``"\\ud800"``), and for a body with 19 or more digits
  in a row, since orjson reads an integer past 64 bits as a float where the stdlib keeps it exact:
  a body is accepted or refused, and its values read, exactly as before;
- :func:`dumps` renders compact UTF-8 JSON as Starlette's ``JSONResponse`` does
  (``ensure_ascii=False``, separators ``,`` and ``:``), and falls back to that encoder for what
  orjson refuses (integers past 64 bits, non-string keys, lone surrogates), which then raises as
  ``JSONResponse`` would. One difference: NaN and infinity become ``null`` (``JSONResponse``
  raises ValueError for them: a 500).
"""

from __future__ import annotations

import json
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


def loads(raw: bytes) -> Any:
    """The JSON value of ``raw``. Raises ``json.JSONDecodeError`` or ``UnicodeDecodeError`` as :func:`json.loads`."""
    if _LONG_DIGITS.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(raw)


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
