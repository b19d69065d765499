"""The backends a feature or adapter test runs on, as pytest params, and the URL a
user would configure for each (the session's shared servers, see tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.support.cluster import RedisClusterDeployment
from tests.support.servers import RedisServer

MEMORY = pytest.param("memory", id="memory")
REDIS = pytest.param("redis", id="redis", marks=pytest.mark.redis_server)
CLUSTER = pytest.param("cluster", id="cluster", marks=pytest.mark.redis_server)


def backend_url(backend: str, request: pytest.FixtureRequest) -> str:
    """``memory://``, the session's redis-server or the session's Redis Cluster."""
    if backend == "memory":
        return "memory://"
    if backend == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        return server.url
    assert backend == "cluster", backend
    cluster: RedisClusterDeployment = request.getfixturevalue("redis_cluster")
    return cluster.url
