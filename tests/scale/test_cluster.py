"""Redis Cluster: URL forms, clients, listing across masters, and a master failover
in the middle of a conversation (sync and async)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio

from chatkeep import AsyncConversationStore, ConversationStore, Message
from chatkeep.codec import decode
from tests.scale.failover import PROBE, failover_mid_conversation
from tests.support.cluster import RedisClusterDeployment
from tests.support.servers import free_port

pytestmark = pytest.mark.redis_server


def raw_cluster(cluster: RedisClusterDeployment) -> redis.RedisCluster:
    return redis.RedisCluster(host="127.0.0.1", port=cluster.live_nodes()[0].port)


def stored(cluster: RedisClusterDeployment, key: str) -> list[str]:
    client = raw_cluster(cluster)
    try:
        return [decode(raw).text for raw in client.lrange(key, 0, -1)]
    finally:
        client.close()


def test_url_with_any_reachable_startup_node(
    redis_cluster: RedisClusterDeployment, prefix: str
) -> None:
    dead = free_port()
    live = redis_cluster.ports[3]
    url = f"redis+cluster://127.0.0.1:{dead},localhost:{live}/0?socket_keepalive=true"
    with ConversationStore.from_url(url, key_prefix=prefix) as store:
        assert store.append("s", Message(role="user", content="hi")) == 1
        assert store.status().degraded is False


def test_store_starts_while_the_cluster_is_down(prefix: str) -> None:
    url = f"redis+cluster://127.0.0.1:{free_port()}"
    store = ConversationStore.from_url(url, key_prefix=prefix, **PROBE)  # must not raise
    assert store.append("s", Message(role="user", content="kept locally")) == 1
    assert store.status().degraded
    assert store.status().pending_replay == 1
    assert [m.text for m in store.messages("s")] == ["kept locally"]
    store.close()


def test_cluster_clients_are_accepted(redis_cluster: RedisClusterDeployment, prefix: str) -> None:
    client = raw_cluster(redis_cluster)
    store = ConversationStore(client=client, key_prefix=prefix)
    store.append("s", Message(role="user", content="via client"))
    store.close()  # does not close a client it did not make
    assert client.exists(f"{prefix}:{{s}}:m") == 1

    async def run() -> None:
        aclient = redis.asyncio.RedisCluster(host="127.0.0.1", port=redis_cluster.ports[0])
        astore = AsyncConversationStore(client=aclient, key_prefix=prefix)
        assert [m.text for m in await astore.messages("s")] == ["via client"]
        await astore.aclose()
        await aclient.aclose()

    asyncio.run(run())
    client.close()


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_listing_and_clear_span_every_master(
    redis_cluster: RedisClusterDeployment, prefix: str, twin: str
) -> None:
    sids = [f"s{i}" for i in range(40)]
    owners = {redis_cluster.owner_of(f"{prefix}:{{{sid}}}:m").port for sid in sids}
    assert len(owners) == 3, "the sessions should live on all three masters"

    async def work(store: Any) -> tuple[list[str], list[str], list[bool], list[str]]:
        for sid in sids:
            await store.append(sid, Message(role="user", content=sid), owner="u1")
        listed = sorted(s.id for s in await store.sessions())
        mine = sorted(s.id for s in await store.sessions(owner="u1"))
        cleared = [await store.clear(sid) for sid in sids]
        left = [s.id for s in await store.sessions()]
        return listed, mine, cleared, left

    if twin == "sync":
        store = ConversationStore.from_url(redis_cluster.url, key_prefix=prefix)

        class Awaitless:
            def __getattr__(self, name: str) -> Any:
                async def call(*a: Any, **k: Any) -> Any:
                    return getattr(store, name)(*a, **k)

                return call

        listed, mine, cleared, left = asyncio.run(work(Awaitless()))
        store.close()
    else:

        async def run() -> Any:
            async with AsyncConversationStore.from_url(redis_cluster.url, key_prefix=prefix) as s:
                return await work(s)

        listed, mine, cleared, left = asyncio.run(run())
    assert listed == sorted(sids)
    assert mine == sorted(sids)
    assert all(cleared)
    assert left == []
    client = raw_cluster(redis_cluster)
    try:
        leftover = [
            key
            for node in client.get_primaries()
            for key in client.scan_iter(match=f"{prefix}:*", target_nodes=node)
        ]
    finally:
        client.close()
    assert leftover == []  # index and owner index emptied too


@pytest.mark.slow
@pytest.mark.parametrize("twin", ["sync", "async"])
def test_master_failover_mid_conversation(
    twin: str, fresh_cluster: RedisClusterDeployment, prefix: str, record_gap: Any
) -> None:
    key = f"{prefix}:{{chat}}:m"

    def kill() -> None:
        master = fresh_cluster.owner_of(key)
        fresh_cluster.wait_replicated(master)
        master.stop()

    out = failover_mid_conversation(
        twin, fresh_cluster.url, prefix, kill, lambda: stored(fresh_cluster, key)
    )
    record_gap(kill_to_recovered=out.recovered_at, fallback_turns=out.during_gap)
