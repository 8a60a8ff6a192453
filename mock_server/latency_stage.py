"""Pipeline stage (placeholder until its owner fills it in)."""

from __future__ import annotations

from mock_server.context import Services
from mock_server.stages import Stage
from spec import Operation


def build(operation: Operation, services: Services) -> Stage | None:
    """No stage yet."""
    return None
