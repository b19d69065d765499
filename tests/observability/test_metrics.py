"""store.metrics(): operations, errors by kind, fallback transitions, journal, replay,
skipped records, latency histogram; and what the chatkeep logger says (and does not)."""

from __future__ import annotations

import logging
import time
from time import perf_counter

import pytest
import redis

from chatkeep import (
    AsyncConversationStore,
    BackendUnavailableError,
    ConversationStore,
    Message,
    SessionOwnershipError,
)
from chatkeep.metrics import ERROR_KINDS, LATENCY_BOUNDS, OPERATIONS, Metrics
from tests.support.servers import RedisServer, free_port

SECRET = "TOP-SECRET-CONTENT"


def test_counts_operations_and_latency_on_memory() -> None:
    store = ConversationStore.from_url("memory://")
    store.append("s", Message(role="user", content="a"))
    store.append("s", Message(role="user", content="b"))
    store.messages("s")
    store.info("s")
    store.sessions()
    snap = store.metrics()
    assert set(snap.operations) == set(OPERATIONS)
    assert snap.operations["append"] == 2
    assert snap.operations["read"] == 1
    assert snap.operations["info"] == 1 and snap.operations["sessions"] == 1
    assert snap.operations["pop"] == 0
    append = snap.latency["append"]
    assert append.count == 2 and sum(append.counts) == 2
    assert len(append.counts) == len(LATENCY_BOUNDS) + 1
    assert 0 < append.sum < 1
    q = append.quantile(0.99)
    assert q is not None and q <= 1
    assert snap.latency["pop"].quantile(0.5) is None
    assert set(snap.errors) == set(ERROR_KINDS) and not any(snap.errors.values())
    assert snap.fallback_transitions == {"degraded": 0, "recovered": 0}


def test_errors_are_counted_by_kind() -> None:
    store = ConversationStore.from_url("memory://")
    store.append("s", Message(role="user", content="a"), owner="alice")
    with pytest.raises(SessionOwnershipError):
        store.messages("s", owner="bob")
    snap = store.metrics()
    assert snap.errors["ownership"] == 1
    assert snap.operations["read"] == 1  # failed calls are operations too


def test_unreachable_without_fallback_is_counted() -> None:
    store = ConversationStore.from_url(f"redis://127.0.0.1:{free_port()}/0", fallback="raise")
    with pytest.raises(BackendUnavailableError):
        store.append("s", Message(role="user", content="a"))
    assert store.metrics().errors["unreachable"] == 1


@pytest.mark.redis_server
def test_fallback_transitions_journal_and_replay(
    fresh_redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"redis://127.0.0.1:{fresh_redis_server.port}/0"
    store = ConversationStore.from_url(url, key_prefix=prefix, probe_interval=0.05, probe_max=0.05)
    store.append("s", Message(role="user", content=SECRET))
    fresh_redis_server.stop()
    caplog.set_level(logging.DEBUG, logger="chatkeep")
    for i in range(3):
        store.append("s", Message(role="user", content=f"{SECRET} {i}"))
    store.messages("s")
    snap = store.metrics()
    assert snap.fallback_transitions == {"degraded": 1, "recovered": 0}
    assert snap.journal_size == 3
    assert snap.served_by_fallback == 4
    assert snap.errors["unreachable"] >= 1
    fresh_redis_server.start()
    time.sleep(0.1)
    assert store.flush() == 0
    snap = store.metrics()
    assert snap.fallback_transitions == {"degraded": 1, "recovered": 1}
    assert snap.journal_size == 0 and snap.replayed == 3
    assert snap.operations["append"] == 4 and snap.operations["read"] == 1
    # One WARNING per transition, never per call, with no content and no secrets
    # (and one saying Redis restarted empty: the session it held is gone).
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    restarted = [r for r in warnings if "restarted" in r.getMessage()]
    assert len(restarted) == 1 and len(warnings) == 3
    assert SECRET not in caplog.text
    store.close()


@pytest.mark.redis_server
def test_skipped_records_are_counted(redis_server: RedisServer, prefix: str) -> None:
    store = ConversationStore.from_url(redis_server.url, key_prefix=prefix, fallback="raise")
    store.append("s", Message(role="user", content="ok"))
    redis.Redis.from_url(redis_server.url).rpush(f"{prefix}:{{s}}:m", b"\x00garbage")
    assert len(store.messages("s")) == 1
    assert store.metrics().skipped_records == 1
    store.close()


@pytest.mark.redis_server
def test_no_credentials_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="chatkeep")
    url = f"redis://user:hunter2@127.0.0.1:{free_port()}/0"
    store = ConversationStore.from_url(url)
    store.append("s", Message(role="user", content=SECRET))
    store.close()
    assert "hunter2" not in caplog.text and SECRET not in caplog.text
    assert store.metrics().errors["unreachable"] >= 1


async def test_async_store_counts_the_same() -> None:
    store = AsyncConversationStore.from_url("memory://")
    await store.append("s", Message(role="user", content="a"))
    await store.messages("s")
    with pytest.raises(SessionOwnershipError):
        await store.append("s", Message(role="user", content="b"), owner="x")
    snap = store.metrics()
    assert snap.operations["append"] == 2 and snap.operations["read"] == 1
    assert snap.errors["ownership"] == 1
    await store.aclose()


def test_hot_path_cost_is_small() -> None:
    """One perf_counter pair plus Metrics.observe: well under a microsecond here
    (an append costs ~30 µs); the bound is loose for slow CI machines."""
    metrics = Metrics()
    n = 200_000
    started = perf_counter()
    for _ in range(n):
        t0 = perf_counter()
        metrics.observe("append", perf_counter() - t0)
    per_call = (perf_counter() - started) / n
    assert per_call < 3e-6, per_call
