"""The checkpointer contract: RedisSaver's checkpoint behaviours on every backend of the
contract matrix (memory, fakeredis, redis, cluster, sentinel, a least-privilege ACL
user, TLS), through the sync methods and the async ones (see conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

pytest.importorskip("langgraph.checkpoint.base")

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import Checkpoint, CheckpointTuple, empty_checkpoint

from chatkeep_langgraph import RedisSaver
from tests.adapters.langgraph.helpers import agent_graph, thread
from tests.contract.conftest import Harness

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:langgraph")

_ASYNC = {
    "get_tuple",
    "put",
    "put_writes",
    "delete_thread",
    "copy_thread",
    "prune",
    "flush",
}


class AsyncSaverFacade:
    """The sync checkpointer API over RedisSaver's async methods (``aput``...), each
    awaited on the harness's loop, so one test body checks both."""

    def __init__(self, saver: RedisSaver, loop: asyncio.AbstractEventLoop) -> None:
        self.saver = saver
        self._loop = loop

    def __getattr__(self, name: str) -> Any:
        if name not in _ASYNC:
            return getattr(self.saver, name)
        method = getattr(self.saver, f"a{name}")
        return lambda *args, **kwargs: self._loop.run_until_complete(method(*args, **kwargs))

    def list(self, config: Any, **options: Any) -> list[CheckpointTuple]:
        async def collect() -> list[CheckpointTuple]:
            return [found async for found in self.saver.alist(config, **options)]

        return self._loop.run_until_complete(collect())


@pytest.fixture
def make_saver(harness: Harness) -> Callable[..., Any]:
    """Savers on the harness's backend (closed with it): the saver itself for the sync
    twin, its async methods behind an AsyncSaverFacade for the async one."""

    def make(**options: Any) -> Any:
        saver = harness.build(RedisSaver, RedisSaver, **options)
        if harness.loop is None:
            return saver
        return AsyncSaverFacade(saver, harness.loop)

    return make


@pytest.fixture
def saver(make_saver: Callable[..., Any]) -> Any:
    return make_saver()


def _cp(values: dict[str, Any], versions: dict[str, str]) -> Checkpoint:
    cp = empty_checkpoint()
    cp["channel_values"] = values
    cp["channel_versions"] = versions
    return cp


def _config(tid: str, ns: str = "", checkpoint_id: str | None = None) -> Any:
    configurable = {"thread_id": tid, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def _chain(saver: Any, tid: str, steps: int, ns: str = "") -> list[Any]:
    """``steps`` checkpoints of one thread, each the child of the one before; 'a'
    changes every step, 'b' never does (written once)."""
    stored: list[Any] = []
    for i in range(steps):
        parent = stored[-1]["configurable"]["checkpoint_id"] if stored else None
        cp = _cp({"a": i, "b": "same"}, {"a": str(i + 1), "b": "1"})
        new = {"a": str(i + 1), "b": "1"} if i == 0 else {"a": str(i + 1)}
        metadata = {"source": "loop", "step": i, "parity": i % 2}
        stored.append(saver.put(_config(tid, ns, parent), cp, metadata, new))
    return stored


def _list(saver: Any, config: Any, **options: Any) -> list[CheckpointTuple]:
    return list(saver.list(config, **options))


def _ids(found: list[CheckpointTuple]) -> list[str]:
    return [t.checkpoint["id"] for t in found]


# -- put and get ----------------------------------------------------------------------------


def test_put_then_get_tuple_round_trips(saver: Any) -> None:
    first, second = _chain(saver, "t", 2)
    assert saver.get_tuple(thread("nothing")) is None
    latest = saver.get_tuple(thread("t"))
    assert latest is not None
    assert latest.config == second
    assert latest.checkpoint["channel_values"] == {"a": 1, "b": "same"}
    assert latest.checkpoint["channel_versions"] == {"a": "2", "b": "1"}
    assert latest.metadata == {"source": "loop", "step": 1, "parity": 1}
    assert latest.parent_config == first
    assert latest.pending_writes == []
    older = saver.get_tuple(first)  # by checkpoint id
    assert older is not None and older.checkpoint["channel_values"] == {"a": 0, "b": "same"}
    assert older.parent_config is None


def test_namespaces_and_special_thread_ids_stay_apart(saver: Any) -> None:
    odd = "user:{42} *\n?"
    _chain(saver, odd, 1)
    _chain(saver, "user", 2)
    _chain(saver, odd, 3, ns="child")
    found = saver.get_tuple(thread(odd))
    assert found is not None and found.config["configurable"]["thread_id"] == odd
    assert found.checkpoint["channel_values"]["a"] == 0  # the root namespace's only one
    child = saver.get_tuple(_config(odd, "child"))
    assert child is not None and child.checkpoint["channel_values"]["a"] == 2
    assert len(_list(saver, thread(odd))) == 4  # every namespace
    assert len(_list(saver, _config(odd, "child"))) == 3
    assert len(_list(saver, thread("user"))) == 2


# -- list -----------------------------------------------------------------------------------


def test_list_newest_first_with_limit_before_and_filter(saver: Any) -> None:
    stored = _chain(saver, "t", 5)
    ids = [c["configurable"]["checkpoint_id"] for c in stored]
    assert _ids(_list(saver, thread("t"))) == ids[::-1]
    assert _ids(_list(saver, thread("t"), limit=2)) == ids[:2:-1]
    assert _ids(_list(saver, thread("t"), before=stored[2])) == ids[1::-1]
    assert _ids(_list(saver, thread("t"), filter={"parity": 0})) == [ids[4], ids[2], ids[0]]
    assert _ids(_list(saver, thread("t"), filter={"parity": 1}, limit=1)) == [ids[3]]
    assert _list(saver, thread("t"), limit=0) == []
    assert _list(saver, thread("nothing")) == []
    # no thread: every thread of the prefix, through the thread index (here only "t")
    assert _ids(_list(saver, None)) == ids[::-1]
    assert _ids(_list(saver, None, filter={"parity": 1}, limit=1)) == [ids[3]]


def test_list_pages_through_a_long_thread(saver: Any) -> None:
    stored = _chain(saver, "long", 230)  # more than two pages of 100
    listed = _list(saver, thread("long"))
    assert _ids(listed) == [c["configurable"]["checkpoint_id"] for c in reversed(stored)]
    assert [t.checkpoint["channel_values"]["b"] for t in listed] == ["same"] * 230


# -- writes ---------------------------------------------------------------------------------


def test_put_writes_are_pending_in_order_and_land_once(saver: Any) -> None:
    (stored,) = _chain(saver, "t", 1)
    saver.put_writes(stored, [("a", 10), ("b", "x")], "task-2")
    saver.put_writes(stored, [("a", 1)], "task-1")
    saver.put_writes(stored, [("a", 99)], "task-1")  # the same (task, idx): kept once
    saver.put_writes(stored, [("__error__", "first")], "task-1")
    saver.put_writes(stored, [("__error__", "second")], "task-1")  # special: replaced
    saver.put_writes(stored, [], "task-3")  # nothing to write
    found = saver.get_tuple(thread("t"))
    assert found is not None
    assert found.pending_writes == [
        ("task-1", "__error__", "second"),
        ("task-1", "a", 1),
        ("task-2", "a", 10),
        ("task-2", "b", "x"),
    ]
    with pytest.raises(ValueError):
        saver.put_writes(thread("t"), [("a", 1)], "task")  # no checkpoint id


# -- delete, copy, prune ------------------------------------------------------------------------


def test_delete_thread_removes_only_that_thread(saver: Any) -> None:
    _chain(saver, "keep", 1)
    (gone,) = _chain(saver, "gone", 1)
    saver.put_writes(gone, [("a", 1)], "task")
    saver.delete_thread("gone")
    assert saver.get_tuple(thread("gone")) is None
    assert _list(saver, thread("gone")) == []
    assert saver.get_tuple(thread("keep")) is not None
    saver.delete_thread("never-existed")
    _chain(saver, "gone", 1)  # a deleted thread can start again
    assert len(_list(saver, thread("gone"))) == 1


def test_copy_thread_copies_checkpoints_and_writes(saver: Any) -> None:
    stored = _chain(saver, "src", 3)
    saver.put_writes(stored[-1], [("a", "w")], "task")
    _chain(saver, "src", 1, ns="child")
    saver.copy_thread("src", "dst")
    copied = _list(saver, thread("dst"))
    assert _ids(copied) == _ids(_list(saver, thread("src")))
    latest = saver.get_tuple(thread("dst"))
    assert latest is not None
    assert latest.config["configurable"]["thread_id"] == "dst"
    assert latest.checkpoint["channel_values"] == {"a": 2, "b": "same"}
    assert latest.pending_writes == [("task", "a", "w")]
    saver.copy_thread("nothing", "dst2")  # an empty source copies nothing
    assert _list(saver, thread("dst2")) == []


def test_prune_keeps_the_latest_of_each_namespace_or_deletes(saver: Any) -> None:
    stored = _chain(saver, "p", 4)
    saver.put_writes(stored[0], [("a", "old")], "task")
    saver.put_writes(stored[-1], [("a", "new")], "task")
    _chain(saver, "p", 2, ns="child")
    _chain(saver, "q", 2)
    saver.prune(["p"])
    left = _list(saver, thread("p"))
    assert len(left) == 2  # the newest of each namespace
    latest = saver.get_tuple(thread("p"))
    assert latest is not None and latest.config == stored[-1]
    assert latest.checkpoint["channel_values"] == {"a": 3, "b": "same"}  # 'b' survived
    assert latest.pending_writes == [("task", "a", "new")]
    saver.prune(["q"], strategy="delete")
    assert _list(saver, thread("q")) == []
    with pytest.raises(ValueError):
        saver.prune(["p"], strategy="everything")


def test_keep_last_bounds_each_namespace(make_saver: Callable[..., Any]) -> None:
    saver = make_saver(keep_last=2)
    stored = _chain(saver, "k", 5)
    _chain(saver, "k", 3, ns="child")
    listed = _list(saver, thread("k"))
    assert len(listed) == 4
    root = _list(saver, _config("k"))
    assert [c.config for c in root] == stored[:2:-1]
    assert [t.checkpoint["channel_values"] for t in root] == [
        {"a": 4, "b": "same"},
        {"a": 3, "b": "same"},
    ]


# -- a real graph -------------------------------------------------------------------------------


def test_agent_graph_runs_on_the_saver(harness: Harness, saver: Any) -> None:
    raw = saver if isinstance(saver, RedisSaver) else saver.saver
    graph = agent_graph(raw, ["one", "two"])
    for question in ("a", "b"):
        inputs = {"messages": [HumanMessage(question)]}
        if harness.loop is None:
            out = graph.invoke(inputs, thread("g"))
        else:
            out = harness.loop.run_until_complete(graph.ainvoke(inputs, thread("g")))
    assert [m.content for m in out["messages"]] == ["a", "one", "b", "two"]
    assert len(_list(saver, thread("g"))) == 6


def test_metadata_round_trips_bytes_and_tag_shaped_dicts(saver: Any) -> None:
    """Metadata with bytes next to a dict shaped like chatkeep's bytes tag (a poison
    record for a naive decoder) reads back, and the thread stays readable."""
    metadata = {"source": "input", "step": -1, "raw": b"\x89PNG", "api": {"$b64": "abc"}}
    stored = saver.put(_config("m"), _cp({"a": 1}, {"a": "1"}), metadata, {"a": "1"})
    found = saver.get_tuple(thread("m"))
    assert found is not None and found.config == stored
    assert found.metadata == metadata
    assert len(_list(saver, thread("m"), filter={"source": "input"})) == 1


# -- compression and encryption at rest (docs/security-at-rest.md) ----------------------------

_KEYS = {"k1": bytes(range(32))}


@pytest.mark.parametrize(
    "options",
    [
        {"encryption_keys": _KEYS},
        {"compression": "zstd", "compression_threshold": 16},
        {"compression": "zlib", "compression_threshold": 16, "encryption_keys": _KEYS},
    ],
    ids=["encrypted", "zstd", "zlib+encrypted"],
)
def test_checkpoints_are_sealed_at_rest(
    harness: Harness, make_saver: Callable[..., Any], options: dict[str, Any]
) -> None:
    saver = make_saver(**options)
    secret = "the launch code is swordfish " * 20
    first, second = _chain(saver, "t", 2)
    saver.put_writes(second, [("a", secret), ("b", {"note": secret})], "task-1")
    found = saver.get_tuple(thread("t"))
    assert found is not None and found.checkpoint["channel_values"] == {"a": 1, "b": "same"}
    assert [(c, v) for _, c, v in found.pending_writes] == [("a", secret), ("b", {"note": secret})]
    assert _ids(_list(saver, thread("t"))) == [second["configurable"]["checkpoint_id"],
                                                first["configurable"]["checkpoint_id"]]  # fmt: skip
    if harness.backend == "memory":
        return
    client = harness.client()
    held = b""
    for key in client.scan_iter(match=f"{harness.prefix}:lg:*"):
        kind = client.type(key)
        if kind == b"hash":
            held += b"".join(client.hvals(key))
        elif kind == b"zset":
            held += b"".join(client.zrange(key, 0, -1))
    assert b"sealed+" in held
    # Compression is not secrecy: only encryption keeps the text out of Redis.
    assert held.count(b"swordfish") == (0 if "encryption_keys" in options else 2)
    if "encryption_keys" in options:
        plain = make_saver()
        with pytest.raises(Exception, match="k1"):
            plain.get_tuple(thread("t"))


def test_a_checkpoint_under_another_key_does_not_decrypt(
    harness: Harness, make_saver: Callable[..., Any]
) -> None:
    if harness.backend == "memory":
        pytest.skip("memory:// savers do not share checkpoints")
    _chain(make_saver(encryption_keys=_KEYS), "t", 1)
    wrong = make_saver(encryption_keys={"k1": bytes(32)})
    with pytest.raises(Exception, match="authentication"):
        wrong.get_tuple(thread("t"))
