"""examples/llama_index_chat.py: offline, persistent across runs, and still working
(and saying so) when no Redis answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import RedisServer, free_port

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llama_index_chat.py"


def run(redis_url: str) -> str:
    done = subprocess.run(
        [sys.executable, "-W", "error", str(EXAMPLE)],
        env={**os.environ, "REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
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
