"""Media the mock hosts itself: ``url`` answers point at ``/hosted/<id>`` and expire.

002 "Download URLs are short-lived": hosted URLs typically expire after 1 hour (the spec's
``x-hosted-url-ttl-s``; configurable). An expired id answers 410, an unknown one 404, both in the
error envelope.

The store is bounded per API key (the ``owner`` of each item), never globally, so that no key can
evict another's URLs before their lifetime ends: a key holds at most :data:`MAX_ITEMS_PER_KEY` items
and :data:`MAX_BYTES_PER_KEY` bytes. Past either bound the key's own expired items go first, then
its own oldest live ones (their URLs answer 404 from then on). Keys are the configured ones, so the
whole store is bounded by their number times these bounds.

In a fleet (``state.url`` a Redis URL) the store is ``fleet/media.py``'s, in Redis, with the same rules:
every replica serves every URL.

A path may be reserved before its content exists (an asynchronous job's output, 004 "For AI
Agents"): until :meth:`HostedMedia.fill` it answers 425 ``not_ready`` with ``Retry-After`` (s).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from email.utils import formatdate

from starlette.requests import Request
from starlette.responses import Response

from mock_server.errors import ApiError

#: The route prefix of hosted media.
PREFIX = "/hosted"
#: Most items kept per key at once; past it the key's oldest go first.
MAX_ITEMS_PER_KEY = 512
#: Most bytes kept per key at once (256 MiB); past it the key's oldest go first.
MAX_BYTES_PER_KEY = 256 * 1024 * 1024
#: Retry-After of a reserved path not filled yet, in s.
NOT_READY_RETRY_AFTER_S = 1


@dataclass(frozen=True)
class Hosted:
    """One hosted file: ``expires_at`` is in the store clock's seconds."""

    content: bytes
    media_type: str
    expires_at: float
    ready: bool = True
    """False while the content is still being made (:meth:`HostedMedia.reserve`)."""
    owner: str | None = None
    """The API key whose bounds the item counts against."""


class HostedMedia:
    """An in-memory, expiring store of media served under :data:`PREFIX`, bounded per key (module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._items: dict[str, Hosted] = {}
        self._owned: dict[str | None, OrderedDict[str, None]] = {}  # each key's ids, oldest first
        self._clock = clock

    def put(self, content: bytes, media_type: str, ttl_s: float, suffix: str = "", owner: str | None = None) -> str:
        """Host ``content`` for ``ttl_s`` s, counted against ``owner``'s bounds; returns its path
        (``/hosted/<id><suffix>``)."""
        media_id = secrets.token_hex(12) + suffix
        self._store(media_id, Hosted(content, media_type, self._clock() + ttl_s, owner=owner))
        return f"{PREFIX}/{media_id}"

    def _store(self, media_id: str, item: Hosted) -> None:
        """Keep ``item`` as the newest of its owner's, then bring the owner back within its bounds."""
        self._items[media_id] = item
        owned = self._owned.setdefault(item.owner, OrderedDict())
        owned[media_id] = None
        owned.move_to_end(media_id)
        now = self._clock()
        for old in [old for old in owned if old != media_id and self._items[old].expires_at <= now]:
            self._forget(old)
        total = sum(len(self._items[one].content) for one in owned)
        while len(owned) > MAX_ITEMS_PER_KEY or (total > MAX_BYTES_PER_KEY and len(owned) > 1):
            oldest = next(iter(owned))
            total -= len(self._items[oldest].content)
            self._forget(oldest)

    def _forget(self, media_id: str) -> None:
        item = self._items.pop(media_id, None)
        if item is not None:
            self._owned.get(item.owner, OrderedDict()).pop(media_id, None)

    def reserve(self, media_type: str, ttl_s: float, suffix: str = "", owner: str | None = None) -> str:
        """A path (``/hosted/<id><suffix>``) for content not made yet, counted against ``owner``: 425 until
        :meth:`fill`."""
        path = self.put(b"", media_type, ttl_s, suffix, owner)
        media_id = path.rsplit("/", 1)[-1]
        self._items[media_id] = replace(self._items[media_id], ready=False)
        return path

    def fill(self, path: str, content: bytes, media_type: str, ttl_s: float) -> None:
        """Host ``content`` at a reserved ``path`` (or its absolute URL) for ``ttl_s`` s from now, for the
        reservation's owner. Nothing happens when the reservation is gone (discarded or evicted)."""
        media_id = path.rsplit("/", 1)[-1]
        reserved = self._items.get(media_id)
        if reserved is not None:
            self._store(media_id, Hosted(content, media_type, self._clock() + ttl_s, owner=reserved.owner))

    def discard(self, path: str) -> None:
        """Forget ``path`` (or its absolute URL): it answers 404 from now on."""
        self._forget(path.rsplit("/", 1)[-1])

    def url(self, request: Request, content: bytes, media_type: str, ttl_s: float, suffix: str = "",
            owner: str | None = None) -> str:
        """:meth:`put`, as an absolute URL on the host the request came to."""
        return str(request.base_url).rstrip("/") + self.put(content, media_type, ttl_s, suffix, owner)

    def get(self, media_id: str) -> Hosted:
        """The hosted item. Raises ApiError 404 if unknown, 410 if expired, 425 if reserved and not filled."""
        return self.check(media_id, self._items.get(media_id), self._clock())

    @staticmethod
    def check(media_id: str, item: Hosted | None, now: float) -> Hosted:
        """``item`` (found under ``media_id``) if it may be served at ``now`` (its ``expires_at``'s clock).
        Raises ApiError 404 if None, 410 if expired, 425 if reserved and not filled."""
        if item is None:
            raise ApiError(404, f"No hosted file {media_id!r}.", code="not_found")
        if now >= item.expires_at:
            raise ApiError(410, f"The hosted file {media_id!r} has expired; hosted URLs are short-lived.",
                           type="invalid_request_error", code="url_expired")
        if not item.ready:
            raise ApiError(425, f"The file {media_id!r} is not ready yet: poll its usage record and download it "
                                "once its status is completed.", type="invalid_request_error", code="not_ready",
                           headers={"Retry-After": str(NOT_READY_RETRY_AFTER_S)})
        return item

    # The asynchronous face the handlers and the endpoint use: a fleet's store (``fleet/media.py``) is
    # remote, so it overrides these; in process they are the synchronous methods above.

    async def publish(self, request: Request, content: bytes, media_type: str, ttl_s: float, suffix: str = "",
                      owner: str | None = None) -> str:
        """:meth:`url`, awaited."""
        return self.url(request, content, media_type, ttl_s, suffix, owner)

    async def reserve_path(self, media_type: str, ttl_s: float, suffix: str = "", owner: str | None = None) -> str:
        """:meth:`reserve`, awaited."""
        return self.reserve(media_type, ttl_s, suffix, owner)

    async def fill_path(self, path: str, content: bytes, media_type: str, ttl_s: float) -> None:
        """:meth:`fill`, awaited."""
        self.fill(path, content, media_type, ttl_s)

    async def discard_path(self, path: str) -> None:
        """:meth:`discard`, awaited."""
        self.discard(path)

    async def serve(self, media_id: str) -> Hosted:
        """:meth:`get`, awaited (same errors)."""
        return self.get(media_id)

    async def endpoint(self, request: Request) -> Response:
        """GET ``/hosted/{media_id}``: the file's bytes with its media type, and when the URL expires as
        ``Cache-Control: private, max-age=<s left>`` and ``Expires`` (an HTTP date), so that a client
        (and the suite's ``hosted_urls_download_later``) can read the lifetime off the answer."""
        try:
            item = await self.serve(request.path_params["media_id"])
        except ApiError as error:
            return error.response()
        left_s = max(int(item.expires_at - self._clock()), 0)
        return Response(item.content, media_type=item.media_type, headers={
            "Cache-Control": f"private, max-age={left_s}", "Expires": formatdate(time.time() + left_s, usegmt=True)})
