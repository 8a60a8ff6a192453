"""The request pipeline's cross-cutting stages, in the one order they run (STYLE.md 9).

A stage runs around the handler of every request of its operation: ``before`` after the request is
authenticated, its parameters read and its body validated (``auth.py``, ``params.py``, ``body.py``,
``validation.py``, which the endpoint calls itself, in that order, before any stage), ``after`` on the
handler's response. Stages run in the order of :data:`FACTORIES` before the handler and in reverse
after it: scopes and tiers (``access.py``), scripted answers (``scripted.py``), faults
(``faults.py``), rate limits (``limits.py``), simulated latency (``latency.py``). This module is the
only one that knows them all; each stage knows only :class:`~mock_server.stages.base.Stage`.
"""

from __future__ import annotations

from collections.abc import Sequence

from mock_server.context import Services
from mock_server.stages import access, faults, latency, limits, scripted
from mock_server.stages.base import Stage, StageFactory
from spec import Operation

#: The stage factories, in the order their ``before`` hooks run.
FACTORIES: Sequence[StageFactory] = (access.build, scripted.build, faults.build, limits.build, latency.build)


def build(operation: Operation, services: Services) -> Sequence[Stage]:
    """The stages of ``operation``, in order; a factory returns None when its concern does not apply."""
    return [stage for factory in FACTORIES if (stage := factory(operation, services)) is not None]
