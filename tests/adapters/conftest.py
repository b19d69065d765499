"""Fixtures of every adapter's tests: the backend a test runs on and its URL."""

from __future__ import annotations

import pytest

from tests.support.backends import MEMORY, REDIS, backend_url


@pytest.fixture(params=[MEMORY, REDIS])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(backend: str, request: pytest.FixtureRequest) -> str:
    """Where the stores of a test live: the session's redis-server, or memory://."""
    return backend_url(backend, request)
