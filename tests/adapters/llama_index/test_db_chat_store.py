"""RedisDBChatStore: the AsyncDBChatStore interface, checked against llama-index's own
SQLAlchemyChatStore as the reference, plus Redis-specific promises."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
import redis
from llama_index.core.llms import ChatMessage
from llama_index.core.storage.chat_store.base_db import AsyncDBChatStore, MessageStatus

from chatkeep import InvalidSessionId, SessionOwnershipError
from chatkeep_llama_index import RedisDBChatStore
from tests.adapters.llama_index.helpers import assistant, texts, user
from tests.support.servers import RedisServer

ACTIVE, ARCHIVED = MessageStatus.ACTIVE, MessageStatus.ARCHIVED
Make = Callable[..., RedisDBChatStore]


async def seed(store: AsyncDBChatStore, key: str = "k", n: int = 5) -> list[ChatMessage]:
    messages = [user(f"m{i}") if i % 2 == 0 else assistant(f"m{i}") for i in range(n)]
    await store.add_messages(key, messages)
    return messages


async def snapshot(store: AsyncDBChatStore, key: str) -> dict[str, Any]:
    return {
        "active": texts(await store.get_messages(key)),
        "archived": texts(await store.get_messages(key, status=ARCHIVED)),
        "all": texts(await store.get_messages(key, status=None)),
        "count": [
            await store.count_messages(key),
            await store.count_messages(key, status=ARCHIVED),
            await store.count_messages(key, status=None),
        ],
    }


# -- the reference: same operations, same answers as SQLAlchemyChatStore --------------------------


async def scenario(store: AsyncDBChatStore) -> list[Any]:
    out: list[Any] = []
    tick = 0.002  # SQL orders by time_ns; keep operations apart in time as real turns are
    await store.add_message("k", user("u1"))
    await asyncio.sleep(tick)
    await store.add_messages("k", [assistant("a1"), user("u2"), assistant("a2")])
    await asyncio.sleep(tick)
    out.append(await snapshot(store, "k"))
    out.append(texts(await store.archive_oldest_messages("k", 2)))
    out.append(await snapshot(store, "k"))
    out.append(texts(await store.get_messages("k", status=None, limit=2)))
    out.append(texts(await store.get_messages("k", status=None, offset=1)))
    out.append(texts(await store.get_messages("k", status=None, limit=2, offset=1)))
    out.append(texts(await store.get_messages("k", status=ARCHIVED, limit=1, offset=1)))
    out.append(texts(await store.get_messages("k", limit=0)))
    out.append(texts(await store.archive_oldest_messages("k", 0)))
    out.append(texts(await store.archive_oldest_messages("k", 10)))  # more than there are
    out.append(await snapshot(store, "k"))
    await asyncio.sleep(tick)
    await store.add_message("k", user("u3"))
    await asyncio.sleep(tick)
    await store.add_message("k", assistant("late archived"), status=ARCHIVED)
    await asyncio.sleep(tick)
    out.append(await snapshot(store, "k"))
    await store.add_message("k", user("u4"))
    # u3 is older than "late archived": archived in time order, as SQL returns them.
    out.append(texts(await store.archive_oldest_messages("k", 1)))
    out.append(await snapshot(store, "k"))
    out.append(texts(await store.get_messages("k", status=None, offset=4, limit=2)))
    out.append(texts(await store.delete_oldest_messages("k", 1)))
    out.append(texts(await store.delete_oldest_messages("k", 5)))
    out.append(await snapshot(store, "k"))
    await store.add_messages("j", [user("j1"), assistant("j2")])
    out.append(sorted(await store.get_keys()))
    await store.set_messages("j", [user("fresh")])
    out.append(await snapshot(store, "j"))
    await store.archive_oldest_messages("j", 1)
    await store.set_messages("j", [assistant("old")], status=ARCHIVED)
    out.append(await snapshot(store, "j"))
    await store.add_message("j", user("new"))
    await store.delete_messages("j", status=ARCHIVED)
    out.append(await snapshot(store, "j"))
    await store.delete_messages("j", status=ACTIVE)
    out.append(await snapshot(store, "j"))
    await store.add_message("j", user("again"))
    await store.delete_messages("j")
    out.append(await snapshot(store, "j"))
    out.append(await snapshot(store, "missing"))
    out.append(texts(await store.delete_oldest_messages("missing", 3)))
    out.append(texts(await store.archive_oldest_messages("missing", 3)))
    return out


async def test_behaves_like_the_sql_store(make_db_store: Make) -> None:
    pytest.importorskip("aiosqlite")
    from llama_index.core.storage.chat_store.sql import SQLAlchemyChatStore

    reference = SQLAlchemyChatStore(table_name="reference")
    expected = await scenario(reference)
    await reference._async_engine.dispose()  # type: ignore[union-attr]
    assert await scenario(make_db_store()) == expected


# -- edge cases --------------------------------------------------------------------------------


async def test_missing_key(make_db_store: Make) -> None:
    store = make_db_store()
    assert await snapshot(store, "none") == {
        "active": [],
        "archived": [],
        "all": [],
        "count": [0, 0, 0],
    }
    assert await store.delete_message("none", 0) is None
    assert await store.get_keys() == []


async def test_add_messages_with_nothing_writes_nothing(make_db_store: Make) -> None:
    store = make_db_store()
    await store.add_messages("k", [])
    assert await store.get_keys() == []


@pytest.mark.parametrize(
    ("idx", "removed", "left"),
    [
        (0, "m0", ["m1", "m2", "m3", "m4"]),  # first overall (archived)
        (1, "m1", ["m0", "m2", "m3", "m4"]),  # last archived
        (2, "m2", ["m0", "m1", "m3", "m4"]),  # first active
        (4, "m4", ["m0", "m1", "m2", "m3"]),  # last
        (-1, "m4", ["m0", "m1", "m2", "m3"]),  # negative
        (-5, "m0", ["m1", "m2", "m3", "m4"]),
    ],
)
async def test_delete_message_by_position(
    make_db_store: Make, idx: int, removed: str, left: list[str]
) -> None:
    store = make_db_store()
    await seed(store)
    await store.archive_oldest_messages("k", 2)
    got = await store.delete_message("k", idx)
    assert got is not None and got.content == removed
    assert texts(await store.get_messages("k", status=None)) == left


@pytest.mark.parametrize("idx", [5, 50, -6])
async def test_delete_message_out_of_range(make_db_store: Make, idx: int) -> None:
    store = make_db_store()
    await seed(store)
    assert await store.delete_message("k", idx) is None
    assert await store.count_messages("k", status=None) == 5


async def test_emptied_lists_leave_no_keys(
    make_db_store: Make, raw_keys: Callable[[], list[str]]
) -> None:
    store = make_db_store()
    await seed(store, n=2)
    await store.archive_oldest_messages("k", 5)  # the active list empties
    assert await store.get_keys() == ["k"]
    assert not [k for k in raw_keys() if k.endswith("{k}:m") or k.endswith("{k}:h")]
    await store.delete_message("k", 0)
    await store.delete_message("k", 0)  # the archive empties
    assert await store.get_keys() == []
    assert raw_keys() == []


async def test_get_keys_lists_each_key_once_and_only_its_own(
    make_db_store: Make, prefix: str
) -> None:
    store = make_db_store()
    other = make_db_store(key_prefix=prefix + "-other")
    await seed(store, "both")
    await store.archive_oldest_messages("both", 2)
    await seed(store, "archived-only", 2)
    await store.archive_oldest_messages("archived-only", 2)
    await seed(store, "active-only", 1)
    await seed(other, "theirs", 1)
    assert sorted(await store.get_keys()) == ["active-only", "archived-only", "both"]
    assert await other.get_keys() == ["theirs"]


async def test_invalid_arguments(make_db_store: Make) -> None:
    store = make_db_store()
    with pytest.raises(ValueError, match="limit"):
        await store.get_messages("k", limit=-1)
    with pytest.raises(ValueError):
        await store.get_messages("k", status="bogus")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n must"):
        await store.archive_oldest_messages("k", -1)
    with pytest.raises(InvalidSessionId):
        await store.add_message("bad\x00key", user("x"))
    with pytest.raises(InvalidSessionId):
        await store.add_message("", user("x"))


async def test_string_statuses_are_accepted(make_db_store: Make) -> None:
    store = make_db_store()
    await store.add_message("k", user("x"), status="archived")  # type: ignore[arg-type]
    assert texts(await store.get_messages("k", status="archived")) == ["x"]  # type: ignore[arg-type]


async def test_owner_scopes_keys(make_db_store: Make, url: str, prefix: str) -> None:
    alice = make_db_store(owner="alice")
    bob = (
        RedisDBChatStore(store=alice.store, owner="bob")
        if url.startswith("memory")
        else make_db_store(owner="bob")
    )
    await seed(alice, "a")
    await alice.archive_oldest_messages("a", 2)
    await seed(bob, "b", 1)
    assert await alice.get_keys() == ["a"]
    assert await bob.get_keys() == ["b"]
    with pytest.raises(SessionOwnershipError):
        await bob.get_messages("a", status=None)


async def test_a_half_done_archive_move_is_invisible_and_heals(make_db_store: Make) -> None:
    """A crash after copying to the archive and before removing from the active list
    leaves messages in both: readers count them once (as active) and the next
    archive call finishes the move without duplicating them."""
    store = make_db_store()
    await seed(store)
    active = store.store.messages("k")
    store.store.append(RedisDBChatStore.archive_session_id("k"), active[:2])  # the "crash"
    assert await snapshot(store, "k") == {
        "active": ["m0", "m1", "m2", "m3", "m4"],
        "archived": [],
        "all": ["m0", "m1", "m2", "m3", "m4"],
        "count": [5, 0, 5],
    }
    assert texts(await store.archive_oldest_messages("k", 3)) == ["m0", "m1", "m2"]
    assert await snapshot(store, "k") == {
        "active": ["m3", "m4"],
        "archived": ["m0", "m1", "m2"],
        "all": ["m0", "m1", "m2", "m3", "m4"],
        "count": [2, 3, 5],
    }
    archived_ids = [m.id for m in store.store.messages(RedisDBChatStore.archive_session_id("k"))]
    assert len(archived_ids) == len(set(archived_ids)) == 3


async def test_archived_messages_round_trip_equal(make_db_store: Make) -> None:
    from tests.adapters.llama_index.test_convert import rich_message

    store = make_db_store()
    conversation = [user("q"), rich_message(), assistant("a")]
    await store.set_messages("k", conversation)
    assert await store.archive_oldest_messages("k", 2) == conversation[:2]
    assert await store.get_messages("k", status=None) == conversation


async def test_the_active_part_is_a_plain_session(make_db_store: Make) -> None:
    """Other readers (RedisChatStore, LangChain, chatkeep) see the live window."""
    from chatkeep_llama_index import RedisChatStore

    store = make_db_store()
    await seed(store)
    await store.archive_oldest_messages("k", 3)
    assert texts(RedisChatStore(store=store.store).get_messages("k")) == ["m3", "m4"]
    assert RedisChatStore(store=store.store).get_keys() == ["k"]


# -- TTL ---------------------------------------------------------------------------------------


@pytest.mark.redis_server
async def test_both_parts_share_the_ttl(redis_server: RedisServer, prefix: str) -> None:
    store = RedisDBChatStore(redis_url=redis_server.url, key_prefix=prefix, ttl=100)
    await seed(store)
    await store.archive_oldest_messages("k", 2)
    archive = RedisDBChatStore.archive_session_id("k")
    for sid in ("k", archive):
        left = store.store.ttl(sid)
        assert left is not None and 95 < left <= 100
    # The archive is refreshed along with the active part (at most every ttl/20).
    raw = redis.Redis.from_url(redis_server.url)
    for key in raw.scan_iter(match=f"{prefix}:*"):
        if b"archived" in key:
            raw.pexpire(key, 10_000)
    raw.close()
    left = store.store.ttl(archive)
    assert left is not None and left <= 10
    store._touched.clear()
    # A read refreshes a TTL this process set less than 1% of it ago only when it
    # must check an owner; wait past that, as any real touch interval (ttl/20) does.
    await asyncio.sleep(1.1)
    await store.get_messages("k")
    left = store.store.ttl(archive)
    assert left is not None and left > 95
    await store.aclose()


def test_no_ttl(make_db_store: Make) -> None:
    store = make_db_store(ttl=None)

    async def main() -> None:
        await seed(store)
        await store.archive_oldest_messages("k", 1)

    asyncio.run(main())
    assert store.store.ttl("k") is None
    assert store.store.ttl(RedisDBChatStore.archive_session_id("k")) is None
