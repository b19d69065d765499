"""examples/langgraph_agent.py runs with and without a Redis server."""

from __future__ import annotations

import subprocess

import pytest

from tests.support.examples import run_example
from tests.support.servers import RedisServer, free_port


def run(redis_url: str) -> subprocess.CompletedProcess[str]:
    return run_example("langgraph_agent.py", redis_url, timeout=120)


@pytest.mark.redis_server
def test_example_with_redis(redis_server: RedisServer) -> None:
    done = run(redis_server.url)
    assert done.returncode == 0, done.stderr
    assert "Connected to Redis" in done.stdout
    assert "18°C, sunny" in done.stdout
    # the restarted process resumed the thread: 6 messages + its own 2
    assert 'You have said 3 thing(s) in this thread; the first was "Hi, I\'m Ada."' in done.stdout
    assert "(8 messages in thread" in done.stdout


def test_example_without_redis() -> None:
    done = run(f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 0, done.stderr
    assert "in-memory fallback" in done.stdout
    assert "(6 messages in thread" in done.stdout
