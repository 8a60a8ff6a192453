"""Handlers of the models operations (stub: filled in by its owner)."""

from __future__ import annotations
