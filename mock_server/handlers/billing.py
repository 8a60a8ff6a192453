"""Gateway billing: charge a priced request against its key's spend limit (``sim/spend.py``).

001 and 002 "Errors": 402 ``billing_error``, "Account out of credit or hit a spend limit". The chat
and image handlers call :func:`bill` once they know the request's price and before they make
anything, so a refused request is charged nothing and answered at once.
"""

from __future__ import annotations

from collections.abc import Awaitable

from mock_server.context import Call
from mock_server.errors import ApiError
from mock_server.fleet.spend import SharedSpendMeter
from mock_server.sim.spend import SpendLimitReached


def bill(call: Call, cost_usd: float) -> Awaitable[None] | None:
    """Charge ``cost_usd`` (US dollars) to the call's key. In process the charge is made at once and
    None returned (no await on the in-process path); in a fleet the charge is the returned awaitable
    (``fleet/spend.py``: the key's spend in Redis), which the caller awaits. Either raises ApiError 402
    billing_error (code ``spend_limit_reached``), charging nothing, when the charge would take the key
    past its spend limit; the fleet's, StateUnavailable (the app's 503) when its Redis is away."""
    fleet = call.services.fleet
    if fleet is not None:
        return _bill_shared(fleet.spend, call.api_key or "", cost_usd)
    try:
        call.services.spend.charge(call.api_key or "", cost_usd)
    except SpendLimitReached as refused:
        raise refusal(refused) from None
    return None


async def _bill_shared(spend: SharedSpendMeter, api_key: str, cost_usd: float) -> None:
    try:
        await spend.charge(api_key, cost_usd)
    except SpendLimitReached as refused:
        raise refusal(refused) from None


def refusal(refused: SpendLimitReached) -> ApiError:
    """The 402 billing_error of a charge refused for the key's spend limit (001 and 002 "Errors")."""
    return ApiError(402, f"This request costs {refused.cost_usd:.6f} USD and the key has spent "
                         f"{refused.spent_usd:.6f} of its {refused.limit_usd:.6f} USD spend limit.",
                    type="billing_error", code="spend_limit_reached")
