"""One sync chatkeep store plus its asyncio twins, one per event loop (internal).

Why this exists:

* LlamaIndex runs coroutines on many loops (``Memory``'s sync methods call
  ``asyncio_run``, which makes a loop per call in some situations; scripts call
  ``asyncio.run`` per turn), and ``redis.asyncio`` connections belong to the loop
  that opened them. A store made from a URL has one asyncio client per running loop
  (chatkeep's :class:`~chatkeep.redis.Connection` makes it, and closes it with its
  loop), so each loop gets an :class:`~chatkeep.AsyncConversationStore` twin of the
  sync store, closed when the loop shuts down (``asyncio.run``, ``asyncio.Runner`` and
  pytest-asyncio call ``loop.shutdown_asyncgens()``, which finalizes the small async
  generator parked on each loop here).
* All twins share the sync store's connection and fallback (mirror + journal),
  through chatkeep's ``twin=``. ``ChatMemoryBuffer`` reads through the sync store (in
  a worker thread) while ``aput`` writes through the async one: during an outage both
  must see the same recent history, and the journal must be replayed once.
* Given clients belong to the loop they were made for: a given ``aredis_client`` (or
  ``async_store``) serves the first loop that uses it; loops with no asyncio client of
  their own (other loops, or a store given only a sync client) run the sync store in
  worker threads.

Only ``chatkeep`` and ``chatkeep.redis`` are used (``store.connection`` says whether a
store made its own client).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any, TypeVar, cast

import redis
import redis.asyncio as redis_async

from chatkeep import (
    AsyncConversationStore,
    ConfigurationError,
    ConversationStore,
    InvalidArgumentError,
    StoreConfig,
    StoreStatus,
)
from chatkeep.redis import client_options

logger = logging.getLogger("chatkeep.llama_index")

__all__ = ["AsyncOps", "Stores", "describe_client", "made_from_url"]

T = TypeVar("T")


AsyncOps = AsyncConversationStore
"""What the adapters await: an :class:`~chatkeep.AsyncConversationStore`, or a
stand-in with the same methods (:class:`_Direct`, :class:`_Threaded`)."""


class _Direct:
    """Async face of a sync store whose backend does no I/O (``memory://``)."""

    def __init__(self, store: ConversationStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        return call


class _Threaded:
    """Async face of a sync store run in worker threads: for event loops with no
    asyncio client of their own (the given clients belong to another loop, or are
    synchronous)."""

    def __init__(self, store: ConversationStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            return await asyncio.to_thread(method, *args, **kwargs)

        return call


# -- clients --------------------------------------------------------------------------------

_COPIED = (
    "host", "port", "db", "username", "password", "socket_timeout", "socket_connect_timeout",
    "socket_keepalive", "socket_keepalive_options", "encoding", "encoding_errors",
    "decode_responses", "health_check_interval", "client_name", "credential_provider",
    "protocol",
)  # fmt: skip
_SSL_COPIED = (
    "ssl_keyfile", "ssl_certfile", "ssl_cert_reqs", "ssl_ca_certs", "ssl_ca_data",
    "ssl_ca_path", "ssl_check_hostname", "ssl_min_version", "ssl_ciphers", "ssl_password",
)  # fmt: skip


def _client_kwargs(client: Any) -> dict[str, Any] | None:
    """Constructor arguments for another client to the same server, or None when
    the client is not a plain ``Redis`` (TCP, TLS or unix socket) client."""
    if not isinstance(client, (redis.Redis, redis_async.Redis)):
        return None
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        return None
    kind = getattr(pool.connection_class, "__name__", "")
    given = pool.connection_kwargs
    kwargs = {name: given[name] for name in _COPIED if name in given}
    if kind == "Connection":
        pass
    elif kind == "SSLConnection":
        kwargs["ssl"] = True
        kwargs.update({name: given[name] for name in _SSL_COPIED if name in given})
    elif kind == "UnixDomainSocketConnection":
        kwargs.pop("host", None)
        kwargs.pop("port", None)
        kwargs["unix_socket_path"] = given.get("path")
    else:
        return None
    return kwargs


def sync_client_like(client: Any, config: StoreConfig) -> redis.Redis | None:
    """A new sync ``redis`` client for the server ``client`` (an asyncio one) talks to."""
    kwargs = _client_kwargs(client)
    if kwargs is None:
        return None
    options = client_options(config.connect_timeout, config.socket_timeout, asyncio=False)
    # The client's own settings win; chatkeep's (short timeouts, one quick retry) fill
    # what it left unset.
    kwargs = {**options, **{k: v for k, v in kwargs.items() if v is not None or k not in options}}
    return redis.Redis(**kwargs)


def describe_client(client: Any) -> str | None:
    """A credential-free URL naming the server of ``client`` (for ``to_dict``)."""
    kwargs = _client_kwargs(client)
    if kwargs is None:
        return None
    db = kwargs.get("db", 0)
    if "unix_socket_path" in kwargs:
        return f"unix://{kwargs['unix_socket_path']}?db={db}"
    scheme = "rediss" if kwargs.get("ssl") else "redis"
    return f"{scheme}://{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}/{db}"


def made_from_url(store: ConversationStore | AsyncConversationStore) -> bool:
    """Whether ``store`` talks to the Redis its config's URL names (it made its own
    clients, or keeps everything in memory), rather than through given clients."""
    connection = store.connection
    return connection is None or not connection.given


# -- per-loop twins ---------------------------------------------------------------------------


async def _closer(twin: AsyncConversationStore) -> AsyncIterator[None]:
    """Parked on a loop; finalized by ``loop.shutdown_asyncgens()``: closes the twin."""
    try:
        yield
    finally:
        await twin.aclose()


class _LoopEntry:
    __slots__ = ("closer", "ops")

    def __init__(self, ops: AsyncOps, closer: Any | None = None) -> None:
        self.ops = ops
        self.closer = closer


class Stores:
    """The sync store of an adapter, and its asyncio twins (one per running loop).

    Sources, in order: ``store=`` (used as given), ``redis_client=``, ``aredis_client=``
    (a sync client to the same server is derived), ``async_store=`` alone (its sync
    twin is made, on a derived client if it was given one), else a URL.
    """

    def __init__(
        self,
        *,
        url: str | None,
        redis_client: Any,
        aredis_client: Any,
        store: ConversationStore | None,
        async_store: AsyncConversationStore | None,
        options: dict[str, Any],
    ) -> None:
        if store is not None and not isinstance(store, ConversationStore):
            raise ConfigurationError("store= must be a chatkeep.ConversationStore")
        if async_store is not None and not isinstance(async_store, AsyncConversationStore):
            raise ConfigurationError("async_store= must be a chatkeep.AsyncConversationStore")
        self._own_sync_client: redis.Redis | None = None
        options = dict(options)
        counter = options.pop("token_counter", None)  # not a StoreConfig field
        if counter is not None and (store is not None or async_store is not None):
            raise ConfigurationError(
                "token_counter= goes to the given chatkeep store; configure it there"
            )
        if store is not None:
            _no_options(options, "store=")
            self.sync = store
            self._owns_sync = False
        elif redis_client is not None:
            self.sync = ConversationStore(
                StoreConfig.from_env(**options), client=redis_client, token_counter=counter
            )
            self._owns_sync = True
        elif aredis_client is not None:
            config = StoreConfig.from_env(**options)
            self.sync = ConversationStore(
                config, client=self._derived(aredis_client, config), token_counter=counter
            )
            self._owns_sync = True
        elif async_store is not None:
            _no_options(options, "async_store=")
            # Its sync twin: one connection, mirror and journal for both.
            config = async_store.config
            connection = async_store.connection
            client = None
            if connection is not None and connection.given:
                client = self._derived(connection.async_client, config)
            self.sync = ConversationStore(config, client=client, twin=async_store)
            self._owns_sync = True
        else:
            if url is not None:
                options = {**options, "url": url}
            # Options not given come from CHATKEEP_* (the URL also from REDIS_URL).
            self.sync = ConversationStore(StoreConfig.from_env(**options), token_counter=counter)
            self._owns_sync = True
        self.config: StoreConfig = self.sync.config
        self._aredis_client = aredis_client
        self._async_store = async_store
        self._user_loop: asyncio.AbstractEventLoop | None = None
        self._loops: dict[asyncio.AbstractEventLoop, _LoopEntry] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._threaded_logged = False

    def _derived(self, client: Any, config: StoreConfig) -> redis.Redis:
        """A sync client to the server of the asyncio ``client`` (closed with this)."""
        derived = sync_client_like(client, config)
        if derived is None:
            raise ConfigurationError(
                "cannot derive a sync Redis client from the asyncio one given; "
                "pass store= (or redis_client=) as well"
            )
        self._own_sync_client = derived
        return derived

    # -- async side -----------------------------------------------------------------------

    async def aio(self) -> AsyncOps:
        """The async store for the running event loop (made on first use)."""
        if self._closed:
            raise InvalidArgumentError("this chat store is closed")
        loop = asyncio.get_running_loop()
        entry = self._loops.get(loop)
        if entry is None:
            entry = await self._make_entry(loop)
            with self._lock:
                for old in [k for k in self._loops if k.is_closed()]:
                    del self._loops[old]
                entry = self._loops.setdefault(loop, entry)
        return entry.ops

    def _claim_user_twin(self, loop: asyncio.AbstractEventLoop) -> bool:
        if self._async_store is None and self._aredis_client is None:
            return False
        with self._lock:
            if self._user_loop is None:
                self._user_loop = loop
            return self._user_loop is loop

    async def _make_entry(self, loop: asyncio.AbstractEventLoop) -> _LoopEntry:
        connection = self.sync.connection
        if connection is None:  # memory://: no I/O to wait for
            return _LoopEntry(cast(AsyncOps, _Direct(self.sync)))
        if self._claim_user_twin(loop):
            if self._async_store is not None:
                return _LoopEntry(self._async_store)
            twin = AsyncConversationStore(self.config, client=self._aredis_client, twin=self.sync)
        elif not connection.given:  # this loop's asyncio client is made from the URL
            twin = AsyncConversationStore(self.config, twin=self.sync)
        else:  # given clients belong to their own loop: no asyncio client for this one
            if not self._threaded_logged:
                self._threaded_logged = True
                logger.info(
                    "no asyncio Redis client for this event loop (the given clients belong "
                    "to another, or are synchronous); async methods run the sync store in "
                    "worker threads (pass aredis_client=, or a URL)"
                )
            return _LoopEntry(cast(AsyncOps, _Threaded(self.sync)))
        closer = _closer(twin)
        await closer.__anext__()
        return _LoopEntry(twin, closer)

    # -- lifecycle ------------------------------------------------------------------------

    def status(self) -> StoreStatus:
        return self.sync.status()

    @property
    def degraded(self) -> bool:
        """True while calls are served by the fallback (no I/O to find out).

        Removals are removals by position through the store in an outage too: the
        fallback journals the removal of that message (by id, with the session's
        version) and refuses a position it does not hold. What the adapters skip
        while degraded is only housekeeping (dropping an emptied session)."""
        return self.sync.status().degraded

    def close(self) -> None:
        """Replay the journal and close what the adapter made (sync store, clients).
        Twins of running event loops close when their loop shuts down."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            entries, self._loops = self._loops, {}
        for loop, entry in entries.items():
            # A loop that is idle (e.g. the one llama-index's ``asyncio_run`` keeps for
            # sync calls) can close its twin now; a running one closes it at shutdown.
            if entry.closer is not None and not loop.is_closed() and not loop.is_running():
                with contextlib.suppress(RuntimeError):  # started meanwhile elsewhere
                    loop.run_until_complete(entry.closer.aclose())
        if self._owns_sync:
            self.sync.close()
        else:
            self.sync.flush()
        if self._own_sync_client is not None:
            self._own_sync_client.close()

    async def aclose(self) -> None:
        """Close the running loop's twin, then everything :meth:`close` closes."""
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        with self._lock:
            entry = self._loops.pop(loop, None)
        if entry is not None:
            await entry.ops.flush()
            if entry.closer is not None:
                await entry.closer.aclose()
        await asyncio.to_thread(self.close)  # nothing to wait for unless Redis is down


def _no_options(options: dict[str, Any], what: str) -> None:
    if options:
        raise ConfigurationError(
            "store options (" + ", ".join(sorted(options)) + f") cannot be combined with {what}; "
            "configure that chatkeep store instead"
        )
