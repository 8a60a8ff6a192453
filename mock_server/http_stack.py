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

On the way out, :class:`LeanResponseCycle` checks an answer's header names and values as uvicorn does,
with two regex searches for all headers instead of two per header (the same verdict, the same bytes).
The benchmarks serve their bare reference app on these same classes (``benchmarks/bare_app.py``).
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


class LeanResponseCycle(httptools_impl.RequestResponseCycle):
    """uvicorn's request/response cycle of the httptools protocol, whose start message checks the answer's
    header names and values with two regex searches in all rather than two per header.

    uvicorn refuses a header name holding a character of ``HEADER_RE`` or a value holding one of
    ``HEADER_VALUE_RE`` (RuntimeError); both are classes of single characters, so a search over all the
    names joined (and all the values joined) finds one exactly when a search of some name (value) does.
    That costs about 1,300 instructions a header less (a chat answer of the mock carries 11 headers).
    When either joined search finds something, or a name or value is not bytes, uvicorn's own ``send``
    runs, raising the error of the first bad header as before; every other message, and a start message
    with the access log on, flow control paused or the client gone, goes to uvicorn's ``send`` as well.
    Otherwise the status line and headers written, and the cycle's state, are uvicorn's, line for line
    (``tests/test_fast_paths.py`` compares them).
    """

    async def send(self, message: Any) -> None:
        """Send an ASGI message (uvicorn's ``send``; the start message as the class docstring says)."""
        if (self.response_started or message["type"] != "http.response.start" or self.access_log
                or self.disconnected or self.flow.write_paused):
            await super().send(message)
            return
        headers = self.default_headers + list(message.get("headers", []))
        try:
            bad = (httptools_impl.HEADER_RE.search(b"".join([name for name, _ in headers])) is not None
                   or httptools_impl.HEADER_VALUE_RE.search(b"".join([value for _, value in headers])) is not None)
        except TypeError:  # a name or value that is not bytes: uvicorn's loop raises what it raises
            bad = True
        if bad:
            await super().send(message)
            return
        self.response_started = True
        self.waiting_for_100_continue = False
        status_code = message["status"]
        content = [httptools_impl.STATUS_LINE[status_code]]
        has_connection_close = False
        for name, value in headers:  # uvicorn's loop, its two searches done above
            name = name.lower()
            if name == b"content-length" and self.chunked_encoding is None:
                self.expected_content_length = int(value.decode())
                self.chunked_encoding = False
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_content_length = 0
                self.chunked_encoding = True
            elif name == b"connection":
                connection = [token.lower().strip() for token in value.split(b",")]
                if b"close" in connection:
                    self.keep_alive = False
                    has_connection_close = True
            content.extend([name, b": ", value, b"\r\n"])
        if not self.keep_alive and not has_connection_close:
            content.append(b"connection: close\r\n")
        if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status_code not in (204, 304):
            self.chunked_encoding = True  # neither content-length nor transfer-encoding given
            content.append(b"transfer-encoding: chunked\r\n")
        content.append(b"\r\n")
        self.transport.write(b"".join(content))


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools protocol, its 400 for malformed HTTP in JSON (module docstring), each request's
    cycle a :class:`LeanResponseCycle`."""

    def on_headers_complete(self) -> None:
        """uvicorn's, the cycle it made for the request (not yet run: its task is only scheduled) made a
        :class:`LeanResponseCycle` (a subclass adding no state)."""
        super().on_headers_complete()
        if type(self.cycle) is httptools_impl.RequestResponseCycle:
            self.cycle.__class__ = LeanResponseCycle

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
