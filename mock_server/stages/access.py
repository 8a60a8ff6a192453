"""Pipeline stage: scopes and tiers (001 "Errors": 403 permission_error, "Key lacks the required
scope"; 004 "Video: Text-to-Video (T2V)": "Tier: Premium only", the spec's ``x-tier``).

A key's scopes and tier come from the configuration (``keys[].scopes``, ``keys[].tier``).
"""

from __future__ import annotations

from mock_server.context import Call, Services
from mock_server.errors import ApiError
from mock_server.sim import meets
from mock_server.stages.base import Stage
from spec import Operation
from spec.extensions import tier


class Access(Stage):
    """Refuses a key without the operation's scope, or below the operation's tier, with 403."""

    def __init__(self, operation: Operation) -> None:
        self.operation_id = operation.operation_id
        self.tier = tier(operation)
        self._refusals: dict[str | None, tuple[str, str] | None] = {}
        """(message, code) of the 403 per key, None to admit: judged once per key (the configuration is frozen)."""

    def check(self, call: Call) -> None:
        """Raises ApiError 403 permission_error for a missing scope or tier."""
        try:
            refusal = self._refusals[call.api_key]
        except KeyError:
            refusal = self._refusals[call.api_key] = self.judge(call)
        if refusal is not None:
            raise ApiError(403, refusal[0], code=refusal[1])

    def judge(self, call: Call) -> tuple[str, str] | None:
        """(message, code) of the 403 for ``call``'s key, or None when the key may call the operation."""
        entry = call.services.config.key(call.api_key)
        if entry is not None and not entry.allows(self.operation_id):
            return f"This key lacks the scope '{self.operation_id}'.", "missing_scope"
        if not meets(call.services.tier(call.api_key), self.tier):
            return f"{self.operation_id} requires the {self.tier} tier.", "tier_required"
        return None


def build(operation: Operation, services: Services) -> Stage | None:
    """An :class:`Access` stage for operations that take a key."""
    return Access(operation) if operation.security else None
