"""A LlamaIndex chat engine whose memory lives in Redis, via chatkeep. Runs offline.

    python examples/llama_index_chat.py          # run it twice: the conversation goes on

Uses Redis at $REDIS_URL (default redis://localhost:6379/0). When no Redis answers,
it says so and keeps working on chatkeep's in-memory fallback (nothing then
survives the process). The model is llama-index's offline MockLLM.
"""

from __future__ import annotations

import asyncio
import os
import warnings

from llama_index.core.chat_engine import SimpleChatEngine
from llama_index.core.llms import MockLLM
from llama_index.core.memory import ChatMemoryBuffer, Memory
from llama_index.core.storage.chat_store.base_db import MessageStatus

from chatkeep import FallbackWarning
from chatkeep_llama_index import RedisChatStore, RedisDBChatStore

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
PREFIX = "chatkeep-example"  # a namespace of its own: never touches other keys
SESSION = "example-user"
TTL = 3600  # the example's conversations expire after an hour of inactivity


def where(store: RedisChatStore | RedisDBChatStore) -> str:
    if store.status().degraded:
        return (
            f"Redis at {store.redis_url} did not answer: running on the in-memory "
            "fallback (the chat still works; nothing survives this run)"
        )
    return f"Connected to Redis at {store.redis_url}"


def chat_memory_buffer_demo() -> None:
    """ChatMemoryBuffer + RedisChatStore: the classic chat-engine memory."""
    with RedisChatStore(redis_url=REDIS_URL, key_prefix=PREFIX, ttl=TTL) as chat_store:
        earlier = len(chat_store.get_messages(SESSION))
        print(where(chat_store))
        memory = ChatMemoryBuffer.from_defaults(chat_store=chat_store, chat_store_key=SESSION)
        engine = SimpleChatEngine.from_defaults(llm=MockLLM(max_tokens=4), memory=memory)
        turn = earlier // 2 + 1
        reply = engine.chat(f"Hello, this is turn {turn}")
        print(f"you: Hello, this is turn {turn}\nbot: {reply.response}")
        history = chat_store.get_messages(SESSION)
        print(f"The conversation has {len(history)} messages, {earlier} of them from earlier runs:")
        for message in history:
            print(f"  {message.role.value:>9}: {message.content}")


async def memory_demo() -> None:
    """Memory + RedisDBChatStore: old turns are archived, not dropped."""
    store = RedisDBChatStore(redis_url=REDIS_URL, key_prefix=PREFIX, ttl=TTL)
    memory = Memory.from_defaults(
        session_id=SESSION + "-memory", chat_store=store, token_limit=40, token_flush_size=10
    )
    engine = SimpleChatEngine.from_defaults(llm=MockLLM(max_tokens=4), memory=memory)
    for n in range(3):
        await engine.achat(f"Async message {n}, a few words long")
    active = await store.count_messages(SESSION + "-memory", status=MessageStatus.ACTIVE)
    archived = await store.count_messages(SESSION + "-memory", status=MessageStatus.ARCHIVED)
    print(f"Memory: {active} active messages, {archived} archived (kept, not lost)")
    await store.aclose()


if __name__ == "__main__":
    # This example says itself when it runs on the fallback (see where()).
    warnings.filterwarnings("ignore", category=FallbackWarning)
    chat_memory_buffer_demo()
    asyncio.run(memory_demo())
