"""RedisChatStore: every BaseChatStore method, sync and async, on memory and real Redis."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from llama_index.core.llms import ChatMessage
from llama_index.core.memory import ChatMemoryBuffer

from chatkeep import (
    BackendUnavailableError,
    ConfigurationError,
    ConversationStore,
    InvalidArgumentError,
    InvalidSessionId,
    SessionOwnershipError,
)
from chatkeep_llama_index import RedisChatStore
from tests.adapters.llama_index.conftest import Api
from tests.adapters.llama_index.helpers import assistant, texts, user
from tests.support.servers import RedisServer, free_port


def abc() -> list[ChatMessage]:
    return [user("a"), assistant("b"), user("c")]


# -- get / set / add -----------------------------------------------------------------------------


async def test_missing_key_reads_empty(api: Api) -> None:
    assert await api.get("nobody") == []
    assert await api.keys() == []


async def test_add_appends_in_order(api: Api) -> None:
    for message in abc():
        await api.add("k", message)
    assert await api.get("k") == abc()


@pytest.mark.parametrize(
    ("idx", "expected"),
    [
        (0, ["x", "a", "b", "c"]),  # first
        (1, ["a", "x", "b", "c"]),  # middle
        (3, ["a", "b", "c", "x"]),  # at the end
        (99, ["a", "b", "c", "x"]),  # beyond the end: appended, as list.insert
        (-1, ["a", "b", "x", "c"]),  # negative: before the last
        (-99, ["x", "a", "b", "c"]),  # far negative: first
    ],
)
async def test_add_at_index_inserts(api: Api, idx: int, expected: list[str]) -> None:
    await api.set("k", abc())
    await api.add("k", user("x"), idx=idx)
    assert texts(await api.get("k")) == expected


async def test_add_at_index_to_a_missing_key_creates_it(api: Api) -> None:
    await api.add("new", user("x"), idx=5)
    assert texts(await api.get("new")) == ["x"]
    assert await api.keys() == ["new"]


async def test_set_replaces(api: Api) -> None:
    await api.set("k", abc())
    await api.set("k", [assistant("only")])
    assert texts(await api.get("k")) == ["only"]


async def test_set_empty_deletes_the_session(api: Api, raw_keys: Callable[[], list[str]]) -> None:
    await api.set("k", abc())
    await api.set("k", [])
    assert await api.get("k") == []
    assert await api.keys() == []
    assert raw_keys() == []


# -- delete_message ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("idx", "removed", "left"),
    [
        (0, "a", ["b", "c"]),  # first
        (1, "b", ["a", "c"]),  # middle
        (2, "c", ["a", "b"]),  # last
        (-1, "c", ["a", "b"]),  # negative
        (-3, "a", ["b", "c"]),  # most negative in range
    ],
)
async def test_delete_message_removes_exactly_one(
    api: Api, idx: int, removed: str, left: list[str]
) -> None:
    await api.set("k", abc())
    got = await api.delete("k", idx)
    assert got is not None and got.content == removed
    assert texts(await api.get("k")) == left


@pytest.mark.parametrize("idx", [3, 99, -4, -99])
async def test_delete_message_out_of_range_is_none(api: Api, idx: int) -> None:
    await api.set("k", abc())
    assert await api.delete("k", idx) is None
    assert await api.get("k") == abc()


async def test_delete_message_of_a_missing_key_is_none(api: Api) -> None:
    assert await api.delete("nobody", 0) is None
    assert await api.keys() == []


async def test_delete_the_only_message_leaves_no_key(
    api: Api, raw_keys: Callable[[], list[str]]
) -> None:
    await api.add("k", user("only"))
    got = await api.delete("k", 0)
    assert got == user("only")
    assert await api.get("k") == []
    assert await api.keys() == []
    assert api.store.store.info("k") is None
    assert raw_keys() == []


async def test_deleted_message_comes_back_whole(api: Api) -> None:
    message = ChatMessage(
        role="assistant",
        content="with extras",
        additional_kwargs={"tool_calls": [{"id": "1", "type": "function",
                                           "function": {"name": "f", "arguments": "{}"}}]},
    )  # fmt: skip
    await api.set("k", [user("q"), message])
    assert await api.delete("k", 1) == message


# -- delete_last_message -------------------------------------------------------------------------


async def test_delete_last_message(api: Api) -> None:
    await api.set("k", abc())
    assert await api.delete_last("k") == user("c")
    assert texts(await api.get("k")) == ["a", "b"]


async def test_delete_last_of_the_only_message_leaves_no_key(
    api: Api, raw_keys: Callable[[], list[str]]
) -> None:
    await api.add("k", user("only"))
    assert await api.delete_last("k") == user("only")
    assert await api.delete_last("k") is None
    assert await api.keys() == []
    assert raw_keys() == []


async def test_delete_last_of_a_missing_key_is_none(api: Api) -> None:
    assert await api.delete_last("nobody") is None


# -- delete_messages ------------------------------------------------------------------------------


async def test_delete_messages_returns_what_was_removed(
    api: Api, raw_keys: Callable[[], list[str]]
) -> None:
    await api.set("k", abc())
    await api.set("other", [user("stay")])
    assert await api.delete_all("k") == abc()
    assert await api.get("k") == []
    assert await api.keys() == ["other"]
    assert not [k for k in raw_keys() if "{k}" in k]


async def test_delete_messages_of_a_missing_key_is_none(api: Api) -> None:
    assert await api.delete_all("nobody") is None


# -- get_keys --------------------------------------------------------------------------------------


async def test_get_keys_lists_only_this_stores_sessions(
    api: Api, make_chat_store: Callable[..., RedisChatStore], prefix: str, url: str
) -> None:
    neighbour = make_chat_store(key_prefix=prefix + "-other")
    await api.set("mine-1", [user("x")])
    await api.set("mine-2", [user("y")])
    neighbour.set_messages("theirs", [user("z")])
    if url.startswith("redis"):
        raw = redis.Redis.from_url(url)
        raw.rpush("unrelated-list", "x")
        raw.set(f"{prefix}-stray", "x")
        raw.close()
    assert sorted(await api.keys()) == ["mine-1", "mine-2"]
    assert neighbour.get_keys() == ["theirs"]


async def test_get_keys_most_recently_active_first(api: Api) -> None:
    for key in ("k1", "k2", "k3"):
        await api.add(key, user(key))
        await asyncio.sleep(0.002)
    await api.add("k1", user("again"))
    keys = await api.keys()
    assert sorted(keys) == ["k1", "k2", "k3"]
    if api.store.store.status().backend == "memory":
        assert keys[0] == "k1"


async def test_owner_scopes_sessions(
    make_chat_store: Callable[..., RedisChatStore], mode: str
) -> None:
    alice = Api(make_chat_store(owner="alice"), mode)
    bob_store = make_chat_store(owner="bob")
    if bob_store.store.status().backend == "memory":
        bob_store = RedisChatStore(store=alice.store.store, owner="bob")
    bob = Api(bob_store, mode)
    await alice.add("a-chat", user("hi"))
    await bob.add("b-chat", user("yo"))
    assert await alice.keys() == ["a-chat"]
    assert await bob.keys() == ["b-chat"]
    with pytest.raises(SessionOwnershipError):
        await bob.get("a-chat")


@pytest.mark.parametrize("key", ["", "x" * 513, "nul\x00key"])
async def test_bad_keys_are_refused(api: Api, key: str) -> None:
    with pytest.raises(InvalidSessionId):
        await api.add(key, user("x"))


# -- atomicity and threads -------------------------------------------------------------------------


@pytest.mark.redis_server
def test_set_messages_is_atomic_for_readers(redis_server: RedisServer, prefix: str) -> None:
    writer = RedisChatStore(redis_url=redis_server.url, key_prefix=prefix)
    reader = RedisChatStore(redis_url=redis_server.url, key_prefix=prefix)
    versions = [[user(f"v{i}-{j}") for j in range(20)] for i in range(5)]
    writer.set_messages("k", versions[0])
    seen: set[int] = set()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            got = texts(reader.get_messages("k"))
            seen.add(len(got))
            assert len({t.split("-")[0] for t in got}) == 1  # never a mix of versions

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i in range(200):
            writer.set_messages("k", versions[i % 5])
    finally:
        stop.set()
        thread.join()
        writer.close()
        reader.close()
    assert seen == {20}


def test_sync_store_is_thread_safe(make_chat_store: Callable[..., RedisChatStore]) -> None:
    chat_store = make_chat_store()

    def add(worker: int) -> None:
        for i in range(25):
            chat_store.add_message("k", user(f"{worker}:{i}"))

    threads = [threading.Thread(target=add, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = texts(chat_store.get_messages("k"))
    assert len(got) == 200
    for w in range(8):  # each writer's messages keep their order
        mine = [t for t in got if t.startswith(f"{w}:")]
        assert mine == [f"{w}:{i}" for i in range(25)]


async def test_memory_buffer_aget_reads_in_threads_while_aput_writes(
    make_chat_store: Callable[..., RedisChatStore],
) -> None:
    chat_store = make_chat_store()
    memory = ChatMemoryBuffer.from_defaults(chat_store=chat_store, chat_store_key="k")
    await asyncio.gather(*(memory.aput(user(f"m{i}")) for i in range(20)))
    results = await asyncio.gather(*(memory.aget() for _ in range(10)))
    assert all(sorted(texts(r)) == sorted(f"m{i}" for i in range(20)) for r in results)


# -- TTL -------------------------------------------------------------------------------------------


def test_ttl_is_applied(make_chat_store: Callable[..., RedisChatStore]) -> None:
    chat_store = make_chat_store(ttl=60)
    chat_store.add_message("k", user("x"))
    left = chat_store.store.ttl("k")
    assert left is not None and 55 < left <= 60
    assert chat_store.ttl == 60


@pytest.mark.parametrize("ttl", [None, 0])
def test_no_ttl_never_expires(
    make_chat_store: Callable[..., RedisChatStore], ttl: int | None
) -> None:
    chat_store = make_chat_store(ttl=ttl)
    chat_store.add_message("k", user("x"))
    assert chat_store.store.ttl("k") is None
    assert chat_store.ttl is None


def test_default_ttl_is_chatkeeps(make_chat_store: Callable[..., RedisChatStore]) -> None:
    chat_store = make_chat_store()
    assert chat_store.ttl == 7 * 24 * 3600


@pytest.mark.redis_server
@pytest.mark.slow
def test_session_expires(redis_server: RedisServer, prefix: str) -> None:
    chat_store = RedisChatStore(redis_url=redis_server.url, key_prefix=prefix, ttl=1)
    chat_store.add_message("k", user("x"))
    time.sleep(1.3)
    assert chat_store.get_messages("k") == []
    assert chat_store.get_keys() == []
    chat_store.close()


# -- construction and serialisation ----------------------------------------------------------------


def test_constructing_never_connects() -> None:
    port = free_port()
    with socket.create_server(("127.0.0.1", port)) as listener:
        listener.settimeout(0.2)
        chat_store = RedisChatStore(redis_url=f"redis://127.0.0.1:{port}/0")
        with pytest.raises(TimeoutError):
            listener.accept()  # nobody knocked
    chat_store.close()


def test_redis_down_at_construction_still_works(caplog: pytest.LogCaptureFixture) -> None:
    chat_store = RedisChatStore(redis_url=f"redis://127.0.0.1:{free_port()}/0", ttl=60)
    chat_store.add_message("k", user("x"))
    assert texts(chat_store.get_messages("k")) == ["x"]
    assert chat_store.status().degraded
    chat_store.close()


def test_fallback_raise_raises_only_when_used() -> None:
    chat_store = RedisChatStore(redis_url=f"redis://127.0.0.1:{free_port()}/0", fallback="raise")
    with pytest.raises(BackendUnavailableError):
        chat_store.get_messages("k")
    chat_store.close()


@pytest.mark.redis_server
def test_to_dict_has_no_client_and_no_password(redis_server: RedisServer, prefix: str) -> None:
    url = f"redis://:s3cret@127.0.0.1:{redis_server.port}/0?password=s3cret&health_check_interval=5"
    chat_store = RedisChatStore(redis_url=url, key_prefix=prefix, ttl=120, owner="u1")
    data = chat_store.to_dict()
    assert "s3cret" not in json.dumps(data)
    assert "s3cret" not in chat_store.model_dump_json()
    assert "s3cret" not in repr(chat_store)
    assert data == {
        "redis_url": f"redis://127.0.0.1:{redis_server.port}/0?health_check_interval=5",
        "ttl": 120.0,
        "key_prefix": prefix,
        "owner": "u1",
        "read_max_tokens": None,
        "class_name": "RedisChatStore",
    }
    assert RedisChatStore.class_name() == "RedisChatStore"
    loaded = RedisChatStore.from_dict(data)
    assert loaded.to_dict() == data
    loaded.add_message("k", user("x"))
    assert chat_store.get_messages("k") == [user("x")]
    # Credentials come back with the arguments of from_dict.
    again = RedisChatStore.from_dict(data, redis_url=redis_server.url)
    assert again.get_messages("k") == [user("x")]
    for s in (chat_store, loaded, again):
        s.close()


@pytest.mark.redis_server
def test_to_dict_with_clients(redis_server: RedisServer, prefix: str) -> None:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port, password=None)
    aclient = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port)
    chat_store = RedisChatStore(redis_client=client, aredis_client=aclient, key_prefix=prefix)
    data = chat_store.to_dict()
    assert data["redis_url"] == f"redis://127.0.0.1:{redis_server.port}/0"
    assert "client" not in json.dumps(data)
    chat_store.add_message("k", user("x"))
    assert RedisChatStore.from_dict(data).get_messages("k") == [user("x")]
    chat_store.close()
    client.close()
    asyncio.run(aclient.aclose())


def test_memory_buffer_serialises_with_this_store(
    make_chat_store: Callable[..., RedisChatStore],
) -> None:
    chat_store = make_chat_store()
    memory = ChatMemoryBuffer.from_defaults(chat_store=chat_store, chat_store_key="k")
    memory.put(user("x"))
    dumped = memory.to_dict()
    assert dumped["chat_store"]["class_name"] == "RedisChatStore"
    json.dumps(dumped)


def test_store_given_with_conflicting_options_is_refused() -> None:
    with ConversationStore.from_url("memory://", ttl=30) as store:
        RedisChatStore(store=store, ttl=30)  # agrees: fine
        with pytest.raises(ConfigurationError):
            RedisChatStore(store=store, ttl=60)
        with pytest.raises(ConfigurationError):
            RedisChatStore(store=store, key_prefix="other")
        with pytest.raises(ConfigurationError):
            RedisChatStore(store=store, max_messages=3)


def test_unknown_option_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        RedisChatStore(redis_url="memory://", not_an_option=1)


# -- clients and event loops -----------------------------------------------------------------------


@pytest.mark.redis_server
def test_async_methods_work_across_event_loops(redis_server: RedisServer, prefix: str) -> None:
    chat_store = RedisChatStore(redis_url=redis_server.url, key_prefix=prefix)

    async def turn(i: int) -> list[ChatMessage]:
        await chat_store.async_add_message("k", user(f"t{i}"))
        return await chat_store.aget_messages("k")

    for i in range(3):  # asyncio.run per turn, as scripts do: a new loop each time
        assert texts(asyncio.run(turn(i))) == [f"t{j}" for j in range(i + 1)]
    chat_store.close()


@pytest.mark.redis_server
def test_given_clients_serve_both_twins(redis_server: RedisServer, prefix: str) -> None:
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)

    aclient = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port)
    chat_store = RedisChatStore(redis_client=client, aredis_client=aclient, key_prefix=prefix)

    async def main(key: str) -> None:
        chat_store.add_message(key, user("sync"))
        await chat_store.async_add_message(key, user("async"))
        assert texts(await chat_store.aget_messages(key)) == ["sync", "async"]
        assert texts(chat_store.get_messages(key)) == ["sync", "async"]

    async def first() -> None:
        try:
            await main("first")
        finally:
            await aclient.aclose()  # the caller's client: the caller closes it

    try:
        asyncio.run(first())
        asyncio.run(main("second"))  # another loop: aredis_client is the first loop's
    finally:
        chat_store.close()
        client.close()


@pytest.mark.redis_server
def test_only_an_async_client_given(redis_server: RedisServer, prefix: str) -> None:
    async def main() -> None:
        aclient = redis.asyncio.Redis(host="127.0.0.1", port=redis_server.port)
        chat_store = RedisChatStore(aredis_client=aclient, key_prefix=prefix)
        await chat_store.async_add_message("k", user("a"))
        chat_store.add_message("k", user("b"))  # a sync client was derived
        assert texts(await chat_store.aget_messages("k")) == ["a", "b"]
        await chat_store.aclose()
        await aclient.aclose()

    asyncio.run(main())


@pytest.mark.redis_server
async def test_stores_given_are_used_as_is(redis_server: RedisServer, prefix: str) -> None:
    from chatkeep import AsyncConversationStore

    sync = ConversationStore.from_url(redis_server.url, key_prefix=prefix)
    asynchronous = AsyncConversationStore.from_url(redis_server.url, key_prefix=prefix)
    chat_store = RedisChatStore(store=sync, async_store=asynchronous)
    await chat_store.async_add_message("k", user("x"))
    assert texts(await asynchronous.messages("k") and await chat_store.aget_messages("k")) == ["x"]
    assert [m.text for m in sync.messages("k")] == ["x"]
    await chat_store.aclose()
    assert sync.messages("k")  # the given stores stay open
    sync.close()
    await asynchronous.aclose()


def test_url_and_options_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "memory://")
    monkeypatch.setenv("CHATKEEP_PREFIX", "from-env")
    chat_store = RedisChatStore(ttl=30)  # arguments win over the environment
    assert (chat_store.redis_url, chat_store.key_prefix, chat_store.ttl) == (
        "memory://",
        "from-env",
        30,
    )
    chat_store.close()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            "redis+cluster://user:hunter2@127.0.0.1:7000,127.0.0.1:7001",
            "redis+cluster://127.0.0.1:7000,127.0.0.1:7001",
        ),
        (
            "redis+sentinel://:hunter2@127.0.0.1:26379/svc?sentinel_password=hunter2",
            "redis+sentinel://127.0.0.1:26379/svc",
        ),
        ("rediss://default:hunter2@[::1]:6380/2", "rediss://[::1]:6380/2"),
    ],
)
def test_credentials_never_shown(url: str, shown: str) -> None:
    chat_store = RedisChatStore(redis_url=url)  # constructing connects to nothing
    assert chat_store.redis_url == shown
    assert "hunter2" not in json.dumps(chat_store.to_dict()) + repr(chat_store)


# -- token budgets: ChatMemoryBuffer's token limit served from the tail ---------------------


def _words(message: Any) -> int:
    return len(message.text.split())


def test_read_max_tokens_serves_a_memory_buffer_from_the_tail(
    make_chat_store: Callable[..., RedisChatStore],
) -> None:
    """With read_max_tokens, get_messages reads only the newest messages that fit (the
    counts the store's token_counter took at write time), and a ChatMemoryBuffer over
    it keeps what its own token limit allows of those."""
    tail = make_chat_store(read_max_tokens=6, token_counter=_words)
    words = ["one two three", "four five", "six seven", "eight nine"]
    for i, text in enumerate(words):
        tail.add_message("k", (user if i % 2 == 0 else assistant)(text))
    assert texts(tail.get_messages("k")) == ["four five", "six seven", "eight nine"]
    assert [m.text for m in tail.store.messages("k")] == words
    assert texts(asyncio.run(tail.aget_messages("k"))) == texts(tail.get_messages("k"))
    memory = ChatMemoryBuffer.from_defaults(chat_store=tail, chat_store_key="k", token_limit=10_000)
    assert texts(memory.get()) == ["four five", "six seven", "eight nine"]
    assert tail.to_dict()["read_max_tokens"] == 6
    again = RedisChatStore.from_dict(tail.to_dict(), token_counter=_words)
    assert again.read_max_tokens == 6
    again.close()


@pytest.mark.parametrize("bad", [-1, 1.5, "6", True])
def test_read_max_tokens_must_be_a_count(
    make_chat_store: Callable[..., RedisChatStore], bad: Any
) -> None:
    with pytest.raises(InvalidArgumentError):
        make_chat_store(read_max_tokens=bad)
