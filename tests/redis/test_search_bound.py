"""``store.search`` does bounded work: on a 20,000-message session one script call
reads at most SEARCH_BOUND records from the tail, in SEARCH_CHUNK-record LRANGEs,
whatever the session's length; the memory backend looks at as many."""

from __future__ import annotations

import time
from typing import Any

import pytest
import redis

from chatkeep import ConversationStore, Message
from chatkeep.sessions import search as search_module
from chatkeep.sessions.search import SEARCH_BOUND, SEARCH_CHUNK

pytestmark = pytest.mark.redis_server

LENGTH = 20_000


def _fill(store: ConversationStore, sid: str, length: int) -> None:
    for start in range(0, length, 2_000):
        store.append(
            sid,
            [
                Message(role="user", content=f"message {i} about the weather in a city")
                for i in range(start, min(start + 2_000, length))
            ],
        )


def _script_work(raw: redis.Redis, call: Any) -> tuple[int, int, int]:
    """(EVALSHA calls, LRANGE calls, µs of the slowest command) of ``call``."""
    raw.slowlog_reset()
    before = raw.info("commandstats")
    call()
    after = raw.info("commandstats")
    slowest = max((entry["duration"] for entry in raw.slowlog_get(128)), default=0)

    def calls(name: str) -> int:
        key = f"cmdstat_{name}"
        return int(after.get(key, {}).get("calls", 0)) - int(before.get(key, {}).get("calls", 0))

    return calls("evalsha") + calls("eval"), calls("lrange"), slowest


def test_search_on_a_20000_message_session_reads_at_most_the_bound(
    fresh_redis_server: Any, prefix: str
) -> None:
    raw = redis.Redis.from_url(fresh_redis_server.url)
    raw.config_set("slowlog-log-slower-than", 0)
    with ConversationStore.from_url(fresh_redis_server.url, key_prefix=prefix) as store:
        _fill(store, "long", LENGTH)
        _fill(store, "short", 2 * SEARCH_BOUND)
        store.search("long", "warm-up")  # loads the script
        chunks = SEARCH_BOUND // SEARCH_CHUNK

        found: list[Message] = []
        scripts, lranges, slowest = _script_work(
            raw, lambda: found.extend(store.search("long", "no such text"))
        )
        assert found == []
        assert (scripts, lranges) == (1, chunks)  # one round trip, SEARCH_BOUND records
        short = _script_work(raw, lambda: store.search("short", "no such text"))
        assert short[:2] == (1, chunks)  # the same work at 4,000 as at 20,000 messages

        # the bound is visible: the newest SEARCH_BOUND messages are searched, no more
        newest = LENGTH - SEARCH_BOUND
        assert [m.text for m in store.search("long", f"message {newest} ")] == [
            f"message {newest} about the weather in a city"
        ]
        assert store.search("long", f"message {newest - 1} ") == []
        # a search that finds its limit early stops early
        assert _script_work(raw, lambda: store.search("long", "weather", limit=3))[:2] == (1, 1)

        started = time.perf_counter()
        store.search("long", "été")  # the slower, non-ASCII folding path
        non_ascii = time.perf_counter() - started
        print(
            f"\nsearch of a {LENGTH:,}-message session: {slowest / 1000:.1f} ms in Redis "
            f"(ASCII query), {non_ascii * 1000:.1f} ms round trip (non-ASCII query)"
        )
    raw.close()


def test_memory_search_looks_at_the_bound_at_most(monkeypatch: pytest.MonkeyPatch) -> None:
    looked: list[int] = []
    real = search_module.matches

    def counting(entry: Any, query: str) -> bool:
        looked.append(1)
        return real(entry, query)

    monkeypatch.setattr(search_module, "matches", counting)
    with ConversationStore.from_url("memory://") as store:
        _fill(store, "long", LENGTH)
        assert store.search("long", "no such text") == []
    assert len(looked) == SEARCH_BOUND
