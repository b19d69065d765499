"""The implementations the benchmark puts side by side.

Each subject keeps chat history in the same Redis, through its own public API, and
exposes the same few operations. ``raw`` is the reference limit: redis-py with a
pipeline of RPUSH + PEXPIRE to write and LRANGE + ``json.loads`` to read.
"""

from __future__ import annotations

import asyncio
import json
import random
import warnings
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio

from chatkeep import AsyncConversationStore, ConversationStore, Message, ToolCall
from chatkeep.redis import KeySchema

TTL_SECONDS = 7 * 24 * 3600


def make_messages(count: int, seed: int = 7) -> list[Message]:
    """Realistic turns: 200-500 characters, user/assistant alternating, some tool
    calls and metadata."""
    rng = random.Random(seed)
    words = [
        "the",
        "a",
        "redis",
        "session",
        "memory",
        "answer",
        "question",
        "tool",
        "weather",
        "paris",
        "model",
        "token",
    ]
    out: list[Message] = []
    for i in range(count):
        size = rng.randint(200, 500)
        text = ""
        while len(text) < size:
            text += rng.choice(words) + " "
        role = "user" if i % 2 == 0 else "assistant"
        calls = []
        metadata: dict[str, Any] = {}
        if role == "assistant" and i % 6 == 1:
            calls = [ToolCall(id=f"call_{i}", name="search", arguments={"q": text[:40]})]
        if i % 4 == 3:
            metadata = {"model": "gpt-x", "tokens": {"in": 120, "out": 64}}
        out.append(Message(role=role, content=text[:size], tool_calls=calls, metadata=metadata))
    return out


def raw_record(message: Message) -> str:
    """What a hand-written redis-py store would keep: role, content and the rest."""
    record: dict[str, Any] = {"role": message.role, "content": message.content}
    if message.tool_calls:
        record["tool_calls"] = [c.model_dump() for c in message.tool_calls]
    if message.metadata:
        record["metadata"] = message.metadata
    return json.dumps(record)


class Subject:
    """One implementation. ``ops`` maps an operation name to a callable."""

    name = "?"
    framework = "core"
    # "per request": a new history/store/client object for every operation, what
    # RunnableWithMessageHistory's get_session_history does when it builds one per
    # turn; otherwise one object reused per session (or one store), as the docs show.
    per_request = False
    # What the subject made for its async calls, on the first one (in the benchmark's
    # event loop): a client or a store, closed by aclose().
    made_async: Any = None

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix

    def keys(self, sid: str) -> list[str]:
        raise NotImplementedError

    def prefill(self, sid: str, messages: list[Message]) -> None:
        self.add_many(sid, messages)

    def add_one(self, sid: str, message: Message) -> None:
        raise NotImplementedError

    def add_many(self, sid: str, messages: list[Message]) -> None:
        raise NotImplementedError

    def read_all(self, sid: str) -> list[Any]:
        raise NotImplementedError

    def read_last(self, sid: str, k: int) -> list[Any] | None:
        return None  # not offered

    def read_budget(self, sid: str, max_tokens: int) -> list[Any] | None:
        return None  # not offered

    async def aadd_one(self, sid: str, message: Message) -> None:
        raise NotImplementedError

    def close(self) -> None:
        return None

    async def aclose(self) -> None:
        if self.made_async is not None:
            await self.made_async.aclose()
            self.made_async = None


class Raw(Subject):
    name = "raw redis-py"

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(url, prefix)
        self.client = redis.Redis.from_url(url)

    def keys(self, sid: str) -> list[str]:
        return [f"{self.prefix}:{sid}"]

    def add_one(self, sid: str, message: Message) -> None:
        self.add_many(sid, [message])

    def add_many(self, sid: str, messages: list[Message]) -> None:
        key = f"{self.prefix}:{sid}"
        pipe = self.client.pipeline(transaction=False)
        pipe.rpush(key, *[raw_record(m) for m in messages])
        pipe.pexpire(key, TTL_SECONDS * 1000)
        pipe.execute()

    def read_all(self, sid: str) -> list[Any]:
        return [json.loads(r) for r in self.client.lrange(f"{self.prefix}:{sid}", 0, -1)]

    def read_last(self, sid: str, k: int) -> list[Any]:
        return [json.loads(r) for r in self.client.lrange(f"{self.prefix}:{sid}", -k, -1)]

    def read_budget(self, sid: str, max_tokens: int) -> list[Any]:
        """Without counts stored: read everything, count from the newest back (the same
        estimate as chatkeep's default), keep what fits."""
        records = self.read_all(sid)
        total, start = 0, len(records)
        while start > 0:
            count = 4 + (len(records[start - 1]["content"]) + 3) // 4
            if total + count > max_tokens:
                break
            total, start = total + count, start - 1
        return records[start:]

    async def aadd_one(self, sid: str, message: Message) -> None:
        if self.made_async is None:  # a blocking pool, as chatkeep uses: bursts wait, never fail
            self.made_async = redis.asyncio.Redis.from_pool(
                redis.asyncio.BlockingConnectionPool.from_url(self.url, max_connections=100)
            )
        key = f"{self.prefix}:{sid}"
        pipe = self.made_async.pipeline(transaction=False)
        pipe.rpush(key, raw_record(message))
        pipe.pexpire(key, TTL_SECONDS * 1000)
        await pipe.execute()

    def close(self) -> None:
        self.client.close()


class RawPerRequest(Raw):
    """A new client (so a new connection) for every operation, closed after it."""

    name = "raw redis-py per request"
    per_request = True

    def add_many(self, sid: str, messages: list[Message]) -> None:
        with redis.Redis.from_url(self.url) as client:
            key = f"{self.prefix}:{sid}"
            pipe = client.pipeline(transaction=False)
            pipe.rpush(key, *[raw_record(m) for m in messages])
            pipe.pexpire(key, TTL_SECONDS * 1000)
            pipe.execute()

    def read_all(self, sid: str) -> list[Any]:
        with redis.Redis.from_url(self.url) as client:
            return [json.loads(r) for r in client.lrange(f"{self.prefix}:{sid}", 0, -1)]

    def read_last(self, sid: str, k: int) -> list[Any]:
        with redis.Redis.from_url(self.url) as client:
            return [json.loads(r) for r in client.lrange(f"{self.prefix}:{sid}", -k, -1)]

    def read_budget(self, sid: str, max_tokens: int) -> list[Any] | None:
        return None  # the same read as above, once more

    async def aadd_one(self, sid: str, message: Message) -> None:
        client = redis.asyncio.Redis.from_url(self.url)
        try:
            key = f"{self.prefix}:{sid}"
            pipe = client.pipeline(transaction=False)
            pipe.rpush(key, raw_record(message))
            pipe.pexpire(key, TTL_SECONDS * 1000)
            await pipe.execute()
        finally:
            await client.aclose()


class ChatkeepSubject(Subject):
    """A subject on chatkeep's conversation store: the store for the sync calls, and
    its asyncio twin made on the first async call (in the benchmark's event loop)."""

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(url, prefix)
        # chatkeep's defaults, as users run it: the fallback (a local mirror kept up to
        # date by every call) is on, as in chatkeep_llama_index's store.
        self.store = ConversationStore.from_url(url, key_prefix=prefix)

    def async_store(self) -> AsyncConversationStore:
        if self.made_async is None:
            self.made_async = AsyncConversationStore.from_url(self.url, key_prefix=self.prefix)
        store: AsyncConversationStore = self.made_async
        return store

    def keys(self, sid: str) -> list[str]:
        return list(KeySchema(self.store.config.prefix).session(sid))

    def close(self) -> None:
        self.store.close()


class ChatkeepCore(ChatkeepSubject):
    name = "chatkeep store"

    def add_one(self, sid: str, message: Message) -> None:
        self.store.append(sid, [message])

    def add_many(self, sid: str, messages: list[Message]) -> None:
        self.store.append(sid, messages)

    def read_all(self, sid: str) -> list[Any]:
        return self.store.messages(sid)

    def read_last(self, sid: str, k: int) -> list[Any]:
        return self.store.messages(sid, last=k)

    def read_budget(self, sid: str, max_tokens: int) -> list[Any]:
        return self.store.messages(sid, max_tokens=max_tokens)

    async def aadd_one(self, sid: str, message: Message) -> None:
        await self.async_store().append(sid, [message])


# -- LangChain -----------------------------------------------------------------------------


def _lc_message(message: Message) -> Any:
    from langchain_core.messages import AIMessage, HumanMessage

    if message.role == "user":
        return HumanMessage(content=message.text)
    return AIMessage(
        content=message.text,
        tool_calls=[{"id": c.id, "name": c.name, "args": c.arguments} for c in message.tool_calls],
        response_metadata=message.metadata,
    )


class LangChainSubject(Subject):
    framework = "langchain"

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(url, prefix)
        self.histories: dict[str, Any] = {}

    def new_history(self, sid: str) -> Any:
        raise NotImplementedError

    def history(self, sid: str) -> Any:
        if self.per_request:
            return self.new_history(sid)
        found = self.histories.get(sid)
        if found is None:
            found = self.histories[sid] = self.new_history(sid)
        return found

    def add_one(self, sid: str, message: Message) -> None:
        self.history(sid).add_messages([_lc_message(message)])

    def add_many(self, sid: str, messages: list[Message]) -> None:
        self.history(sid).add_messages([_lc_message(m) for m in messages])

    def read_all(self, sid: str) -> list[Any]:
        return list(self.history(sid).messages)

    async def aadd_one(self, sid: str, message: Message) -> None:
        await self.history(sid).aadd_messages([_lc_message(message)])


class ChatkeepLangChain(LangChainSubject, ChatkeepSubject):
    name = "chatkeep_langchain"

    def __init__(self, url: str, prefix: str) -> None:
        from chatkeep_langchain import history_factory

        super().__init__(url, prefix)
        # Per request: the factory's histories (a snapshot of the first read serves
        # the turn's second look). Reused: a plain history, which reads Redis every
        # time, so it sees other writers.
        self.factory = history_factory(self.store, snapshot=self.per_request)
        self._async_factory: Callable[[str], Any] | None = None
        self._async_histories: dict[str, Any] = {}

    def new_history(self, sid: str) -> Any:
        return self.factory(sid)

    def read_last(self, sid: str, k: int) -> list[Any]:
        from chatkeep_langchain import RedisChatMessageHistory

        return list(RedisChatMessageHistory(sid, store=self.store, window=k).messages)

    async def aadd_one(self, sid: str, message: Message) -> None:
        if self.made_async is None or self._async_factory is None:  # first, or after aclose()
            from chatkeep_langchain import history_factory

            self._async_factory = history_factory(
                self.store, async_store=self.async_store(), snapshot=self.per_request
            )
            self._async_histories = {}
        if self.per_request:
            history = self._async_factory(sid)
        else:
            history = self._async_histories.get(sid)
            if history is None:
                history = self._async_histories[sid] = self._async_factory(sid)
        await history.aadd_messages([_lc_message(message)])


class ChatkeepLangChainPerRequest(ChatkeepLangChain):
    """A new history for every operation, from the factory over one shared store:
    chatkeep's own RunnableWithMessageHistory idiom."""

    name = "chatkeep_langchain per request"
    per_request = True


class CommunityLangChain(LangChainSubject):
    name = "langchain_community"

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(url, prefix)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from langchain_community.chat_message_histories import RedisChatMessageHistory
        self.cls = RedisChatMessageHistory

    def keys(self, sid: str) -> list[str]:
        return [f"{self.prefix}:{sid}"]

    def new_history(self, sid: str) -> Any:
        # Each history builds its own client (and so its own connection pool).
        return self.cls(sid, url=self.url, key_prefix=f"{self.prefix}:", ttl=TTL_SECONDS)


class CommunityLangChainPerRequest(CommunityLangChain):
    """A new history (so a new client and connection) for every operation: what
    RunnableWithMessageHistory does with a get_session_history that builds one."""

    name = "langchain_community per request"
    per_request = True


# -- LlamaIndex ------------------------------------------------------------------------------


def _li_message(message: Message) -> Any:
    from llama_index.core.llms import ChatMessage

    kwargs: dict[str, Any] = {}
    if message.tool_calls:
        kwargs["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": "{}"}}
            for c in message.tool_calls
        ]
    return ChatMessage(role=message.role, content=message.text, additional_kwargs=kwargs)


class LlamaSubject(Subject):
    framework = "llama-index"
    store: Any

    def chat_store(self) -> Any:
        """The store an operation uses (the one store; per request: a new one)."""
        return self.store

    def chat_key(self, sid: str) -> str:
        return sid

    def add_one(self, sid: str, message: Message) -> None:
        self.store.add_message(sid, _li_message(message))

    def add_many(self, sid: str, messages: list[Message]) -> None:
        # BaseChatStore has no batch append; a batch is a loop of add_message.
        for message in messages:
            self.store.add_message(sid, _li_message(message))

    def prefill(self, sid: str, messages: list[Message]) -> None:
        self.store.set_messages(sid, [_li_message(m) for m in messages])

    def read_all(self, sid: str) -> list[Any]:
        return list(self.store.get_messages(sid))

    async def aadd_one(self, sid: str, message: Message) -> None:
        await self.store.async_add_message(sid, _li_message(message))


class ChatkeepLlama(LlamaSubject):
    name = "chatkeep_llama_index"

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(url, prefix)
        from chatkeep_llama_index import RedisChatStore

        self.store = RedisChatStore(redis_url=url, key_prefix=prefix, ttl=TTL_SECONDS)

    def keys(self, sid: str) -> list[str]:
        return list(KeySchema(self.prefix).session(sid))

    def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            close()

    async def aclose(self) -> None:
        aclose = getattr(self.store, "aclose", None)
        if aclose is not None:
            await aclose()


class PeerLlama(LlamaSubject):
    name = "llama-index redis"

    def __init__(self, url: str, prefix: str) -> None:
        super().__init__(url, prefix)
        from llama_index.storage.chat_store.redis import RedisChatStore

        self.cls = RedisChatStore
        self.store = RedisChatStore(redis_url=url, ttl=TTL_SECONDS)

    def chat_store(self) -> Any:
        if self.per_request:
            return self.cls(redis_url=self.url, ttl=TTL_SECONDS)
        return self.store

    def chat_key(self, sid: str) -> str:
        return f"{self.prefix}:{sid}"  # this store uses the key it is given as is

    def keys(self, sid: str) -> list[str]:
        return [f"{self.prefix}:{sid}"]

    def add_one(self, sid: str, message: Message) -> None:
        self.chat_store().add_message(f"{self.prefix}:{sid}", _li_message(message))

    def add_many(self, sid: str, messages: list[Message]) -> None:
        for message in messages:
            self.add_one(sid, message)

    def prefill(self, sid: str, messages: list[Message]) -> None:
        self.store.set_messages(f"{self.prefix}:{sid}", [_li_message(m) for m in messages])

    def read_all(self, sid: str) -> list[Any]:
        return list(self.chat_store().get_messages(f"{self.prefix}:{sid}"))

    async def aadd_one(self, sid: str, message: Message) -> None:
        store = self.store if not self.per_request else self.chat_store()
        await store.async_add_message(f"{self.prefix}:{sid}", _li_message(message))


class PeerLlamaPerRequest(PeerLlama):
    """A new store (so a new client and connection) for every operation."""

    name = "llama-index redis per request"
    per_request = True


ALL_SUBJECTS: list[type[Subject]] = [
    Raw,
    RawPerRequest,
    ChatkeepCore,
    ChatkeepLangChain,
    ChatkeepLangChainPerRequest,
    CommunityLangChain,
    CommunityLangChainPerRequest,
    ChatkeepLlama,
    PeerLlama,
    PeerLlamaPerRequest,
]


def available(url: str, run: int) -> list[Subject]:
    """Every subject whose packages are installed, each with its own key prefix; a
    per-request subject shares its reused twin's (the same sessions, filled once)."""
    made: list[Subject] = []
    for index, cls in enumerate(ALL_SUBJECTS):
        twin = cls.__mro__[1]
        keys = ALL_SUBJECTS.index(twin) if cls.per_request and twin in ALL_SUBJECTS else index
        try:
            made.append(cls(url, f"bench{run}s{keys}"))
        except ImportError as exc:
            print(f"  (skipping {cls.name}: {exc.name} is not installed)")
    return made


def run_async(coro: Any) -> Any:
    return asyncio.run(coro)
