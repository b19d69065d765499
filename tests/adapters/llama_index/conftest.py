"""Fixtures of the LlamaIndex adapter tests: backends (memory, real Redis), store
factories that close what they made, sync/async dispatch, an event loop for sync
``Memory`` calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis

from chatkeep_llama_index import RedisChatStore, RedisDBChatStore
from tests.support.factories import remembering

pytest.importorskip("llama_index.core")

S = TypeVar("S", RedisChatStore, RedisDBChatStore)


def closing_stores(cls: type[S], url: str, prefix: str) -> Iterator[Callable[..., S]]:
    """For a fixture: a factory of ``cls`` stores on the test's backend (``redis_url``
    and ``key_prefix`` by default), each closed when the test is done."""
    made: list[S] = []
    yield remembering(cls, made, redis_url=url, key_prefix=prefix)
    for store in made:
        store.close()


@pytest.fixture
def make_chat_store(url: str, prefix: str) -> Iterator[Callable[..., RedisChatStore]]:
    yield from closing_stores(RedisChatStore, url, prefix)


@pytest.fixture
def make_db_store(url: str, prefix: str) -> Iterator[Callable[..., RedisDBChatStore]]:
    yield from closing_stores(RedisDBChatStore, url, prefix)


@pytest.fixture
def raw_keys(url: str, prefix: str) -> Callable[[], list[str]]:
    """Every Redis key under the test's prefix ([] for the memory backend)."""

    def keys() -> list[str]:
        if url.startswith("memory"):
            return []
        client = redis.Redis.from_url(url)
        try:
            return sorted(k.decode() for k in client.scan_iter(match=f"{prefix}:*"))
        finally:
            client.close()

    return keys


@pytest.fixture
def sync_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The current event loop of a sync test, closed at the end.

    llama-index's ``asyncio_run`` (used by ``Memory``'s sync methods) runs coroutines
    on the current loop and never closes one it made itself; a test sets its own."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        yield loop
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)


SYNC_NAMES = {
    "set": "set_messages",
    "get": "get_messages",
    "add": "add_message",
    "delete_all": "delete_messages",
    "delete": "delete_message",
    "delete_last": "delete_last_message",
    "keys": "get_keys",
}
ASYNC_NAMES = {
    "set": "aset_messages",
    "get": "aget_messages",
    "add": "async_add_message",
    "delete_all": "adelete_messages",
    "delete": "adelete_message",
    "delete_last": "adelete_last_message",
    "keys": "aget_keys",
}


class Api:
    """Calls a ``BaseChatStore`` method by short name, sync or async: one test body
    checks both twins (``await api.add(key, message)``)."""

    def __init__(self, store: RedisChatStore, mode: str) -> None:
        self.store = store
        self.mode = mode

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if self.mode == "sync":
            method = getattr(self.store, SYNC_NAMES[name])

            async def call(*args: Any, **kwargs: Any) -> Any:
                return method(*args, **kwargs)

            return call
        return getattr(self.store, ASYNC_NAMES[name])  # type: ignore[no-any-return]


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def api(make_chat_store: Callable[..., RedisChatStore], mode: str) -> Api:
    return Api(make_chat_store(), mode)
