"""RedisStore: LangGraph's BaseStore (long-term memory) on chatkeep's MemoryStore, on
memory and a real redis-server: namespaces, get/put/delete, search with filter and
prefix, list_namespaces, TTL refreshed on read, batch/abatch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from langgraph.store.base import GetOp, ListNamespacesOp, PutOp, SearchOp

from chatkeep_langgraph import RedisStore

STORE_BACKENDS = [
    pytest.param("memory", id="memory"),
    pytest.param("redis", id="redis", marks=pytest.mark.redis_server),
]


@pytest.fixture(params=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, prefix: str) -> Iterator[RedisStore]:
    url = "memory://" if request.param == "memory" else request.getfixturevalue("redis_server").url
    made = RedisStore(url, prefix=prefix, ttl={"default_ttl": 10})
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


def test_ttl_refreshed_on_read(store: RedisStore) -> None:
    store.put(("s",), "k", {"v": 1}, ttl=1)  # one minute
    left = store.memory.ttl(("s",), "k")
    assert left is not None and 50 < left <= 60
    store.put(("s",), "n", {"v": 1}, ttl=None)  # the configured default: 10 minutes
    left = store.memory.ttl(("s",), "n")
    assert left is not None and 590 < left <= 600
    assert store.supports_ttl


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
    assert results[0] is None and results[2] is not None
    assert results[2].value == {"x": 1}  # type: ignore[union-attr]
    assert [i.key for i in results[3]] == ["k2"]  # type: ignore[union-attr]
    assert results[4] == [("b",)]
    item = await store.aget(("b",), "k2")
    assert item is not None and item.value == {"x": 2}
    await store.aput(("b",), "k3", {"x": 3})
    assert len(await store.asearch(("b",))) == 3
    await store.adelete(("b",), "k3")
    assert await store.aget(("b",), "k3") is None
