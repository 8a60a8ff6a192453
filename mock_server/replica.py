"""One app's part in the control API's changes: on this process alone, or on every replica of a fleet.

In process, the control API changes :class:`~mock_server.context.Services` directly
(:func:`set_faults`, :func:`reset_local`). In a fleet (``mock_server/fleet/``) what is shared lives in
Redis and what each replica keeps for itself (its fault rates and fault RNG, its journal ring, its
mirror of the scripts) is changed over the bus (``fleet/bus.py``) on every replica before the
control call answers: :func:`bus_handlers` is what a replica does for each kind of bus request, and
:func:`lifespan` runs the replica's bus listener and job sweeper while the app serves.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from mock_server.context import Services
from mock_server.fleet import Fleet
from mock_server.fleet.bus import Bus, BusHandler
from mock_server.fleet.store import guarded
from mock_server.handlers.credits import video_job

#: Seconds start-up waits for the bus to be listening before serving anyway (Redis may be away).
READY_WAIT_S = 3.0


def set_faults(services: Services, rates: Mapping[str, Mapping[str, float]]) -> None:
    """Replace this process's fault rates (``{operationId: {kind: probability}}``)."""
    services.fault_rates.clear()
    services.fault_rates.update({op: dict(kinds) for op, kinds in rates.items()})


def reset_local(services: Services) -> None:
    """This process's part of the control API's reset: the configured fault rates, the fault RNG
    re-seeded, no scripts (a fleet's mirror of them), an empty journal, no gateway spend counted here
    (in a fleet, the spend of keys without a limit)."""
    set_faults(services, services.config.faults.operations)
    services.spend.reset()
    services.fault_rng.seed(services.config.seed)
    services.scripts.clear()
    if services.journal is not None:
        services.journal.clear()


def _fleet(services: Services) -> tuple[Fleet, Bus]:
    fleet = services.fleet
    if fleet is None or fleet.bus is None:
        raise RuntimeError("not a fleet replica (state.url memory) or its bus is not built")
    return fleet, fleet.bus


async def reset_fleet(services: Services) -> None:
    """Every replica's :func:`reset_local`, the fleet's fault rates back to the configured ones and its
    shared gateway spend forgotten."""
    fleet, bus = _fleet(services)
    with guarded():
        await fleet.store.client.delete(fleet.store.key("faults"))
    await fleet.spend.reset()
    await bus.ask("reset")


async def set_fleet_faults(services: Services, rates: Mapping[str, Mapping[str, float]]) -> None:
    """The fault rates of every replica (kept in Redis for replicas started later)."""
    fleet, bus = _fleet(services)
    with guarded():
        await fleet.store.client.set(fleet.store.key("faults"), json.dumps(rates))
    await bus.ask("faults", rates)


async def fleet_journal(services: Services, filters: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The newest ``filters["limit"]`` entries matching ``filters`` over every replica's journal, oldest first."""
    _, bus = _fleet(services)
    entries = [entry for answer in await bus.ask("journal", dict(filters)) for entry in answer or ()]
    entries.sort(key=lambda entry: entry["id"])
    return entries[-int(filters["limit"]):]


async def fleet_journal_response(services: Services, entry_id: int) -> tuple[bytes, str] | None:
    """(answer body, media type) of entry ``entry_id`` from whichever replica keeps it, else None."""
    _, bus = _fleet(services)
    for answer in await bus.ask("journal_response", entry_id):
        if answer is not None:
            return base64.b64decode(answer[0]), answer[1]
    return None


async def fleet_journal_clear(services: Services) -> int:
    """Empty every replica's journal; how many entries there were in all."""
    _, bus = _fleet(services)
    return sum(await bus.ask("journal_clear"))


def bus_handlers(services: Services) -> dict[str, BusHandler]:
    """What this replica does for each kind of bus request (module docstring)."""
    fleet, _ = services.fleet, None
    assert fleet is not None

    async def faults(rates: Any) -> None:
        set_faults(services, rates)

    async def reset(_: Any) -> None:
        reset_local(services)

    async def scripts(_: Any) -> None:
        await fleet.scripts.refresh()

    async def journal(filters: Any) -> list[dict[str, Any]]:
        found = services.journal.select(**filters) if services.journal is not None else []
        return [entry.as_dict() for entry in found]

    async def journal_response(entry_id: Any) -> list[str] | None:
        entry = services.journal.find(int(entry_id)) if services.journal is not None else None
        if entry is None or entry.response_body is None:
            return None
        return [base64.b64encode(entry.response_body).decode("ascii"), entry.content_type]

    async def journal_clear(_: Any) -> int:
        return services.journal.clear() if services.journal is not None else 0

    return {"faults": faults, "reset": reset, "scripts": scripts, "journal": journal,
            "journal_response": journal_response, "journal_clear": journal_clear}


def attach(services: Services) -> None:
    """Build the fleet replica's bus over ``services`` and let its jobs be resumed from recipes."""
    fleet = services.fleet
    if fleet is None:
        return

    async def on_connect() -> None:  # what may have changed while this replica was not listening
        with guarded():
            rates = await fleet.store.client.get(fleet.store.key("faults"))
        set_faults(services, json.loads(rates) if rates else services.config.faults.operations)
        await fleet.scripts.refresh()

    fleet.bus = Bus(fleet.store, bus_handlers(services), on_connect)
    bus = fleet.bus

    async def announce() -> None:
        await bus.ask("scripts")

    fleet.scripts.announce = announce
    fleet.jobs.rebuild = lambda usage_id, recipe: video_job(services, usage_id, recipe)


@contextlib.asynccontextmanager
async def lifespan(services: Services) -> AsyncIterator[None]:
    """While the app serves: the bus listener and the orphaned-job sweeper (a fleet's only)."""
    fleet = services.fleet
    if fleet is None or fleet.bus is None:
        yield
        return
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(fleet.bus.listen()), loop.create_task(fleet.jobs.sweep_forever())]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(fleet.bus.ready.wait(), READY_WAIT_S)
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await fleet.store.close()
