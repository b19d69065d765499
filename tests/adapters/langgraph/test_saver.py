"""RedisSaver on its own terms: the Redis layout (hash tag, one blob per channel
version, whole-thread TTL refreshed on read, keep_last), the sync twin, the ways to
construct it, no pickle, and real graphs (sync and async) resumed by a new saver."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis
import redis.asyncio
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from chatkeep import (
    ConfigurationError,
    ConversationStore,
    InvalidArgumentError,
    SerializationError,
)
from chatkeep_langgraph import RedisSaver
from tests.adapters.langgraph.helpers import agent_graph, thread
from tests.support.servers import RedisServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:langgraph")


def _cp(values: dict[str, Any], versions: dict[str, Any]) -> Any:
    cp = empty_checkpoint()
    cp["channel_values"] = values
    cp["channel_versions"] = versions
    return cp


def _put(
    saver: RedisSaver, tid: str, cp: Any, new: dict[str, Any], parent: str | None = None
) -> Any:
    config: dict[str, Any] = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
    if parent:
        config["configurable"]["checkpoint_id"] = parent
    return saver.put(config, cp, {"source": "loop", "step": 0}, new)  # type: ignore[arg-type]


# -- layout on a real Redis -----------------------------------------------------------------


@pytest.mark.redis_server
def test_keys_share_one_hash_tag_and_channels_are_written_once(
    redis_server: RedisServer, prefix: str
) -> None:
    saver = RedisSaver(redis_server.url, key_prefix=prefix)
    raw = redis.Redis.from_url(redis_server.url)
    try:
        tid = "user:{42} *"  # braces, colon, glob and space cannot escape the tag
        first = _put(
            saver, tid, _cp({"a": "A" * 1000, "b": "B"}, {"a": "1", "b": "1"}), {"a": "1", "b": "1"}
        )
        blob_key = f"{prefix}:lg:{{user%3A%7B42%7D%20%2A}}:b"
        assert raw.hlen(blob_key) == 2
        size_after_first = raw.memory_usage(blob_key)
        # 'a' unchanged: only 'b' is written (its new version); 'a' is not written again
        _put(
            saver,
            tid,
            _cp({"a": "A" * 1000, "b": "B2"}, {"a": "1", "b": "2"}),
            {"b": "2"},
            parent=first["configurable"]["checkpoint_id"],
        )
        assert raw.hlen(blob_key) == 3
        assert sorted(raw.hkeys(blob_key)) == [b":a:1", b":b:1", b":b:2"]
        assert size_after_first is not None
        keys = sorted(k.decode() for k in raw.keys(f"{prefix}:*"))
        thread_keys = [f"{prefix}:lg:{{user%3A%7B42%7D%20%2A}}:{s}" for s in "bci"]
        assert keys == sorted([*thread_keys, f"{prefix}:lg:threads"])  # + the thread index
        assert raw.zrange(f"{prefix}:lg:threads", 0, -1) == [b"user%3A%7B42%7D%20%2A"]
        latest = saver.get_tuple(thread(tid))
        assert latest is not None
        assert latest.checkpoint["channel_values"] == {"a": "A" * 1000, "b": "B2"}
        assert latest.config["configurable"]["thread_id"] == tid
    finally:
        saver.close()
        raw.close()


@pytest.mark.redis_server
def test_whole_thread_ttl_refreshed_on_read(redis_server: RedisServer, prefix: str) -> None:
    saver = RedisSaver(redis_server.url, key_prefix=prefix, ttl=100)
    raw = redis.Redis.from_url(redis_server.url)
    try:
        stored = _put(saver, "t", _cp({"a": 1}, {"a": "1"}), {"a": "1"})
        saver.put_writes(stored, [("a", 2)], "task-1")
        keys = raw.keys(f"{prefix}:lg:{{*")  # the thread's keys (not the thread index)
        assert len(keys) == 4
        for key in keys:
            assert 99_000 < raw.pttl(key) <= 100_000
            raw.pexpire(key, 5_000)
        assert saver.get_tuple(thread("t")) is not None
        for key in keys:
            assert raw.pttl(key) > 99_000  # sliding: the read restarted the TTL
    finally:
        saver.close()
        raw.close()


@pytest.mark.redis_server
def test_fixed_ttl_is_not_refreshed(redis_server: RedisServer, prefix: str) -> None:
    saver = RedisSaver(redis_server.url, key_prefix=prefix, ttl=100, ttl_mode="fixed")
    raw = redis.Redis.from_url(redis_server.url)
    try:
        stored = _put(saver, "t", _cp({"a": 1}, {"a": "1"}), {"a": "1"})
        for key in raw.keys(f"{prefix}:lg:{{*"):
            raw.pexpire(key, 5_000)
        saver.get_tuple(thread("t"))
        saver.put_writes(stored, [("a", 2)], "task-1")  # a new key gets the thread's expiry
        for key in raw.keys(f"{prefix}:lg:{{*"):
            assert 0 < raw.pttl(key) <= 5_000
    finally:
        saver.close()
        raw.close()


@pytest.mark.redis_server
def test_ttl_config_refresh_on_read_false(redis_server: RedisServer, prefix: str) -> None:
    """LangGraph's checkpointer TTL config: default_ttl in minutes; with
    refresh_on_read=False a read leaves the thread's TTL alone, a write restarts it."""
    saver = RedisSaver(
        redis_server.url, key_prefix=prefix, ttl={"default_ttl": 2, "refresh_on_read": False}
    )
    raw = redis.Redis.from_url(redis_server.url)
    try:
        stored = _put(saver, "t", _cp({"a": 1}, {"a": "1"}), {"a": "1"})
        keys = raw.keys(f"{prefix}:lg:{{*")
        assert keys and all(119_000 < raw.pttl(key) <= 120_000 for key in keys)
        for key in keys:
            raw.pexpire(key, 5_000)
        assert saver.get_tuple(thread("t")) is not None
        assert list(saver.list(thread("t")))
        assert all(0 < raw.pttl(key) <= 5_000 for key in keys)  # reads did not slide it
        saver.put_writes(stored, [("a", 2)], "task-1")
        assert all(raw.pttl(key) > 119_000 for key in raw.keys(f"{prefix}:lg:{{*"))
    finally:
        saver.close()
        raw.close()


def test_ttl_config_is_checked() -> None:
    for bad in (
        {"default_ttl": 0},
        {"default_ttl": "1"},
        {"refresh_on_read": "no"},
        {"sweep_interval_minutes": 1},
    ):
        with pytest.raises(ConfigurationError):
            RedisSaver("memory://", ttl=bad)
    saver = RedisSaver("memory://", ttl={"default_ttl": 1.5})
    assert saver.config.ttl == 90 and saver.refresh_on_read
    assert RedisSaver("memory://", ttl={"default_ttl": None}).config.ttl is None


def _run(
    saver: RedisSaver, tid: str, run: str, step: int, values: dict[str, Any], parent: Any
) -> Any:
    versions = {k: f"{step}" for k in values}
    config: dict[str, Any] = {"configurable": {"thread_id": tid, "checkpoint_ns": ""}}
    if parent:
        config["configurable"]["checkpoint_id"] = parent["configurable"]["checkpoint_id"]
    cp = _cp(values, versions)
    cp["id"] = f"{step:04d}-{run}"
    return saver.put(config, cp, {"source": "loop", "step": step, "run_id": run}, versions)  # type: ignore[arg-type]


def test_delete_for_runs_across_threads_keeps_what_other_runs_use(
    make_saver: Callable[..., RedisSaver],
) -> None:
    """delete_for_runs removes the run's checkpoints in every thread, with their
    writes, and keeps the channel values a surviving checkpoint still refers to."""
    saver = make_saver()
    a1 = _run(saver, "a", "r1", 1, {"kept": "K", "gone": "G"}, None)
    saver.put_writes(a1, [("gone", "W")], "task-1")
    # r2 changes only "other": its checkpoint refers to r1's blob of "kept"
    cp = _cp({"kept": "K", "other": "O"}, {"kept": "1", "other": "2"})
    cp["id"] = "0002-r2"
    config = {"configurable": {"thread_id": "a", "checkpoint_ns": "", "checkpoint_id": "0001-r1"}}
    a2 = saver.put(config, cp, {"source": "loop", "step": 2, "run_id": "r2"}, {"other": "2"})  # type: ignore[arg-type]
    _run(saver, "b", "r1", 1, {"x": 1}, None)
    _run(saver, "c", "r3", 1, {"x": 1}, None)

    saver.delete_for_runs(["r1", "r1", "nope"])

    left = list(saver.list(thread("a")))
    assert [t.metadata["run_id"] for t in left] == ["r2"]
    assert saver.get_tuple(a1) is None
    survivor = saver.get_tuple(a2)
    assert survivor is not None
    assert survivor.checkpoint["channel_values"] == {"kept": "K", "other": "O"}
    assert saver.get_tuple(thread("b")) is None
    assert saver.get_tuple(thread("c")) is not None
    saver.delete_for_runs([])
    with pytest.raises(InvalidArgumentError):
        saver.delete_for_runs("r2")


@pytest.mark.redis_server
def test_delete_for_runs_leaves_no_orphans_in_redis(redis_server: RedisServer, prefix: str) -> None:
    saver = RedisSaver(redis_server.url, key_prefix=prefix, ttl=100)
    raw = redis.Redis.from_url(redis_server.url)
    try:
        a1 = _run(saver, "a", "r1", 1, {"only": "x" * 100, "shared": "s"}, None)
        saver.put_writes(a1, [("only", "W")], "task-1")
        cp = _cp({"shared": "s", "new": "n"}, {"shared": "1", "new": "2"})
        cp["id"] = "0002-r2"
        config = {
            "configurable": {"thread_id": "a", "checkpoint_ns": "", "checkpoint_id": "0001-r1"}
        }
        saver.put(config, cp, {"source": "loop", "step": 2, "run_id": "r2"}, {"new": "2"})  # type: ignore[arg-type]
        run_key = f"{prefix}:lg:run:{{r1}}"
        assert raw.zrange(run_key, 0, -1) and 99_000 < raw.pttl(run_key) <= 100_000
        index, records, blobs, writes = saver.policy.keys("a")
        assert raw.hlen(blobs) == 3 and raw.zcard(writes) == 1
        saver.delete_for_runs(["r1"])
        assert not raw.exists(run_key)
        assert raw.zcard(index) == 1 and raw.hlen(records) == 1
        assert sorted(raw.hkeys(blobs)) == [b":new:2", b":shared:1"]  # "only" went with r1
        assert raw.zcard(writes) == 0
    finally:
        saver.close()
        raw.close()


def test_keep_last_bounds_a_thread(make_saver: Callable[..., RedisSaver]) -> None:
    saver = make_saver(keep_last=3)
    parent = None
    ids = []
    for i in range(6):
        stored = _put(
            saver,
            "t",
            _cp({"a": i, "b": "same"}, {"a": str(i + 1), "b": "1"}),
            {"a": str(i + 1)} if i else {"a": "1", "b": "1"},
            parent,
        )
        parent = stored["configurable"]["checkpoint_id"]
        saver.put_writes(stored, [("a", i)], f"task-{i}")
        ids.append(parent)
    listed = list(saver.list(thread("t")))
    assert [t.checkpoint["id"] for t in listed] == ids[:2:-1]
    # the blob of 'b' (written by the first, dropped, checkpoint) is still there
    assert all(t.checkpoint["channel_values"]["b"] == "same" for t in listed)
    assert [t.checkpoint["channel_values"]["a"] for t in listed] == [5, 4, 3]
    assert [len(t.pending_writes or []) for t in listed] == [1, 1, 1]


def test_sync_twin(make_saver: Callable[..., RedisSaver]) -> None:
    saver = make_saver()
    first = _put(saver, "s", _cp({"m": [1]}, {"m": "1"}), {"m": "1"})
    second = _put(
        saver,
        "s",
        _cp({"m": [1, 2]}, {"m": "2"}),
        {"m": "2"},
        parent=first["configurable"]["checkpoint_id"],
    )
    saver.put_writes(second, [("m", [3]), ("__error__", "boom")], "task")
    got = saver.get_tuple(thread("s"))
    assert got is not None and got.parent_config is not None
    # writes_sort_key order: (task_path, task_id, idx); special writes have idx < 0
    assert got.pending_writes == [("task", "__error__", "boom"), ("task", "m", [3])]
    assert len(list(saver.list(thread("s"), limit=1))) == 1
    assert len(list(saver.list(thread("s"), before=second))) == 1
    assert [t.metadata["step"] for t in saver.list(thread("s"), filter={"source": "loop"})] == [
        0,
        0,
    ]
    saver.copy_thread("s", "s2")
    assert len(list(saver.list(thread("s2")))) == 2
    saver.prune(["s2"])
    assert len(list(saver.list(thread("s2")))) == 1
    saver.delete_thread("s")
    assert saver.get_tuple(thread("s")) is None


# -- construction and safety -----------------------------------------------------------------


@pytest.mark.redis_server
def test_built_from_a_store_or_a_client(redis_server: RedisServer, prefix: str) -> None:
    store = ConversationStore.from_url(redis_server.url, key_prefix=prefix)
    client = redis.Redis.from_url(redis_server.url)
    try:
        a = RedisSaver(store=store)
        b = RedisSaver(client=client, key_prefix=prefix)
        assert a.connection is store.connection  # the store's connection and circuit
        graph = agent_graph(a, ["hello"])
        graph.invoke({"messages": [HumanMessage("hi")]}, thread("x"))
        got = b.get_tuple(thread("x"))
        assert got is not None
        assert [m.content for m in got.checkpoint["channel_values"]["messages"]] == ["hi", "hello"]
        with pytest.raises(ConfigurationError):
            RedisSaver(client=redis.Redis.from_url(redis_server.url, decode_responses=True))
        a.close()
        b.close()
    finally:
        store.close()
        client.close()


def test_no_pickle() -> None:
    with pytest.raises(ConfigurationError):
        RedisSaver("memory://", serde=JsonPlusSerializer(pickle_fallback=True))
    saver = RedisSaver("memory://")
    with pytest.raises(SerializationError):
        saver.policy.loads(b"pickle", b"\x80\x04N.", "t")

    class Unknown:
        pass

    with pytest.raises(TypeError):  # not msgpack-able and no pickle fallback
        _put(saver, "t", _cp({"a": Unknown()}, {"a": "1"}), {"a": "1"})


def _graph_run(saver: RedisSaver, tid: str, user: str | None) -> None:
    config: dict[str, Any] = {"configurable": {"thread_id": tid}}
    if user:
        config["configurable"]["user_id"] = user
    agent_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config)


async def test_list_across_threads_and_by_owner(make_saver: Callable[..., RedisSaver]) -> None:
    """list(None, ...) lists every thread's checkpoints through the thread index (no
    scan); filter={"user_id": ...} reads only that owner's index (configurable.user_id,
    else the saver's owner=)."""
    saver = make_saver()
    _graph_run(saver, "t1", "u1")
    _graph_run(saver, "t2", "u2")
    _graph_run(saver, "t3", "u1")
    per_thread = {t: len(list(saver.list(thread(t)))) for t in ("t1", "t2", "t3")}
    everything = list(saver.list(None))
    assert len(everything) == sum(per_thread.values())
    assert {t.config["configurable"]["thread_id"] for t in everything} == {"t1", "t2", "t3"}
    mine = list(saver.list(None, filter={"user_id": "u1"}))
    assert {t.config["configurable"]["thread_id"] for t in mine} == {"t1", "t3"}
    assert len(mine) == per_thread["t1"] + per_thread["t3"]
    assert all(t.metadata["user_id"] == "u1" for t in mine)
    assert len(list(saver.list(None, limit=2))) == 2
    assert [t async for t in saver.alist(None, filter={"user_id": "u2"})] == list(
        saver.list(None, filter={"user_id": "u2"})
    )
    saver.delete_thread("t3")
    assert {t.config["configurable"]["thread_id"] for t in saver.list(None)} == {"t1", "t2"}
    assert {
        t.config["configurable"]["thread_id"] for t in saver.list(None, filter={"user_id": "u1"})
    } == {"t1"}
    owned = make_saver(owner="u9")
    _graph_run(owned, "t4", None)
    found = list(owned.list(None, filter={"user_id": "u9"}))
    assert found and {t.config["configurable"]["thread_id"] for t in found} == {"t4"}
    with pytest.raises(InvalidArgumentError):
        make_saver(owner="")


@pytest.mark.redis_server
def test_expired_threads_leave_the_thread_index(redis_server: RedisServer, prefix: str) -> None:
    saver = RedisSaver(redis_server.url, key_prefix=prefix)
    raw = redis.Redis.from_url(redis_server.url)
    try:
        _graph_run(saver, "a", "u1")
        _graph_run(saver, "b", "u1")
        assert raw.zcard(f"{prefix}:lg:threads") == 2
        assert raw.zcard(f"{prefix}:lg:own:{{u1}}") == 2
        raw.delete(*saver.policy.keys("a"))  # as if its TTL ran out
        assert {t.config["configurable"]["thread_id"] for t in saver.list(None)} == {"b"}
        assert raw.zrange(f"{prefix}:lg:threads", 0, -1) == [b"b"]
        list(saver.list(None, filter={"user_id": "u1"}))
        assert raw.zrange(f"{prefix}:lg:own:{{u1}}", 0, -1) == [b"b"]
    finally:
        saver.close()
        raw.close()


# -- real graphs ------------------------------------------------------------------------------


def test_graph_sync_resumed_by_a_new_saver(url: str, prefix: str) -> None:
    first = RedisSaver(url, key_prefix=prefix)
    agent_graph(first, ["one"]).invoke({"messages": [HumanMessage("a")]}, thread("g"))
    if url != "memory://":  # memory does not outlive its saver
        first.close()
    again = RedisSaver(url, key_prefix=prefix) if url != "memory://" else first
    graph = agent_graph(again, ["two"])  # like a restarted process
    out = graph.invoke({"messages": [HumanMessage("b")]}, thread("g"))
    assert [m.content for m in out["messages"]] == ["a", "one", "b", "two"]
    history = list(graph.get_state_history(thread("g")))
    assert len(history) == 6  # input, loop per turn... every checkpoint listed
    again.close()
    with pytest.raises(InvalidArgumentError, match="closed"):
        again.get_tuple(thread("g"))


async def test_graph_async(make_saver: Callable[..., RedisSaver]) -> None:
    saver = make_saver(keep_last=4)
    graph = agent_graph(saver, ["r1", "r2", "r3"])
    for i in range(3):
        out = await graph.ainvoke({"messages": [HumanMessage(f"q{i}")]}, thread("ag"))
    assert [m.content for m in out["messages"]] == ["q0", "r1", "q1", "r2", "q2", "r3"]
    state = await graph.aget_state(thread("ag"))
    assert len(state.values["messages"]) == 6
    assert len([s async for s in graph.aget_state_history(thread("ag"))]) == 4


@pytest.mark.redis_server
def test_given_only_one_kind_of_client(redis_server: RedisServer, prefix: str) -> None:
    """Only an asyncio client: the sync methods raise a clear ConfigurationError. Only a
    sync client: the async methods run the sync calls in a worker thread."""
    sync_client = redis.Redis.from_url(redis_server.url)
    sync_only = RedisSaver(client=sync_client, key_prefix=prefix)
    stored = _put(sync_only, "t", _cp({"a": 1}, {"a": "1"}), {"a": "1"})

    async def use_async_only() -> Any:
        async_client = redis.asyncio.Redis.from_url(redis_server.url)
        saver = RedisSaver(client=async_client, key_prefix=prefix)  # an asyncio client= is taken
        try:
            with pytest.raises(ConfigurationError, match="only an async client"):
                saver.get_tuple(thread("t"))
            return await saver.aget_tuple(thread("t")), await sync_only.aget_tuple(stored)
        finally:
            await saver.aclose()
            await async_client.aclose()

    from_async, from_thread = asyncio.run(use_async_only())
    assert from_async is not None and from_thread is not None
    assert from_async.checkpoint["id"] == from_thread.checkpoint["id"]
    sync_only.close()
    sync_client.close()


@pytest.mark.redis_server
def test_shares_the_connection_of_its_url_and_of_a_given_store(
    redis_server: RedisServer, prefix: str
) -> None:
    store = ConversationStore.from_url(redis_server.url, key_prefix=prefix)
    connection = store.connection
    assert connection is not None and connection.circuit is not None
    users = connection.users
    saver = RedisSaver(redis_server.url, key_prefix=prefix)
    given = RedisSaver(store=store)
    assert saver.connection is connection and given.connection is connection
    assert connection.users == users + 2
    _put(given, "t", _cp({"a": 1}, {"a": "1"}), {"a": "1"})
    given.close()
    saver.close()
    assert connection.users == users  # each saver gave back its share, nothing more
    assert store.append("s", [{"role": "user", "content": "still open"}]) == 1
    store.close()


@pytest.mark.redis_server
def test_async_saver_across_event_loops(redis_server: RedisServer, prefix: str) -> None:
    """One saver used by two asyncio.run calls: each loop gets its own asyncio client."""
    saver = RedisSaver(redis_server.url, key_prefix=prefix)
    graph = agent_graph(saver, ["one", "two"])
    for question in ("a", "b"):
        out = asyncio.run(graph.ainvoke({"messages": [HumanMessage(question)]}, thread("l")))
    assert [m.content for m in out["messages"]] == ["a", "one", "b", "two"]
    saver.close()


def test_mirror_is_bounded_by_threads_and_bytes() -> None:
    """The fallback's checkpoint mirror keeps the most recently used threads, within
    ``mirror_sessions`` threads and about ``mirror_max_bytes`` bytes; every write it
    serves is handed back to be journaled, reads are not."""
    from chatkeep_langgraph._layout import Delete, MemoryCheckpoints, Page, Put

    def put(tid: str, size: int) -> Put:
        return Put(tid, b":1", b"\n{}\n" + b"x" * size, b":", ((b":c:1", b"v"),))

    def held(mirror: MemoryCheckpoints, tid: str) -> bool:
        return bool(mirror.do(Page(tid, b"", b"\xff", 10)))

    by_count = MemoryCheckpoints(ttl_ms=0, fixed=False, max_threads=2)
    for tid in ("a", "b", "c"):
        op = put(tid, 10)
        assert by_count.serve(op) == (0, op)
    assert [held(by_count, t) for t in "abc"] == [False, True, True]
    by_bytes = MemoryCheckpoints(ttl_ms=0, fixed=False, max_bytes=2_500)
    for tid in ("a", "b", "c"):
        by_bytes.absorb(put(tid, 1_000), 0)
    assert [held(by_bytes, t) for t in "abc"] == [False, True, True]
    result, journaled = by_bytes.serve(Page("c", b"", b"\xff", 1))
    assert len(result) == 1 and journaled is None
    assert by_bytes.serve(Delete("c")) == (1, Delete("c"))
    by_bytes.absorb(put("d", 5_000), 0)  # one thread larger than the bound is kept
    assert held(by_bytes, "d") and not held(by_bytes, "b")
