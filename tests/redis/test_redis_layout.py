"""What chatkeep does inside a real redis-server: keys, TTLs, round trips, records."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import pytest
import redis

from chatkeep import (
    AsyncConversationStore,
    ConversationStore,
    Conversion,
    Message,
    SerializationError,
)
from chatkeep.redis import FEATURES
from tests.support.messages import msg

SCRIPTS = FEATURES["sessions"].scripts

pytestmark = pytest.mark.redis_server


def make(redis_server: Any, prefix: str, **options: Any) -> ConversationStore:
    return ConversationStore.from_url(redis_server.url, key_prefix=prefix, **options)


def test_keys_follow_the_documented_layout(
    redis_server: Any, raw: redis.Redis, prefix: str
) -> None:
    with make(redis_server, prefix) as store:
        store.append("user:42/chat", [msg("hi")], owner="u 1")
    keys = sorted(k.decode() for k in raw.scan_iter(match=f"{prefix}:*"))
    assert keys == [
        f"{prefix}:idx",
        f"{prefix}:own:u%201",
        f"{prefix}:{{user%3A42%2Fchat}}:h",
        f"{prefix}:{{user%3A42%2Fchat}}:m",
    ]
    record = json.loads(raw.lrange(f"{prefix}:{{user%3A42%2Fchat}}:m", 0, -1)[0])
    assert record["v"] == 1 and record["role"] == "user" and record["content"] == "hi"
    assert set(record) == {"v", "id", "tk", "role", "content", "ts"}
    assert record["tk"] == 5  # estimate_tokens: 4 per message + 1 for "hi"
    raw_record = raw.lrange(f"{prefix}:{{user%3A42%2Fchat}}:m", 0, -1)[0]
    assert raw_record.startswith(b'{"v":1,"id":"' + record["id"].encode() + b'","tk":5,"role":')
    meta = raw.hgetall(f"{prefix}:{{user%3A42%2Fchat}}:h")
    assert meta[b"o"] == b"u 1" and meta[b"v"] == b"1"


def pttls(raw: redis.Redis, prefix: str, sid: str) -> tuple[int, int]:
    return raw.pttl(f"{prefix}:{{{sid}}}:m"), raw.pttl(f"{prefix}:{{{sid}}}:h")


def test_every_write_sets_the_ttl_on_both_keys(
    redis_server: Any, raw: redis.Redis, prefix: str
) -> None:
    with make(redis_server, prefix, ttl=100) as store:
        store.append("s", [msg("a"), msg("b"), msg("c")])
        for check in ("append", "replace", "insert", "pop", "read"):
            raw.pexpire(f"{prefix}:{{s}}:m", 5000)
            raw.pexpire(f"{prefix}:{{s}}:h", 5000)
            if check == "append":
                store.append("s", [msg("d")])
            elif check == "replace":
                store.replace("s", [msg("x"), msg("y"), msg("z")])
            elif check == "insert":
                store.insert("s", 1, [msg("i")])
            elif check == "pop":
                store.pop("s", 1)
            else:  # a store that has not refreshed the session itself (see below):
                # without a fallback it shares no circuit, so nothing the other knows
                with make(redis_server, prefix, ttl=100, fallback="raise") as reader:
                    reader.messages("s")
            m, h = pttls(raw, prefix, "s")
            assert 95_000 < m <= 100_000, check
            assert 95_000 < h <= 100_000, check
        store.clear("s")
        assert pttls(raw, prefix, "s") == (-2, -2)


def test_a_read_refreshes_a_sliding_ttl_unless_this_process_just_did(
    redis_server: Any, raw: redis.Redis, prefix: str
) -> None:
    """Within min(60 s, 1% of the TTL) of this process setting the expiry, a read
    without an owner is a plain LRANGE (the refresh would move the expiry by no more);
    after that, or with an owner to check, the read runs the script and refreshes."""
    with make(redis_server, prefix, ttl=100) as store:
        store.append("s", [msg("a"), msg("b")], owner="o")
        raw.config_resetstat()
        assert [m.text for m in store.messages("s")] == ["a", "b"]
        assert [m.text for m in store.messages("s", last=1)] == ["b"]
        stats = raw.info("commandstats")
        assert "cmdstat_evalsha" not in stats and stats["cmdstat_lrange"]["calls"] == 2
        raw.pexpire(f"{prefix}:{{s}}:m", 50_000)
        raw.pexpire(f"{prefix}:{{s}}:h", 50_000)
        store.messages("s", owner="o")  # the owner is always checked: the script runs
        assert all(95_000 < t <= 100_000 for t in pttls(raw, prefix, "s"))
        time.sleep(1.1)  # past 1% of the TTL: the next read refreshes
        raw.pexpire(f"{prefix}:{{s}}:m", 50_000)
        raw.pexpire(f"{prefix}:{{s}}:h", 50_000)
        store.messages("s")
        assert all(95_000 < t <= 100_000 for t in pttls(raw, prefix, "s"))


def test_fixed_ttl_counts_from_creation(redis_server: Any, raw: redis.Redis, prefix: str) -> None:
    with make(redis_server, prefix, ttl=100, ttl_mode="fixed") as store:
        store.append("s", [msg("a")])
        created = int(raw.hget(f"{prefix}:{{s}}:h", "c"))
        time.sleep(0.05)
        store.append("s", [msg("b")])
        store.messages("s")
        store.pop("s")
        for key in (f"{prefix}:{{s}}:m", f"{prefix}:{{s}}:h"):
            assert raw.pexpiretime(key) == created + 100_000
        store.append("s", [msg("c")], ttl=10)  # a new TTL, still counted from creation
        for key in (f"{prefix}:{{s}}:m", f"{prefix}:{{s}}:h"):
            assert raw.pexpiretime(key) == created + 10_000


def test_ttl_none_persists_both_keys(redis_server: Any, raw: redis.Redis, prefix: str) -> None:
    with make(redis_server, prefix) as store:
        store.append("s", [msg("a")])
        store.append("s", [msg("b")], ttl=None)
        assert pttls(raw, prefix, "s") == (-1, -1)
        store.messages("s")
        store.pop("s")
        assert pttls(raw, prefix, "s") == (-1, -1)
        store.append("s", [msg("c")], ttl=50)
        m, h = pttls(raw, prefix, "s")
        assert 45_000 < m <= 50_000 and 45_000 < h <= 50_000


def test_sessions_expire_and_leave_the_index(
    redis_server: Any, raw: redis.Redis, prefix: str
) -> None:
    with make(redis_server, prefix, ttl=0.3) as store:
        store.append("short", [msg("a")], owner="o")
        store.append("long", [msg("b")], owner="o", ttl=60)
        assert sorted(s.id for s in store.sessions()) == ["long", "short"]
        time.sleep(0.5)
        assert store.messages("short") == []
        assert [s.id for s in store.sessions()] == ["long"]
        assert [s.id for s in store.sessions(owner="o")] == ["long"]
        assert raw.exists(f"{prefix}:{{short}}:m", f"{prefix}:{{short}}:h") == 0


def test_append_and_read_are_one_round_trip(
    counting_store: ConversationStore, round_trips: Any
) -> None:
    store = counting_store
    store.append("s", [msg("first")])  # first call also loads the script
    with round_trips() as append:
        store.append("s", [msg("a"), msg("b")])
    with round_trips() as read:
        store.messages("s")
    with round_trips() as tail:
        store.messages("s", last=2)
    with round_trips() as replace:
        store.replace("s", [msg("x")])
    assert (append.count, read.count, tail.count, replace.count) == (1, 1, 1, 1)


def test_first_append_of_a_session_is_one_round_trip_with_the_index(
    counting_store: ConversationStore, round_trips: Any, raw: redis.Redis, prefix: str
) -> None:
    counting_store.append("warm", [msg("load the script")])
    with round_trips() as first:
        counting_store.append("new", [msg("a")], owner="u")
    assert first.count == 1
    assert raw.zscore(f"{prefix}:idx", "new") is not None
    assert raw.zscore(f"{prefix}:own:u", "new") is not None


def test_last_k_reads_only_the_tail(
    redis_server: Any, raw: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with make(redis_server, prefix) as store:
        store.append("s", [msg(str(i)) for i in range(5000)])
        # Corrupt the oldest records: a tail read must never fetch (or decode) them.
        key = f"{prefix}:{{s}}:m"
        for i in range(100):
            raw.lset(key, i, b"not json")
        with caplog.at_level(logging.WARNING, logger="chatkeep"):
            tail = store.messages("s", last=20)
        assert [m.text for m in tail] == [str(i) for i in range(4980, 5000)]
        assert store.status().skipped_records == 0
        assert caplog.records == []


def test_undecodable_records_are_skipped_logged_and_counted(
    redis_server: Any, raw: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with make(redis_server, prefix) as store:
        store.append("s", [msg("good1"), msg("good2"), msg("good3")])
        key = f"{prefix}:{{s}}:m"
        good = json.loads(raw.lindex(key, 2))
        raw.lset(key, 0, b'{"v":1,"id":"x","role":"user","content":"trunc')  # truncated
        raw.rpush(key, json.dumps({**good, "v": 99}))  # unknown version
        raw.rpush(key, b"\x80\x81 binary")
        with caplog.at_level(logging.WARNING, logger="chatkeep"):
            read = store.messages("s")
        assert [m.text for m in read] == ["good2", "good3"]
        assert store.status().skipped_records == 3
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert "trunc" not in warnings[0].getMessage()
    with make(redis_server, prefix, strict=True) as strict, pytest.raises(SerializationError):
        strict.messages("s")


def test_reads_into_build_from_the_records_and_keep_the_skip_policy(
    redis_server: Any, raw: redis.Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    built: list[dict[str, Any]] = []

    def from_record(record: dict[str, Any]) -> str:
        built.append(record)
        return f"{record['role']}:{record['content']}"

    into = Conversion(lambda m: f"{m.role}:{m.text}", from_record)
    with make(redis_server, prefix, fallback="raise") as store:
        store.append(
            "s", [msg("one"), Message(role="user", content="two", metadata={"blob": b"\x00\xff"})]
        )
        assert store.messages("s", into=into) == ["user:one", "user:two"]
        # Every record went straight to from_record, bytes restored (no Message made).
        assert [r["content"] for r in built] == ["one", "two"]
        assert built[1]["meta"] == {"blob": b"\x00\xff"}
        raw.rpush(f"{prefix}:{{s}}:m", b'{"v":1,"id":"x","role":"user","content":"trunc')
        with caplog.at_level(logging.WARNING, logger="chatkeep"):
            assert store.messages("s", into=into) == ["user:one", "user:two"]
        assert store.status().skipped_records == 1
        assert "trunc" not in caplog.text
    with make(redis_server, prefix, strict=True) as strict, pytest.raises(SerializationError):
        strict.messages("s", into=into)


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_scripts_flushed_mid_session_are_loaded_again_once(
    redis_server: Any, raw: redis.Redis, prefix: str, twin: str
) -> None:
    """A server that lost its scripts (restart, failover, SCRIPT FLUSH): the next
    batched call (a long read: script + LRANGE in one round trip) runs the script by
    EVAL and loads every script in the same round trip; later calls need no reload,
    and the connection stays in step (every reply read, error replies included)."""
    history = [msg(str(i)) for i in range(40)]

    async def scenario() -> list[list[str]]:
        store: Any = ConversationStore.from_url(redis_server.url, key_prefix=prefix)
        if twin == "async":
            store = AsyncConversationStore.from_url(redis_server.url, key_prefix=prefix)

        async def call(result: Any) -> Any:
            return await result if twin == "async" else result

        # An owned session: every read runs its script (to check the owner).
        await call(store.append("s", history, owner="o"))
        await asyncio.sleep(1.1)  # scripts are loaded at most once a second
        raw.script_flush()
        raw.config_resetstat()
        reads = [[m.text for m in await call(store.messages("s", owner="o"))]]
        await call(store.append("s", [msg("40")], owner="o"))
        reads.append([m.text for m in await call(store.messages("s", last=2, owner="o"))])
        for _ in range(10):  # the pooled connection answers in order afterwards
            last = await call(store.messages("s", last=1, owner="o"))
            reads.append([m.text for m in last])
        await call(store.aclose() if twin == "async" else store.close())
        return reads

    reads = asyncio.run(scenario())
    assert reads[0] == [str(i) for i in range(40)]
    assert reads[1] == ["39", "40"]
    assert reads[2:] == [["40"]] * 10
    stats = raw.info("commandstats")
    assert stats["cmdstat_eval"]["calls"] == 1
    assert stats["cmdstat_script|load"]["calls"] == len(SCRIPTS)
    evalsha = stats["cmdstat_evalsha"]
    assert evalsha["failed_calls"] + evalsha["rejected_calls"] == 1  # the one NOSCRIPT


def test_listing_uses_the_index_not_the_keyspace(
    redis_server: Any, raw: redis.Redis, prefix: str
) -> None:
    with make(redis_server, prefix) as store:
        for i in range(20):
            store.append(f"s{i}", [msg("x")], owner="u" if i % 2 else None)
        raw.config_resetstat()
        assert len(store.sessions()) == 20
        assert len(store.sessions(owner="u")) == 10
        stats = raw.info("commandstats")
    assert not any(name in stats for name in ("cmdstat_keys", "cmdstat_scan"))


def test_a_foreign_key_type_is_an_error_not_a_fallback(
    redis_server: Any, raw: redis.Redis, prefix: str
) -> None:
    from chatkeep import BackendError

    raw.set(f"{prefix}:{{s}}:m", "a string")
    with make(redis_server, prefix) as store:
        with pytest.raises(BackendError, match="WRONGTYPE"):
            store.append("s", [msg("x")])
        assert store.status().degraded is False


def test_async_store_uses_redis_asyncio(redis_server: Any, prefix: str) -> None:
    import asyncio

    import redis.asyncio

    from chatkeep import AsyncConversationStore

    async def scenario() -> list[str]:
        async with AsyncConversationStore.from_url(redis_server.url, key_prefix=prefix) as store:
            assert isinstance(store._connection.async_client, redis.asyncio.Redis)
            await store.append("s", [msg("a"), msg("b")])
            return [m.text for m in await store.messages("s")]

    assert asyncio.run(scenario()) == ["a", "b"]


def test_reading_a_missing_session_writes_nothing(
    redis_server: Any, raw: redis.Redis, prefix: str
) -> None:
    with make(redis_server, prefix) as store:
        assert store.messages("ghost") == []
        assert store.messages("ghost", last=5) == []
        store.append("real", [msg("a")])
    assert raw.zrange(f"{prefix}:idx", 0, -1) == [b"real"]
    assert sorted(raw.scan_iter(match=f"{prefix}:*ghost*")) == []


@pytest.mark.parametrize("last", [None, 5, 33, 500])
def test_long_and_short_reads_check_the_owner_and_refresh_the_ttl(
    redis_server: Any, raw: redis.Redis, prefix: str, last: int | None
) -> None:
    from chatkeep import SessionOwnershipError

    with make(redis_server, prefix, ttl=100) as store:
        store.append("s", [msg(str(i)) for i in range(100)], owner="o")
        raw.pexpire(f"{prefix}:{{s}}:m", 5000)
        raw.pexpire(f"{prefix}:{{s}}:h", 5000)
        got = store.messages("s", last=last, owner="o")
        assert [m.text for m in got] == [str(i) for i in range(100)][-(last or 100) :]
        assert pttls(raw, prefix, "s")[0] > 95_000 and pttls(raw, prefix, "s")[1] > 95_000
        with pytest.raises(SessionOwnershipError):
            store.messages("s", last=last, owner="x")


def test_a_burst_beyond_the_pool_waits_for_connections(redis_server: Any, prefix: str) -> None:
    import asyncio

    from chatkeep import AsyncConversationStore

    async def burst() -> tuple[int, bool]:
        store = AsyncConversationStore.from_url(
            redis_server.url, key_prefix=prefix, max_connections=4
        )
        await store.append("warm", [msg("scripts loaded")])
        await asyncio.gather(*(store.append(f"s{i}", [msg("x")]) for i in range(50)))
        count = len(await store.sessions())
        degraded = store.status().degraded
        await store.aclose()
        return count, degraded

    assert asyncio.run(burst()) == (51, False)


def test_an_async_store_serves_one_event_loop_after_another(redis_server: Any, prefix: str) -> None:
    import asyncio

    from chatkeep import AsyncConversationStore

    store = AsyncConversationStore.from_url(redis_server.url, key_prefix=prefix, fallback="raise")

    async def turn(text: str) -> list[str]:
        await store.append("s", [msg(text)])
        return [m.text for m in await store.messages("s")]

    # Each asyncio.run is a new event loop; each gets its own connections, closed with
    # the loop (pytest turns an unclosed connection's ResourceWarning into an error).
    assert asyncio.run(turn("one")) == ["one"]
    assert asyncio.run(turn("two")) == ["one", "two"]
    assert asyncio.run(turn("three")) == ["one", "two", "three"]
    asyncio.run(store.aclose())
