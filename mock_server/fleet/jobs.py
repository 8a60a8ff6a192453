"""Video jobs of a fleet: any replica answers a poll, and a job outlives the replica that started it.

A job's usage record is in the shared ledger (``fleet/ledger.py``), so a poll on any replica reads
it. Its charge also stored the job's *recipe* (what to make: a JSON object) and a *lease* naming the
charging replica, which runs the job and renews the lease every :data:`RENEW_S` while it does. If
that replica dies, its lease lapses after :data:`LEASE_S`; every replica's sweeper looks for such
orphans every :data:`SWEEP_S`, claims one atomically (``SET NX``: exactly one replica wins) and
runs it again from its recipe (generation is deterministic: the same video, at the same reserved
URL). A job is marked ``failed`` only by its own failure, never by a replica's death.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from mock_server.fleet.ledger import SharedLedger
from mock_server.fleet.store import RedisStore, Script, StateUnavailable, guarded, text
from mock_server.sim.jobs import MAX_CONCURRENT_JOBS, MAX_PENDING_JOBS, Job, JobRunner
from mock_server.sim.latency import GpuPool

#: Seconds a lease lasts without renewal: how long an orphaned job waits before another replica runs it.
LEASE_S = 2.0
#: Seconds between a running job's lease renewals.
RENEW_S = 0.5
#: Seconds between two looks for orphaned jobs.
SWEEP_S = 1.0
#: Seconds a job's record update is retried while Redis is away, before the lease is left to lapse.
UPDATE_PATIENCE_S = 30.0

log = logging.getLogger("mock_server.fleet.jobs")

_RENEW = Script("""
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
""")
_CLAIM = Script("""
if redis.call('SISMEMBER', KEYS[1], ARGV[3]) == 0 then return nil end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return nil end
return redis.call('GET', KEYS[3]) or ''
""")

#: Builds the job of a recipe (``usage_id``, recipe) -> Job; set by the app (the credits handlers know videos).
Rebuild = Callable[[str, Mapping[str, Any]], Job]


class SharedJobRunner(JobRunner):
    """:class:`~mock_server.sim.jobs.JobRunner` whose records and leases are in Redis (module docstring).
    ``rebuild`` must be set before :meth:`sweep` can resume anything."""

    def __init__(self, ledger: SharedLedger, gpus: GpuPool, store: RedisStore,
                 max_concurrent: int = MAX_CONCURRENT_JOBS, max_pending: int = MAX_PENDING_JOBS) -> None:
        self.shared = ledger
        self.store = store
        self.rebuild: Rebuild | None = None
        super().__init__(None, gpus, max_concurrent, max_pending)  # type: ignore[arg-type]  # records: self.shared

    def _recover(self) -> int:
        """Nothing at start-up: other replicas' jobs are alive; orphans are found by :meth:`sweep`."""
        return 0

    def _interrupted(self, job: Job) -> None:
        """This replica is stopping: leave the job unfinished; its lease lapses and another replica resumes it."""

    async def _update(self, usage_id: str, status: str, result: Mapping[str, Any] | None) -> None:
        """The shared record's update, retried while Redis is away (for :data:`UPDATE_PATIENCE_S`)."""
        deadline = asyncio.get_running_loop().time() + UPDATE_PATIENCE_S
        while True:
            try:
                await self.shared.update(usage_id, status, result)
                return
            except StateUnavailable:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                await asyncio.sleep(RENEW_S)

    async def _run(self, job: Job) -> None:
        renewer = asyncio.get_running_loop().create_task(self._renew(job.usage_id))
        try:
            await super()._run(job)
        finally:
            renewer.cancel()

    async def _renew(self, usage_id: str) -> None:
        """Keep this replica's lease on the job alive while it runs."""
        key = self.store.key("lease", usage_id)
        while True:
            await asyncio.sleep(RENEW_S)
            with contextlib.suppress(StateUnavailable):
                await self.store.run(_RENEW, [key], [self.shared.replica, round(LEASE_S * 1000)])

    async def sweep(self) -> int:
        """Claim and start every orphaned job (no live lease); how many were started. Raises StateUnavailable."""
        with guarded():
            members = await self.store.client.smembers(self.store.key("unfinished"))
        started = 0
        for raw in members:
            usage_id = text(raw)
            recipe = await self.store.run(_CLAIM, [self.store.key("unfinished"), self.store.key("lease", usage_id),
                                                   self.store.key("job", usage_id)],
                                          [self.shared.replica, round(LEASE_S * 1000), usage_id])
            if recipe is None or self.rebuild is None:
                continue
            if not recipe:
                await self._update(usage_id, "failed", {"error": "The job's recipe is lost."})
                continue
            log.info("resuming orphaned job %s", usage_id)
            self.submit(self.rebuild(usage_id, json.loads(recipe)))
            started += 1
        return started

    async def sweep_forever(self) -> None:
        """:meth:`sweep` every :data:`SWEEP_S` s until cancelled; Redis outages are waited out."""
        while True:
            try:
                await self.sweep()
            except StateUnavailable:
                pass  # Redis is away: the next sweep tries again
            except Exception:  # a bug must not end the sweeper silently
                log.exception("sweeping for orphaned jobs failed")
            await asyncio.sleep(SWEEP_S)
