"""Fixtures of the feature tests: each feature runs on memory:// and a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cluster import RedisClusterDeployment, shared
from tests.support.servers import RedisServer

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(
    params=[
        "memory",
        pytest.param("redis", marks=pytest.mark.redis_server),
        pytest.param("cluster", marks=pytest.mark.redis_server),
    ]
)
def url(request: pytest.FixtureRequest, pytestconfig: pytest.Config) -> str:
    if request.param == "memory":
        return "memory://"
    if request.param == "cluster":  # the session's shared 3-master Redis Cluster
        return shared(pytestconfig, "cluster", lambda: RedisClusterDeployment().start()).url
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


def spawn(*args: str) -> subprocess.Popen[str]:
    """A worker process running ``tests/features/workers.py`` with ``args``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.features.workers", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 60) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out
