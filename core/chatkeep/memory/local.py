"""Long-term memory in this process: the ``memory://`` backend and the fallback mirror.

One class serves both. As the backend of a ``memory://`` store it keeps every value for
the life of the process (until it expires). As the mirror of a Redis store it is
bounded (``max_entries`` values, ``max_bytes`` bytes of data; least recently used go
first), learns from every Redis result (write-through, and values seen by reads), and
serves calls while Redis is unreachable: reads see what this process wrote or read,
and every write is journaled for replay.

Thread-safe: one lock guards all state; no I/O happens under it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from ..clock import now_ms
from .ops import Delete, Found, Get, List, Op, Put, Vectors

__all__ = ["LocalMemory"]


@dataclass(slots=True)
class _Entry:
    data: bytes
    tagged: bool
    ttl_ms: int
    created: int
    expires: int | None
    vector: bytes | None = None  # the value's embeddings (chatkeep.vectors blob)

    @property
    def size(self) -> int:
        return len(self.data) + (len(self.vector) if self.vector else 0)


class LocalMemory:
    """Values in a dict, by (namespace, key)."""

    def __init__(
        self, *, sliding: bool, max_entries: int | None = None, max_bytes: int | None = None
    ) -> None:
        self._sliding = sliding
        self._max = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._by_ns: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    # -- helpers (call with the lock held) ----------------------------------------------

    def _live(self, ns: str, key: str, now: int) -> _Entry | None:
        entry = self._entries.get((ns, key))
        if entry is None:
            return None
        if entry.expires is not None and entry.expires <= now:
            self._drop(ns, key)
            return None
        self._entries.move_to_end((ns, key))
        return entry

    def _drop(self, ns: str, key: str) -> bool:
        entry = self._entries.pop((ns, key), None)
        if entry is None:
            return False
        self._bytes -= entry.size
        keys = self._by_ns.get(ns)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_ns[ns]
        return True

    def _store(
        self,
        ns: str,
        key: str,
        found: tuple[bytes, bool, int],
        now: int,
        vector: bytes | bool | None = None,
    ) -> None:
        """Keep a value; ``vector`` is its embeddings, or True to keep the ones held
        if the value is unchanged (a value read back from Redis)."""
        data, tagged, ttl = found
        old = self._live(ns, key, now)
        created = now
        if old is not None:
            created = old.created
            self._bytes -= old.size
        if vector is True:
            vector = old.vector if old is not None and old.data == data else None
        expires = None if ttl <= 0 else (now if self._sliding else created) + ttl
        entry = _Entry(data, tagged, ttl, created, expires, vector or None)
        self._entries[(ns, key)] = entry
        self._entries.move_to_end((ns, key))
        self._by_ns.setdefault(ns, set()).add(key)
        self._bytes += entry.size
        self._evict()

    def _evict(self) -> None:
        while len(self._entries) > 1 and (
            (self._max is not None and len(self._entries) > self._max)
            or (self._max_bytes is not None and self._bytes > self._max_bytes)
        ):
            oldest_ns, oldest_key = next(iter(self._entries))
            self._drop(oldest_ns, oldest_key)

    # -- operations ---------------------------------------------------------------------

    def do(self, op: Op) -> Any:
        """Carry out ``op`` here (the ``memory://`` backend)."""
        now = now_ms()
        with self._lock:
            if isinstance(op, Put):
                vectors = op.vectors or {}
                for key, data, tagged, ttl in op.items:
                    self._store(op.ns, key, (data, tagged, ttl), now, vectors.get(key))
                return len(op.items)
            if isinstance(op, Vectors):
                held = [self._live(op.ns, key, now) for key in op.keys]
                return [None if entry is None else entry.vector for entry in held]
            if isinstance(op, Get):
                found: list[Found] = []
                current: list[bytes | None] = []
                for key in op.keys:
                    entry = self._live(op.ns, key, now)
                    current.append(None if entry is None else entry.vector)
                    if entry is None:
                        found.append(None)
                        continue
                    if self._sliding and op.refresh and entry.ttl_ms > 0:
                        entry.expires = now + entry.ttl_ms
                    found.append((entry.data, entry.tagged, entry.ttl_ms))
                # a search's read also answers the embeddings as they are now (ops.Get)
                return found if op.vectors is None else (found, current)
            if isinstance(op, Delete):
                return sum(self._drop(op.ns, key) for key in op.keys)
            if isinstance(op, List):
                return [
                    key
                    for key in sorted(self._by_ns.get(op.ns, ()))
                    if key.startswith(op.prefix) and self._live(op.ns, key, now) is not None
                ]
            entry = self._live(op.ns, op.key, now)
            if entry is None:
                return 0.0
            return None if entry.expires is None else max(entry.expires - now, 0) / 1000

    # -- mirror: serve while Redis is away, learn from what Redis did ---------------------

    def serve(self, op: Op) -> tuple[Any, Op | None]:
        """Carry out ``op`` here; its result and the write to journal (every write: the
        mirror may not hold what Redis holds)."""
        return self.do(op), op if isinstance(op, (Put, Delete)) else None

    def absorb(self, op: Op, result: Any) -> None:
        """Keep the effect of ``op``, which Redis carried out with ``result``."""
        if isinstance(op, (Put, Delete)):
            self.do(op)
        elif isinstance(op, Vectors):
            # a search's embeddings, kept for the values held (a search in an outage
            # ranks them too); a value read back changed drops its copy (_store)
            now = now_ms()
            with self._lock:
                for key, blob in zip(op.keys, result, strict=True):
                    entry = self._live(op.ns, key, now)
                    if entry is not None and blob is not None and blob != entry.vector:
                        self._bytes += len(blob) - (len(entry.vector) if entry.vector else 0)
                        entry.vector = blob
                self._evict()
        elif isinstance(op, Get):
            now = now_ms()
            with self._lock:
                found_list, current = result if op.vectors is not None else (result, None)
                for i, (key, found) in enumerate(zip(op.keys, found_list, strict=True)):
                    if found is None:
                        self._drop(op.ns, key)
                    else:
                        vector = current[i] if current is not None else None
                        self._store(op.ns, key, found, now, vector=vector or True)
