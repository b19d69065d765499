"""Fixtures of the LangChain adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import redis

from chatkeep_langchain import HistoryFactory, aclose_shared_stores, history_factory
from tests.support.servers import RedisServer


@pytest.fixture(autouse=True)
async def _close_shared_stores() -> AsyncIterator[None]:
    """Histories made from a URL share process-wide stores: close them after each
    test, on the test's own event loop (async connections belong to it)."""
    yield
    await aclose_shared_stores()


def _backend_params() -> list[Any]:
    return [
        pytest.param("redis", id="redis", marks=pytest.mark.redis_server),
        pytest.param("memory", id="memory"),
    ]


@pytest.fixture(params=_backend_params())
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(backend: str, request: pytest.FixtureRequest) -> str:
    """Where the stores of a test live: the session's redis-server, or memory://."""
    if backend == "memory":
        return "memory://"
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture
async def make_factory(url: str, prefix: str) -> AsyncIterator[Callable[..., HistoryFactory]]:
    """History factories on the test's backend, built from its URL; closed afterwards."""
    made: list[HistoryFactory] = []

    def make(**options: Any) -> HistoryFactory:
        options.setdefault("url", url)
        options.setdefault("prefix", prefix)
        factory = history_factory(**options)
        made.append(factory)
        return factory

    yield make
    for factory in made:
        await factory.aclose()


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    """A plain client on the session's redis-server, for assertions about Redis itself."""
    client = redis.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        client.close()
