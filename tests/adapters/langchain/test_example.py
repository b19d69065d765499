"""examples/langchain_chat.py runs offline, remembers across runs, and says when it
runs on the in-memory fallback."""

from __future__ import annotations

import time
import uuid

import pytest

from tests.support.examples import run_example
from tests.support.servers import RedisServer, free_port


def run(url: str, session: str) -> str:
    started = time.monotonic()
    done = run_example("langchain_chat.py", url, session)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 10
    return done.stdout


@pytest.mark.redis_server
def test_history_survives_a_restart(redis_server: RedisServer) -> None:
    session = f"example-{uuid.uuid4().hex[:8]}"
    first = run(redis_server.url, session)
    assert "has 0 message(s) from earlier runs" in first
    assert "This is the start of our conversation" in first
    second = run(redis_server.url, session)
    assert "has 6 message(s) from earlier runs" in second
    assert "This is the start of our conversation" not in second
    assert 'I remember 3 earlier message(s) from you; the first was "Hi, I\'m Ada."' in second
    assert "now holds 12 message(s)" in second


def test_runs_on_the_fallback_without_redis() -> None:
    out = run(f"redis://127.0.0.1:{free_port()}/0", "offline")
    assert "running on the in-memory fallback" in out
    assert "I remember 2 earlier message(s) from you" in out  # memory works within the run
