"""A LangChain key-value store (``BaseStore[str, Any]``) on chatkeep's long-term memory.

>>> from chatkeep_langchain import RedisStore
>>> store = RedisStore(url="memory://", namespace="docs")
>>> store.mset([("a", {"x": 1}), ("b", b"raw")])
>>> store.mget(["a", "b", "c"])
[{'x': 1}, b'raw', None]
>>> list(store.yield_keys(prefix="a"))
['a']

Values are JSON values under chatkeep's policy; ``bytes`` come back as ``bytes``, so it
also serves where a ``ByteStore`` is expected (e.g. ``CacheBackedEmbeddings``). Keys
live in one namespace with that namespace's TTL (``ttl=`` overrides it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

from langchain_core.stores import BaseStore
from typing_extensions import Unpack

from chatkeep import AsyncMemoryStore, BackendOptions, ConfigurationError, MemoryStore, Namespace

__all__ = ["MemoryOptions", "RedisStore"]


class MemoryOptions(BackendOptions, total=False):
    """What :class:`RedisStore` gives the :class:`chatkeep.MemoryStore` it builds: the
    store options (``key_prefix``; ``prefix`` is its older name), ``client``, ``ttls``."""

    key_prefix: str
    prefix: str
    client: Any
    ttls: Mapping[str, float | None] | None


class RedisStore(BaseStore[str, Any]):
    """``mget``/``mset``/``mdelete``/``yield_keys`` and their async twins on a
    :class:`chatkeep.MemoryStore` (one round trip per batch)."""

    def __init__(
        self,
        *,
        store: MemoryStore | None = None,
        async_store: AsyncMemoryStore | None = None,
        url: str | None = None,
        namespace: Namespace = "langchain",
        ttl: float | None = None,
        **options: Unpack[MemoryOptions],
    ) -> None:
        if store is None and async_store is None:
            store = MemoryStore(url=url, **options) if url else MemoryStore(**options)
        elif url is not None or options:
            raise ConfigurationError("pass either stores, or a URL and store options")
        self.store = store
        self.async_store = async_store
        self.namespace = namespace
        self._ttl: dict[str, Any] = {} if ttl is None else {"ttl": ttl}

    def _sync(self) -> MemoryStore:
        if self.store is None:
            raise ConfigurationError("this RedisStore has only an async store: use the a* methods")
        return self.store

    def mget(self, keys: Sequence[str]) -> list[Any | None]:
        return self._sync().mget(self.namespace, list(keys))

    def mset(self, key_value_pairs: Sequence[tuple[str, Any]]) -> None:
        self._sync().mput(self.namespace, dict(key_value_pairs), **self._ttl)

    def mdelete(self, keys: Sequence[str]) -> None:
        self._sync().mdelete(self.namespace, list(keys))

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        yield from self._sync().list(self.namespace, prefix=prefix or "")

    async def amget(self, keys: Sequence[str]) -> list[Any | None]:
        if self.async_store is None:
            return self.mget(keys)
        return await self.async_store.mget(self.namespace, list(keys))

    async def amset(self, key_value_pairs: Sequence[tuple[str, Any]]) -> None:
        if self.async_store is None:
            return self.mset(key_value_pairs)
        await self.async_store.mput(self.namespace, dict(key_value_pairs), **self._ttl)
        return None

    async def amdelete(self, keys: Sequence[str]) -> None:
        if self.async_store is None:
            return self.mdelete(keys)
        await self.async_store.mdelete(self.namespace, list(keys))
        return None

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        if self.async_store is None:
            keys = self._sync().list(self.namespace, prefix=prefix or "")
        else:
            keys = await self.async_store.list(self.namespace, prefix=prefix or "")
        for key in keys:
            yield key
