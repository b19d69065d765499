"""Several stores in one process: each fallback transition logged says which Redis
(URL without credentials) and which key prefixes it concerns."""

from __future__ import annotations

import logging
import time

import pytest

from chatkeep import ConversationStore, Message
from tests.support.faults import FAST
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis_server

PASSWORDS = ("pw-alpha-9f3", "pw-beta-7c1")


def _settle(store: ConversationStore) -> None:
    deadline = time.monotonic() + 20
    while store.flush() or store.status().degraded:
        assert time.monotonic() < deadline, store.status()
        time.sleep(0.02)


def test_two_stores_transitions_name_their_redis_and_prefix_without_passwords(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with (
        RedisServer("--requirepass", PASSWORDS[0]) as one,
        RedisServer("--requirepass", PASSWORDS[1]) as two,
    ):
        urls = [
            f"redis://:{PASSWORDS[0]}@127.0.0.1:{one.port}/0",
            f"redis://:{PASSWORDS[1]}@127.0.0.1:{two.port}/0",
        ]
        a = ConversationStore.from_url(urls[0], prefix="app-alpha", **FAST)
        b = ConversationStore.from_url(urls[1], prefix="app-beta", **FAST)
        a.append("s", [Message(role="user", content="a0")])
        b.append("s", [Message(role="user", content="b0")])
        with caplog.at_level(logging.WARNING, logger="chatkeep"):
            one.stop()
            a.append("s", [Message(role="user", content="a1")])  # a's circuit opens
            assert a.status().degraded and not b.status().degraded
            one.start()
            _settle(a)  # replayed, closed
        records = [r for r in caplog.records if r.name.startswith("chatkeep")]
        messages = [r.getMessage() for r in records]
        opened = [m for m in messages if "unreachable" in m]
        closed = [m for m in messages if "reachable again" in m]
        assert len(opened) == 1 and len(closed) == 1, messages
        for message in (opened[0], closed[0]):
            assert f"127.0.0.1:{one.port}" in message and "app-alpha" in message, message
            assert f":{two.port}" not in message and "app-beta" not in message, message
        # structured too: a log handler can route by Redis and prefix
        for record in records:
            assert record.__dict__["chatkeep_redis"] == f"redis://***@127.0.0.1:{one.port}/0"
            assert record.__dict__["chatkeep_prefixes"] == ["app-alpha"]
        for password in PASSWORDS:
            assert password not in caplog.text
            assert all(password not in repr(r.__dict__) for r in records)
        a.close()
        b.close()


def test_stores_of_one_redis_share_a_circuit_whose_logs_name_every_prefix(
    fresh_redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    url = fresh_redis_server.url
    a = ConversationStore.from_url(url, prefix="shop-eu", **FAST)
    b = ConversationStore.from_url(url, prefix="shop-us", **FAST)
    a.append("s", [Message(role="user", content="a0")])
    b.append("s", [Message(role="user", content="b0")])
    with caplog.at_level(logging.WARNING, logger="chatkeep"):
        fresh_redis_server.stop()
        a.append("s", [Message(role="user", content="a1")])
        fresh_redis_server.start()
        _settle(a)
    opened = [r.getMessage() for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(opened) == 1, caplog.text
    assert "shop-eu" in opened[0] and "shop-us" in opened[0]
    a.close()
    b.close()
