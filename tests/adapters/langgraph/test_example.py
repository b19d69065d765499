"""examples/langgraph_agent.py runs with and without a Redis server: checkpoints and
memories (semantic search) saved by one process, found by another."""

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
    # the restarted process resumed the thread: 10 messages + its own 2
    assert 'You have said 5 thing(s) in this thread; the first was "Hi, I\'m Ada."' in done.stdout
    assert "(10 messages in thread" in done.stdout and "(12 messages in thread" in done.stdout
    # and, on a new thread, found the memory process 1 saved, by meaning
    assert "I remember: my cat is called Turing (score" in done.stdout


def test_example_without_redis() -> None:
    done = run(f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 0, done.stderr
    assert "in-memory fallback" in done.stdout
    assert "(10 messages in thread" in done.stdout
    assert "I have no memories yet." in done.stdout  # the fallback lived in process 1 only


def run_agent(redis_url: str) -> subprocess.CompletedProcess[str]:
    return run_example("langchain_agent.py", redis_url, timeout=120)


@pytest.mark.redis_server
def test_create_agent_example_with_redis(redis_server: RedisServer) -> None:
    """LangChain 1.x create_agent with RedisSaver and RedisStore: the restarted process
    resumes the thread and recalls, by meaning, the memory a tool saved."""
    done = run_agent(redis_server.url)
    assert done.returncode == 0, done.stderr
    assert "(get_weather) 18°C, sunny" in done.stdout
    assert "(10 messages in thread" in done.stdout  # 3 turns: 1 + 4 + 4 + 1 answer
    assert 'You have said 4 thing(s); the first was "Hi, I\'m Ada."' in done.stdout
    assert "(recall) my cat is called Turing (score" in done.stdout


def test_create_agent_example_without_redis() -> None:
    done = run_agent(f"redis://127.0.0.1:{free_port()}/0")
    assert done.returncode == 0, done.stderr
    assert "in-memory fallback" in done.stdout
    assert "(remember) Saved." in done.stdout
