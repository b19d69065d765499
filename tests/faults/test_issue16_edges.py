"""Edges of LangGraph persistence (issue 16) and of the CLI's kinds of data (issue 17),
found by a red team on real servers; each failed on the first version of these
features (or is marked xfail with the reason it is not fixed)."""

from __future__ import annotations

import base64
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest
import redis

pytest.importorskip("langgraph")
pytest.importorskip("click")

from langchain_core.messages import HumanMessage

from chatkeep import ChatkeepError, ConfigurationError, MemoryStore
from chatkeep_langgraph import RedisSaver, RedisStore
from tests.adapters.langgraph.helpers import agent_graph
from tests.cli.conftest import invoke_cli
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis_server


def _raw(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10)


def _left(server: RedisServer, prefix: str, needle: bytes) -> dict[str, Any]:
    """Every key of ``prefix`` whose name or content holds ``needle``."""
    raw = _raw(server)
    found: dict[str, Any] = {}
    for key in raw.scan_iter(match=f"{prefix}:*", count=1000):
        kind = raw.type(key)
        if kind == b"zset":
            content: Any = raw.zrange(key, 0, -1)
        elif kind == b"hash":
            content = raw.hgetall(key)
        elif kind == b"list":
            content = raw.lrange(key, 0, -1)
        else:
            content = raw.get(key)
        if needle in key or needle in repr(content).encode():
            found[key.decode()] = content
    return found


def _purge(server: RedisServer, prefix: str, owner: str) -> str:
    done = invoke_cli(["--url", server.url, "--prefix", prefix, "purge", "--owner", owner, "--yes"])
    assert done.code == 0, done.err
    return done.out


# -- a data-protection purge leaves nothing of the owner --------------------------------


def test_purge_by_owner_leaves_no_run_index_entry_of_the_owners_threads(
    redis_server: RedisServer, prefix: str
) -> None:
    """The run index (``<prefix>:lg:run:{<run>}``, for ``delete_for_runs``) kept
    ``<thread>\\n<checkpoint>`` of a purged thread (until the thread TTL, forever with
    ttl=None): the purged user's thread ids stayed in Redis."""
    saver = RedisSaver(redis_server.url, key_prefix=prefix, fallback="raise", ttl=None)
    config = {
        "configurable": {"thread_id": "thread-of-zoe", "user_id": "zoe"},
        "metadata": {"run_id": "run-1"},
    }
    agent_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config)
    assert _left(redis_server, prefix, b"thread-of-zoe")
    assert "deleted 1 LangGraph thread of owner 'zoe'" in _purge(redis_server, prefix, "zoe")
    assert _left(redis_server, prefix, b"thread-of-zoe") == {}
    saver.close()


def test_purge_by_owner_leaves_no_index_entry_of_the_owners_expired_threads(
    redis_server: RedisServer, prefix: str
) -> None:
    """A thread of the owner that expired stayed in ``<prefix>:lg:own:{<owner>}`` (and
    the thread index) after a purge: the listing skipped it, so nothing removed it."""
    saver = RedisSaver(redis_server.url, key_prefix=prefix, fallback="raise", ttl=1)
    config = {"configurable": {"thread_id": "old-thread-of-zoe", "user_id": "zoe"}}
    agent_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config)
    saver.close()
    deadline = time.monotonic() + 10
    while _raw(redis_server).exists(f"{prefix}:lg:{{old-thread-of-zoe}}:i"):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert _left(redis_server, prefix, b"old-thread-of-zoe")  # the index entries
    _purge(redis_server, prefix, "zoe")
    assert _left(redis_server, prefix, b"old-thread-of-zoe") == {}
    assert _left(redis_server, prefix, b"zoe") == {}


def test_purge_by_owner_leaves_no_registry_entry_of_the_owners_store_namespaces(
    redis_server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The LangGraph store's registry entry of a namespace the owner emptied (its items
    deleted or expired) survived the purge, with the owner in it; and the memory
    registry (``<prefix>:mem:namespaces``) kept the purged namespaces' names."""
    store = RedisStore(redis_server.url, key_prefix=prefix, fallback="raise", namespace_owner=1)
    store.put(("memories", "zoe"), "k1", {"text": "zoe likes tea"})
    store.put(("drafts", "zoe"), "k", {"text": "scratch"})
    store.delete(("drafts", "zoe"), "k")
    # the emptied namespace's entry is over a minute old (no put racing with the purge)
    import chatkeep_langgraph._kinds as kinds

    monkeypatch.setattr(kinds, "REGISTRY_GRACE_MS", 0)
    out = _purge(redis_server, prefix, "zoe")
    assert "deleted 1 LangGraph store namespace of owner 'zoe'" in out
    assert _left(redis_server, prefix, b"zoe") == {}
    store.close()


def test_a_freshly_emptied_store_namespace_stays_registered_for_a_minute(
    redis_server: RedisServer, prefix: str
) -> None:
    """The other side of the cleanup above: a listing racing with a put (which registers
    the namespace, then writes its items) must not unregister it."""
    store = RedisStore(redis_server.url, key_prefix=prefix, fallback="raise", namespace_owner=1)
    store.put(("drafts", "zoe"), "k", {"text": "scratch"})
    store.delete(("drafts", "zoe"), "k")
    listed = invoke_cli(
        ["--url", redis_server.url, "--prefix", prefix, "sessions", "--owner", "zoe", "--json"]
    )
    assert listed.code == 0, listed.err
    assert store.memory.get(("langgraph-namespaces",), "drafts.zoe") is not None
    store.close()


def test_an_ownerless_store_does_not_erase_the_owner_of_a_namespace(
    redis_server: RedisServer, prefix: str
) -> None:
    """A RedisStore made without owner=/namespace_owner= (a batch job, an admin tool)
    writing into a namespace rewrote its registry entry without the owner: the
    namespace dropped out of ``purge --owner``."""
    mine = RedisStore(redis_server.url, key_prefix=prefix, fallback="raise", namespace_owner=1)
    mine.put(("memories", "zoe"), "k1", {"text": "zoe likes tea"})
    other = RedisStore(redis_server.url, key_prefix=prefix, fallback="raise")
    other.put(("memories", "zoe"), "k2", {"text": "summary written by a job"})
    out = _purge(redis_server, prefix, "zoe")
    assert "deleted 1 LangGraph store namespace of owner 'zoe'" in out
    assert mine.get(("memories", "zoe"), "k2") is None
    mine.close()
    other.close()


# -- export -> import round trips -------------------------------------------------------


def test_an_imported_thread_keeps_every_checkpoint_of_a_run_in_the_run_index(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    """Import re-created one run index entry per run (a dict keyed by run id), so
    ``delete_for_runs`` on the imported thread left all but one of the run's
    checkpoints."""
    saver = RedisSaver(redis_server.url, key_prefix=prefix, fallback="raise")
    config = {"configurable": {"thread_id": "t", "user_id": "zoe"}, "metadata": {"run_id": "r1"}}
    agent_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config)
    exported = tmp_path / "zoe.jsonl"
    base = ["--url", redis_server.url, "--prefix", prefix]
    assert invoke_cli([*base, "export", "--owner", "zoe", "-o", str(exported)]).code == 0
    copy = prefix + "copy"
    done = invoke_cli(["--url", redis_server.url, "--prefix", copy, "import", str(exported)])
    assert done.code == 0, done.err
    copied = RedisSaver(redis_server.url, key_prefix=copy, fallback="raise")
    assert len(list(copied.list({"configurable": {"thread_id": "t"}}))) > 1
    copied.delete_for_runs(["r1"])
    assert list(copied.list({"configurable": {"thread_id": "t"}})) == []
    saver.close()
    copied.close()


# -- LangGraph store: embeddings that are not vectors -----------------------------------


@pytest.mark.parametrize("bad", [math.nan, math.inf, 1e39])
def test_langgraph_store_refuses_embeddings_that_are_not_finite(
    redis_server: RedisServer, prefix: str, bad: float
) -> None:
    """RedisStore stored NaN/infinite vectors and searched with a NaN query: every
    score was NaN and the order arbitrary."""

    def embed(texts: list[str]) -> list[list[float]]:
        return [[bad, 1.0] if "bad" in text else [1.0, 0.0] for text in texts]

    index: Any = {"dims": 2, "embed": embed, "fields": ["text"]}
    store = RedisStore(redis_server.url, key_prefix=prefix, fallback="raise", index=index)
    with pytest.raises(ConfigurationError, match="finite"):
        store.put(("docs",), "k", {"text": "bad"})
    assert store.get(("docs",), "k") is None
    store.put(("docs",), "good", {"text": "good"})
    with pytest.raises(ChatkeepError, match="finite"):
        store.search(("docs",), query="bad")
    store.close()


def test_memory_namespaces_keep_their_embeddings_through_export_and_import(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    def embed(texts: list[str]) -> list[list[float]]:
        return [[1.0, float(len(text))] for text in texts]

    memory = MemoryStore.from_url(
        redis_server.url, key_prefix=prefix, fallback="raise", embed=embed
    )
    memory.put(("user", "zoe"), "fact", {"text": "zoe likes tea"})
    assert [hit.key for hit in memory.search(("user", "zoe"), "tea")] == ["fact"]
    exported = tmp_path / "all.jsonl"
    base = ["--url", redis_server.url, "--prefix", prefix]
    assert invoke_cli([*base, "export", "-o", str(exported)]).code == 0
    copy = prefix + "copy"
    assert (
        invoke_cli(["--url", redis_server.url, "--prefix", copy, "import", str(exported)]).code == 0
    )
    copied = MemoryStore.from_url(redis_server.url, key_prefix=copy, fallback="raise", embed=embed)
    assert copied.get(("user", "zoe"), "fact") == {"text": "zoe likes tea"}
    assert [hit.key for hit in copied.search(("user", "zoe"), "tea")] == ["fact"]
    memory.close()
    copied.close()


def test_encrypted_embeddings_are_exported_opened_and_sealed_again_on_import(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    """An export holds the embeddings opened (as it holds values); an import seals them
    under its own key, bound to where they land."""

    def embed(texts: list[str]) -> list[list[float]]:
        return [[float("tea" in t), float("coffee" in t), 0.01] for t in texts]

    key1, key2 = bytes(range(32)), bytes(range(40, 72))
    with MemoryStore.from_url(
        redis_server.url, key_prefix=prefix, embed=embed, encryption_keys={"k1": key1}
    ) as memory:
        memory.put(("user", "zoe"), "a", "green tea")
        memory.put(("user", "zoe"), "b", "black coffee")
    exported = tmp_path / "sealed.jsonl"
    env1 = {"CHATKEEP_ENCRYPTION_KEYS": f"k1:{base64.b64encode(key1).decode()}"}
    base = ["--url", redis_server.url]
    assert (
        invoke_cli([*base, "--prefix", prefix, "export", "-o", str(exported)], env=env1).code == 0
    )
    copy = prefix + "copy"
    env2 = {"CHATKEEP_ENCRYPTION_KEYS": f"k2:{base64.b64encode(key2).decode()}"}
    assert invoke_cli([*base, "--prefix", copy, "import", str(exported)], env=env2).code == 0
    raw = redis.Redis.from_url(redis_server.url)
    try:
        for key in raw.scan_iter(match=f"{copy}:mem:*:v:*"):
            blob = raw.hget(key, "e")
            assert blob[:4] == b"\x00ck1" and blob[6 : 6 + blob[5]] == b"k2"
    finally:
        raw.close()
    with MemoryStore.from_url(
        redis_server.url, key_prefix=copy, embed=embed, encryption_keys={"k2": key2}
    ) as copied:
        assert [hit.key for hit in copied.search(("user", "zoe"), "coffee", limit=1)] == ["b"]


def _import(server: RedisServer, prefix: str, path: Path, lines: list[dict[str, Any]]) -> str:
    header = {"chatkeep_export": 1, "record_version": 1, "prefix": prefix}
    path.write_text("".join(json.dumps(line) + "\n" for line in [header, *lines]))
    done = invoke_cli(["--url", server.url, "--prefix", prefix, "import", str(path)])
    assert "Redis error" not in done.err, done.err
    return done.err + done.out


def test_an_import_line_with_a_ttl_out_of_range_is_a_bad_line_that_writes_nothing(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    """A thread line with ``"ttl": 1e300`` stopped the whole import with a Redis error
    (PEXPIRE out of range) after its script had begun writing; a namespace line whose
    second item had such a TTL wrote its first item (and a LangGraph line its registry
    entry) before being reported bad."""
    saver = RedisSaver(redis_server.url, key_prefix=prefix, fallback="raise")
    config = {"configurable": {"thread_id": "t", "user_id": "zoe"}}
    agent_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config)
    exported = tmp_path / "zoe.jsonl"
    base = ["--url", redis_server.url, "--prefix", prefix]
    assert invoke_cli([*base, "export", "--owner", "zoe", "-o", str(exported)]).code == 0
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    [thread_line] = [line for line in lines if line.get("kind") == "langgraph-threads"]
    thread_line["data"]["ttl"] = 1e300
    copy = prefix + "copy"
    two = [{"key": "a", "value": 1, "ttl": 60}, {"key": "b", "value": 2, "ttl": 1e300}]
    out = _import(
        redis_server,
        copy,
        tmp_path / "bad.jsonl",
        [
            thread_line,
            {"kind": "memory", "id": "user:zoe", "owner": "zoe", "data": {"items": two}},
            {
                "kind": "langgraph-store",
                "id": "memories.zoe",
                "owner": "zoe",
                "data": {"items": [{"key": "k", "record": {"value": {}}, "ttl": 1e300}]},
            },
            {"kind": "memory", "id": "user:ok", "owner": "ok", "data": {"items": two[:1]}},
        ],
    )
    assert "line 2: langgraph-threads" in out and "line 3: memory" in out
    assert "line 4: langgraph-store" in out
    assert sorted(_raw(redis_server).scan_iter(match=f"{copy}:*")) == [
        f"{copy}:mem:namespaces".encode(),
        f"{copy}:mem:{{user:ok}}:i".encode(),
        f"{copy}:mem:{{user:ok}}:v:a".encode(),
    ]
    saver.close()


# -- hostile ids on a Redis Cluster: export, purge, import -------------------------------

HOSTILE = ["a:b{c}*?[x] y", "ü\u200bé\u00a0中", "x" * 500, "t\x00part", "}{", "%41"]


def test_hostile_ids_round_trip_and_purge_on_a_cluster(
    redis_cluster: Any, prefix: str, tmp_path: Path
) -> None:
    """Thread ids, owners, namespace labels and keys with colons, braces, glob
    characters, unicode, NUL, percent signs and 500 characters: exported, purged by
    owner (nothing of the owner left in any slot) and imported back equal."""
    url = redis_cluster.url
    options: dict[str, Any] = {"key_prefix": prefix, "fallback": "raise"}
    owner = "own{er}:ü %"
    saver = RedisSaver(url, **options)
    store = RedisStore(url, namespace_owner=1, **options)
    memory = MemoryStore.from_url(url, **options)
    for n, tid in enumerate(HOSTILE):
        config = {
            "configurable": {"thread_id": tid, "user_id": owner},
            "metadata": {"run_id": f"run{{{n}}}:x"},
        }
        agent_graph(saver).invoke({"messages": [HumanMessage(f"hi {n}")]}, config)
        label = tid.replace("\x00", "") or "z"
        store.put(("memories", owner, label[:400]), f"k:{tid}", {"text": tid})
        memory.put(("user", owner, tid), f"k{{{tid}}}", {"text": tid})
    before = {tid: saver.get_tuple({"configurable": {"thread_id": tid}}) for tid in HOSTILE}
    base = ["--url", url, "--prefix", prefix]
    listed = json.loads(invoke_cli([*base, "sessions", "--kind", "all", "--json"]).out)
    counts: dict[str, int] = {}
    for row in listed:
        counts[row["kind"]] = counts.get(row["kind"], 0) + 1
        assert row["owner"] == owner
    assert counts == {"langgraph-threads": 6, "langgraph-store": 6, "memory": 6}
    exported = tmp_path / "all.jsonl"
    assert invoke_cli([*base, "export", "--owner", owner, "-o", str(exported)]).code == 0
    purged = invoke_cli([*base, "purge", "--owner", owner, "--yes"])
    assert purged.code == 0, purged.err
    raw = redis.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
    left = sorted(k for k in raw.scan_iter(match=f"{prefix}:*", target_nodes="all"))
    # nothing of the owner: only the LangGraph registry's empty bookkeeping may stay
    assert [k for k in left if b"own" in k or b"memories" in k or b"lg:" in k] == []
    for key in left:
        if raw.type(key) == b"zset":
            assert all(b"own" not in m for m in raw.zrange(key, 0, -1)), key
    imported = invoke_cli([*base, "import", str(exported)])
    assert imported.code == 0, imported.err
    assert "0 bad lines" in imported.err + imported.out
    for tid in HOSTILE:
        after = saver.get_tuple({"configurable": {"thread_id": tid}})
        assert after is not None and after.checkpoint == before[tid].checkpoint
        assert memory.get(("user", owner, tid), f"k{{{tid}}}") == {"text": tid}
        label = tid.replace("\x00", "") or "z"
        item = store.get(("memories", owner, label[:400]), f"k:{tid}")
        assert item is not None and item.value == {"text": tid}
    saver.delete_for_runs(["run{0}:x"])
    assert saver.get_tuple({"configurable": {"thread_id": HOSTILE[0]}}) is None
    for closing in (saver, store, memory):
        closing.close()


def test_a_batch_whose_owner_function_fails_writes_nothing(
    redis_server: RedisServer, prefix: str
) -> None:
    """``namespace_owner=`` was called while the batch was being written: a bad owner
    for its second namespace raised after the first namespace's items were stored."""
    from langgraph.store.base import PutOp

    def owner_of(namespace: tuple[str, ...]) -> Any:
        return 42 if namespace[0] == "b" else "zoe"  # not a str: refused

    store = RedisStore(
        redis_server.url, key_prefix=prefix, fallback="raise", namespace_owner=owner_of
    )
    with pytest.raises(ChatkeepError, match="owner"):
        store.batch([PutOp(("a",), "k", {"x": 1}), PutOp(("b",), "k", {"x": 2})])
    assert store.get(("a",), "k") is None
    assert store.memory.list(("langgraph-namespaces",)) == []
    store.close()


def test_a_least_privilege_user_purges_and_restores_everything_of_an_owner(
    redis_server: RedisServer, prefix: str, least_privilege: str, tmp_path: Path
) -> None:
    """The purge and import of LangGraph threads, store namespaces and memory run with
    only ``acl_rules(prefix)`` (the run index, the registries, the thread dump)."""
    options: dict[str, Any] = {"key_prefix": prefix, "fallback": "raise"}
    saver = RedisSaver(least_privilege, ttl=None, **options)
    store = RedisStore(least_privilege, namespace_owner=1, **options)
    memory = MemoryStore.from_url(least_privilege, **options)
    config = {"configurable": {"thread_id": "t", "user_id": "zoe"}, "metadata": {"run_id": "r"}}
    agent_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config)
    store.put(("memories", "zoe"), "k", {"text": "tea"})
    memory.put(("user", "zoe"), "k", "v")
    base = ["--url", least_privilege, "--prefix", prefix]
    exported = tmp_path / "zoe.jsonl"
    assert invoke_cli([*base, "export", "--owner", "zoe", "-o", str(exported)]).code == 0
    purged = invoke_cli([*base, "purge", "--owner", "zoe", "--yes"])
    assert purged.code == 0, purged.err
    assert _left(redis_server, prefix, b"zoe") == {}
    assert _left(redis_server, prefix, b"t\n") == {}
    imported = invoke_cli([*base, "import", str(exported)])
    assert imported.code == 0 and "0 bad lines" in imported.err, imported.err
    assert saver.get_tuple({"configurable": {"thread_id": "t"}}) is not None
    assert memory.get(("user", "zoe"), "k") == "v"
    for closing in (saver, store, memory):
        closing.close()


def test_a_checkpoint_that_cannot_be_decoded_does_not_block_listing_export_or_purge(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    """One checkpoint record whose header is not JSON made ``sessions --kind
    langgraph-threads`` and ``export`` fail ("stored value is not valid JSON"); a
    purge must not be blocked by it either (the design: a record that cannot be
    decoded is skipped, never a crash of the read)."""
    saver = RedisSaver(redis_server.url, key_prefix=prefix, fallback="raise")
    for tid in ("broken", "fine"):
        config = {"configurable": {"thread_id": tid, "user_id": "zoe"}}
        agent_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config)
    raw = _raw(redis_server)
    records = f"{prefix}:lg:{{broken}}:c"
    for field, record in raw.hgetall(records).items():
        refs, _, payload = record.split(b"\n", 2)
        raw.hset(records, field, refs + b"\n{not json\n" + payload)
    base = ["--url", redis_server.url, "--prefix", prefix]
    listed = invoke_cli([*base, "sessions", "--kind", "langgraph-threads", "--json"])
    assert listed.code == 0, listed.err
    assert sorted(row["id"] for row in json.loads(listed.out)) == ["broken", "fine"]
    exported = invoke_cli([*base, "export", "-o", str(tmp_path / "all.jsonl")])
    assert exported.code == 0, exported.err
    purged = invoke_cli([*base, "purge", "--owner", "zoe", "--yes"])
    assert purged.code == 0, purged.err
    assert "deleted 2 LangGraph threads of owner 'zoe'" in purged.out
    assert _left(redis_server, prefix, b"zoe") == {}
    saver.close()


def test_a_store_value_that_cannot_be_decoded_does_not_block_the_owners_purge(
    redis_server: RedisServer, prefix: str
) -> None:
    """One LangGraph store value that is not JSON made the listing of store
    namespaces raise, so ``purge --owner`` of its owner failed and deleted nothing."""
    store = RedisStore(redis_server.url, key_prefix=prefix, fallback="raise", namespace_owner=1)
    store.put(("memories", "zoe"), "k", {"text": "tea"})
    store.put(("memories", "zoe"), "k2", {"text": "coffee"})
    _raw(redis_server).hset(f"{prefix}:mem:{{memories:zoe}}:v:k", "d", b"{not json")
    base = ["--url", redis_server.url, "--prefix", prefix]
    listed = invoke_cli([*base, "sessions", "--kind", "langgraph-store", "--json"])
    assert listed.code == 0, listed.err
    assert [(row["id"], row["count"]) for row in json.loads(listed.out)] == [("memories.zoe", 2)]
    purged = invoke_cli([*base, "purge", "--owner", "zoe", "--yes"])
    assert purged.code == 0, purged.err
    assert _left(redis_server, prefix, b"zoe") == {}
    store.close()


def test_delete_thread_leaves_no_id_of_the_thread(redis_server: RedisServer, prefix: str) -> None:
    saver = RedisSaver(redis_server.url, key_prefix=prefix, fallback="raise", ttl=None)
    config = {
        "configurable": {"thread_id": "thread-of-zoe", "user_id": "zoe"},
        "metadata": {"run_id": "run-1"},
    }
    agent_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config)
    saver.delete_thread("thread-of-zoe")
    assert _left(redis_server, prefix, b"thread-of-zoe") == {}
    saver.close()


def test_delete_thread_on_the_local_backend_leaves_it_in_no_index() -> None:
    """memory:// (and the fallback mirror): a deleted thread stays in no owner's index
    and no run's entries (listing would hide them; a long-lived process would keep
    them forever)."""
    saver = RedisSaver("memory://", ttl=None)
    config = {
        "configurable": {"thread_id": "thread-of-zoe", "user_id": "zoe"},
        "metadata": {"run_id": "run-1"},
    }
    agent_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config)
    local = saver._local  # the backend's own state: nothing public shows stale entries
    assert "thread-of-zoe" in local._index["zoe"] and local._runs["run-1"]
    saver.delete_thread("thread-of-zoe")
    assert all("thread-of-zoe" not in threads for threads in local._index.values())
    assert "run-1" not in local._runs
    saver.close()


def test_listing_threads_pages_past_hundreds_of_stale_index_entries(
    redis_server: RedisServer, prefix: str
) -> None:
    """Stale entries leave the index while it is paged: every live thread is still
    listed once, whatever their order among the stale ones."""
    saver = RedisSaver(redis_server.url, key_prefix=prefix, fallback="raise")
    for tid in ("a", "b", "c"):
        config = {"configurable": {"thread_id": tid, "user_id": "zoe"}}
        agent_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config)
    raw = _raw(redis_server)
    live = raw.zrange(f"{prefix}:lg:own:{{zoe}}", 0, -1, withscores=True)
    stale = {f"gone-{n}": float(n) for n in range(450)}  # oldest
    stale.update({f"gone-new-{n}": 4e12 + n for n in range(450)})  # newest
    for index in (f"{prefix}:lg:own:{{zoe}}", f"{prefix}:lg:threads"):
        raw.zadd(index, stale)
        raw.zadd(index, {live[1][0]: 2e12})  # one live thread among the stale
    base = ["--url", redis_server.url, "--prefix", prefix]
    for owner in (["--owner", "zoe"], []):
        listed = invoke_cli([*base, "sessions", "--kind", "langgraph-threads", *owner, "--json"])
        assert listed.code == 0, listed.err
        assert sorted(row["id"] for row in json.loads(listed.out)) == ["a", "b", "c"]
    assert raw.zcard(f"{prefix}:lg:own:{{zoe}}") == 3
    assert raw.zcard(f"{prefix}:lg:threads") == 3
    saver.close()


def test_a_user_namespace_of_an_ownerless_langgraph_store_is_purged_with_its_user(
    redis_server: RedisServer, prefix: str
) -> None:
    """A ``("user", U, ...)`` namespace belongs to U in chatkeep's long-term memory, and
    ``purge --owner U`` deletes it. Written by a RedisStore made without owner options,
    the LangGraph kind claimed it (so the memory kind left it alone) but gave it no
    owner: the purge left the user's memories behind."""
    store = RedisStore(redis_server.url, key_prefix=prefix, fallback="raise")
    store.put(("user", "zoe"), "k", {"text": "zoe's secret"})
    store.put(("user", "zoe", "notes"), "k", {"text": "more"})
    base = ["--url", redis_server.url, "--prefix", prefix]
    listed = invoke_cli([*base, "sessions", "--owner", "zoe"])
    assert "2 LangGraph store namespaces" in listed.out, listed.out
    out = _purge(redis_server, prefix, "zoe")
    assert "deleted 2 LangGraph store namespaces of owner 'zoe'" in out
    assert store.get(("user", "zoe"), "k") is None
    assert _left(redis_server, prefix, b"zoe") == {}
    store.close()


@pytest.mark.parametrize("deployment", ["tls", "sentinel"])
def test_purge_and_import_of_an_owner_over_tls_and_sentinel(
    deployment: str, request: pytest.FixtureRequest, prefix: str, tmp_path: Path
) -> None:
    if deployment == "tls":
        url = request.getfixturevalue("tls_redis").url()
    else:
        url = request.getfixturevalue("redis_sentinel").url
    options: dict[str, Any] = {"key_prefix": prefix, "fallback": "raise"}
    saver = RedisSaver(url, **options)
    store = RedisStore(url, namespace_owner=1, **options)
    memory = MemoryStore.from_url(url, **options)
    config = {"configurable": {"thread_id": "t", "user_id": "zoe"}, "metadata": {"run_id": "r"}}
    agent_graph(saver).invoke({"messages": [HumanMessage("hi")]}, config)
    store.put(("memories", "zoe"), "k", {"text": "tea"})
    memory.put(("user", "zoe"), "k", "v")
    base = ["--url", url, "--prefix", prefix]
    exported = tmp_path / "zoe.jsonl"
    assert invoke_cli([*base, "export", "--owner", "zoe", "-o", str(exported)]).code == 0
    purged = invoke_cli([*base, "purge", "--owner", "zoe", "--yes"])
    assert purged.code == 0, purged.err
    listed = invoke_cli([*base, "sessions", "--kind", "all", "--json"])
    assert json.loads(listed.out) == []
    assert saver.get_tuple({"configurable": {"thread_id": "t"}}) is None
    imported = invoke_cli([*base, "import", str(exported)])
    assert imported.code == 0 and "0 bad lines" in imported.err, imported.err
    assert saver.get_tuple({"configurable": {"thread_id": "t"}}) is not None
    item = store.get(("memories", "zoe"), "k")
    assert item is not None and item.value == {"text": "tea"}
    assert memory.get(("user", "zoe"), "k") == "v"
    for closing in (saver, store, memory):
        closing.close()


# -- MemoryStore search: a value changing between its embedding's read and its own ------


def _search_with_a_write_between(
    redis_server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch, write: Any
) -> list[Any]:
    """``search`` with ``write(memory)`` run after the embeddings were read and
    ranked, before the values are read."""
    import chatkeep.memory.store as memory_module

    def embed(texts: list[str]) -> list[list[float]]:
        return [[float("tea" in t), float("coffee" in t), 0.01] for t in texts]

    memory = MemoryStore.from_url(
        redis_server.url, key_prefix=prefix, fallback="raise", embed=embed
    )
    memory.put("ns", "drink", "green tea")
    memory.put("ns", "other", "black coffee")
    scores = memory_module.vectors.scores

    def scores_then_write(query: Any, blobs: Any) -> Any:
        found = scores(query, blobs)
        write(memory)
        return found

    monkeypatch.setattr(memory_module.vectors, "scores", scores_then_write)
    try:
        return memory.search("ns", "tea", limit=1)
    finally:
        monkeypatch.undo()
        memory.close()


def test_a_value_deleted_during_a_search_is_not_returned(
    redis_server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hits = _search_with_a_write_between(
        redis_server, prefix, monkeypatch, lambda memory: memory.delete("ns", "drink")
    )
    assert hits == []


def test_a_value_replaced_during_a_search_is_not_scored_as_the_old_one(
    redis_server: RedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hits = _search_with_a_write_between(
        redis_server,
        prefix,
        monkeypatch,
        lambda memory: memory.put("ns", "drink", "black coffee", index=False),
    )
    assert [(hit.key, hit.value) for hit in hits] != [("drink", "black coffee")]
