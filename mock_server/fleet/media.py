"""Hosted media shared by a fleet: ``/hosted/<id>`` served by any replica, from Redis.

The rules are ``hosted.py``'s (expiry answered 410, reservations 425 until filled, per-key bounds of
:data:`~mock_server.hosted.MAX_ITEMS_PER_KEY` items and :data:`~mock_server.hosted.MAX_BYTES_PER_KEY`
bytes, a key's expired then oldest items going first), applied by one Lua script per store so that
replicas storing for the same key at once never break the bounds. ``expires_at`` is wall-clock time
(s since the epoch), the one clock replicas share; Redis forgets an item :data:`GONE_KEEP_S` after
it expired (it answers 410 until then, 404 after).

Keys: ``gc:<ns>:media:<id>`` (a hash: content, media_type, expires_at, ready, owner),
``gc:<ns>:media-owner:<key>`` (the key's ids by age) and ``gc:<ns>:media-size:<key>`` (their sizes).
"""

from __future__ import annotations

import secrets
import time

from starlette.requests import Request

from mock_server.errors import state_unavailable
from mock_server.fleet.store import RedisStore, Script, StateUnavailable, guarded, raw, text
from mock_server.hosted import MAX_BYTES_PER_KEY, MAX_ITEMS_PER_KEY, PREFIX, Hosted, HostedMedia

#: Seconds an expired item is kept (answering 410) before Redis forgets it (then 404).
GONE_KEEP_S = 3600

_STORE = Script("""
local item, owned, sizes = KEYS[1], KEYS[2], KEYS[3]
local id, now, prefix = ARGV[1], tonumber(ARGV[7]), ARGV[10]
if ARGV[11] == '1' and redis.call('EXISTS', item) == 0 then return 0 end
redis.call('HSET', item, 'content', ARGV[2], 'media_type', ARGV[3], 'expires_at', ARGV[4], 'ready', ARGV[5],
           'owner', ARGV[6])
redis.call('PEXPIRE', item, ARGV[8])
redis.call('ZADD', owned, now, id)
redis.call('HSET', sizes, id, #ARGV[2])
local total = 0
for _, other in ipairs(redis.call('ZRANGE', owned, 0, -1)) do
  local expires = redis.call('HGET', prefix .. other, 'expires_at')
  if other ~= id and (not expires or tonumber(expires) <= now) then
    redis.call('DEL', prefix .. other); redis.call('ZREM', owned, other); redis.call('HDEL', sizes, other)
  else
    total = total + tonumber(redis.call('HGET', sizes, other) or '0')
  end
end
local limit_items, limit_bytes = tonumber(ARGV[9]), tonumber(ARGV[12])
while redis.call('ZCARD', owned) > limit_items or (total > limit_bytes and redis.call('ZCARD', owned) > 1) do
  local oldest = redis.call('ZRANGE', owned, 0, 0)[1]
  total = total - tonumber(redis.call('HGET', sizes, oldest) or '0')
  redis.call('DEL', prefix .. oldest); redis.call('ZREM', owned, oldest); redis.call('HDEL', sizes, oldest)
end
redis.call('PEXPIRE', owned, ARGV[8]); redis.call('PEXPIRE', sizes, ARGV[8])
return 1
""")


class SharedHostedMedia(HostedMedia):
    """:class:`~mock_server.hosted.HostedMedia` whose items live in Redis (module docstring), at most
    ``max_items`` items and ``max_bytes`` bytes per key (the in-process bounds by default). Only the
    asynchronous face (:meth:`publish`, :meth:`reserve_path`, :meth:`fill_path`, :meth:`discard_path`,
    :meth:`serve`) is shared; each raises :class:`StateUnavailable` when Redis fails, except
    :meth:`serve`, which raises the 503 ApiError (the endpoint's answer)."""

    def __init__(self, store: RedisStore, max_items: int = MAX_ITEMS_PER_KEY, max_bytes: int = MAX_BYTES_PER_KEY
                 ) -> None:
        super().__init__(time.time)
        self.store = store
        self.max_items = max_items
        self.max_bytes = max_bytes

    async def _put(self, media_id: str, content: bytes, media_type: str, ttl_s: float, ready: bool,
                   owner: str | None, refill: bool = False) -> bool:
        now = time.time()
        owner_name = owner if owner is not None else "-"
        keys = [self.store.key("media", media_id), self.store.key("media-owner", owner_name),
                self.store.key("media-size", owner_name)]
        args = [media_id, content, media_type, repr(now + ttl_s), "1" if ready else "0", owner_name, repr(now),
                round((ttl_s + GONE_KEEP_S) * 1000), self.max_items, self.store.key("media", ""),
                "1" if refill else "0", self.max_bytes]
        return bool(await self.store.run(_STORE, keys, args))

    async def publish(self, request: Request, content: bytes, media_type: str, ttl_s: float, suffix: str = "",
                      owner: str | None = None) -> str:
        """Host ``content`` for ``ttl_s`` s for every replica; its absolute URL on the request's host."""
        media_id = secrets.token_hex(12) + suffix
        await self._put(media_id, content, media_type, ttl_s, True, owner)
        return str(request.base_url).rstrip("/") + f"{PREFIX}/{media_id}"

    async def reserve_path(self, media_type: str, ttl_s: float, suffix: str = "", owner: str | None = None) -> str:
        """A path answering 425 on every replica until :meth:`fill_path`."""
        media_id = secrets.token_hex(12) + suffix
        await self._put(media_id, b"", media_type, ttl_s, False, owner)
        return f"{PREFIX}/{media_id}"

    async def fill_path(self, path: str, content: bytes, media_type: str, ttl_s: float) -> None:
        """Host ``content`` at a reserved path for its owner; nothing when the reservation is gone."""
        media_id = path.rsplit("/", 1)[-1]
        with guarded():
            owner = await self.store.client.hget(self.store.key("media", media_id), "owner")
        if owner is not None:  # the script checks again: a discard in between wins
            await self._put(media_id, content, media_type, ttl_s, True, text(owner), refill=True)

    async def discard_path(self, path: str) -> None:
        """Forget ``path`` on every replica (its owner's index keeps the id until its next store)."""
        with guarded():
            await self.store.client.delete(self.store.key("media", path.rsplit("/", 1)[-1]))

    async def serve(self, media_id: str) -> Hosted:
        """The item, judged as in process (404, 410, 425); 503 ApiError when Redis is away."""
        try:
            with guarded():
                found = await self.store.client.hgetall(self.store.key("media", media_id))
        except StateUnavailable as error:
            raise state_unavailable(error) from None
        item = None
        if found:
            item = Hosted(raw(found[b"content"]), text(found[b"media_type"]), float(text(found[b"expires_at"])),
                          ready=text(found[b"ready"]) == "1", owner=text(found[b"owner"]))
        return self.check(media_id, item, time.time())
