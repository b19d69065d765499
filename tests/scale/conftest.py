"""Fixtures for the scaling tests: shared and per-test Cluster/Sentinel/TLS deployments,
and a record of the measured failover gaps (printed at the end of the run)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.cluster import RedisClusterDeployment, SentinelDeployment, shared
from tests.support.tls import TlsRedis

GAPS: list[tuple[str, dict[str, float]]] = []


def _show(measured: dict[str, float]) -> str:
    return ", ".join(
        f"{k}={v:.2f}s" if isinstance(v, float) else f"{k}={v}" for k, v in measured.items()
    )


@pytest.fixture(scope="session")
def redis_cluster(pytestconfig: pytest.Config) -> RedisClusterDeployment:
    return shared(pytestconfig, "cluster", lambda: RedisClusterDeployment().start())


@pytest.fixture(scope="session")
def redis_sentinel(pytestconfig: pytest.Config) -> SentinelDeployment:
    return shared(pytestconfig, "sentinel", lambda: SentinelDeployment().start())


@pytest.fixture(scope="session")
def tls_redis(pytestconfig: pytest.Config) -> TlsRedis:
    return shared(pytestconfig, "tls", lambda: TlsRedis().start())


@pytest.fixture
def fresh_cluster() -> Iterator[RedisClusterDeployment]:
    """A cluster of this test alone (it kills nodes)."""
    made = RedisClusterDeployment().start()
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture
def fresh_sentinel() -> Iterator[SentinelDeployment]:
    """A Sentinel deployment of this test alone (it kills the master)."""
    made = SentinelDeployment().start()
    try:
        yield made
    finally:
        made.cleanup()


@pytest.fixture
def record_gap(request: pytest.FixtureRequest) -> Callable[..., None]:
    def record(**measured: float) -> None:
        GAPS.append((request.node.name, measured))
        for key, value in measured.items():
            request.node.user_properties.append((key, value))
        print(f"{request.node.name}: {_show(measured)}")

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not GAPS:
        return
    terminalreporter.section("measured failover gaps")
    for name, measured in GAPS:
        terminalreporter.write_line(f"{name}: {_show(measured)}")
