"""The simulation layer: the state a real gateway keeps behind its HTTP surface.

It knows nothing of HTTP, Starlette or the spec's file layout (see ``ARCHITECTURE.md``); the
handlers translate its outcomes (e.g. :class:`InsufficientCredits`) into HTTP answers.

- :mod:`.ledger`: credits balances and usage records, in SQLite (004 "Multimodal API");
- :mod:`.credits`: the ledger's asynchronous interface, in process or (``mock_server/fleet/``) in Redis;
- :mod:`.tiers`: which account tier a key has and what it may call (004 "Tier: Premium only");
- :mod:`.files`: the bounded in-memory file storage of ZeroDB uploads (004 "For AI Agents").
"""

from __future__ import annotations

from mock_server.sim.files import FileStore, FileTooLarge, StoredFile
from mock_server.sim.ledger import (
    DEFAULT_STARTING_CREDITS,
    ENDPOINT_TYPES,
    Account,
    InsufficientCredits,
    Ledger,
    UsagePage,
    UsageRecord,
)
from mock_server.sim.tiers import PREMIUM, key_tier, meets

__all__ = [
    "DEFAULT_STARTING_CREDITS",
    "ENDPOINT_TYPES",
    "PREMIUM",
    "Account",
    "FileStore",
    "FileTooLarge",
    "InsufficientCredits",
    "Ledger",
    "StoredFile",
    "UsagePage",
    "UsageRecord",
    "key_tier",
    "meets",
]
