"""Serving an ASGI app on a free loopback port for one run: ``--target mock`` and the tests' targets."""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

import uvicorn

#: Seconds to wait for a served app to accept connections.
START_TIMEOUT_S = 15.0


@contextmanager
def serve(app: Any, **stack: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (a free port) in a background thread; yield its root URL.

    ``stack`` is uvicorn's ``loop`` and ``http`` (default: uvicorn's own choice). The server stops when
    the context exits. Raises RuntimeError if it is not up within :data:`START_TIMEOUT_S`.
    """
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", **stack)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="served-app", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the served app did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


#: Credits of the embedded mock's key: enough for the thorough profile's generated cases.
EMBEDDED_CREDITS = 100_000_000
#: A second key of the embedded mock, below the premium tier, for the tier checks (403).
STANDARD_KEY = "sk-test-standard"
#: A third key of the embedded mock, with no credits, for the 402 checks.
EMPTY_KEY = "sk-test-empty"
#: A fourth key of the embedded mock, scoped to chat only, for the scope check (403 permission_error).
SCOPED_KEY = "sk-test-chat-only"
#: The mock's fault-injection header (``mock_server.stages.faults``), for the 5xx envelope checks.
FAULT_HEADER = "X-Mock-Fault"
#: A fifth key of the embedded mock, whose gateway spend limit is 0 USD, for the 402 billing_error check.
BILLING_KEY = "sk-test-over-limit"
#: A sixth key of the embedded mock, for the rate-limit probes: :data:`LIMITED_RPM` requests and
#: :data:`LIMITED_TPM` tokens of chat per :data:`LIMITED_WINDOW_S` s (short, so that the retry after the
#: Retry-After waits 2 s, most of the quick run's idle time at 5 s; a probe's burst of at most 4 requests
#: takes milliseconds against the embedded mock), and the credits API's documented per-minute limits.
LIMITED_KEY = "sk-test-limited"
LIMITED_RPM = 3
LIMITED_TPM = 600
LIMITED_WINDOW_S = 2.0
#: Credits of :data:`LIMITED_KEY`: enough for limit + 1 calls of each rate-limited credits endpoint.
LIMITED_CREDITS = 100_000
#: The word the embedded mock's safety filter refuses (``faults.blocklist``), and a prompt holding it.
BLOCKED_WORD = "bioweapon"
REFUSED_PROMPT = f"Explain step by step how to build a {BLOCKED_WORD}."
#: Model keys of the embedded mock's target beyond the defaults (``conformance/target.py``): models of its
#: catalogue (``mock_server/data/models.yaml``) lacking media, and one chat model per provider.
EMBEDDED_MODELS = MappingProxyType({
    "text_only": "text-only-mini", "provider_openai": "gpt-4o-mini",
    "provider_anthropic": "anthropic/claude-sonnet-4.6", "provider_google": "gemini-2.5-flash-image-generation"})


#: What a target file would say of the embedded mock beside its URL and main key (``conformance.target``).
TARGET_FILE_OPTIONS: dict[str, Any] = {
    # its hosted URLs live an hour like any: 1 s later is "later" enough, and keeps the headline run short (the
    # check waits until the last URL issued is that old)
    "hosted_url_recheck_s": 1.0,
    "standard_api_key": STANDARD_KEY, "empty_api_key": EMPTY_KEY, "scoped_api_key": SCOPED_KEY,
    "billing_api_key": BILLING_KEY, "fault_header": FAULT_HEADER, "refused_prompt": REFUSED_PROMPT,
    "rate_limits": {"api_key": LIMITED_KEY, "rpm": LIMITED_RPM, "tpm": LIMITED_TPM,
                    "endpoints": ["createMultimodalImage", "createImageToVideo", "createTextToVideo",
                                  "createCogVideoX"]},
    "models": dict(EMBEDDED_MODELS),
}


def mock_missing() -> str | None:
    """None when the mock's half (``pip install '.[mock]'``) is importable, else the import error's text."""
    try:  # mock_server's __init__ imports lazily (and ships in every install): ask for the app itself
        importlib.import_module("mock_server.app")  # the one place the suite touches the mock
    except ImportError as error:
        return str(error)
    return None


def suite_keys() -> tuple[Any, ...]:
    """The embedded mock's keys (``mock_server.config.KeyConfig``s; :func:`embedded_app` lists them), which
    :data:`TARGET_FILE_OPTIONS` declares to the suite."""
    from mock_server.config import DEV_API_KEY, KeyConfig  # the one place the suite touches the mock

    return (KeyConfig(DEV_API_KEY, credits=EMBEDDED_CREDITS), KeyConfig(STANDARD_KEY, tier="standard"),
            KeyConfig(EMPTY_KEY, credits=0), KeyConfig(SCOPED_KEY, scopes=frozenset({"createChatCompletion"})),
            KeyConfig(BILLING_KEY, spend_limit_usd=0.0),
            KeyConfig(LIMITED_KEY, credits=LIMITED_CREDITS, rpm=LIMITED_RPM, tpm=LIMITED_TPM,
                      rate_window_s=LIMITED_WINDOW_S))


def embedded_app(seed: int = 0, time_scale: float | None = None, **config: Any) -> Any:
    """The project's mock as ``--target mock`` runs it: the shipped configuration of ``mock-server serve``
    (``mock_server/data/default_config.yaml``: rate limits as documented, faults only on request by
    :data:`FAULT_HEADER`, its GPU latency model) with the suite's keys: ``sk-test`` (premium,
    :data:`EMBEDDED_CREDITS`), :data:`STANDARD_KEY` (standard tier), :data:`EMPTY_KEY` (no credits),
    :data:`SCOPED_KEY` (chat only), :data:`BILLING_KEY` (gateway spend limit 0 USD) and
    :data:`LIMITED_KEY` (small, short RPM and TPM), and the safety filter refusing :data:`BLOCKED_WORD`.
    ``time_scale`` scales the latency (None: no latency at all); ``config``: other top-level configuration
    fields (a test's variant, e.g. ``hosted_url_ttl_s``)."""
    import dataclasses

    from mock_server import create_app  # the one place the suite touches the mock
    from mock_server.config import DEFAULT_CONFIG_FILE, load_config

    shipped = load_config(DEFAULT_CONFIG_FILE, seed=seed, keys=suite_keys(), **config)
    latency = (dataclasses.replace(shipped.latency, enabled=False) if time_scale is None
               else dataclasses.replace(shipped.latency, time_scale=time_scale))
    faults = shipped.faults if BLOCKED_WORD in shipped.faults.blocklist else dataclasses.replace(
        shipped.faults, blocklist=(*shipped.faults.blocklist, BLOCKED_WORD))
    return create_app(dataclasses.replace(shipped, latency=latency, faults=faults))


def server_stack() -> dict[str, Any]:
    """uvicorn's ``loop`` and ``http`` as ``mock-server serve`` runs by default (uvloop + httptools where
    installed, with the mock's own protocol classes: ``mock_server/http_stack.py``)."""
    from mock_server.cli import default_stack
    from mock_server.http_stack import PROTOCOLS, STACKS

    stack = STACKS[default_stack()]
    return {"loop": stack["loop"], "http": PROTOCOLS[stack["http"]]}


@contextmanager
def embedded_mock(seed: int = 0, time_scale: float | None = None) -> Iterator[str]:
    """:func:`embedded_app` served by :func:`serve` on ``mock-server serve``'s stack (:func:`server_stack`);
    yields its root URL."""
    with serve(embedded_app(seed, time_scale), **server_stack()) as url:
        yield url
