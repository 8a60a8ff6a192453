"""Media the mock hosts itself: ``url`` answers point at ``/hosted/<id>`` and expire.

002 "Download URLs are short-lived": hosted URLs typically expire after 1 hour (the spec's
``x-hosted-url-ttl-s``; configurable). An expired id answers 410, an unknown one 404, both in the
error envelope. The store keeps at most :data:`MAX_ITEMS` items, dropping the oldest first.
"""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from mock_server.errors import ApiError

#: The route prefix of hosted media.
PREFIX = "/hosted"
#: Most items kept at once; the oldest go first (bounded memory).
MAX_ITEMS = 512


@dataclass(frozen=True)
class Hosted:
    """One hosted file: ``expires_at`` is in the store clock's seconds."""

    content: bytes
    media_type: str
    expires_at: float


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

    def url(self, request: Request, content: bytes, media_type: str, ttl_s: float, suffix: str = "") -> str:
        """:meth:`put`, as an absolute URL on the host the request came to."""
        return str(request.base_url).rstrip("/") + self.put(content, media_type, ttl_s, suffix)

    def get(self, media_id: str) -> Hosted:
        """The hosted item. Raises ApiError 404 if unknown, 410 if expired."""
        item = self._items.get(media_id)
        if item is None:
            raise ApiError(404, f"No hosted file {media_id!r}.", code="not_found")
        if self._clock() >= item.expires_at:
            raise ApiError(410, f"The hosted file {media_id!r} has expired; hosted URLs are short-lived.",
                           type="invalid_request_error", code="url_expired")
        return item

    async def endpoint(self, request: Request) -> Response:
        """GET ``/hosted/{media_id}``: the file's bytes with its media type."""
        try:
            item = self.get(request.path_params["media_id"])
        except ApiError as error:
            return error.response()
        return Response(item.content, media_type=item.media_type)
