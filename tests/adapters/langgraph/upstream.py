"""What LangGraph's own store tests need, with RedisStore as the class under test.

The ``test_upstream_*`` modules are LangGraph's test files with only the class under
test and the fixtures swapped; their assertions are upstream's. A SQLite connection
string picks the backend: ``":memory:"`` is chatkeep's ``memory://`` backend, any
other string (upstream's temporary file) the test session's real redis-server. Each
store gets a key prefix of its own, so tests sharing a server never meet.

SqliteStore's ``text_fields`` index option is read as LangGraph's ``fields`` (RedisStore
accepts both), and ``setup``/``sweep_ttl`` exist for the tests' calls: Redis needs no
schema and expires keys itself, so a sweep finds nothing to delete.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

from chatkeep_langgraph import RedisStore

REDIS_URL: list[str] = []  # set by the adapted modules' autouse fixture


def url_of(conn_string: str) -> str:
    if conn_string in (":memory:", "memory"):
        return "memory://"
    return REDIS_URL[0]


def _prefix() -> str:
    return f"u{uuid.uuid4().hex[:12]}"


class SweepingStore(RedisStore):
    """RedisStore with SqliteStore's ``sweep_ttl`` (nothing to sweep: Redis expires)."""

    def sweep_ttl(self) -> int:
        return 0


class AsyncSetupStore(RedisStore):
    """RedisStore with AsyncSqliteStore's awaited ``setup``/``sweep_ttl``."""

    async def setup(self) -> None:  # type: ignore[override]
        return None

    async def sweep_ttl(self) -> int:
        return 0


class RedisStoreOn:
    """Stands where the tests call ``SqliteStore.from_conn_string``."""

    @staticmethod
    @contextmanager
    def from_conn_string(conn_string: str, **options: Any) -> Iterator[SweepingStore]:
        store = SweepingStore(url_of(conn_string), key_prefix=_prefix(), **options)
        try:
            yield store
        finally:
            store.close()


class AsyncRedisStoreOn:
    """Stands where the tests call ``AsyncSqliteStore.from_conn_string``."""

    @staticmethod
    @asynccontextmanager
    async def from_conn_string(conn_string: str, **options: Any) -> AsyncIterator[AsyncSetupStore]:
        store = AsyncSetupStore(url_of(conn_string), key_prefix=_prefix(), **options)
        try:
            yield store
        finally:
            store.close()


MADE: list[RedisStore] = []


def new_store(kind: str, **options: Any) -> RedisStore:
    """A store on ``kind`` ("memory" or "redis") with a prefix of its own (closed after
    the test by :func:`close_made`)."""
    store = SweepingStore(url_of(kind), key_prefix=_prefix(), **options)
    MADE.append(store)
    return store


def close_made() -> None:
    while MADE:
        MADE.pop().close()


BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis_server),
]


def _no_sweeper(store: RedisStore) -> None:
    """Nothing to start or stop: Redis expires keys itself."""


SweepingStore.start_ttl_sweeper = _no_sweeper  # type: ignore[attr-defined]
SweepingStore.stop_ttl_sweeper = _no_sweeper  # type: ignore[attr-defined]


async def _ano_sweeper(store: RedisStore) -> None:
    """Nothing to start or stop: Redis expires keys itself."""


AsyncSetupStore.start_ttl_sweeper = _ano_sweeper  # type: ignore[attr-defined]
AsyncSetupStore.stop_ttl_sweeper = _ano_sweeper  # type: ignore[attr-defined]
