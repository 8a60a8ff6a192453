"""The Starlette app: one route per spec operation, each running the request pipeline.

Pipeline per request (all parts prepared at start-up, none loads a file or a schema):
authenticate (``auth.py``) -> parse JSON -> validate against the spec (``validation.py``) ->
the operation's handler (``handlers/``). Any :class:`ApiError` becomes the error envelope.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mock_server.auth import authenticate
from mock_server.config import MockConfig
from mock_server.context import Call, Handler, Services
from mock_server.errors import ApiError
from mock_server.handlers import HANDLERS
from mock_server.validation import BodyValidator
from spec import Operation, api_names, operations

log = logging.getLogger("mock_server")


def create_app(config: MockConfig | None = None) -> Starlette:
    """Build the mock for every operation of every spec in ``spec/``.

    Operations without a handler answer 501 in the error envelope, so the route table always
    matches the spec. Raises ``spec.loader.SpecError`` if a spec does not load.
    """
    services = Services(config or MockConfig())
    routes: list[Route] = []
    seen: set[tuple[str, str]] = set()
    for api in api_names():
        for operation in operations(api):
            key = (operation.path, operation.method)
            if key in seen:
                continue  # the same path in two vendors' specs: one route serves both
            seen.add(key)
            handler = HANDLERS.get(operation.operation_id, _not_implemented)
            endpoint = _endpoint(operation, handler, services)
            routes.append(Route(operation.path, endpoint, methods=[operation.method.upper()]))
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_exception, Exception: _unexpected},
    )
    app.state.services = services
    return app


def _endpoint(operation: Operation, handler: Handler, services: Services) -> Any:
    validator = BodyValidator(operation)
    needs_auth = bool(operation.security)
    has_json_body = "application/json" in operation.spec.get("requestBody", {}).get("content", {})
    keys = services.config.api_keys

    async def endpoint(request: Request) -> Response:
        try:
            api_key = authenticate(request, keys) if needs_auth else None
            body = await _json_body(request) if has_json_body else None
            validator.validate(body)
            return await handler(Call(request, operation, body, api_key, services))
        except ApiError as error:
            return error.response()

    endpoint.__name__ = operation.operation_id
    return endpoint


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw:
        raise ApiError(400, "The request body is empty; this endpoint expects a JSON object.")
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"We could not parse the JSON body of your request: {exc}.") from exc


async def _not_implemented(call: Call) -> Response:
    raise ApiError(501, f"The mock does not simulate {call.operation.operation_id} yet.", code="not_implemented")


async def _http_exception(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: f"Unknown path {request.url.path}.", 405: f"Method {request.method} not allowed here."}
    return ApiError(status, message.get(status, str(exc))).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return ApiError(500, "Unexpected mock failure; this is a bug in the mock.").response()
