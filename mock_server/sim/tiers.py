"""Account tiers: which keys may call an operation or provider that requires one.

004 "Video: Text-to-Video (T2V)": "Tier: Premium only" (the spec's ``x-tier: premium``); 004
"Video: Image-to-Video (I2V)" marks the provider sora2 "(premium)" (``x-providers.sora2.premium``).
004 names no other tier, and says nothing of how a key gets one: until keys with tiers are
configured, every key is premium (:data:`DEFAULT_TIER`).
"""

from __future__ import annotations

from collections.abc import Mapping

#: The one tier 004 names.
PREMIUM = "premium"
#: The tier of a key that the configuration does not place in one.
DEFAULT_TIER = PREMIUM
#: The tier of a key below premium: 004 names none, so the name is the mock's.
STANDARD = "standard"
#: Every tier a configured key may have.
TIERS = (PREMIUM, STANDARD)


def key_tier(api_key: str | None, tiers: Mapping[str, str] | None = None) -> str:
    """The tier of ``api_key``: its entry in ``tiers`` (key -> tier), else :data:`DEFAULT_TIER`."""
    return (tiers or {}).get(api_key or "", DEFAULT_TIER)


def meets(tier: str, required: str | None) -> bool:
    """Whether an account of ``tier`` may use something that requires ``required`` (None: any tier).

    004 names only the premium tier, so a requirement is met by that very tier alone.
    """
    return required is None or tier == required
