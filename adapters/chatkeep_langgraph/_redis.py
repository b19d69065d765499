"""The checkpoints of one prefix in Redis: a family of chatkeep's circuit (internal).

Every operation on a thread is one shipped Lua script over the thread's four keys
(one hash tag, so one Cluster slot): one round trip, atomic; ``delete`` is one
``DEL``. Operations are flows (:mod:`chatkeep.redis`), driven by the saver's
connection, the one every chatkeep store of the process shares for this Redis: its
circuit routes them, its mirror and journal serve and keep them while Redis is
unreachable, and it replays them (in order per thread) when Redis is back.

Importing this module declares the ``langgraph`` :class:`~chatkeep.redis.Feature`
(its scripts' commands go into :func:`chatkeep.redis.acl_rules`) and registers the
family, so a process that finds checkpoint writes in a durable journal
(``journal_path``) can replay them: the ``chatkeep.features`` entry point names
this module.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import time
from collections.abc import Sequence
from typing import Any

from chatkeep.redis import (
    BaseFamily,
    Connection,
    Feature,
    Flow,
    KeySchema,
    check,
    escape_id,
    register_data_kind,
    register_family,
    run_script,
    unescape_id,
)

from ._kinds import CheckpointThreads, StoreNamespaces
from ._layout import (
    READS,
    RUNS_KEY,
    THREADS_KEY,
    Delete,
    DropRuns,
    Dump,
    Entry,
    Forget,
    Load,
    MemoryCheckpoints,
    Op,
    Page,
    Prune,
    Put,
    Runs,
    ThreadData,
    Threads,
    Unindex,
    Write,
    Writes,
    index_entries,
)

__all__ = ["LANGGRAPH", "RedisCheckpoints"]

LANGGRAPH = Feature(
    "langgraph",
    package="chatkeep_langgraph",
    scripts=("page", "put", "writes", "prune", "dump", "load", "forget"),
    prelude="common.lua",
    # ZSCORE: when a thread was last written, for the chatkeep command's listing
    commands=("DEL", "PEXPIRE", "ZADD", "ZRANGE", "ZREM", "ZREVRANGE", "ZSCORE"),
)


def _pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def _flat(pairs: Any) -> list[bytes]:
    return [part for pair in pairs for part in pair]


def _page_result(reply: Sequence[Any]) -> list[Entry]:
    return [(m, rec, list(blobs), list(writes)) for m, rec, blobs, writes in reply]


def _dump_result(reply: Sequence[Any]) -> ThreadData:
    index, records, blobs, writes = reply
    return ThreadData(list(index), _pairs(records), _pairs(blobs), list(writes))


class RedisCheckpoints(BaseFamily):
    """The checkpoints of one prefix (and TTL policy) in Redis: a circuit family.

    Made with :meth:`attached`, which returns the one family of these parameters on
    the connection's circuit (so every saver of the prefix shares its mirror).
    """

    name = "langgraph"

    def __init__(
        self,
        connection: Connection,
        *,
        prefix: str,
        ttl_ms: int,
        fixed: bool,
        refresh_on_read: bool = True,
    ) -> None:
        self.connection = connection
        self.keys = KeySchema(prefix)
        self.ttl: list[Any] = [ttl_ms, 1 if fixed else 0]
        # Reads slide the thread's TTL unless refresh_on_read=False (writes always do).
        self.read_ttl: list[Any] = self.ttl if refresh_on_read else [0, 1 if fixed else 0]
        self.params: dict[str, Any] = {"prefix": prefix, "ttl_ms": ttl_ms, "fixed": fixed}
        if not refresh_on_read:
            self.params["refresh_on_read"] = False
        circuit = connection.circuit
        if circuit is not None:  # one mirror for the checkpoints of this prefix and TTL
            config = connection.config
            self.mirror = circuit.mirror(
                ("langgraph", prefix, ttl_ms, fixed, refresh_on_read),
                lambda: MemoryCheckpoints(
                    ttl_ms=ttl_ms,
                    fixed=fixed,
                    max_threads=config.mirror_sessions,
                    max_bytes=config.mirror_max_bytes,
                    refresh_on_read=refresh_on_read,
                ),
            )

    @classmethod
    def attached(
        cls,
        connection: Connection,
        *,
        prefix: str,
        ttl_ms: int,
        fixed: bool,
        refresh_on_read: bool = True,
    ) -> RedisCheckpoints:
        """The family of these parameters on ``connection``'s circuit (made once)."""
        family = cls(
            connection, prefix=prefix, ttl_ms=ttl_ms, fixed=fixed, refresh_on_read=refresh_on_read
        )
        if connection.circuit is None:
            return family
        found = connection.circuit.attach(family)
        assert isinstance(found, RedisCheckpoints)
        return found

    @classmethod
    def from_params(cls, params: dict[str, Any], connection: Connection) -> RedisCheckpoints:
        return cls.attached(connection, **params)

    # -- operations as flows ----------------------------------------------------------------

    def run(self, op: Op) -> Flow[Any]:
        """``op`` on Redis."""
        if isinstance(op, Page):
            return self._page(op)
        if isinstance(op, Delete):
            return self._delete(op)
        if isinstance(op, Dump):
            return self._dump(op)
        if isinstance(op, Runs):
            return self._runs(op)
        if isinstance(op, DropRuns):
            return self._drop_runs(op)
        if isinstance(op, Threads):
            return self._threads(op)
        if isinstance(op, Unindex):
            return self._unindex(op)
        if isinstance(op, Forget):
            return self._count("forget", op.thread, list(op.members))
        if isinstance(op, Put):
            args = [*self.ttl, op.member, op.record, op.ns_prefix, op.keep, len(op.blobs)]
            return self._put(op, [*args, *_flat(op.blobs)])
        if isinstance(op, Writes):
            args = [*self.ttl, len(op.items)]
            for prefix, member, replace in op.items:
                args += (prefix, member, b"1" if replace else b"0")
            return self._count("writes", op.thread, args)
        if isinstance(op, Prune):
            return self._count("prune", op.thread, [op.keep])
        data = op.data
        args = [*self.ttl, len(data.index), *data.index]
        args += [len(data.records), *_flat(data.records.items())]
        args += [len(data.blobs), *_flat(data.blobs.items())]
        args += [len(data.writes), *data.writes]
        return self._count("load", op.thread, args)

    def _script(self, name: str, thread: str, args: list[Any]) -> Flow[Any]:
        replies = yield from run_script(
            LANGGRAPH[name],
            self.keys.checkpoints(thread),
            args,
            session_id=thread,
            cluster=self.connection.cluster,
        )
        return replies[0]

    def _put(self, op: Put, args: list[Any]) -> Flow[int]:
        """The put script and, for a checkpoint of a run, its run index entry (same round
        trip; the entry expires with the thread's TTL)."""
        escaped = escape_id(op.thread).encode()
        now = int(time.time() * 1000)
        extra: list[Any] = [("ZADD", self.keys.checkpoint_threads(), now, escaped)]
        if op.owner:
            extra.append(("ZADD", self.keys.checkpoint_threads(op.owner), now, escaped))
        if op.run:
            key = self.keys.checkpoint_run(op.run)
            extra.append(("ZADD", key, 0, escaped + b"\n" + op.member))
            if self.ttl[0] > 0:
                extra.append(("PEXPIRE", key, self.ttl[0]))
        replies = yield from run_script(
            LANGGRAPH["put"],
            self.keys.checkpoints(op.thread),
            args,
            *extra,
            session_id=op.thread,
            cluster=self.connection.cluster,
        )
        return int(replies[0])

    def _runs(self, op: Runs) -> Flow[list[list[bytes]]]:
        replies = yield [("ZRANGE", self.keys.checkpoint_run(run), 0, -1) for run in op.runs]
        check(replies)
        return [sorted(bytes(m) for m in reply) for reply in replies]

    def _threads(self, op: Threads) -> Flow[list[str]]:
        key = self.keys.checkpoint_threads(op.owner)
        replies = yield [("ZREVRANGE", key, op.offset, op.offset + op.count - 1)]
        check(replies)
        return [unescape_id(bytes(m).decode()) for m in replies[0]]

    def _unindex(self, op: Unindex) -> Flow[int]:
        escaped = [escape_id(t).encode() for t in op.threads]
        owners = ["", op.owner] if op.owner else [""]
        replies = yield [("ZREM", self.keys.checkpoint_threads(o), *escaped) for o in owners]
        check(replies)
        return int(replies[0])

    def _drop_runs(self, op: DropRuns) -> Flow[int]:
        replies = yield [("DEL", self.keys.checkpoint_run(run)) for run in op.runs]
        check(replies)
        return sum(int(r) for r in replies)

    def _count(self, name: str, thread: str, args: list[Any]) -> Flow[int]:
        return int((yield from self._script(name, thread, args)))

    def _page(self, op: Page) -> Flow[list[Entry]]:
        args = [b"(" + op.hi, b"[" + op.lo, op.count, *self.read_ttl]
        return _page_result((yield from self._script("page", op.thread, args)))

    def _dump(self, op: Dump) -> Flow[ThreadData]:
        return _dump_result((yield from self._script("dump", op.thread, [])))

    def _delete(self, op: Delete) -> Flow[int]:
        """The thread's keys, and every entry naming it in other slots: the thread
        index, the index of each user its checkpoints name, the run index (read from
        its records first: a deleted thread leaves no id of it behind)."""
        escaped = escape_id(op.thread).encode()
        owners, runs = index_entries(op.thread, (yield from self._dump(Dump(op.thread))))
        commands: list[Any] = [
            ("DEL", *self.keys.checkpoints(op.thread)),
            ("ZREM", self.keys.checkpoint_threads(), escaped),
        ]
        commands += [("ZREM", self.keys.checkpoint_threads(o), escaped) for o in sorted(owners)]
        commands += [("ZREM", self.keys.checkpoint_run(r), *runs[r]) for r in sorted(runs)]
        replies = yield commands
        check(replies, op.thread)
        return int(replies[0])

    # -- the rest of the circuit's family protocol ---------------------------------------------

    @staticmethod
    def key(op: Op) -> str | None:
        """The thread a write is ordered by at replay; None for a read."""
        if isinstance(op, READS):
            return None
        if isinstance(op, DropRuns):
            return RUNS_KEY
        return THREADS_KEY if isinstance(op, Unindex) else op.thread

    @staticmethod
    def size(op: Op) -> int:
        """Bytes a journaled ``op`` takes, roughly (without encoding it)."""
        if isinstance(op, (Runs, DropRuns)):
            return 64 + sum(len(run) for run in op.runs)
        if isinstance(op, Threads):
            return 64 + len(op.owner)
        if isinstance(op, Unindex):
            return 64 + len(op.owner) + sum(len(t) for t in op.threads)
        size = 64 + len(op.thread)
        if isinstance(op, Forget):
            size += sum(map(len, op.members))
        elif isinstance(op, Put):
            size += len(op.record) + sum(len(n) + len(v) for n, v in op.blobs)
        elif isinstance(op, Writes):
            size += sum(len(p) + len(m) for p, m, _ in op.items)
        elif isinstance(op, Load):
            data = op.data
            pairs = [*data.records.items(), *data.blobs.items()]
            size += sum(map(len, [*data.index, *data.writes, *_flat(pairs)]))
        return size

    # replay (in order, stopping at a temporary refusal), rejected and restarted (nothing
    # to repair: checkpoints keep no index elsewhere) are BaseFamily's.

    # -- the durable journal: JSON, bytes in base64 --------------------------------------------

    @staticmethod
    def encode(op: Write) -> bytes:
        return json.dumps(_encode(op), separators=(",", ":")).encode()

    @staticmethod
    def decode(data: bytes) -> Write:
        op = _decode(json.loads(data))
        if not isinstance(op, (Put, Writes, Delete, Prune, Load, Forget, DropRuns, Unindex)):
            raise ValueError("not a journaled checkpoint write")
        return op


_JOURNALED = {
    cls.__name__: cls
    for cls in (Put, Writes, Delete, Prune, Load, ThreadData, Forget, DropRuns, Unindex)
}


def _encode(value: Any) -> Any:
    """JSON of a write: bytes as {"b": base64}, lists as {"l": [...]}, dicts as
    {"d": [[key, value], ...]}, operations as {"o": name, "f": [fields...]}."""
    if isinstance(value, bytes):
        return {"b": base64.b64encode(value).decode("ascii")}
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    if isinstance(value, list):
        return {"l": [_encode(v) for v in value]}
    if isinstance(value, dict):
        return {"d": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if dataclasses.is_dataclass(value) and type(value).__name__ in _JOURNALED:
        fields = [_encode(getattr(value, f.name)) for f in dataclasses.fields(value)]
        return {"o": type(value).__name__, "f": fields}
    return value  # str, int, bool


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_decode(v) for v in value)
    if not isinstance(value, dict):
        return value
    if "b" in value:
        return base64.b64decode(value["b"], validate=True)
    if "l" in value:
        return [_decode(v) for v in value["l"]]
    if "d" in value:
        return {_decode(k): _decode(v) for k, v in value["d"]}
    return _JOURNALED[value["o"]](*(_decode(v) for v in value["f"]))


register_family(RedisCheckpoints.name, RedisCheckpoints.from_params)
# What the chatkeep command sees of LangGraph (listing, show, export, import, purge).
register_data_kind(CheckpointThreads())
register_data_kind(StoreNamespaces())
