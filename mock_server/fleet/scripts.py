"""Scripted upstream behaviour shared by a fleet: "the next N matching requests answer F" counts the
matching requests of every replica, not of each.

The scripts live in Redis (``gc:<ns>:scripts``: id -> the script as JSON; ``gc:<ns>:script-order``:
ids, oldest first). Each replica keeps a mirror of them (:attr:`ScriptBook.scripts`) for matching,
so a request with no script in force costs no Redis call; the control API refreshes every replica's
mirror over the bus before it answers. A matching request takes its step in one Lua script that
walks the candidates in order and uses up one step of the first still in force, atomically.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from mock_server.fleet.store import RedisStore, guarded, text
from mock_server.fleet.store import Script as LuaScript
from mock_server.sim.scripts import MAX_SCRIPTS, Script, ScriptBook, ScriptError, Step

_TAKE = LuaScript("""
for _, id in ipairs(ARGV) do
  local raw = redis.call('HGET', KEYS[1], id)
  if raw then
    local s = cjson.decode(raw)
    local step = s.steps[1]
    local taken = cjson.encode(step)
    step.times = step.times - 1
    s.used = s.used + 1
    if step.times <= 0 then table.remove(s.steps, 1) end
    if #s.steps == 0 then
      redis.call('HDEL', KEYS[1], id); redis.call('LREM', KEYS[2], 0, id)
    else
      redis.call('HSET', KEYS[1], id, cjson.encode(s))
    end
    return {id, taken}
  end
end
return nil
""")
_ADD = LuaScript("""
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
local id = 'script-' .. redis.call('INCR', KEYS[3])
local s = cjson.decode(ARGV[1]); s.id = id
redis.call('HSET', KEYS[1], id, cjson.encode(s)); redis.call('RPUSH', KEYS[2], id)
return id
""")


def _script(raw: bytes | str) -> Script:
    data = json.loads(raw)
    return Script(data["id"], [Step(**step) for step in data["steps"]], data.get("nonce"), data.get("operation_id"),
                  data.get("used", 0))


class SharedScriptBook(ScriptBook):
    """:class:`~mock_server.sim.scripts.ScriptBook` in Redis (module docstring); its asynchronous
    methods raise :class:`~mock_server.fleet.store.StateUnavailable` when Redis fails. ``announce`` is
    awaited after each change (the app sets it to refresh every replica's mirror over the bus)."""

    def __init__(self, store: RedisStore) -> None:
        super().__init__()
        self.store = store
        self.hash, self.order = store.key("scripts"), store.key("script-order")
        self.announce: Any = None

    async def listed(self) -> list[Script]:
        """The scripts in force in Redis, oldest first."""
        with guarded():
            ids = await self.store.client.lrange(self.order, 0, -1)
            raws = await self.store.client.hmget(self.hash, ids) if ids else []
        return [_script(raw) for raw in raws if raw is not None]

    async def refresh(self) -> None:
        """Reload this replica's mirror from Redis."""
        self.scripts = await self.listed()

    async def take_async(self, operation_id: str, body: Any) -> tuple[Script, Step] | None:
        """The step the first matching script still in force answers with (used up by one, fleet-wide)."""
        candidates = [script for script in self.scripts if script.matches(operation_id, body)]
        if not candidates:
            return None
        taken = await self.store.run(_TAKE, [self.hash, self.order], [script.id for script in candidates])
        if taken is None:  # all used up on other replicas: forget them here too
            gone = {script.id for script in candidates}
            self.scripts = [script for script in self.scripts if script.id not in gone]
            return None
        script_id, raw = text(taken[0]), json.loads(taken[1])
        script = next(script for script in candidates if script.id == script_id)
        return script, Step(**raw)

    async def add_async(self, steps: list[Step], nonce: str | None, operation_id: str | None) -> Script:
        """Put a script in force on every replica. Raises ScriptError when :data:`MAX_SCRIPTS` are."""
        data = {"id": "", "steps": [dataclasses.asdict(step) for step in steps], "nonce": nonce,
                "operation_id": operation_id, "used": 0}
        script_id = await self.store.run(_ADD, [self.hash, self.order, self.store.key("script-seq")],
                                         [json.dumps(data), MAX_SCRIPTS])
        if script_id == 0:
            raise ScriptError(f"At most {MAX_SCRIPTS} scripts may be in force; delete some first.", "steps")
        script = Script(text(script_id), steps, nonce, operation_id)
        self.scripts.append(script)
        await self._announce()
        return script

    async def remove_async(self, script_id: str) -> bool:
        """Delete one script on every replica; whether it was in force."""
        with guarded():
            removed = await self.store.client.hdel(self.hash, script_id)
            await self.store.client.lrem(self.order, 0, script_id)
        self.scripts = [script for script in self.scripts if script.id != script_id]
        await self._announce()
        return bool(removed)

    async def clear_async(self) -> int:
        """Delete every script on every replica; how many there were."""
        with guarded():
            count = await self.store.client.hlen(self.hash)
            await self.store.client.delete(self.hash, self.order)
        self.scripts = []
        await self._announce()
        return int(count)

    async def _announce(self) -> None:
        if self.announce is not None:
            await self.announce()
