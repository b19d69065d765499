"""Fixtures of the LangGraph adapter tests: savers on memory, a real redis-server and a
real Redis Cluster (the session's shared deployment, see tests/support/cluster.py)."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable

import pytest

from chatkeep_langgraph import RedisSaver
from tests.support.backends import CLUSTER, MEMORY, REDIS, backend_url
from tests.support.factories import remembering


@pytest.fixture(params=[MEMORY, REDIS, CLUSTER])
def url(request: pytest.FixtureRequest) -> str:
    return backend_url(str(request.param), request)


@pytest.fixture
async def make_saver(url: str, prefix: str) -> AsyncIterator[Callable[..., RedisSaver]]:
    """Savers on the test's backend, closed (on the test's loop) afterwards."""
    made: list[RedisSaver] = []
    yield remembering(functools.partial(RedisSaver, url), made, key_prefix=prefix)
    for saver in made:
        await saver.aclose()
