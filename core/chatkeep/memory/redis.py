"""Long-term memory in Redis: every operation as one flow (a circuit family).

A namespace's keys share one hash tag, so each script runs on one Cluster slot::

    <prefix>:mem:{<ns>}:i         ZSET  key -> expires_at (ms; inf = never)
    <prefix>:mem:{<ns>}:v:<key>   HASH  d JSON value, b bytes tagged, t TTL ms, c created,
                                        u updated, e embeddings (a chatkeep.vectors blob;
                                        only when embedded)
    <prefix>:mem:namespaces       ZSET  <ns> -> last write ms (another slot, same round trip):
                                        the namespaces the chatkeep command lists

Writes are ordered by namespace when journaled; a put or delete replayed twice leaves
what one run leaves.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from ..clock import now_ms
from ..keys import KeySchema
from ..redis.circuit import BaseFamily, Mirror, register_family
from ..redis.connection import Connection
from ..redis.errors import check
from ..redis.flows import Command, Flow
from ..redis.replies import reply_str
from ..redis.scripts import Feature, run_script
from .ops import Delete, Found, Get, Op, Put, Ttl, Vectors

__all__ = ["MEMORY", "RedisMemory"]

MEMORY = Feature(
    "memory",
    package="chatkeep.memory",
    scripts=("put", "get", "delete", "list", "vectors"),
    commands=("PTTL", "ZADD"),
)


def _flag(value: Any) -> bool:
    return value in (1, b"1", "1")


class RedisMemory(BaseFamily):
    """The long-term memory of one prefix in Redis."""

    name = "memory"

    def __init__(
        self, connection: Connection, *, prefix: str, sliding: bool, mirror: Mirror | None = None
    ) -> None:
        self.connection = connection
        self.keys = KeySchema(prefix)
        self.sliding = sliding
        self.mirror = mirror
        self.params: dict[str, Any] = {"prefix": prefix, "sliding": sliding}

    @classmethod
    def from_params(cls, params: dict[str, Any], connection: Connection) -> RedisMemory:
        return cls(connection, prefix=params["prefix"], sliding=params["sliding"])

    # -- the circuit's family protocol --------------------------------------------------

    def run(self, op: Op) -> Flow[Any]:
        if isinstance(op, Ttl):
            return self._ttl(op)
        index = self.keys.memory_index(op.ns)
        now = now_ms()
        if isinstance(op, Put):
            args: list[Any] = [now, 0 if self.sliding else 1]
            vectors = op.vectors or {}
            for key, data, tagged, ttl in op.items:
                args += [key, data, 1 if tagged else 0, ttl, vectors.get(key, b"")]
            keys = [self.keys.memory_value(op.ns, key) for key, *_ in op.items]
            registered = ("ZADD", self.keys.memory_namespaces(), now, op.ns)
            return self._script("put", [index, *keys], args, int, registered)
        if isinstance(op, Get):
            keys = [self.keys.memory_value(op.ns, key) for key in op.keys]
            checked = op.vectors is not None  # a search's read: the embeddings too
            args = [now, 1 if self.sliding and op.refresh else 0, 1 if checked else 0, *op.keys]
            return self._script("get", [index, *keys], args, _found_with_e if checked else _found)
        if isinstance(op, Vectors):
            keys = [self.keys.memory_value(op.ns, key) for key in op.keys]
            return self._script("vectors", keys, [], _blobs)
        if isinstance(op, Delete):
            keys = [self.keys.memory_value(op.ns, key) for key in op.keys]
            return self._script("delete", [index, *keys], list(op.keys), int)
        return self._script("list", [index], [now, op.prefix], _listed)

    @staticmethod
    def key(op: Op) -> str | None:
        return op.ns if isinstance(op, (Put, Delete)) else None

    @staticmethod
    def size(op: Op) -> int:
        if isinstance(op, Put):
            vectors = sum(map(len, (op.vectors or {}).values()))
            return (
                64
                + len(op.ns)
                + vectors
                + sum(len(key) + len(data) + 16 for key, data, *_ in op.items)
            )
        keys = op.keys if isinstance(op, (Get, Delete, Vectors)) else []
        return 64 + len(op.ns) + sum(len(key) + 8 for key in keys)

    @staticmethod
    def encode(op: Op) -> bytes:
        if isinstance(op, Put):
            items = [[k, base64.b64encode(d).decode(), t, ttl] for k, d, t, ttl in op.items]
            fields: dict[str, Any] = {"k": "put", "ns": op.ns, "items": items}
            if op.vectors:
                fields["e"] = {k: base64.b64encode(v).decode() for k, v in op.vectors.items()}
            return json.dumps(fields).encode()
        assert isinstance(op, Delete)
        return json.dumps({"k": "delete", "ns": op.ns, "keys": op.keys}).encode()

    @staticmethod
    def decode(data: bytes) -> Op:
        fields = json.loads(data)
        if fields["k"] == "put":
            items = [
                (k, base64.b64decode(d), bool(t), int(ttl)) for k, d, t, ttl in fields["items"]
            ]
            vectors = {k: base64.b64decode(v) for k, v in fields.get("e", {}).items()}
            return Put(fields["ns"], items, vectors or None)
        return Delete(fields["ns"], list(fields["keys"]))

    # -- flows ----------------------------------------------------------------------------

    def _script(
        self, name: str, keys: list[str], args: list[Any], result: Any, *extra: Command
    ) -> Flow[Any]:
        replies = yield from run_script(
            MEMORY[name], keys, args, *extra, cluster=self.connection.cluster
        )
        return result(replies[0])

    def _ttl(self, op: Ttl) -> Flow[float | None]:
        replies = yield [("PTTL", self.keys.memory_value(op.ns, op.key))]
        check(replies)
        pttl = int(replies[0])
        return 0.0 if pttl == -2 else None if pttl == -1 else pttl / 1000


def _found(reply: list[Any]) -> list[Found]:
    found: list[Found] = []
    for i in range(0, len(reply), 3):
        data, tagged, ttl = reply[i : i + 3]
        found.append(None if data is None else (bytes(data), _flag(tagged), int(ttl or 0)))
    return found


def _found_with_e(reply: list[Any]) -> tuple[list[Found], list[bytes | None]]:
    """Values and their embeddings as they are now (a search's read)."""
    found = _found([field for i in range(0, len(reply), 4) for field in reply[i : i + 3]])
    return found, _blobs(reply[3::4])


def _blobs(reply: list[Any]) -> list[bytes | None]:
    return [None if blob is None else bytes(blob) for blob in reply]


def _listed(reply: list[Any]) -> list[str]:
    return sorted(reply_str(member) for member in reply)


register_family(RedisMemory.name, RedisMemory.from_params)
