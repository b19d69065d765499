"""Chat engines on chatkeep, offline (MockLLM-based models), memory and real Redis.

* ``ChatMemoryBuffer(chat_store=RedisChatStore)`` under ``SimpleChatEngine`` and
  ``CondensePlusContextChatEngine``: chat, achat, stream_chat, astream_chat, reset,
  two users interleaved, history checked after every turn.
* ``Memory(chat_store=RedisDBChatStore)``: messages past the token limit are archived,
  not lost, and the session survives a restart (new store objects).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from llama_index.core.chat_engine import CondensePlusContextChatEngine, SimpleChatEngine
from llama_index.core.memory import ChatMemoryBuffer, Memory
from llama_index.core.storage.chat_store.base_db import MessageStatus

from chatkeep_llama_index import RedisChatStore, RedisDBChatStore
from tests.adapters.llama_index.helpers import EchoLLM, FixedRetriever
from tests.support.servers import RedisServer

ENGINES = ["simple", "condense_plus_context"]
CALLS = ["chat", "achat", "stream_chat", "astream_chat"]


def make_engine(kind: str, memory: Any, llm: EchoLLM) -> Any:
    if kind == "simple":
        return SimpleChatEngine.from_defaults(llm=llm, memory=memory)
    return CondensePlusContextChatEngine.from_defaults(
        retriever=FixedRetriever(), llm=llm, memory=memory
    )


async def turn(engine: Any, call: str, text: str) -> str:
    """One turn; returns the answer as the engine reports it."""
    if call == "chat":
        return str(engine.chat(text).response)
    if call == "achat":
        return str((await engine.achat(text)).response)
    if call == "stream_chat":
        streamed = engine.stream_chat(text)
        pieces = list(streamed.response_gen)
        assert "".join(pieces).strip() == streamed.response
        return str(streamed.response)
    streamed = await engine.astream_chat(text)
    pieces = [piece async for piece in streamed.async_response_gen()]
    assert "".join(pieces).strip() == streamed.response
    return str(streamed.response)


def history(chat_store: RedisChatStore, key: str) -> list[tuple[str, str]]:
    return [(m.role.value, m.content or "") for m in chat_store.get_messages(key)]


# -- ChatMemoryBuffer + RedisChatStore -------------------------------------------------------------


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("kind", ENGINES)
async def test_chat_engine_keeps_history(
    make_chat_store: Callable[..., RedisChatStore], kind: str, call: str
) -> None:
    chat_store = make_chat_store()
    llms = {who: EchoLLM() for who in ("alice", "bob")}
    engines = {
        who: make_engine(
            kind,
            ChatMemoryBuffer.from_defaults(chat_store=chat_store, chat_store_key=who),
            llms[who],
        )
        for who in ("alice", "bob")
    }
    expected: dict[str, list[tuple[str, str]]] = {"alice": [], "bob": []}

    # Two users interleaved on one store: each sees only their own conversation.
    for n, who in enumerate(["alice", "bob", "alice", "alice", "bob"]):
        said = f"{who} says {n}"
        answer = await turn(engines[who], call, said)
        expected[who] += [("user", said), ("assistant", answer)]
        assert history(chat_store, "alice") == expected["alice"]
        assert history(chat_store, "bob") == expected["bob"]
        if kind == "simple":
            # The model was given this user's whole history and the new message.
            assert answer == f"echo {said} [{len(expected[who]) - 1}]"
            seen = llms[who].seen[-1]
            assert [m.content for m in seen] == [text for _, text in expected[who][:-1]]
    assert sorted(chat_store.get_keys()) == ["alice", "bob"]

    # reset() forgets one user's conversation, and only that one.
    engines["alice"].reset()
    assert history(chat_store, "alice") == []
    assert chat_store.get_keys() == ["bob"]
    assert history(chat_store, "bob") == expected["bob"]
    answer = await turn(engines["alice"], call, "hello again")
    assert history(chat_store, "alice") == [("user", "hello again"), ("assistant", answer)]
    assert [m.content for m in engines["alice"].chat_history] == ["hello again", answer]


@pytest.mark.redis_server
async def test_history_outlives_the_engine(redis_server: RedisServer, prefix: str) -> None:
    """A new store object (a new process) continues the same conversation."""
    first = RedisChatStore(redis_url=redis_server.url, key_prefix=prefix)
    engine = make_engine(
        "simple", ChatMemoryBuffer.from_defaults(chat_store=first, chat_store_key="u"), EchoLLM()
    )
    await engine.achat("one")
    engine.chat("two")
    await first.aclose()

    second = RedisChatStore(redis_url=redis_server.url, key_prefix=prefix)
    llm = EchoLLM()
    engine = make_engine(
        "simple", ChatMemoryBuffer.from_defaults(chat_store=second, chat_store_key="u"), llm
    )
    assert await turn(engine, "astream_chat", "three") == "echo three [5]"
    assert [m.content for m in llm.seen[-1]][::2] == ["one", "two", "three"]
    await second.aclose()


# -- Memory + RedisDBChatStore ---------------------------------------------------------------------


def make_memory(store: RedisDBChatStore, session_id: str = "s") -> Memory:
    # ~8 tokens per message: a few turns overflow the 70% of 60 tokens kept active.
    return Memory.from_defaults(
        session_id=session_id, chat_store=store, token_limit=60, token_flush_size=20
    )


@pytest.mark.parametrize("kind", ENGINES)
@pytest.mark.parametrize("call", ["achat", "astream_chat"])
async def test_memory_archives_instead_of_dropping(
    make_db_store: Callable[..., RedisDBChatStore], kind: str, call: str
) -> None:
    store = make_db_store()
    llm = EchoLLM()
    engine = make_engine(kind, make_memory(store), llm)
    said: list[str] = []
    for n in range(8):
        answer = await turn(engine, call, f"message number {n} from the user")
        said += [f"message number {n} from the user", answer]
        everything = [m.content for m in await store.get_messages("s", status=None)]
        assert everything == said  # nothing lost, in order
    archived = await store.count_messages("s", status=MessageStatus.ARCHIVED)
    active = await store.count_messages("s", status=MessageStatus.ACTIVE)
    assert archived > 0 and active > 0 and archived + active == len(said)
    active_texts = [m.content for m in await store.get_messages("s")]
    assert active_texts == said[archived:]
    if kind == "simple":  # the model saw the active window, not the archive
        assert [m.content for m in llm.seen[-1]] == said[archived:-1]


def test_memory_with_sync_chat(
    make_db_store: Callable[..., RedisDBChatStore], sync_loop: asyncio.AbstractEventLoop
) -> None:
    store = make_db_store()
    engine = make_engine("simple", make_memory(store), EchoLLM())
    said: list[str] = []
    for n in range(6):
        text = f"message number {n} from the user"
        said += [text, engine.chat(text).response]
    everything = sync_loop.run_until_complete(store.get_messages("s", status=None))
    assert [m.content for m in everything] == said
    archived = sync_loop.run_until_complete(
        store.count_messages("s", status=MessageStatus.ARCHIVED)
    )
    assert archived > 0


@pytest.mark.redis_server
async def test_memory_session_survives_a_restart(redis_server: RedisServer, prefix: str) -> None:
    first = RedisDBChatStore(redis_url=redis_server.url, key_prefix=prefix)
    engine = make_engine("simple", make_memory(first, "user-42"), EchoLLM())
    said: list[str] = []
    for n in range(6):
        text = f"message number {n} from the user"
        said += [text, (await engine.achat(text)).response]
    before_active = [m.content for m in await first.get_messages("user-42")]
    await first.aclose()

    # "Process restart": new store, new Memory, same session id.
    second = RedisDBChatStore(redis_url=redis_server.url, key_prefix=prefix)
    memory = make_memory(second, "user-42")
    assert [m.content for m in await memory.aget_all()] == said
    assert [m.content for m in await memory.aget()] == before_active
    llm = EchoLLM()
    engine = make_engine("simple", memory, llm)
    answer = (await engine.achat("and now?")).response
    assert [m.content for m in llm.seen[-1]][-1] == "and now?"
    assert set(m.content for m in llm.seen[-1][:-1]) <= set(before_active)
    assert [m.content for m in await second.get_messages("user-42", status=None)] == [
        *said, "and now?", answer,
    ]  # fmt: skip
    assert await second.get_keys() == ["user-42"]
    await second.aclose()
