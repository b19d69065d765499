"""Cached results in this process: the ``memory://`` backend and the fallback mirror.

Entries in a dict with expiry; as a mirror, bounded (least recently used evicted past
``max_entries``), learning every value Redis returned or stored, and serving while
Redis is away. Nothing is journaled: a cache loses nothing that cannot be computed
again. Thread-safe.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from ..clock import now_ms
from .ops import Claim, Claimed, Delete, Op, Release, Set

__all__ = ["LocalCache"]


class LocalCache:
    """Entries of one cache namespace: digest -> (data, expires at ms or None)."""

    def __init__(self, max_entries: int | None = None) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[bytes, int | None]] = OrderedDict()
        self._lock = threading.Lock()

    def _get(self, digest: str) -> bytes | None:
        now = now_ms()
        with self._lock:
            found = self._entries.get(digest)
            if found is None:
                return None
            if found[1] is not None and found[1] <= now:
                del self._entries[digest]
                return None
            self._entries.move_to_end(digest)
            return found[0]

    def _set(self, digest: str, data: bytes, ttl_ms: int) -> None:
        expires = None if ttl_ms <= 0 else now_ms() + ttl_ms
        with self._lock:
            self._entries[digest] = (data, expires)
            self._entries.move_to_end(digest)
            while self._max is not None and len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def do(self, op: Op) -> Any:
        """Carry out ``op`` here (the ``memory://`` backend)."""
        if isinstance(op, Claim):
            return Claimed(self._get(op.digest), local=True)
        if isinstance(op, Set):
            self._set(op.digest, op.data, op.ttl_ms)
            return None
        if isinstance(op, Release):
            return None
        with self._lock:
            if isinstance(op, Delete):
                return self._entries.pop(op.digest, None) is not None
            count = len(self._entries)
            self._entries.clear()
            return count

    def serve(self, op: Op) -> tuple[Any, None]:
        """Carry out ``op`` here while Redis is away; nothing to journal."""
        return self.do(op), None

    def absorb(self, op: Op, result: Any) -> None:
        """Keep what Redis returned or stored."""
        if isinstance(op, Claim):
            if result.data is not None:
                self._set(op.digest, result.data, op.ttl_ms)
        elif not isinstance(op, Release):
            self.do(op)
