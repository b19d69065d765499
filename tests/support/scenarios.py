"""Scenarios both the contract suite (every backend, the sync store and the async twin
behind a facade) and the feature suite (stores made by ``from_url``) run: one body,
so the two cannot drift apart."""
# ruff: noqa: SIM117  (nested with blocks read as "lock, then what is done under it")

from __future__ import annotations

from typing import Any

import pytest

from chatkeep import DEFAULT_MEMORY_TTLS, LockTimeoutError
from tests.support.messages import msg


def lock_excludes_and_times_out(store: Any) -> None:
    with store.lock("s1", timeout=5) as held:
        assert held.local is False
        with pytest.raises(LockTimeoutError):
            with store.lock("s1", blocking_timeout=0.05):
                pass
        with store.lock("s2", blocking_timeout=0.05):  # other sessions are free
            pass
    with store.lock("s1", blocking_timeout=0.05):  # released
        pass


def subscription_sees_appends(store: Any) -> None:
    with store.subscribe("s1") as updates:
        assert updates.reconnects == 0
        assert updates.get(timeout=0.05) is None
        store.append("s1", [msg("one"), msg("two")])
        store.append("other", msg("elsewhere"))
        store.append("s1", msg("three"), idempotency_key="k")
        store.append("s1", msg("three again"), idempotency_key="k")  # duplicate: not stored
        got = [updates.get(timeout=5) for _ in range(3)]
        assert [m.text for m in got if m] == ["one", "two", "three"]
        assert updates.get(timeout=0.1) is None


TTL_OVERRIDES = {"agent": 60, "scratch": None}


def ttl_table_defaults_and_overrides(memory: Any) -> None:
    """``memory``: a long-term memory store made with ``ttls=TTL_OVERRIDES``."""
    assert DEFAULT_MEMORY_TTLS == {
        "user": 3 * 86400.0,
        "agent": 3 * 86400.0,
        "knowledge": 7 * 86400.0,
        "summary": 30 * 86400.0,
    }
    assert memory.ttls == {**DEFAULT_MEMORY_TTLS, "agent": 60.0, "scratch": None}
    for namespace, expected in [
        (("user", "u1"), 3 * 86400),
        (("agent", "a1"), 60),
        ("knowledge", 7 * 86400),
        (("summary", "u1"), 30 * 86400),
        ("other", 7 * 86400),  # the store's ttl (StoreConfig default)
    ]:
        memory.put(namespace, "k", 1)
        left = memory.ttl(namespace, "k")
        assert left is not None and expected - 5 < left <= expected, namespace
    memory.put("scratch", "k", 1)
    assert memory.ttl("scratch", "k") is None
    memory.put(("user", "u1"), "short", 1, ttl=10)
    left = memory.ttl(("user", "u1"), "short")
    assert left is not None and 5 < left <= 10
    memory.put(("user", "u1"), "never", 1, ttl=None)
    assert memory.ttl(("user", "u1"), "never") is None
    assert memory.ttl(("user", "u1"), "missing") == 0.0
