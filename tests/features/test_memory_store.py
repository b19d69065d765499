"""Long-term memory: MemoryStore / AsyncMemoryStore on memory:// and a real Redis."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone

import pytest
import redis

from chatkeep import (
    AsyncMemoryStore,
    BackendUnavailableError,
    InvalidArgumentError,
    MemoryStore,
    SerializationError,
    ValueTooLargeError,
)
from tests.support import scenarios
from tests.support.servers import RedisServer

USER = ("user", "u42")


def test_put_get_mget_delete_list(url: str, prefix: str) -> None:
    with MemoryStore.from_url(url, prefix=prefix) as memory:
        memory.put(USER, "profile", {"name": "Ada", "langs": ["en", "fr"]})
        memory.put(USER, "pref:tone", "formal")
        memory.put(USER, "pref:units", "metric")
        memory.put(("user", "someone else"), "profile", {"name": "Bob"})
        assert memory.get(USER, "profile") == {"name": "Ada", "langs": ["en", "fr"]}
        assert memory.get(USER, "missing", "dflt") == "dflt"
        assert memory.mget(USER, ["pref:units", "nope", "pref:tone"]) == ["metric", None, "formal"]
        assert memory.list(USER) == ["pref:tone", "pref:units", "profile"]
        assert memory.list(USER, prefix="pref:") == ["pref:tone", "pref:units"]
        assert memory.list(USER, prefix="pref:", limit=1) == ["pref:tone"]
        memory.put(USER, "profile", {"name": "Ada L."})  # replaces
        assert memory.get(USER, "profile") == {"name": "Ada L."}
        assert memory.delete(USER, "profile") is True
        assert memory.delete(USER, "profile") is False
        assert memory.get(USER, "profile") is None
        assert memory.list(USER) == ["pref:tone", "pref:units"]
        assert memory.get(("user", "someone else"), "profile") == {"name": "Bob"}
        # bytes and unusual ids survive (codec policy, escaped keys)
        memory.put("knowledge", "a {weird}:*key", {"blob": b"\x00\xff"})
        assert memory.get("knowledge", "a {weird}:*key") == {"blob": b"\x00\xff"}
        assert memory.list("knowledge") == ["a {weird}:*key"]


async def test_async_twin(url: str, prefix: str) -> None:
    async with AsyncMemoryStore.from_url(url, prefix=prefix) as memory:
        await memory.mput(("agent", "planner"), {"a": 1, "b": [2]})
        assert await memory.mget(("agent", "planner"), ["a", "b", "c"]) == [1, [2], None]
        assert await memory.get(("agent", "planner"), "a") == 1
        assert await memory.list(("agent", "planner"), prefix="b") == ["b"]
        assert await memory.delete(("agent", "planner"), "a") is True
        assert await memory.mdelete(("agent", "planner"), ["a", "b"]) == 1
        assert await memory.list(("agent", "planner")) == []
        assert await memory.ttl(("agent", "planner"), "a") == 0.0


def test_ttl_table_defaults_and_overrides(url: str, prefix: str) -> None:
    with MemoryStore.from_url(url, prefix=prefix, ttls=scenarios.TTL_OVERRIDES) as memory:
        scenarios.ttl_table_defaults_and_overrides(memory)


def test_values_are_validated_and_size_limited(url: str, prefix: str) -> None:
    with MemoryStore.from_url(url, prefix=prefix, max_message_bytes=100) as memory:
        with pytest.raises(SerializationError, match="datetime"):
            memory.mput(USER, {"ok": 1, "bad": datetime.now(timezone.utc)})
        with pytest.raises(SerializationError):
            memory.mput(USER, {"ok": 1, "bad": object()})
        with pytest.raises(SerializationError):
            memory.put(USER, "nan", float("nan"))
        with pytest.raises(ValueTooLargeError, match="nothing was written"):
            memory.mput(USER, {"ok": 1, "big": "x" * 200})
        assert memory.list(USER) == []  # nothing partial
        with pytest.raises(InvalidArgumentError):
            memory.put((), "k", 1)
        with pytest.raises(InvalidArgumentError):
            memory.put(USER, "", 1)


@pytest.mark.redis_server
def test_layout_uses_one_slot_per_namespace_and_an_index(
    redis_server: RedisServer, prefix: str
) -> None:
    with MemoryStore.from_url(redis_server.url, prefix=prefix) as memory:
        memory.put(USER, "k1", 1)
        memory.put(USER, "k2", 2)
    raw = redis.Redis.from_url(redis_server.url)
    keys = sorted(k.decode() for k in raw.keys(f"{prefix}:*"))
    assert keys == [
        f"{prefix}:mem:namespaces",  # the namespaces written (chatkeep sessions --kind memory)
        f"{prefix}:mem:{{user:u42}}:i",
        f"{prefix}:mem:{{user:u42}}:v:k1",
        f"{prefix}:mem:{{user:u42}}:v:k2",
    ]
    assert raw.zrange(keys[0], 0, -1) == [b"user:u42"]
    assert raw.type(keys[1]) == b"zset"
    assert 0 < raw.pttl(keys[1]) <= 3 * 86400 * 1000
    raw.close()


@pytest.mark.redis_server
def test_ttl_expiry_on_a_real_server(redis_server: RedisServer, prefix: str) -> None:
    # 1 s TTLs read at half of them, times measured: 0.1 s margins are a flake
    # waiting for a loaded machine.
    with MemoryStore.from_url(redis_server.url, prefix=prefix, ttls={"user": 1.0}) as memory:
        memory.put(USER, "a", 1)
        memory.put(USER, "b", 2, ttl=30)
        put = time.monotonic()
        time.sleep(0.5)
        assert memory.get(USER, "a") == 1  # sliding: the read restarts the TTL
        read = time.monotonic()
        time.sleep(max(0.0, put + 1.25 - time.monotonic()))
        assert memory.list(USER) == ["a", "b"]
        time.sleep(max(0.0, read + 1.25 - time.monotonic()))
        assert memory.get(USER, "a") is None
        assert memory.list(USER) == ["b"]
    with MemoryStore.from_url(
        redis_server.url, prefix=prefix + "f", ttls={"user": 1.0}, ttl_mode="fixed"
    ) as memory:
        memory.put(USER, "a", 1)
        put = time.monotonic()
        time.sleep(0.5)
        assert memory.get(USER, "a") == 1
        time.sleep(max(0.0, put + 1.25 - time.monotonic()))
        assert memory.get(USER, "a") is None  # fixed: counted from creation


def test_fallback_during_an_outage(fresh_redis_server: RedisServer, prefix: str) -> None:
    server = fresh_redis_server
    memory = MemoryStore.from_url(server.url, prefix=prefix, probe_interval=0.05)
    memory.put(USER, "before", "seen")
    server.stop()
    assert memory.get(USER, "before") == "seen"  # from the mirror
    memory.put(USER, "during", {"n": 1})  # journaled
    memory.delete(USER, "before")
    assert memory.get(USER, "during") == {"n": 1}
    status = memory.status()
    assert status.degraded and status.pending_replay == 2
    server.start()
    time.sleep(0.1)
    assert memory.flush() == 0
    assert not memory.status().degraded
    memory.close()
    with MemoryStore.from_url(server.url, prefix=prefix) as other:  # another process's view
        assert other.get(USER, "during") == {"n": 1}
        assert other.get(USER, "before") is None
        assert other.list(USER) == ["during"]


async def test_async_fallback_and_raise(fresh_redis_server: RedisServer, prefix: str) -> None:
    server = fresh_redis_server
    memory = AsyncMemoryStore.from_url(server.url, prefix=prefix, probe_interval=0.05)
    strict = AsyncMemoryStore.from_url(server.url, prefix=prefix, fallback="raise")
    await memory.put(USER, "k", 1)
    server.stop()
    assert await memory.get(USER, "k") == 1
    await memory.put(USER, "k2", 2)
    with pytest.raises(BackendUnavailableError):
        await strict.get(USER, "k")
    server.start()
    time.sleep(0.1)
    assert await memory.flush() == 0
    # the restarted server kept nothing; the write made during the outage was replayed
    assert await strict.mget(USER, ["k", "k2"]) == [None, 2]
    await memory.aclose()
    await strict.aclose()


# -- regressions of issue 13 ----------------------------------------------------------------


@pytest.mark.redis_server
def test_async_memory_store_from_a_url_works_across_two_event_loops(
    redis_server: RedisServer, prefix: str
) -> None:
    """Issue 13: the second ``asyncio.run`` raised ``RuntimeError: Event loop is closed``
    (the store kept one asyncio client, bound to the first loop)."""
    memory = AsyncMemoryStore.from_url(redis_server.url, prefix=prefix, fallback="raise")
    asyncio.run(memory.put(USER, "k", {"n": 1}))
    assert asyncio.run(memory.get(USER, "k")) == {"n": 1}
    asyncio.run(memory.put(USER, "k2", 2))
    assert asyncio.run(memory.list(USER)) == ["k", "k2"]
    asyncio.run(memory.aclose())


@pytest.mark.redis_server
def test_a_least_privilege_user_can_use_the_memory_store(least_privilege: str, prefix: str) -> None:
    """Issue 13: a user made from ``chatkeep.redis.acl_rules()`` got NOPERM on put."""
    with MemoryStore.from_url(least_privilege, prefix=prefix, fallback="raise") as memory:
        memory.put(USER, "profile", {"name": "Ada"})
        memory.mput(USER, {"a": 1, "b": b"\x00"})
        assert memory.get(USER, "profile") == {"name": "Ada"}
        assert memory.mget(USER, ["a", "b"]) == [1, b"\x00"]
        assert memory.list(USER) == ["a", "b", "profile"]
        assert memory.ttl(USER, "a") is not None
        assert memory.delete(USER, "profile") is True
        assert memory.list(USER) == ["a", "b"]
