"""Redis goes away mid-conversation: the chat engine keeps answering with its recent
history from chatkeep's in-memory fallback; once Redis is back and the journal is
flushed, the turns are in Redis."""

from __future__ import annotations

import pytest
from llama_index.core.memory import ChatMemoryBuffer, Memory
from llama_index.core.storage.chat_store.base_db import MessageStatus

from chatkeep import ConversationStore
from chatkeep_llama_index import RedisChatStore, RedisDBChatStore
from tests.adapters.llama_index.helpers import EchoLLM
from tests.adapters.llama_index.test_engines import make_engine, turn
from tests.support.servers import RedisServer, TcpProxy

pytestmark = pytest.mark.redis_server


def stored(url: str, prefix: str, session_id: str) -> list[str]:
    """What Redis itself holds for a session, read by a store that never degraded."""
    with ConversationStore.from_url(url, key_prefix=prefix, fallback="raise") as store:
        return [m.text for m in store.messages(session_id)]


@pytest.mark.parametrize("call", ["chat", "achat", "stream_chat", "astream_chat"])
async def test_chat_engine_survives_redis_stopping(
    fresh_redis_server: RedisServer, prefix: str, call: str
) -> None:
    server = fresh_redis_server
    chat_store = RedisChatStore(redis_url=server.url, key_prefix=prefix)
    llm = EchoLLM()
    memory = ChatMemoryBuffer.from_defaults(chat_store=chat_store, chat_store_key="u")
    engine = make_engine("simple", memory, llm)
    said: list[str] = []
    for text in ("one", "two"):
        said += [text, await turn(engine, call, text)]

    server.stop()
    for text in ("three", "four"):
        answer = await turn(engine, call, text)
        said += [text, answer]
        # It answered with the whole recent history, served from the local mirror.
        assert answer == f"echo {text} [{len(said) - 1}]"
        assert [m.content for m in llm.seen[-1]] == said[:-1]
    assert chat_store.status().degraded
    assert chat_store.status().pending_replay == 4

    server.start()  # an empty Redis: it kept nothing on disk
    remaining = await chat_store.aflush() if call.startswith("a") else chat_store.flush()
    assert remaining == 0
    assert not chat_store.status().degraded
    assert stored(server.url, prefix, "u") == said[4:]  # the outage turns reached Redis
    answer = await turn(engine, call, "five")
    assert stored(server.url, prefix, "u") == [*said[4:], "five", answer]
    await chat_store.aclose()


@pytest.mark.parametrize("call", ["chat", "achat"])
async def test_nothing_is_lost_when_the_network_comes_back(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str, call: str
) -> None:
    chat_store = RedisChatStore(redis_url=proxy.url, key_prefix=prefix)
    memory = ChatMemoryBuffer.from_defaults(chat_store=chat_store, chat_store_key="u")
    engine = make_engine("condense_plus_context", memory, EchoLLM())
    said: list[str] = []
    for n, text in enumerate(["one", "two", "three", "four", "five"]):
        if n == 2:
            proxy.cut()
        if n == 4:
            proxy.restore()
            assert chat_store.flush() == 0
        said += [text, await turn(engine, call, text)]
    assert stored(fresh_redis_server.url, prefix, "u") == said
    await chat_store.aclose()


def memory_engine(store: RedisDBChatStore) -> tuple[object, EchoLLM]:
    memory = Memory.from_defaults(
        session_id="s", chat_store=store, token_limit=60, token_flush_size=20
    )
    llm = EchoLLM()
    return make_engine("simple", memory, llm), llm


async def test_memory_with_archive_survives_redis_stopping(
    durable_redis_server: RedisServer, prefix: str
) -> None:
    server = durable_redis_server
    store = RedisDBChatStore(redis_url=server.url, key_prefix=prefix)
    engine, llm = memory_engine(store)
    # The same conversation on a store that never fails, for comparison.
    reference = RedisDBChatStore(redis_url="memory://")
    ref_engine, ref_llm = memory_engine(reference)
    said: list[str] = []
    for n in range(8):
        if n == 3:
            server.stop()
        text = f"message number {n} from the user"
        answer = (await engine.achat(text)).response  # type: ignore[attr-defined]
        await ref_engine.achat(text)  # type: ignore[attr-defined]
        said += [text, answer]
        # Same answers from the same history, archive included, outage or not.
        assert [m.content for m in llm.seen[-1]] == [m.content for m in ref_llm.seen[-1]]
        assert [m.content for m in await store.get_messages("s", status=None)] == said
    assert store.status().degraded
    assert await store.count_messages("s", status=MessageStatus.ARCHIVED) > 0
    active_then = [m.content for m in await store.get_messages("s")]

    server.start()  # it kept what it had (append-only file); the outage's moves replay
    assert await store.aflush() == 0
    assert not store.status().degraded
    # The active window is in Redis as it was, and every turn made during the outage
    # is in Redis (active or archived).
    assert stored(server.url, prefix, "s") == active_then
    in_redis = stored(server.url, prefix, "s\x00archived") + stored(server.url, prefix, "s")
    assert [t for t in said[6:] if t not in in_redis] == []
    await store.aclose()
    reference.close()


async def test_memory_loses_nothing_across_a_network_cut(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str
) -> None:
    store = RedisDBChatStore(redis_url=proxy.url, key_prefix=prefix)
    engine, _ = memory_engine(store)
    said: list[str] = []
    for n in range(8):
        if n == 2:
            proxy.cut()
        if n == 6:
            proxy.restore()
            assert await store.aflush() == 0
        text = f"message number {n} from the user"
        said += [text, (await engine.achat(text)).response]  # type: ignore[attr-defined]
    archived = stored(fresh_redis_server.url, prefix, "s\x00archived")
    assert archived + stored(fresh_redis_server.url, prefix, "s") == said
    assert archived
    await store.aclose()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_deletions_during_an_outage_replay_to_the_same_state(
    durable_redis_server: RedisServer, prefix: str, mode: str
) -> None:
    """Removals made while Redis is down are journaled as removals of those messages,
    so Redis (back with what it had) ends up with what the application saw. (A
    removal is replayed only on the session it saw: not on a Redis that lost it.)"""
    from tests.adapters.llama_index.conftest import Api
    from tests.adapters.llama_index.helpers import texts, user

    server = durable_redis_server
    chat_store = RedisChatStore(redis_url=server.url, key_prefix=prefix)
    api = Api(chat_store, mode)
    await api.set("k", [user(t) for t in "abcde"])
    server.stop()
    assert (await api.delete("k", 1)).content == "b"
    assert (await api.delete_last("k")).content == "e"
    assert await api.delete("k", 7) is None
    await api.add("k", user("f"))
    assert texts(await api.get("k")) == ["a", "c", "d", "f"]
    server.start()
    assert (await chat_store.aflush() if mode == "async" else chat_store.flush()) == 0
    assert stored(server.url, prefix, "k") == ["a", "c", "d", "f"]
    await chat_store.aclose()
