"""The Starlette app: one route per spec operation, each running the request pipeline.

Pipeline per request (all parts prepared at start-up, none loads a file or a schema):
authenticate (``stages/auth.py``) -> parameters (``stages/params.py``) -> read the body within its size
limit (``stages/body.py``) -> validate it against the spec (``stages/validation.py``) -> the stages of
``stages/pipeline.py`` (scopes and tiers, faults, rate limits, latency) -> the operation's handler
(``handlers/``) -> the
stages again, in reverse, on the response. Any :class:`ApiError` becomes the error envelope of the
operation's protocol.
"""

from __future__ import annotations

import functools
import logging
import time
from bisect import bisect_left
from collections.abc import Sequence
from typing import Any

from starlette._exception_handler import _lookup_exception_handler
from starlette._utils import is_async_callable
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import ClientDisconnect, Request, empty_receive, empty_send
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mock_server import control, observability, replica
from mock_server.config import MockConfig
from mock_server.context import Call, Handler, Services
from mock_server.errors import ApiError, excerpt, state_unavailable, style_of
from mock_server.fleet.store import StateUnavailable
from mock_server.handlers import HANDLERS
from mock_server.hosted import PREFIX as HOSTED_PREFIX
from mock_server.metrics import BUCKETS_S
from mock_server.stages.auth import authenticate, key_sources
from mock_server.stages.base import Stage
from mock_server.stages.body import NO_BODY, Body, BodyReader
from mock_server.stages.params import ParameterReader
from mock_server.stages.pipeline import build as build_stages
from mock_server.stages.scripted import StreamReset
from mock_server.stages.validation import BodyValidator
from spec import Operation, api_names, load_api, operations

log = logging.getLogger("mock_server")
#: Scope key an :class:`OperationEndpoint` sets when it begins to send its answer (see :class:`MockStarlette`).
STARTED = "mock.answer_started"


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
            endpoint = OperationEndpoint(operation, handler, services)
            routes.append(Route(route_path(operation), endpoint, methods=[operation.method.upper()],
                                name=operation.operation_id))
    routes.append(Route(HOSTED_PREFIX + "/{media_id}", services.hosted.endpoint, methods=["GET"]))
    if services.config.control.enabled:  # the control API (control.py); ValueError without its key
        routes += control.routes(services)
    if services.config.observability:  # /metrics, /health, /ready and X-Request-Id (observability.py)
        routes += observability.routes(services)
    replica.attach(services)  # a fleet's bus and job recovery (replica.py); nothing in process
    app = MockStarlette(exception_handlers={HTTPException: _http_exception, ClientDisconnect: _disconnected,
                                            Exception: _unexpected})
    # before the first request builds the middleware stack; the router runs the lifespan (a fleet's bus)
    app.router = StaticPathRouter(routes, lifespan=(lambda _app: replica.lifespan(services))
                                  if services.fleet is not None else None)
    app.observed = services.config.observability
    app.state.services = services
    return app


def route_path(operation: Operation) -> str:
    """The Starlette path of ``operation``: its spec path, with ``{name:path}`` for a path parameter marked
    ``x-slashes`` (a model id such as ``openai/gpt-5-mini``, which the SDK percent-encodes and the server
    decodes back into two path segments)."""
    path = operation.path
    for parameter in operation.spec.get("parameters", []):
        if parameter.get("in") == "path" and parameter.get("x-slashes"):
            path = path.replace("{" + parameter["name"] + "}", "{" + parameter["name"] + ":path}")
    return path


class MockStarlette(Starlette):
    """Starlette that sends a spec operation's request straight to its endpoint (the hot path), and,
    when ``observed``, with :class:`~mock_server.observability.RequestIdMiddleware` outside its whole
    stack, so that every answer (its own 500s included) carries ``X-Request-Id``.

    Straight to the endpoint: a request whose (path, method) is in the router's static table and
    names an :class:`OperationEndpoint` skips Starlette's layers (the app, its two exception
    middlewares, which each wrap ``send``, the router and the route: about 15% of a chat request in
    process) and gets from :meth:`__call__` what they would have done: the same scope keys, the
    request id, and on an exception the same answer (ClientDisconnect and HTTPException to their
    handlers, anything else to the 500 handler and re-raised). With user middleware, a body-size
    middleware, a router-level middleware, debug mode, no 500 handler or a ``root_path``, every
    request goes through Starlette.
    ``tests/test_fast_paths.py`` proves both ways answer alike, failures included.
    """

    #: Whether the app keeps X-Request-Id and metrics (``observability.enabled``).
    observed: bool = False
    #: (path, method) to (route, endpoint) for the direct way; set when the middleware stack is built.
    direct: dict[tuple[str, str], tuple[Route, OperationEndpoint]]
    _error_handler: Any
    _handlers: tuple[dict[Any, Any], dict[int, Any]]

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        self._error_handler, self._handlers = _split_handlers(stack)
        router = self.router
        plain = (not self.user_middleware and getattr(self, "max_body_size", None) is None and not self.debug
                 and self._error_handler is not None
                 and getattr(router, "middleware_stack", router.app) == router.app)
        static = router.static if plain and isinstance(router, StaticPathRouter) else {}
        self.direct = {key: (route, route.endpoint) for key, route in static.items()
                       if isinstance(route.endpoint, OperationEndpoint)}
        if not self.observed:
            return stack
        return observability.RequestIdMiddleware(stack, frozenset(path for path, _ in self.direct))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.middleware_stack is None:
            self.middleware_stack = self.build_middleware_stack()
        if scope["type"] == "http" and not scope.get("root_path"):
            found = self.direct.get((scope["path"], scope["method"]))
            if found is not None:
                # the direct way: what Starlette's layers do for the route (``Starlette.__call__``,
                # ``ServerErrorMiddleware``, ``ExceptionMiddleware``, ``Router.app``, ``Route.handle``), in
                # this coroutine and without their ``send`` wrappers on the way out: the endpoint reports
                # whether it began an answer (``scope[STARTED]``)
                scope["app"] = self
                if self.observed:
                    scope[observability.SCOPE_KEY] = observability.new_request_id(scope)
                scope["starlette.exception_handlers"] = self._handlers
                scope.setdefault("router", self.router)
                scope["route"], scope["endpoint"] = found
                scope["path_params"] = dict(scope.get("path_params", {}))
                try:
                    await found[1](scope, receive, send)
                except Exception as exc:
                    await self._failed(exc, scope, receive, send)
                return
        scope["app"] = self
        await self.middleware_stack(scope, receive, send)

    async def _failed(self, exc: Exception, scope: Scope, receive: Receive, send: Send) -> None:
        """Starlette's answer to an exception out of a directly called endpoint, as its two middlewares
        give it (``starlette.middleware.exceptions``, ``starlette.middleware.errors``)."""
        started = scope.get(STARTED, False)
        handler: Any = None
        if isinstance(exc, HTTPException):
            handler = self._handlers[1].get(exc.status_code)
        handler = handler or _lookup_exception_handler(self._handlers[0], exc)
        error: Exception = exc
        if handler is not None:
            if not started:
                request = Request(scope, receive, send)
                response = (await handler(request, exc) if is_async_callable(handler)
                            else await run_in_threadpool(handler, request, exc))
                if response is not None:
                    await response(scope, receive, send)
                exc.__traceback__ = None
                return
            error = RuntimeError("Caught handled exception, but response already started.")
            error.__cause__ = exc
        request = Request(scope)
        response = (await self._error_handler(request, error) if is_async_callable(self._error_handler)
                    else await run_in_threadpool(self._error_handler, request, error))
        if not started:
            await response(scope, receive, send)
        raise error


def _split_handlers(stack: ASGIApp) -> tuple[Any, tuple[dict[Any, Any], dict[int, Any]]]:
    """The 500 handler of Starlette's ``ServerErrorMiddleware`` and the (exception, status) handler
    tables of its ``ExceptionMiddleware``, found by walking the middleware ``stack``."""
    error_handler = getattr(stack, "handler", None)
    layer: Any = stack
    while layer is not None and not isinstance(layer, ExceptionMiddleware):
        layer = getattr(layer, "app", None)
    tables = (layer._exception_handlers, layer._status_handlers) if layer is not None else ({}, {})
    return error_handler, tables


class StaticPathRouter(Router):
    """Starlette's router with a table of its static routes by (path, method).

    Starlette tries each route's regex in turn, so a request pays for every route listed before its
    own (``/v1/messages`` is the 18th). A request for a (path, method) in the table goes straight
    to its route. The table only holds a route that Starlette's first match would pick (no earlier
    route takes that path and method), so every answer is the one Starlette gives; anything else
    (path parameters, a 405, a ``root_path``, lifespan) goes through
    Starlette's own matching. A path with a trailing slash no operation has (``/v1/chat/completions/``)
    is a 404 in the API's envelope, as an unknown path is, not Starlette's empty 307 redirect: a client
    posting there gets an error that says what is wrong, and a POST is never silently re-sent.
    """

    def __init__(self, routes: Sequence[BaseRoute], lifespan: Any = None) -> None:
        super().__init__(routes=routes, lifespan=lifespan, redirect_slashes=False)
        self.static: dict[tuple[str, str], Route] = {}
        for index, route in enumerate(self.routes):
            if not isinstance(route, Route) or route.param_convertors or not route.methods:
                continue
            for method in route.methods:
                if not any(_answers(other, route.path, method) for other in self.routes[:index]):
                    self.static.setdefault((route.path, method), route)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.static.get((scope["path"], scope["method"])) if scope["type"] == "http" else None
        if route is None or scope.get("root_path"):
            await super().app(scope, receive, send)
            return
        scope.setdefault("router", self)
        scope["route"] = route
        scope["endpoint"] = route.endpoint  # the child scope Route.matches gives a static path
        scope["path_params"] = dict(scope.get("path_params", {}))
        await route.handle(scope, receive, send)


def _answers(route: BaseRoute, path: str, method: str) -> bool:
    """Whether Starlette would hand a ``method`` request for ``path`` to ``route`` (any route but a
    plain :class:`Route` counts as answering: the table leaves such paths to Starlette)."""
    if not isinstance(route, Route):
        return True
    return route.path_regex.match(path) is not None and (route.methods is None or method in route.methods)


#: Which spec serves a path that several document (``/v1/chat/completions``): the OpenAI-compatible
#: gateway's operation documents the most statuses (001 "Errors"); the others follow by name.
PRIORITY = ("openai_gateway",)


def _priority(api: str) -> tuple[int, str]:
    return (PRIORITY.index(api) if api in PRIORITY else len(PRIORITY), api)


class _Headers(Headers):
    """Starlette's request headers with a ``get`` that scans once: ``Mapping.get`` goes through
    ``__getitem__`` and a KeyError for every absent header (the fault header, on each request).
    The server's list of headers is read in place, not copied."""

    def __init__(self, scope: Scope) -> None:
        headers = scope["headers"]
        self._list = headers if isinstance(headers, list) else list(headers)

    def get(self, key: str, default: Any = None) -> Any:
        wanted = key.lower().encode("latin-1")
        for name, value in self._list:
            if name == wanted:  # the first occurrence, as Headers[key]
                return value.decode("latin-1")
        return default


class MockRequest(Request):
    """The request the pipeline reads: Starlette's, with :class:`_Headers`, built in one call."""

    def __init__(self, scope: Scope, receive: Receive = empty_receive, send: Send = empty_send) -> None:
        # what Request.__init__ and HTTPConnection.__init__ set, without their two calls and checks
        # (the pipeline only ever sees HTTP scopes); tests/test_fast_paths.py compares the attributes
        self.scope = scope
        self._receive = receive
        self._send = send
        self._stream_consumed = False
        self._is_disconnected = False
        self._form = None

    @property
    def headers(self) -> Headers:
        if not hasattr(self, "_headers"):
            self._headers = _Headers(self.scope)
        return self._headers


class OperationEndpoint:
    """The ASGI app of one spec operation: the request pipeline of the module docstring.

    Built at start-up with everything the pipeline needs (the key sources, parameter and body
    readers, the compiled validator, the error style, the stage hooks). An ASGI app rather than a
    Starlette request/response function: Starlette would wrap each request in one more
    exception-handling layer, through which every message sent passes, and the pipeline already
    answers every :class:`ApiError` itself; anything else still reaches the app's handler of
    unexpected exceptions (a 500 envelope).
    """

    def __init__(self, operation: Operation, handler: Handler, services: Services) -> None:
        schemes = load_api(operation.api).get("components", {}).get("securitySchemes", {})
        self.operation = operation
        self.handler = handler
        self.services = services
        self.sources = key_sources(operation.security, schemes)
        self.keys = services.config.api_keys
        self.parameters = ParameterReader(operation)
        self.reader = BodyReader(operation)
        media_type = "application/json" if self.reader.json else "multipart/form-data"
        self.validator = BodyValidator(operation, media_type=media_type)
        self.style = error_style(operation)
        self.metrics = services.metrics.operation(operation.operation_id) if services.metrics else None
        stages = build_stages(operation, services)
        # only the hooks a stage overrides, and an `after` only when its stage noted something for it
        # (Stage.after_needs): an awaited no-op still costs a coroutine per request
        # a stage whose `before` is the base's (its `check`, which never awaits) is called directly: no coroutine
        self.befores: list[tuple[bool, Any]] = [
            (False, stage.before) if type(stage).before is not Stage.before else (True, stage.check)
            for stage in stages if type(stage).before is not Stage.before or type(stage).check is not Stage.check]
        # likewise an `after` that is the base's (its `finish`, which never awaits) is called directly
        self.afters: list[tuple[str | None, bool, Any]] = [
            (stage.after_needs, False, stage.after) if type(stage).after is not Stage.after
            else (stage.after_needs, True, stage.finish)
            for stage in reversed(stages)
            if type(stage).after is not Stage.after or type(stage).finish is not Stage.finish]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # one coroutine for the whole pipeline (the answer, the journal, sending, the metrics): every layer
        # of calls costs a served request its frame run cold (benchmarks/RESULTS.md, "Sixth session")
        started = time.perf_counter()
        request = MockRequest(scope, receive)
        journal = self.services.journal
        clock = time.monotonic() if journal is not None else 0.0
        body = NO_BODY
        call = None
        try:
            try:
                api_key = authenticate(request, self.sources, self.keys) if self.sources else None
                params = self.parameters.read(request)
                body = await self.reader.read(request) if self.reader.expects_body else NO_BODY
                if not self.validator.is_valid(body.data):
                    await self.validator.refuse(body.data)  # the 400, worded off the event loop
                call = Call(request, self.operation, body.data, api_key, self.services, params, body.files)
                for now, before in self.befores:
                    if now:
                        waiting = before(call)  # Stage.check: None, or its awaiting part
                        if waiting is not None:
                            await waiting
                    else:
                        await before(call)
                response = await self.handler(call)
                state = call.state
                for needs, now, after in self.afters:
                    if needs is None or needs in state:
                        response = after(call, response) if now else await after(call, response)
            except ApiError as error:
                response = error.response(self.style)
            except StateUnavailable as error:  # a fleet's Redis is away: 503, never a 500 or a hang
                response = state_unavailable(error).response(self.style)
            if journal is not None:  # before the uploads close: the journal keeps their digests
                response = journal.record(scope, self.operation.operation_id, body, clock, response,
                                          call.state.get("script") if call is not None else None)
        finally:
            if body.files:  # an upload over 1 MiB is a temporary file: close it
                for uploads in body.files.values():
                    for upload in uploads:
                        await upload.close()
        request_id = scope.get(observability.SCOPE_KEY)  # observability.tag, in place
        if request_id is not None:
            response.raw_headers.append((observability.HEADER, request_id))
        metrics = self.metrics
        streaming = metrics is not None and isinstance(response, StreamingResponse)
        if streaming:
            metrics.streams += 1  # type: ignore[union-attr]  # streaming implies metrics
        plain = type(response).__call__ is Response.__call__
        if plain:
            scope[STARTED] = True  # Response's first act is to send the start message
        else:  # note when another kind of answer sends its start message
            send = _noting_start(scope, send)
        try:
            if plain and response.background is None:  # Response.__call__'s two messages, without its coroutine
                await send({"type": "http.response.start", "status": response.status_code,
                            "headers": response.raw_headers})
                await send({"type": "http.response.body", "body": response.body})
            else:
                await response(scope, receive, send)
        except StreamReset:  # a scripted reset: return with the body unfinished, uvicorn drops the connection
            log.info("scripted reset of %s %s mid-stream", scope["method"], scope["path"])
        finally:
            if metrics is not None:
                if streaming:
                    metrics.streams -= 1
                # OperationMetrics.answered, in place (tests/test_fast_paths.py compares the two)
                statuses, duration, seconds = metrics.statuses, metrics.duration, time.perf_counter() - started
                status = response.status_code
                statuses[status] = statuses.get(status, 0) + 1
                duration.counts[bisect_left(BUCKETS_S, seconds)] += 1
                duration.sum_s += seconds


def _noting_start(scope: Scope, send: Send) -> Send:
    """``send`` that sets ``scope[STARTED]`` once the start message of an answer passes (as Starlette's
    exception middlewares note it: before the message is sent)."""

    async def noting(message: Message) -> None:
        if message["type"] == "http.response.start":
            scope[STARTED] = True
        await send(message)

    return noting


def error_style(operation: Operation) -> str:
    """The error envelope an operation answers in (:func:`mock_server.errors.style_of`)."""
    return style_of(operation.spec)


async def _not_implemented(call: Call) -> Response:
    raise ApiError(501, f"The mock does not simulate {call.operation.operation_id} yet.", code="not_implemented")


#: The ``operation`` label under which ``/metrics`` counts requests that match no spec operation (a 404
#: or 405 from the router, a hosted file that is gone); the journal files them with operationId null.
UNMATCHED = "(unmatched)"
#: Most bytes of such a request's body that the journal keeps, in bytes (the rest is not read).
UNMATCHED_BODY_BYTES = 1 << 20


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's 404 and 405 (with its ``Allow`` header, RFC 9110 15.5.6) in the envelope of the protocol
    that owns the path. Counted in ``/metrics`` under :data:`UNMATCHED` and recorded in the request
    journal (a gateway that forwards to a wrong path shows there, its body's nonce included)."""
    clock, started = time.monotonic(), time.perf_counter()
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    message = {404: f"Unknown path {excerpt(request.url.path)}.", 405: f"Method {request.method} not allowed here."}
    response: Response = ApiError(status, message.get(status, str(exc)), headers=headers).response(
        path_style(request.url.path))
    services: Services | None = getattr(request.app.state, "services", None)
    if services is not None and services.journal is not None:
        body = Body(None, raw=await _head_of_body(request, UNMATCHED_BODY_BYTES))
        response = services.journal.record(request.scope, None, body, clock, response)
    if services is not None and services.metrics is not None:
        services.metrics.operation(UNMATCHED).answered(status, time.perf_counter() - started)
    return observability.tag(request.scope, response)


async def _head_of_body(request: Request, limit: int) -> bytes | None:
    """The first ``limit`` bytes of ``request``'s body (None for an empty or unreadable one); the rest
    is left unread."""
    head = bytearray()
    try:
        async for chunk in request.stream():
            head += chunk[: limit - len(head)]
            if len(head) >= limit:
                break
    except (ClientDisconnect, RuntimeError):  # gone, or already read by the route
        pass
    return bytes(head) or None


async def _disconnected(request: Request, exc: Exception) -> Response:
    """A client that went away before its body was read: one log line, and an answer nobody receives."""
    log.info("client disconnected before sending its whole body: %s %s", request.method, request.url.path)
    return Response(status_code=400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    error = ApiError(500, "Unexpected mock failure; this is a bug in the mock.")
    return observability.tag(request.scope, error.response(path_style(request.url.path)))


@functools.cache
def _style_paths() -> tuple[tuple[str, str], ...]:
    """(path prefix, style) of every operation whose envelope is not OpenAI's (the static part of its path)."""
    found = {(op.path.split("{", 1)[0].rstrip("/"), error_style(op)) for api in api_names() for op in operations(api)}
    return tuple(sorted((prefix, style) for prefix, style in found if style != "openai"))


def path_style(path: str) -> str:
    """The error envelope of an answer to ``path`` outside any operation (404, 405, 500): the style of the
    protocol whose operations live at or under it (``/v1/messages/x`` answers in the Messages envelope)."""
    for prefix, style in _style_paths():
        if path == prefix or path.startswith(prefix + "/"):
            return style
    return "openai"
