"""Fixtures of the LangGraph adapter tests: savers on memory, a real redis-server and a
real Redis Cluster (the session's shared deployment, see tests/support/cluster.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from chatkeep_langgraph import RedisSaver
from tests.support.cluster import RedisClusterDeployment, shared
from tests.support.servers import RedisServer

BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis_server),
    pytest.param("cluster", id="cluster", marks=pytest.mark.redis_server),
]


@pytest.fixture(scope="session")
def lg_cluster(pytestconfig: pytest.Config) -> RedisClusterDeployment:
    """The session's Redis Cluster (shared with tests/contract and tests/scale)."""
    return shared(pytestconfig, "cluster", lambda: RedisClusterDeployment().start())


def backend_url(backend: str, request: pytest.FixtureRequest) -> str:
    if backend == "memory":
        return "memory://"
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url
    cluster: RedisClusterDeployment = request.getfixturevalue("lg_cluster")
    return cluster.url


@pytest.fixture(params=BACKENDS)
def url(request: pytest.FixtureRequest) -> str:
    return backend_url(str(request.param), request)


@pytest.fixture
async def make_saver(url: str, prefix: str) -> AsyncIterator[Callable[..., RedisSaver]]:
    """Savers on the test's backend, closed (on the test's loop) afterwards."""
    made: list[RedisSaver] = []

    def make(**options: Any) -> RedisSaver:
        options.setdefault("prefix", prefix)
        saver = RedisSaver(url, **options)
        made.append(saver)
        return saver

    yield make
    for saver in made:
        await saver.aclose()
