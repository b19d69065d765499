"""Transparent fallback: a chain keeps answering with its recent history while
Redis is down, and the turns taken meanwhile reach Redis once it is back."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator

import pytest
import redis
from langchain_core.messages import HumanMessage

from chatkeep import BackendUnavailableError
from chatkeep_langchain import HistoryFactory, RedisChatMessageHistory, history_factory
from tests.support.faults import FAST
from tests.support.servers import RedisServer, TcpProxy, free_port

from .helpers import RWMH_DEPRECATION, config, make_chain, reply

pytestmark = [pytest.mark.redis_server, RWMH_DEPRECATION]


@pytest.fixture
async def factory(fresh_redis_server: RedisServer, prefix: str) -> AsyncIterator[HistoryFactory]:
    """Histories on the test's own redis-server (which it stops), probing a returning
    Redis quickly; closed afterwards."""
    made = history_factory(url=fresh_redis_server.url, key_prefix=prefix, **FAST)
    yield made
    await made.aclose()


def stored_texts(url: str, key: str) -> list[str]:
    with redis.Redis.from_url(url) as raw:
        return [json.loads(r)["content"] for r in raw.lrange(key, 0, -1)]


def test_chain_keeps_answering_while_redis_is_stopped(
    fresh_redis_server: RedisServer, factory: HistoryFactory
) -> None:
    chain = make_chain(factory)

    for i in range(2):
        assert chain.invoke({"input": f"up{i}"}, config("s")).content == reply(f"up{i}", 2 * i)

    fresh_redis_server.stop()
    started = time.monotonic()
    for i in range(2, 4):  # answered from the local mirror, with the recent history
        assert chain.invoke({"input": f"down{i}"}, config("s")).content == reply(f"down{i}", 2 * i)
    assert time.monotonic() - started < 2
    assert factory.store is not None
    status = factory.store.status()
    assert status.degraded and status.pending_replay == 2
    assert [m.content for m in factory("s").messages][::2] == ["up0", "up1", "down2", "down3"]

    # The restarted server keeps nothing on disk: it comes back empty, and the
    # replay writes the outage turns into it.
    fresh_redis_server.start()
    assert factory.store.flush() == 0
    assert not factory.store.status().degraded
    assert stored_texts(fresh_redis_server.url, factory("s").key) == [
        "down2",
        reply("down2", 4),
        "down3",
        reply("down3", 6),
    ]
    answer = chain.invoke({"input": "back"}, config("s"))
    assert answer.content == reply("back", 4)  # Redis is the truth again


async def test_async_chain_keeps_answering_while_redis_is_stopped(
    fresh_redis_server: RedisServer, factory: HistoryFactory
) -> None:
    chain = make_chain(factory)
    for i in range(2):
        answer = await chain.ainvoke({"input": f"up{i}"}, config("s"))
        assert answer.content == reply(f"up{i}", 2 * i)

    fresh_redis_server.stop()
    for i in range(2, 4):
        answer = await chain.ainvoke({"input": f"down{i}"}, config("s"))
        assert answer.content == reply(f"down{i}", 2 * i)
    astore = factory.async_store
    assert astore is not None and astore.status().pending_replay == 2

    fresh_redis_server.start()
    time.sleep(0.1)  # past the probe interval: the next call replays the journal
    answer = await chain.ainvoke({"input": "back"}, config("s"))
    assert not astore.status().degraded
    assert stored_texts(fresh_redis_server.url, factory("s").key)[:4] == [
        "down2",
        reply("down2", 4),
        "down3",
        reply("down3", 6),
    ]
    assert answer.content == reply("back", 4)


def test_connection_cut_keeps_the_whole_conversation(
    redis_server: RedisServer, prefix: str
) -> None:
    """The network drops (Redis keeps its data): after it heals, Redis holds every
    turn, in order, each once."""
    proxy = TcpProxy(redis_server.port)
    factory = history_factory(url=proxy.url, key_prefix=prefix, **FAST)
    chain = make_chain(factory)
    try:
        for i in range(6):
            if i == 2:
                proxy.cut()
            if i == 4:
                proxy.restore()
                time.sleep(0.3)
            answer = chain.invoke({"input": f"m{i}"}, config("cut"))
            assert answer.content == reply(f"m{i}", 2 * i)
        expected = []
        for i in range(6):
            expected += [f"m{i}", reply(f"m{i}", 2 * i)]
        assert stored_texts(redis_server.url, factory("cut").key) == expected
    finally:
        factory.close()
        proxy.close()


async def test_sync_and_async_calls_share_one_fallback(
    redis_server: RedisServer, prefix: str
) -> None:
    """A history used both ways (``invoke`` and ``ainvoke`` of one app): in an outage
    the async side sees what the sync side wrote, and the other way round, and Redis
    gets every message once when the network heals."""
    proxy = TcpProxy(redis_server.port)
    factory = history_factory(url=proxy.url, key_prefix=prefix, **FAST)
    history = factory("both")
    try:
        history.add_messages([HumanMessage("sync before")])
        proxy.cut()
        history.add_messages([HumanMessage("sync during")])
        seen = [m.content for m in await history.aget_messages()]
        assert seen == ["sync before", "sync during"]
        await history.aadd_messages([HumanMessage("async during")])
        assert [m.content for m in history.messages][-1] == "async during"
        proxy.restore()
        deadline = time.monotonic() + 10
        while factory.store.status().degraded:
            assert time.monotonic() < deadline
            await factory("both").aget_messages()  # a new history per turn, as chains do
            time.sleep(0.02)
        expected = ["sync before", "sync during", "async during"]
        assert stored_texts(redis_server.url, history.key) == expected
    finally:
        await factory.aclose()
        proxy.close()


def test_history_constructs_and_works_with_no_redis(prefix: str) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    history = RedisChatMessageHistory("s", dead, f"{prefix}:", 60)  # never connects
    assert history.messages == []  # served by the fallback
    history.add_user_message("still here")
    assert history.messages == [HumanMessage("still here")]
    assert history.store is not None and history.store.status().degraded
    assert time.monotonic() - started < 2

    strict = RedisChatMessageHistory("s", dead, f"{prefix}:", fallback="raise")
    with pytest.raises(BackendUnavailableError):
        strict.messages  # noqa: B018
