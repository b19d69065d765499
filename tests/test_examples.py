"""The demo (make demo) runs with and without a Redis server."""

from __future__ import annotations

import pytest

from tests.support.examples import run_example
from tests.support.servers import RedisServer, free_port


@pytest.mark.redis_server
def test_quickstart_with_redis(redis_server: RedisServer) -> None:
    done = run_example("quickstart.py", redis_server.url)
    assert done.returncode == 0, done.stderr
    assert "Connected to Redis" in done.stdout
    assert "4 messages" in done.stdout


def test_quickstart_without_redis() -> None:
    done = run_example("quickstart.py", f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 0, done.stderr
    assert "in-memory fallback" in done.stdout
    assert "4 messages" in done.stdout


@pytest.mark.redis_server
def test_a_custom_store_on_chatkeep_redis(redis_server: RedisServer) -> None:
    """examples/custom_store.py (docs/extending.md) writes through the
    sync store and reads through the asyncio twin, on a real Redis."""
    done = run_example("custom_store.py", redis_server.url)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["sync: hello | degraded: False", "async: hello"]
    raw = __import__("redis").Redis.from_url(redis_server.url)
    assert raw.get("chatkeep-example:note:greeting") == b"hello"
    assert 0 < raw.ttl("chatkeep-example:note:greeting") <= 3600
    raw.close()


def test_a_custom_store_keeps_working_without_redis() -> None:
    done = run_example("custom_store.py", f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0] == "sync: hello | degraded: True"
