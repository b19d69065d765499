"""Result cache: decorator, TTL, stampede protection, fallback, LangChain BaseCache."""

from __future__ import annotations

import asyncio
import time

import pytest
import redis

from chatkeep import (
    DEFAULT_CACHE_TTL,
    AsyncResultCache,
    BackendUnavailableError,
    InvalidArgumentError,
    ResultCache,
    SerializationError,
    ValueTooLargeError,
)
from tests.features.conftest import finish, spawn
from tests.support.servers import RedisServer
from tests.support.threads import in_threads


def test_decorator_caches_by_arguments(url: str, prefix: str) -> None:
    calls: list[tuple[str, int]] = []
    with ResultCache.from_url(url, key_prefix=prefix, namespace="tools") as cache:
        assert cache.ttl == DEFAULT_CACHE_TTL == 86400

        @cache.cached
        def weather(city: str, *, days: int = 1) -> dict[str, object]:
            calls.append((city, days))
            return {"city": city, "days": days, "raw": b"\x01"}

        assert weather("Oslo") == {"city": "Oslo", "days": 1, "raw": b"\x01"}
        assert weather("Oslo") == {"city": "Oslo", "days": 1, "raw": b"\x01"}
        assert weather("Oslo", days=2)["days"] == 2
        assert calls == [("Oslo", 1), ("Oslo", 2)]
        assert cache.hits == 1

        @cache.cached(key=lambda query, **_: query.lower(), ttl=60)
        def search(query: str, *, verbose: bool = False) -> list[str]:
            calls.append((query, 0))
            return [query]

        assert search("Redis") == ["Redis"]
        assert search("REDIS", verbose=True) == ["Redis"]  # same key
        assert len(calls) == 3
        # get/set/delete/clear by inputs
        cache.set({"b": 1, "a": [1, 2]}, "v")
        assert cache.get({"a": [1, 2], "b": 1}) == "v"  # canonical JSON: key order ignored
        assert cache.key({"b": 1, "a": [1, 2]}) == cache.key({"a": [1, 2], "b": 1})
        assert cache.delete({"a": [1, 2], "b": 1}) is True
        assert cache.get({"a": [1, 2], "b": 1}, "gone") == "gone"
        assert cache.clear() >= 2
        assert weather("Oslo")["city"] == "Oslo"
        assert len(calls) == 4  # computed again after clear()


def test_inputs_and_values_are_checked(url: str, prefix: str) -> None:
    with ResultCache.from_url(url, key_prefix=prefix, max_message_bytes=50) as cache:
        with pytest.raises(SerializationError):
            cache.get({"x": object()})
        with pytest.raises(ValueTooLargeError):
            cache.set("k", "x" * 100)
        assert cache.get("k") is None
        with pytest.raises(InvalidArgumentError, match="AsyncResultCache"):

            @cache.cached
            async def nope() -> None: ...

        # a failing computation caches nothing and releases the key
        def boom() -> int:
            raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            cache.get_or_compute("k2", boom)
        assert cache.get_or_compute("k2", lambda: 7) == 7


def test_a_claim_run_twice_by_its_caller_still_holds(url: str, prefix: str) -> None:
    """A client may send the claim script twice (a retry after a lost reply): the second
    run reports the lock the first took for that caller, so it computes instead of
    waiting out its own lock (seen on a Cluster: all five callers waited 30 s)."""
    if url == "memory://":
        pytest.skip("the claim script runs on Redis")
    with ResultCache.from_url(url, key_prefix=prefix) as cache:
        digest = cache.key(["claimed twice"])

        def claim(token: str) -> tuple[bytes | None, bool]:
            found = cache._drive(cache._claim(digest, token))
            return found.data, found.claimed

        assert claim("token-a") == (None, True)
        assert claim("token-a") == (None, True)  # the retry
        assert claim("token-b") == (None, False)  # anyone else waits


async def test_async_decorator(url: str, prefix: str) -> None:
    calls = []
    async with AsyncResultCache.from_url(url, key_prefix=prefix) as cache:

        @cache.cached(ttl=30)
        async def summarize(text: str) -> str:
            calls.append(text)
            await asyncio.sleep(0.01)
            return text.upper()

        results = await asyncio.gather(*(summarize("hi") for _ in range(5)))
        assert results == ["HI"] * 5
        assert calls == ["hi"]  # stampede protection inside one process too
        await cache.set(["x"], {"y": 1})
        assert await cache.get(["x"]) == {"y": 1}
        assert await cache.delete(["x"]) is True
        assert await cache.clear() >= 1
        with pytest.raises(InvalidArgumentError):
            cache.cached(lambda: 1)


@pytest.mark.redis_server
def test_ttl_expiry_on_a_real_server(redis_server: RedisServer, prefix: str) -> None:
    with ResultCache.from_url(redis_server.url, key_prefix=prefix, ttl=0.3) as cache:
        n = []
        assert cache.get_or_compute("q", lambda: n.append(1) or len(n)) == 1
        assert cache.get_or_compute("q", lambda: n.append(1) or len(n)) == 1
        raw = redis.Redis.from_url(redis_server.url)
        entry = f"{prefix}:cache:default:{{{cache.key('q')}}}"
        assert 0 < raw.pttl(entry) <= 300
        time.sleep(0.4)
        assert cache.get("q") is None
        assert cache.get_or_compute("q", lambda: n.append(1) or len(n)) == 2
        raw.close()


@pytest.mark.redis_server
@pytest.mark.slow
def test_stampede_protection_across_processes(redis_server: RedisServer, prefix: str) -> None:
    start_at = time.time() + 1.5  # after the interpreters have started
    workers = [spawn("compute", redis_server.url, prefix, str(start_at)) for _ in range(4)]
    outputs = [finish(proc).strip() for proc in workers]
    assert outputs == ["42"] * 4
    raw = redis.Redis.from_url(redis_server.url)
    assert raw.get(f"{prefix}:computations") == b"1"
    raw.close()


@pytest.mark.redis_server
def test_stampede_protection_across_threads(redis_server: RedisServer, prefix: str) -> None:
    computations = []
    with ResultCache.from_url(redis_server.url, key_prefix=prefix) as cache:

        def slow() -> int:
            computations.append(1)
            time.sleep(0.2)
            return 5

        results = in_threads(6, lambda _: cache.get_or_compute("k", slow))
        assert results == [5] * 6
        assert len(computations) == 1


def test_fallback_during_an_outage(fresh_redis_server: RedisServer, prefix: str) -> None:
    server = fresh_redis_server
    with ResultCache.from_url(server.url, key_prefix=prefix, probe_interval=0.05) as cache:
        assert cache.get_or_compute("seen", lambda: "before") == "before"
        server.stop()
        assert cache.get("seen") == "before"  # local copy
        computations = []

        def slow() -> str:
            computations.append(1)
            time.sleep(0.1)
            return "during"

        in_threads(4, lambda _: cache.get_or_compute("k", slow))
        assert len(computations) == 1  # per-process locking while Redis is away
        assert cache.status().degraded
        server.start()
        time.sleep(0.1)
        assert cache.get_or_compute("after", lambda: "back") == "back"
        assert not cache.status().degraded
    with ResultCache.from_url(server.url, key_prefix=prefix, fallback="raise") as strict:
        assert strict.get("after") == "back"
        server.stop()
        with pytest.raises(BackendUnavailableError):
            strict.get("after")
        server.start()


# -- LangChain BaseCache ------------------------------------------------------------------


def test_langchain_llm_cache_with_a_counting_fake_model(url: str, prefix: str) -> None:
    from langchain_core.globals import set_llm_cache
    from langchain_core.language_models import FakeListChatModel, FakeListLLM

    from chatkeep_langchain import RedisCache

    llm_cache = RedisCache(url=url, key_prefix=prefix, ttl=60)
    set_llm_cache(llm_cache)
    try:
        llm = FakeListLLM(responses=["first", "second", "third"])
        assert llm.invoke("hello") == "first"
        assert llm.invoke("hello") == "first"  # cached: the model was not called
        assert llm.invoke("other") == "second"
        assert llm.i == 2
        chat = FakeListChatModel(responses=["a", "b"])
        assert chat.invoke("hi").content == "a"
        assert chat.invoke("hi").content == "a"
        assert chat.i == 1
        llm_cache.clear()
        assert llm.invoke("hello") == "third"
    finally:
        set_llm_cache(None)
        assert llm_cache.cache is not None
        llm_cache.cache.close()


async def test_langchain_llm_cache_async(url: str, prefix: str) -> None:
    from langchain_core.language_models import FakeListChatModel

    from chatkeep_langchain import RedisCache

    async with AsyncResultCache.from_url(url, key_prefix=prefix, namespace="llm") as acache:
        llm_cache = RedisCache(async_cache=acache)
        chat = FakeListChatModel(responses=["a", "b"], cache=llm_cache)
        assert (await chat.ainvoke("hi")).content == "a"
        assert (await chat.ainvoke("hi")).content == "a"
        assert chat.i == 1
        await llm_cache.aclear()
        assert (await chat.ainvoke("hi")).content == "b"


# -- regressions of issue 13 ----------------------------------------------------------------


@pytest.mark.redis_server
def test_async_result_cache_from_a_url_works_across_two_event_loops(
    redis_server: RedisServer, prefix: str
) -> None:
    """Issue 13: the second ``asyncio.run`` raised ``RuntimeError: Event loop is closed``."""
    cache = AsyncResultCache.from_url(redis_server.url, key_prefix=prefix, fallback="raise")

    async def compute() -> int:
        return 7

    assert asyncio.run(cache.get_or_compute("q", compute)) == 7
    assert asyncio.run(cache.get("q")) == 7
    asyncio.run(cache.set("r", [1]))
    assert asyncio.run(cache.get("r")) == [1]
    asyncio.run(cache.aclose())


@pytest.mark.redis_server
def test_a_least_privilege_user_can_use_the_result_cache(least_privilege: str, prefix: str) -> None:
    """Issue 13: a user made from ``chatkeep.redis.acl_rules()`` got NOPERM on set."""
    with ResultCache.from_url(least_privilege, key_prefix=prefix, fallback="raise") as cache:
        cache.set("k", {"v": 1})
        assert cache.get("k") == {"v": 1}
        assert cache.get_or_compute("c", lambda: "computed") == "computed"
        assert cache.get_or_compute("c", lambda: "again") == "computed"
        assert cache.delete("k") is True
        assert cache.clear() == 1
        assert cache.get("c") is None


@pytest.mark.redis_server
def test_the_cache_index_expires_with_its_longest_lived_entry(
    redis_server: RedisServer, prefix: str
) -> None:
    """Issue 13: ``<prefix>:cache:<ns>:idx`` never expired (a namespace used once kept
    its index forever). It lives as long as its longest-lived entry; an entry that
    never expires makes it persist."""
    raw = redis.Redis.from_url(redis_server.url)
    index = f"{prefix}:cache:tools:idx"
    try:
        with ResultCache.from_url(redis_server.url, key_prefix=prefix, namespace="tools") as cache:
            cache.set("short", 1, ttl=60)
            assert 0 < raw.pttl(index) <= 60_000
            cache.set("long", 2, ttl=600)
            assert 60_000 < raw.pttl(index) <= 600_000
            cache.set("shorter", 3, ttl=30)  # does not shorten it
            assert 60_000 < raw.pttl(index) <= 600_000
            cache.get_or_compute("computed", lambda: 4, ttl=3000)
            assert 600_000 < raw.pttl(index) <= 3_000_000
            cache.set("forever", 5, ttl=None)
            assert raw.pttl(index) == -1
    finally:
        raw.close()
