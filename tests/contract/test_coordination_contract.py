"""Session locks and live updates on every backend, sync and async (see conftest.py):
memory, fakeredis, redis, cluster, sentinel, a least-privilege ACL user, TLS."""
# ruff: noqa: SIM117  (nested with blocks read as "lock, then what is done under it")

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from chatkeep import (
    AsyncConversationStore,
    ConversationStore,
    InvalidArgumentError,
    LockTimeoutError,
)
from chatkeep.keys import KeySchema
from chatkeep.redis import acl_rules
from tests.support import scenarios
from tests.support.messages import msg

from .conftest import Harness


def _redis_only(harness: Harness, why: str) -> None:
    if harness.backend == "memory":
        pytest.skip(f"memory:// {why}")


# -- locks ----------------------------------------------------------------------------------


def test_lock_excludes_and_times_out(store: Any) -> None:
    scenarios.lock_excludes_and_times_out(store)


def test_lock_acquire_and_release_by_hand(store: Any) -> None:
    lock = store.lock("s", timeout=5)
    lock.acquire()
    other = store.lock("s", blocking_timeout=0)
    with pytest.raises(LockTimeoutError):
        other.acquire()
    lock.release()
    other.acquire()
    other.release()
    lock.release()  # not held: nothing to do
    lock.acquire()  # a lock can be taken again
    lock.release()


@pytest.mark.parametrize(
    ("timeout", "blocking_timeout"), [(-1, None), ("5", None), (True, None), (5, -0.5)]
)
def test_lock_arguments_are_checked(store: Any, timeout: Any, blocking_timeout: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        store.lock("s", timeout=timeout, blocking_timeout=blocking_timeout)


def test_stores_of_one_redis_exclude_each_other(make_store: Any, harness: Harness) -> None:
    _redis_only(harness, "stores share no data, so they share no locks")
    first, second = make_store(), make_store()
    with first.lock("s", timeout=5):
        with pytest.raises(LockTimeoutError):
            with second.lock("s", blocking_timeout=0.05):
                pass
    with second.lock("s", blocking_timeout=1):
        pass


def test_lock_key_lives_in_the_session_hash_tag(store: Any, harness: Harness) -> None:
    _redis_only(harness, "keeps its locks in the process")
    raw = harness.client()
    key = KeySchema(harness.prefix).lock("a b")
    assert key == f"{harness.prefix}:{{a%20b}}:lock"
    with store.lock("a b", timeout=5):
        assert raw.exists(key)
        assert 0 < raw.pttl(key) <= 5000
    assert not raw.exists(key)
    with store.lock("a b", timeout=None):
        assert raw.pttl(key) == -1  # lives until released
    assert not raw.exists(key)


def test_lock_acquire_is_idempotent_for_its_own_token(harness: Harness) -> None:
    """A client retry re-sends the acquire whose first run took the lock: it finds
    its own token and holds the lock (instead of waiting out its own lock); anyone
    else's acquire finds it taken, and only the holder's release frees it."""
    _redis_only(harness, "has no lock script")
    from chatkeep.locks import LOCKS

    raw = harness.client()
    key = KeySchema(harness.prefix).lock("s")
    take, give = LOCKS["lock_acquire"].text, LOCKS["lock_release"].text
    assert raw.eval(take, 1, key, "mine", 5000) == 1  # the first run
    assert raw.eval(take, 1, key, "mine", 5000) == 1  # the retry: still ours
    assert raw.eval(take, 1, key, "theirs", 5000) == 0
    assert raw.eval(give, 1, key, "theirs") == 0
    assert raw.exists(key)
    assert raw.eval(give, 1, key, "mine") == 1
    assert not raw.exists(key)


def test_a_lock_that_expired_warns_when_released(
    store: Any, harness: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    _redis_only(harness, "locks live in the process and do not expire")
    raw = harness.client()
    with caplog.at_level(logging.WARNING, logger="chatkeep"):
        with store.lock("s", timeout=5):
            raw.delete(KeySchema(harness.prefix).lock("s"))  # as if it had expired
            with store.lock("s", blocking_timeout=0):  # so another could take it
                pass
    lost = [r for r in caplog.records if "expired before it was released" in r.getMessage()]
    assert len(lost) == 1


# -- live updates -------------------------------------------------------------------------


def test_subscribe_sees_appends(store: Any) -> None:
    scenarios.subscription_sees_appends(store)


def test_subscription_iterates(store: Any) -> None:
    with store.subscribe("s") as updates:
        store.append("s", [msg("a"), msg("b")])
        seen = []
        for message in updates:
            seen.append(message.text)
            if len(seen) == 2:
                break
    assert seen == ["a", "b"]


def test_other_stores_appends_reach_a_subscriber(make_store: Any, harness: Harness) -> None:
    _redis_only(harness, "stores share no data")
    quiet = make_store()
    loud = make_store(publish=True)
    reader = make_store()
    with reader.subscribe("s") as updates:
        quiet.append("s", msg("quiet"))  # publish=False: not published
        loud.append("s", msg("loud"))
        message = updates.get(timeout=5)
        assert message is not None and message.text == "loud"


def test_a_closed_subscription_returns_nothing(store: Any) -> None:
    updates = store.subscribe("s")
    updates.close()
    store.append("s", msg("after"))
    assert updates.get(timeout=0.05) is None
    updates.close()  # twice is fine


# -- the asyncio twins across event loops --------------------------------------------------


def test_async_lock_and_subscription_across_two_event_loops(async_harness: Harness) -> None:
    """One store, lock and subscription used by two ``asyncio.run`` calls: each loop
    gets its own Redis connections; the subscription subscribes again in the second
    loop when started (or on its first ``get``)."""
    store = async_harness.build(ConversationStore, AsyncConversationStore)
    lock = store.lock("s", timeout=5)
    updates = store.subscribe("s")

    async def turn(text: str) -> str | None:
        await updates.start()
        async with lock:
            with pytest.raises(LockTimeoutError):
                async with store.lock("s", blocking_timeout=0.05):
                    pass
            await store.append("s", msg(text))
        got = await updates.get(timeout=5)
        return None if got is None else got.text

    assert asyncio.run(turn("one")) == "one"
    assert asyncio.run(turn("two")) == "two"
    asyncio.run(updates.aclose())


# -- ACL ----------------------------------------------------------------------------------


def test_acl_rules_grant_locks_and_updates() -> None:
    rules = acl_rules("p")
    assert "&p:*" in rules  # the sessions' channels
    for command in ("get", "set", "pexpire", "del", "subscribe", "unsubscribe", "ssubscribe"):
        assert f"+{command}" in rules
    assert "+publish" in rules and "+spublish" in rules
