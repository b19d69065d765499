"""Fixtures of the feature tests: each feature runs on memory:// and a real Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.backends import CLUSTER, MEMORY, REDIS, backend_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=[MEMORY, REDIS, CLUSTER])
def url(request: pytest.FixtureRequest) -> str:
    return backend_url(request.param, request)


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
