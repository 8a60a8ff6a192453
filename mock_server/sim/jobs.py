"""Asynchronous generation jobs: a bounded queue of asyncio tasks whose state lives in the ledger.

004 "For AI Agents": "Poll usage records via GET /api/v1/multimodal/usage/{usage_id} to check
generation status". A generation that takes long (a video) is charged at once with status
``queued`` (``Ledger.charge``) and handed to :meth:`JobRunner.submit`; its usage record then moves

    queued -> processing -> completed      (or -> failed, with an ``error`` in its result)

- queued: waiting for one of the runner's :data:`MAX_CONCURRENT_JOBS` places, then the plan's
  ``queue_s``, then a free GPU slot of the job's model (``GpuPool``, shared with the latency stage);
- processing: holding the GPU slot for the plan's ``first_s + generation_s``, then the job's
  ``produce`` (the real encode; run it in a worker thread), whose mapping is merged into the record.

Jobs run as tasks on the event loop that submitted them (the server's). State is in the ledger's
SQLite, so it outlives the process; the work does not: a job whose process stops is marked failed,
by its task when the loop cancels it and, for a killed process, by the next :class:`JobRunner` on
the same ledger at start-up (``Ledger.fail_unfinished``). Jobs are not resumed: their output was to
be served by the process that died. A failed job keeps its credits (004 documents no refund).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from mock_server.sim.latency import GpuPool, Plan
from mock_server.sim.ledger import COMPLETED, FAILED, PROCESSING, Ledger

#: Jobs processed at once; the others wait, queued.
MAX_CONCURRENT_JOBS = 4
#: Jobs queued or processing at once before :attr:`JobRunner.full` (callers refuse new ones then).
MAX_PENDING_JOBS = 256
#: ``error`` of a job found unfinished at start-up.
INTERRUPTED = "The server stopped before the job finished."

log = logging.getLogger("mock_server.jobs")


@dataclass(frozen=True)
class Job:
    """One asynchronous generation: its usage record, the GPU pool (``model``) it runs on, its drawn
    delays (``plan``, s, already scaled), ``produce`` (makes the output; returns the fields to add to
    the record, e.g. ``{"video_url": ...}``) and ``discard`` (drops any half-made output on failure).
    A fleet resumes a job from its recipe instead (``fleet/jobs.py``)."""

    usage_id: str
    model: str
    plan: Plan
    produce: Callable[[], Awaitable[Mapping[str, Any]]]
    discard: Callable[[], object] = lambda: None
    """Called (and awaited if it returns an awaitable) when the job fails."""


class JobRunner:
    """Runs :class:`Job`s, at most ``max_concurrent`` at a time; ``full`` past ``max_pending`` pending.

    Construction marks the ledger's unfinished jobs failed (see the module docstring); their number is
    ``interrupted``. Submit from a coroutine on the loop that should run the jobs.
    """

    def __init__(self, ledger: Ledger, gpus: GpuPool, max_concurrent: int = MAX_CONCURRENT_JOBS,
                 max_pending: int = MAX_PENDING_JOBS) -> None:
        if max_concurrent < 1 or max_pending < 1:
            raise ValueError("a job runner needs max_concurrent >= 1 and max_pending >= 1")
        self.ledger = ledger
        self.gpus = gpus
        self.max_concurrent = max_concurrent
        self.max_pending = max_pending
        self._tasks: set[asyncio.Task[None]] = set()
        self._places: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self.interrupted = self._recover()

    def _recover(self) -> int:
        """At construction: mark the jobs a stopped process left unfinished as failed; how many."""
        return self.ledger.fail_unfinished(INTERRUPTED)

    @property
    def pending(self) -> int:
        """Jobs queued or processing now."""
        return len(self._tasks)

    @property
    def full(self) -> bool:
        """Whether ``max_pending`` jobs are pending: check before charging, and refuse the request."""
        return self.pending >= self.max_pending

    def submit(self, job: Job) -> asyncio.Task[None]:
        """Start ``job`` as a task on the running loop (call it from a coroutine on that loop)."""
        task = asyncio.get_running_loop().create_task(self._run(job), name=f"job-{job.usage_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def join(self) -> None:
        """Wait until every pending job has ended (completed or failed)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _semaphore(self) -> asyncio.Semaphore:
        """The places of the running loop (a new loop, e.g. a new test client, gets fresh ones)."""
        loop = asyncio.get_running_loop()
        if self._places is None or self._places[0] is not loop:
            self._places = (loop, asyncio.Semaphore(self.max_concurrent))
        return self._places[1]

    async def _run(self, job: Job) -> None:
        try:
            async with self._semaphore():
                await asyncio.sleep(job.plan.queue_s)
                async with self.gpus.slot(job.model):
                    await self._update(job.usage_id, PROCESSING, None)
                    await asyncio.sleep(job.plan.first_s + job.plan.generation_s)
                    result = await job.produce()
            await self._update(job.usage_id, COMPLETED, result)
        except asyncio.CancelledError:  # the loop is stopping: record it now, synchronously
            self._interrupted(job)
            raise
        except Exception as exc:  # the job's own failure (an encoder error): the record says so
            log.exception("job %s failed", job.usage_id)
            discarded = job.discard()
            if inspect.isawaitable(discarded):
                await discarded
            await self._update(job.usage_id, FAILED, {"error": f"Generation failed: {exc}"})

    async def _update(self, usage_id: str, status: str, result: Mapping[str, Any] | None) -> None:
        """Move the job's usage record to ``status``, merging ``result`` (a worker thread: SQLite)."""
        await asyncio.to_thread(self.ledger.update, usage_id, status, result)

    def _interrupted(self, job: Job) -> None:
        """The loop is stopping with ``job`` unfinished: drop its output and mark it failed, synchronously."""
        discarded = job.discard()
        if inspect.iscoroutine(discarded):
            discarded.close()  # an awaitable discard cannot run now; the record still says the job failed
        with contextlib.suppress(sqlite3.Error):  # a ledger closed first: start-up will mark it
            self.ledger.update(job.usage_id, FAILED, {"error": INTERRUPTED})
