"""Redis going away under the long-term memory store and the result cache, on real
servers: the mirror serves, memory writes are journaled (in the one journal of that
Redis) and replayed once; cache writes stay in this process."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from chatkeep import (
    AsyncMemoryStore,
    AsyncResultCache,
    ConversationStore,
    MemoryStore,
    Message,
    ResultCache,
)
from tests.contract.conftest import AsyncFacade
from tests.support.faults import FAST, python, until_recovered
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis_server

USER = ("user", "u42")


@pytest.fixture(params=["sync", "async"])
def twin(
    request: pytest.FixtureRequest, durable_redis_server: RedisServer, prefix: str
) -> Iterator[Callable[[type, type], Any]]:
    """``twin(Sync, Async, **options)``: a store on the test's durable redis-server (probing
    fast), of the sync class, or of the async one behind a facade."""
    loop = asyncio.new_event_loop() if request.param == "async" else None

    def make(sync: type, asynchronous: type, **extra: Any) -> Any:
        options = {"url": durable_redis_server.url, "key_prefix": prefix, **FAST, **extra}
        if loop is None:
            return sync(**options)
        return AsyncFacade(asynchronous(**options), loop)

    yield make
    if loop is not None:
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


def memory_values(url: str, prefix: str) -> dict[str, bytes]:
    """What Redis holds of namespace USER: key -> stored JSON."""
    raw = redis.Redis.from_url(url)
    try:
        found = {}
        for key in raw.zrange(f"{prefix}:mem:{{user:u42}}:i", 0, -1):
            data = raw.hget(f"{prefix}:mem:{{user:u42}}:v:{key.decode()}", "d")
            if data is not None:
                found[key.decode()] = data
        return found
    finally:
        raw.close()


def test_memory_store_server_stopped_mid_use(
    durable_redis_server: RedisServer, prefix: str, twin: Any
) -> None:
    server = durable_redis_server
    memory = twin(MemoryStore, AsyncMemoryStore)
    memory.put(USER, "before", "seen")
    memory.put(USER, "kept", [1])

    server.stop()
    assert memory.get(USER, "before") == "seen"  # from the mirror
    memory.put(USER, "during", {"n": 1})  # journaled
    memory.mput(USER, {"during": {"n": 2}, "other": b"\x00"})  # journaled, in order
    assert memory.delete(USER, "before") is True  # journaled
    assert memory.get(USER, "during") == {"n": 2}
    assert memory.list(USER) == ["during", "kept", "other"]
    status = memory.status()
    assert (status.degraded, status.pending_replay, status.outages) == (True, 3, 1)

    server.start()  # with what it had before the outage (append-only file)
    until_recovered(lambda: memory.get(USER, "kept"), memory)
    assert memory_values(server.url, prefix) == {
        "during": b'{"n":2}',
        "kept": b"[1]",
        "other": b'{"$b64":"AA=="}',
    }
    status = memory.status()
    assert (status.pending_replay, status.replayed, status.replay_rejected) == (0, 3, 0)
    assert memory.flush() == 0
    assert memory.status().replayed == 3  # replayed once, not again
    memory.close()
    with MemoryStore.from_url(server.url, key_prefix=prefix) as other:  # another process's view
        assert other.mget(USER, ["before", "during", "other"]) == [None, {"n": 2}, b"\x00"]


def test_memory_and_conversations_share_one_circuit_and_journal(
    fresh_redis_server: RedisServer, prefix: str
) -> None:
    server = fresh_redis_server
    with (
        MemoryStore.from_url(server.url, key_prefix=prefix, **FAST) as memory,
        ConversationStore.from_url(server.url, key_prefix=prefix, **FAST) as store,
    ):
        assert memory.connection is not None and store.connection is memory.connection
        memory.put(USER, "k", 0)
        server.stop()
        store.append("chat", Message(role="user", content="hi"))  # opens the one circuit
        assert memory.status().degraded  # without a call of its own
        memory.put(USER, "k", 1)
        assert memory.status().pending_replay == store.status().pending_replay == 2
        server.start()
        until_recovered(memory.flush, memory)
        assert not store.status().degraded
        assert memory_values(server.url, prefix) == {"k": b"1"}
        assert [m.text for m in store.messages("chat")] == ["hi"]
        assert store.status().outages == 1


def test_memory_writes_journaled_durably_are_replayed_by_another_process(
    fresh_redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    server = fresh_redis_server
    journal = str(tmp_path / "journal.sqlite")
    server.stop()
    code = (
        "from chatkeep import MemoryStore\n"
        f"memory = MemoryStore.from_url({server.url!r}, key_prefix={prefix!r}, "
        f"journal_path={journal!r})\n"
        "memory.put(('user', 'u42'), 'a', {'n': 1})\n"
        "memory.mput(('user', 'u42'), {'b': b'raw', 'c': 3}, ttl=None)\n"
        "memory.delete(('user', 'u42'), 'c')\n"
        "assert memory.status().pending_replay == 3\n"
    )
    done = python(code, options=["-W", "ignore"])
    assert done.returncode == 0, done.stderr
    server.start()
    memory = MemoryStore.from_url(server.url, key_prefix=prefix, journal_path=journal, **FAST)
    assert memory.flush() == 0
    assert memory.status().replayed == 3
    assert memory.mget(USER, ["a", "b", "c"]) == [{"n": 1}, b"raw", None]
    assert memory.ttl(USER, "b") is None
    memory.close()


def test_result_cache_server_stopped_mid_use(durable_redis_server: RedisServer, twin: Any) -> None:
    server = durable_redis_server
    cache = twin(ResultCache, AsyncResultCache)
    assert cache.get_or_compute("seen", lambda: "before") == "before"

    server.stop()
    assert cache.get("seen") == "before"  # the mirror's copy
    assert cache.get_or_compute("new", lambda: "computed during") == "computed during"
    assert cache.get_or_compute("new", lambda: "again") == "computed during"  # once
    cache.set("set during", 1)
    assert cache.get("set during") == 1
    status = cache.status()
    assert (status.degraded, status.pending_replay) == (True, 0)  # a cache journals nothing

    server.start()
    until_recovered(lambda: cache.get("seen"), cache)
    assert cache.get("seen") == "before"  # Redis kept it
    assert cache.get("set during") is None  # kept in this process only: not replayed
    assert cache.get_or_compute("new", lambda: "computed after") == "computed after"
    assert cache.status().replayed == 0
    cache.close()


def _embed(texts: list[str]) -> list[list[float]]:
    return [[float("coffee" in t), float("tea" in t), 0.01] for t in texts]


def test_memory_search_in_an_outage_and_embeddings_replayed(
    durable_redis_server: RedisServer, prefix: str, twin: Any
) -> None:
    """In an outage, search ranks what the mirror holds; a put journaled with its
    embedding (also in the durable journal) is searchable once replayed."""
    server = durable_redis_server
    memory = twin(MemoryStore, AsyncMemoryStore, embed=_embed)
    memory.put(USER, "known", "coffee black")  # write-through: the mirror holds it
    server.stop()
    assert [hit.key for hit in memory.search(USER, "coffee", limit=1)] == ["known"]
    memory.put(USER, "during", "green tea")  # journaled with its embedding
    assert [hit.key for hit in memory.search(USER, "tea", limit=1)] == ["during"]
    server.start()
    until_recovered(lambda: memory.get(USER, "known"), memory)
    with MemoryStore.from_url(server.url, key_prefix=prefix, embed=_embed) as other:
        assert [hit.key for hit in other.search(USER, "tea")] == ["during", "known"]


def test_embeddings_survive_the_durable_journal(
    fresh_redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    server = fresh_redis_server
    journal = str(tmp_path / "journal.sqlite")
    server.stop()
    code = (
        "from chatkeep import MemoryStore\n"
        "embed = lambda texts: [[float('coffee' in t), float('tea' in t), 0.01] for t in texts]\n"
        f"memory = MemoryStore.from_url({server.url!r}, key_prefix={prefix!r}, "
        f"journal_path={journal!r}, embed=embed)\n"
        "memory.put(('user', 'u42'), 'a', 'coffee')\n"
        "memory.put(('user', 'u42'), 'b', 'tea', index=False)\n"
        "assert memory.status().pending_replay == 2\n"
    )
    done = python(code, options=["-W", "ignore"])
    assert done.returncode == 0, done.stderr
    server.start()
    with MemoryStore.from_url(
        server.url, key_prefix=prefix, journal_path=journal, embed=_embed
    ) as memory:
        until_recovered(memory.flush, memory)
        assert memory.flush() == 0
        hits = memory.search(USER, "coffee")
        assert [hit.key for hit in hits] == ["a"]  # b was put without an embedding
        assert memory.get(USER, "b") == "tea"


def test_search_in_an_outage_finds_what_another_process_wrote_and_this_one_found(
    durable_redis_server: RedisServer, prefix: str, twin: Any
) -> None:
    """Values another process wrote, found here by a search (so the mirror holds
    them), were not found by the same search in an outage: the mirror kept their
    values but not their embeddings (red team, issue 16)."""
    server = durable_redis_server
    code = (
        "from chatkeep import MemoryStore\n"
        "embed = lambda texts: [[float('coffee' in t), float('tea' in t), 0.01] for t in texts]\n"
        f"memory = MemoryStore.from_url({server.url!r}, key_prefix={prefix!r}, "
        "fallback='raise', embed=embed)\n"
        "memory.put(('user', 'u42'), 'drink', 'coffee black')\n"
        "memory.put(('user', 'u42'), 'other', 'green tea')\n"
    )
    done = python(code, options=["-W", "ignore"])
    assert done.returncode == 0, done.stderr
    memory = twin(MemoryStore, AsyncMemoryStore, embed=_embed)
    assert [hit.key for hit in memory.search(USER, "coffee", limit=1)] == ["drink"]
    server.stop()
    assert memory.get(USER, "drink") == "coffee black"  # the mirror holds it
    assert [hit.key for hit in memory.search(USER, "coffee", limit=1)] == ["drink"]
    assert memory.status().degraded
    server.start()
    until_recovered(lambda: memory.get(USER, "drink"), memory)
