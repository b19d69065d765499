"""Fixtures of the LangChain adapter tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
import redis

from chatkeep_langchain import HistoryFactory, aclose_shared_stores, history_factory
from tests.support.factories import remembering
from tests.support.servers import RedisServer


@pytest.fixture(autouse=True)
async def _close_shared_stores() -> AsyncIterator[None]:
    """Histories made from a URL share process-wide stores: close them after each
    test, on the test's own event loop (async connections belong to it)."""
    yield
    await aclose_shared_stores()


@pytest.fixture
async def make_factory(url: str, prefix: str) -> AsyncIterator[Callable[..., HistoryFactory]]:
    """History factories on the test's backend, built from its URL; closed afterwards."""
    made: list[HistoryFactory] = []
    yield remembering(history_factory, made, url=url, key_prefix=prefix)
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
