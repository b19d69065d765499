"""The result cache: :class:`ResultCache` and :class:`AsyncResultCache`.

* :mod:`.ops`: the operations (claim, set, release, delete, clear);
* :mod:`.redis`: :class:`RedisResults`, the Redis family (scripts of Feature ``cache``);
* :mod:`.local`: :class:`LocalCache`, the ``memory://`` backend and the fallback mirror;
* :mod:`.store`: the caches (policy once, thin sync and asyncio twins).
"""

from __future__ import annotations

from .store import DEFAULT_CACHE_TTL, AsyncResultCache, ResultCache

__all__ = ["DEFAULT_CACHE_TTL", "AsyncResultCache", "ResultCache"]
