"""Fixtures for tests that look inside a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis

from chatkeep import ConversationStore
from tests.support.servers import RedisServer


class CountingConnection(redis.Connection):
    """Counts round trips: every packet sent is one request the client then waits on."""

    sent = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).sent += 1
        super().send_packed_command(command, check_health)


@pytest.fixture
def raw(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def counting_store(redis_server: RedisServer, prefix: str) -> Iterator[ConversationStore]:
    pool = redis.ConnectionPool(
        host="127.0.0.1", port=redis_server.port, connection_class=CountingConnection
    )
    client = redis.Redis(connection_pool=pool)
    store = ConversationStore(client=client, key_prefix=prefix)
    yield store
    store.close()
    client.close()


@pytest.fixture
def round_trips() -> Any:
    class Counter:
        def __enter__(self) -> Any:
            self.start = CountingConnection.sent
            return self

        def __exit__(self, *exc: object) -> None:
            self.count = CountingConnection.sent - self.start

    return Counter
