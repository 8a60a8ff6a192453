"""The credits ledger of a fleet, in Redis: one balance per key and a usage record per charge, for every replica.

The rules are ``sim/ledger.py``'s (004 "Multimodal API", "Error Codes" 402): a charge checks the
balance, debits it and writes its usage record in ONE Lua script, which Redis runs atomically, so
concurrent charges on any number of replicas never overspend, and the records always sum to the
credits used. A video job's charge also stores the job's recipe and the charging replica's lease in
the same script (``fleet/jobs.py``): no answered job is ever without what is needed to resume it.

Durability is Redis persistence: run Redis with ``appendonly yes`` (the AOF). Redis writes each
command to the AOF before it answers the client, so with ``appendfsync everysec`` (the default) an
answered charge survives Redis being killed and restarted, as the SQLite ledger's WAL with
``synchronous=NORMAL`` survives the mock being killed; ``appendfsync always`` also survives the
machine losing power, at an fsync per write. A real database would add a second server to run for
no guarantee the AOF does not give here: the ledger is a few keys per account and per record.

Keys (``gc:<ns>:`` first): ``acct:<key>`` (hash balance, used), ``rec:<usage_id>`` (hash of the
record), ``usage:<key>`` and ``usage:<key>:<endpoint_type>`` (usage ids, newest first),
``unfinished`` (ids of jobs queued or processing), ``job:<usage_id>`` (the recipe) and
``lease:<usage_id>`` (the replica running it, expiring).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mock_server.fleet.ratelimit import delete_matching
from mock_server.fleet.store import RedisStore, Script, guarded, text
from mock_server.sim.ledger import (
    COMPLETED,
    UNFINISHED,
    Account,
    InsufficientCredits,
    UsagePage,
    UsageRecord,
    _payload,
    new_usage_id,
)

_OPEN = "if redis.call('EXISTS', KEYS[1]) == 0 then redis.call('HSET', KEYS[1], 'balance', ARGV[1], 'used', 0) end\n"

_CHARGE = Script(_OPEN + """
local balance, credits = tonumber(redis.call('HGET', KEYS[1], 'balance')), tonumber(ARGV[2])
if balance < credits then return {0, tostring(balance)} end
redis.call('HINCRBY', KEYS[1], 'balance', -credits)
redis.call('HINCRBY', KEYS[1], 'used', credits)
local t = redis.call('TIME')
local created = t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
redis.call('HSET', KEYS[2], 'api_key', ARGV[4], 'endpoint_type', ARGV[5], 'credits', credits, 'status', ARGV[6],
           'created_at', created, 'balance_after', balance - credits, 'result', ARGV[7])
redis.call('LPUSH', KEYS[3], ARGV[3])
redis.call('LPUSH', KEYS[4], ARGV[3])
if ARGV[8] ~= '' then
  redis.call('SADD', KEYS[5], ARGV[3])
  redis.call('SET', KEYS[6], ARGV[8])
  redis.call('SET', KEYS[7], ARGV[9], 'PX', ARGV[10])
end
return {1, tostring(balance - credits), created}
""")

_TOP_UP = Script(_OPEN + "return redis.call('HINCRBY', KEYS[1], 'balance', ARGV[2])")

_UPDATE = Script("""
local raw = redis.call('HGET', KEYS[1], 'result')
if not raw then return nil end
local merged = cjson.decode(raw)
for k, v in pairs(cjson.decode(ARGV[2])) do merged[k] = v end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'result', cjson.encode(merged))
if ARGV[3] == '1' then
  redis.call('SREM', KEYS[2], ARGV[4]); redis.call('DEL', KEYS[3]); redis.call('DEL', KEYS[4])
end
return 1
""")

_FIELDS = (b"api_key", b"endpoint_type", b"credits", b"status", b"created_at", b"balance_after", b"result")


class SharedLedger:
    """:class:`~mock_server.sim.credits.CreditsStore` in Redis (module docstring). ``starting_credits``
    is the balance of a key not seen before unless ``starting_by_key`` names it; ``replica`` names this
    process in job leases of ``lease_ms`` ms. Every method raises
    :class:`~mock_server.fleet.store.StateUnavailable` when Redis fails."""

    def __init__(self, store: RedisStore, starting_credits: int, starting_by_key: Mapping[str, int],
                 replica: str, lease_ms: int) -> None:
        self.store = store
        self.starting_credits = starting_credits
        self.starting_by_key = dict(starting_by_key)
        self.replica = replica
        self.lease_ms = lease_ms

    def _starting(self, api_key: str) -> int:
        return self.starting_by_key.get(api_key, self.starting_credits)

    async def account(self, api_key: str) -> Account:
        """The key's balance and credits used (the starting balance and 0 for a key never charged)."""
        with guarded():
            balance, used = await self.store.client.hmget(self.store.key("acct", api_key), ["balance", "used"])
        if balance is None:
            return Account(self._starting(api_key), 0)
        return Account(int(text(balance)), int(text(used)))

    async def balance(self, api_key: str) -> int:
        """Credits the key has left."""
        return (await self.account(api_key)).balance

    async def charge(self, api_key: str, endpoint_type: str, credits: int, result: Mapping[str, Any] | None = None,
                     status: str = COMPLETED, recipe: Mapping[str, Any] | None = None) -> UsageRecord:
        """Debit ``credits`` and record the call in one atomic script; with ``recipe`` (a job's), also keep
        it and this replica's lease. Raises InsufficientCredits (nothing changed), ValueError for a bad
        endpoint_type or negative credits."""
        payload = _payload(endpoint_type, credits, result)
        usage_id = new_usage_id()
        key = self.store.key
        keys = [key("acct", api_key), key("rec", usage_id), key("usage", api_key), key("usage", api_key, endpoint_type),
                key("unfinished"), key("job", usage_id), key("lease", usage_id)]
        args = [self._starting(api_key), credits, usage_id, api_key, endpoint_type, status, payload,
                json.dumps(dict(recipe)) if recipe is not None else "", self.replica, self.lease_ms]
        answer = await self.store.run(_CHARGE, keys, args)
        if int(answer[0]) == 0:
            raise InsufficientCredits(api_key, credits, int(answer[1]))
        return UsageRecord(usage_id, api_key, endpoint_type, credits, status, float(answer[2]), int(answer[1]),
                           json.loads(payload))

    async def top_up(self, api_key: str, credits: int) -> int:
        """Add ``credits`` (> 0) to the key's balance; the new balance. ValueError otherwise."""
        if credits <= 0:
            raise ValueError("a top-up must add credits > 0")
        return int(await self.store.run(_TOP_UP, [self.store.key("acct", api_key)],
                                        [self._starting(api_key), credits]))

    async def reset(self) -> None:
        """Forget every account, record and job of this fleet (the control API's reset)."""
        for part in ("acct", "rec", "usage", "job", "lease", "unfinished"):
            await delete_matching(self.store, self.store.key(part) + "*")

    async def usage(self, api_key: str, skip: int = 0, limit: int = 50, endpoint_type: str | None = None) -> UsagePage:
        """The key's records, newest first (see ``Ledger.usage``); ValueError for skip < 0 or limit < 1."""
        if skip < 0 or limit < 1:
            raise ValueError("skip must be >= 0 and limit >= 1")
        index = self.store.key("usage", api_key, *(() if endpoint_type is None else (endpoint_type,)))
        with guarded():
            async with self.store.client.pipeline(transaction=True) as pipe:
                pipe.llen(index)
                pipe.lrange(index, skip, skip + limit - 1)
                total, ids = await pipe.execute()
            async with self.store.client.pipeline(transaction=False) as pipe:
                for usage_id in ids:
                    pipe.hmget(self.store.key("rec", text(usage_id)), _FIELDS)
                rows = await pipe.execute()
        return UsagePage([_record(text(usage_id), row) for usage_id, row in zip(ids, rows, strict=True)
                          if row[0] is not None], int(total))

    async def record(self, api_key: str, usage_id: str) -> UsageRecord | None:
        """The record ``usage_id`` if it is ``api_key``'s; None if unknown or another key's."""
        with guarded():
            row = await self.store.client.hmget(self.store.key("rec", usage_id), _FIELDS)
        if row[0] is None or text(row[0]) != api_key:
            return None
        return _record(usage_id, row)

    async def update(self, usage_id: str, status: str, result: Mapping[str, Any] | None = None) -> bool:
        """Set a record's status and merge ``result`` into its result, atomically; a finished job's
        recipe and lease go with it. Whether the record exists."""
        key = self.store.key
        keys = [key("rec", usage_id), key("unfinished"), key("job", usage_id), key("lease", usage_id)]
        done = "0" if status in UNFINISHED else "1"
        return bool(await self.store.run(_UPDATE, keys, [status, json.dumps(dict(result or {})), done, usage_id]))


def _record(usage_id: str, row: list[Any]) -> UsageRecord:
    api_key, endpoint_type, credits, status, created_at, balance_after, result = map(text, row)
    return UsageRecord(usage_id, api_key, endpoint_type, int(credits), status, float(created_at), int(balance_after),
                       json.loads(result))
