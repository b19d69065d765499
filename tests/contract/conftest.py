"""The contract suite runs every test against every backend, sync and async.

``make_store(**options)`` returns a store with the synchronous API. For the async
twin it is a thin facade that runs each awaited call on the test's own event loop,
so one test body checks both twins. Backends: memory, fakeredis, and a real
redis-server started by the test session.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis.asyncio

import redis
from chatkeep import AsyncConversationStore, ConversationStore
from tests.support.servers import RedisServer

BACKENDS = ["memory", "fakeredis", "redis"]
TWINS = ["sync", "async"]


class AsyncFacade:
    """The sync API over an AsyncConversationStore (each call awaited on ``loop``)."""

    def __init__(self, store: AsyncConversationStore, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if name in ("status", "config") or not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run_until_complete(attr(*args, **kwargs))

        return call

    def close(self) -> None:
        self._loop.run_until_complete(self.store.aclose())


class Harness:
    def __init__(self, backend: str, twin: str, prefix: str, server: RedisServer | None) -> None:
        self.backend = backend
        self.twin = twin
        self.prefix = prefix
        self.server = server
        self.loop = asyncio.new_event_loop() if twin == "async" else None
        self.fake_server = fakeredis.FakeServer() if backend == "fakeredis" else None
        self.stores: list[Any] = []
        self.clients: list[Any] = []

    def client(self) -> Any:
        """A raw client on the same data (sync), for assertions about Redis itself."""
        if self.backend == "fakeredis":
            made = fakeredis.FakeRedis(server=self.fake_server)
        elif self.backend == "redis":
            assert self.server is not None
            made = redis.Redis.from_url(self.server.url)
        else:
            raise RuntimeError("the memory backend has no Redis client")
        self.clients.append(made)
        return made

    def make(self, **options: Any) -> Any:
        options.setdefault("prefix", self.prefix)
        if self.backend == "memory":
            options.setdefault("url", "memory://")
            client = None
        elif self.backend == "fakeredis":
            client = (
                fakeredis.aioredis.FakeRedis(server=self.fake_server)
                if self.twin == "async"
                else fakeredis.FakeRedis(server=self.fake_server)
            )
        else:
            assert self.server is not None
            options.setdefault("url", self.server.url)
            client = None
        if self.twin == "sync":
            store: Any = ConversationStore(client=client, **options)
        else:
            assert self.loop is not None
            store = AsyncFacade(AsyncConversationStore(client=client, **options), self.loop)
        self.stores.append(store)
        return store

    def close(self) -> None:
        for store in self.stores:
            store.close()
        for client in self.clients:
            client.close()
        if self.loop is not None:
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()


def _params() -> list[Any]:
    params = []
    for backend in BACKENDS:
        marks = [pytest.mark.redis_server] if backend == "redis" else []
        for twin in TWINS:
            params.append(pytest.param((backend, twin), id=f"{backend}-{twin}", marks=marks))
    return params


@pytest.fixture(params=_params())
def harness(request: pytest.FixtureRequest, prefix: str) -> Iterator[Harness]:
    backend, twin = request.param
    server = request.getfixturevalue("redis_server") if backend == "redis" else None
    made = Harness(backend, twin, prefix, server)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture
def make_store(harness: Harness) -> Callable[..., Any]:
    return harness.make


@pytest.fixture
def store(make_store: Callable[..., Any]) -> Any:
    return make_store()
