"""The connection to the fleet's Redis, its key namespace, and the one error its callers see.

Every Redis call of the fleet goes through :class:`RedisStore`: a ``redis.asyncio`` client with short
socket timeouts (a Redis that went away answers in at most :data:`SOCKET_TIMEOUT_S`, never a hang),
whose errors become :class:`StateUnavailable` (the app answers it 503 in the error envelope). redis-py's
pool reconnects by itself on the next call, so the mock recovers as soon as Redis is back.

Keys are ``gc:<namespace>:<part>:...``: two fleets with different namespaces share one Redis safely.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, RedisError

#: Most seconds a Redis call may take before it fails (connect, read or write).
SOCKET_TIMEOUT_S = 2.0
#: Seconds to wait for a TCP connection to Redis.
CONNECT_TIMEOUT_S = 1.0
#: Connections per process (each concurrent call holds one; batching keeps the hot path to a few).
MAX_CONNECTIONS = 64
#: The prefix of every key the mock writes.
KEY_PREFIX = "gc"


class StateUnavailable(Exception):
    """The shared state store (Redis) could not be reached or failed; nothing was changed by the call
    unless Redis applied it before the connection broke. The app answers 503 ``state_unavailable``."""


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """Turn any Redis error (connection refused, timeout, script error) into :class:`StateUnavailable`."""
    try:
        yield
    except RedisError as error:
        raise StateUnavailable(f"the shared state store (Redis) failed: {error}") from error
    except OSError as error:
        raise StateUnavailable(f"the shared state store (Redis) is unreachable: {error}") from error


def text(value: object) -> str:
    """A Redis answer (bytes) as text."""
    return value.decode() if isinstance(value, bytes) else str(value)


def raw(value: object) -> bytes:
    """A Redis answer as bytes."""
    return value if isinstance(value, bytes) else str(value).encode()


class Script:
    """A Lua script run by its SHA (``EVALSHA``), loaded again after a Redis restart (``NOSCRIPT``)."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha: str | None = None

    async def __call__(self, client: aioredis.Redis, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """The script's result. Raises redis errors (callers run it under :func:`guarded`)."""
        if self.sha is None:
            self.sha = await client.script_load(self.source)
        try:
            return await client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:  # Redis restarted without its script cache
            self.sha = await client.script_load(self.source)
            return await client.evalsha(self.sha, len(keys), *keys, *args)


class RedisStore:
    """The fleet's Redis: ``url`` (``redis://host:port/db``) and ``namespace`` (keys ``gc:<namespace>:...``).

    ``client`` is a ``redis.asyncio.Redis`` (bytes answers) bound to no event loop until first used;
    :meth:`key` builds a namespaced key. Raises ValueError for a URL redis-py cannot parse.
    """

    def __init__(self, url: str, namespace: str) -> None:
        self.url = url
        self.namespace = namespace
        self.prefix = f"{KEY_PREFIX}:{namespace}:"
        self.client: aioredis.Redis = aioredis.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=CONNECT_TIMEOUT_S,
            max_connections=MAX_CONNECTIONS, retry_on_timeout=False, health_check_interval=0)
        self._ids = itertools.count(1)

    def key(self, *parts: object) -> str:
        """``gc:<namespace>:<part>:<part>...``."""
        return self.prefix + ":".join(map(str, parts))

    async def run(self, script: Script, keys: Sequence[str], args: Sequence[Any]) -> Any:
        """Run ``script`` atomically. Raises :class:`StateUnavailable` when Redis fails."""
        with guarded():
            return await script(self.client, keys, args)

    async def ping(self) -> None:
        """Raises :class:`StateUnavailable` unless Redis answers."""
        with guarded():
            await self.client.ping()

    async def close(self) -> None:
        """Close the pool's connections (the store may be used again: it reconnects)."""
        with contextlib.suppress(RedisError, OSError):
            await self.client.aclose()
