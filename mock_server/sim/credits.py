"""The credits ledger as the handlers and the control API see it: an asynchronous interface with two homes.

- :class:`LocalCredits`: the in-process SQLite :class:`~mock_server.sim.ledger.Ledger` (memory or a
  file), each call in a worker thread, charges by its group commit;
- ``mock_server.fleet.ledger.SharedLedger``: the same rules in Redis, for a fleet of replicas.

Both keep 004's rules: a charge checks the balance and records the call in one atomic step, or
raises :class:`~mock_server.sim.ledger.InsufficientCredits` having changed nothing.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any, Protocol

from mock_server.sim.ledger import COMPLETED, Account, Ledger, UsagePage, UsageRecord


class CreditsStore(Protocol):
    """Balances and usage records of API keys (see :class:`~mock_server.sim.ledger.Ledger` for each
    method's rules, units and errors)."""

    async def account(self, api_key: str) -> Account:
        """The key's balance and credits used."""

    async def balance(self, api_key: str) -> int:
        """Credits the key has left."""

    async def charge(self, api_key: str, endpoint_type: str, credits: int, result: Mapping[str, Any] | None = None,
                     status: str = COMPLETED, recipe: Mapping[str, Any] | None = None) -> UsageRecord:
        """Debit and record atomically; raises InsufficientCredits. ``recipe`` (a job's, JSON-able) is kept
        with the record where a store can resume jobs (a fleet's), ignored elsewhere."""

    async def top_up(self, api_key: str, credits: int) -> int:
        """Add credits (> 0); the new balance."""

    async def reset(self) -> None:
        """Forget every account and record."""

    async def usage(self, api_key: str, skip: int = 0, limit: int = 50, endpoint_type: str | None = None) -> UsagePage:
        """A page of the key's records, newest first."""

    async def record(self, api_key: str, usage_id: str) -> UsageRecord | None:
        """One of the key's records, or None."""


class LocalCredits:
    """:class:`CreditsStore` over an in-process :class:`Ledger` (its calls run in worker threads)."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def account(self, api_key: str) -> Account:
        """:meth:`Ledger.account` in a worker thread."""
        return await asyncio.to_thread(self.ledger.account, api_key)

    async def balance(self, api_key: str) -> int:
        """:meth:`Ledger.balance` in a worker thread."""
        return await asyncio.to_thread(self.ledger.balance, api_key)

    async def charge(self, api_key: str, endpoint_type: str, credits: int, result: Mapping[str, Any] | None = None,
                     status: str = COMPLETED, recipe: Mapping[str, Any] | None = None) -> UsageRecord:
        """:meth:`Ledger.charge_async` (group commit); ``recipe`` is not kept: in process, a job dies with it."""
        return await self.ledger.charge_async(api_key, endpoint_type, credits, result, status)

    async def top_up(self, api_key: str, credits: int) -> int:
        """:meth:`Ledger.top_up` in a worker thread."""
        return await asyncio.to_thread(self.ledger.top_up, api_key, credits)

    async def reset(self) -> None:
        """:meth:`Ledger.reset` in a worker thread."""
        await asyncio.to_thread(self.ledger.reset)

    async def usage(self, api_key: str, skip: int = 0, limit: int = 50, endpoint_type: str | None = None) -> UsagePage:
        """:meth:`Ledger.usage` in a worker thread."""
        return await asyncio.to_thread(functools.partial(self.ledger.usage, api_key, skip, limit, endpoint_type))

    async def record(self, api_key: str, usage_id: str) -> UsageRecord | None:
        """:meth:`Ledger.record` in a worker thread."""
        return await asyncio.to_thread(self.ledger.record, api_key, usage_id)
