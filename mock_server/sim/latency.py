"""Simulated GPU latency: a latency model per operation and a pool of GPU slots per model.

A :class:`LatencyModel` has named parts, each a :class:`Distribution` of seconds:

- ``queue``: time before a GPU picks the request up (on top of any wait for a free slot);
- ``first``: time to first token (chat) or first byte (media);
- ``per_unit``: generation time per unit of work: an output token, a megapixel, a second of audio
  or video; streams are paced by it (the inter-token latency).

A request's generation time is ONE draw of ``per_unit`` times its work, so a request has one speed
(tokens/s) as on a real GPU, and a long output varies with the draw rather than averaging out.

A :class:`GpuPool` gives each model ``slots`` concurrent generations; more wait in its queue, so
latency grows under concurrency as on a real provider. Every sleep is multiplied by the time scale
(0.01 makes a 2 s generation take 20 ms) and every draw comes from a seeded RNG.
The simulation knows nothing of HTTP; ``mock_server/stages/latency.py`` applies it to requests.
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
    """Drawn delays for one request, already scaled, in s: waiting for a GPU (``queue_s``), to the
    first token or byte (``first_s``), for the rest of the work (``generation_s``), and for one unit
    of it (``unit_s``, the request's one ``per_unit`` draw: a stream's inter-chunk gap)."""

    queue_s: float
    first_s: float
    generation_s: float
    unit_s: float = 0.0

    @property
    def total_s(self) -> float:
        """Queue + first + generation."""
        return self.queue_s + self.first_s + self.generation_s


class GpuPool:
    """``slots`` concurrent generations per model; the rest wait in FIFO order (asyncio.Semaphore).

    The semaphores belong to the running event loop: a pool used from a new loop (a test client that
    opened a new one) starts with fresh, free slots.
    """

    def __init__(self, slots: int) -> None:
        if slots < 1:
            raise ValueError("a GPU pool needs at least one slot")
        self.slots = slots
        self._semaphores: dict[str, asyncio.Semaphore] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def slot(self, model: str) -> asyncio.Semaphore:
        """The semaphore of ``model``'s pool (``async with pool.slot(model): ...``); call it on the loop."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._loop, self._semaphores = loop, {}
        semaphore = self._semaphores.get(model)
        if semaphore is None:
            semaphore = self._semaphores[model] = asyncio.Semaphore(self.slots)
        return semaphore

    def usage(self) -> dict[str, tuple[int, int]]:
        """``{model: (busy slots, generations waiting)}`` of every pool used on the current loop. Reads
        the semaphores' state (``_value``, ``_waiters``: asyncio's own fields, stable since 3.4), so that
        the request path pays nothing for it; meant for scrapes (``metrics.py``)."""
        out: dict[str, tuple[int, int]] = {}
        for model, semaphore in self._semaphores.items():
            waiters = getattr(semaphore, "_waiters", None) or ()
            waiting = sum(1 for waiter in waiters if not waiter.done())
            out[model] = (self.slots - int(getattr(semaphore, "_value", self.slots)), waiting)
        return out


class LatencySimulator:
    """Draws :class:`Plan`s from per-operation models with a seeded RNG and a time scale."""

    def __init__(self, models: Mapping[str, LatencyModel], default: LatencyModel, time_scale: float,
                 seed: int) -> None:
        self.models = dict(models)
        self.default = default
        self.time_scale = time_scale
        self._rng = random.Random(seed)

    def model(self, operation_id: str) -> LatencyModel:
        """The model of ``operation_id``, or the default model."""
        return self.models.get(operation_id, self.default)

    def plan(self, operation_id: str, work: float) -> Plan:
        """Delays for ``work`` units (the model's ``unit``; negative counts as 0) of ``operation_id``,
        scaled by the time scale: generation is one ``per_unit`` draw (``unit_s``) times ``work``."""
        model = self.model(operation_id)
        scale = self.time_scale
        queue_s = model.queue.sample(self._rng) * scale
        first_s = model.first.sample(self._rng) * scale
        unit_s = model.per_unit.sample(self._rng) * scale
        return Plan(queue_s=queue_s, first_s=first_s, generation_s=unit_s * max(work, 0.0), unit_s=unit_s)
