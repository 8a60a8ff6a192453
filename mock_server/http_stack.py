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

:class:`HttpToolsProtocol` also answers through :class:`LeanCycle`, uvicorn's request/response cycle
with its ``send`` made cheaper where it costs most per answer (issue 19, ``benchmarks/RESULTS.md``
"Third pass"): the header block of an answer whose length is known (``Content-Length``) goes out
with the body's first bytes in one socket write instead of two, and the response headers are
checked with two ``bytes.translate`` over all names and all values joined instead of two regex
searches per header (the same verdict: both patterns are classes of single characters; on a bad
header the per-header checks run, so the error raised is uvicorn's own, for the same header).
``tests/test_fast_paths.py`` proves the bytes written and the errors raised equal to uvicorn's. It is a
copy of uvicorn 0.55's code, used only with that code (:data:`CYCLE`); any other uvicorn answers through
its own cycle.
The benchmarks serve the bare app on these same classes (``benchmarks/bare_app.py``).
"""

from __future__ import annotations

import hashlib
import inspect
import types
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http import h11_impl, httptools_impl
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

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


def _class_of(pattern: Any) -> bytes:
    """The bytes a one-character-class regex of uvicorn matches (its header checks are such classes)."""
    return bytes(byte for byte in range(256) if pattern.search(bytes([byte])))


#: What uvicorn refuses in a response header's name (``HEADER_RE``) and in its value (``HEADER_VALUE_RE``).
BAD_NAME_BYTES = _class_of(httptools_impl.HEADER_RE)
BAD_VALUE_BYTES = _class_of(httptools_impl.HEADER_VALUE_RE)


def _clean(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether no header name holds a byte of :data:`BAD_NAME_BYTES` and no value one of
    :data:`BAD_VALUE_BYTES` (False also for anything but a list of (bytes, bytes) pairs: the caller
    then checks header by header as uvicorn does, raising uvicorn's error)."""
    try:
        names = b"".join([pair[0] for pair in headers])
        values = b"".join([pair[1] for pair in headers])
        return (len(names.translate(None, BAD_NAME_BYTES)) == len(names)
                and len(values.translate(None, BAD_VALUE_BYTES)) == len(values))
    except (TypeError, IndexError, KeyError):
        return False


class LeanCycle(httptools_impl.RequestResponseCycle):
    """uvicorn's ``RequestResponseCycle`` (httptools) with a cheaper ``send`` (module docstring): its
    code, but for two changes.

    1. The headers are checked by :func:`_clean` (one pass over them all); only when it finds
       something wrong do uvicorn's per-header regex checks run, raising uvicorn's error.
    2. The header block of a fixed-length answer (``Content-Length`` given, not a HEAD request) is held
       until the first body message and written with it: one ``transport.write`` (one ``send``
       system call) for the usual answer instead of two. Wherever uvicorn would have the block
       written by then (an error ``send`` raises, an app that fails or returns before its body: the
       copy of ``run_asgi`` here), it is written first, so the bytes on the wire are uvicorn's.
    """

    _held = b""

    async def run_asgi(self, app: Any) -> None:
        """uvicorn 0.55's ``run_asgi``, the held header block written before it closes the connection on
        an answer the app began and did not finish (where uvicorn had written it on the start message)."""
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            self.logger.error("Exception in ASGI application\n", exc_info=exc)
            if not self.response_started:
                await self.send_500_response()
            else:
                self._release()
                self.transport.close()
        else:
            if result is not None:
                self.logger.error("ASGI callable should return None, but returned '%s'.", result)
                self._release()
                self.transport.close()
            elif not self.response_started and not self.disconnected:
                self.logger.error("ASGI callable returned without starting response.")
                await self.send_500_response()
            elif not self.response_complete and not self.disconnected:
                self.logger.error("ASGI callable returned without completing response.")
                self._release()
                self.transport.close()
        finally:
            self.on_response = lambda: None

    async def send(self, message: Any) -> None:
        """ASGI ``send`` (uvicorn 0.55's, with the two changes of the class docstring)."""
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()  # pragma: no cover (uvicorn's own: a slow reader)

        if self.disconnected:
            return

        if not self.response_started:
            if message["type"] != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{message['type']}'.")

            self.response_started = True
            self.waiting_for_100_continue = False

            status_code = message["status"]
            headers = self.default_headers + list(message.get("headers", []))

            if self.access_log:
                self.access_logger.info('%s - "%s %s HTTP/%s" %d', get_client_addr(self.scope),
                                        self.scope["method"], get_path_with_query_string(self.scope),
                                        self.scope["http_version"], status_code)

            content = [httptools_impl.STATUS_LINE[status_code]]
            has_connection_close = False
            checked = _clean(headers)

            for name, value in headers:
                if not checked:
                    if httptools_impl.HEADER_RE.search(name):
                        raise RuntimeError("Invalid HTTP header name.")
                    if httptools_impl.HEADER_VALUE_RE.search(value):
                        raise RuntimeError("Invalid HTTP header value.")

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
                self.chunked_encoding = True
                content.append(b"transfer-encoding: chunked\r\n")

            content.append(b"\r\n")
            if self.chunked_encoding is False and self.scope["method"] != "HEAD":
                self._held = b"".join(content)  # written with the body's first bytes
            else:
                self.transport.write(b"".join(content))

        elif not self.response_complete:
            if message["type"] != "http.response.body":
                self._release()
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{message['type']}'.")

            body = message.get("body", b"")
            more_body = message.get("more_body", False)

            if self.scope["method"] == "HEAD":
                self.expected_content_length = 0
            elif self.chunked_encoding:
                content = [b"%x\r\n" % len(body), body, b"\r\n"] if body else []
                if not more_body:
                    content.append(b"0\r\n\r\n")
                self.transport.write(b"".join(content))
            else:
                num_bytes = len(body)
                if num_bytes > self.expected_content_length:
                    self._release()
                    raise RuntimeError("Response content longer than Content-Length")
                else:
                    self.expected_content_length -= num_bytes
                held = self._held
                if held:
                    self._held = b""
                    self.transport.write(held + body)
                else:
                    self.transport.write(body)

            if not more_body:
                if self.expected_content_length != 0:
                    self._release()
                    raise RuntimeError("Response content shorter than Content-Length")
                self.response_complete = True
                self.message_event.set()
                if not self.keep_alive:
                    self.transport.close()
                self.on_response()

        else:
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}' sent, after response already completed.")

    def _release(self) -> None:
        """Write the held header block, if any (uvicorn had written it on the start message), unless the client
        has gone (uvloop raises on a write to a closed transport)."""
        if self._held:
            held, self._held = self._held, b""
            if not self.disconnected:
                self.transport.write(held)


#: SHA-256 of the source of uvicorn 0.55's ``RequestResponseCycle.send`` and ``run_asgi`` (httptools), the
#: code :class:`LeanCycle` copies with its two changes.
COPIED_CYCLE_SHA256 = "ea1dc0f0dc7952fd65d0e67ca22b62259bbb5acc759596e6979bb0ff831ddadf"


def copies(cycle: type[Any]) -> bool:
    """Whether :class:`LeanCycle` is a copy of ``cycle``'s ``send`` and ``run_asgi`` (their source hashes to
    :data:`COPIED_CYCLE_SHA256`); False for another uvicorn's, or when the source cannot be read."""
    try:
        source = inspect.getsource(cycle.send) + inspect.getsource(cycle.run_asgi)
    except (OSError, TypeError):
        return False
    return hashlib.sha256(source.encode()).hexdigest() == COPIED_CYCLE_SHA256


#: Each request's cycle on the httptools stack: :class:`LeanCycle` with the uvicorn it was copied from;
#: with any other, uvicorn's own (a copy of older code would silently keep its behaviour).
CYCLE: type[Any] = LeanCycle if copies(httptools_impl.RequestResponseCycle) else httptools_impl.RequestResponseCycle


class HttpToolsProtocol(httptools_impl.HttpToolsProtocol):
    """uvicorn's httptools protocol, its 400 for malformed HTTP in JSON, answering through
    :class:`LeanCycle` (module docstring)."""

    #: uvicorn's own ``on_headers_complete`` (its code object, unchanged) with its module's globals but
    #: for ``RequestResponseCycle``, which names :data:`CYCLE`: each request's cycle is built as one,
    #: with no copy of uvicorn's code to drift from it.
    on_headers_complete = types.FunctionType(
        httptools_impl.HttpToolsProtocol.on_headers_complete.__code__,
        {**vars(httptools_impl), "RequestResponseCycle": CYCLE}, "on_headers_complete")

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


#: Server stacks by name: uvicorn's event loop and HTTP parser (``mock-server serve --stack``). ``uvloop``
#: (uvloop + httptools) is the default where installed: on the 2-core reference machine it serves about
#: twice the requests/s of ``asyncio`` (asyncio + h11) with a lower p99 at 256 connections
#: (``benchmarks/RESULTS.md``). Each parser runs as its class in :data:`PROTOCOLS` (malformed HTTP answered
#: in JSON; on h11, a request with both Content-Length and Transfer-Encoding refused and its connection
#: closed; on httptools, :class:`LeanCycle`'s ``send``).
STACKS: dict[str, dict[str, str]] = {
    "uvloop": {"loop": "uvloop", "http": "httptools"},
    "asyncio": {"loop": "asyncio", "http": "h11"},
}

#: The protocol class of each server stack's HTTP parser (:data:`STACKS`'s ``http`` names).
PROTOCOLS: dict[str, type[Any]] = {"httptools": HttpToolsProtocol, "h11": H11Protocol}
