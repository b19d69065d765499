"""The long-term memory contract: every public behaviour of MemoryStore and
AsyncMemoryStore, on every backend of the matrix and through both twins (conftest.py)."""

from __future__ import annotations

import time
import uuid
from datetime import datetime, timezone
from typing import Any

import pytest

from chatkeep import (
    InvalidArgumentError,
    InvalidSessionId,
    SerializationError,
    StoreStatus,
    ValueTooLargeError,
)
from tests.contract.conftest import Harness
from tests.support import scenarios

USER = ("user", "u42")


def test_put_get_replace_delete(memory: Any) -> None:
    assert memory.put(USER, "profile", {"name": "Ada"}) is None
    assert memory.get(USER, "profile") == {"name": "Ada"}
    memory.put(USER, "profile", {"name": "Ada L."})  # replaces
    assert memory.get(USER, "profile") == {"name": "Ada L."}
    assert memory.get(USER, "missing") is None
    assert memory.get(USER, "missing", "dflt") == "dflt"
    assert memory.delete(USER, "profile") is True
    assert memory.delete(USER, "profile") is False
    assert memory.get(USER, "profile", 0) == 0


def test_batches_of_one_namespace(memory: Any) -> None:
    assert memory.mput(USER, {"a": 1, "b": [2], "c": None}) is None
    assert memory.mget(USER, ["c", "nope", "a", "b"]) == [None, None, 1, [2]]
    assert memory.mget(USER, ["nope"], default=-1) == [-1]
    assert memory.mget(USER, []) == []
    memory.mput(USER, {})  # nothing to write
    assert memory.mdelete(USER, ["a", "nope", "b"]) == 2
    assert memory.mdelete(USER, []) == 0
    assert memory.list(USER) == ["c"]


def test_list_is_sorted_filtered_and_limited(memory: Any) -> None:
    for key in ["pref:units", "profile", "pref:tone", "a"]:
        memory.put(USER, key, key)
    assert memory.list(USER) == ["a", "pref:tone", "pref:units", "profile"]
    assert memory.list(USER, prefix="pref:") == ["pref:tone", "pref:units"]
    assert memory.list(USER, prefix="pref:", limit=1) == ["pref:tone"]
    assert memory.list(USER, prefix="zzz") == []
    assert memory.list(("user", "nobody")) == []


def test_namespaces_never_meet(memory: Any) -> None:
    memory.put(("user", "a"), "k", "user a")
    memory.put(("user", "b"), "k", "user b")
    memory.put("user", "k", "plain")
    memory.put(("user", "a", "x"), "k", "deeper")
    memory.put("user:a", "k", "a colon is not a separator")
    assert memory.get(("user", "a"), "k") == "user a"
    assert memory.get(("user", "b"), "k") == "user b"
    assert memory.get("user", "k") == "plain"
    assert memory.get(("user", "a", "x"), "k") == "deeper"
    assert memory.get("user:a", "k") == "a colon is not a separator"
    assert memory.list(("user", "a")) == ["k"]
    memory.delete(("user", "a"), "k")
    assert memory.get(("user", "b"), "k") == "user b"


def test_values_round_trip_under_the_json_policy(memory: Any) -> None:
    value = {
        "text": "héllo ✓ 🎉",
        "nested": {"list": [1, 2.5, True, None], "empty": {}},
        "raw": b"\x00\xff",
        "big": 2**53 + 1,
        "id": uuid.UUID(int=7),
        "pair": ("a", 1),
    }
    memory.put("knowledge", "a {weird}:*key [x]?", value)
    assert memory.get("knowledge", "a {weird}:*key [x]?") == {
        **value,
        "id": str(uuid.UUID(int=7)),
        "pair": ["a", 1],
    }
    assert memory.list("knowledge") == ["a {weird}:*key [x]?"]
    memory.put("knowledge", "plain", "just text")
    assert memory.get("knowledge", "plain") == "just text"


def test_bad_values_and_arguments_write_nothing(make_memory_store: Any) -> None:
    memory = make_memory_store(max_message_bytes=100)
    with pytest.raises(SerializationError, match="datetime"):
        memory.mput(USER, {"ok": 1, "bad": datetime.now(timezone.utc)})
    with pytest.raises(SerializationError):
        memory.put(USER, "obj", object())
    with pytest.raises(SerializationError):
        memory.put(USER, "nan", float("nan"))
    with pytest.raises(ValueTooLargeError, match="nothing was written"):
        memory.mput(USER, {"ok": 1, "big": "x" * 200})
    assert memory.list(USER) == []  # nothing partial
    for namespace in [(), "", ("user", ""), 42, ["user"]]:
        with pytest.raises(InvalidArgumentError):
            memory.put(namespace, "k", 1)
    with pytest.raises(InvalidSessionId):
        memory.put(USER, "", 1)
    with pytest.raises(InvalidArgumentError):
        memory.get(USER, 7)
    with pytest.raises(InvalidArgumentError):
        memory.mget(USER, "ab")  # a str is not a sequence of keys
    with pytest.raises(InvalidArgumentError):
        memory.list(USER, prefix=3)
    for ttl in [0, -1, True, "60", float("inf"), float("nan"), 1e16]:
        with pytest.raises(InvalidArgumentError):
            memory.put(USER, "k", 1, ttl=ttl)
    assert memory.list(USER) == []
    with pytest.raises(InvalidArgumentError):
        make_memory_store(ttls={"user": 0})


def test_ttl_table_defaults_and_overrides(make_memory_store: Any) -> None:
    scenarios.ttl_table_defaults_and_overrides(make_memory_store(ttls=scenarios.TTL_OVERRIDES))


def test_values_expire_sliding_by_default_and_fixed_on_request(make_memory_store: Any) -> None:
    # A 1 s TTL read at half of it: margins of 0.25 s failed under load (a slow first
    # call on a Cluster took them).
    sliding = make_memory_store(ttls={"user": 1.0})
    sliding.put(USER, "a", 1)
    sliding.put(USER, "b", 2, ttl=30)
    put = time.monotonic()
    time.sleep(0.5)
    assert sliding.get(USER, "a") == 1  # the read restarts the TTL
    read = time.monotonic()
    time.sleep(max(0.0, put + 1.25 - time.monotonic()))  # past the unslid expiry
    assert sliding.list(USER) == ["a", "b"]
    time.sleep(max(0.0, read + 1.25 - time.monotonic()))  # past the slid one
    assert sliding.get(USER, "a") is None
    assert sliding.list(USER) == ["b"]
    fixed = make_memory_store(ttls={"agent": 1.0}, ttl_mode="fixed")
    fixed.put("agent", "a", 1)
    put = time.monotonic()
    time.sleep(0.5)
    assert fixed.get("agent", "a") == 1
    time.sleep(max(0.0, put + 1.25 - time.monotonic()))
    assert fixed.get("agent", "a") is None  # counted from creation


def test_reads_with_refresh_false_leave_the_ttl_alone(make_memory_store: Any) -> None:
    """``get``/``mget(..., refresh=False)`` read without sliding the TTL (LangGraph's
    ``refresh_ttl=False`` and a search's scan of items it does not return need it)."""
    store = make_memory_store(ttls={"user": 1.0})
    store.put(USER, "a", 1)
    put = time.monotonic()
    time.sleep(0.5)  # half the TTL: a first call on a new TLS/async connection fits
    assert store.get(USER, "a", refresh=False) == 1
    assert store.mget(USER, ["a"], refresh=False) == [1]
    # a read that slid the TTL would keep it until at least put + 1.5 s
    time.sleep(max(0.0, put + 1.25 - time.monotonic()))
    assert store.get(USER, "a") is None  # expired 1 s after the put: no read slid it


def test_status_flush_and_close(harness: Harness, memory: Any) -> None:
    status = memory.status()
    assert isinstance(status, StoreStatus)
    assert status.backend == ("memory" if harness.backend == "memory" else "redis")
    assert not status.degraded and status.pending_replay == 0
    assert memory.flush() == 0
    memory.close()
    with pytest.raises(InvalidArgumentError, match="closed"):
        memory.get(USER, "k")
    memory.close()  # closing twice is fine


def test_repr_names_no_credentials(harness: Harness, memory: Any) -> None:
    text = repr(memory)
    assert harness.prefix in text
    if harness.acl_user is not None:
        assert harness.acl_user.password not in text


def test_another_store_of_the_prefix_sees_the_values(
    harness: Harness, make_memory_store: Any
) -> None:
    if harness.backend == "memory":
        pytest.skip("memory:// keeps values in its own store")
    memory = make_memory_store()
    memory.put(USER, "k", {"v": 1})
    other = make_memory_store()
    assert other.get(USER, "k") == {"v": 1}
    other.delete(USER, "k")
    assert memory.get(USER, "k") is None


def test_layout_in_redis_one_slot_per_namespace_and_an_expiring_index(
    harness: Harness, memory: Any
) -> None:
    if harness.backend == "memory":
        pytest.skip("no Redis to look at")
    raw = harness.client()
    prefix = harness.prefix
    memory.put(USER, "k1", 1, ttl=60)
    memory.put(USER, "k2", 2, ttl=600)
    index = f"{prefix}:mem:{{user:u42}}:i"
    value = f"{prefix}:mem:{{user:u42}}:v:k1"
    assert raw.type(index) == b"zset"
    assert raw.type(value) == b"hash"
    assert 0 < raw.pttl(value) <= 60_000
    assert 60_000 < raw.pttl(index) <= 600_000  # the longest-lived value's expiry
    assert sorted(raw.zrange(index, 0, -1)) == [b"k1", b"k2"]
    memory.put(USER, "k3", 3, ttl=None)
    assert raw.pttl(index) == -1  # a value that never expires keeps the index


def test_every_store_of_a_redis_shares_one_circuit(harness: Harness, memory: Any) -> None:
    if harness.backend not in ("redis", "cluster", "sentinel", "redis-acl", "redis-tls"):
        pytest.skip("stores made from one URL share its circuit")
    conversations = harness.make()
    memory.put(USER, "k", 1)
    ours = memory.store if hasattr(memory, "store") else memory
    theirs = conversations.store if hasattr(conversations, "store") else conversations
    assert ours.connection is theirs.connection
    assert ours.connection.circuit is not None
    assert ours.connection.circuit is theirs.connection.circuit
