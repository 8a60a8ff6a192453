"""Tiny TCP servers on 127.0.0.1 that are not the API: silent, dripping, garbage, HTML, a redirect loop.

Each answers every connection the same way, in a thread of its own, and stops when its context
exits; every loop is bounded, so nothing outlives a test by more than a few seconds.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator

#: Most bytes a dripping server sends, one per ``gap_s`` (bounds its loop).
DRIP_BYTES = 60


def _read_request(sock: socket.socket) -> None:
    sock.settimeout(5)
    with contextlib.suppress(OSError):
        sock.recv(65536)


def silent(sock: socket.socket) -> None:
    """Accepts, reads the request, and never answers (holds the connection up to 60 s)."""
    _read_request(sock)
    with contextlib.suppress(OSError):
        sock.settimeout(60)
        sock.recv(1)


def dripping(gap_s: float = 0.5) -> Callable[[socket.socket], None]:
    """Answers 200 JSON headers at once, then its body one byte every ``gap_s`` s (never done in time)."""
    def handle(sock: socket.socket) -> None:
        _read_request(sock)
        body = b'{"object": "list", "data": []' + b" " * DRIP_BYTES + b"}"
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
        with contextlib.suppress(OSError):
            sock.sendall(head)
            for index in range(min(len(body), DRIP_BYTES)):
                sock.sendall(body[index:index + 1])
                time.sleep(gap_s)
    return handle


def closes_idle_connections(sock: socket.socket) -> None:
    """Answers the first request of each connection 200 JSON (keep-alive), then reads the next one and closes
    the connection without answering: a keep-alive connection whose server's idle timeout met the request."""
    _read_request(sock)
    body = b'{"object": "list", "data": []}'
    with contextlib.suppress(OSError):
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                     % (len(body), body))
    _read_request(sock)


def resets_idle_connections(sock: socket.socket) -> None:
    """As :func:`closes_idle_connections`, but the second request is met by a reset (RST: the server closed the
    socket with the request's bytes unread), which the client reads as "Connection reset by peer"."""
    import struct

    _read_request(sock)
    body = b'{"object": "list", "data": []}'
    with contextlib.suppress(OSError):
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
                     % (len(body), body))
        sock.settimeout(5)
        sock.recv(1)  # the next request has begun to arrive: close at once, its bytes unread
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def garbage(sock: socket.socket) -> None:
    """Answers bytes that are not HTTP."""
    _read_request(sock)
    with contextlib.suppress(OSError):
        sock.sendall(b"\x00\xff\xfe SSH-2.0-nope \x01\x02\r\n\r\n")


def html_page(sock: socket.socket) -> None:
    """Answers 200 with an HTML page (a web server, not the API)."""
    _read_request(sock)
    body = b"<!doctype html><html><body><h1>Welcome to nginx!</h1></body></html>"
    with contextlib.suppress(OSError):
        sock.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: %d\r\n"
                     b"connection: close\r\n\r\n%s" % (len(body), body))


def redirect_loop(sock: socket.socket) -> None:
    """Answers every request 301 to the same path."""
    _read_request(sock)
    with contextlib.suppress(OSError):
        sock.sendall(b"HTTP/1.1 301 Moved Permanently\r\nlocation: /v1/models\r\ncontent-length: 0\r\n"
                     b"connection: close\r\n\r\n")


@contextlib.contextmanager
def serving(handle: Callable[[socket.socket], None]) -> Iterator[str]:
    """Serve ``handle`` per connection on 127.0.0.1 (a free port); yield the root URL."""
    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            handle(self.request)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def refused_url() -> str:
    """The URL of a loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
