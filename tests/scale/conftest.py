"""Fixtures for the scaling tests: per-test Cluster/Sentinel deployments (the shared
ones are in tests/conftest.py), and a record of the measured failover gaps (printed
at the end of the run)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support.cluster import RedisClusterDeployment, SentinelDeployment
from tests.support.servers import started

GAPS: list[tuple[str, dict[str, float]]] = []


def _show(measured: dict[str, float]) -> str:
    return ", ".join(
        f"{k}={v:.2f}s" if isinstance(v, float) else f"{k}={v}" for k, v in measured.items()
    )


@pytest.fixture
def fresh_cluster() -> Iterator[RedisClusterDeployment]:
    """A cluster of this test alone (it kills nodes)."""
    yield from started(RedisClusterDeployment())


@pytest.fixture
def fresh_sentinel() -> Iterator[SentinelDeployment]:
    """A Sentinel deployment of this test alone (it kills the master)."""
    yield from started(SentinelDeployment())


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
