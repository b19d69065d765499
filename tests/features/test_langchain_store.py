"""chatkeep_langchain.RedisStore: a LangChain BaseStore[str, Any] on MemoryStore."""

from __future__ import annotations

from chatkeep import AsyncMemoryStore, MemoryStore


def test_base_store_contract(url: str, prefix: str) -> None:
    from langchain_core.stores import BaseStore

    from chatkeep_langchain import RedisStore

    store = RedisStore(url=url, key_prefix=prefix, namespace=("agent", "docs"))
    assert isinstance(store, BaseStore)
    store.mset([("doc:1", {"text": "a"}), ("doc:2", b"\x00bytes"), ("other", [1])])
    assert store.mget(["doc:1", "doc:2", "missing"]) == [{"text": "a"}, b"\x00bytes", None]
    assert sorted(store.yield_keys()) == ["doc:1", "doc:2", "other"]
    assert sorted(store.yield_keys(prefix="doc:")) == ["doc:1", "doc:2"]
    store.mdelete(["doc:1", "missing"])
    assert store.mget(["doc:1"]) == [None]
    assert store.store is not None
    left = store.store.ttl(("agent", "docs"), "other")
    assert left is not None and left > 2 * 86400  # the agent namespace's 3 days
    store.store.close()


async def test_async_methods(url: str, prefix: str) -> None:
    from chatkeep_langchain import RedisStore

    async with AsyncMemoryStore.from_url(url, key_prefix=prefix) as amemory:
        store = RedisStore(async_store=amemory, namespace="kv", ttl=60)
        await store.amset([("a", 1), ("b", {"c": 2})])
        assert await store.amget(["a", "b", "x"]) == [1, {"c": 2}, None]
        assert [k async for k in store.ayield_keys(prefix="a")] == ["a"]
        await store.amdelete(["a"])
        assert await store.amget(["a"]) == [None]
        left = await amemory.ttl("kv", "b")
        assert left is not None and left <= 60


async def test_sync_store_serves_async_methods(prefix: str) -> None:
    from chatkeep_langchain import RedisStore

    store = RedisStore(url="memory://", key_prefix=prefix)
    await store.amset([("k", "v")])
    assert store.mget(["k"]) == ["v"]
    assert await store.amget(["k"]) == ["v"]


def test_shares_values_with_memory_store(url: str, prefix: str) -> None:
    from chatkeep_langchain import RedisStore

    memory = MemoryStore.from_url(url, key_prefix=prefix)
    store = RedisStore(store=memory, namespace=("user", "u1"))
    memory.put(("user", "u1"), "profile", {"name": "Ada"})
    assert store.mget(["profile"]) == [{"name": "Ada"}]
    memory.close()
