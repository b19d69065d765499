"""The state machines of chatkeep.redis, without a server: flow drivers, gather, the
circuit (routing, journaling, replay outcomes, recovery from any exception) and the
session index."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest
from redis import exceptions as rex

from chatkeep import BackendError, ConflictError, JournalFullError, StoreConfig
from chatkeep.keys import KeySchema
from chatkeep.redis import (
    Call,
    Connection,
    Flow,
    Sleep,
    Unreachable,
    arun,
    done,
    gather,
    guarded,
    run,
)
from chatkeep.redis.circuit import Route
from chatkeep.sessions.index import RedisIndex


class Recorder:
    """A sender that records round trips and answers from a script of replies."""

    def __init__(self, *answers: Any) -> None:
        self.sent: list[list[tuple[Any, ...]]] = []
        self.answers = list(answers)

    def send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        self.sent.append(commands)
        answer = self.answers.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer if answer is not None else [b"OK"] * len(commands)

    async def asend(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        return self.send(commands)


def echo(*commands: tuple[Any, ...]) -> Flow[list[Any]]:
    replies: list[Any] = yield list(commands)
    return replies


# -- drivers ------------------------------------------------------------------------------


def test_both_drivers_run_the_same_flow_to_the_same_result() -> None:
    def flow() -> Flow[tuple[Any, ...]]:
        first = yield [("GET", "a")]
        yield Sleep(0)
        called = yield Call(lambda x: x * 2, (21,))
        return first[0], called

    assert run(flow(), Recorder([b"1"])) == (b"1", 42)
    assert asyncio.run(arun(flow(), Recorder([b"1"]))) == (b"1", 42)


def test_the_async_driver_awaits_what_a_call_returns() -> None:
    async def compute() -> str:
        return "awaited"

    def flow() -> Flow[str]:
        value: str = yield Call(compute)
        return value

    assert asyncio.run(arun(flow(), Recorder())) == "awaited"


def test_a_failed_round_trip_is_raised_into_the_flow_and_its_finally_runs() -> None:
    cleaned: list[str] = []

    def flow() -> Flow[str]:
        try:
            yield [("PING",)]
        except Unreachable:
            return "handled"
        finally:
            cleaned.append("finally")
        return "not reached"

    boom = Unreachable(ConnectionError("refused"))
    assert run(flow(), Recorder(boom)) == "handled"
    assert cleaned == ["finally"]


def test_any_exception_from_a_call_reaches_the_flow_even_keyboard_interrupt() -> None:
    seen: list[str] = []

    def interrupt() -> None:
        raise KeyboardInterrupt

    def flow() -> Flow[None]:
        try:
            yield Call(interrupt)
        finally:
            seen.append("finally")

    with pytest.raises(KeyboardInterrupt):
        run(flow(), Recorder())
    assert seen == ["finally"]


def test_done_needs_no_io() -> None:
    assert run(done(7), Recorder()) == 7


def test_gather_shares_round_trips_and_keeps_each_flows_outcome() -> None:
    def two_steps(key: str) -> Flow[list[Any]]:
        first = yield [("GET", key)]
        second = yield [("GET", key + "'")]
        return [first[0], second[0]]

    def failing() -> Flow[None]:
        yield [("GET", "bad")]
        raise BackendError("refused")

    sender = Recorder([b"a", b"b", b"x"], [b"a2", b"b2"])
    results = run(gather([two_steps("a"), two_steps("b"), failing()]), sender)
    assert results[:2] == [[b"a", b"a2"], [b"b", b"b2"]]
    assert isinstance(results[2], BackendError)
    assert [len(batch) for batch in sender.sent] == [3, 2]  # two round trips, not five


def test_gather_raises_a_failed_round_trip_and_closes_the_flows() -> None:
    closed: list[str] = []

    def flow() -> Flow[None]:
        try:
            yield [("GET", "k")]
        finally:
            closed.append("closed")

    with pytest.raises(Unreachable):
        run(gather([flow(), flow()]), Recorder(Unreachable(ConnectionError("x"))))
    assert closed == ["closed", "closed"]


# -- the circuit --------------------------------------------------------------------------


class Mirror:
    def __init__(self) -> None:
        self.absorbed: list[Any] = []
        self.served: list[Any] = []

    def absorb(self, op: Any, result: Any) -> None:
        self.absorbed.append((op, result))

    def serve(self, op: Any) -> tuple[Any, Any]:
        self.served.append(op)
        return f"local {op}", (op if op.startswith("write") else None)


class Family:
    """A family whose operations are strings: "write ..." writes, others read."""

    name = "test"

    def __init__(self, replay_errors: list[BaseException | None] | None = None) -> None:
        self.params = {"id": id(self)}
        self.mirror = Mirror()
        self.replayed: list[list[Any]] = []
        self.replay_errors = replay_errors or []
        self.rejections: list[tuple[Any, BaseException]] = []

    def run(self, op: str) -> Flow[str]:
        yield [("ECHO", op)]
        return f"redis {op}"

    def key(self, op: str) -> str | None:
        return op.rsplit(maxsplit=1)[-1] if op.startswith("write") else None

    def size(self, op: str) -> int:
        return len(op)

    def replay(self, ops: list[Any]) -> Flow[list[BaseException | None]]:
        yield [("ECHO", op) for op in ops]
        self.replayed.append(list(ops))
        if self.replay_errors:
            return [self.replay_errors.pop(0)]
        return [None] * len(ops)

    def rejected(self, op: Any, error: BaseException) -> None:
        self.rejections.append((op, error))

    def attempted(self, op: str) -> str:
        return op

    def encode(self, op: str) -> bytes:
        return op.encode()

    def decode(self, data: bytes) -> str:
        return data.decode()

    def restarted(self) -> Flow[None]:
        return done(None)


class FakeConnection:
    """A Connection whose round trips follow a switch: up, down, or refusing."""

    def __init__(self, **options: Any) -> None:
        config = StoreConfig.create(
            url="redis://127.0.0.1:1/0", probe_interval=0.001, probe_max=0.002, **options
        )
        self.real = Connection(config)
        self.circuit = self.real.circuit
        self.safe_url = self.real.safe_url
        self.reached = True
        self.async_only = False
        self.down = False
        self.refusal: BaseException | None = None

    def send(self, commands: list[tuple[Any, ...]]) -> list[Any]:
        if self.down:
            raise Unreachable(ConnectionError("refused"))
        if commands[0][0] == "PING" and self.refusal is not None:
            raise self.refusal
        return [b"PONG" if c[0] == "PING" else b"run_id:x" for c in commands]


def call(connection: FakeConnection, family: Family, op: str) -> Any:
    return run(guarded(connection, family, op), connection)  # type: ignore[arg-type]


def wait_probe() -> None:
    import time

    time.sleep(0.003)


def test_a_closed_circuit_sends_to_redis_and_the_mirror_learns() -> None:
    connection, family = FakeConnection(), Family()
    assert call(connection, family, "read a") == "redis read a"
    assert family.mirror.absorbed == [("read a", "redis read a")]
    assert connection.circuit.state == "closed"


def test_unreachable_opens_the_circuit_serves_locally_and_journals_writes_only() -> None:
    connection, family = FakeConnection(), Family()
    connection.down = True
    assert call(connection, family, "write 1 s1") == "local write 1 s1"
    assert call(connection, family, "read s1") == "local read s1"
    circuit = connection.circuit
    assert circuit.state == "open" and circuit.outages == 1
    assert circuit.pending == 1


def test_the_probe_replays_the_journal_then_closes() -> None:
    connection, family = FakeConnection(), Family()
    connection.down = True
    for i in range(3):
        call(connection, family, f"write {i} s1")
    call(connection, family, "write x s2")
    connection.down = False
    wait_probe()
    assert call(connection, family, "read s1") == "redis read s1"
    circuit = connection.circuit
    assert circuit.state == "closed" and circuit.pending == 0 and circuit.replayed == 4
    # per key, in order; keys side by side
    assert sorted(family.replayed) == [["write 0 s1", "write 1 s1", "write 2 s1"], ["write x s2"]]


def test_a_temporary_refusal_keeps_every_journaled_write() -> None:
    oom = BackendError("OOM command not allowed")
    oom.code = "OOM"
    connection, family = FakeConnection(), Family(replay_errors=[oom])
    connection.down = True
    call(connection, family, "write 1 s1")
    connection.down = False
    wait_probe()
    assert call(connection, family, "write 2 s1") == "local write 2 s1"  # queued behind
    circuit = connection.circuit
    assert circuit.state == "open" and circuit.pending == 2 and circuit.rejected == 0
    wait_probe()
    assert call(connection, family, "read s1") == "redis read s1"
    assert circuit.pending == 0 and circuit.replayed == 2


def test_an_invalid_write_is_dropped_counted_and_reported_a_conflict_too() -> None:
    wrong = BackendError("WRONGTYPE Operation against a key")
    wrong.code = "WRONGTYPE"
    conflict = ConflictError("s1")
    connection, family = FakeConnection(), Family(replay_errors=[wrong, conflict])
    connection.down = True
    call(connection, family, "write 1 s1")
    call(connection, family, "write 2 s2")
    connection.down = False
    wait_probe()
    call(connection, family, "read s1")
    circuit = connection.circuit
    assert circuit.state == "closed" and circuit.pending == 0
    assert (circuit.rejected, circuit.conflicts) == (2, 1)
    assert [type(e) for _, e in family.rejections] == [BackendError, ConflictError]


@pytest.mark.parametrize("surprise", [KeyboardInterrupt, SystemExit, RuntimeError])
def test_no_exception_leaves_the_circuit_probing(surprise: type[BaseException]) -> None:
    connection, family = FakeConnection(), Family(replay_errors=[surprise()])
    family.replay_errors = []
    connection.down = True
    call(connection, family, "write 1 s1")
    connection.down = False
    original = family.replay

    def exploding(ops: list[Any]) -> Flow[list[BaseException | None]]:
        family.replay = original  # type: ignore[method-assign]
        yield [("ECHO", "x")]
        raise surprise()

    family.replay = exploding  # type: ignore[method-assign]
    wait_probe()
    with pytest.raises(surprise):
        call(connection, family, "read s1")
    circuit = connection.circuit
    assert circuit.state == "open" and circuit.pending == 1
    wait_probe()
    assert call(connection, family, "read s1") == "redis read s1"
    assert circuit.state == "closed" and circuit.pending == 0


def test_a_refused_probe_is_raised_when_it_is_not_temporary() -> None:
    connection, family = FakeConnection(), Family()
    connection.down = True
    call(connection, family, "write 1 s1")
    connection.down = False
    refusal = BackendError("NOAUTH Authentication required")
    refusal.code = "NOAUTH"
    connection.refusal = refusal
    wait_probe()
    with pytest.raises(BackendError):
        call(connection, family, "read s1")
    assert connection.circuit.state == "open" and connection.circuit.pending == 1


def test_a_full_journal_refuses_before_the_mirror_changes() -> None:
    connection, family = FakeConnection(journal_size=1), Family()
    connection.down = True
    call(connection, family, "write 1 s1")
    with pytest.raises(JournalFullError):
        call(connection, family, "write 2 s1")
    assert family.mirror.served == ["write 1 s1"]
    assert connection.circuit.refused == 1


def test_a_write_served_while_the_circuit_closes_is_sent_to_redis() -> None:
    """The journal is found empty and the circuit closed under one lock with serve():
    a write either lands in the journal before, or sees the circuit closed."""
    connection, family = FakeConnection(), Family()
    connection.down = True
    call(connection, family, "write 1 s1")
    circuit = connection.circuit
    route = circuit.route
    raced: list[Any] = []

    def late_route(**kwargs: Any) -> Route:
        found = route(**kwargs)
        if found is Route.LOCAL and not raced:
            connection.down = False  # meanwhile another caller recovers the circuit
            raced.append(run(circuit.flush(), connection))  # type: ignore[arg-type]
        return found

    circuit.route = late_route  # type: ignore[method-assign]
    assert call(connection, family, "write 2 s1") == "redis write 2 s1"
    assert raced == [0] and circuit.pending == 0


# -- the session index --------------------------------------------------------------------


def test_the_index_is_written_when_unknown_or_stale_else_only_for_a_new_session() -> None:
    keys = KeySchema("p")
    index = RedisIndex(keys, default_ttl_ms=100_000, fixed=False)
    plan = index.before("s", "u", None, now=0)
    assert (plan.mode, plan.keys) == ("1", ["p:idx", "p:own:u"])
    fixes, lost = index.after("s", plan, 100_000, "u", now=0, new=True)
    assert (fixes, lost) == ([], False)
    same = index.before("s", "u", None, now=1_000)
    assert same.mode == "2"  # within the slack: only if the write creates the session
    stale = index.before("s", "u", None, now=60_000)
    assert stale.mode == "1"


def test_the_index_notices_a_session_redis_lost() -> None:
    index = RedisIndex(KeySchema("p"), default_ttl_ms=100_000, fixed=False)
    index.after("s", index.before("s", None, None, now=0), 100_000, None, now=0, new=True)
    plan = index.before("s", None, None, now=1_000)
    _, lost = index.after("s", plan, 101_000, None, now=1_000, new=True)
    assert lost  # it expires at 100 s, yet a write at 1 s created it again


def test_a_read_refreshes_index_entries_only_when_they_trail() -> None:
    index = RedisIndex(KeySchema("p"), default_ttl_ms=100_000, fixed=False)
    index.after("s", index.before("s", None, None, now=0), 100_000, None, now=0, new=True)
    assert index.before_read("s", now=1_000).mode == "0"
    assert index.before_read("s", now=70_000).mode == "1"
    assert index.fresh("s", now=500) is not None and index.fresh("s", now=5_000) is None


def test_a_never_expiring_session_is_indexed_at_infinity() -> None:
    index = RedisIndex(KeySchema("p"), default_ttl_ms=0, fixed=False)
    plan = index.before("s", None, None, now=0)
    index.after("s", plan, None, None, now=0, new=True)
    assert index.known()[0][1].score == math.inf


def test_reply_errors_keep_their_server_code() -> None:
    from chatkeep.redis import translate

    error = translate(rex.ResponseError("OOM command not allowed when used memory > 'maxmemory'."))
    assert isinstance(error, BackendError) and error.code == "OOM"
