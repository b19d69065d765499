"""``min-replicas-to-write``: a master that refuses writes because its replicas lag is
unavailable for writing, like a failover in progress; chatkeep journals, then replays."""

from __future__ import annotations

import pytest
import redis

from chatkeep import ConversationStore, Message
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis_server


def test_writes_refused_for_lack_of_replicas_are_journaled_then_replayed(prefix: str) -> None:
    with RedisServer("--min-replicas-to-write", "1", "--min-replicas-max-lag", "1") as server:
        store = ConversationStore.from_url(
            server.url, key_prefix=prefix, probe_interval=0.01, probe_max=0.01
        )
        assert store.append("s", Message(role="user", content="kept")) == 1  # no raise
        status = store.status()
        assert status.degraded
        assert status.pending_replay == 1
        assert "NOREPLICAS" in (status.last_error or "")
        admin = redis.Redis(port=server.port)
        admin.config_set("min-replicas-to-write", 0)  # a replica caught up
        assert store.flush() == 0
        assert [m.text for m in store.messages("s")] == ["kept"]
        assert admin.llen(f"{prefix}:{{s}}:m") == 1
        admin.close()
        store.close()
