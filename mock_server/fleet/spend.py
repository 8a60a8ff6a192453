"""Gateway spend limits shared by a fleet: ``sim/spend.py``'s meter with each limited key's spend in Redis.

001 and 002 "Errors": 402 ``billing_error``, "Account out of credit or hit a spend limit". The rule is
``SpendMeter.charge``'s: a charge that would take the key's spend past its limit is refused and adds
nothing. Here the check and the addition are ONE Lua script (atomic in Redis), so concurrent charges
on any number of replicas or workers never spend past the limit, and the spend outlives any replica
(durable as the credits ledger is: Redis' AOF, ``fleet/ledger.py``).

Only keys with a ``spend_limit_usd`` go to Redis: a key without one is never refused, so its spend
(which no API reads) is counted by each replica's own meter, and a load test on an unlimited key
costs no Redis round trip per priced request.

Keys: ``gc:<namespace>:spend:<api key>``, the key's spend in micro-dollars (an integer, so sums are exact).
"""

from __future__ import annotations

from mock_server.fleet.ratelimit import delete_matching
from mock_server.fleet.store import RedisStore, Script
from mock_server.sim.spend import MICROS, SpendLimitReached, SpendMeter, micros

_CHARGE = Script("""
local spent, cost, limit = tonumber(redis.call('GET', KEYS[1]) or '0'), tonumber(ARGV[1]), tonumber(ARGV[2])
if spent + cost > limit then return {0, spent} end
return {1, redis.call('INCRBY', KEYS[1], cost)}
""")


class SharedSpendMeter:
    """Per-key spend against per-key limits for every replica of a fleet (module docstring).

    ``local`` is this replica's :class:`SpendMeter`: it holds the configured limits and counts the keys
    without one. :meth:`charge` is ``SpendMeter.charge`` awaited; it raises :class:`SpendLimitReached`
    (nothing added) or :class:`~mock_server.fleet.store.StateUnavailable` when Redis fails.
    """

    def __init__(self, store: RedisStore, local: SpendMeter) -> None:
        self.store = store
        self.local = local

    async def charge(self, key: str, cost_usd: float) -> float:
        """Add ``cost_usd`` (US dollars, rounded up to a micro-dollar) to the key's spend; the new total (USD)."""
        limit = self.local.limit_micros(key)
        if limit is None:
            return self.local.charge(key, cost_usd)
        cost = micros(cost_usd)
        admitted, spent = await self.store.run(_CHARGE, [self.store.key("spend", key)], [cost, limit])
        if not int(admitted):
            raise SpendLimitReached(cost / MICROS, int(spent) / MICROS, limit / MICROS)
        return int(spent) / MICROS

    async def reset(self) -> None:
        """Forget every key's shared spend (the control API's reset; each replica's own meter is reset
        over the bus). Raises :class:`~mock_server.fleet.store.StateUnavailable`."""
        await delete_matching(self.store, self.store.key("spend", "*"))
