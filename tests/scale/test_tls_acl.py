"""TLS with certificate verification, credentials in URLs, and the least-privilege
ACL user, against real servers (the whole contract suite also runs through the
``redis-tls`` and ``redis-acl`` backends, see tests/contract/conftest.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from chatkeep import (
    AsyncConversationStore,
    BackendError,
    ConversationStore,
    Message,
    StoreConfig,
)
from chatkeep.redis import FEATURES
from tests.support.acl import AclUser
from tests.support.cluster import RedisClusterDeployment
from tests.support.servers import RedisServer
from tests.support.tls import TlsRedis

SCRIPTS = FEATURES["sessions"].scripts

pytestmark = pytest.mark.redis_server

PROBE = {"probe_interval": 0.05, "probe_max": 0.2}


def hi(text: str = "hi") -> Message:
    return Message(role="user", content=text)


@pytest.fixture
def fresh_tls() -> Iterator[TlsRedis]:
    made = TlsRedis().start()
    yield made
    made.cleanup()


# -- TLS ----------------------------------------------------------------------------------


def test_tls_with_verified_certificate_sync_and_async(tls_redis: TlsRedis, prefix: str) -> None:
    with ConversationStore.from_url(tls_redis.url(), key_prefix=prefix) as store:
        assert store.append("s", hi()) == 1

    async def run() -> list[str]:
        async with AsyncConversationStore.from_url(tls_redis.url(), key_prefix=prefix) as astore:
            return [m.text for m in await astore.messages("s")]

    assert asyncio.run(run()) == ["hi"]


@pytest.mark.parametrize("ca", ["other", "system"])
def test_wrong_ca_is_refused_quickly_and_clearly(tls_redis: TlsRedis, prefix: str, ca: str) -> None:
    if ca == "other":
        url = tls_redis.url(ca=tls_redis.other_ca.cert)
    else:  # no CA given: the system's trust store, which does not know the test CA
        url = f"rediss://127.0.0.1:{tls_redis.port}/0"
    store = ConversationStore.from_url(url, key_prefix=prefix)  # default fallback="memory"
    started = time.monotonic()
    for call in (lambda: store.append("s", hi()), lambda: store.messages("s")):
        with pytest.raises(BackendError, match="TLS certificate verification failed"):
            call()
    assert time.monotonic() - started < 3, "a refused certificate must not hang"
    status = store.status()
    assert not status.degraded, "a bad certificate is not an outage: no silent fallback"
    assert status.pending_replay == 0
    store.close()

    async def run() -> None:
        astore = AsyncConversationStore.from_url(url, key_prefix=prefix)
        with pytest.raises(BackendError, match="TLS certificate verification failed"):
            await astore.append("s", hi())
        assert not astore.status().degraded
        await astore.aclose()

    asyncio.run(run())


# -- credentials --------------------------------------------------------------------------


def _admin(tls: TlsRedis) -> dict[str, Any]:
    return {"ssl": True, "ssl_ca_certs": str(tls.ca.cert)}


def test_acl_user_and_password_over_tls_never_leak(
    fresh_tls: TlsRedis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, every level
    user = AclUser([fresh_tls.port], prefix, **_admin(fresh_tls))
    url = fresh_tls.url(userinfo=user.userinfo)
    secret = user.password
    seen: list[str] = []

    store = ConversationStore.from_url(
        url, key_prefix=prefix, on_state_change=lambda e, s: seen.append(repr(s)), **PROBE
    )
    assert store.append("s", hi("over TLS as an ACL user")) == 1
    assert [m.text for m in store.messages("s")] == ["over TLS as an ACL user"]
    seen += [repr(store), str(store), repr(store.config), store.config.model_dump_json()]
    seen.append(repr(store.status()))

    fresh_tls.server.stop()  # an outage: errors, warnings and status all mention Redis
    store.append("s", hi("during the outage"))
    assert store.status().degraded
    seen += [repr(store.status()), str(store.status().last_error)]
    fresh_tls.server.start()
    # the restart forgot the user (nothing on disk): make it again, same password
    AclUser([fresh_tls.port], prefix, name=user.name, password=secret, **_admin(fresh_tls))
    assert store.flush() == 0  # the journaled write replayed
    assert [m.text for m in store.messages("s")][-1] == "during the outage"
    seen += [repr(store.status()), str(store.status().last_error)]
    store.close()

    user_url = fresh_tls.url(userinfo=f"{user.name}:wrong-{secret}@")
    wrong = ConversationStore.from_url(user_url, key_prefix=prefix)
    with pytest.raises(BackendError) as refused:
        wrong.append("s", hi())
    assert "credentials" in str(refused.value)
    seen += [str(refused.value), repr(refused.value.__cause__)]
    wrong.close()

    async def run() -> None:
        astore = AsyncConversationStore.from_url(user_url, key_prefix=prefix)
        with pytest.raises(BackendError) as again:
            await astore.messages("s")
        seen.extend([str(again.value), repr(astore), repr(astore.status())])
        await astore.aclose()

    asyncio.run(run())
    seen += [record.getMessage() for record in caplog.records]
    seen += [str(record.exc_info) for record in caplog.records if record.exc_info]
    assert any("unreachable" in text.lower() for text in seen)  # the outage was logged
    leaks = [text for text in seen if secret in text]
    assert leaks == []


def test_password_only_url(prefix: str) -> None:
    with RedisServer("--requirepass", "s3cret-pw") as server:
        url = f"redis://:s3cret-pw@127.0.0.1:{server.port}/0"
        with ConversationStore.from_url(url, key_prefix=prefix) as store:
            assert store.append("s", hi()) == 1
            assert "s3cret-pw" not in repr(store) + repr(store.status())
        bad = ConversationStore.from_url(url.replace("s3cret", "wrong"), key_prefix=prefix)
        with pytest.raises(BackendError, match="credentials"):
            bad.append("s", hi())
        bad.close()


# -- least privilege ----------------------------------------------------------------------


@pytest.fixture
def acl_user(redis_server: RedisServer, prefix: str) -> Iterator[AclUser]:
    user = AclUser([redis_server.port], prefix)
    yield user
    user.drop()


def test_the_minimal_acl_is_enough_and_confined_to_the_prefix(
    redis_server: RedisServer, acl_user: AclUser, prefix: str
) -> None:
    url = f"redis://{acl_user.userinfo}127.0.0.1:{redis_server.port}/0"
    admin = redis.Redis(port=redis_server.port)
    admin.set("someone-else:secret", "x")
    admin.rpush(f"other{prefix}:{{s}}:m", b"{}")
    try:
        with ConversationStore.from_url(url, key_prefix=prefix) as store:
            store.append("s", hi(), owner="u1")
            store.insert("s", 0, hi("first"))
            assert [m.text for m in store.messages("s")] == ["first", "hi"]
            assert [s.id for s in store.sessions(owner="u1")] == ["s"]
            assert store.pop("s", 0) is not None
            assert store.clear("s")

        # same user, another prefix: refused, not hidden behind the fallback
        with ConversationStore.from_url(url, key_prefix=f"other{prefix}") as outside:
            for call in (
                lambda: outside.messages("s"),
                lambda: outside.append("s", hi()),
                outside.sessions,
                lambda: outside.ttl("s"),
            ):
                with pytest.raises(BackendError, match="NoPermissionError"):
                    call()
            assert not outside.status().degraded

        raw = redis.Redis.from_url(url)
        try:
            for command in (
                ("GET", "someone-else:secret"),
                ("LRANGE", f"other{prefix}:{{s}}:m", 0, -1),
                ("KEYS", "*"),
                ("SCAN", 0),
                ("FLUSHALL",),
                ("CONFIG", "GET", "*"),
                ("INCR", f"{prefix}:x"),  # only the commands chatkeep needs
            ):
                with pytest.raises(redis.exceptions.NoPermissionError):
                    raw.execute_command(*command)
            # a script cannot reach outside the prefix either
            with pytest.raises(redis.exceptions.ResponseError):
                raw.eval("return redis.call('GET', KEYS[1])", 1, "someone-else:secret")
        finally:
            raw.close()
    finally:
        admin.delete("someone-else:secret", f"other{prefix}:{{s}}:m")
        admin.close()


def test_scripts_lost_under_the_minimal_acl_run_by_eval_and_the_refused_loads_pass(
    redis_server: RedisServer, acl_user: AclUser, prefix: str
) -> None:
    """The user may not SCRIPT LOAD: after the server lost its scripts, the refused
    loads come back as error replies inside the same round trip; the call succeeds
    and the pooled connection stays in step for the calls after it."""
    url = f"redis://{acl_user.userinfo}127.0.0.1:{redis_server.port}/0"
    admin = redis.Redis(port=redis_server.port)
    try:
        with ConversationStore.from_url(url, key_prefix=prefix, fallback="raise") as store:
            # An owned session: every read runs its script (to check the owner).
            store.append("s", [hi(str(i)) for i in range(40)], owner="o")
            time.sleep(1.1)  # scripts are loaded at most once a second
            admin.script_flush()
            admin.config_resetstat()
            read = store.messages("s", owner="o")
            assert [m.text for m in read] == [str(i) for i in range(40)]
            for _ in range(5):
                assert [m.text for m in store.messages("s", last=1, owner="o")] == ["39"]
            stats = admin.info("commandstats")
            assert stats["cmdstat_script|load"]["rejected_calls"] == len(SCRIPTS)
            assert stats["cmdstat_eval"]["calls"] == 2  # the long read's and read.lua's
    finally:
        admin.close()


def test_minimal_acl_on_a_cluster(redis_cluster: RedisClusterDeployment, prefix: str) -> None:
    # Credentials go in the client here: URLs with credentials and several hosts need
    # the redact_url fix (see test_multi_host_urls_are_redacted).
    from redis.asyncio.cluster import ClusterNode as AsyncNode
    from redis.cluster import ClusterNode

    ports = redis_cluster.ports[:2]
    bare = AclUser(redis_cluster.ports, prefix)  # without the Cluster extras
    user = AclUser(redis_cluster.ports, prefix, cluster=True)

    def aclient(who: AclUser) -> redis.asyncio.RedisCluster:
        return redis.asyncio.RedisCluster(
            startup_nodes=[AsyncNode("127.0.0.1", p) for p in ports],
            username=who.name,
            password=who.password,
        )

    try:
        client = redis.RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", p) for p in ports],
            username=user.name,
            password=user.password,
        )
        with ConversationStore(client=client, key_prefix=prefix) as store:
            for i in range(12):
                store.append(f"s{i}", hi(), owner="u")
            assert len(store.sessions(owner="u")) == 12
            assert all(store.clear(f"s{i}") for i in range(12))
        client.close()

        async def run() -> int:
            refused = aclient(bare)
            with pytest.raises(BackendError, match=r"\+cluster\|slots"):
                await AsyncConversationStore(client=refused, key_prefix=prefix).append("s", hi())
            await refused.aclose()
            made = aclient(user)
            async with AsyncConversationStore(client=made, key_prefix=prefix) as astore:
                await astore.append("a", hi())
                count = len(await astore.sessions())
            await made.aclose()
            return count

        assert asyncio.run(run()) == 1
    finally:
        bare.drop()
        user.drop()


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://user:hunter2@127.0.0.1:7000,127.0.0.1:7001",
        "redis+sentinel://:hunter2@127.0.0.1:26379,127.0.0.1:26380/svc",
        "redis+sentinel://127.0.0.1:26379/svc?sentinel_password=hunter2",
        "redis://127.0.0.1:6390/0?password=hunter2",
    ],
)
def test_multi_host_urls_are_redacted(url: str) -> None:
    config = StoreConfig(url=url)
    shown = config.safe_url + repr(config) + config.model_dump_json()
    store = ConversationStore(config)  # makes no connection
    shown += repr(store)
    assert "hunter2" not in shown
    store.close()
