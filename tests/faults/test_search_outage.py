"""``store.search`` while Redis is away: served by the fallback's mirror, which holds
the newest ``mirror_messages`` of the sessions this process wrote or read."""

from __future__ import annotations

import asyncio

import pytest

from chatkeep import AsyncConversationStore, ConversationStore, SessionOwnershipError, ToolCall
from tests.support.faults import FAST, settle
from tests.support.messages import msg, texts
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis_server


def test_search_is_served_from_the_mirror_during_an_outage(
    durable_redis_server: RedisServer, prefix: str
) -> None:
    server = durable_redis_server
    store = ConversationStore.from_url(server.url, key_prefix=prefix, mirror_messages=5, **FAST)
    store.append("chat", [msg(f"weather {i}") for i in range(8)], owner="u1")
    store.append("other", [msg("weather elsewhere")])
    newest = ["weather 7", "weather 6", "weather 5"]
    assert texts(store.search("chat", "WEATHER", limit=3)) == newest

    server.stop()
    call = msg("", "assistant", tool_calls=[ToolCall(id="c", name="w", arguments={"q": "Weather"})])
    store.append("chat", [msg("new WEATHER during the outage"), call], owner="u1")
    assert store.status().degraded
    found = store.search("chat", "weather", owner="u1")
    # the mirror held the newest five (weather 3..7); the outage's two pushed out
    # weather 3 and 4
    assert texts(found) == ["", "new WEATHER during the outage", *newest]
    assert found[0].tool_calls[0].arguments == {"q": "Weather"}
    with pytest.raises(SessionOwnershipError):
        store.search("chat", "weather", owner="u2")
    assert texts(store.search("other", "weather")) == ["weather elsewhere"]
    assert store.search("never-seen-here", "weather") == []  # not held: nothing to serve
    assert store.status().pending_replay == 1  # a search journals nothing

    server.start()
    settle(store)
    found = store.search("chat", "weather", limit=20)  # Redis again: the whole session
    assert len(found) == 10 and found[-1].text == "weather 0"
    store.close()


def test_async_search_is_served_from_the_mirror_during_an_outage(
    durable_redis_server: RedisServer, prefix: str
) -> None:
    server = durable_redis_server

    async def scenario() -> None:
        async with AsyncConversationStore.from_url(server.url, key_prefix=prefix, **FAST) as store:
            await store.append("chat", [msg("Été à Paris"), msg("rien")])
            server.stop()
            assert texts(await store.search("chat", "ÉTÉ")) == ["Été à Paris"]
            assert store.status().degraded
            server.start()

    asyncio.run(scenario())
