"""The result cache in Redis: every operation as one flow (a circuit family).

An entry and its lock share a hash tag (one Cluster slot per entry); the namespace's
index, for ``clear()``, lives in a slot of its own and expires with its
longest-lived entry::

    <prefix>:cache:<ns>:{<sha256>}        STRING  flag byte + JSON value (PX ttl)
    <prefix>:cache:<ns>:{<sha256>}:lock   STRING  token of the one computing it
    <prefix>:cache:<ns>:idx               ZSET    sha256 -> expires_at (ms; inf = never)
    <prefix>:cache:namespaces             ZSET    <ns> -> last write ms (the CLI lists it)

Nothing of a cache is journaled (:meth:`RedisResults.key` is None for every
operation), so the family is not registered for replay by another process.
"""

from __future__ import annotations

from typing import Any

from ..clock import now_ms
from ..keys import KeySchema, escape_id
from ..redis.circuit import BaseFamily, Mirror
from ..redis.connection import Connection
from ..redis.errors import check
from ..redis.flows import Command, Flow, gather
from ..redis.replies import reply_str
from ..redis.scripts import Feature, run_script
from .ops import Claim, Claimed, Delete, Op, Release, Set

__all__ = ["CACHE", "RedisResults"]

CACHE = Feature(
    "cache",
    package="chatkeep.cache",
    scripts=("claim", "set", "index"),
    commands=("DEL", "ZADD", "ZREM", "ZRANGE"),
)

_CLEAR_PAGE = 500


class RedisResults(BaseFamily):
    """The cached results of one namespace of one prefix in Redis."""

    name = "cache"

    def __init__(
        self,
        connection: Connection,
        *,
        prefix: str,
        namespace: str,
        mirror: Mirror | None = None,
    ) -> None:
        self.connection = connection
        self.keys = KeySchema(prefix)
        self.namespace = namespace
        self.index = self.keys.cache_index(namespace)
        self.mirror = mirror
        self.params: dict[str, Any] = {"prefix": prefix, "namespace": namespace}

    # -- the circuit's family protocol --------------------------------------------------

    def run(self, op: Op) -> Flow[Any]:
        if isinstance(op, Claim):
            return self._claim(op)
        if isinstance(op, Set):
            return self._set(op)
        if isinstance(op, Release):
            return self._script("set", op.digest, ["", 0, op.token])
        if isinstance(op, Delete):
            return self._delete(op)
        return self._clear()

    @staticmethod
    def key(op: Op) -> str | None:
        """None: a cache journals nothing (its writes are kept in this process only)."""
        return None

    @staticmethod
    def size(op: Op) -> int:
        return 64 + len(op.data) if isinstance(op, Set) else 64

    def encode(self, op: Op) -> bytes:
        raise AssertionError("nothing of a result cache is journaled")

    # -- flows ----------------------------------------------------------------------------

    def _script(self, name: str, digest: str, args: list[Any]) -> Flow[list[Any]]:
        keys = list(self.keys.cache_entry(self.namespace, digest))
        return run_script(CACHE[name], keys, args, cluster=self.connection.cluster)

    def _claim(self, op: Claim) -> Flow[Claimed]:
        replies = yield from self._script("claim", op.digest, [op.token, op.lock_ms])
        data, claimed = replies[0]
        return Claimed(None if data is None else bytes(data), bool(claimed))

    def _set(self, op: Set) -> Flow[None]:
        """The entry, and its index entry (another slot) in the same round trip."""
        now = now_ms()
        expires = "inf" if op.ttl_ms <= 0 else now + op.ttl_ms
        index = run_script(
            CACHE["index"],
            [self.index],
            [now, op.digest, expires],
            ("ZADD", self.keys.cache_namespaces(), now, escape_id(self.namespace)),
            cluster=self.connection.cluster,
        )
        entry = self._script("set", op.digest, [op.data, op.ttl_ms, op.token])
        for outcome in (yield from gather([entry, index])):
            if isinstance(outcome, BaseException):
                raise outcome

    def _delete(self, op: Delete) -> Flow[bool]:
        entry, _ = self.keys.cache_entry(self.namespace, op.digest)
        replies = yield [("DEL", entry), ("ZREM", self.index, op.digest)]
        check(replies)
        return bool(replies[0])

    def _clear(self) -> Flow[int]:
        """Every entry of the namespace, a page of its index at a time (no KEYS/SCAN)."""
        removed = 0
        while True:
            replies = yield [("ZRANGE", self.index, 0, _CLEAR_PAGE - 1)]
            check(replies)
            digests = [reply_str(d) for d in replies[0]]
            if not digests:
                return removed
            commands: list[Command] = [
                ("DEL", self.keys.cache_entry(self.namespace, d)[0]) for d in digests
            ]
            replies = yield [*commands, ("ZREM", self.index, *digests)]
            check(replies)
            removed += sum(int(n) for n in replies[:-1])
