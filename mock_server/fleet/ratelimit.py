"""Rate limits shared by a fleet: the sliding-window log of ``sim/ratelimit.py``, kept in Redis.

The algorithm is the in-process one, line for line, run as ONE Lua script (atomic in Redis): each
log is a list of ``<ms>:<weight>`` entries, oldest first, and a hash with its running total ``used``
and ``start`` (the newest entry's first admission, ms); admissions within :data:`RESOLUTION` of a
window share the newest entry. A request is admitted under every limit or none. Time is Redis'
own clock (``TIME``), so every replica judges against one clock and any window of ``window_s`` s
admits exactly ``limit`` units fleet-wide, never more. Logs expire from Redis a window after their
last admission.

Calls are batched: while one script call is in flight, the admissions that arrive queue and go in
the next call, all judged in order inside it (what group commit is to the ledger). A replica thus
makes about one Redis round trip per batch, not per request, under load.

Keys: ``gc:<namespace>:rl:<api key>:<operationId>:<dimension>:<window ms>:l`` (the list) and ``:h``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence

from mock_server.fleet.store import RedisStore, Script, StateUnavailable, guarded
from mock_server.sim.ratelimit import RESOLUTION, Decision, Limit

#: Most admissions one script call judges.
MAX_BATCH = 256

_ADMIT = Script("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out, ki, ai = {}, 1, 2
for r = 1, tonumber(ARGV[1]) do
  local m = tonumber(ARGV[ai]); ai = ai + 1
  local logs, all = {}, true
  for j = 1, m do
    local L, H = KEYS[ki], KEYS[ki + 1]; ki = ki + 2
    local limit, window, weight = tonumber(ARGV[ai]), tonumber(ARGV[ai + 1]), tonumber(ARGV[ai + 2]); ai = ai + 3
    local used = tonumber(redis.call('HGET', H, 'used') or '0')
    local cutoff = now - window
    local head = redis.call('LINDEX', L, 0)
    while head do
      local sep = string.find(head, ':', 1, true)
      if tonumber(string.sub(head, 1, sep - 1)) > cutoff then break end
      used = used - tonumber(string.sub(head, sep + 1))
      redis.call('LPOP', L)
      head = redis.call('LINDEX', L, 0)
    end
    local first = nil
    if head then first = tonumber(string.sub(head, 1, string.find(head, ':', 1, true) - 1)) end
    local log = {L = L, H = H, limit = limit, window = window, weight = weight, used = used, first = first}
    if used + weight <= limit then
      log.ok = 1
    else
      log.ok = 0
      all = false
      local excess, freed, retry = used + weight - limit, 0, window
      for _, entry in ipairs(redis.call('LRANGE', L, 0, -1)) do
        local sep = string.find(entry, ':', 1, true)
        freed = freed + tonumber(string.sub(entry, sep + 1))
        if freed >= excess then
          retry = math.max(tonumber(string.sub(entry, 1, sep - 1)) + window - now, 0)
          break
        end
      end
      log.retry = retry
    end
    logs[j] = log
  end
  for j = 1, m do
    local log = logs[j]
    local reset = 0
    if log.first then reset = math.max(log.first + log.window - now, 0) end
    if all then
      if not log.first then reset = log.window end
      local start = tonumber(redis.call('HGET', log.H, 'start') or '-1')
      local last = redis.call('LINDEX', log.L, -1)
      if last and now - start < log.window * tonumber(ARGV[#ARGV]) then
        local sep = string.find(last, ':', 1, true)
        redis.call('LSET', log.L, -1, now .. ':' .. (tonumber(string.sub(last, sep + 1)) + log.weight))
      else
        redis.call('RPUSH', log.L, now .. ':' .. log.weight)
        redis.call('HSET', log.H, 'start', now)
      end
      redis.call('HSET', log.H, 'used', log.used + log.weight)
      redis.call('PEXPIRE', log.L, log.window + 1000)
      redis.call('PEXPIRE', log.H, log.window + 1000)
      table.insert(out, 1); table.insert(out, log.limit - log.used - log.weight)
      table.insert(out, reset); table.insert(out, 0)
    else
      redis.call('HSET', log.H, 'used', log.used)
      if log.ok == 1 then
        table.insert(out, 1); table.insert(out, log.limit - log.used); table.insert(out, reset)
        table.insert(out, 0)
      else
        table.insert(out, 0); table.insert(out, math.max(log.limit - log.used, 0)); table.insert(out, reset)
        table.insert(out, log.retry)
      end
    end
  end
end
return out
""")

_Pending = tuple[str, Sequence[Limit], dict[str, int], "asyncio.Future[list[Decision]]"]


class SharedSlidingWindow:
    """Admission control over :class:`Limit`s per key, for every replica of a fleet (module docstring).

    :meth:`admit` is :meth:`mock_server.sim.ratelimit.SlidingWindowLog.admit` awaited: same decisions,
    same all-or-none rule; it raises :class:`StateUnavailable` when Redis fails (nothing admitted).
    """

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self._pending: list[_Pending] = []
        self._flushing = False

    async def admit(self, key: Hashable, limits: Sequence[Limit], weights: dict[str, int]) -> list[Decision]:
        """The decisions on one request (see the class docstring); ``key`` is any hashable (its str
        parts name the logs)."""
        name = ":".join(map(str, key)) if isinstance(key, tuple) else str(key)
        future: asyncio.Future[list[Decision]] = asyncio.get_running_loop().create_future()
        self._pending.append((name, limits, weights, future))
        if not self._flushing:
            self._flushing = True
            asyncio.get_running_loop().create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        """Judge what is queued, a batch per script call, until nothing is."""
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
                keys: list[str] = []
                args: list[object] = [len(batch)]
                for name, limits, weights, _ in batch:
                    args.append(len(limits))
                    for limit in limits:
                        window_ms = round(limit.window_s * 1000)
                        log = self.store.key("rl", name, limit.dimension, window_ms)
                        keys += (log + ":l", log + ":h")
                        args += (limit.limit, window_ms, weights.get(limit.dimension, 1))
                args.append(RESOLUTION)
                try:
                    flat = await self.store.run(_ADMIT, keys, args)
                except StateUnavailable as error:
                    for *_, future in batch:
                        if not future.done():
                            future.set_exception(error)
                    continue
                at = 0
                for _, limits, _, future in batch:
                    decisions = []
                    for limit in limits:
                        admitted, remaining, reset_ms, retry_ms = flat[at:at + 4]
                        at += 4
                        decisions.append(Decision(limit, bool(admitted), int(remaining), int(reset_ms) / 1000.0,
                                                  int(retry_ms) / 1000.0))
                    if not future.done():
                        future.set_result(decisions)
        finally:
            self._flushing = False

    async def reset(self) -> None:
        """Forget every log of this fleet (the control API's reset). Raises :class:`StateUnavailable`."""
        await delete_matching(self.store, self.store.key("rl", "*"))


async def delete_matching(store: RedisStore, pattern: str) -> int:
    """Delete every key matching ``pattern`` (SCAN, then UNLINK by hundreds); returns how many.
    Raises :class:`StateUnavailable`."""
    deleted, batch = 0, []
    with guarded():
        async for key in store.client.scan_iter(match=pattern, count=500):
            batch.append(key)
            if len(batch) >= 500:
                deleted += await store.client.unlink(*batch)
                batch = []
        if batch:
            deleted += await store.client.unlink(*batch)
    return deleted
