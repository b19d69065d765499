"""Shared fixtures: throwaway Redis servers, per-test key prefixes, backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.servers import RedisServer


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the whole test session, on a free port."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def fresh_redis_server() -> Iterator[RedisServer]:
    """A real redis-server of this test alone (it may stop and restart it)."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def durable_redis_server() -> Iterator[RedisServer]:
    """A real redis-server of this test alone that keeps its data across stop/start
    (append-only file, fsync on every write), like a production Redis restarting."""
    server = RedisServer("--appendonly", "yes", "--appendfsync", "always").start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses, so tests sharing a server never meet."""
    return f"t{uuid.uuid4().hex[:12]}"
