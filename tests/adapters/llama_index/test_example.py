"""examples/llama_index_chat.py: offline, persistent across runs, and still working
(and saying so) when no Redis answers."""

from __future__ import annotations

import pytest

from tests.support.examples import run_example
from tests.support.servers import RedisServer, free_port


def run(redis_url: str) -> str:
    done = run_example("llama_index_chat.py", redis_url, python_options=["-W", "error"])
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.redis_server
def test_example_persists_across_runs(fresh_redis_server: RedisServer) -> None:
    first = run(fresh_redis_server.url)
    assert "Connected to Redis" in first
    assert "The conversation has 2 messages, 0 of them from earlier runs" in first
    second = run(fresh_redis_server.url)
    assert "The conversation has 4 messages, 2 of them from earlier runs" in second
    assert "Hello, this is turn 1" in second and "Hello, this is turn 2" in second
    assert "archived (kept, not lost)" in second


def test_example_without_redis_uses_the_fallback() -> None:
    out = run(f"redis://127.0.0.1:{free_port()}/0")
    assert "in-memory fallback" in out
    assert "The conversation has 2 messages" in out
    assert "archived (kept, not lost)" in out
