"""The langchain-redis drop-in: its constructor arguments, what they mean here, and its
methods (``search_messages``, ``delete``, ``len``, ``id``, ``redis_client``). Its own
test file, adapted, is test_langchain_redis_suite.py."""

from __future__ import annotations

import asyncio
import warnings

import pytest
import redis
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from chatkeep import BackendUnavailableError, ConfigurationError
from chatkeep_langchain import RedisChatMessageHistory
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis_server


def test_index_options_and_client_options_are_ignored_with_one_warning(
    redis_server: RedisServer,
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = RedisChatMessageHistory(
            "s",
            redis_url=redis_server.url,
            index_name="idx:mine",
            overwrite_index=True,
            decode_responses=True,  # langchain-redis passes it to Redis.from_url
        )
    assert [str(w.message) for w in caught] == [
        "chatkeep_langchain.RedisChatMessageHistory ignores langchain-redis's index_name, "
        "overwrite_index, decode_responses: chatkeep needs no search index (RediSearch) "
        "and builds its own Redis connection"
    ]
    assert caught[0].filename == __file__  # points at the caller
    history.add_message(HumanMessage(content="hi"))
    assert [m.content for m in history.messages] == ["hi"]
    history.delete()


def test_langchain_redis_arguments_use_its_default_prefix_and_no_warning(
    redis_server: RedisServer, raw: redis.Redis
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        history = RedisChatMessageHistory("lcr-prefix", redis_url=redis_server.url)
    history.add_message(HumanMessage(content="hi"))
    assert history.key == "chat:{lcr-prefix}:m"
    assert raw.llen("chat:{lcr-prefix}:m") == 1
    custom = RedisChatMessageHistory("p", redis_url=redis_server.url, key_prefix="app:")
    assert custom.key == "app:{p}:m"
    history.delete()


@pytest.mark.parametrize("ttl", [None, 0])
def test_ttl_none_or_zero_never_expires_as_in_langchain_redis(
    redis_server: RedisServer, ttl: int | None
) -> None:
    history = RedisChatMessageHistory(f"ttl-{ttl}", redis_url=redis_server.url, ttl=ttl)
    history.add_message(HumanMessage(content="kept"))
    assert history.store is not None
    assert history.store.ttl(history.store_session_id) is None
    history.delete()


def test_a_positive_ttl_expires_the_session(redis_server: RedisServer) -> None:
    history = RedisChatMessageHistory("ttl-5", redis_url=redis_server.url, ttl=5)
    history.add_message(HumanMessage(content="soon gone"))
    assert history.store is not None
    left = history.store.ttl(history.store_session_id)
    assert left is not None and 4 < left <= 5
    history.delete()


def test_a_negative_ttl_is_refused_when_the_history_writes(redis_server: RedisServer) -> None:
    history = RedisChatMessageHistory("ttl-neg", redis_url=redis_server.url, ttl=-1)
    with pytest.raises(ConfigurationError, match="negative ttl"):
        history.add_message(HumanMessage(content="would vanish"))
    with pytest.raises(ConfigurationError, match="negative ttl"):
        asyncio.run(history.aadd_messages([HumanMessage(content="would vanish")]))
    assert history.messages == []
    history.delete()


def test_community_arguments_keep_refusing_ttl_zero() -> None:
    with pytest.raises(ConfigurationError):
        RedisChatMessageHistory("s", "memory://", ttl=0)


def test_unreachable_redis_raises_like_langchain_redis_unless_fallback_is_asked() -> None:
    history = RedisChatMessageHistory("s", redis_url="redis://127.0.0.1:1/0")
    with pytest.raises(BackendUnavailableError):
        history.add_message(HumanMessage(content="x"))
    kept = RedisChatMessageHistory("s", redis_url="redis://127.0.0.1:1/0", fallback="memory")
    kept.add_message(HumanMessage(content="x"))  # chatkeep's fallback, when asked
    assert [m.content for m in kept.messages] == ["x"]
    assert kept.store is not None and kept.store.status().degraded


def test_url_and_redis_url_or_client_and_redis_client_conflict(redis_server: RedisServer) -> None:
    with pytest.raises(ConfigurationError):
        RedisChatMessageHistory("s", redis_server.url, redis_url=redis_server.url)
    client = redis.Redis.from_url(redis_server.url)
    with pytest.raises(ConfigurationError):
        RedisChatMessageHistory("s", client=client, redis_client=client)
    client.close()


def test_redis_client_is_used_and_exposed(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url)
    history = RedisChatMessageHistory("given-client", redis_client=client)
    history.add_message(HumanMessage(content="hi"))
    assert history.redis_client is client
    assert client.llen("chat:{given-client}:m") == 1
    history.delete()
    client.close()


def test_search_messages_returns_langchain_redis_dicts_newest_first(
    redis_server: RedisServer,
) -> None:
    history = RedisChatMessageHistory("search", redis_url=redis_server.url)
    history.add_messages(
        [
            HumanMessage(content="What's the WEATHER in Paris?", additional_kwargs={"k": 1}),
            AIMessage(content="", tool_calls=[{"id": "c1", "name": "w", "args": {"q": "paris"}}]),
            ToolMessage(content="Paris: sunny weather", tool_call_id="c1"),
            AIMessage(content="It is sunny."),
        ]
    )
    found = history.search_messages("weather")
    assert found == [
        {
            "content": "Paris: sunny weather",
            "additional_kwargs": {},
            "type": "tool",
            "tool_call_id": "c1",
            "status": "success",
        },
        {"content": "What's the WEATHER in Paris?", "additional_kwargs": {"k": 1}, "type": "human"},
    ]
    assert [r["type"] for r in history.search_messages("paris")] == ["tool", "ai", "human"]
    assert len(history.search_messages("paris", limit=1)) == 1
    assert history.search_messages("") == []
    assert history.search_messages(None) == []  # type: ignore[arg-type]
    assert history.search_messages("paris", limit=0) == []
    assert asyncio.run(history.asearch_messages("SUNNY")) == [
        {"content": "It is sunny.", "additional_kwargs": {}, "type": "ai"},
        found[0],
    ]
    history.delete()


def test_len_id_bool_and_delete_of_this_session_only(redis_server: RedisServer) -> None:
    history = RedisChatMessageHistory("len-a", redis_url=redis_server.url)
    other = RedisChatMessageHistory("len-b", redis_url=redis_server.url)
    assert len(history) == 0 and bool(history) is True  # truthy, with no round trip
    history.add_messages([HumanMessage(content="1"), AIMessage(content="2")])
    other.add_message(HumanMessage(content="other"))
    assert len(history) == 2 and history.id == "len-a"
    history.delete()
    assert len(history) == 0 and history.messages == []
    assert [m.content for m in other.messages] == ["other"]  # not every session
    asyncio.run(other.adelete())
    assert len(other) == 0
