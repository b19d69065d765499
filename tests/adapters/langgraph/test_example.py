"""examples/langgraph_agent.py runs with and without a Redis server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[3]


def run_example(redis_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": redis_url}
    env.pop("CHATKEEP_URL", None)
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / "langgraph_agent.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.redis_server
def test_example_with_redis(redis_server: RedisServer) -> None:
    done = run_example(redis_server.url)
    assert done.returncode == 0, done.stderr
    assert "Connected to Redis" in done.stdout
    assert "18°C, sunny" in done.stdout
    # the restarted process resumed the thread: 6 messages + its own 2
    assert 'You have said 3 thing(s) in this thread; the first was "Hi, I\'m Ada."' in done.stdout
    assert "(8 messages in thread" in done.stdout


def test_example_without_redis() -> None:
    done = run_example(f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 0, done.stderr
    assert "in-memory fallback" in done.stdout
    assert "(6 messages in thread" in done.stdout
