"""Long-term memory: :class:`MemoryStore` and :class:`AsyncMemoryStore`.

* :mod:`.ops`: the operations (put, get, delete, list, ttl);
* :mod:`.redis`: :class:`RedisMemory`, the Redis family (scripts of Feature ``memory``);
* :mod:`.local`: :class:`LocalMemory`, the ``memory://`` backend and the fallback mirror;
* :mod:`.store`: the stores (policy once, thin sync and asyncio twins).
"""

from __future__ import annotations

from .store import DEFAULT_MEMORY_TTLS, AsyncMemoryStore, MemoryHit, MemoryStore, Namespace

__all__ = ["DEFAULT_MEMORY_TTLS", "AsyncMemoryStore", "MemoryHit", "MemoryStore", "Namespace"]
