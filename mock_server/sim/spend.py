"""Spend limits of the OpenAI-compatible gateway: what each key has spent, in US dollars, against its limit.

001 and 002 "Errors": 402 ``billing_error``, "Account out of credit or hit a spend limit". 002
"Pricing": chat is billed per token ("Image output tokens are billed separately from text tokens",
at a rate per million tokens), the Images API per image ("The price depends on model, size, and
quality"). The seeds give no figures; the catalogue's ``price`` entries (``data/models.yaml``) are
the mock's, and a key's ``spend_limit_usd`` comes from the configuration.

A request is refused when its cost would take the key's spend past its limit; a refused request is
charged nothing. A key without a limit is never refused and its spend is still counted. Amounts are
kept in micro-dollars (integers), so sums are exact. The simulation knows nothing of HTTP: the
handlers turn :class:`SpendLimitReached` into the 402.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

#: Micro-dollars per US dollar.
MICROS = 1_000_000


@dataclass(frozen=True)
class Price:
    """One model's price (002 "Pricing"): chat ``input_per_mtok_usd`` and ``output_per_mtok_usd`` (US
    dollars per million tokens; image output tokens count as output), and for image generation
    ``per_image_usd[quality][size]`` (US dollars per image; ``size`` as ``WxH``). A size a quality does
    not list costs that quality's dearest listed size."""

    input_per_mtok_usd: float = 0.0
    output_per_mtok_usd: float = 0.0
    per_image_usd: Mapping[str, Mapping[str, float]] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def parse(cls, data: Mapping[str, object] | None) -> Price | None:
        """A catalogue entry's ``price`` mapping as a Price (None for none). Raises ValueError (TypeError
        from float()) on a malformed figure."""
        if not data:
            return None
        images = data.get("per_image_usd") or {}
        if not isinstance(images, Mapping):
            raise ValueError(f"per_image_usd must map a quality to {{size: usd}}, not {images!r}")
        return cls(float(str(data.get("input_per_mtok_usd", 0.0))), float(str(data.get("output_per_mtok_usd", 0.0))),
                   MappingProxyType({str(quality): MappingProxyType({str(s): float(u) for s, u in sizes.items()})
                                     for quality, sizes in images.items()}))

    def tokens_usd(self, input_tokens: int, output_tokens: int) -> float:
        """The price of a chat answer, in US dollars."""
        return (input_tokens * self.input_per_mtok_usd + output_tokens * self.output_per_mtok_usd) / 1_000_000

    def images_usd(self, quality: str, size: str, n: int) -> float:
        """The price of ``n`` images of ``quality`` and ``size`` (``WxH``), in US dollars; 0 when unpriced."""
        sizes = self.per_image_usd.get(quality) or next(iter(self.per_image_usd.values()), {})
        return n * sizes.get(size, max(sizes.values(), default=0.0))


def micros(cost_usd: float) -> int:
    """``cost_usd`` (US dollars) in micro-dollars, rounded up: what a charge adds to a key's spend."""
    return math.ceil(cost_usd * MICROS)


class SpendLimitReached(Exception):
    """A charge refused: ``cost_usd`` would take ``spent_usd`` past ``limit_usd`` (all US dollars)."""

    def __init__(self, cost_usd: float, spent_usd: float, limit_usd: float) -> None:
        super().__init__(f"cost {cost_usd} USD, spent {spent_usd} of {limit_usd} USD")
        self.cost_usd, self.spent_usd, self.limit_usd = cost_usd, spent_usd, limit_usd


class SpendMeter:
    """Per-key spend against per-key limits (``limits``: key -> US dollars), thread-safe.

    :meth:`charge` adds a cost or raises :class:`SpendLimitReached` having added nothing.
    """

    def __init__(self, limits: Mapping[str, float]) -> None:
        self._limits = {key: round(usd * MICROS) for key, usd in limits.items()}
        self._spent: dict[str, int] = {}
        self._lock = threading.Lock()

    def limit_micros(self, key: str) -> int | None:
        """The key's spend limit in micro-dollars, or None for none."""
        return self._limits.get(key)

    def limit_usd(self, key: str) -> float | None:
        """The key's spend limit in US dollars, or None for none."""
        limit = self._limits.get(key)
        return None if limit is None else limit / MICROS

    def spent_usd(self, key: str) -> float:
        """What the key has spent so far, in US dollars."""
        return self._spent.get(key, 0) / MICROS

    def charge(self, key: str, cost_usd: float) -> float:
        """Add ``cost_usd`` (rounded up to a micro-dollar) to the key's spend and return the new total (USD).

        Raises SpendLimitReached, charging nothing, when the total would pass the key's limit; a key
        whose limit is 0 is refused every priced request (a free one is admitted).
        """
        cost = micros(cost_usd)
        with self._lock:
            spent = self._spent.get(key, 0)
            limit = self._limits.get(key)
            if limit is not None and spent + cost > limit:
                raise SpendLimitReached(cost / MICROS, spent / MICROS, limit / MICROS)
            self._spent[key] = spent + cost
            return (spent + cost) / MICROS

    def reset(self) -> None:
        """Forget every key's spend (the control API's reset); the limits stay."""
        with self._lock:
            self._spent.clear()
