"""Redis stopped mid-conversation: the graph keeps running on the local mirror, and the
checkpoints and writes made during the outage reach Redis exactly once afterwards.
Real servers, stopped and restarted (append-only file, so Redis keeps its data)."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from chatkeep import BackendUnavailableError, ConversationStore, Message
from chatkeep_langgraph import RedisSaver
from chatkeep_langgraph._layout import (
    Delete,
    DropRuns,
    Forget,
    Load,
    Page,
    Prune,
    Put,
    Runs,
    ThreadData,
    Threads,
    Unindex,
    Writes,
)
from chatkeep_langgraph._redis import RedisCheckpoints
from tests.adapters.langgraph.helpers import agent_graph, thread
from tests.support.servers import RedisServer

pytestmark = [
    pytest.mark.redis_server,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:langgraph"),
]

REPLIES = ["r0", "r1", "r2", "r3"]
ROOT = Path(__file__).resolve().parents[3]


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
        key_prefix=prefix,
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
        journaled = status.pending_replay
        durable_redis_server.start()
        _wait_replayed(saver)
        out = graph.invoke({"messages": [HumanMessage("q3")]}, thread("t"))
    assert events == ["degraded", "recovered"]
    unreachable = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(unreachable) == 1  # logged once per outage, not per call
    checkpoints, writes, messages = _reference()
    assert [m.content for m in out["messages"]] == messages
    status = saver.status()
    assert status.replayed == journaled  # every journaled write, replayed once
    assert (status.pending_replay, status.replay_rejected, status.journal_refused) == (0, 0, 0)
    # exactly once: the same checkpoints and writes as an uninterrupted run
    assert _in_redis(durable_redis_server.url, prefix) == (checkpoints, writes)
    # a fresh process (new saver, empty mirror) reads everything from Redis
    fresh = RedisSaver(durable_redis_server.url, key_prefix=prefix, fallback="raise")
    state = agent_graph(fresh).get_state(thread("t"))
    assert [m.content for m in state.values["messages"]] == messages
    assert len(list(fresh.list(thread("t")))) == checkpoints
    fresh.close()
    saver.close()


async def test_outage_mid_conversation_async(
    durable_redis_server: RedisServer, prefix: str
) -> None:
    saver = RedisSaver(
        durable_redis_server.url, key_prefix=prefix, probe_interval=0.05, probe_max=0.2
    )
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
    saver = RedisSaver(fresh_redis_server.url, key_prefix=prefix, fallback="raise")
    graph = agent_graph(saver)
    graph.invoke({"messages": [HumanMessage("q")]}, thread("t"))
    fresh_redis_server.stop()
    with pytest.raises(BackendUnavailableError):
        graph.invoke({"messages": [HumanMessage("q")]}, thread("t"))
    saver.close()


def test_replay_is_idempotent(fresh_redis_server: RedisServer, prefix: str) -> None:
    """A journaled write whose reply was lost lands once even if replayed twice."""
    saver = RedisSaver(fresh_redis_server.url, key_prefix=prefix)
    graph = agent_graph(saver, REPLIES)
    graph.invoke({"messages": [HumanMessage("q0")]}, thread("t"))
    before = _in_redis(fresh_redis_server.url, prefix)
    latest: Any = saver.get_tuple(thread("t"))
    assert latest is not None
    again = saver.policy.writes(latest.config, [("messages", ["x"])], "task-z", "")
    put, _ = saver.policy.put(
        latest.config, {**latest.checkpoint, "id": "1f0-later"}, latest.metadata, {}
    )
    assert saver.connection is not None
    ttl_ms = round((saver.config.ttl or 0) * 1000)
    family = RedisCheckpoints.attached(saver.connection, prefix=prefix, ttl_ms=ttl_ms, fixed=False)
    for _ in range(2):  # the journal's replay path (one step per write), twice
        for op in (put, again, put):
            assert saver.connection.run(family.replay([op])) == [None]
    assert _in_redis(fresh_redis_server.url, prefix) == (before[0] + 1, before[1] + 1)
    saver.close()


def test_one_circuit_for_conversations_and_checkpoints(
    durable_redis_server: RedisServer, prefix: str
) -> None:
    """A ConversationStore and a RedisSaver on one URL: one connection, one circuit
    (degraded together, one journal, replayed by either)."""
    url = durable_redis_server.url
    events: dict[str, list[str]] = {"store": [], "saver": []}
    options: dict[str, Any] = {"key_prefix": prefix, "probe_interval": 60.0}
    store = ConversationStore.from_url(
        url, on_state_change=lambda event, _: events["store"].append(event), **options
    )
    saver = RedisSaver(
        url, on_state_change=lambda event, _: events["saver"].append(event), **options
    )
    assert saver.connection is store.connection
    graph = agent_graph(saver, REPLIES)
    graph.invoke({"messages": [HumanMessage("q0")]}, thread("t"))
    store.append("s", Message(role="user", content="before"))
    durable_redis_server.stop()
    store.append("s", Message(role="user", content="during"))  # the store finds Redis gone
    assert saver.status().degraded  # the saver is degraded with it, before any call of its own
    assert saver.status().circuit == "open"
    graph.invoke({"messages": [HumanMessage("q1")]}, thread("t"))  # served by the mirror
    pending = store.status().pending_replay
    assert pending > 1 and saver.status().pending_replay == pending  # one journal
    assert saver.status().outages == store.status().outages == 1
    assert events == {"store": ["degraded"], "saver": ["degraded"]}
    durable_redis_server.start()
    assert store.flush() == 0  # the store's flush replays the checkpoints too
    assert not saver.status().degraded and saver.status().replayed == pending
    assert events == {"store": ["degraded", "recovered"], "saver": ["degraded", "recovered"]}
    fresh = RedisSaver(url, key_prefix=prefix, fallback="raise")
    state = agent_graph(fresh).get_state(thread("t"))
    assert [m.content for m in state.values["messages"]] == ["q0", "r0", "q1", "r1"]
    reader = ConversationStore.from_url(url, key_prefix=prefix, fallback="raise")
    assert [m.text for m in reader.messages("s")] == ["before", "during"]
    for closing in (fresh, reader, saver, store):
        closing.close()


_WRITER = """
import os, sys
from langchain_core.messages import HumanMessage
from chatkeep_langgraph import RedisSaver
from tests.adapters.langgraph.helpers import agent_graph, thread
saver = RedisSaver(sys.argv[1], key_prefix=sys.argv[2], journal_path=sys.argv[3])
agent_graph(saver, ["offline"]).invoke({"messages": [HumanMessage("q")]}, thread("t"))
print(saver.status().pending_replay, flush=True)
os._exit(0)  # no close, no exit handlers: the writes are only in the journal file
"""

_REPLAYER = """
import sys
from chatkeep import ConversationStore
store = ConversationStore.from_url(sys.argv[1], key_prefix="other", journal_path=sys.argv[3])
print(store.flush(), "chatkeep_langgraph" in sys.modules)
store.close()
"""


@pytest.mark.parametrize("replayer", ["store", "cli"])
def test_durable_journal_replayed_by_another_process(
    fresh_redis_server: RedisServer, prefix: str, tmp_path: Path, replayer: str
) -> None:
    """Checkpoints journaled in a sqlite file (journal_path) by a process that died are
    replayed by another process that never imported chatkeep_langgraph (a chatkeep
    store with that journal_path, or ``chatkeep journal replay``): the
    "chatkeep.features" entry point rebuilds the family."""
    journal = str(tmp_path / "journal.sqlite")
    fresh_redis_server.stop()

    def run(*args: str) -> str:
        done = subprocess.run(
            args, cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    url = fresh_redis_server.url
    assert int(run(sys.executable, "-c", _WRITER, url, prefix, journal)) > 0
    fresh_redis_server.start()
    if replayer == "store":
        assert run(sys.executable, "-c", _REPLAYER, url, prefix, journal) == "0 True"
    else:
        chatkeep = str(Path(sys.executable).with_name("chatkeep"))
        assert "langgraph" in run(chatkeep, "journal", "show", "--path", journal)
        run(chatkeep, "--url", url, "journal", "replay", "--path", journal)
    saver = RedisSaver(fresh_redis_server.url, key_prefix=prefix, fallback="raise")
    state = agent_graph(saver).get_state(thread("t"))
    assert [m.content for m in state.values["messages"]] == ["q", "offline"]
    saver.close()


def test_journal_encoding_round_trips_every_write() -> None:
    family = RedisCheckpoints
    data = ThreadData([b":a"], {b":a": b"rec"}, {b":c:1": b"\x00\xff"}, [b":a:t:0\nh\nv"])
    writes: list[Any] = [
        Put("t", b":a", b"r\n\x00", b":", ((b":c:1", b"\xff"),), 3),
        Put("t", b":a", b"r", b":", (), 0, "run-1", "user-1"),
        Forget("t", (b":a", b":b")),
        Writes("t\u00e9", ((b"p\n", b"p\nm", True), (b"q\n", b"q\nm", False))),
        Delete("t"),
        Prune("t", 1),
        Load("t", data),
    ]
    for op in writes:
        assert family.decode(family.encode(op)) == op
        assert family.key(op) == op.thread and family.size(op) > 0
    assert family.key(Page("t", b"", b"\xff", 1)) is None
    assert family.key(Runs(("r",))) is None
    assert family.key(Threads("", 0, 10)) is None
    for other in (DropRuns(("r1", "r\u00e92")), Unindex(("t1", "t2"), "u1")):
        assert family.decode(family.encode(other)) == other
        assert family.key(other) and family.size(other) > 0


def test_delete_for_runs_during_an_outage_is_replayed(
    durable_redis_server: RedisServer, prefix: str
) -> None:
    """delete_for_runs while Redis is down: the mirror's view is deleted at once and
    the deletion reaches Redis when it is back."""
    saver = RedisSaver(
        durable_redis_server.url, key_prefix=prefix, probe_interval=0.05, probe_max=0.2
    )
    graph = agent_graph(saver, REPLIES)
    graph.invoke({"messages": [HumanMessage("q0")]}, {**thread("t"), "metadata": {"run_id": "r0"}})
    graph.invoke({"messages": [HumanMessage("q1")]}, {**thread("t"), "metadata": {"run_id": "r1"}})
    runs = {t.metadata.get("run_id") for t in saver.list(thread("t"))}
    assert runs == {"r0", "r1"}
    durable_redis_server.stop()
    saver.delete_for_runs(["r0"])
    assert {t.metadata.get("run_id") for t in saver.list(thread("t"))} == {"r1"}
    assert saver.status().degraded
    durable_redis_server.start()
    _wait_replayed(saver)
    fresh = RedisSaver(durable_redis_server.url, key_prefix=prefix, fallback="raise")
    assert {t.metadata.get("run_id") for t in fresh.list(thread("t"))} == {"r1"}
    raw = redis.Redis.from_url(durable_redis_server.url)
    assert not raw.exists(f"{prefix}:lg:run:{{r0}}") and raw.exists(f"{prefix}:lg:run:{{r1}}")
    raw.close()
    fresh.close()
    saver.close()
