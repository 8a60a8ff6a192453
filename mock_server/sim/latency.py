"""Simulated GPU latency: a latency model per operation and a pool of GPU slots per model.

A :class:`LatencyModel` has named parts, each a :class:`Distribution` of seconds:

- ``queue``: time before a GPU picks the request up (on top of any wait for a free slot);
- ``first``: time to first token (chat) or first byte (media);
- ``per_unit``: generation time per unit of work: an output token, a megapixel, a second of audio
  or video; streams are paced by it (the inter-token latency).

A :class:`GpuPool` gives each model ``slots`` concurrent generations; more wait in its queue, so
latency grows under concurrency as on a real provider. Every sleep is multiplied by the time scale
(0.01 makes a 2 s generation take 20 ms) and every draw comes from a seeded RNG.
The simulation knows nothing of HTTP; ``mock_server/latency_stage.py`` applies it to requests.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: z-score of the 95th percentile of a standard normal distribution.
Z95 = 1.6448536269514722


@dataclass(frozen=True)
class Distribution:
    """Seconds drawn as ``fixed`` (``value``), ``uniform`` (``low``..``high``) or ``lognormal`` (from its
    ``p50`` and ``p95``). Raises ValueError for an unknown kind or impossible parameters."""

    kind: str = "fixed"
    value: float = 0.0
    low: float = 0.0
    high: float = 0.0
    p50: float = 0.0
    p95: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in ("fixed", "uniform", "lognormal"):
            raise ValueError(f"unknown distribution {self.kind!r}")
        if self.kind == "lognormal" and not 0 < self.p50 <= self.p95:
            raise ValueError("a lognormal needs 0 < p50 <= p95")
        if self.kind == "uniform" and not 0 <= self.low <= self.high:
            raise ValueError("a uniform needs 0 <= low <= high")

    def sample(self, rng: random.Random) -> float:
        """One draw, in s."""
        if self.kind == "uniform":
            return rng.uniform(self.low, self.high)
        if self.kind == "lognormal":
            mu = math.log(self.p50)
            sigma = (math.log(self.p95) - mu) / Z95
            return rng.lognormvariate(mu, sigma)
        return self.value

    @classmethod
    def parse(cls, spec: Any) -> Distribution:
        """From config: a number (fixed s) or ``{fixed: s}``, ``{uniform: [low, high]}``,
        ``{lognormal: {p50: s, p95: s}}``."""
        if isinstance(spec, int | float):
            return cls("fixed", value=float(spec))
        if "fixed" in spec:
            return cls("fixed", value=float(spec["fixed"]))
        if "uniform" in spec:
            low, high = spec["uniform"]
            return cls("uniform", low=float(low), high=float(high))
        return cls("lognormal", p50=float(spec["lognormal"]["p50"]), p95=float(spec["lognormal"]["p95"]))


@dataclass(frozen=True)
class LatencyModel:
    """The parts of one operation's latency; ``unit`` names what ``per_unit`` is per
    (tokens, megapixels, audio_s, video_s)."""

    queue: Distribution = field(default_factory=Distribution)
    first: Distribution = field(default_factory=Distribution)
    per_unit: Distribution = field(default_factory=Distribution)
    unit: str = "tokens"

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> LatencyModel:
        """From config: ``{queue, first, per_unit: distributions; unit: name}`` (each part optional)."""
        return cls(
            queue=Distribution.parse(spec.get("queue", 0)),
            first=Distribution.parse(spec.get("first", 0)),
            per_unit=Distribution.parse(spec.get("per_unit", 0)),
            unit=str(spec.get("unit", "tokens")),
        )


@dataclass(frozen=True)
class Plan:
    """Drawn delays for one request, already scaled, in s: ``gaps`` between streamed chunks."""

    queue_s: float
    first_s: float
    generation_s: float

    @property
    def total_s(self) -> float:
        """Queue + first + generation."""
        return self.queue_s + self.first_s + self.generation_s


class GpuPool:
    """``slots`` concurrent generations per model; the rest wait in FIFO order (asyncio.Semaphore)."""

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a GPU pool needs at least one slot")
        self.slots = slots
        self._semaphores: dict[str, asyncio.Semaphore] = {}

    def slot(self, model: str) -> asyncio.Semaphore:
        """The semaphore of ``model``'s pool (``async with pool.slot(model): ...``)."""
        semaphore = self._semaphores.get(model)
        if semaphore is None:
            semaphore = self._semaphores[model] = asyncio.Semaphore(self.slots)
        return semaphore


class LatencySimulator:
    """Draws :class:`Plan`s from per-operation models with a seeded RNG and a time scale."""

    def __init__(self, models: Mapping[str, LatencyModel], default: LatencyModel, time_scale: float,
                 seed: int) -> None:
        self.models = dict(models)
        self.default = default
        self.time_scale = time_scale
        self._rng = random.Random(seed)

    def plan(self, operation_id: str, work: float) -> Plan:
        """Delays for ``work`` units of ``operation_id``, scaled by the time scale."""
        model = self.models.get(operation_id, self.default)
        scale = self.time_scale
        return Plan(
            queue_s=model.queue.sample(self._rng) * scale,
            first_s=model.first.sample(self._rng) * scale,
            generation_s=sum(model.per_unit.sample(self._rng) for _ in range(min(int(work), 10_000))) * scale
            + model.per_unit.sample(self._rng) * max(work - 10_000, 0) * scale,
        )

    def gap_s(self, operation_id: str) -> float:
        """One inter-chunk gap of a stream of ``operation_id`` (one unit's generation time), scaled."""
        return self.models.get(operation_id, self.default).per_unit.sample(self._rng) * self.time_scale
