"""Shared fixtures: throwaway Redis servers (one each, or one of each deployment for
the whole session: Cluster, Sentinel, TLS), per-test key prefixes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.support.acl import AclUser
from tests.support.cluster import RedisClusterDeployment, SentinelDeployment, shared
from tests.support.servers import RedisServer, TcpProxy, started
from tests.support.tls import TlsRedis


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server for the whole test session, on a free port."""
    yield from started(RedisServer())


@pytest.fixture
def fresh_redis_server() -> Iterator[RedisServer]:
    """A real redis-server of this test alone (it may stop and restart it)."""
    yield from started(RedisServer())


@pytest.fixture
def durable_redis_server() -> Iterator[RedisServer]:
    """A real redis-server of this test alone that keeps its data across stop/start
    (append-only file, fsync on every write), like a production Redis restarting."""
    yield from started(RedisServer("--appendonly", "yes", "--appendfsync", "always"))


@pytest.fixture
def proxy(fresh_redis_server: RedisServer) -> Iterator[TcpProxy]:
    """A TCP proxy in front of the test's own redis-server (to cut, black-hole, ...)."""
    made = TcpProxy(fresh_redis_server.port)
    try:
        yield made
    finally:
        made.close()


@pytest.fixture(scope="session")
def redis_cluster(pytestconfig: pytest.Config) -> RedisClusterDeployment:
    """3 masters + 3 replicas for the whole test session (shared by every suite)."""
    return shared(pytestconfig, "cluster", lambda: RedisClusterDeployment().start())


@pytest.fixture(scope="session")
def redis_sentinel(pytestconfig: pytest.Config) -> SentinelDeployment:
    """1 master, 1 replica, 3 sentinels for the whole test session (shared)."""
    return shared(pytestconfig, "sentinel", lambda: SentinelDeployment().start())


@pytest.fixture(scope="session")
def tls_redis(pytestconfig: pytest.Config) -> TlsRedis:
    """A TLS-only redis-server with a throwaway CA for the whole test session (shared)."""
    return shared(pytestconfig, "tls", lambda: TlsRedis().start())


@pytest.fixture
def least_privilege(redis_server: RedisServer, prefix: str) -> Iterator[str]:
    """The URL of a user of the session's redis-server with only ``acl_rules(prefix)``
    (chatkeep's minimal ACL for the test's prefix); the user is dropped afterwards."""
    user = AclUser([redis_server.port], prefix)
    try:
        yield f"redis://{user.userinfo}127.0.0.1:{redis_server.port}/0"
    finally:
        user.drop()


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test uses, so tests sharing a server never meet."""
    return f"t{uuid.uuid4().hex[:12]}"
