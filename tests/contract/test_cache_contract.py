"""The result cache contract: every public behaviour of ResultCache and
AsyncResultCache, on every backend of the matrix and through both twins (conftest.py)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import pytest

from chatkeep import (
    DEFAULT_CACHE_TTL,
    InvalidArgumentError,
    SerializationError,
    StoreStatus,
    ValueTooLargeError,
)
from tests.contract.conftest import Harness
from tests.support.threads import in_threads


def drive(cache: Any, flow: Any) -> Any:
    """Run one of the cache's private flows with its twin's driver."""
    driver = cache._adrive if hasattr(cache, "store") else cache._drive
    return driver(flow)


def test_get_set_delete(cache: Any) -> None:
    assert cache.ttl == DEFAULT_CACHE_TTL == 86400
    assert cache.get(["q", 1]) is None
    assert cache.get(["q", 1], "dflt") == "dflt"
    assert cache.set(["q", 1], {"answer": 42, "raw": b"\x01"}) is None
    assert cache.get(["q", 1]) == {"answer": 42, "raw": b"\x01"}
    cache.set(["q", 1], "replaced")
    assert cache.get(["q", 1]) == "replaced"
    cache.set("nothing", None)
    assert cache.get("nothing", "dflt") is None  # a cached None is a hit
    assert cache.delete(["q", 1]) is True
    assert cache.delete(["q", 1]) is False
    assert cache.get(["q", 1]) is None
    assert (cache.hits, cache.misses) == (3, 3)


def test_keys_are_the_sha256_of_canonical_json(cache: Any) -> None:
    assert cache.key({"b": 1, "a": [1, 2]}) == cache.key({"a": [1, 2], "b": 1})
    assert cache.key({"a": 1}) == hashlib.sha256(b'{"a":1}').hexdigest()
    assert cache.key([1]) != cache.key([1.5])
    cache.set({"b": 1, "a": [1, 2]}, "v")
    assert cache.get({"a": [1, 2], "b": 1}) == "v"  # key order does not matter


def test_get_or_compute_computes_once(cache: Any) -> None:
    calls: list[int] = []

    def compute() -> dict[str, int]:
        calls.append(1)
        return {"n": len(calls)}

    assert cache.get_or_compute("k", compute) == {"n": 1}
    assert cache.get_or_compute("k", compute) == {"n": 1}
    assert cache.get("k") == {"n": 1}
    assert calls == [1]
    assert (cache.hits, cache.misses, cache.computations) == (2, 1, 1)


def test_get_or_compute_awaits_what_the_async_twin_computes(harness: Harness, cache: Any) -> None:
    compute = harness.function(lambda: "computed")
    assert cache.get_or_compute("k", compute) == "computed"
    assert cache.get("k") == "computed"


def test_a_failing_computation_caches_nothing_and_frees_the_key(cache: Any) -> None:
    def boom() -> int:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        cache.get_or_compute("k", boom)
    assert cache.get("k") is None
    assert cache.get_or_compute("k", lambda: 7) == 7  # no lock left behind to wait out


def test_decorator_caches_by_arguments(harness: Harness, cache: Any) -> None:
    calls: list[tuple[str, int]] = []

    def weather(city: str, *, days: int = 1) -> dict[str, Any]:
        calls.append((city, days))
        return {"city": city, "days": days}

    cached = cache.cached(harness.function(weather))
    assert cached.__name__ == "weather"
    assert cached.cache is (cache.store if hasattr(cache, "store") else cache)
    assert harness.run(cached("Oslo")) == {"city": "Oslo", "days": 1}
    assert harness.run(cached("Oslo")) == {"city": "Oslo", "days": 1}
    assert harness.run(cached("Oslo", days=2))["days"] == 2
    assert calls == [("Oslo", 1), ("Oslo", 2)]

    def search(query: str, *, verbose: bool = False) -> list[str]:
        calls.append((query, 0))
        return [query]

    by_query = cache.cached(key=lambda query, **_: query.lower(), ttl=60, name="search")(
        harness.function(search)
    )
    assert harness.run(by_query("Redis")) == ["Redis"]
    assert harness.run(by_query("REDIS", verbose=True)) == ["Redis"]  # the same key
    assert len(calls) == 3
    assert cache.get({"fn": "search", "in": "redis"}) == ["Redis"]
    assert cache.clear() >= 3
    assert harness.run(cached("Oslo"))["city"] == "Oslo"
    assert len(calls) == 4  # computed again after clear()


def test_decorator_refuses_the_other_twins_functions(harness: Harness, cache: Any) -> None:
    def plain() -> int:
        return 1

    async def coroutine_function() -> int:
        return 1

    other = plain if harness.twin == "async" else coroutine_function
    name = "ResultCache" if harness.twin == "async" else "AsyncResultCache"
    with pytest.raises(InvalidArgumentError, match=name):
        cache.cached(other)


def test_entries_expire_and_none_means_never(harness: Harness, make_cache: Any) -> None:
    cache = make_cache(ttl=0.3)
    cache.set("short", 1)
    cache.set("long", 2, ttl=30)
    cache.set("forever", 3, ttl=None)
    assert cache.get_or_compute("computed", lambda: 4) == 4
    time.sleep(0.45)
    assert cache.get("short") is None
    assert cache.get("computed") is None
    assert cache.get("long") == 2
    assert cache.get("forever") == 3
    assert cache.get_or_compute("computed", lambda: 5) == 5


def test_bad_inputs_values_and_options(make_cache: Any) -> None:
    cache = make_cache(max_message_bytes=50)
    with pytest.raises(SerializationError):
        cache.get({"x": object()})
    with pytest.raises(SerializationError):
        cache.set("k", float("nan"))
    with pytest.raises(ValueTooLargeError):
        cache.set("k", "x" * 100)
    with pytest.raises(ValueTooLargeError):
        cache.get_or_compute("k", lambda: "x" * 100)
    assert cache.get("k") is None  # nothing written
    assert cache.get_or_compute("k", lambda: "small") == "small"  # the key was freed
    for ttl in [0, -1, True, "60", float("inf"), float("nan"), 1e16]:
        with pytest.raises(InvalidArgumentError):
            cache.set("k", 1, ttl=ttl)
    for options in [
        {"ttl": 0},
        {"lock_timeout": 0},
        {"lock_timeout": "1"},
        {"namespace": ""},
        {"namespace": 3},
    ]:
        with pytest.raises(InvalidArgumentError):
            make_cache(**options)


def test_namespaces_never_meet(make_cache: Any) -> None:
    tools = make_cache(namespace="tools")
    llm = make_cache(namespace="llm")
    tools.set("q", "from tools")
    llm.set("q", "from llm")
    assert tools.get("q") == "from tools"
    assert llm.get("q") == "from llm"
    assert tools.clear() == 1
    assert tools.get("q") is None
    assert llm.get("q") == "from llm"


def test_clear_forgets_every_entry(cache: Any) -> None:
    for i in range(12):
        cache.set(["k", i], i)
    assert cache.clear() == 12
    assert [cache.get(["k", i]) for i in range(12)] == [None] * 12
    assert cache.clear() == 0


def test_one_computation_per_key_for_concurrent_callers(harness: Harness, cache: Any) -> None:
    computations: list[int] = []

    def slow() -> int:
        computations.append(1)
        time.sleep(0.1)
        return 5

    if harness.twin == "sync":
        results = in_threads(5, lambda _: cache.get_or_compute("k", slow))
    else:
        acache = cache.store

        async def aslow() -> int:
            computations.append(1)
            await asyncio.sleep(0.1)
            return 5

        async def callers() -> list[int]:
            return list(
                await asyncio.gather(*(acache.get_or_compute("k", aslow) for _ in range(5)))
            )

        results = harness.run(callers())
    assert results == [5] * 5
    assert computations == [1]
    assert cache.computations == 1


def test_a_claim_is_held_by_its_caller_only(harness: Harness, make_cache: Any) -> None:
    """Another caller's claim makes a caller wait for its value (here: until the lock
    times out, then it computes); a claim sent twice by its caller still holds."""
    if harness.backend == "memory":
        pytest.skip("claims are made in Redis")
    first = make_cache(lock_timeout=0.2)
    digest = first.key("contended")
    assert drive(first, first._claim(digest, "token-a")).claimed
    assert drive(first, first._claim(digest, "token-a")).claimed  # a retried claim
    assert not drive(first, first._claim(digest, "token-b")).claimed
    second = make_cache(lock_timeout=0.2)
    assert second.get_or_compute("contended", lambda: "waited") == "waited"
    assert first.get("contended") == "waited"


def test_the_index_expires_with_its_longest_lived_entry(harness: Harness, make_cache: Any) -> None:
    if harness.backend == "memory":
        pytest.skip("no Redis to look at")
    raw = harness.client()
    cache = make_cache(namespace="tools")
    index = f"{harness.prefix}:cache:tools:idx"
    entry = f"{harness.prefix}:cache:tools:{{{cache.key('short')}}}"
    cache.set("short", 1, ttl=60)
    assert raw.type(entry) == b"string"
    assert 0 < raw.pttl(entry) <= 60_000
    assert raw.type(index) == b"zset"
    assert 0 < raw.pttl(index) <= 60_000
    cache.set("long", 2, ttl=600)
    cache.set("shorter", 3, ttl=30)
    assert 60_000 < raw.pttl(index) <= 600_000
    cache.set("forever", 4, ttl=None)
    assert raw.pttl(index) == -1
    assert cache.delete("forever") is True
    assert raw.zscore(index, cache.key("forever")) is None


def test_status_and_close(harness: Harness, cache: Any) -> None:
    status = cache.status()
    assert isinstance(status, StoreStatus)
    assert status.backend == ("memory" if harness.backend == "memory" else "redis")
    assert not status.degraded and status.pending_replay == 0
    text = repr(cache)
    assert harness.prefix in text and "default" in text
    if harness.acl_user is not None:
        assert harness.acl_user.password not in text
    cache.close()
    with pytest.raises(InvalidArgumentError, match="closed"):
        cache.get("k")
