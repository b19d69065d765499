"""Round trips to Redis per conversation turn, counted on a real server.

Every write of a request to a Redis socket is one round trip (a pipeline is one
write); ``RoundTrips`` logs them with the commands each carried. The server's own
counters confirm no connection is opened after the first turn (one pool).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from chatkeep import AsyncConversationStore, ConversationStore
from chatkeep_langchain import history_factory
from tests.support.servers import RedisServer

from .helpers import RWMH_DEPRECATION, RoundTrips, config, make_chain, reply

pytestmark = [pytest.mark.redis_server, RWMH_DEPRECATION]

TURNS = 6
Counted = tuple[RoundTrips, ConversationStore]


def connections_received(raw: redis.Redis) -> int:
    return int(raw.info("stats")["total_connections_received"])


@pytest.fixture
def counted(redis_server: RedisServer, prefix: str) -> Iterator[Counted]:
    """A conversation store on the session's redis-server, every round trip of its
    client logged; both closed afterwards."""
    trips = RoundTrips()
    client = trips.sync_client(redis_server.url)
    store = ConversationStore(client=client, key_prefix=prefix)
    yield trips, store
    store.close()
    client.close()


def per_turn(trips: RoundTrips, turn: Callable[[int], Any]) -> list[list[list[str]]]:
    seen = []
    for i in range(TURNS):
        mark = trips.mark()
        turn(i)
        seen.append(trips.since(mark))
    return seen


def assert_two_per_turn(seen: list[list[list[str]]]) -> None:
    # turn 0 may also load the scripts (NOSCRIPT -> EVAL) and say hello on connect
    for trips in seen[1:]:
        assert len(trips) == 2, trips
        read, append = trips
        # The previous turn's append refreshed the TTL moments ago: the read is a
        # plain pipelined read (no script): the records, with the session's length
        # and metadata (owner, version) for the fallback's mirror. Index entries
        # (ZADD) ride with the append's script when stale, never alone.
        assert "LRANGE" in read and set(read) <= {"HMGET", "LLEN", "LRANGE"}, trips
        assert append[0] == "EVALSHA" and set(append[1:]) <= {"ZADD"}, trips


def test_sync_turn_costs_one_read_and_one_append(counted: Counted, raw: redis.Redis) -> None:
    trips, store = counted
    chain = make_chain(history_factory(store))
    before = 0

    def turn(i: int) -> None:
        nonlocal before
        if i == 1:
            before = connections_received(raw)
        answer = chain.invoke({"input": f"t{i}"}, config("rt"))
        assert answer.content == reply(f"t{i}", 2 * i)

    seen = per_turn(trips, turn)
    assert_two_per_turn(seen)
    assert connections_received(raw) == before  # no reconnect: one pooled connection
    print(f"round trips per turn (sync): {[len(t) for t in seen]}; first turn: {seen[0]}")


async def test_async_turn_costs_one_read_and_one_append(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    trips = RoundTrips()
    client = trips.async_client(redis_server.url)
    astore = AsyncConversationStore(client=client, key_prefix=prefix)
    chain = make_chain(history_factory(astore))
    seen = []
    before = 0
    for i in range(TURNS):
        if i == 1:
            before = connections_received(raw)
        mark = trips.mark()
        answer = await chain.ainvoke({"input": f"t{i}"}, config("art"))
        assert answer.content == reply(f"t{i}", 2 * i)
        seen.append(trips.since(mark))
    assert_two_per_turn(seen)
    assert connections_received(raw) == before
    print(f"round trips per turn (async): {[len(t) for t in seen]}")
    await astore.aclose()
    await client.aclose()


def test_streamed_turn_costs_one_read_and_one_append(counted: Counted) -> None:
    trips, store = counted
    chain = make_chain(history_factory(store))
    seen = per_turn(trips, lambda i: list(chain.stream({"input": f"s{i}"}, config("srt"))))
    assert_two_per_turn(seen)


@pytest.mark.parametrize("snapshot", [True, False], ids=["snapshot", "no-snapshot"])
def test_turn_without_history_key(counted: Counted, snapshot: bool) -> None:
    """Without ``history_messages_key``, RunnableWithMessageHistory reads the history
    again at the end of the turn to count what it prepended. The factory's histories
    answer that from their snapshot of the first read: still two round trips."""
    trips, store = counted
    chain = make_chain(history_factory(store, snapshot=snapshot), history_key=False)
    seen = per_turn(trips, lambda i: chain.invoke([HumanMessage(f"q{i}")], config("nk")))
    if snapshot:
        assert_two_per_turn(seen)
    else:
        assert all(len(t) == 3 for t in seen[1:])
    assert [m.content for m in history_factory(store)("nk").messages][::2] == [
        f"q{i}" for i in range(TURNS)
    ]


def test_add_messages_is_one_round_trip_per_batch(counted: Counted) -> None:
    trips, store = counted
    history = history_factory(store)("batch")
    history.add_messages([HumanMessage("warm up")])
    mark = trips.mark()
    history.add_messages(
        [HumanMessage(f"h{i}") for i in range(20)]
        + [AIMessage("", tool_calls=[{"name": "f", "args": {}, "id": "c"}])]
        + [ToolMessage("r", tool_call_id="c")]
    )
    assert len(trips.since(mark)) == 1
    mark = trips.mark()
    assert len(history.messages) == 23
    assert len(history_factory(store, window=5)("batch").messages) == 5
    assert len(trips.since(mark)) == 2


def test_url_built_factory_reuses_its_pool(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    """The pool chatkeep builds from the URL: the server sees one script (the
    append) and one plain LRANGE (the read) per turn, and no new connection."""
    factory = history_factory(url=redis_server.url, key_prefix=prefix)
    chain = make_chain(factory)
    chain.invoke({"input": "first"}, config("pool"))
    conns = connections_received(raw)
    before = raw.info("commandstats")
    for i in range(5):
        chain.invoke({"input": f"t{i}"}, config("pool"))
    stats = raw.info("commandstats")
    for command in ("cmdstat_evalsha", "cmdstat_lrange"):
        assert stats[command]["calls"] - before.get(command, {}).get("calls", 0) == 5
    assert connections_received(raw) == conns
    factory.close()
