"""The server layer's own answers: uvicorn's HTTP/1.1 protocols, answering malformed HTTP in JSON.

uvicorn answers a request its parser refuses (a bad request line, an oversized or broken header
block, a bad chunked body) with ``400 text/plain "Invalid HTTP request received."`` and closes the
connection, before the app sees anything. :class:`HttpToolsProtocol` and :class:`H11Protocol` (the
``--stack uvloop`` and ``--stack asyncio`` parsers) send that 400 in the OpenAI error envelope
(``code: malformed_http``) instead, still closing. The path is unknown at that point, so even a
request meant for ``/v1/messages`` gets the OpenAI envelope here. What the server cannot answer at
all it does not: a client that stops mid-header is timed out and closed without an answer.

RFC 9112 6.3: a request carrying both ``Content-Length`` and ``Transfer-Encoding`` has an ambiguous
length (the request-smuggling vector) and must be refused with the connection closed. httptools
(llhttp) refuses it as malformed; h11 accepts it and reads on, so :class:`H11Protocol` answers it
400 ``ambiguous_framing`` with ``Connection: close`` before the app runs, and a request pipelined
behind it is never answered.
"""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http import h11_impl, httptools_impl

from mock_server import jsoncodec
from mock_server.errors import ApiError

#: The body of the server layer's 400 for malformed HTTP.
MALFORMED_BODY = jsoncodec.dumps(ApiError(400, "Invalid HTTP request received: the request line, headers or body "
                                               "framing is malformed.", code="malformed_http").body())
#: The body of the 400 for a request with both Content-Length and Transfer-Encoding.
AMBIGUOUS_BODY = jsoncodec.dumps(ApiError(400, "A request may not carry both Content-Length and Transfer-Encoding "
                                               "(RFC 9112 6.3); the connection is closed.",
                                          code="ambiguous_framing").body())


def _malformed_response(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The whole HTTP/1.1 400 answer to malformed HTTP, ``Connection: close``."""
    lines = [b"HTTP/1.1 400 Bad Request"]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [b"content-type: application/json", b"content-length: %d" % len(MALFORMED_BODY), b"connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + MALFORMED_BODY


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools protocol, its 400 for malformed HTTP in JSON (module docstring)."""

    def send_400_response(self, msg: str) -> None:
        """Write the JSON 400 and close (``msg``, uvicorn's plain text, is not sent)."""
        self.transport.write(_malformed_response(self.server_state.default_headers))
        self.transport.close()


class H11Protocol(h11_impl.H11Protocol):
    """uvicorn's h11 protocol, its 400 for malformed HTTP in JSON, and a request of ambiguous length
    refused and its connection closed (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.app = RefuseAmbiguousLength(self.app)

    def send_400_response(self, msg: str) -> None:
        """Write the JSON 400 and close (``msg``, uvicorn's plain text, is not sent)."""
        self.transport.write(_malformed_response(self.server_state.default_headers))
        self.transport.close()


class RefuseAmbiguousLength:
    """ASGI wrapper: a request with both ``Content-Length`` and ``Transfer-Encoding`` gets 400
    ``ambiguous_framing`` with ``Connection: close`` (its body unread); any other goes to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            names = {name.lower() for name, _ in scope["headers"]}
            if b"content-length" in names and b"transfer-encoding" in names:
                await send({"type": "http.response.start", "status": 400,
                            "headers": [(b"content-type", b"application/json"),
                                        (b"content-length", b"%d" % len(AMBIGUOUS_BODY)), (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": AMBIGUOUS_BODY})
                return
        await self.app(scope, receive, send)


#: The protocol class of each server stack's HTTP parser (``cli.STACKS``'s ``http`` names).
PROTOCOLS: dict[str, type[Any]] = {"httptools": HttpToolsProtocol, "h11": H11Protocol}
