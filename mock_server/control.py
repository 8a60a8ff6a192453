"""The control API: test drivers reset and steer the mock over HTTP, under :data:`PREFIX`.

Mounted only when ``control.enabled`` (off by default), and then guarded by its own key
(``control.key``, never an API key) sent as ``Authorization: Bearer <control key>``: anything else is
401 authentication_error. JSON in and out; errors in the OpenAI envelope (001 "Errors").

- ``POST /_mock/reset``: forget every rate-limit window, empty the credits ledger (each key starts
  again from its starting balance, usage records dropped), restore the configured fault rates and
  re-seed the fault RNG. Hosted media and stored files are kept (they are bounded and expire).
- ``POST /_mock/credits`` ``{"api_key", "credits"}``: top a configured key up by ``credits`` (1 ..
  :data:`MAX_TOP_UP`); answers ``{"api_key", "credits_added", "balance"}``.
- ``GET /_mock/faults``: the fault rates ``{operationId: {kind: probability}}``;
  ``PUT /_mock/faults`` with such an object replaces them all (``{}`` turns rate faults off).
- ``GET /_mock/ledger?api_key=K&limit=N``: ``{"api_key", "balance", "credits_used", "total_records",
  "usage": [...]}``, the ``limit`` (1 .. :data:`MAX_RECORDS`, default 100) newest usage records with
  ``credits``, ``balance_after`` and ``created_at`` (s since the epoch).
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mock_server import jsoncodec
from mock_server.body import unsafe_json_error
from mock_server.config import FAULT_KINDS
from mock_server.context import Services
from mock_server.errors import ApiError
from mock_server.sim import UsageRecord
from spec import api_names, operations

#: The reserved path prefix of the control API.
PREFIX = "/_mock"
#: Largest top-up in one call, in credits (keeps balances far inside SQLite's integers).
MAX_TOP_UP = 10**12
#: Most usage records ``GET /_mock/ledger`` lists.
MAX_RECORDS = 1000
#: Largest control request body, in bytes.
MAX_BODY_BYTES = 1024 * 1024

ControlEndpoint = Callable[[Request], Awaitable[Any]]


class Control:
    """The control endpoints over one app's :class:`Services`; ``key`` is the control key."""

    def __init__(self, services: Services, key: str) -> None:
        self.services = services
        self.key = key
        self.operation_ids = frozenset(op.operation_id for api in api_names() for op in operations(api))

    def endpoint(self, handler: ControlEndpoint) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` behind the control key, its result as JSON, an ApiError as the error envelope."""

        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            try:
                self.authorize(request)
                return JSONResponse(await handler(request))
            except ApiError as error:
                return error.response()

        return guarded

    def authorize(self, request: Request) -> None:
        """Raises ApiError 401 unless the request carries ``Authorization: Bearer <control key>``."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.key.encode()):
            raise ApiError(401, f"The control API needs 'Authorization: Bearer <control key>' (control.key); "
                                f"API keys are not accepted under {PREFIX}.", code="invalid_control_key",
                           headers={"WWW-Authenticate": "Bearer"})

    async def reset(self, request: Request) -> Any:
        """POST /_mock/reset (see the module docstring)."""
        services = self.services
        services.limiter.reset()
        await anyio.to_thread.run_sync(services.ledger.reset)
        services.fault_rates.clear()
        services.fault_rates.update({op: dict(rates) for op, rates in services.config.faults.operations.items()})
        services.fault_rng.seed(services.config.seed)
        return {"reset": ["rate_limits", "ledger", "fault_rates", "fault_rng"]}

    async def credits(self, request: Request) -> Any:
        """POST /_mock/credits: ``{"api_key", "credits"}`` -> ``{"api_key", "credits_added", "balance"}``."""
        body = await _json_object(request)
        api_key = self.configured_key(body.get("api_key"))
        credits = body.get("credits")
        if isinstance(credits, bool) or not isinstance(credits, int) or not 1 <= credits <= MAX_TOP_UP:
            raise ApiError(400, f"credits must be an integer from 1 to {MAX_TOP_UP}.", param="credits",
                           code="invalid_credits")
        balance = await anyio.to_thread.run_sync(self.services.ledger.top_up, api_key, credits)
        return {"api_key": api_key, "credits_added": credits, "balance": balance}

    async def get_faults(self, request: Request) -> Any:
        """GET /_mock/faults: ``{operationId: {kind: probability}}``."""
        return self.services.fault_rates

    async def put_faults(self, request: Request) -> Any:
        """PUT /_mock/faults: replace every fault rate; 400 naming a bad operationId, kind or rate."""
        body = await _json_object(request)
        rates: dict[str, dict[str, float]] = {}
        for operation_id, kinds in body.items():
            if operation_id not in self.operation_ids:
                raise ApiError(400, f"Unknown operationId {operation_id!r}.", param=operation_id,
                               code="unknown_operation")
            if not isinstance(kinds, Mapping):
                raise ApiError(400, f"{operation_id} must map fault kinds to rates.", param=operation_id)
            rates[operation_id] = {}
            for kind, rate in kinds.items():
                param = f"{operation_id}.{kind}"
                if kind not in FAULT_KINDS:
                    raise ApiError(400, f"Unknown fault kind {kind!r}: use one of {', '.join(FAULT_KINDS)}.",
                                   param=param, code="unknown_fault")
                if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                    raise ApiError(400, f"{param} must be a probability from 0 to 1.", param=param)
                rates[operation_id][kind] = float(rate)
        self.services.fault_rates.clear()
        self.services.fault_rates.update(rates)
        return rates

    async def ledger(self, request: Request) -> Any:
        """GET /_mock/ledger?api_key=K&limit=N (see the module docstring)."""
        api_key = self.configured_key(request.query_params.get("api_key"))
        text = request.query_params.get("limit", "100")
        if not text.isdigit() or not 1 <= int(text) <= MAX_RECORDS:
            raise ApiError(400, f"limit must be an integer from 1 to {MAX_RECORDS}.", param="limit")
        ledger = self.services.ledger
        account = await anyio.to_thread.run_sync(ledger.account, api_key)
        page = await anyio.to_thread.run_sync(functools.partial(ledger.usage, api_key, 0, int(text)))
        return {"api_key": api_key, "balance": account.balance, "credits_used": account.used,
                "total_records": page.total, "usage": [_record(record) for record in page.items]}

    def configured_key(self, value: Any) -> str:
        """``value`` if it is one of the mock's API keys. Raises ApiError 400 (param api_key) otherwise."""
        if not isinstance(value, str) or value not in self.services.config.api_keys:
            raise ApiError(400, "api_key must be one of the mock's configured API keys.", param="api_key",
                           code="unknown_api_key")
        return value


def _record(record: UsageRecord) -> dict[str, Any]:
    return {"usage_id": record.usage_id, "endpoint_type": record.endpoint_type, "credits": record.credits,
            "status": record.status, "created_at": record.created_at, "balance_after": record.balance_after,
            "result": dict(record.result)}


async def _json_object(request: Request) -> dict[str, Any]:
    """The request's JSON object body. Raises ApiError 400 for anything else (naming the field of a NaN, a lone
    surrogate or too deep a nesting, as ``body.py`` does), 413 over :data:`MAX_BODY_BYTES`."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            raise ApiError(413, f"Control request body over {MAX_BODY_BYTES} bytes.", code="request_too_large")
    try:
        body = jsoncodec.loads(raw)
    except jsoncodec.UnsafeJson as error:  # NaN, a lone surrogate, nesting past the parsers' depth
        raise unsafe_json_error(error) from None
    except ValueError:  # JSONDecodeError, UnicodeDecodeError
        raise ApiError(400, "The body must be a JSON object.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The body must be a JSON object.", code="invalid_json")
    return body


def routes(services: Services) -> list[Route]:
    """The control API's routes for ``services``. Raises ValueError when it is enabled without a key."""
    key = services.config.control.key
    if not key:
        raise ValueError("the control API is enabled (control.enabled) but has no control.key")
    control = Control(services, key)
    return [
        Route(f"{PREFIX}/reset", control.endpoint(control.reset), methods=["POST"]),
        Route(f"{PREFIX}/credits", control.endpoint(control.credits), methods=["POST"]),
        Route(f"{PREFIX}/faults", control.endpoint(control.get_faults), methods=["GET"]),
        Route(f"{PREFIX}/faults", control.endpoint(control.put_faults), methods=["PUT"]),
        Route(f"{PREFIX}/ledger", control.endpoint(control.ledger), methods=["GET"]),
    ]
