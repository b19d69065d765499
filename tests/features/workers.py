"""Worker processes of the cross-process feature tests (``python -m tests.features.workers``)."""

from __future__ import annotations

import sys
import time

import redis

from chatkeep import ConversationStore, Message, ResultCache


def turns(url: str, prefix: str, name: str, count: str) -> None:
    """Read-append turns under the session lock: each turn writes a start and an end."""
    store = ConversationStore.from_url(url, key_prefix=prefix, fallback="raise")
    for i in range(int(count)):
        with store.lock("shared", timeout=10):
            seen = len(store.messages("shared"))
            store.append("shared", Message(role="user", content=f"{name}:{i}:start:{seen}"))
            time.sleep(0.005)
            store.append("shared", Message(role="assistant", content=f"{name}:{i}:end"))
    store.close()


def compute(url: str, prefix: str, start_at: str) -> None:
    """Ask the cache for one slow value at the same moment as other workers."""
    cache = ResultCache.from_url(url, key_prefix=prefix, fallback="raise")
    counter = redis.Redis.from_url(url)
    delay = float(start_at) - time.time()
    if delay > 0:
        time.sleep(delay)

    def slow() -> dict[str, int]:
        counter.incr(f"{prefix}:computations")
        time.sleep(0.3)
        return {"answer": 42}

    print(cache.get_or_compute({"question": "life"}, slow)["answer"])
    cache.close()


def publish(url: str, prefix: str, count: str) -> None:
    """Append messages (with publish=True), printing the send time of each."""
    store = ConversationStore.from_url(url, key_prefix=prefix, publish=True, fallback="raise")
    for i in range(int(count)):
        time.sleep(0.02)
        store.append("live", Message(role="user", content=str(time.time()), metadata={"i": i}))
    store.close()


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"turns": turns, "compute": compute, "publish": publish}[command](*args)
