"""Pipeline stage: scopes and tiers (001 "Errors": 403 permission_error, "Key lacks the required
scope"; 004 "Video: Text-to-Video (T2V)": "Tier: Premium only", the spec's ``x-tier``).

A key's scopes and tier come from the configuration (``keys[].scopes``, ``keys[].tier``).
"""

from __future__ import annotations

from mock_server.context import Call, Services
from mock_server.errors import ApiError
from mock_server.sim import meets
from mock_server.stages import Stage
from spec import Operation
from spec.extensions import tier


class Access(Stage):
    """Refuses a key without the operation's scope, or below the operation's tier, with 403."""

    def __init__(self, operation: Operation) -> None:
        self.operation_id = operation.operation_id
        self.tier = tier(operation)

    async def before(self, call: Call) -> None:
        """Raises ApiError 403 permission_error for a missing scope or tier."""
        entry = call.services.config.key(call.api_key)
        if entry is not None and not entry.allows(self.operation_id):
            raise ApiError(403, f"This key lacks the scope '{self.operation_id}'.", code="missing_scope")
        if not meets(call.services.tier(call.api_key), self.tier):
            raise ApiError(403, f"{self.operation_id} requires the {self.tier} tier.", code="tier_required")


def build(operation: Operation, services: Services) -> Stage | None:
    """An :class:`Access` stage for operations that take a key."""
    return Access(operation) if operation.security else None
