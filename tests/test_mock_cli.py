"""``mock-server serve`` as a user runs it: a real process, then the official SDK against it."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import openai
import pytest

#: Seconds the server process gets to start listening.
START_TIMEOUT_S = 20.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "mock_server", "serve", "--host", "127.0.0.1",
                                "--port", str(port), "--log-level", "warning"])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            try:
                httpx.get(f"{url}/v1/models", timeout=1.0)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("mock-server serve did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_sdk_against_mock_server_serve(served: str) -> None:
    with openai.OpenAI(base_url=f"{served}/v1", api_key="sk-test", max_retries=0) as client:
        completion = client.chat.completions.create(model="gpt-4o-mini",
                                                    messages=[{"role": "user", "content": "Hello"}])
        assert completion.choices[0].message.content
        chunks = list(client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                                     messages=[{"role": "user", "content": "Hello"}]))
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == completion.choices[0].message.content


def test_serving_makes_full_collections_rare_and_keeps_the_young_ones() -> None:
    """``settle_heap`` (run by ``serve`` before serving): the third collector threshold raised (a full collection
    pauses the event loop, the p99 of an SSE stream's gaps), the first two as CPython sets them."""
    code = ("import gc; before = gc.get_threshold(); from mock_server.cli import settle_heap, FULL_COLLECTION_EVERY; "
            "settle_heap(); print(before, gc.get_threshold(), FULL_COLLECTION_EVERY, gc.get_freeze_count() > 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.split() == ["(700,", "10,", "10)", "(700,", "10,", "1000)", "1000", "True"], done.stdout
