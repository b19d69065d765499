"""RedisChatMessageHistory on its own: the scenarios of langchain_community's Redis
history (drop-in arguments, add_user_message / add_ai_message / clear, TTL expiry on
a real server), where its stores come from, and what it refuses."""

from __future__ import annotations

import json
import time

import pytest
import redis
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import (
    AIMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
)

import chatkeep_langchain
from chatkeep import (
    AsyncConversationStore,
    ConfigurationError,
    ConversationStore,
    InvalidArgumentError,
    InvalidSessionId,
    SessionOwnershipError,
)
from chatkeep_langchain import (
    RedisChatMessageHistory,
    history_factory,
    import_community_history,
    store_prefix,
)
from tests.support.servers import RedisServer


def test_public_api_is_pinned() -> None:
    assert sorted(chatkeep_langchain.__all__) == [
        "CONVERSION",
        "HistoryFactory",
        "ImportResult",
        "RedisCache",
        "RedisChatMessageHistory",
        "RedisStore",
        "aclose_shared_stores",
        "close_shared_stores",
        "from_chatkeep",
        "history_factory",
        "import_community_history",
        "message_from_record",
        "role_of",
        "store_prefix",
        "to_chatkeep",
    ]


# -- langchain_community scenarios on a real server ------------------------------------

pytestmark_redis = pytest.mark.redis_server


@pytestmark_redis
def test_drop_in_arguments_and_convenience_methods(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    # positional (session_id, url, key_prefix, ttl) as langchain_community takes them
    history = RedisChatMessageHistory("user-1", redis_server.url, f"{prefix}:", 600)
    assert isinstance(history, BaseChatMessageHistory)
    assert history.messages == []
    history.add_user_message("hello")
    history.add_ai_message("hi there")
    history.add_message(HumanMessage("how are you?"))
    assert history.messages == [
        HumanMessage("hello"),
        AIMessage("hi there"),
        HumanMessage("how are you?"),
    ]
    assert history.key == f"{prefix}:{{user-1}}:m"
    assert raw.llen(history.key) == 3
    assert 590_000 < raw.pttl(history.key) <= 600_000
    assert "Human: hello" in str(history)

    history.clear()
    assert history.messages == []
    assert not raw.exists(history.key, f"{prefix}:{{user-1}}:h")


@pytestmark_redis
def test_ttl_expiry_on_a_real_server(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    history = RedisChatMessageHistory("short", redis_server.url, prefix, ttl=1)
    history.add_user_message("soon gone")
    assert 0 < raw.pttl(history.key) <= 1000
    time.sleep(0.6)
    assert history.messages == [HumanMessage("soon gone")]  # a read restarts a sliding TTL
    assert raw.pttl(history.key) > 800
    time.sleep(1.2)
    assert history.messages == []
    assert not raw.exists(history.key)


@pytestmark_redis
def test_ttl_none_never_expires_and_default_is_seven_days(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    forever = RedisChatMessageHistory("forever", redis_server.url, prefix, None)
    forever.add_user_message("kept")
    assert raw.pttl(forever.key) == -1
    default = RedisChatMessageHistory("default", redis_server.url, prefix)
    default.add_user_message("kept a week")
    assert abs(raw.pttl(default.key) - 7 * 24 * 3600 * 1000) < 5000


@pytestmark_redis
def test_ttl_on_a_shared_store_is_set_per_session(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    with ConversationStore.from_url(redis_server.url, key_prefix=prefix) as store:
        short = RedisChatMessageHistory("a", ttl=30, store=store)
        short.add_user_message("x")
        plain = RedisChatMessageHistory("b", store=store)
        plain.add_user_message("y")
        assert 25_000 < raw.pttl(short.key) <= 30_000
        assert raw.pttl(plain.key) > 30_000


@pytestmark_redis
def test_sessions_are_isolated_even_with_odd_ids(redis_server: RedisServer, prefix: str) -> None:
    ids = ["a", "a:b", "a}{b", "a*", "a b", "ä/ö?", "x" * 512]
    for sid in ids:
        RedisChatMessageHistory(sid, redis_server.url, prefix).add_user_message(sid)
    for sid in ids:
        assert RedisChatMessageHistory(sid, redis_server.url, prefix).messages == [
            HumanMessage(sid)
        ]


@pytestmark_redis
def test_import_a_community_conversation(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    old = [
        HumanMessage("before the switch"),
        AIMessage("", tool_calls=[{"name": "f", "args": {"x": 1}, "id": "c1"}]),
        ToolMessage("42", tool_call_id="c1"),
        AIMessage("the answer is 42"),
    ]
    legacy_key = f"{prefix}-legacy:s1"
    for message in old:  # langchain_community's layout: LPUSH, newest first
        raw.lpush(legacy_key, json.dumps(message_to_dict(message)))

    history = RedisChatMessageHistory("s1", redis_server.url, prefix)
    assert import_community_history(raw, history, key_prefix=f"{prefix}-legacy:").copied == 4
    assert history.messages == old
    # again: the idempotency key keeps it from being stored twice
    import_community_history(raw, history, key_prefix=f"{prefix}-legacy:", delete=True)
    assert history.messages == old
    assert not raw.exists(legacy_key)


# -- key_prefix, ttl and other arguments ---------------------------------------------------


def test_key_prefix_mapping() -> None:
    assert store_prefix("message_store:") == "message_store"
    assert store_prefix("app:chat::") == "app:chat"
    assert store_prefix("plain") == "plain"
    assert store_prefix("") is None
    assert store_prefix(":") is None
    assert store_prefix(None) is None
    for bad in ("has space", "{tag}", "glob*", "x" * 257):
        with pytest.raises(ConfigurationError):
            store_prefix(bad)


def test_default_key_prefix_is_the_store_default() -> None:
    history = RedisChatMessageHistory("s", "memory://")
    assert history.key == "chatkeep:{s}:m"
    history = RedisChatMessageHistory("s", "memory://", "message_store:")
    assert history.key == "message_store:{s}:m"


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(InvalidSessionId):
        RedisChatMessageHistory("", "memory://")
    with pytest.raises(InvalidSessionId):
        RedisChatMessageHistory("x" * 513, "memory://")
    with pytest.raises(ConfigurationError):
        RedisChatMessageHistory("s", "memory://", ttl=0)
    with pytest.raises(ConfigurationError):
        RedisChatMessageHistory("s", "memory://", ttl="1h")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        RedisChatMessageHistory("s", "memory://", window=0)
    with pytest.raises(ConfigurationError):
        RedisChatMessageHistory("s", "ftp://nowhere")
    with pytest.raises(ConfigurationError):
        RedisChatMessageHistory("s", "memory://", no_such_option=1)
    store = ConversationStore.from_url("memory://", key_prefix="p")
    with pytest.raises(ConfigurationError):
        RedisChatMessageHistory("s", "memory://", store=store)
    with pytest.raises(ConfigurationError):
        RedisChatMessageHistory("s", key_prefix="other:", store=store)
    with pytest.raises(ConfigurationError):
        RedisChatMessageHistory("s", store=object())  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        history_factory(store, max_messages=3)
    RedisChatMessageHistory("s", key_prefix="p:", store=store)  # the same prefix is fine
    store.close()


def test_histories_from_one_url_share_one_store() -> None:
    one = RedisChatMessageHistory("a", "memory://", "shared:")
    two = RedisChatMessageHistory("b", "memory://", "shared:")
    other = RedisChatMessageHistory("a", "memory://", "elsewhere:")
    assert one.store is two.store
    assert one.store is not other.store
    one.add_user_message("to a")
    assert RedisChatMessageHistory("a", "memory://", "shared:").messages == [HumanMessage("to a")]
    assert other.messages == []


def test_url_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "memory://")
    history = RedisChatMessageHistory("env")
    assert history.store is not None and history.store.status().backend == "memory"


async def test_max_tokens_reads_the_tail_that_fits_and_keeps_the_system_message() -> None:
    """max_tokens=N: the newest messages whose counts (the store's token_counter, at
    write time) fit; a leading system message kept; orphan tool results dropped."""
    store = ConversationStore.from_url(
        "memory://", token_counter=lambda m: len(m.text.split()) or 1
    )
    full = RedisChatMessageHistory("t", store=store)
    full.add_messages(
        [
            SystemMessage("be brief"),
            HumanMessage("what is the weather"),
            AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "c1"}]),
            ToolMessage("sunny and warm", tool_call_id="c1"),
            AIMessage("it is sunny"),
        ]
    )
    budget = RedisChatMessageHistory("t", store=store, max_tokens=8)
    # 2 (system) + 3 + 3 fit; the call (1) does not: its result is an orphan, dropped
    assert [m.content for m in budget.messages] == ["be brief", "it is sunny"]
    assert [m.content for m in await budget.aget_messages()] == ["be brief", "it is sunny"]
    roomy = RedisChatMessageHistory("t", store=store, max_tokens=100)
    assert len(roomy.messages) == 5
    factory = history_factory(store, max_tokens=8)
    assert [m.content for m in factory("t").messages] == ["be brief", "it is sunny"]
    with pytest.raises(ConfigurationError):
        RedisChatMessageHistory("t", store=store, max_tokens=8, window=2)
    with pytest.raises(InvalidArgumentError):
        RedisChatMessageHistory("t", store=store, max_tokens=-1)
    store.close()


async def test_window_reads_the_tail_and_drops_orphan_tool_results() -> None:
    store = ConversationStore.from_url("memory://")
    full = RedisChatMessageHistory("w", store=store)
    full.add_messages(
        [
            HumanMessage("q"),
            AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "c1"}]),
            ToolMessage("r1", tool_call_id="c1"),
            AIMessage("a1"),
            HumanMessage("q2"),
            AIMessage("a2"),
        ]
    )
    assert [m.content for m in RedisChatMessageHistory("w", store=store, window=3).messages] == [
        "a1",
        "q2",
        "a2",
    ]
    # the last 4 start with a tool result whose call is outside the window: dropped
    windowed = RedisChatMessageHistory("w", store=store, window=4)
    assert [m.content for m in windowed.messages] == ["a1", "q2", "a2"]
    assert [m.content for m in await windowed.aget_messages()] == ["a1", "q2", "a2"]
    assert len(RedisChatMessageHistory("w", store=store, window=5).messages) == 5
    store.close()


def test_snapshot_serves_reads_until_the_history_writes() -> None:
    store = ConversationStore.from_url("memory://")
    history = RedisChatMessageHistory("snap", store=store, snapshot=True)
    other = RedisChatMessageHistory("snap", store=store)
    assert history.messages == []
    other.add_user_message("elsewhere")
    assert history.messages == []  # the snapshot of the first read
    history.add_ai_message("mine")  # a write drops the snapshot
    assert [m.content for m in history.messages] == ["elsewhere", "mine"]
    history.clear()
    assert history.messages == []
    store.close()


# -- stores given explicitly ----------------------------------------------------------------


async def test_async_methods_await_the_async_store(redis_server: RedisServer, prefix: str) -> None:
    store = ConversationStore.from_url(redis_server.url, key_prefix=prefix)
    astore = AsyncConversationStore.from_url(redis_server.url, key_prefix=prefix)
    history = RedisChatMessageHistory("both", store=store, async_store=astore)
    await history.aadd_messages([HumanMessage("async in")])
    history.add_messages([AIMessage("sync in")])
    assert (
        await history.aget_messages()
        == history.messages
        == [
            HumanMessage("async in"),
            AIMessage("sync in"),
        ]
    )
    await history.aclear()
    assert history.messages == []
    store.close()
    await astore.aclose()


async def test_only_an_async_store(prefix: str) -> None:
    astore = AsyncConversationStore.from_url("memory://", key_prefix=prefix)
    history = RedisChatMessageHistory("a", store=astore)
    await history.aadd_messages([HumanMessage("hi")])
    assert await history.aget_messages() == [HumanMessage("hi")]
    assert history.store is None
    with pytest.raises(ConfigurationError, match="only an AsyncConversationStore"):
        history.messages  # noqa: B018
    await astore.aclose()


async def test_only_a_sync_store_serves_async_calls(redis_server: RedisServer, prefix: str) -> None:
    for url in ("memory://", redis_server.url):
        store = ConversationStore.from_url(url, key_prefix=prefix)
        history = RedisChatMessageHistory("s", store=store)
        await history.aadd_messages([SystemMessage("sys")])
        assert await history.aget_messages() == history.messages == [SystemMessage("sys")]
        await history.aclear()
        assert history.messages == []
        store.close()


@pytest.mark.redis_server
async def test_clients_given(redis_server: RedisServer, prefix: str) -> None:
    import redis.asyncio

    client = redis.Redis.from_url(redis_server.url)
    aclient = redis.asyncio.Redis.from_url(redis_server.url)
    history = RedisChatMessageHistory("c", key_prefix=prefix, client=client, async_client=aclient)
    again = RedisChatMessageHistory("c", key_prefix=prefix, client=client, async_client=aclient)
    assert history.store is again.store
    history.add_user_message("sync")
    await again.aadd_messages([AIMessage("async")])
    assert await history.aget_messages() == [HumanMessage("sync"), AIMessage("async")]
    # an async client passed as client= is taken as the async client
    solo = RedisChatMessageHistory("c", key_prefix=prefix, client=aclient)
    assert [m.content for m in await solo.aget_messages()] == ["sync", "async"]
    await chatkeep_langchain.aclose_shared_stores()
    client.close()
    await aclient.aclose()


def test_owner_is_enforced() -> None:
    store = ConversationStore.from_url("memory://")
    mine = RedisChatMessageHistory("s", store=store, owner="u1")
    mine.add_user_message("private")
    with pytest.raises(SessionOwnershipError):
        RedisChatMessageHistory("s", store=store, owner="u2").messages  # noqa: B018
    assert [i.id for i in store.sessions(owner="u1")] == ["s"]
    store.close()
