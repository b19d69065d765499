"""Sentinel: URL forms, master discovery, and re-discovery after the master dies in
the middle of a conversation (sync and async)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio.sentinel
import redis.sentinel

from chatkeep import AsyncConversationStore, ConversationStore, Message
from chatkeep.codec import decode
from tests.scale.failover import PROBE, failover_mid_conversation
from tests.support.cluster import (
    SentinelDeployment,
    close_sentinel_client,
    sentinel_master,
    wait_for_replicas,
)
from tests.support.servers import free_port

pytestmark = pytest.mark.redis_server


def stored(deployment: SentinelDeployment, key: str) -> list[str]:
    client = sentinel_master(deployment)
    try:
        return [decode(raw).text for raw in client.lrange(key, 0, -1)]
    finally:
        close_sentinel_client(client)


def test_url_finds_the_master_through_any_live_sentinel(
    redis_sentinel: SentinelDeployment, prefix: str
) -> None:
    ports = [free_port(), *redis_sentinel.sentinel_ports[1:]]  # the first one is dead
    hosts = ",".join(f"127.0.0.1:{p}" for p in ports)
    url = f"redis+sentinel://{hosts}/{redis_sentinel.service}/3"
    with ConversationStore.from_url(url, key_prefix=prefix) as store:
        assert store.append("s", Message(role="user", content="db 3")) == 1
        assert store.status().degraded is False
    master = redis.Redis(port=redis_sentinel.master_port(), db=3)
    try:
        assert master.exists(f"{prefix}:{{s}}:m") == 1
    finally:
        master.close()


def test_sentinel_made_clients_are_accepted(
    redis_sentinel: SentinelDeployment, prefix: str
) -> None:
    sentinels = [("127.0.0.1", p) for p in redis_sentinel.sentinel_ports]
    client = redis.sentinel.Sentinel(sentinels).master_for(redis_sentinel.service)
    with ConversationStore(client=client, key_prefix=prefix) as store:
        store.append("s", Message(role="user", content="via master_for"))

    async def run() -> list[str]:
        aclient = redis.asyncio.sentinel.Sentinel(sentinels).master_for(redis_sentinel.service)
        async with AsyncConversationStore(client=aclient, key_prefix=prefix) as astore:
            texts = [m.text for m in await astore.messages("s")]
        await aclient.aclose()
        for sentinel in aclient.connection_pool.sentinel_manager.sentinels:
            await sentinel.aclose()
        return texts

    assert asyncio.run(run()) == ["via master_for"]
    close_sentinel_client(client)


def test_store_starts_while_no_sentinel_answers(prefix: str) -> None:
    url = f"redis+sentinel://127.0.0.1:{free_port()}/mymaster"
    store = ConversationStore.from_url(url, key_prefix=prefix, **PROBE)  # must not raise
    assert store.append("s", Message(role="user", content="kept locally")) == 1
    assert store.status().degraded
    store.close()


def _killer(deployment: SentinelDeployment, killed: list[int]) -> Any:
    def kill() -> None:
        port = deployment.master_port()
        wait_for_replicas(port)
        deployment.server_on(port).stop()
        killed.append(port)

    return kill


@pytest.mark.slow
@pytest.mark.parametrize("twin", ["sync", "async"])
def test_master_dies_mid_conversation(
    twin: str, fresh_sentinel: SentinelDeployment, prefix: str, record_gap: Any
) -> None:
    killed: list[int] = []
    out = failover_mid_conversation(
        twin,
        fresh_sentinel.url,
        prefix,
        _killer(fresh_sentinel, killed),
        lambda: stored(fresh_sentinel, f"{prefix}:{{chat}}:m"),
    )
    assert fresh_sentinel.master_port() != killed[0]  # a replica was promoted
    record_gap(kill_to_recovered=out.recovered_at, fallback_turns=out.during_gap)
