"""A Starlette mock of the multimodal gateway APIs, driven by the OpenAPI specs in ``spec/``.

``create_app(MockConfig(...))`` builds the ASGI app; ``mock-server serve`` runs it under uvicorn.

The package's names are imported on first use (PEP 562), so that a module of it can be imported
alone: the benchmarks' bare app runs on ``mock_server.http_stack``'s protocol classes without
loading the whole mock (``benchmarks/bare_app.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mock_server.compiled import prefer_source

prefer_source()  # MOCK_SERVER_PURE_PYTHON: the Python source of the compiled modules (mock_server/compiled.py)

if TYPE_CHECKING:
    from mock_server.app import create_app
    from mock_server.config import DEV_API_KEY, MockConfig

__all__ = ["DEV_API_KEY", "MockConfig", "create_app"]


def __getattr__(name: str) -> Any:
    """``create_app``, ``MockConfig`` and ``DEV_API_KEY``, imported when first asked for."""
    if name == "create_app":
        from mock_server.app import create_app

        return create_app
    if name in ("MockConfig", "DEV_API_KEY"):
        from mock_server import config

        return getattr(config, name)
    raise AttributeError(f"module 'mock_server' has no attribute {name!r}")
