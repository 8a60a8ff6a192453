"""Deterministic stand-ins for model output: tokens, text, and JSON that satisfies a schema.

Everything here is a pure function of its inputs and a seed, so the mock's answers are
repeatable: the same seed and request give the same content.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from mock_server.tokens import count_tokens, pieces

#: count_tokens and pieces live in mock_server.tokens (compiled with mypyc where it can be); named here too.
__all__ = ["HashRandom", "count_tokens", "instance_of", "key_for", "pieces", "rng_for", "safe_instance_of", "sentence",
           "sentence_for"]

_WORDS = (
    "the", "model", "considers", "your", "request", "and", "answers", "with", "a", "concise",
    "deterministic", "reply", "drawn", "from", "a", "seeded", "vocabulary", "so", "that", "tests", "can",
    "rely", "on", "stable", "output", "while", "still", "exercising", "streaming", "tokens", "usage",
    "accounting", "images", "audio", "video", "documents", "tools", "and", "structured", "results",
    "gateway", "prompt", "context", "clear", "useful", "example", "detail", "format", "provider", "latency",
    "credits", "limits", "schema", "fields", "values", "answer", "signal", "quality", "review", "summary",
    "method", "system", "content", "message",
)
#: One random byte picks a word (``byte & _WORD_MASK``): the vocabulary is a power of two, so every word is
#: equally likely without rejection sampling.
_WORD_MASK = len(_WORDS) - 1
assert len(_WORDS) & _WORD_MASK == 0, "the vocabulary must have a power-of-two size"
assert all(word == word.lower() for word in _WORDS), "sentence() capitalises by upper-casing the first letter"
#: The word each byte value picks.
_WORD_OF_BYTE = tuple(_WORDS[byte & _WORD_MASK] for byte in range(256))


#: Bytes of one SHA-256 block of :class:`HashRandom`'s stream.
_BLOCK_BYTES = 32


try:  # CPython's own SHA-256: for one 40-byte block about 1,500 instructions cheaper than OpenSSL's EVP call
    from _sha256 import sha256 as _sha256_builtin  # type: ignore[import-not-found]
except ImportError:  # a build without it: the same digest from hashlib
    _sha256_builtin = None
_block_sha256: Callable[[bytes], Any] = _sha256_builtin or hashlib.sha256


def _block(key: bytes, counter: int) -> bytes:
    """Block ``counter`` (1, 2, ...) of :class:`HashRandom`'s stream for ``key``: SHA-256 of the key and the
    counter as 8 big-endian bytes."""
    digest: bytes = _block_sha256(key + counter.to_bytes(8, "big")).digest()
    return digest


class HashRandom(random.Random):
    """A ``random.Random`` whose bits are SHA-256 of a key and a counter (counter mode).

    Seeding costs one hash where the Mersenne Twister's costs about 4 us, a tenth of a chat
    completion's time in the mock (``benchmarks/profile_chat.py``). Every other method of
    ``random.Random`` (choice, randrange, uniform, lognormvariate...) runs on :meth:`getrandbits` and
    :meth:`random`. Deterministic (the same key, the same draws); not for cryptography.
    """

    def __init__(self, key: bytes) -> None:
        super().__init__(key)

    def seed(self, a: Any = None, version: int = 2) -> None:
        """Start the stream of key ``a`` (bytes; anything else is hashed from its ``repr``)."""
        self._key = bytes(a) if isinstance(a, bytes | bytearray) else hashlib.sha256(repr(a).encode()).digest()
        self._counter = 0
        self._pool = 0  # bits drawn from the stream and not used yet
        self._pool_bits = 0

    def getrandbits(self, k: int) -> int:
        """``k`` random bits as a non-negative int. Raises ValueError for ``k`` < 0."""
        if k < 0:
            raise ValueError("number of bits must be non-negative")
        while self._pool_bits < k:
            self._counter += 1
            block = _block(self._key, self._counter)
            self._pool = (self._pool << 256) | int.from_bytes(block, "big")
            self._pool_bits += 256
        self._pool_bits -= k
        value = self._pool >> self._pool_bits
        self._pool &= (1 << self._pool_bits) - 1
        return value

    def random(self) -> float:
        """A float in [0, 1) with 53 random bits."""
        return self.getrandbits(53) * 2.0**-53

    def randbytes(self, n: int) -> bytes:
        """``n`` random bytes: the same as ``getrandbits(8 * n)`` gives, taken straight from a fresh
        block when no bits are pooled and one block holds them (a sentence's draw)."""
        if self._pool_bits == 0 and 0 < n <= _BLOCK_BYTES:
            self._counter += 1
            block = _block(self._key, self._counter)
            self._pool = int.from_bytes(block[n:], "big")
            self._pool_bits = (_BLOCK_BYTES - n) * 8
            return block[:n]
        return self.getrandbits(n * 8).to_bytes(n, "big")

    def getstate(self) -> tuple[Any, ...]:
        """The stream's position (for ``setstate``)."""
        return (self._key, self._counter, self._pool, self._pool_bits)

    def setstate(self, state: tuple[Any, ...]) -> None:
        """Return to a position :meth:`getstate` gave."""
        self._key, self._counter, self._pool, self._pool_bits = state


def rng_for(seed: int, *parts: Any) -> random.Random:
    """A generator (:class:`HashRandom`) keyed by ``seed`` and a stable hash of ``parts`` (JSON-serialisable):
    ``HashRandom(key_for(seed, *parts))``."""
    return HashRandom(key_for(seed, *parts))


def key_for(seed: int, *parts: Any) -> bytes:
    """The 32-byte key of :func:`rng_for`: SHA-256 of the parts' canonical JSON (sorted keys; orjson, else
    the stdlib for what orjson refuses, such as integers past 64 bits). The same parts give the same key."""
    try:
        canonical = orjson.dumps([seed, *parts], default=str, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        canonical = json.dumps([seed, *parts], sort_keys=True, default=str).encode()
    return hashlib.sha256(canonical).digest()


def sentence(rng: random.Random, count: int) -> str:
    """Plain prose of exactly ``count`` tokens (``count`` >= 1) ending in a full stop.

    Each word is one random byte's pick of the vocabulary (one ``randbytes`` call for the sentence).
    """
    return _prose(rng.randbytes(max(count - 1, 1)), count)


def sentence_for(key: bytes, count: int) -> str:
    """``sentence(HashRandom(key), count)``, without building the generator when one block holds the
    draw (the plain chat answer, on every request)."""
    draw = max(count - 1, 1)
    if draw > _BLOCK_BYTES:
        return sentence(HashRandom(key), count)
    return _prose(_block(key, 1)[:draw], count)  # a fresh stream's first randbytes(draw)


def _prose(draw: bytes, count: int) -> str:
    """The words the bytes of ``draw`` pick, the first capitalised, with a full stop when ``count`` > 1."""
    if count == 1:
        return _WORD_OF_BYTE[draw[0]].capitalize()
    text = " ".join([_WORD_OF_BYTE[byte] for byte in draw])
    return text[0].upper() + text[1:] + "."  # the vocabulary is lower case: capitalize() of the first word


def instance_of(schema: Mapping[str, Any], rng: random.Random, root: Mapping[str, Any] | None = None) -> Any:
    """A JSON value valid against ``schema`` (a practical subset of JSON Schema 2020-12).

    Handles type, const, enum, properties/required, items, min/max bounds, oneOf/anyOf/allOf and
    local ``#/$defs`` refs. Used for tool_calls arguments (001 "What you can do"); json_schema
    structured output has ``mock_server.structured``, which honours every keyword.
    """
    root = schema if root is None else root
    if "$ref" in schema:
        return instance_of(_local_ref(root, schema["$ref"]), rng, root)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return instance_of(schema[key][0], rng, root)
    if "allOf" in schema:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            resolved = _local_ref(root, part["$ref"]) if "$ref" in part else part
            merged.setdefault("properties", {}).update(resolved.get("properties", {}))
            merged["required"] = [*merged.get("required", []), *resolved.get("required", [])]
            merged.setdefault("type", resolved.get("type"))
        return instance_of(merged, rng, root)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties", {})
        return {name: instance_of(sub, rng, root) for name, sub in props.items()}
    if kind == "array":
        count = max(int(schema.get("minItems", 1)), 1)
        count = min(count, int(schema.get("maxItems", count)))
        item = schema.get("items", {})
        return [instance_of(item, rng, root) for _ in range(count)]
    if kind in ("integer", "number"):
        return _number_for(schema, rng, integer=(kind == "integer"))
    if kind == "boolean":
        return rng.random() < 0.5
    if kind == "null":
        return None
    return _string_for(schema, rng)


def safe_instance_of(schema: Any, rng: random.Random) -> Any:
    """:func:`instance_of`, or ``{}`` when the schema is malformed or beyond the supported subset.

    Raises nothing: a client's odd schema must never turn into a server error.
    """
    try:
        return instance_of(schema, rng) if isinstance(schema, Mapping) else {}
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError):
        return {}


def _number_for(schema: Mapping[str, Any], rng: random.Random, *, integer: bool) -> int | float:
    step = 1 if integer else 0.01
    low = schema.get("minimum", schema["exclusiveMinimum"] + step if "exclusiveMinimum" in schema else 0)
    high = schema.get("maximum", schema["exclusiveMaximum"] - step if "exclusiveMaximum" in schema else low + 100)
    if integer:
        return rng.randint(math.ceil(low), max(math.floor(high), math.ceil(low)))
    value: float = min(max(round(rng.uniform(low, high), 2), low), high)
    return value


def _string_for(schema: Mapping[str, Any], rng: random.Random) -> str:
    formats = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "email": "user@example.com",
               "uri": "https://example.com/", "uuid": "00000000-0000-4000-8000-000000000000"}
    if schema.get("format") in formats:
        return formats[schema["format"]]
    text = sentence(rng, 4).rstrip(".")
    low, high = int(schema.get("minLength", 0)), int(schema.get("maxLength", 10_000))
    text = (text + " " + "x" * low)[: max(low, len(text))] if len(text) < low else text
    return text[:high]


def _local_ref(root: Mapping[str, Any], ref: str) -> Mapping[str, Any]:
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        node = node[part]
    return dict(node)
