"""Backends, chosen by URL scheme through one small registry.

``redis://``, ``rediss://``, ``unix://`` -> Redis; ``redis+cluster://h1:p1,h2:p2``
-> Redis Cluster; ``redis+sentinel://h1:p1,h2:p2/service_name`` -> the master of a
Sentinel-watched service; ``memory://`` -> in-process. Unknown schemes raise
:class:`chatkeep.ConfigurationError`.
"""

from __future__ import annotations

from typing import Any

from ..codec import RecordDecoder
from ..config import StoreConfig
from ..keys import KeySchema
from .memory import MemoryBackend

__all__ = ["SCHEMES", "build_backend"]

SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "redis+sentinel", "memory")


def build_backend(
    config: StoreConfig, client: Any, decoder: RecordDecoder, *, asyncio: bool
) -> Any:
    """The primary backend for ``config`` (or for a ready ``client``)."""
    fixed = config.ttl_mode == "fixed"
    ttl_ms = 0 if config.ttl is None else round(config.ttl * 1000)
    if client is None and config.scheme == "memory":
        memory = MemoryBackend(ttl_ms=ttl_ms, fixed=fixed, max_messages=config.max_messages or 0)
        return AsyncMemoryBackend(memory) if asyncio else memory

    from .redis import AsyncRedisBackend, RedisBackend, RedisProtocol, client_factory

    protocol = RedisProtocol(
        keys=KeySchema(config.prefix),
        ttl_ms=ttl_ms,
        fixed=fixed,
        max_messages=config.max_messages or 0,
        decoder=decoder,
    )
    backend_class = AsyncRedisBackend if asyncio else RedisBackend
    if client is not None:
        return backend_class(client, protocol, owns_client=False)
    factory = client_factory(config, asyncio=asyncio)
    return backend_class(None, protocol, owns_client=True, factory=factory)


class AsyncMemoryBackend:
    """:class:`MemoryBackend` behind the async interface (no I/O, so no threads)."""

    name = "memory"

    def __init__(self, memory: MemoryBackend) -> None:
        self.memory = memory

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.memory, name)

        async def call(*args: Any) -> Any:
            return method(*args)

        return call
