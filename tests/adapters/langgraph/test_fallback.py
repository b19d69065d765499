"""Redis stopped mid-conversation: the graph keeps running on the local mirror, and the
checkpoints and writes made during the outage reach Redis exactly once afterwards.
Real servers, stopped and restarted (append-only file, so Redis keeps its data)."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
import redis
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from chatkeep import BackendUnavailableError
from chatkeep_langgraph import RedisSaver
from tests.adapters.langgraph.helpers import agent_graph, thread
from tests.support.servers import RedisServer

pytestmark = [
    pytest.mark.redis_server,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:langgraph"),
]

REPLIES = ["r0", "r1", "r2", "r3"]


def _reference() -> tuple[int, int, list[str]]:
    """Checkpoints, writes and messages of the same 4 turns on LangGraph's InMemorySaver."""
    saver = InMemorySaver()
    graph = agent_graph(saver, REPLIES)
    for i in range(4):
        out = graph.invoke({"messages": [HumanMessage(f"q{i}")]}, thread("t"))
    checkpoints = sum(len(v) for ns in saver.storage.values() for v in ns.values())
    writes = sum(len(v) for v in saver.writes.values())
    return checkpoints, writes, [m.content for m in out["messages"]]


def _in_redis(url: str, prefix: str) -> tuple[int, int]:
    raw = redis.Redis.from_url(url)
    try:
        tag = f"{prefix}:lg:{{t}}"
        return int(raw.zcard(f"{tag}:i")), int(raw.zcard(f"{tag}:w"))
    finally:
        raw.close()


def _wait_replayed(saver: RedisSaver, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while saver.flush() or saver.status().degraded:
        assert time.monotonic() < deadline, saver.status()
        time.sleep(0.05)


def test_outage_mid_conversation_sync(
    durable_redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[str] = []
    saver = RedisSaver(
        durable_redis_server.url,
        prefix=prefix,
        probe_interval=0.05,
        probe_max=0.2,
        on_state_change=lambda event, status: events.append(event),
    )
    graph = agent_graph(saver, REPLIES)
    with caplog.at_level(logging.WARNING, logger="chatkeep"):
        graph.invoke({"messages": [HumanMessage("q0")]}, thread("t"))
        durable_redis_server.stop()
        for i in (1, 2):  # the graph keeps running, with the history it had
            out = graph.invoke({"messages": [HumanMessage(f"q{i}")]}, thread("t"))
        assert [m.content for m in out["messages"]] == ["q0", "r0", "q1", "r1", "q2", "r2"]
        status = saver.status()
        assert status.degraded and status.pending_replay > 0
        durable_redis_server.start()
        _wait_replayed(saver)
        out = graph.invoke({"messages": [HumanMessage("q3")]}, thread("t"))
    assert events == ["degraded", "recovered"]
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1  # logged once per outage, not per call
    checkpoints, writes, messages = _reference()
    assert [m.content for m in out["messages"]] == messages
    assert saver.status().replay_rejected == 0 and saver.status().journal_dropped == 0
    # exactly once: the same checkpoints and writes as an uninterrupted run
    assert _in_redis(durable_redis_server.url, prefix) == (checkpoints, writes)
    # a fresh process (new saver, empty mirror) reads everything from Redis
    fresh = RedisSaver(durable_redis_server.url, prefix=prefix, fallback="raise")
    state = agent_graph(fresh).get_state(thread("t"))
    assert [m.content for m in state.values["messages"]] == messages
    assert len(list(fresh.list(thread("t")))) == checkpoints
    fresh.close()
    saver.close()


async def test_outage_mid_conversation_async(
    durable_redis_server: RedisServer, prefix: str
) -> None:
    saver = RedisSaver(durable_redis_server.url, prefix=prefix, probe_interval=0.05, probe_max=0.2)
    graph = agent_graph(saver, REPLIES)
    await graph.ainvoke({"messages": [HumanMessage("q0")]}, thread("t"))
    durable_redis_server.stop()
    for i in (1, 2):
        out = await graph.ainvoke({"messages": [HumanMessage(f"q{i}")]}, thread("t"))
    assert len(out["messages"]) == 6
    durable_redis_server.start()
    deadline = time.monotonic() + 10
    while await saver.aflush() or saver.status().degraded:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    out = await graph.ainvoke({"messages": [HumanMessage("q3")]}, thread("t"))
    checkpoints, writes, messages = _reference()
    assert [m.content for m in out["messages"]] == messages
    assert _in_redis(durable_redis_server.url, prefix) == (checkpoints, writes)
    await saver.aclose()


def test_fallback_off_raises(fresh_redis_server: RedisServer, prefix: str) -> None:
    saver = RedisSaver(fresh_redis_server.url, prefix=prefix, fallback="raise")
    graph = agent_graph(saver)
    graph.invoke({"messages": [HumanMessage("q")]}, thread("t"))
    fresh_redis_server.stop()
    with pytest.raises(BackendUnavailableError):
        graph.invoke({"messages": [HumanMessage("q")]}, thread("t"))
    saver.close()


def test_replay_is_idempotent(fresh_redis_server: RedisServer, prefix: str) -> None:
    """A journaled write whose reply was lost lands once even if replayed twice."""
    saver = RedisSaver(fresh_redis_server.url, prefix=prefix)
    graph = agent_graph(saver, REPLIES)
    graph.invoke({"messages": [HumanMessage("q0")]}, thread("t"))
    before = _in_redis(fresh_redis_server.url, prefix)
    latest: Any = saver.get_tuple(thread("t"))
    assert latest is not None
    again = saver.policy.writes(latest.config, [("messages", ["x"])], "task-z", "")
    primary: Any = saver._sync_backend()
    assert primary.writes(again) == 1
    assert primary.writes(again) == 0
    assert _in_redis(fresh_redis_server.url, prefix) == (before[0], before[1] + 1)
    saver.close()
