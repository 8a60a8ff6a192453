"""Gateway billing: charge a priced request against its key's spend limit (``sim/spend.py``).

001 and 002 "Errors": 402 ``billing_error``, "Account out of credit or hit a spend limit". The chat
and image handlers call :func:`bill` once they know the request's price and before they make
anything, so a refused request is charged nothing and answered at once.
"""

from __future__ import annotations

from mock_server.context import Call
from mock_server.errors import ApiError
from mock_server.sim.spend import SpendLimitReached


async def bill(call: Call, cost_usd: float) -> None:
    """Charge ``cost_usd`` (US dollars) to the call's key: in this process, or in a fleet's Redis
    (``fleet/spend.py``). Raises ApiError 402 billing_error (code ``spend_limit_reached``), charging
    nothing, when it would take the key past its spend limit; StateUnavailable (the app's 503) when a
    fleet's Redis is away."""
    fleet = call.services.fleet
    try:
        if fleet is None:
            call.services.spend.charge(call.api_key or "", cost_usd)
        else:
            await fleet.spend.charge(call.api_key or "", cost_usd)
    except SpendLimitReached as refused:
        raise ApiError(402, f"This request costs {refused.cost_usd:.6f} USD and the key has spent "
                            f"{refused.spent_usd:.6f} of its {refused.limit_usd:.6f} USD spend limit.",
                       type="billing_error", code="spend_limit_reached") from None
