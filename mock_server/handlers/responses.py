"""Handlers of the responses operations (stub: filled in by its owner)."""

from __future__ import annotations
