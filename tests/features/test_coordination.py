"""Session locks and live updates, across threads, tasks and processes."""
# ruff: noqa: SIM117  (nested with blocks read as "store, then what is done with it")

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time

import pytest
import redis
import redis.asyncio

from chatkeep import (
    AsyncConversationStore,
    BackendUnavailableError,
    ConversationStore,
    LockTimeoutError,
)
from tests.features.conftest import finish, spawn
from tests.support import scenarios
from tests.support.messages import msg
from tests.support.servers import RedisServer

# -- locks ----------------------------------------------------------------------------------


def test_lock_excludes_and_times_out(url: str, prefix: str) -> None:
    with ConversationStore.from_url(url, key_prefix=prefix) as store:
        scenarios.lock_excludes_and_times_out(store)


async def test_async_lock_serializes_turns(url: str, prefix: str) -> None:
    async with AsyncConversationStore.from_url(url, key_prefix=prefix) as store:

        async def turn(name: str) -> None:
            async with store.lock("s", timeout=5):
                await store.append("s", msg(f"{name}:start"))
                await asyncio.sleep(0.01)
                await store.append("s", msg(f"{name}:end"))

        await asyncio.gather(*(turn(f"t{i}") for i in range(5)))
        texts = [m.text for m in await store.messages("s")]
        for i in range(0, len(texts), 2):
            assert texts[i].split(":")[0] == texts[i + 1].split(":")[0]
        with pytest.raises(LockTimeoutError):
            async with store.lock("s"), store.lock("s", blocking_timeout=0.05):
                pass


@pytest.mark.redis_server
def test_lock_key_is_in_the_session_hash_tag(redis_server: RedisServer, prefix: str) -> None:
    raw = redis.Redis.from_url(redis_server.url)
    with ConversationStore.from_url(redis_server.url, key_prefix=prefix) as store:
        with store.lock("a b", timeout=5):
            assert raw.exists(f"{prefix}:{{a%20b}}:lock")
            assert 0 < raw.pttl(f"{prefix}:{{a%20b}}:lock") <= 5000
        assert not raw.exists(f"{prefix}:{{a%20b}}:lock")
    raw.close()


@pytest.mark.redis_server
def test_a_retried_lock_acquire_finds_its_own_token(redis_server: RedisServer, prefix: str) -> None:
    """A client retry re-sends the acquire script whose first run took the lock: it
    reports the lock as acquired (its own token), anyone else's as taken."""
    from chatkeep.locks import LOCKS

    name = f"{prefix}:{{s}}:lock"
    script = LOCKS["lock_acquire"].text
    raw = redis.Redis.from_url(redis_server.url)
    assert raw.eval(script, 1, name, "mine", 5000) == 1  # the first run
    assert raw.eval(script, 1, name, "mine", 5000) == 1  # the retry: still ours
    assert raw.eval(script, 1, name, "theirs", 5000) == 0

    async def twin() -> list[int]:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        seen = [
            await client.eval(script, 1, name, "mine", 5000),
            await client.eval(script, 1, name, "theirs", 5000),
        ]
        await client.aclose()
        return seen

    assert asyncio.run(twin()) == [1, 0]
    raw.delete(name)
    raw.close()


@pytest.mark.redis_server
@pytest.mark.slow
def test_processes_contending_never_interleave_turns(
    redis_server: RedisServer, prefix: str
) -> None:
    workers = [spawn("turns", redis_server.url, prefix, name, "15") for name in ("A", "B")]
    for proc in workers:
        finish(proc)
    with ConversationStore.from_url(redis_server.url, key_prefix=prefix) as store:
        texts = [m.text for m in store.messages("shared")]
    assert len(texts) == 60
    for i in range(0, 60, 2):
        name, turn, what, seen = texts[i].split(":")
        assert what == "start" and int(seen) == i  # each turn read the whole history
        assert texts[i + 1] == f"{name}:{turn}:end"  # and nothing came in between
    assert {t.split(":")[0] for t in texts} == {"A", "B"}


def test_lock_during_an_outage_is_per_process(fresh_redis_server: RedisServer, prefix: str) -> None:
    server = fresh_redis_server
    store = ConversationStore.from_url(server.url, key_prefix=prefix)
    strict = ConversationStore.from_url(server.url, key_prefix=prefix, fallback="raise")
    server.stop()
    with store.lock("s") as held:
        assert held.local
        with pytest.raises(LockTimeoutError), store.lock("s", blocking_timeout=0.05):
            pass
    with pytest.raises(BackendUnavailableError), strict.lock("s"):
        pass
    server.start()
    store.close()
    strict.close()


def _lock_warnings(caplog: pytest.LogCaptureFixture) -> int:
    return sum("session locks" in r.getMessage() for r in caplog.records)


def test_lock_fallback_is_logged_once_per_outage(
    fresh_redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    server = fresh_redis_server
    caplog.set_level(logging.WARNING, logger="chatkeep")
    with ConversationStore.from_url(server.url, key_prefix=prefix, probe_interval=0.01) as store:
        with store.lock("warm") as held:
            assert not held.local
        server.stop()
        for sid in ("a", "b", "a"):
            with store.lock(sid) as held:
                assert held.local
        assert _lock_warnings(caplog) == 1  # one outage, one warning
        server.start()
        store.flush()  # back on Redis
        with store.lock("a") as held:
            assert not held.local
        server.stop()
        for _ in range(2):
            with store.lock("a") as held:
                assert held.local
        assert _lock_warnings(caplog) == 2  # a second outage
        server.start()


def test_async_lock_fallback_is_logged_once_per_outage(
    fresh_redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The asyncio twin, one outage per ``asyncio.run``; a per-process lock waited for
    by another task times out without blocking the loop."""
    server = fresh_redis_server
    caplog.set_level(logging.WARNING, logger="chatkeep")
    store = AsyncConversationStore.from_url(server.url, key_prefix=prefix, probe_interval=0.01)
    strict = AsyncConversationStore.from_url(server.url, key_prefix=prefix, fallback="raise")

    async def outage() -> None:
        async with store.lock("a") as held:
            assert not held.local
        server.stop()
        for _ in range(3):
            async with store.lock("a") as held:
                assert held.local
                with pytest.raises(LockTimeoutError):
                    async with store.lock("a", blocking_timeout=0.05):
                        pass
        with pytest.raises(BackendUnavailableError):
            async with strict.lock("a"):
                pass
        server.start()
        await store.flush()

    asyncio.run(outage())
    assert _lock_warnings(caplog) == 1
    asyncio.run(outage())
    assert _lock_warnings(caplog) == 2
    asyncio.run(store.aclose())
    asyncio.run(strict.aclose())


# -- live updates -------------------------------------------------------------------------


def test_subscribe_sees_appends(url: str, prefix: str) -> None:
    with ConversationStore.from_url(url, key_prefix=prefix) as store:
        scenarios.subscription_sees_appends(store)


async def test_async_subscribe_sees_appends(url: str, prefix: str) -> None:
    async with AsyncConversationStore.from_url(url, key_prefix=prefix) as store:
        async with store.subscribe("s1") as updates:
            await store.append("s1", [msg("one"), msg("two")])
            seen = []
            async for message in updates:
                seen.append(message.text)
                if len(seen) == 2:
                    break
            assert seen == ["one", "two"]


@pytest.mark.redis_server
def test_only_publishing_stores_publish(redis_server: RedisServer, prefix: str) -> None:
    quiet = ConversationStore.from_url(redis_server.url, key_prefix=prefix)
    loud = ConversationStore.from_url(redis_server.url, key_prefix=prefix, publish=True)
    with ConversationStore.from_url(redis_server.url, key_prefix=prefix) as reader:
        with reader.subscribe("s") as updates:
            quiet.append("s", msg("quiet"))
            loud.append("s", msg("loud"))
            message = updates.get(timeout=2)
            assert message is not None and message.text == "loud"
    quiet.close()
    loud.close()


@pytest.mark.redis_server
@pytest.mark.slow
def test_subscribe_across_processes_within_milliseconds(
    redis_server: RedisServer, prefix: str
) -> None:
    with ConversationStore.from_url(redis_server.url, key_prefix=prefix) as store:
        with store.subscribe("live") as updates:
            writer = spawn("publish", redis_server.url, prefix, "20")
            latencies = []
            for i in range(20):
                message = updates.get(timeout=10)
                assert message is not None and message.metadata == {"i": i}
                latencies.append(time.time() - float(message.text))
            finish(writer)
    median = statistics.median(latencies)
    print(f"subscribe latency across processes: median {median * 1000:.2f} ms")
    assert median < 0.05


@pytest.mark.redis_server
async def test_async_subscribe_across_processes(redis_server: RedisServer, prefix: str) -> None:
    async with AsyncConversationStore.from_url(redis_server.url, key_prefix=prefix) as store:
        async with store.subscribe("live") as updates:
            writer = spawn("publish", redis_server.url, prefix, "5")
            got = [await updates.get(timeout=10) for _ in range(5)]
            assert [m.metadata["i"] for m in got if m] == [0, 1, 2, 3, 4]
            await asyncio.to_thread(finish, writer)


def test_subscription_reconnects_after_a_restart(
    fresh_redis_server: RedisServer, prefix: str
) -> None:
    server = fresh_redis_server
    writer = ConversationStore.from_url(
        server.url, key_prefix=prefix, publish=True, probe_interval=0.05
    )
    with ConversationStore.from_url(server.url, key_prefix=prefix) as reader:
        updates = reader.subscribe("s")
        writer.append("s", msg("before"))
        assert (m := updates.get(timeout=2)) is not None and m.text == "before"
        server.stop()
        assert updates.get(timeout=0.3) is None
        assert updates.reconnects >= 1
        server.start()
        deadline = time.monotonic() + 10
        received = None
        while received is None and time.monotonic() < deadline:
            writer.flush()
            writer.append("s", msg("after"))
            received = updates.get(timeout=0.3)
        assert received is not None and received.text == "after"
        updates.close()
    writer.close()


async def test_async_subscription_reconnects_after_a_restart(
    fresh_redis_server: RedisServer, prefix: str
) -> None:
    server = fresh_redis_server
    writer = ConversationStore.from_url(
        server.url, key_prefix=prefix, publish=True, probe_interval=0.05
    )
    async with AsyncConversationStore.from_url(server.url, key_prefix=prefix) as reader:
        async with reader.subscribe("s") as updates:
            server.stop()
            assert await updates.get(timeout=0.3) is None
            server.start()
            received = None
            deadline = time.monotonic() + 10
            while received is None and time.monotonic() < deadline:
                writer.flush()
                writer.append("s", msg("after"))
                received = await updates.get(timeout=0.3)
            assert received is not None and received.text == "after"
            assert updates.reconnects >= 1
    writer.close()


def test_memory_subscription_from_another_thread(prefix: str) -> None:
    with ConversationStore.from_url("memory://", key_prefix=prefix) as store:
        with store.subscribe("s") as updates:
            threading.Timer(0.05, store.append, args=("s", msg("later"))).start()
            message = next(iter(updates))
            assert message.text == "later"
