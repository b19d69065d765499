"""Issue 14: "Redis blinks, the chat goes on, and everything acknowledged is replayed
exactly once". One regression test (or a few) per observed item, on real throwaway
redis-servers: AOF servers SIGKILLed and restarted, a TCP proxy that cuts the
connection, maxmemory/MISCONF/ACL refusals. Item 2 (process exit) is in test_exit.py,
the chaos drill in test_chaos.py; item 6 (LlamaIndex deletes) is the adapter's.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import random
import shutil
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import pytest
import redis

from chatkeep import (
    AsyncConversationStore,
    ConflictError,
    ConversationStore,
    IncompleteMirrorError,
    JournalFullError,
    SessionOwnershipError,
)
from tests.support.faults import FAST, asettle, python, settle, stored
from tests.support.messages import msg, texts
from tests.support.servers import RedisServer, TcpProxy

pytestmark = pytest.mark.redis_server


def forget(store: Any) -> None:
    """A store left degraded on purpose: nothing to replay at teardown or exit."""
    circuit = store.connection.circuit
    circuit.journal.remove(
        [e.id for run in circuit.journal.batch(10**6, 10**6, 2**62) for e in run]
    )
    store._closed = True


# -- 1. under load, nothing acknowledged is dropped ------------------------------------------


class Writers:
    """Writer threads appending ``w<writer>:<seq>`` to random sessions as fast as they
    can; every acknowledged append (and every refused one) is recorded."""

    def __init__(self, store: Any, writers: int, sessions: int, seed: int) -> None:
        self.store = store
        self.sessions = [f"s{i}" for i in range(sessions)]
        self.acked: list[list[tuple[str, str]]] = [[] for _ in range(writers)]
        self.refused: list[list[tuple[str, str]]] = [[] for _ in range(writers)]
        self.errors: list[BaseException] = []
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._write, args=(w, random.Random(seed * 1000 + w)))
            for w in range(writers)
        ]

    def _write(self, writer: int, rng: random.Random) -> None:
        seq = 0
        while not self.stop.is_set():
            sid = rng.choice(self.sessions)
            text = f"w{writer}:{seq}"
            seq += 1
            try:
                self.store.append(sid, [msg(text)])
            except JournalFullError:
                self.refused[writer].append((sid, text))
                time.sleep(0.001)
            except BaseException as exc:  # reported by check()
                self.errors.append(exc)
                return
            else:
                self.acked[writer].append((sid, text))

    def __enter__(self) -> Writers:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def check(self, port: int, prefix: str) -> dict[str, int]:
        """Every acknowledged append in Redis exactly once, each writer's appends to a
        session in order, no refused append stored. Returns the counts."""
        assert not self.errors, self.errors[:3]
        held = {sid: stored(port, prefix, sid) for sid in self.sessions}
        acked = [item for items in self.acked for item in items]
        refused = {text for items in self.refused for _, text in items}
        positions: dict[str, tuple[str, int]] = {}
        duplicated = 0
        for sid, items in held.items():
            for at, text in enumerate(items):
                if text in positions:
                    duplicated += 1
                positions[text] = (sid, at)
        lost = [text for sid, text in acked if positions.get(text, ("", 0))[0] != sid]
        disorder = 0
        for items in self.acked:
            last: dict[str, int] = {}
            for sid, text in items:
                found = positions.get(text)
                if found is not None:
                    if found[1] < last.get(sid, -1):
                        disorder += 1
                    last[sid] = found[1]
        phantoms = len(refused & set(positions))
        counts = {
            "acked": len(acked),
            "stored": sum(len(items) for items in held.values()),
            "lost": len(lost),
            "duplicated": duplicated,
            "disorder": disorder,
            "refused": len(refused),
            "phantoms": phantoms,
        }
        assert (counts["lost"], duplicated, disorder, phantoms) == (0, 0, 0, 0), counts
        assert counts["stored"] == counts["acked"], counts
        return counts


def test_under_load_nothing_acknowledged_is_dropped(
    durable_redis_server: RedisServer, prefix: str
) -> None:
    """Item 1 (short): 16 writers over 40 sessions while Redis (AOF always) is SIGKILLed
    and restarted twice."""
    server = durable_redis_server
    store = ConversationStore.from_url(server.url, key_prefix=prefix, **FAST)
    with Writers(store, writers=16, sessions=40, seed=14) as writers:
        for _ in range(2):
            time.sleep(1.0)
            server.kill()
            time.sleep(1.0)
            server.start()
        time.sleep(1.0)
    settle(store)
    counts = writers.check(server.port, prefix)
    status = store.status()
    assert counts["acked"] > 1000, counts
    assert (status.pending_replay, status.replay_rejected) == (0, 0), status
    assert status.outages in (1, 2), status  # 1: the journal was not empty at the 2nd kill
    store.close()


@pytest.mark.parametrize("when", ["before", "after"])
def test_redis_killed_in_the_middle_of_a_replay_stores_each_write_once(
    durable_redis_server: RedisServer, prefix: str, when: str
) -> None:
    """Item 1: the replay of a long journal is cut by a SIGKILL of Redis (AOF always)
    once two round trips of it are stored (before the next one is sent, or right after
    it was answered): what was stored stays stored, and the next replay stores the
    rest, each write exactly once."""
    server = durable_redis_server
    store = ConversationStore.from_url(server.url, key_prefix=prefix, **FAST)
    store.append("s", [msg("first")])
    server.kill()
    for i in range(300):
        store.append("s", [msg(f"j{i}")])
    server.start()
    server.wait_ready()
    connection = store.connection
    assert connection is not None
    original = connection.send
    admin = server.client()
    key = f"{prefix}:{{s}}:m"

    def send(commands: list[Any]) -> list[Any]:
        replaying = any(c[0] in ("EVALSHA", "EVAL") for c in commands)
        if replaying and server.running and when == "before" and admin.llen(key) > 64:
            server.kill()
        replies = original(commands)
        if replaying and server.running and when == "after" and admin.llen(key) > 64:
            server.kill()
        return replies

    connection.send = send  # type: ignore[method-assign]
    store.flush()
    assert not server.running
    connection.send = original  # type: ignore[method-assign]
    admin.close()
    server.start()
    server.wait_ready()
    settle(store)
    held = stored(server.port, prefix, "s")
    assert len(held) == len(set(held)), f"{len(held) - len(set(held))} stored twice"
    assert held == ["first", *(f"j{i}" for i in range(300))]
    assert store.status().replay_rejected == 0
    store.close()


@pytest.mark.parametrize("others", [0, 40])
def test_a_lost_reply_is_replayed_once_whatever_others_appended_meanwhile(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str, others: int
) -> None:
    """Item 1: Redis stored A's append but its reply was lost (the connection died);
    A journals it; meanwhile another process appends ``others`` messages to the same
    session. A's replay must not store the append a second time."""
    a = ConversationStore.from_url(proxy.url, key_prefix=prefix, **FAST)
    b = ConversationStore.from_url(fresh_redis_server.url, key_prefix=prefix, fallback="raise")
    a.append("s", [msg("one")])
    proxy.drop_replies()
    a.append("s", [msg("two")])  # stored by Redis; A times out and journals it
    proxy.cut()
    for i in range(others):
        b.append("s", [msg(f"b{i}")])
    proxy.restore()
    settle(a)
    held = stored(fresh_redis_server.port, prefix, "s")
    assert held.count("two") == 1, held
    assert held == ["one", "two", *(f"b{i}" for i in range(others))]
    a.close()
    b.close()


@pytest.mark.slow
def test_fifty_writers_and_a_one_second_outage(
    durable_redis_server: RedisServer, prefix: str, record_property: Any
) -> None:
    """Item 1 (target): 50 writers at full speed, Redis SIGKILLed for 1 s: nothing
    dropped, and the time from Redis answering again to the store being back on it
    is measured (reported; the benchmark's recovery row holds the target)."""
    server = durable_redis_server
    store = ConversationStore.from_url(server.url, key_prefix=prefix)  # default probe timing
    with Writers(store, writers=50, sessions=100, seed=50) as writers:
        time.sleep(1.0)
        server.kill()
        time.sleep(1.0)
        server.start()
        server.wait_ready()
        back = time.monotonic()
        while store.status().degraded and time.monotonic() - back < 30:
            time.sleep(0.005)
        recovered = time.monotonic() - back
        time.sleep(0.5)
    settle(store)
    counts = writers.check(server.port, prefix)
    record_property("recovery_seconds", round(recovered, 3))
    record_property("counts", counts)
    print(f"\n50 writers, 1 s outage: back on Redis {recovered:.2f}s after it returned; {counts}")
    assert counts["refused"] == 0, counts  # nothing was refused for a full journal
    # The store came back (liveness); how fast is the benchmark's recovery row, not a
    # timing assert here (3.5 s once with five other jobs on the 2 cores; 0.8-0.9 s alone).
    assert recovered < 30, "the store never came back on Redis"
    store.close()


# -- 3. a temporary refusal at recovery keeps the journal -----------------------------------


def refused_replay(
    server: RedisServer, proxy: TcpProxy, prefix: str, refuse: Callable[[], None],
    allow: Callable[[], None], url: str | None = None,
) -> ConversationStore:  # fmt: skip
    store = ConversationStore.from_url(url or proxy.url, key_prefix=prefix, **FAST)
    store.append("s", [msg("a"), msg("b")])
    proxy.cut()
    for i in range(50):
        store.append("s", [msg(f"o{i}")])
    refuse()
    proxy.restore()
    for _ in range(5):  # every probe is refused: nothing is replayed, nothing dropped
        store.flush()
        time.sleep(0.05)
    assert store.append("s", [msg("late")]) == 53  # still served, journaled behind
    status = store.status()
    assert status.degraded and status.circuit == "open", status
    assert (status.pending_replay, status.replay_rejected, status.replayed) == (51, 0, 0), status
    assert stored(server.port, prefix, "s") == ["a", "b"]
    allow()
    settle(store)
    assert stored(server.port, prefix, "s") == ["a", "b", *(f"o{i}" for i in range(50)), "late"]
    status = store.status()
    assert (status.pending_replay, status.replay_rejected, status.replayed) == (0, 0, 51), status
    return store


def test_out_of_memory_at_recovery_keeps_the_journal(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str
) -> None:
    """Item 3: Redis back over maxmemory (noeviction)."""
    admin = fresh_redis_server.client()
    admin.config_set("maxmemory-policy", "noeviction")
    store = refused_replay(
        fresh_redis_server,
        proxy,
        prefix,
        refuse=lambda: admin.config_set("maxmemory", 1),
        allow=lambda: admin.config_set("maxmemory", 0),
    )
    store.close()
    admin.close()


def test_misconf_at_recovery_keeps_the_journal(prefix: str) -> None:
    """Item 3: Redis refuses writes with MISCONF (an RDB snapshot failed and
    stop-writes-on-bgsave-error is on)."""
    with RedisServer("--enable-protected-configs", "yes") as server:
        proxy = TcpProxy(server.port)
        admin = server.client()
        broken = tempfile.mkdtemp(prefix="chatkeep-misconf-")

        def refuse() -> None:
            admin.config_set("dir", broken)
            admin.config_set("save", "3600 1")
            admin.config_set("stop-writes-on-bgsave-error", "yes")
            shutil.rmtree(broken)  # the snapshot cannot be written there any more
            admin.bgsave()
            deadline = time.monotonic() + 10
            while admin.info("persistence")["rdb_last_bgsave_status"] != "err":
                assert time.monotonic() < deadline
                time.sleep(0.02)
            with pytest.raises(redis.ResponseError, match="MISCONF"):
                admin.set(f"{prefix}:probe", 1)

        def allow() -> None:
            admin.config_set("dir", str(server.dir))
            admin.bgsave()
            deadline = time.monotonic() + 10
            while admin.info("persistence")["rdb_last_bgsave_status"] != "ok":
                assert time.monotonic() < deadline
                time.sleep(0.02)

        try:
            store = refused_replay(server, proxy, prefix, refuse, allow)
            store.close()
        finally:
            proxy.close()
            admin.close()


def test_noperm_at_recovery_keeps_the_journal(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str
) -> None:
    """Item 3: the ACL user temporarily lacks the script commands."""
    admin = fresh_redis_server.client()
    admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all")
    url = f"redis://app:pw@127.0.0.1:{proxy.port}/0"
    store = refused_replay(
        fresh_redis_server,
        proxy,
        prefix,
        refuse=lambda: admin.execute_command("ACL", "SETUSER", "app", "-evalsha", "-eval"),
        allow=lambda: admin.execute_command("ACL", "SETUSER", "app", "+evalsha", "+eval"),
        url=url,
    )
    store.close()
    admin.close()


# -- 4. the circuit always recovers -----------------------------------------------------------


class Interrupt(BaseException):
    """Not an Exception: like gevent's Timeout or a framework's cancellation."""


@pytest.mark.parametrize("raised", [KeyboardInterrupt, Interrupt])
@pytest.mark.parametrize("where", ["replay", "send"])
def test_an_exception_of_any_kind_during_replay_leaves_the_circuit_recoverable(
    fresh_redis_server: RedisServer,
    proxy: TcpProxy,
    prefix: str,
    raised: type[BaseException],
    where: str,
) -> None:
    """Item 4: raised once inside the replay (by the family's replay, or by the round
    trip that carries it); the circuit must not stay probing/replaying: the next calls
    and flush() replay everything."""
    store = ConversationStore.from_url(proxy.url, key_prefix=prefix, **FAST)
    store.append("s", [msg("a")])
    proxy.cut()
    store.append("s", [msg("b")])
    store.append("s", [msg("c")])
    proxy.restore()
    family = store._family
    connection = store.connection
    assert family is not None and connection is not None
    fired = []
    if where == "replay":
        original_replay = family.replay

        def replay(ops: list[Any]) -> Any:
            if not fired:
                fired.append(True)
                raise raised()
            return original_replay(ops)

        family.replay = replay  # type: ignore[method-assign]
    else:
        original_send = connection.send

        def send(commands: list[Any]) -> list[Any]:
            if not fired and any(c[0] in ("EVALSHA", "EVAL") for c in commands):
                fired.append(True)
                raise raised()
            return original_send(commands)

        connection.send = send  # type: ignore[method-assign]
    with pytest.raises(raised):
        store.flush()
    assert fired
    status = store.status()
    assert status.circuit not in ("probing", "replaying"), status
    assert status.pending_replay == 2
    # Plain calls bring it back (no flush needed), then flush() has nothing left.
    deadline = time.monotonic() + 10
    while store.status().degraded:
        assert time.monotonic() < deadline, store.status()
        store.messages("s")
        time.sleep(0.02)
    assert store.flush() == 0
    assert stored(proxy.target_port, prefix, "s") == ["a", "b", "c"]
    store.close()


def test_a_cancelled_async_replay_leaves_the_circuit_recoverable(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str
) -> None:
    """Item 4 (asyncio): the task replaying the journal is cancelled mid round trip."""

    async def scenario() -> None:
        store = AsyncConversationStore.from_url(proxy.url, key_prefix=prefix, **FAST)
        await store.append("s", [msg("a")])
        proxy.cut()
        await store.append("s", [msg("b")])
        proxy.restore()
        connection = store.connection
        assert connection is not None
        original = connection.asend
        stall = [True]

        async def asend(commands: list[Any]) -> list[Any]:
            if stall[0] and any(c[0] in ("EVALSHA", "EVAL") for c in commands):
                await asyncio.sleep(30)
            return await original(commands)

        connection.asend = asend  # type: ignore[method-assign]
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(store.flush(), 0.3)
        status = store.status()
        assert status.circuit not in ("probing", "replaying"), status
        stall[0] = False
        await asettle(store)
        assert stored(proxy.target_port, prefix, "s") == ["a", "b"]
        await store.aclose()

    asyncio.run(scenario())


# -- 5. replays never overwrite later writes -------------------------------------------------


def destroy(store: ConversationStore, op: str) -> None:
    if op == "clear":
        assert store.clear("s") is True
    elif op == "replace":
        store.replace("s", [msg("r")])
    elif op == "pop-last":
        assert store.pop("s") is not None
    elif op == "pop-first":
        assert store.pop("s", 0) is not None
    else:
        store.insert("s", 0, [msg("i")])


DESTRUCTIVE = ["clear", "replace", "pop-last", "pop-first", "insert"]


@pytest.mark.parametrize("op", DESTRUCTIVE)
def test_a_replayed_destructive_change_never_overwrites_a_later_write(
    fresh_redis_server: RedisServer,
    proxy: TcpProxy,
    prefix: str,
    op: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Item 5: A (cut off) clears/replaces/pops/inserts; B appends meanwhile; A's
    replay must keep B's messages, reject A's change as a conflict (counted, logged,
    given to on_conflict) and still apply A's own appends."""
    conflicts: list[ConflictError] = []
    a = ConversationStore.from_url(
        proxy.url, key_prefix=prefix, on_conflict=conflicts.append, **FAST
    )
    b = ConversationStore.from_url(fresh_redis_server.url, key_prefix=prefix, fallback="raise")
    a.append("s", [msg("h0"), msg("h1"), msg("h2")])
    assert texts(a.messages("s")) == ["h0", "h1", "h2"]
    proxy.cut()
    destroy(a, op)
    a.append("s", [msg("a-after")])
    b.append("s", [msg("b1")])
    proxy.restore()
    with caplog.at_level(logging.ERROR, logger="chatkeep"):
        settle(a)
    assert stored(fresh_redis_server.port, prefix, "s") == ["h0", "h1", "h2", "b1", "a-after"]
    status = a.status()
    assert (status.conflicts, status.replay_rejected, status.pending_replay) == (1, 1, 0), status
    assert len(conflicts) == 1 and isinstance(conflicts[0], ConflictError)
    assert conflicts[0].session_id == "s"
    assert any("ConflictError" in r.getMessage() for r in caplog.records), caplog.text
    a.close()
    b.close()


EXPECTED_AFTER_OWN_APPENDS = {
    "clear": [],
    "replace": ["r"],
    "pop-last": ["h0", "h1", "h2", "a1"],
    "pop-first": ["h1", "h2", "a1", "a2"],
    "insert": ["i", "h0", "h1", "h2", "a1", "a2"],
}


@pytest.mark.parametrize("op", DESTRUCTIVE)
def test_a_destructive_change_after_only_own_journaled_appends_applies(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str, op: str
) -> None:
    """Item 5: the only changes since A saw the session are A's own journaled appends:
    A's change is no conflict and applies."""
    conflicts: list[ConflictError] = []
    a = ConversationStore.from_url(
        proxy.url, key_prefix=prefix, on_conflict=conflicts.append, **FAST
    )
    a.append("s", [msg("h0"), msg("h1"), msg("h2")])
    a.messages("s")
    proxy.cut()
    a.append("s", [msg("a1")])
    a.append("s", [msg("a2")])
    destroy(a, op)
    proxy.restore()
    settle(a)
    assert stored(fresh_redis_server.port, prefix, "s") == EXPECTED_AFTER_OWN_APPENDS[op]
    status = a.status()
    assert (status.conflicts, status.replay_rejected) == (0, 0), status
    assert conflicts == []
    a.close()


def test_appends_journaled_around_a_conflict_are_never_lost(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str
) -> None:
    """Item 5: A appends, B appends, A replaces, A appends: only A's replace is dropped."""
    a = ConversationStore.from_url(proxy.url, key_prefix=prefix, **FAST)
    b = ConversationStore.from_url(fresh_redis_server.url, key_prefix=prefix, fallback="raise")
    a.append("s", [msg("h0")])
    proxy.cut()
    a.append("s", [msg("a1")])
    b.append("s", [msg("b1")])
    a.replace("s", [msg("r")])
    a.append("s", [msg("a2")])
    proxy.restore()
    settle(a)
    assert stored(fresh_redis_server.port, prefix, "s") == ["h0", "b1", "a1", "a2"]
    assert a.status().conflicts == 1
    a.close()
    b.close()


# -- 7. positions in a partial mirror ----------------------------------------------------------


def test_positions_in_a_partial_mirror_are_refused_not_guessed(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str
) -> None:
    """Item 7: mirror_messages=5 and 10 messages: pop(0)/insert(0) raise
    IncompleteMirrorError and change nothing; pop(-k) within what is held works and
    replays by message id; lengths are the real session lengths."""
    store = ConversationStore.from_url(proxy.url, key_prefix=prefix, mirror_messages=5, **FAST)
    store.append("s", [msg(f"m{i}") for i in range(10)])
    proxy.cut()
    with pytest.raises(IncompleteMirrorError):
        store.pop("s", 0)
    with pytest.raises(IncompleteMirrorError):
        store.insert("s", 2, [msg("x")])
    with pytest.raises(IncompleteMirrorError):
        store.pop("s", -6)
    assert store.status().pending_replay == 0  # nothing was journaled
    info = store.info("s")
    assert info is not None and info.message_count == 10
    assert store.append("s", [msg("n")]) == 11  # the session's length, not the mirror's (6)
    popped = store.pop("s", -2)
    assert popped is not None and popped.text == "m9"
    assert store.append("s", [msg("o")]) == 11
    assert texts(store.messages("s", last=3)) == ["m8", "n", "o"]
    proxy.restore()
    settle(store)
    expected = [*(f"m{i}" for i in range(9)), "n", "o"]
    assert stored(fresh_redis_server.port, prefix, "s") == expected
    store.close()


def test_a_mirror_that_learned_only_a_tail_read_still_refuses_positions(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str
) -> None:
    """Item 7, learned by reading: another process wrote 10 messages; this one read only
    the last 3. In the outage the mirror knows it holds part of the session: pop(0)
    raises, and lengths are the session's (a tail read once set the mirror's length to
    what it read, so pop(0) removed m7)."""
    other = ConversationStore.from_url(fresh_redis_server.url, key_prefix=prefix, fallback="raise")
    other.append("s", [msg(f"m{i}") for i in range(10)])
    store = ConversationStore.from_url(proxy.url, key_prefix=prefix, **FAST)
    assert texts(store.messages("s", last=3)) == ["m7", "m8", "m9"]
    proxy.cut()
    with pytest.raises(IncompleteMirrorError):
        store.pop("s", 0)
    info = store.info("s")
    assert info is not None and info.message_count == 10
    assert store.append("s", [msg("n")]) == 11
    proxy.restore()
    settle(store)
    assert stored(fresh_redis_server.port, prefix, "s") == [*(f"m{i}" for i in range(10)), "n"]
    store.close()
    other.close()


# -- 8. the race: a write served from memory while the circuit closes -----------------------


@pytest.mark.parametrize("where", ["journal", "mirror", "route"])
@pytest.mark.parametrize("journal", ["memory", "sqlite"])
def test_a_write_served_while_the_circuit_closes_is_not_left_unsent(
    fresh_redis_server: RedisServer,
    proxy: TcpProxy,
    prefix: str,
    where: str,
    journal: str,
    tmp_path: Any,
) -> None:
    """Item 8: one thread's append is served from memory, slowed down at ``where``,
    while another thread replays the journal and closes the circuit."""
    options: dict[str, Any] = {"probe_interval": 60, "probe_max": 60}
    if journal == "sqlite":
        options["journal_path"] = str(tmp_path / "journal.db")
    store = ConversationStore.from_url(proxy.url, key_prefix=prefix, **options)
    store.append("s", [msg("a")])
    proxy.cut()
    store.append("s", [msg("b")])
    proxy.restore()
    circuit = store.connection.circuit  # type: ignore[union-attr]
    assert circuit is not None
    entered = threading.Event()
    slow = {"on": True}

    def slowed(original: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            if slow["on"] and threading.current_thread().name == "writer":
                slow["on"] = False
                if where == "route":
                    result = original(*args, **kwargs)
                    entered.set()
                    time.sleep(0.3)  # decided "local"; the circuit closes meanwhile
                    return result
                entered.set()
                time.sleep(0.3)
            return original(*args, **kwargs)

        return call

    if where == "journal":
        circuit.journal.add = slowed(circuit.journal.add)  # type: ignore[method-assign]
    elif where == "mirror":
        mirror = store._family.mirror  # type: ignore[union-attr]
        mirror.serve = slowed(mirror.serve)  # type: ignore[method-assign]
    else:
        circuit.route = slowed(circuit.route)  # type: ignore[method-assign]
    writer = threading.Thread(target=store.append, args=("s", [msg("c")]), name="writer")
    writer.start()
    assert entered.wait(5)
    assert store.flush() in (0, 1)
    writer.join(10)
    status = store.status()
    if status.pending_replay:  # queued behind the replay: the next flush sends it
        assert store.flush() == 0
    assert store.status().pending_replay == 0 and not store.status().degraded
    assert stored(fresh_redis_server.port, prefix, "s") == ["a", "b", "c"]
    store.close()


# -- 9. owners are never guessed ----------------------------------------------------------------


def other_process_store(server: RedisServer, prefix: str) -> ConversationStore:
    """A store with its own connection (another process, as far as Redis can tell)."""
    return ConversationStore.from_url(server.url, key_prefix=prefix, fallback="raise")


def test_a_plain_read_reports_the_owner_redis_has(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str
) -> None:
    """Item 9: the session was cleared and recreated by another owner through another
    process; a plain read here learns the new owner, and in an outage the old owner
    is refused."""
    a = ConversationStore.from_url(proxy.url, key_prefix=prefix, **FAST)
    b = other_process_store(fresh_redis_server, prefix)
    a.append("s", [msg("alice secret")], owner="alice")
    assert texts(a.messages("s", owner="alice")) == ["alice secret"]
    b.clear("s", owner="alice")
    b.append("s", [msg("bob secret")], owner="bob")
    assert texts(a.messages("s")) == ["bob secret"]  # a plain (owner-free) read
    proxy.cut()
    with pytest.raises(SessionOwnershipError):
        a.messages("s", owner="alice")
    info = a.info("s")
    assert info is not None and info.owner == "bob"
    assert texts(a.messages("s", owner="bob")) == ["bob secret"]
    forget(a)
    b.close()


def test_an_ownerless_write_to_a_recreated_session_does_not_mix_owners(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str
) -> None:
    """Item 9: this process wrote alice's session; another recreated it for bob; an
    owner-free append here goes to bob's session. In an outage neither owner may read
    the other's messages from the mirror."""
    a = ConversationStore.from_url(proxy.url, key_prefix=prefix, **FAST)
    b = other_process_store(fresh_redis_server, prefix)
    a.append("s", [msg("alice secret")], owner="alice")
    b.clear("s")
    b.append("s", [msg("bob secret")], owner="bob")
    assert a.append("s", [msg("x")]) == 2
    proxy.cut()
    with pytest.raises(SessionOwnershipError):
        a.messages("s", owner="alice")
    seen_by_bob = texts(a.messages("s", owner="bob"))
    assert "alice secret" not in seen_by_bob, seen_by_bob
    assert seen_by_bob[-1:] == ["x"]
    forget(a)
    b.close()


def test_a_session_recreated_without_owner_is_not_served_to_the_old_owner(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str
) -> None:
    a = ConversationStore.from_url(proxy.url, key_prefix=prefix, **FAST)
    b = other_process_store(fresh_redis_server, prefix)
    a.append("s", [msg("alice secret")], owner="alice")
    a.messages("s", owner="alice")
    b.clear("s")
    b.append("s", [msg("public")])
    assert texts(a.messages("s")) == ["public"]
    proxy.cut()
    with pytest.raises(SessionOwnershipError):
        a.messages("s", owner="alice")
    info = a.info("s")
    assert info is not None and info.owner is None
    forget(a)
    b.close()


# -- 10. Redis restarting empty is noticed --------------------------------------------------


def listed(store: ConversationStore, **options: Any) -> set[str]:
    return {info.id for info in store.sessions(**options)}


def test_a_restart_found_by_the_probe_is_reported_and_the_index_rewritten(
    fresh_redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 10: Redis (no persistence) restarts empty during an outage."""
    server = fresh_redis_server
    store = ConversationStore.from_url(server.url, key_prefix=prefix, **FAST)
    store.append("s1", [msg("one")], owner="o")
    store.append("s2", [msg("two")])
    store.append("s3", [msg("three")], owner="o")
    server.kill()
    store.append("s1", [msg("during")], owner="o")
    server.start()
    with caplog.at_level(logging.WARNING, logger="chatkeep"):
        settle(store)
    status = store.status()
    assert (status.restarts, status.lost_sessions) == (1, 3), status
    warnings = [r.getMessage() for r in caplog.records if "restarted" in r.getMessage()]
    assert len(warnings) == 1 and "it lost 3 of 3 sessions" in warnings[0], warnings
    assert stored(server.port, prefix, "s1") == ["during"]
    assert listed(store) == {"s1"}
    assert listed(store, owner="o") == {"s1"}
    assert [r.id for r in store.recent()] == ["s1"]
    # Sessions recreated after the restart are listed again, with their owners.
    store.append("s2", [msg("again")])
    store.append("s3", [msg("again")], owner="o")
    assert listed(store) == {"s1", "s2", "s3"}
    assert listed(store, owner="o") == {"s1", "s3"}
    assert {r.id for r in store.recent()} == {"s1", "s2", "s3"}
    store.close()


def test_a_restart_between_two_calls_is_noticed_by_the_next_writes(
    fresh_redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Item 10: Redis restarts empty between two calls (no call saw it down): the
    sessions this process writes next are listed again, the loss is logged and
    counted."""
    server = fresh_redis_server
    store = ConversationStore.from_url(server.url, key_prefix=prefix, **FAST)
    for sid in ("s1", "s2", "s3"):
        store.append(sid, [msg("before")], owner="o")
    assert listed(store) == {"s1", "s2", "s3"}
    server.restart()
    server.wait_ready()
    with caplog.at_level(logging.WARNING, logger="chatkeep"):
        for sid in ("s1", "s2"):
            store.append(sid, [msg("after")], owner="o")
    assert listed(store) == {"s1", "s2"}
    assert listed(store, owner="o") == {"s1", "s2"}
    assert {r.id for r in store.recent(owner="o")} == {"s1", "s2"}
    status = store.status()
    assert status.lost_sessions >= 2, status
    assert any("gone from Redis" in r.getMessage() or "restarted" in r.getMessage()
               for r in caplog.records), caplog.text  # fmt: skip
    store.close()


@pytest.mark.parametrize("read_during_outage", [False, True])
def test_restore_lost_sessions_writes_back_the_mirror_never_over_a_recreated_session(
    fresh_redis_server: RedisServer,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
    read_during_outage: bool,
) -> None:
    """Item 10 with restore_lost_sessions=True: sessions the mirror holds are written
    back (each message once, the outage's appends included, also when the chat read
    its history from the mirror during the outage); a session another process
    recreated after the restart is left alone."""
    server = fresh_redis_server
    store = ConversationStore.from_url(
        server.url, key_prefix=prefix, restore_lost_sessions=True, **FAST
    )
    store.append("s1", [msg("a1"), msg("a2")], owner="o")
    store.append("s2", [msg("b1")])
    store.append("s3", [msg("c1")])
    for sid in ("s1", "s2", "s3"):  # a chat reads its history every turn
        store.messages(sid)
    server.kill()
    store.append("s1", [msg("during")], owner="o")
    if read_during_outage:
        for sid in ("s1", "s2", "s3"):
            store.messages(sid)
    server.start()
    other = other_process_store(server, prefix)
    other.append("s2", [msg("recreated")])
    with caplog.at_level(logging.WARNING, logger="chatkeep"):
        settle(store)
    assert stored(server.port, prefix, "s1") == ["a1", "a2", "during"]
    assert stored(server.port, prefix, "s2") == ["recreated"]
    assert stored(server.port, prefix, "s3") == ["c1"]
    assert listed(store) == {"s1", "s2", "s3"}
    assert listed(store, owner="o") == {"s1"}
    info = store.info("s1")
    assert info is not None and info.owner == "o"
    status = store.status()
    assert (status.restarts, status.lost_sessions) == (1, 2), status
    assert any("written back" in r.getMessage() for r in caplog.records), caplog.text
    store.close()
    other.close()


# -- 11. not silent -------------------------------------------------------------------------------


WARN_CHILD = """
import json, sys, time
from chatkeep import ConversationStore, Message
from tests.support.servers import RedisServer, TcpProxy, free_port

def settle(store):
    deadline = time.monotonic() + 20
    while store.flush() or store.status().degraded:
        assert time.monotonic() < deadline
        time.sleep(0.02)

mode = sys.argv[1]
if mode == "outages":
    with RedisServer() as server:
        proxy = TcpProxy(server.port)
        first = ConversationStore.from_url(proxy.url, key_prefix="w1", probe_interval=0.05)
        second = ConversationStore.from_url(proxy.url, key_prefix="w2", probe_interval=0.05,
                                            socket_timeout=0.4)  # another circuit
        for _ in range(2):  # two outages, two circuits: one warning for the process
            first.append("s", Message(role="user", content="hi"))
            second.append("s", Message(role="user", content="hi"))
            proxy.cut()
            first.append("s", Message(role="user", content="during"))
            second.append("s", Message(role="user", content="during"))
            proxy.restore()
            settle(first)
            settle(second)
        print(json.dumps({"reached": first.status().reached, "outages": first.status().outages}))
        first.close()
        second.close()
        proxy.close()
else:
    url = ("redis://127.0.0.1:%d/0" % free_port()) if mode == "port" else (
        "redis://no-such-host.invalid:6379/0")
    store = ConversationStore.from_url(url, probe_interval=60)
    store.append("s", Message(role="user", content="hi"))
    store.messages("s")
    print(json.dumps({"reached": store.status().reached, "degraded": store.status().degraded}))
    store._connection.circuit.journal.remove([1])  # nothing to report at exit
"""


def fallback_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "FallbackWarning" in line]


@pytest.mark.parametrize("always", [False, True])
def test_the_first_fallback_of_a_process_warns_once(always: bool) -> None:
    """Item 11: with default warning filters and no logging configured, an outage is
    visible: one FallbackWarning for the process (two circuits, two outages)."""
    code = ("import warnings; warnings.simplefilter('always')\n" if always else "") + WARN_CHILD
    child = python(code, "outages")
    assert child.returncode == 0, child.stderr
    assert '"reached": true' in child.stdout and '"outages": 2' in child.stdout
    found = fallback_warnings(child.stderr)
    assert len(found) == 1, child.stderr
    assert "is unreachable" in found[0] and "status()" in found[0]


@pytest.mark.parametrize("wrong", ["port", "host"])
def test_a_store_that_never_reached_redis_says_so(wrong: str) -> None:
    """Item 11: a wrong host/port: the warning says Redis was never reached and
    status().reached is False."""
    child = python(WARN_CHILD, wrong)
    assert child.returncode == 0, child.stderr
    assert '"reached": false' in child.stdout and '"degraded": true' in child.stdout
    found = fallback_warnings(child.stderr)
    assert len(found) == 1, child.stderr
    assert "has never been reached" in found[0]


# -- 12. memory bounded in bytes -----------------------------------------------------------------


def test_the_journal_is_bounded_in_bytes(fresh_redis_server: RedisServer, prefix: str) -> None:
    """Item 12: 50 KB appends while degraded stop at journal_max_bytes with
    JournalFullError (nothing acknowledged is dropped, nothing refused is kept)."""
    limit = 1_000_000
    store = ConversationStore.from_url(
        fresh_redis_server.url, key_prefix=prefix, journal_max_bytes=limit, **FAST
    )
    store.append("s", [msg("first")])
    fresh_redis_server.kill()
    big = "x" * 50_000
    accepted = 0
    with pytest.raises(JournalFullError):
        for i in range(100):
            store.append("s", [msg(f"{i}:{big}")])
            accepted += 1
    status = store.status()
    assert 15 <= accepted <= 20, accepted
    assert status.pending_replay == accepted and status.journal_bytes <= limit, status
    for _ in range(5):
        with pytest.raises(JournalFullError):
            store.append("s", [msg(f"refused:{big}")])
    assert store.status().journal_refused == 6
    held = texts(store.messages("s"))
    assert not any(t.startswith("refused") for t in held) and len(held) == accepted + 1
    fresh_redis_server.start()  # empty (no persistence): the journal lands alone
    settle(store)
    assert len(stored(fresh_redis_server.port, prefix, "s")) == accepted
    store.close()


def test_batched_appends_are_bounded_in_bytes_not_counts(
    fresh_redis_server: RedisServer, prefix: str
) -> None:
    """Item 12: journal_size=1000 entries but each append is a batch of 200 x 1 KB."""
    limit = 2_000_000
    store = ConversationStore.from_url(
        fresh_redis_server.url, key_prefix=prefix, journal_size=1000, journal_max_bytes=limit
    )
    store.append("s", [msg("first")])
    fresh_redis_server.kill()
    batch = [msg("y" * 1000) for _ in range(200)]
    accepted = 0
    with pytest.raises(JournalFullError):
        for _ in range(1000):
            store.append("s", batch)
            accepted += 1
    assert accepted <= limit // 200_000, accepted
    assert store.status().journal_bytes <= limit
    forget(store)


def test_a_degraded_process_stays_within_journal_and_mirror_bytes(
    fresh_redis_server: RedisServer, prefix: str
) -> None:
    """Item 12: what the process holds for the fallback (journal + mirror), measured
    with tracemalloc while a chat appends 50 KB messages and reads its history,
    stays within journal_max_bytes + mirror_max_bytes (plus a little for objects)."""
    journal_limit, mirror_limit = 4_000_000, 1_000_000
    store = ConversationStore.from_url(
        fresh_redis_server.url,
        key_prefix=prefix,
        journal_max_bytes=journal_limit,
        mirror_max_bytes=mirror_limit,
        **FAST,
    )
    store.append("s0", [msg("first")])
    fresh_redis_server.kill()
    store.append("s0", [msg("opens the circuit")])
    big = "z" * 50_000
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        refused = 0
        for i in range(400):
            sid = f"s{i % 8}"
            try:
                store.append(sid, [msg(f"{i}:{big}")])
            except JournalFullError:
                refused += 1
            if i % 4 == 0:
                store.messages(sid, last=20)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert refused > 0  # the journal filled up
    assert store.status().journal_bytes <= journal_limit
    bound = (journal_limit + mirror_limit) * 1.2 + 500_000
    assert grown <= bound, f"the fallback holds {grown / 1e6:.1f} MB, bound {bound / 1e6:.1f} MB"
    forget(store)


# -- the asyncio twin: the same promises -------------------------------------------------------


def test_async_replayed_clear_never_overwrites_a_later_write(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str
) -> None:
    """Item 5 with AsyncConversationStore."""

    async def scenario() -> None:
        conflicts: list[ConflictError] = []
        a = AsyncConversationStore.from_url(
            proxy.url, key_prefix=prefix, on_conflict=conflicts.append, **FAST
        )
        b = ConversationStore.from_url(fresh_redis_server.url, key_prefix=prefix, fallback="raise")
        await a.append("s", [msg("h0")])
        await a.messages("s")
        proxy.cut()
        assert await a.clear("s") is True
        await a.append("s", [msg("a-after")])
        b.append("s", [msg("b1")])
        proxy.restore()
        await asettle(a)
        assert stored(fresh_redis_server.port, prefix, "s") == ["h0", "b1", "a-after"]
        assert a.status().conflicts == 1 and len(conflicts) == 1
        await a.aclose()
        b.close()

    asyncio.run(scenario())


def test_async_positions_in_a_partial_mirror_are_refused(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str
) -> None:
    """Item 7 with AsyncConversationStore."""

    async def scenario() -> None:
        store = AsyncConversationStore.from_url(
            proxy.url, key_prefix=prefix, mirror_messages=5, **FAST
        )
        await store.append("s", [msg(f"m{i}") for i in range(10)])
        proxy.cut()
        with pytest.raises(IncompleteMirrorError):
            await store.pop("s", 0)
        assert await store.append("s", [msg("n")]) == 11
        proxy.restore()
        await asettle(store)
        expected = [*(f"m{i}" for i in range(10)), "n"]
        assert stored(fresh_redis_server.port, prefix, "s") == expected
        await store.aclose()

    asyncio.run(scenario())
