"""A data-protection purge (``chatkeep purge --owner``) covers LangGraph threads too:
threads whose checkpoints were written for a user (``configurable.user_id``, or the
saver's ``owner=``) are deleted with the user's conversations."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from chatkeep import ConversationStore, Message
from chatkeep_langgraph import RedisSaver
from tests.adapters.langgraph.helpers import agent_graph, thread
from tests.cli.conftest import invoke_cli
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis_server


def _run(saver: RedisSaver, tid: str, user: str) -> None:
    config: dict[str, Any] = {"configurable": {"thread_id": tid, "user_id": user}}
    agent_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config)


def test_purge_by_owner_deletes_the_owners_langgraph_threads(
    redis_server: RedisServer, prefix: str
) -> None:
    saver = RedisSaver(redis_server.url, prefix=prefix, fallback="raise")
    store = ConversationStore.from_url(redis_server.url, prefix=prefix, fallback="raise")
    _run(saver, "t1", "u1")
    _run(saver, "t2", "u2")
    _run(saver, "t3", "u1")
    store.append("chat", [Message(role="user", content="hello")], owner="u1")
    base = ["--url", redis_server.url, "--prefix", prefix]
    listed = invoke_cli([*base, "sessions", "--owner", "u1"])
    assert listed.code == 0, listed.err
    assert "owner 'u1' also has 2 LangGraph threads" in listed.out
    assert "LangGraph" not in invoke_cli([*base, "sessions", "--owner", "u3"]).out
    asked = invoke_cli([*base, "purge", "--owner", "u1"])
    assert asked.code != 0  # no --yes and no terminal to ask: nothing deleted
    assert saver.get_tuple(thread("t1")) is not None
    done = invoke_cli([*base, "purge", "--owner", "u1", "--yes"])
    assert done.code == 0, done.err
    assert "deleted 1 sessions (1 messages)" in done.out
    assert "deleted 2 LangGraph threads of owner 'u1'" in done.out
    assert saver.get_tuple(thread("t1")) is None and saver.get_tuple(thread("t3")) is None
    assert saver.get_tuple(thread("t2")) is not None  # another owner's
    assert store.info("chat") is None
    assert list(saver.list(None, filter={"user_id": "u1"})) == []
    # only threads: still found and deleted
    _run(saver, "t4", "u1")
    again = invoke_cli([*base, "purge", "--owner", "u1", "--yes"])
    assert again.code == 0, again.err
    assert "deleted 1 LangGraph thread of owner 'u1'" in again.out
    assert saver.get_tuple(thread("t4")) is None
    saver.close()
    store.close()
