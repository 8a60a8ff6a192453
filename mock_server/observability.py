"""What operators expect of a server: ``X-Request-Id`` on every answer, ``GET /metrics`` (Prometheus'
text format, ``metrics.py``), ``GET /health`` (the process answers) and ``GET /ready`` (the app can
serve: its credits ledger answers a query). None of them needs a key, as scrapers and probes send none.
"""

from __future__ import annotations

import os
import random
import sqlite3
from binascii import hexlify

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mock_server.context import Services
from mock_server.fleet.store import StateUnavailable
from mock_server.metrics import CONTENT_TYPE

#: The request header a client may name its request by; the answer repeats it (or a new id).
HEADER = b"x-request-id"
#: Fresh request ids: 96 random bits each, from a generator seeded once from the OS (os.urandom per
#: request would be a system call on every answer).
_ids = random.Random(os.urandom(16))
#: Longest client id repeated (longer ones, or ones with other than visible ASCII, get a fresh id).
MAX_ID_CHARS = 128


#: The scope key under which the id travels to the answer's maker on a direct path (see below).
SCOPE_KEY = "mock.request_id"


class RequestIdMiddleware:
    """ASGI middleware: every HTTP answer carries ``X-Request-Id``, the client's (if it sent a usable
    one: 1-128 visible ASCII characters) or ``req_<24 hex>``. Outermost, so that errors rendered by
    Starlette's own layers carry it too.

    On ``direct`` paths (the spec operations' static paths: the hot path) it does not wrap ``send``,
    which would cost a call per message sent: it leaves the id in ``scope[SCOPE_KEY]`` and whatever
    answers there (the operation's endpoint, the app's 404/405/500 handlers) adds it with :func:`tag`.
    """

    def __init__(self, app: ASGIApp, direct: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.direct = direct

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id(scope)
        if scope["path"] in self.direct:
            scope[SCOPE_KEY] = request_id
            await self.app(scope, receive, send)
            return
        header = (HEADER, request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_id)


def new_request_id(scope: Scope) -> bytes:
    """The id of an HTTP request: its ``X-Request-Id`` header when usable (1-128 visible ASCII
    characters), else a fresh ``req_<24 hex>``."""
    for name, value in scope["headers"]:
        if name == HEADER:
            if _visible(value):
                return bytes(value)
            break
    # b"req_%024x" % bits, written without bytes' %-formatting of an int (about twice as slow)
    return b"req_" + hexlify(_ids.getrandbits(96).to_bytes(12, "big"))


def tag(scope: Scope, response: Response) -> Response:
    """``response`` with the ``X-Request-Id`` the middleware left in ``scope`` for a direct path (none
    elsewhere: there the middleware adds it)."""
    request_id = scope.get(SCOPE_KEY)
    if request_id is not None:
        response.raw_headers.append((HEADER, request_id))
    return response


def _visible(value: bytes) -> bool:
    """1-128 visible ASCII characters (no space, no control character)."""
    return 0 < len(value) <= MAX_ID_CHARS and all(0x21 <= byte <= 0x7E for byte in value)


def routes(services: Services) -> list[Route]:
    """``/metrics``, ``/health`` and ``/ready``; ``/metrics`` only when the app keeps metrics."""

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        try:
            await services.credits.balance("readiness-probe")
        except (sqlite3.Error, StateUnavailable) as error:
            return JSONResponse({"status": "not ready", "reason": f"credits ledger: {error}"}, status_code=503)
        return JSONResponse({"status": "ready"})

    found = [Route("/health", health, methods=["GET"]), Route("/ready", ready, methods=["GET"])]
    metrics = services.metrics
    if metrics is not None:
        async def scrape(request: Request) -> Response:
            return Response(metrics.render(), headers={"Content-Type": CONTENT_TYPE})

        found.append(Route("/metrics", scrape, methods=["GET"]))
    return found
