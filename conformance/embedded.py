"""``--target mock``: the project's own mock, served on a free loopback port for one run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn

#: Seconds to wait for the embedded mock to accept connections.
START_TIMEOUT_S = 15.0


@contextmanager
def embedded_mock(seed: int = 0) -> Iterator[str]:
    """Serve the mock on 127.0.0.1 (a free port) in a background thread; yield its root URL.

    Raises RuntimeError if it is not up within :data:`START_TIMEOUT_S`.
    """
    from mock_server import MockConfig, create_app  # the one place the suite touches the mock

    config = uvicorn.Config(create_app(MockConfig(seed=seed)), host="127.0.0.1", port=0, log_level="warning",
                            lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="embedded-mock", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the embedded mock did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
