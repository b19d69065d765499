"""The ``chatkeep`` command's kinds of data on a Redis Cluster: LangGraph threads and
store namespaces, long-term memory and caches listed, exported, purged by owner and
imported back (their keys and registries live in different slots)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from chatkeep import MemoryStore, ResultCache
from chatkeep_langgraph import RedisSaver, RedisStore
from tests.adapters.langgraph.helpers import agent_graph, thread
from tests.cli.conftest import invoke_cli
from tests.support.cluster import RedisClusterDeployment

pytestmark = pytest.mark.redis_server


def test_kinds_round_trip_on_a_cluster(
    redis_cluster: RedisClusterDeployment, prefix: str, tmp_path: Path
) -> None:
    url = redis_cluster.url
    options: dict[str, Any] = {"key_prefix": prefix, "fallback": "raise"}
    saver = RedisSaver(url, **options)
    store = RedisStore(url, namespace_owner=1, **options)
    memory = MemoryStore.from_url(url, **options)
    cache = ResultCache.from_url(url, namespace="tools", **options)
    for tid in ("t1", "t2"):
        config = {"configurable": {"thread_id": tid, "user_id": "u1"}}
        agent_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config)
    store.put(("memories", "u1"), "likes", {"text": "tea"})
    memory.put(("user", "u1"), "profile", {"name": "Ada"})
    cache.set("q", 42)
    base = ["--url", url, "--prefix", prefix]

    rows = json.loads(invoke_cli([*base, "sessions", "--kind", "all", "--json"]).out)
    assert sorted((r["kind"], r["id"]) for r in rows) == [
        ("cache", "tools"),
        ("langgraph-store", "memories.u1"),
        ("langgraph-threads", "t1"),
        ("langgraph-threads", "t2"),
        ("memory", "user:u1"),
    ]
    before = saver.get_tuple(thread("t1"))
    exported = tmp_path / "all.jsonl"
    assert invoke_cli([*base, "export", "-o", str(exported)]).code == 0
    purged = invoke_cli([*base, "purge", "--owner", "u1", "--yes"])
    assert purged.code == 0, purged.err
    assert saver.get_tuple(thread("t1")) is None
    assert store.get(("memories", "u1"), "likes") is None
    assert memory.get(("user", "u1"), "profile") is None
    imported = invoke_cli([*base, "import", str(exported)])
    assert imported.code == 0, imported.err
    after = saver.get_tuple(thread("t1"))
    assert after is not None and before is not None and after.checkpoint == before.checkpoint
    item = store.get(("memories", "u1"), "likes")
    assert item is not None and item.value == {"text": "tea"}
    assert memory.get(("user", "u1"), "profile") == {"name": "Ada"}
    assert cache.get("q") == 42
    for closing in (saver, store, memory, cache):
        closing.close()
