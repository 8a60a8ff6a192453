"""A Starlette mock of the multimodal gateway APIs, driven by the OpenAPI specs in ``spec/``.

``create_app(MockConfig(...))`` builds the ASGI app; ``mock-server serve`` runs it under uvicorn.
"""

from __future__ import annotations

from mock_server.app import create_app
from mock_server.config import DEV_API_KEY, MockConfig

__all__ = ["DEV_API_KEY", "MockConfig", "create_app"]
