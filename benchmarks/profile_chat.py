"""Profile the mock's hot path: non-streaming POST /v1/chat/completions, in process, with pyinstrument.

The app is the benchmarks' configuration (``benchmarks.common.base_config``: auth, validation, rate
limits and the ledger on, latency off) called as ASGI directly, without a server or a socket, so
the profile shows the mock's own cost per request and nothing of uvicorn's. Prints the mean
cost per request (us) without and with the profiler, and pyinstrument's call tree.

    .venv/bin/pip install -e '.[bench]' && .venv/bin/python -m benchmarks.profile_chat [--requests 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.common import CHAT_BODY, KEY, base_config, write_config
from mock_server import create_app
from mock_server.config import load_config


async def _call(app: Any, body: bytes) -> int:
    """One ASGI ``http`` request of ``body`` to the app; returns the answer's status."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": "/v1/chat/completions", "raw_path": b"/v1/chat/completions", "query_string": b"", "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json"),
                    (b"authorization", f"Bearer {KEY}".encode()), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # a disconnect never comes while the app answers
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def _run(app: Any, requests: int, request: Mapping[str, Any] = CHAT_BODY) -> float:
    """Send ``requests`` chat requests of body ``request`` one after another; returns the mean cost per
    request in us. Raises RuntimeError if one is not answered 200."""
    body = json.dumps(request).encode()
    started = time.perf_counter()
    for _ in range(requests):
        status = await _call(app, body)
        if status != 200:
            raise RuntimeError(f"the mock answered {status}")
    return (time.perf_counter() - started) / requests * 1e6


def main(argv: list[str] | None = None) -> int:
    """Entry point: warm up, profile ``--requests`` requests, print the tree."""
    from pyinstrument import Profiler  # the bench extra

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=5000, help="requests profiled (default 5000)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(load_config(write_config(Path(tmp), "profile", base_config())))
    asyncio.run(_run(app, 200))  # warm-up: lazy imports, caches
    bare_us = asyncio.run(_run(app, args.requests))
    print(f"{args.requests} requests, {bare_us:.1f} us per request in the app")
    profiler = Profiler(interval=0.0001, async_mode="disabled")
    profiler.start()
    mean_us = asyncio.run(_run(app, args.requests))
    profiler.stop()
    print(f"{args.requests} requests, {mean_us:.1f} us per request in the app (profiler on)")
    print(profiler.output_text(unicode=False, color=False, show_all=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
