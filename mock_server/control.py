"""The control API: test drivers reset and steer the mock over HTTP, under :data:`PREFIX`.

Mounted only when ``control.enabled`` (off by default), and then guarded by its own key
(``control.key``, never an API key) sent as ``Authorization: Bearer <control key>``: anything else is
401 authentication_error. JSON in and out; errors in the OpenAI envelope (001 "Errors").

- ``POST /_mock/reset``: forget every rate-limit window and every key's gateway spend, empty the
  credits ledger (each key starts again from its starting balance, usage records dropped), restore
  the configured fault rates and re-seed the fault RNG. Hosted media and stored files are kept (they
  are bounded and expire), and so is the id sequence: video jobs and hosted media outlive a reset,
  so an id issued after it must not repeat one issued before.
- ``POST /_mock/credits`` ``{"api_key", "credits"}``: top a configured key up by ``credits`` (1 ..
  :data:`MAX_TOP_UP`); answers ``{"api_key", "credits_added", "balance"}``.
- ``GET /_mock/faults``: the fault rates ``{operationId: {kind: probability}}``;
  ``PUT /_mock/faults`` with such an object replaces them all (``{}`` turns rate faults off).
- ``GET /_mock/ledger?api_key=K&limit=N``: ``{"api_key", "balance", "credits_used", "total_records",
  "usage": [...]}``, the ``limit`` (1 .. :data:`MAX_RECORDS`, default 100) newest usage records with
  ``credits``, ``balance_after`` and ``created_at`` (s since the epoch).
- ``GET /_mock/journal?nonce=&operation_id=&request_id=&trace_id=&since_id=&limit=``: the request
  journal (``journal.py``), ``{"entries": [...], "size", "count"}``, the ``limit`` (1 ..
  :data:`MAX_JOURNAL_LIMIT`, default 100) newest entries matching every filter, oldest first;
  ``GET /_mock/journal/{id}/response`` the raw answer body of one entry (while kept);
  ``DELETE /_mock/journal`` empties it.
- ``POST /_mock/scripts`` ``{"match": {"nonce", "operation_id"}, "steps": [...]}``: scripted upstream
  behaviour (``scripted.py``), answers the script with its ``id``; ``GET /_mock/scripts`` lists those
  in force; ``DELETE /_mock/scripts`` (all) and ``DELETE /_mock/scripts/{id}`` remove them.

Bad input (an unknown operationId or fault kind, a negative count, a journal query too wide) is a
400 naming the field in ``param``.

In a fleet (``state.url`` a Redis URL, ``mock_server/fleet/``) every call acts on the whole fleet,
whichever replica it reaches: the shared state in Redis, and each replica's own part (fault rates,
fault RNG, journal) over the fleet's bus (``replica.py``) before the call answers; 503
``state_unavailable`` while Redis is away.
"""

from __future__ import annotations

import functools
import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mock_server import jsoncodec, replica
from mock_server.config import FAULT_KINDS
from mock_server.context import Services
from mock_server.errors import ApiError, state_unavailable, style_of
from mock_server.fleet.store import StateUnavailable
from mock_server.journal import Journal
from mock_server.sim import UsageRecord
from mock_server.sim.scripts import ScriptError, parse_steps
from mock_server.stages.body import unsafe_json_error
from spec import api_names, operations

#: The reserved path prefix of the control API.
PREFIX = "/_mock"
#: Largest top-up in one call, in credits (keeps balances far inside SQLite's integers).
MAX_TOP_UP = 10**12
#: Most usage records ``GET /_mock/ledger`` lists.
MAX_RECORDS = 1000
#: Most journal entries one ``GET /_mock/journal`` returns.
MAX_JOURNAL_LIMIT = 1000
#: Longest nonce, request id or trace id a journal query may filter by, in characters.
MAX_FILTER_CHARS = 256
#: Largest control request body, in bytes.
MAX_BODY_BYTES = 1024 * 1024

ControlEndpoint = Callable[[Request], Awaitable[Any]]


class Control:
    """The control endpoints over one app's :class:`Services`; ``key`` is the control key."""

    def __init__(self, services: Services, key: str) -> None:
        self.services = services
        self.key = key
        self.operations = {op.operation_id: op for api in api_names() for op in operations(api)}
        self.operation_ids = frozenset(self.operations)

    def endpoint(self, handler: ControlEndpoint) -> Callable[[Request], Awaitable[Response]]:
        """``handler`` behind the control key, its result as JSON, an ApiError as the error envelope."""

        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            try:
                self.authorize(request)
                answer = await handler(request)
                return answer if isinstance(answer, Response) else JSONResponse(answer)
            except ApiError as error:
                return error.response()
            except StateUnavailable as error:  # a fleet whose Redis is away: nothing was changed
                return state_unavailable(error).response()

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
        await services.credits.reset()
        if services.fleet is not None:  # shared state once, then each replica's own (fleet/replica.py)
            await services.fleet.limiter.reset()
            await services.scripts.clear_async()
            await replica.reset_fleet(services)
        else:
            services.limiter.reset()
            replica.reset_local(services)
        return {"reset": ["rate_limits", "spend", "ledger", "fault_rates", "fault_rng", "scripts", "journal"]}

    async def credits(self, request: Request) -> Any:
        """POST /_mock/credits: ``{"api_key", "credits"}`` -> ``{"api_key", "credits_added", "balance"}``."""
        body = await _json_object(request)
        api_key = self.configured_key(body.get("api_key"))
        credits = body.get("credits")
        if isinstance(credits, bool) or not isinstance(credits, int) or not 1 <= credits <= MAX_TOP_UP:
            raise ApiError(400, f"credits must be an integer from 1 to {MAX_TOP_UP}.", param="credits",
                           code="invalid_credits")
        balance = await self.services.credits.top_up(api_key, credits)
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
        if self.services.fleet is not None:
            await replica.set_fleet_faults(self.services, rates)
        else:
            replica.set_faults(self.services, rates)
        return rates

    async def ledger(self, request: Request) -> Any:
        """GET /_mock/ledger?api_key=K&limit=N (see the module docstring)."""
        api_key = self.configured_key(request.query_params.get("api_key"))
        limit = _count(request.query_params.get("limit", "100"), "limit", 1, MAX_RECORDS)
        account = await self.services.credits.account(api_key)
        page = await self.services.credits.usage(api_key, 0, limit)
        return {"api_key": api_key, "balance": account.balance, "credits_used": account.used,
                "total_records": page.total, "usage": [_record(record) for record in page.items]}

    def _journal(self) -> Journal:
        journal = self.services.journal
        if journal is None:
            raise ApiError(409, "The request journal is off (journal.enabled: false).", code="journal_off")
        return journal

    async def journal(self, request: Request) -> Any:
        """GET /_mock/journal (see the module docstring); 400 naming a bad filter or limit."""
        journal = self._journal()
        query = request.query_params
        unknown = sorted(set(query) - {"nonce", "operation_id", "request_id", "trace_id", "since_id", "limit"})
        if unknown:
            raise ApiError(400, f"Unknown journal filter {unknown[0]!r}.", param=unknown[0], code="unknown_filter")
        filters: dict[str, Any] = {}
        for name in ("nonce", "request_id", "trace_id"):
            value = query.get(name)
            if value is not None:
                if not 1 <= len(value) <= MAX_FILTER_CHARS:
                    raise ApiError(400, f"{name} must be 1 to {MAX_FILTER_CHARS} characters.", param=name)
                filters[name] = value
        operation_id = query.get("operation_id")
        if operation_id is not None:
            filters["operation_id"] = self.operation(operation_id, "operation_id")
        filters["since_id"] = _count(query.get("since_id", "0"), "since_id", 0, 2**62)
        filters["limit"] = _count(query.get("limit", "100"), "limit", 1, MAX_JOURNAL_LIMIT)
        if self.services.fleet is not None:
            shown = await replica.fleet_journal(self.services, filters)
        else:
            shown = [entry.as_dict() for entry in journal.select(**filters)]
        return {"entries": shown, "count": len(shown), "size": journal.size}

    async def journal_response(self, request: Request) -> Response:
        """GET /_mock/journal/{id}/response: the raw answer body of one entry; 404 when gone or not kept."""
        journal = self._journal()
        entry_id = _count(request.path_params["entry_id"], "id", 1, 2**62)
        if self.services.fleet is not None:
            found = await replica.fleet_journal_response(self.services, entry_id)
        else:
            entry = journal.find(entry_id)
            found = None if entry is None or entry.response_body is None else (entry.response_body, entry.content_type)
        if found is None:
            raise ApiError(404, f"Journal entry {entry_id} is gone or its answer body was not kept.", param="id",
                           code="not_kept")
        return Response(found[0], media_type=found[1] or "application/octet-stream")

    async def clear_journal(self, request: Request) -> Any:
        """DELETE /_mock/journal: ``{"cleared": n}``."""
        journal = self._journal()
        if self.services.fleet is not None:
            return {"cleared": await replica.fleet_journal_clear(self.services)}
        return {"cleared": journal.clear()}

    async def add_script(self, request: Request) -> Any:
        """POST /_mock/scripts: put a script in force; 400 naming the bad field."""
        body = await _json_object(request)
        unknown = sorted(set(body) - {"match", "steps"})
        if unknown:
            raise ApiError(400, f"Unknown field {unknown[0]!r}.", param=unknown[0])
        match = body.get("match", {})
        if not isinstance(match, Mapping) or set(match) - {"nonce", "operation_id"}:
            raise ApiError(400, "match must be an object with nonce and/or operation_id.", param="match")
        nonce = match.get("nonce")
        if nonce is not None and (not isinstance(nonce, str) or not 1 <= len(nonce) <= MAX_FILTER_CHARS):
            raise ApiError(400, f"match.nonce must be a string of 1 to {MAX_FILTER_CHARS} characters.",
                           param="match.nonce")
        operation_id = match.get("operation_id")
        messages = False
        if operation_id is not None:
            operation_id = self.operation(operation_id, "match.operation_id")
            messages = style_of(self.operations[operation_id].spec) == "anthropic"
        try:
            steps = parse_steps(body.get("steps"), messages)
            script = await self.services.scripts.add_async(steps, nonce, operation_id)
        except ScriptError as error:
            raise ApiError(400, str(error), param=error.param, code="invalid_script") from None
        return script.as_dict()

    async def scripts(self, request: Request) -> Any:
        """GET /_mock/scripts: ``{"scripts": [...]}`` in force, oldest first."""
        return {"scripts": [script.as_dict() for script in await self.services.scripts.listed()]}

    async def clear_scripts(self, request: Request) -> Any:
        """DELETE /_mock/scripts: ``{"deleted": n}``."""
        return {"deleted": await self.services.scripts.clear_async()}

    async def delete_script(self, request: Request) -> Any:
        """DELETE /_mock/scripts/{id}: ``{"deleted": 1}``, or 404 for a script not in force."""
        script_id = request.path_params["script_id"]
        if not await self.services.scripts.remove_async(script_id):
            raise ApiError(404, f"No script {script_id!r} is in force.", param="id", code="unknown_script")
        return {"deleted": 1}

    def operation(self, value: Any, param: str) -> str:
        """``value`` if it is an operationId of the specs. Raises ApiError 400 naming ``param`` otherwise."""
        if not isinstance(value, str) or value not in self.operations:
            raise ApiError(400, f"Unknown operationId {value!r}.", param=param, code="unknown_operation")
        return value

    def configured_key(self, value: Any) -> str:
        """``value`` if it is one of the mock's API keys. Raises ApiError 400 (param api_key) otherwise."""
        if not isinstance(value, str) or value not in self.services.config.api_keys:
            raise ApiError(400, "api_key must be one of the mock's configured API keys.", param="api_key",
                           code="unknown_api_key")
        return value


def _count(text: str, param: str, low: int, high: int) -> int:
    """A query parameter as an integer from ``low`` to ``high``. Raises ApiError 400 naming ``param``."""
    if not text.isdigit() or not low <= int(text) <= high:
        raise ApiError(400, f"{param} must be an integer from {low} to {high}.", param=param)
    return int(text)


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
        Route(f"{PREFIX}/journal", control.endpoint(control.journal), methods=["GET"]),
        Route(f"{PREFIX}/journal", control.endpoint(control.clear_journal), methods=["DELETE"]),
        Route(PREFIX + "/journal/{entry_id}/response", control.endpoint(control.journal_response), methods=["GET"]),
        Route(f"{PREFIX}/scripts", control.endpoint(control.add_script), methods=["POST"]),
        Route(f"{PREFIX}/scripts", control.endpoint(control.scripts), methods=["GET"]),
        Route(f"{PREFIX}/scripts", control.endpoint(control.clear_scripts), methods=["DELETE"]),
        Route(PREFIX + "/scripts/{script_id}", control.endpoint(control.delete_script), methods=["DELETE"]),
    ]
