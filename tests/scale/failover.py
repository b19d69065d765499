"""One conversation carried through a failover, for Cluster and Sentinel, sync and async.

The master is killed between two turns, after its replicas caught up: Redis
replication is asynchronous, so a write the master acknowledged in its last
milliseconds may be lost by any failover; that is Redis's guarantee, not chatkeep's
(see docs/readme-scaling.md). Everything acknowledged before the kill, during the
gap (served by the fallback and journaled) and after it must end up in Redis exactly
once, in order, and no call may raise.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from chatkeep import AsyncConversationStore, ConversationStore, Message

# Fast probing so the measured gap is the engine's failover, not chatkeep's backoff.
PROBE = {"probe_interval": 0.05, "probe_max": 0.2}
TURNS_BEFORE = 6
TURNS_AFTER = 4
TIMEOUT = 45.0


def message(i: int) -> Message:
    return Message(role="user" if i % 2 == 0 else "assistant", content=f"m{i}")


class Outcome:
    def __init__(self) -> None:
        self.acked: list[str] = []
        self.during_gap = 0  # turns served by the fallback
        self.kill_at = 0.0
        self.degraded_at: float | None = None
        self.recovered_at: float | None = None

    def on_state_change(self, event: str, status: Any) -> None:
        now = time.monotonic() - self.kill_at
        if event == "degraded" and self.degraded_at is None:
            self.degraded_at = now
        if event == "recovered" and self.recovered_at is None:
            self.recovered_at = now


def converse(store: ConversationStore, sid: str, kill: Callable[[], None], out: Outcome) -> None:
    i = 0

    def turn() -> None:
        nonlocal i
        store.append(sid, [message(i)])
        out.acked.append(f"m{i}")
        # reads work throughout (from the local mirror during the gap)
        assert [m.text for m in store.messages(sid, last=2)] == out.acked[-2:]
        i += 1

    for _ in range(TURNS_BEFORE):
        turn()
    kill()
    out.kill_at = time.monotonic()
    deadline = out.kill_at + TIMEOUT
    while out.recovered_at is None:
        assert time.monotonic() < deadline, f"no recovery after {TIMEOUT}s: {store.status()}"
        turn()
        if store.status().degraded:
            out.during_gap += 1
        time.sleep(0.02)
    for _ in range(TURNS_AFTER):
        turn()


async def aconverse(
    store: AsyncConversationStore, sid: str, kill: Callable[[], None], out: Outcome
) -> None:
    i = 0

    async def turn() -> None:
        nonlocal i
        await store.append(sid, [message(i)])
        out.acked.append(f"m{i}")
        assert [m.text for m in await store.messages(sid, last=2)] == out.acked[-2:]
        i += 1

    for _ in range(TURNS_BEFORE):
        await turn()
    kill()
    out.kill_at = time.monotonic()
    deadline = out.kill_at + TIMEOUT
    while out.recovered_at is None:
        assert time.monotonic() < deadline, f"no recovery after {TIMEOUT}s: {store.status()}"
        await turn()
        if store.status().degraded:
            out.during_gap += 1
        await asyncio.sleep(0.02)
    for _ in range(TURNS_AFTER):
        await turn()


def check(out: Outcome, status: Any, stored: list[str], read: list[str]) -> None:
    assert out.degraded_at is not None, "the kill was never noticed"
    assert out.during_gap >= 1, "no turn was served by the fallback"
    assert stored == out.acked, "Redis must hold every acknowledged message once, in order"
    assert read == out.acked
    assert len(set(stored)) == len(stored)
    assert status.degraded is False
    assert status.pending_replay == 0
    assert status.journal_refused == 0
    assert status.replay_rejected == 0
    assert status.replayed >= out.during_gap
    assert status.outages == 1


def failover_mid_conversation(
    twin: str, url: str, prefix: str, kill: Callable[[], None], stored: Callable[[], list[str]]
) -> Outcome:
    """One conversation on a store of ``twin`` ("sync" or "async") at ``url``, its master
    killed by ``kill`` between two turns, then :func:`check`-ed against what ``stored()``
    reads from Redis afterwards. Returns the outcome (it recovered)."""
    sid = "chat"
    out = Outcome()
    options: dict[str, Any] = {
        "key_prefix": prefix,
        "on_state_change": out.on_state_change,
        **PROBE,
    }
    if twin == "sync":
        store = ConversationStore.from_url(url, **options)
        converse(store, sid, kill, out)
        check(out, store.status(), stored(), [m.text for m in store.messages(sid)])
        store.close()
    else:

        async def run() -> None:
            astore = AsyncConversationStore.from_url(url, **options)
            await aconverse(astore, sid, kill, out)
            read = [m.text for m in await astore.messages(sid)]
            check(out, astore.status(), stored(), read)
            await astore.aclose()

        asyncio.run(run())
    assert out.recovered_at is not None
    return out
