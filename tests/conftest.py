"""Shared fixtures of the project's own tests: the mock in-process and served on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from conformance.embedded import embedded_mock
from mock_server import DEV_API_KEY, create_app

AUTH = {"Authorization": f"Bearer {DEV_API_KEY}"}


@pytest.fixture(scope="session")
def mock_url() -> Iterator[str]:
    """Root URL of the mock served by uvicorn on 127.0.0.1 for the whole session."""
    with embedded_mock() as url:
        yield url


@pytest.fixture
def client() -> Iterator[TestClient]:
    """An in-process client of a fresh mock app (default configuration)."""
    with TestClient(create_app()) as test_client:
        yield test_client
