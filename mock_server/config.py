"""The mock's configuration: frozen, built once by the CLI or a test, and passed explicitly."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mock_server.catalogue import DEFAULT_CATALOGUE
from mock_server.sim.ledger import DEFAULT_STARTING_CREDITS

#: The development key the mock accepts when no keys are configured (README "Development key").
DEV_API_KEY = "sk-test"


@dataclass(frozen=True)
class MockConfig:
    """``seed`` makes every answer repeatable; ``api_keys`` are the accepted keys;
    ``hosted_url_ttl_s`` overrides the spec's hosted-URL lifetime (s) when set.
    ``ledger_path`` is the credits ledger's SQLite file (None: in memory, for the app's lifetime);
    ``starting_credits`` the balance of a key the ledger has not seen (004 "Multimodal API")."""

    seed: int = 0
    api_keys: frozenset[str] = field(default_factory=lambda: frozenset({DEV_API_KEY}))
    catalogue: Path = DEFAULT_CATALOGUE
    hosted_url_ttl_s: float | None = None
    ledger_path: str | Path | None = None
    starting_credits: int = DEFAULT_STARTING_CREDITS
