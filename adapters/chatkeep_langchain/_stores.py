"""The stores behind histories (internal).

A :class:`Backing` gives a history its synchronous :class:`ConversationStore` and
its :class:`AsyncConversationStore`, either the ones the user passed or stores
built lazily (no I/O at construction) from one :class:`StoreConfig`:

* the sync store is built once and shared by every history of the backing (one
  connection pool, one fallback mirror);
* ``redis.asyncio`` connections belong to the event loop that made them, so a
  built async store is made per running loop (one per loop, shared by every
  history of the backing that runs on that loop);
* a ``memory://`` configuration gets only a sync store: the async methods call it
  directly (it does no I/O), so sync and async calls see the same sessions.

Histories made from a URL or a client share backings through a process-wide
registry keyed by the configuration, so ``RedisChatMessageHistory(sid, url=...)``
made on every turn (the ``langchain_community`` idiom) still uses one pool and one
fallback mirror.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import MutableMapping
from typing import Any, Literal

from chatkeep import AsyncConversationStore, ConfigurationError, ConversationStore, StoreConfig
from chatkeep.redis import is_async_client

__all__ = ["AsyncMode", "Backing", "aclose_shared_stores", "close_shared_stores", "shared_backing"]

AsyncMode = Literal["native", "inline", "thread", "none"]


class Backing:
    """The sync/async store pair of a set of histories."""

    def __init__(
        self,
        *,
        store: ConversationStore | AsyncConversationStore | None = None,
        async_store: AsyncConversationStore | None = None,
        config: StoreConfig | None = None,
        client: Any = None,
        async_client: Any = None,
        hooks: dict[str, Any] | None = None,
    ) -> None:
        if store is not None and not isinstance(store, (ConversationStore, AsyncConversationStore)):
            raise ConfigurationError(
                "store must be a chatkeep ConversationStore or AsyncConversationStore, "
                f"not {type(store).__name__}"
            )
        if isinstance(store, AsyncConversationStore):
            if async_store is not None and async_store is not store:
                raise ConfigurationError("store and async_store are both asynchronous stores")
            store, async_store = None, store
        if async_store is not None and not isinstance(async_store, AsyncConversationStore):
            raise ConfigurationError(
                "async_store must be a chatkeep AsyncConversationStore, "
                f"not {type(async_store).__name__}"
            )
        if client is not None and is_async_client(client):
            if async_client is not None:
                raise ConfigurationError("client and async_client are both asynchronous clients")
            client, async_client = None, client
        given = store is not None or async_store is not None
        if given and (
            config is not None or client is not None or async_client is not None or hooks
        ):
            raise ConfigurationError("pass either stores, or a URL/client and store options")
        if not given and config is None:
            raise ConfigurationError("a backing needs stores or a configuration")

        self.config = config
        # The stores' own keywords (on_state_change, on_conflict, token_counter): given
        # to the first store built; its twins share its circuit and token counter.
        self._hooks: dict[str, Any] = dict(hooks or {})
        self._lock = threading.Lock()
        self._sync: ConversationStore | None = store
        self._async: AsyncConversationStore | None = async_store
        self._client = client
        self._async_client = async_client
        self._owns = not given
        self._per_loop: MutableMapping[asyncio.AbstractEventLoop, AsyncConversationStore]
        self._per_loop = weakref.WeakKeyDictionary()

        # What a sync store can be built from: a sync client, or the URL when no
        # client was given at all (never a default URL next to an async client).
        self._can_build_sync = config is not None and (client is not None or async_client is None)
        self.async_mode: AsyncMode
        if async_store is not None or async_client is not None:
            self.async_mode = "native"
        elif store is not None:
            self.async_mode = "inline" if store.connection is None else "thread"
        elif client is not None:
            self.async_mode = "thread"  # a sync client only: no loop-bound twin to build
        else:
            assert config is not None
            self.async_mode = "inline" if config.scheme == "memory" else "native"
        # Build now what needs no event loop, so a bad URL or option fails here;
        # building a store makes no connection.
        if self._can_build_sync:
            self.sync_store()
        elif async_client is not None:
            assert config is not None
            self._async = AsyncConversationStore(  # no sync twin
                config, client=async_client, **self._hooks
            )

    # -- the stores -----------------------------------------------------------------

    @property
    def prefix(self) -> str:
        if self.config is not None:
            return self.config.prefix
        store = self._sync if self._sync is not None else self._async
        assert store is not None
        return store.config.prefix

    def sync_store(self) -> ConversationStore | None:
        """The synchronous store (built on first use), or None if there is none."""
        if self._sync is None and self._can_build_sync:
            with self._lock:
                if self._sync is None:
                    assert self.config is not None
                    self._sync = ConversationStore(self.config, client=self._client, **self._hooks)
        return self._sync

    def async_store(self) -> AsyncConversationStore | None:
        """The asynchronous store for the running loop, or None when async calls go
        to the sync store (``async_mode`` ``inline`` or ``thread``)."""
        if self.async_mode != "native":
            return None
        if self._async is not None:
            return self._async
        assert self.config is not None
        # A store this backing builds next to its sync store is that store's twin: one
        # mirror, journal and circuit, so in an outage sync and async calls see the
        # same history and every journaled write is replayed once.
        twin = self.sync_store()
        with self._lock:
            if self._async_client is not None:  # (again, after aclose)
                hooks = self._hooks if twin is None else {}
                self._async = AsyncConversationStore(
                    self.config, client=self._async_client, twin=twin, **hooks
                )
                return self._async
            loop = asyncio.get_running_loop()
            made = self._per_loop.get(loop)
            if made is None:
                made = AsyncConversationStore(self.config, twin=twin)
                try:
                    self._per_loop[loop] = made
                except TypeError:  # a loop without weak references: keep it strongly
                    self._per_loop = {**self._per_loop, loop: made}
            return made

    # -- closing --------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync store this backing built (not stores or clients it was given)."""
        if not self._owns:
            return
        with self._lock:
            store, self._sync = self._sync, None
        if store is not None:
            store.close()

    async def aclose(self) -> None:
        """Close the async store(s) built for the running loop, then the sync store."""
        if not self._owns:
            return
        loop = asyncio.get_running_loop()
        with self._lock:
            stores = [self._per_loop.pop(loop)] if loop in self._per_loop else []
            if self._async is not None:
                stores.append(self._async)
                self._async = None
        for store in stores:
            await store.aclose()
        self.close()


_registry: dict[tuple[Any, ...], Backing] = {}
_registry_lock = threading.Lock()


def shared_backing(
    config: StoreConfig,
    client: Any = None,
    async_client: Any = None,
    hooks: dict[str, Any] | None = None,
) -> Backing:
    """The process-wide backing of one configuration (clients and hooks), made on first
    use. Pass the same client and hook objects every time to share one backing."""
    # The backing keeps the clients and hooks alive, so their ids stay theirs.
    key = (
        config,
        id(client),
        id(async_client),
        tuple((name, id(value)) for name, value in sorted((hooks or {}).items())),
    )
    with _registry_lock:
        backing = _registry.get(key)
        if backing is None:
            backing = Backing(config=config, client=client, async_client=async_client, hooks=hooks)
            _registry[key] = backing
        return backing


def close_shared_stores() -> None:
    """Close the synchronous stores that histories made from a URL or client share.

    Async stores are closed by :func:`aclose_shared_stores` on their loop.
    The next history made from a URL builds fresh stores.
    """
    with _registry_lock:
        backings = list(_registry.values())
        _registry.clear()
    for backing in backings:
        backing.close()


async def aclose_shared_stores() -> None:
    """Close the shared async stores of the running loop, and the shared sync stores."""
    with _registry_lock:
        backings = list(_registry.values())
        _registry.clear()
    for backing in backings:
        await backing.aclose()
