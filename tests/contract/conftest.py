"""The contract suite runs every test against every backend, sync and async.

``make_store(**options)`` returns a conversation store with the synchronous API (and
``make_memory_store`` a long-term memory store, ``make_cache`` a result cache). For
the async twin it is a thin facade that runs each awaited call on the test's own
event loop, so one test body checks both twins. Backends: memory, fakeredis, and real
servers started by the test session:

- ``redis``: one redis-server;
- ``cluster``: a Redis Cluster of 3 masters + 3 replicas (``redis+cluster://``);
- ``sentinel``: a master, a replica and 3 sentinels (``redis+sentinel://``);
- ``redis-acl``: the redis-server, through a user that has only the minimal ACL
  (``chatkeep.redis.acl_rules``) limited to the test's prefix;
- ``redis-tls``: a TLS-only redis-server, certificate verified against a test CA.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio

from chatkeep import (
    AsyncConversationStore,
    AsyncMemoryStore,
    AsyncResultCache,
    ConversationStore,
    MemoryStore,
    ResultCache,
)
from tests.support.acl import AclUser
from tests.support.cluster import close_sentinel_client, sentinel_master

BACKENDS = ["memory", "fakeredis", "redis", "cluster", "sentinel", "redis-acl", "redis-tls"]
TWINS = ["sync", "async"]
REAL = {"redis", "cluster", "sentinel", "redis-acl", "redis-tls"}


class AsyncFacade:
    """The sync API over an asyncio object (each awaited call run on ``loop``): any of
    chatkeep's stores, and what its calls return (an AsyncSessionLock, an
    AsyncSubscription), with ``with`` for ``async with`` and ``for`` for ``async for``.
    What a call returns is awaited when it is awaitable, else returned as it is."""

    def __init__(self, store: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.store, name)
        if not callable(attr):
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            result = attr(*args, **kwargs)
            if inspect.isawaitable(result):
                return self._loop.run_until_complete(result)
            if hasattr(result, "__aenter__"):
                return AsyncFacade(result, self._loop)
            return result

        return call

    def __enter__(self) -> AsyncFacade:
        self._loop.run_until_complete(self.store.__aenter__())
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.run_until_complete(self.store.__aexit__(*exc))

    def __iter__(self) -> Iterator[Any]:
        iterator = aiter(self.store)
        while True:
            try:
                yield self._loop.run_until_complete(anext(iterator))
            except StopAsyncIteration:
                return

    def __repr__(self) -> str:
        return repr(self.store)

    def close(self) -> None:
        self._loop.run_until_complete(self.store.aclose())


class Harness:
    def __init__(self, backend: str, twin: str, prefix: str, deployment: Any = None) -> None:
        self.backend = backend
        self.twin = twin
        self.prefix = prefix
        self.deployment = deployment
        self.acl_user = AclUser([deployment.port], prefix) if backend == "redis-acl" else None
        self.loop = asyncio.new_event_loop() if twin == "async" else None
        self.fake_server = fakeredis.FakeServer() if backend == "fakeredis" else None
        self.stores: list[Any] = []
        self.clients: list[Any] = []

    def client(self) -> Any:
        """A raw client on the same data (sync), for assertions about Redis itself."""
        if self.backend == "fakeredis":
            made = fakeredis.FakeRedis(server=self.fake_server)
        elif self.backend in ("redis", "redis-acl"):
            made = redis.Redis.from_url(self.deployment.url)
        elif self.backend == "redis-tls":
            made = redis.Redis.from_url(self.deployment.url())
        elif self.backend == "cluster":
            made = redis.RedisCluster(host="127.0.0.1", port=self.deployment.ports[0])
        elif self.backend == "sentinel":
            made = sentinel_master(self.deployment)
        else:
            raise RuntimeError("the memory backend has no Redis client")
        self.clients.append(made)
        return made

    def build(self, sync_cls: type[Any], async_cls: type[Any], **options: Any) -> Any:
        """A store of any kind on this backend: an instance of ``sync_cls`` or, for
        the async twin, of ``async_cls`` (as it is: awaited by the caller). Closed
        with the harness."""
        options.setdefault("key_prefix", self.prefix)
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
            options.setdefault("url", self.url)
            client = None
        store = (sync_cls if self.twin == "sync" else async_cls)(client=client, **options)
        self.stores.append(store)
        return store

    def make(self, **options: Any) -> Any:
        """A conversation store with the synchronous API (the async twin behind an
        :class:`AsyncFacade`)."""
        return self.make_of(ConversationStore, AsyncConversationStore, **options)

    def make_of(self, sync_class: type, async_class: type, **options: Any) -> Any:
        """A store of ``sync_class`` with the synchronous API (its asyncio twin
        ``async_class`` behind an :class:`AsyncFacade`) on this backend."""
        store = self.build(sync_class, async_class, **options)
        if self.twin == "sync":
            return store
        assert self.loop is not None
        return AsyncFacade(store, self.loop)

    def function(self, body: Callable[..., Any]) -> Callable[..., Any]:
        """``body`` as this twin's kind of function (the async twin gets a coroutine
        function with the same name)."""
        if self.twin == "sync":
            return body

        @functools.wraps(body)
        async def coroutine_function(*args: Any, **kwargs: Any) -> Any:
            return body(*args, **kwargs)

        return coroutine_function

    def run(self, value: Any) -> Any:
        """``value``, awaited on this harness's loop if it is awaitable."""
        if inspect.isawaitable(value):
            assert self.loop is not None
            return self.loop.run_until_complete(value)
        return value

    @property
    def url(self) -> str:
        """The URL a user would configure for this backend."""
        if self.acl_user is not None:
            return f"redis://{self.acl_user.userinfo}127.0.0.1:{self.deployment.port}/0"
        if self.backend == "redis-tls":
            return str(self.deployment.url())
        return str(self.deployment.url)

    def close(self) -> None:
        for store in self.stores:
            if self.loop is not None:
                self.loop.run_until_complete(store.aclose())
            else:
                store.close()
        for client in self.clients:
            if self.backend == "sentinel":
                close_sentinel_client(client)
            else:
                client.close()
        if self.acl_user is not None:
            self.acl_user.drop()
        if self.loop is not None:
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()


def _params(twins: tuple[str, ...] = tuple(TWINS)) -> list[Any]:
    params = []
    for backend in BACKENDS:
        marks = [pytest.mark.redis_server] if backend in REAL else []
        for twin in twins:
            params.append(pytest.param((backend, twin), id=f"{backend}-{twin}", marks=marks))
    return params


_DEPLOYMENTS = {
    "redis": "redis_server",
    "redis-acl": "redis_server",
    "cluster": "redis_cluster",
    "sentinel": "redis_sentinel",
    "redis-tls": "tls_redis",
}


def _harness(request: pytest.FixtureRequest, prefix: str) -> Iterator[Harness]:
    backend, twin = request.param
    deployment = None
    if backend in REAL:
        deployment = request.getfixturevalue(_DEPLOYMENTS[backend])
    made = Harness(backend, twin, prefix, deployment)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(params=_params())
def harness(request: pytest.FixtureRequest, prefix: str) -> Iterator[Harness]:
    """Every backend, sync and async."""
    yield from _harness(request, prefix)


@pytest.fixture(params=_params(("async",)))
def async_harness(request: pytest.FixtureRequest, prefix: str) -> Iterator[Harness]:
    """Every backend, async twin only (tests that drive their own event loops)."""
    yield from _harness(request, prefix)


@pytest.fixture
def make_store(harness: Harness) -> Callable[..., Any]:
    """``make_store(**options)``: a conversation store on the test's backend and twin."""
    return harness.make


@pytest.fixture
def make_memory_store(harness: Harness) -> Callable[..., Any]:
    """The same for a long-term memory store."""
    return functools.partial(harness.make_of, MemoryStore, AsyncMemoryStore)


@pytest.fixture
def make_cache(harness: Harness) -> Callable[..., Any]:
    """The same for a result cache."""
    return functools.partial(harness.make_of, ResultCache, AsyncResultCache)


@pytest.fixture
def store(make_store: Callable[..., Any]) -> Any:
    """One made with the default options (so are ``memory`` and ``cache``)."""
    return make_store()


@pytest.fixture
def memory(make_memory_store: Callable[..., Any]) -> Any:
    return make_memory_store()


@pytest.fixture
def cache(make_cache: Callable[..., Any]) -> Any:
    return make_cache()
