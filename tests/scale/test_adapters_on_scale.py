"""The adapters' chains and engines on Redis Cluster and behind Sentinel: a LangChain
``RunnableWithMessageHistory`` and a LlamaIndex ``SimpleChatEngine`` keep two
interleaved conversations, sync and async, with the history checked every turn."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.memory import ChatMemoryBuffer

from chatkeep_langchain import history_factory
from chatkeep_llama_index import RedisChatStore
from tests.adapters.langchain.helpers import RWMH_DEPRECATION, config, make_chain, reply, shape
from tests.adapters.llama_index.helpers import EchoLLM

pytestmark = [pytest.mark.redis_server]

ENGINES = ["redis_cluster", "redis_sentinel"]


@RWMH_DEPRECATION
@pytest.mark.parametrize("engine", ENGINES)
async def test_langchain_chain(engine: str, request: pytest.FixtureRequest, prefix: str) -> None:
    deployment = request.getfixturevalue(engine)
    factory = history_factory(url=deployment.url, key_prefix=prefix)
    chain = make_chain(factory)
    expected: dict[str, list[tuple[str, Any]]] = {"alice": [], "bob": []}
    for round_ in range(3):
        for sid in ("alice", "bob"):
            text = f"{sid}-{round_}"
            if round_ % 2:
                answer = await chain.ainvoke({"input": text}, config(sid))
            else:
                answer = chain.invoke({"input": text}, config(sid))
            assert answer.content == reply(text, len(expected[sid]))
            expected[sid] += [("user", text), ("assistant", answer.content)]
            assert shape(factory(sid).messages) == expected[sid]
            assert shape(await factory(sid).aget_messages()) == expected[sid]
    await factory.aclose()


@pytest.mark.parametrize("engine", ENGINES)
async def test_llama_index_chat_engine(
    engine: str, request: pytest.FixtureRequest, prefix: str
) -> None:
    deployment = request.getfixturevalue(engine)
    chat_store = RedisChatStore(redis_url=deployment.url, key_prefix=prefix)
    engines = {
        user: SimpleChatEngine.from_defaults(
            llm=EchoLLM(),
            memory=ChatMemoryBuffer.from_defaults(chat_store=chat_store, chat_store_key=user),
        )
        for user in ("alice", "bob")
    }
    turns: dict[str, int] = {"alice": 0, "bob": 0}
    for round_ in range(3):
        for user, chat_engine in engines.items():
            text = f"{user}-{round_}"
            if round_ % 2:
                answer = str((await chat_engine.achat(text)).response)
            else:
                answer = str(chat_engine.chat(text).response)
            assert answer.startswith(f"echo {text}")
            turns[user] += 1
            stored = chat_store.get_messages(user)
            assert [m.content for m in stored[0::2]] == [f"{user}-{r}" for r in range(round_ + 1)]
            assert len(stored) == 2 * turns[user]
            assert await chat_store.aget_messages(user) == stored
    assert sorted(chat_store.get_keys()) == ["alice", "bob"]
    await chat_store.aclose()
