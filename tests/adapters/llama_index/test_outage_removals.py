"""Issue 14, item 6: removals made while Redis is unreachable remove one message.

A real redis-server (append-only file, so it keeps its data like a production Redis)
is stopped mid-conversation. ``delete_message``/``delete_last_message`` (and
``RedisDBChatStore``'s deletions) are removals by position through the store: the
fallback journals the removal of that message (by id, with the session's version)
and replays exactly that; a position in the part of a session the fallback does not
hold raises :class:`chatkeep.IncompleteMirrorError`. Never "replace the session with
what the fallback holds", never "clear it".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from chatkeep import ConversationStore, IncompleteMirrorError, Message
from chatkeep_llama_index import RedisChatStore, RedisDBChatStore
from tests.adapters.llama_index.conftest import Api
from tests.adapters.llama_index.helpers import assistant, texts, user
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis_server


def stored(url: str, prefix: str, session_id: str) -> list[str]:
    """What Redis itself holds for a session, read by a store with no fallback."""
    with ConversationStore.from_url(url, key_prefix=prefix, fallback="raise") as store:
        return [m.text for m in store.messages(session_id)]


def written_elsewhere(url: str, prefix: str, session_id: str, count: int) -> list[str]:
    """``count`` messages appended by another process's store (no fallback, so this
    process's mirror knows nothing of them)."""
    said = [f"m{i}" for i in range(count)]
    with ConversationStore.from_url(url, key_prefix=prefix, fallback="raise") as store:
        store.append(session_id, [Message(role="user", content=t) for t in said])
    return said


@pytest.fixture
async def store(durable_redis_server: RedisServer, prefix: str) -> AsyncIterator[RedisDBChatStore]:
    """A ``RedisDBChatStore`` on the test's durable redis-server, closed afterwards."""
    store = RedisDBChatStore(redis_url=durable_redis_server.url, key_prefix=prefix)
    yield store
    await store.aclose()


async def replay_all(server: RedisServer, store: Any, mode: str = "async") -> None:
    """Redis is started again and ``store`` flushed: every journaled removal replays."""
    server.start()
    assert (await store.aflush() if mode == "async" else store.flush()) == 0


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_one_removal_in_an_outage_keeps_the_rest_of_a_long_conversation(
    durable_redis_server: RedisServer, prefix: str, mode: str
) -> None:
    server = durable_redis_server
    chat_store = RedisChatStore(redis_url=server.url, key_prefix=prefix)
    api = Api(chat_store, mode)
    said = [f"m{i}" for i in range(600)]  # more than the fallback holds (mirror_messages=500)
    await api.set("k", [user(t) for t in said])
    server.stop()
    assert len(await api.get("k")) == 500  # a turn reads first: the fallback serves it
    assert (await api.delete_last("k")).content == "m599"
    with pytest.raises(IncompleteMirrorError):
        await api.delete("k", 0)  # the oldest message is not held: no guessing
    await replay_all(server, chat_store, mode)
    assert stored(server.url, prefix, "k") == said[:599]
    assert chat_store.status().replay_rejected == 0
    await chat_store.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_worker_removing_its_answer_in_an_outage_leaves_the_conversation(
    durable_redis_server: RedisServer, prefix: str, mode: str
) -> None:
    server = durable_redis_server
    said = written_elsewhere(server.url, prefix, "k", 20)
    worker = RedisChatStore(redis_url=server.url, key_prefix=prefix)
    api = Api(worker, mode)
    await api.add("k", assistant("answer"))  # all this process knows of the session
    server.stop()
    assert texts(await api.get("k")) == ["answer"]  # what the fallback holds of it
    assert (await api.delete_last("k")).content == "answer"
    await replay_all(server, worker, mode)
    assert stored(server.url, prefix, "k") == said
    assert worker.status().replay_rejected == 0
    await worker.aclose()


async def test_db_store_removals_in_an_outage_are_removals(
    durable_redis_server: RedisServer, prefix: str, store: RedisDBChatStore
) -> None:
    server = durable_redis_server
    said = written_elsewhere(server.url, prefix, "k", 600)
    assert len(await store.get_messages("k")) == 600  # the fallback now holds the newest 500
    server.stop()
    assert len(await store.get_messages("k")) == 500
    removed = await store.delete_message("k", -1)
    assert removed is not None and removed.content == "m599"
    with pytest.raises(IncompleteMirrorError):
        await store.delete_oldest_messages("k", 1)
    with pytest.raises(IncompleteMirrorError):
        await store.delete_message("k", 0)
    await replay_all(server, store)
    assert stored(server.url, prefix, "k") == said[:599]
    assert store.status().replay_rejected == 0


async def test_db_store_worker_removing_its_answer_in_an_outage(
    durable_redis_server: RedisServer, prefix: str, store: RedisDBChatStore
) -> None:
    server = durable_redis_server
    said = written_elsewhere(server.url, prefix, "k", 20)
    await store.add_message("k", assistant("answer"))
    server.stop()
    assert texts(await store.get_messages("k")) == ["answer"]
    removed = await store.delete_message("k", -1)
    assert removed is not None and removed.content == "answer"
    await replay_all(server, store)
    assert stored(server.url, prefix, "k") == said


async def test_db_store_moves_in_an_outage_replay_as_moves(
    durable_redis_server: RedisServer, prefix: str, store: RedisDBChatStore
) -> None:
    """A conversation the fallback holds whole: archiving, deleting the oldest and
    deleting by position while Redis is down replay to what the application saw."""
    server = durable_redis_server
    await store.add_messages("k", [user(f"m{i}") for i in range(10)])
    assert texts(await store.archive_oldest_messages("k", 2)) == ["m0", "m1"]
    server.stop()
    assert len(await store.get_messages("k", status=None)) == 10
    assert texts(await store.archive_oldest_messages("k", 1)) == ["m2"]
    assert texts(await store.delete_oldest_messages("k", 2)) == ["m3", "m4"]
    removed = await store.delete_message("k", 1)  # archived first, then active: m1
    assert removed is not None and removed.content == "m1"
    await store.add_message("k", user("m10"))
    seen = texts(await store.get_messages("k", status=None))
    assert seen == ["m0", "m2", "m5", "m6", "m7", "m8", "m9", "m10"]
    await replay_all(server, store)
    assert stored(server.url, prefix, "k\x00archived") == ["m0", "m2"]
    assert stored(server.url, prefix, "k") == ["m5", "m6", "m7", "m8", "m9", "m10"]
    assert store.status().replay_rejected == 0
    assert texts(await store.get_messages("k", status=None)) == seen
