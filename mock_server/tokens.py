"""The mock's tokens: how text splits into them and how many a request's text holds.

Counted on every request (the TPM estimate of the rate limits, and ``usage``), so this module is one of
the few compiled to C with mypyc at install when a compiler is there (``setup.py``; the pure-Python
module is the fallback, and ``mock_server.compiled`` says which one runs). Everything here is a pure
function of its input.
"""

from __future__ import annotations

import re
from typing import Any

#: One token with its leading white space: a word, or a single character that is neither a word
#: character nor white space.
PIECE = re.compile(r"\s*(?:\w+|[^\w\s])")

#: The fields that ask for output room, first found counts: chat's two spellings, then the Responses API's.
ROOM_FIELDS = ("max_completion_tokens", "max_tokens", "max_output_tokens")


def pieces(text: str) -> list[str]:
    """Split text into the mock's tokens, each with its leading white space: ``"".join`` restores it.

    Tokens are words and single punctuation marks; they are the unit of usage counts, of
    ``max_tokens`` truncation and of streamed deltas.
    """
    found: list[str] = PIECE.findall(text)
    return found


def _ascii_classes() -> bytes:
    """A ``bytes.translate`` table for ASCII: word characters (``\\w``) to ``a``, white space (``\\s``) to
    a space, every other character to ``.``; taken from the regex engine's own classes."""
    return bytes([ord("a") if re.match(r"\w", chr(b)) else ord(" ") if re.match(r"\s", chr(b)) else ord(".")
                  for b in range(256)])


_CLASSES = _ascii_classes()


def count_tokens(text: str) -> int:
    """Number of mock tokens in ``text`` (see :func:`pieces`): its words plus its other non-space characters.

    ASCII text is counted without the regex (about 6x faster; it is counted on every request, for
    TPM and for usage): after mapping each character to its class, a word is an ``a`` that starts a
    run (after a space or a mark, or first), and every ``.`` is a token. Other text goes through the regex.
    """
    if not text.isascii():
        return len(PIECE.findall(text))
    classes = text.encode().translate(_CLASSES)
    words = classes.replace(b".", b" ")  # a word starts after a space or a mark: one two-byte count, not two
    return words.count(b" a") + words.startswith(b"a") + classes.count(b".")


def strings(body: Any) -> list[str]:
    """Every string of a JSON value, nested objects and arrays included (in no particular order)."""
    out: list[str] = []
    pending: list[Any] = [body]
    while pending:
        value = pending.pop()
        kind = type(value)
        if kind is str:
            out.append(value)
        elif kind is dict:
            pending += value.values()
        elif kind is list:
            pending += value
    return out


def estimated_tokens(body: Any) -> int:
    """A request's TPM weight (tokens): the tokens of its text plus the output it asks room for
    (``max_completion_tokens``, ``max_tokens`` or ``max_output_tokens``, the first given as a number).

    The strings are counted joined by spaces, in one pass: a token never spans white space, so the
    count is the sum of the strings' counts, whatever their order.
    """
    room = 0
    if isinstance(body, dict) and not body.keys().isdisjoint(ROOM_FIELDS):
        for name in ROOM_FIELDS:
            value = body.get(name)
            if isinstance(value, (int, float)):
                room = int(value)
                break
    return count_tokens(" ".join(strings(body))) + room
