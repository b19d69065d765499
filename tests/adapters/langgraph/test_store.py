"""RedisStore: LangGraph's BaseStore (long-term memory) on chatkeep's MemoryStore, on
memory and a real redis-server: namespaces, get/put/delete, search with filter and
prefix, list_namespaces, TTLs (default, none, refreshed per call and per TTLConfig,
only what a search returns), dotted-path filters and operators, batch/abatch (reads
before puts, the last put of a key wins)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from langgraph.store.base import GetOp, ListNamespacesOp, PutOp, SearchOp

from chatkeep import InvalidArgumentError
from chatkeep_langgraph import RedisStore

STORE_BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis_server),
]


@pytest.fixture(params=STORE_BACKENDS)
def url_for_store(request: pytest.FixtureRequest) -> str:
    if request.param == "memory":
        return "memory://"
    return str(request.getfixturevalue("redis_server").url)


@pytest.fixture
def store(url_for_store: str, prefix: str) -> Iterator[RedisStore]:
    made = RedisStore(url_for_store, key_prefix=prefix, ttl={"default_ttl": 10})
    yield made
    made.close()


def test_put_get_delete(store: RedisStore) -> None:
    store.put(("users", "u1"), "profile", {"name": "Ada", "lang": "en"})
    item = store.get(("users", "u1"), "profile")
    assert item is not None
    assert item.value == {"name": "Ada", "lang": "en"}
    assert item.namespace == ("users", "u1") and item.key == "profile"
    created = item.created_at
    store.put(("users", "u1"), "profile", {"name": "Ada L."})
    again = store.get(("users", "u1"), "profile")
    assert again is not None and again.created_at == created and again.updated_at >= created
    store.delete(("users", "u1"), "profile")
    assert store.get(("users", "u1"), "profile") is None


def test_search_and_namespaces(store: RedisStore) -> None:
    store.put(("users", "u1", "facts"), "a", {"kind": "pet", "age": 3})
    store.put(("users", "u2", "facts"), "b", {"kind": "pet", "age": 9})
    store.put(("users", "u2", "facts"), "c", {"kind": "job"})
    store.put(("docs",), "d", {"kind": "pet"})
    pets = store.search(("users",), filter={"kind": "pet"})
    assert sorted(i.key for i in pets) == ["a", "b"]
    old = store.search(("users",), filter={"age": {"$gt": 5}})
    assert [i.key for i in old] == ["b"]
    assert [i.key for i in store.search(("users", "u2", "facts"), limit=1)] == ["c"]
    assert len(store.search((), limit=10)) == 4
    assert store.list_namespaces(prefix=("users",)) == [
        ("users", "u1", "facts"),
        ("users", "u2", "facts"),
    ]
    assert store.list_namespaces(max_depth=1) == [("docs",), ("users",)]
    assert store.list_namespaces(suffix=("facts",), limit=1) == [("users", "u1", "facts")]
    store.delete(("docs",), "d")
    assert ("docs",) not in store.list_namespaces()


def test_ttl_default_and_none(store: RedisStore) -> None:
    """``put()`` takes TTLConfig's default_ttl; ``put(ttl=None)`` never expires (as
    BaseStore.put documents and SqliteStore does)."""
    store.put(("s",), "k", {"v": 1}, ttl=1)  # one minute
    left = store.memory.ttl(("s",), "k")
    assert left is not None and 50 < left <= 60
    store.put(("s",), "d", {"v": 1})  # the configured default: 10 minutes
    left = store.memory.ttl(("s",), "d")
    assert left is not None and 590 < left <= 600
    store.put(("s",), "n", {"v": 1}, ttl=None)
    assert store.memory.ttl(("s",), "n") is None
    assert store.supports_ttl


def _left(store: RedisStore, namespace: tuple[str, ...], key: str) -> float:
    left = store.memory.ttl(namespace, key)
    assert left is not None
    return left


def test_refresh_ttl_per_call(store: RedisStore) -> None:
    """get(refresh_ttl=False) leaves the TTL alone; get() and get(refresh_ttl=True)
    slide it back to the item's full TTL."""
    store.put(("r",), "k", {"v": 1}, ttl=1)
    time.sleep(1.2)
    assert store.get(("r",), "k", refresh_ttl=False) is not None
    assert _left(store, ("r",), "k") < 59.0
    assert store.get(("r",), "k") is not None
    assert _left(store, ("r",), "k") > 59.5
    time.sleep(1.2)
    assert store.search(("r",), refresh_ttl=False)
    assert _left(store, ("r",), "k") < 59.0
    assert store.search(("r",), refresh_ttl=True)
    assert _left(store, ("r",), "k") > 59.5


def test_refresh_on_read_false_in_ttl_config(url_for_store: str, prefix: str) -> None:
    """TTLConfig(refresh_on_read=False): reads do not slide unless a call asks."""
    store = RedisStore(
        url_for_store, key_prefix=prefix, ttl={"default_ttl": 1, "refresh_on_read": False}
    )
    try:
        store.put(("q",), "k", {"v": 1})
        time.sleep(1.2)
        assert store.get(("q",), "k") is not None
        assert store.search(("q",))
        assert _left(store, ("q",), "k") < 59.0
        assert store.get(("q",), "k", refresh_ttl=True) is not None
        assert _left(store, ("q",), "k") > 59.5
    finally:
        store.close()


def test_search_refreshes_only_returned_items(store: RedisStore) -> None:
    """A search slides the TTL of the items it returns, not of those its filter
    rejected or its limit left out (the defect: it refreshed everything it read)."""
    for key, kind in [("a", "pet"), ("b", "job"), ("c", "pet")]:
        store.put(("f",), key, {"kind": kind}, ttl=1)
        time.sleep(0.01)
    time.sleep(1.2)
    found = store.search(("f",), filter={"kind": "pet"}, limit=1)
    assert [i.key for i in found] == ["c"]
    assert _left(store, ("f",), "c") > 59.5
    assert _left(store, ("f",), "a") < 59.0  # matched, but past the limit
    assert _left(store, ("f",), "b") < 59.0  # rejected by the filter


def test_dotted_path_filters_and_operators(store: RedisStore) -> None:
    store.put(("u",), "ada", {"user": {"access-level": "admin", "age": 36}, "n": 1})
    store.put(("u",), "bob", {"user": {"access-level": "guest", "age": 17}, "n": 2})
    store.put(("u",), "eve", {"user": {"age": 50}})

    def keys(**conditions: Any) -> list[str]:
        return sorted(i.key for i in store.search(("u",), filter=conditions["f"]))

    assert keys(f={"user.access-level": "admin"}) == ["ada"]
    assert keys(f={"user.age": {"$gt": 17}}) == ["ada", "eve"]
    assert keys(f={"user.age": {"$gte": 17, "$lt": 50}}) == ["ada", "bob"]
    assert keys(f={"user.age": {"$lte": 17}}) == ["bob"]
    assert keys(f={"user.access-level": {"$ne": "admin"}}) == ["bob"]  # missing is not $ne
    assert keys(f={"user.access-level": {"$eq": "guest"}}) == ["bob"]
    assert keys(f={"user.access-level": None}) == ["eve"]  # missing equals None
    assert keys(f={"n": {"$gt": "a"}}) == []  # a number is not ordered against a str
    assert keys(f={"user": {"age": 50}}) == ["eve"]
    with pytest.raises(InvalidArgumentError):
        store.search(("u",), filter={"n": {"$regex": "x"}})


async def test_batch_and_abatch(store: RedisStore) -> None:
    results = store.batch(
        [
            PutOp(("b",), "k1", {"x": 1}),
            PutOp(("b",), "k2", {"x": 2}),
            GetOp(("b",), "k1"),
            SearchOp(("b",), filter={"x": 2}),
            ListNamespacesOp(),
        ]
    )
    # Reads see the store before the batch's puts, as in InMemoryStore/SqliteStore.
    assert results == [None, None, None, [], []]
    results = store.batch(
        [
            PutOp(("b",), "k1", {"x": 0}),
            GetOp(("b",), "k1"),
            SearchOp(("b",), filter={"x": 2}),
            ListNamespacesOp(),
            PutOp(("b",), "k1", {"x": 1}),  # the last put of a key wins
        ]
    )
    assert results[1] is not None and results[1].value == {"x": 1}  # type: ignore[union-attr]
    assert [i.key for i in results[2]] == ["k2"]  # type: ignore[union-attr]
    assert results[3] == [("b",)]
    again = store.get(("b",), "k1")
    assert again is not None and again.value == {"x": 1}
    item = await store.aget(("b",), "k2")
    assert item is not None and item.value == {"x": 2}
    await store.aput(("b",), "k3", {"x": 3})
    assert len(await store.asearch(("b",))) == 3
    await store.adelete(("b",), "k3")
    assert await store.aget(("b",), "k3") is None


def test_bad_namespaces_write_nothing(store: RedisStore) -> None:
    for bad in [(), ("a.b",), ("",)]:  # refused by LangGraph's BaseStore.put already
        with pytest.raises(ValueError):
            store.put(bad, "k", {"v": 1})
        with pytest.raises(InvalidArgumentError):  # and by RedisStore in a batch
            store.batch([PutOp(bad, "k", {"v": 1})])
    with pytest.raises(InvalidArgumentError):  # longer than its registry key may be
        store.put(("x" * 300, "y" * 300), "k", {"v": 1})
    with pytest.raises(InvalidArgumentError):
        store.batch([PutOp(("ok",), "k", {"v": 1}), PutOp(("x" * 300, "y" * 300), "k", {})])
    assert store.list_namespaces() == []


def test_items_are_encrypted_at_rest(url_for_store: str, prefix: str) -> None:
    keys = {"k1": bytes(range(32))}
    made = RedisStore(url_for_store, key_prefix=prefix, encryption_keys=keys, compression="zstd")
    try:
        made.put(("users", "u1", "facts"), "a", {"kind": "pet", "secret": "swordfish"})
        made.put(("users", "u1", "facts"), "b", {"kind": "job"})
        item = made.get(("users", "u1", "facts"), "a")
        assert item is not None and item.value == {"kind": "pet", "secret": "swordfish"}
        found = made.search(("users",), filter={"kind": "pet"})
        assert [i.key for i in found] == ["a"]
        if url_for_store.startswith("memory"):
            return
        client = redis.Redis.from_url(url_for_store)
        held = b"".join(
            client.hget(key, "d") or b"" for key in client.scan_iter(match=f"{prefix}:mem:*:v:*")
        )
        client.close()
        assert held and b"swordfish" not in held
    finally:
        made.close()
