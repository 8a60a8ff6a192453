"""Media the mock hosts itself: ``url`` answers point at ``/hosted/<id>`` and expire.

002 "Download URLs are short-lived": hosted URLs typically expire after 1 hour (the spec's
``x-hosted-url-ttl-s``; configurable). An expired id answers 410, an unknown one 404, both in the
error envelope. The store keeps at most :data:`MAX_ITEMS` items, dropping the oldest first.

A path may be reserved before its content exists (an asynchronous job's output, 004 "For AI
Agents"): until :meth:`HostedMedia.fill` it answers 425 ``not_ready`` with ``Retry-After`` (s).
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace

from starlette.requests import Request
from starlette.responses import Response

from mock_server.errors import ApiError

#: The route prefix of hosted media.
PREFIX = "/hosted"
#: Most items kept at once; the oldest go first (bounded memory).
MAX_ITEMS = 512
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


class HostedMedia:
    """An in-memory, bounded, expiring store of media served under :data:`PREFIX`."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._items: OrderedDict[str, Hosted] = OrderedDict()
        self._clock = clock

    def put(self, content: bytes, media_type: str, ttl_s: float, suffix: str = "") -> str:
        """Host ``content`` for ``ttl_s`` s; returns its path (``/hosted/<id><suffix>``)."""
        media_id = secrets.token_hex(12) + suffix
        self._items[media_id] = Hosted(content, media_type, self._clock() + ttl_s)
        while len(self._items) > MAX_ITEMS:
            self._items.popitem(last=False)
        return f"{PREFIX}/{media_id}"

    def reserve(self, media_type: str, ttl_s: float, suffix: str = "") -> str:
        """A path (``/hosted/<id><suffix>``) for content not made yet: 425 until :meth:`fill`."""
        path = self.put(b"", media_type, ttl_s, suffix)
        media_id = path.rsplit("/", 1)[-1]
        if media_id in self._items:
            self._items[media_id] = replace(self._items[media_id], ready=False)
        return path

    def fill(self, path: str, content: bytes, media_type: str, ttl_s: float) -> None:
        """Host ``content`` at a reserved ``path`` (or its absolute URL) for ``ttl_s`` s from now."""
        media_id = path.rsplit("/", 1)[-1]
        self._items[media_id] = Hosted(content, media_type, self._clock() + ttl_s)
        self._items.move_to_end(media_id)
        while len(self._items) > MAX_ITEMS:
            self._items.popitem(last=False)

    def discard(self, path: str) -> None:
        """Forget ``path`` (or its absolute URL): it answers 404 from now on."""
        self._items.pop(path.rsplit("/", 1)[-1], None)

    def url(self, request: Request, content: bytes, media_type: str, ttl_s: float, suffix: str = "") -> str:
        """:meth:`put`, as an absolute URL on the host the request came to."""
        return str(request.base_url).rstrip("/") + self.put(content, media_type, ttl_s, suffix)

    def get(self, media_id: str) -> Hosted:
        """The hosted item. Raises ApiError 404 if unknown, 410 if expired, 425 if reserved and not filled."""
        item = self._items.get(media_id)
        if item is None:
            raise ApiError(404, f"No hosted file {media_id!r}.", code="not_found")
        if self._clock() >= item.expires_at:
            raise ApiError(410, f"The hosted file {media_id!r} has expired; hosted URLs are short-lived.",
                           type="invalid_request_error", code="url_expired")
        if not item.ready:
            raise ApiError(425, f"The file {media_id!r} is not ready yet: poll its usage record and download it "
                                "once its status is completed.", type="invalid_request_error", code="not_ready",
                           headers={"Retry-After": str(NOT_READY_RETRY_AFTER_S)})
        return item

    async def endpoint(self, request: Request) -> Response:
        """GET ``/hosted/{media_id}``: the file's bytes with its media type."""
        try:
            item = self.get(request.path_params["media_id"])
        except ApiError as error:
            return error.response()
        return Response(item.content, media_type=item.media_type)
