"""A store of your own on chatkeep.redis: short notes with a TTL.

Each operation is written once, as a flow; the sync and asyncio stores only drive it.
Every call goes through the one circuit of its Redis, shared with every chatkeep store
of the process: while Redis is unreachable, notes are served from a local mirror and
writes are journaled, then replayed once.

    python examples/custom_store.py          # Redis at $REDIS_URL or localhost:6379, else memory
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any

from chatkeep.redis import (
    Awaiting,
    BaseFamily,
    Blocking,
    Flow,
    RedisBacked,
    async_method,
    check,
    guarded,
    sync_method,
)


@dataclass(frozen=True)
class Op:
    kind: str  # "set" or "get"
    key: str
    text: str = ""


class LocalNotes:
    """Notes in this process: the memory:// backend and the fallback mirror."""

    def __init__(self) -> None:
        self.notes: dict[str, str] = {}

    def do(self, op: Op) -> str | None:
        if op.kind == "set":
            self.notes[op.key] = op.text
            return op.text
        return self.notes.get(op.key)

    def absorb(self, op: Op, result: Any) -> None:  # learn from what Redis did
        if result is not None:
            self.notes[op.key] = result

    def serve(self, op: Op) -> tuple[Any, Op | None]:  # Redis is away: the journal keeps sets
        return self.do(op), (op if op.kind == "set" else None)


class RedisNotes(BaseFamily):
    """Notes in Redis, as the circuit sees them."""

    name = "notes-example"

    def __init__(self, prefix: str, mirror: LocalNotes) -> None:
        self.params = {"prefix": prefix}
        self.mirror = mirror

    def run(self, op: Op) -> Flow[Any]:
        key = f"{self.params['prefix']}:note:{op.key}"
        if op.kind == "set":
            check((yield [("SET", key, op.text, "EX", 3600)]))
            return op.text
        (found,) = yield [("GET", key)]
        return None if found is None else found.decode()

    def key(self, op: Op) -> str | None:
        return op.key if op.kind == "set" else None  # writes are replayed in order per key

    def encode(self, op: Op) -> bytes:
        return json.dumps([op.kind, op.key, op.text]).encode()

    def decode(self, data: bytes) -> Op:
        return Op(*json.loads(data))


class _Notes(RedisBacked):
    """The policy, once."""

    def __init__(self, url: str, **options: Any) -> None:
        self._local = LocalNotes()  # memory:// keeps the notes here
        asynchronous = isinstance(self, Awaiting)
        connection = self._open(None, {"url": url, **options}, None, asyncio=asynchronous)
        self._family: Any = None
        if connection is not None:
            circuit = connection.circuit  # None with fallback="raise"
            mirror = self._local
            family = RedisNotes(self.config.prefix, mirror)
            if circuit is not None:  # one mirror and family per prefix, shared by the twins
                mirror = circuit.mirror(("notes", self.config.prefix), LocalNotes)
                family = circuit.attach(RedisNotes(self.config.prefix, mirror))
            self._family = family

    def _call(self, op: Op) -> Flow[Any]:
        if self._family is None:
            return self._local.do(op)
        return (yield from guarded(self._connection, self._family, op))

    def _set(self, key: str, text: str) -> Flow[str]:
        """Keep ``text`` under ``key`` for an hour."""
        return (yield from self._call(Op("set", key, text)))

    def _get(self, key: str) -> Flow[str | None]:
        """The note under ``key``, or None."""
        return (yield from self._call(Op("get", key)))


class Notes(_Notes, Blocking):
    set = sync_method(_Notes._set)
    get = sync_method(_Notes._get)


class AsyncNotes(_Notes, Awaiting):
    set = async_method(_Notes._set)
    get = async_method(_Notes._get)


def main() -> None:
    url = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
    with Notes(url, key_prefix="chatkeep-example") as notes:
        notes.set("greeting", "hello")
        print(
            "sync:",
            notes.get("greeting"),
            "| degraded:",
            notes.connection is not None
            and (notes.connection.circuit is not None and notes.connection.circuit.degraded),
        )

    async def twin() -> None:
        async with AsyncNotes(url, key_prefix="chatkeep-example") as notes:
            print("async:", await notes.get("greeting"))

    asyncio.run(twin())


if __name__ == "__main__":
    main()
