"""Fleet mode: the mock's state in Redis, shared by every replica (``mock-server serve --state redis://...``).

One mock process keeps its rate-limit windows, ledger, video jobs, hosted media and control-API
state to itself; several behind a load balancer would each admit the whole limit and know nothing of
each other's jobs and URLs. With ``state.url`` a Redis URL, :class:`Fleet` gives the app the same
algorithms with their state in Redis (STYLE.md 10: the algorithm apart from where its state lives):

- ``ratelimit.py``: the sliding-window log, one Lua script per batch of admissions;
- ``ledger.py``: the credits ledger, atomic check-and-charge, durable by Redis' AOF;
- ``jobs.py``: video jobs with leases, resumed by another replica when theirs dies;
- ``media.py``: hosted media served by any replica;
- ``spend.py``: the gateway's spend limits, atomic check-and-charge of each limited key's spend;
- ``scripts.py`` and ``bus.py``: control-API scripts counted fleet-wide, and changes (faults, reset,
  scripts) in force on every replica before the control call answers; the journal gathered from all.

It knows nothing of the HTTP pipeline except hosted media's answers (``media.py``); ``replica.py``
wires one app's :class:`~mock_server.context.Services` to the bus. Several worker processes of one
host are replicas like any other.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from mock_server.fleet.bus import Bus
from mock_server.fleet.jobs import LEASE_S, SharedJobRunner
from mock_server.fleet.ledger import SharedLedger
from mock_server.fleet.media import SharedHostedMedia
from mock_server.fleet.ratelimit import SharedSlidingWindow
from mock_server.fleet.scripts import SharedScriptBook
from mock_server.fleet.spend import SharedSpendMeter
from mock_server.fleet.store import RedisStore, StateUnavailable
from mock_server.sim.latency import GpuPool
from mock_server.sim.spend import SpendMeter

__all__ = ["Fleet", "RedisStore", "StateUnavailable"]


@dataclass
class Fleet:
    """The shared homes of one replica's state. ``replica`` is this process's random name (in job leases)."""

    store: RedisStore
    replica: str
    limiter: SharedSlidingWindow
    ledger: SharedLedger
    media: SharedHostedMedia
    scripts: SharedScriptBook
    jobs: SharedJobRunner
    spend: SharedSpendMeter
    bus: Bus | None = None
    """Set by ``replica.py`` once the app's handlers exist."""

    @classmethod
    def connect(cls, url: str, namespace: str, starting_credits: int, starting_by_key: Mapping[str, int],
                gpus: GpuPool, spend: SpendMeter) -> Fleet:
        """The fleet state at ``url`` under ``namespace`` (no connection is made until first used);
        ``spend`` is this replica's meter, holding the configured spend limits."""
        store = RedisStore(url, namespace)
        replica = secrets.token_hex(6)
        ledger = SharedLedger(store, starting_credits, starting_by_key, replica, round(LEASE_S * 1000))
        return cls(store, replica, SharedSlidingWindow(store), ledger, SharedHostedMedia(store),
                   SharedScriptBook(store), SharedJobRunner(ledger, gpus, store), SharedSpendMeter(store, spend))
