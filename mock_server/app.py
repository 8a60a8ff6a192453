"""The Starlette app: one route per spec operation, each running the request pipeline.

Pipeline per request (all parts prepared at start-up, none loads a file or a schema):
authenticate (``auth.py``) -> parameters (``params.py``) -> read the body within its size limit
(``body.py``) -> validate it against the spec (``validation.py``) -> the stages of ``stages.py``
(scopes and tiers, faults, rate limits, latency) -> the operation's handler (``handlers/``) -> the
stages again, in reverse, on the response. Any :class:`ApiError` becomes the error envelope of the
operation's protocol.
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mock_server import control
from mock_server.auth import authenticate, key_sources
from mock_server.body import Body, BodyReader
from mock_server.config import MockConfig
from mock_server.context import Call, Handler, Services
from mock_server.errors import STYLES, ApiError
from mock_server.handlers import HANDLERS
from mock_server.hosted import PREFIX as HOSTED_PREFIX
from mock_server.params import ParameterReader
from mock_server.stages import Stage
from mock_server.stages import build as build_stages
from mock_server.validation import BodyValidator
from spec import Operation, api_names, load_api, operations

log = logging.getLogger("mock_server")


def create_app(config: MockConfig | None = None) -> Starlette:
    """Build the mock for every operation of every spec in ``spec/``.

    Operations without a handler answer 501 in the error envelope, so the route table always
    matches the spec. Raises ``spec.loader.SpecError`` if a spec does not load.
    """
    services = Services(config or MockConfig())
    routes: list[Route] = []
    seen: set[tuple[str, str]] = set()
    for api in sorted(api_names(), key=_priority):
        for operation in operations(api):
            key = (operation.path, operation.method)
            if key in seen:
                continue  # the same path in two vendors' specs: one route serves both
            seen.add(key)
            handler = HANDLERS.get(operation.operation_id, _not_implemented)
            endpoint = _endpoint(operation, handler, services)
            routes.append(Route(operation.path, endpoint, methods=[operation.method.upper()]))
    routes.append(Route(HOSTED_PREFIX + "/{media_id}", services.hosted.endpoint, methods=["GET"]))
    if services.config.control.enabled:  # the control API (control.py); ValueError without its key
        routes += control.routes(services)
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_exception, Exception: _unexpected},
    )
    app.state.services = services
    return app


#: Which spec serves a path that several document (``/v1/chat/completions``): the OpenAI-compatible
#: gateway's operation documents the most statuses (001 "Errors"); the others follow by name.
PRIORITY = ("openai_gateway",)


def _priority(api: str) -> tuple[int, str]:
    return (PRIORITY.index(api) if api in PRIORITY else len(PRIORITY), api)


def _endpoint(operation: Operation, handler: Handler, services: Services) -> Any:
    schemes = load_api(operation.api).get("components", {}).get("securitySchemes", {})
    sources = key_sources(operation.security, schemes)
    parameters = ParameterReader(operation)
    reader = BodyReader(operation)
    validator = BodyValidator(operation, media_type="application/json" if reader.json else "multipart/form-data")
    style = error_style(operation)
    keys = services.config.api_keys
    stages = build_stages(operation, services)
    # only the hooks a stage overrides: an awaited no-op still costs a coroutine per request
    befores = [stage.before for stage in stages if type(stage).before is not Stage.before]
    afters = [stage.after for stage in reversed(stages) if type(stage).after is not Stage.after]

    async def endpoint(request: Request) -> Response:
        body = Body(None)
        try:
            api_key = authenticate(request, sources, keys) if sources else None
            params = parameters.read(request)
            body = await reader.read(request) if reader.expects_body else body
            validator.validate(body.data)
            call = Call(request, operation, body.data, api_key, services, params, body.files)
            for before in befores:
                await before(call)
            response = await handler(call)
            for after in afters:
                response = await after(call, response)
            return response
        except ApiError as error:
            return error.response(style)
        finally:
            for uploads in body.files.values():  # an upload over 1 MiB is a temporary file: close it
                for upload in uploads:
                    await upload.close()

    endpoint.__name__ = operation.operation_id
    return endpoint


def error_style(operation: Operation) -> str:
    """The error envelope an operation answers in: its ``x-mirrors`` protocol if the mock knows it."""
    mirrors = operation.spec.get("x-mirrors")
    return mirrors if mirrors in STYLES else "openai"


async def _not_implemented(call: Call) -> Response:
    raise ApiError(501, f"The mock does not simulate {call.operation.operation_id} yet.", code="not_implemented")


async def _http_exception(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    message = {404: f"Unknown path {request.url.path}.", 405: f"Method {request.method} not allowed here."}
    return ApiError(status, message.get(status, str(exc))).response()


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return ApiError(500, "Unexpected mock failure; this is a bug in the mock.").response()
