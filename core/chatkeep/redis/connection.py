"""One Redis, as every chatkeep store sees it: clients, round trips and the circuit.

A :class:`Connection` holds

* the synchronous client: given, or made from the URL on first use (a
  ``RedisCluster`` contacts the cluster when made, and a store must start while
  Redis is down);
* asyncio clients: a given one is used as it is; one made from the URL is made per
  running event loop (asyncio connections belong to the loop that opened them) and
  closed when that loop shuts down, so ``asyncio.run`` twice just works;
* the :class:`~chatkeep.redis.Circuit` of this Redis (when the fallback is on);
* :meth:`send`/:meth:`asend`: one round trip of commands on a pooled connection, the
  replies in order with error replies in place, and every driver exception
  translated (:func:`chatkeep.redis.translate`);
* :meth:`run`/:meth:`arun`: the flow drivers bound to this connection.

:func:`connect` hands out one shared connection per Redis (per URL and connection
settings, or per given client) to every store of the process, counted: the last
store to close it closes what chatkeep made.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import redis as redis_sync
import redis.asyncio as redis_async
from redis import exceptions as rex

from ..config import StoreConfig
from ..errors import ConfigurationError
from .clients import client_factory, is_async_client, is_cluster_client, sentinels_of
from .errors import translate
from .flows import Command, Flow, arun, run

__all__ = ["Connection", "connect"]

T = TypeVar("T")

_DRIVER_ERRORS = (rex.RedisError, rex.RedisClusterException, OSError, ConnectionError, TimeoutError)


def _raise_translated(exc: BaseException) -> None:
    raise translate(exc) from exc


def _exchange(connection: Any, commands: list[Command]) -> list[Any]:
    connection.send_packed_command(connection.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(connection.read_response())
        except rex.ResponseError as exc:  # an error reply: the next replies still come
            replies.append(exc)
    return replies


async def _aexchange(connection: Any, commands: list[Command]) -> list[Any]:
    await connection.send_packed_command(connection.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(await connection.read_response())
        except rex.ResponseError as exc:
            replies.append(exc)
    return replies


def _send_pooled(client: Any, commands: list[Command]) -> list[Any]:
    """One round trip on a pooled connection: what a redis-py pipeline does, without
    building one (its bookkeeping costs about as much as a short read)."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        replies: list[Any] = connection.retry.call_with_retry(
            lambda: _exchange(connection, commands), lambda _: connection.disconnect()
        )
        return replies
    except BaseException:
        connection.disconnect()  # replies may still be on their way: never reuse it
        raise
    finally:
        pool.release(connection)


async def _asend_pooled(client: Any, commands: list[Command]) -> list[Any]:
    async def drop(_: Any) -> None:
        await connection.disconnect()

    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        replies: list[Any] = await connection.retry.call_with_retry(
            lambda: _aexchange(connection, commands), drop
        )
        return replies
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)


def _one(client: Any, command: Command) -> Any:
    try:
        return client.execute_command(*command)
    except rex.ResponseError as exc:
        return exc


async def _aone(client: Any, command: Command) -> Any:
    try:
        return await client.execute_command(*command)
    except rex.ResponseError as exc:
        return exc


def _single(client: Any) -> bool:
    """A client bound to one connection (not pooled)."""
    return getattr(client, "connection", None) is not None


def _send_each(client: Any, commands: list[Command]) -> list[Any]:
    """A Cluster (whose nodes each hold some keys) or a single-connection client: one
    command at a time through the client, which routes and retries it."""
    if _single(client):
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        return replies
    return [_one(client, command) for command in commands]


async def _asend_each(client: Any, commands: list[Command]) -> list[Any]:
    if _single(client):
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies
    return [await _aone(client, command) for command in commands]


async def _close_at_shutdown(client: Any) -> AsyncIterator[None]:
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # shutting down: nothing left to tell
            await client.aclose()
            for sentinel in sentinels_of(client):
                await sentinel.aclose()


def _closed_with_loop(client: Any) -> AsyncIterator[None]:
    """An async generator parked on the running loop that closes ``client`` there when
    the loop shuts down (``asyncio.run``/``Runner`` call ``shutdown_asyncgens()``
    while the loop still runs). Calling ``__anext__`` registers it with the loop;
    stepping it once, synchronously, parks it inside its ``try``."""
    closer = _close_at_shutdown(client)
    step: Any = closer.__anext__()
    with contextlib.suppress(StopIteration):
        step.send(None)
    return closer


def _check_client(client: object, expected: tuple[type, ...], what: str) -> None:
    if not isinstance(client, expected):
        raise ConfigurationError(
            f"{what} needs a {' or '.join(t.__module__ + '.' + t.__name__ for t in expected)} "
            f"client, got {type(client).__module__}.{type(client).__name__}"
        )


class Connection:
    """One Redis: the sync client, the asyncio clients, and its circuit.

    Made from a :class:`~chatkeep.StoreConfig` (its URL and timeouts) or around given
    clients (``client=`` sync, ``async_client=`` asyncio; left open by :meth:`close`).
    Prefer :func:`connect`, which shares one connection per Redis in a process.
    """

    def __init__(
        self, config: StoreConfig, *, client: Any = None, async_client: Any = None
    ) -> None:
        if client is not None and is_async_client(client):
            if async_client is not None:
                raise ConfigurationError("client and async_client are both asynchronous clients")
            client, async_client = None, client
        if client is not None:
            _check_client(client, (redis_sync.Redis, redis_sync.RedisCluster), "chatkeep")
        if async_client is not None:
            _check_client(
                async_client, (redis_async.Redis, redis_async.RedisCluster), "chatkeep (asyncio)"
            )
        self.config = config
        self.given = client is not None or async_client is not None
        """True when the clients were given (then :meth:`close` leaves them open)."""
        self._client = client
        self._async_client = async_client
        self._factory: Callable[[], Any] | None = None
        self._async_factory: Callable[[], Any] | None = None
        if not self.given:
            self._factory = client_factory(config, asyncio=False)
            self._async_factory = client_factory(config, asyncio=True)
        self._lock = threading.Lock()
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        given = client if client is not None else async_client
        self.cluster = (
            is_cluster_client(given) if given is not None else (config.scheme == "redis+cluster")
        )
        """Whether this Redis is a Cluster (keys of one command must share a slot)."""
        self.sync_only = async_client is None and client is not None
        """Given only a sync client: there is no asyncio client to use."""
        self.async_only = client is None and async_client is not None
        """Given only an asyncio client: there is no sync client to use."""
        self.reached = False
        """Whether any round trip ever reached Redis."""
        self._identify = not self.cluster  # the first round trip also asks INFO server
        self._users = 0
        self._async_users = 0
        self._registry_key: Any = None
        from .circuit import Circuit

        self.circuit: Circuit | None = Circuit(self) if config.fallback == "memory" else None

    # -- clients ----------------------------------------------------------------------

    @property
    def client(self) -> Any:
        """The synchronous client (made on first use when made from a URL)."""
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    if self._factory is None:
                        raise ConfigurationError(
                            "this chatkeep store was given only an asyncio client: use its "
                            "async methods, or give a sync client too"
                        )
                    try:
                        self._client = self._factory()
                    except _DRIVER_ERRORS as exc:
                        _raise_translated(exc)
                client = self._client
        return client

    @property
    def async_client(self) -> Any:
        """The asyncio client of the running event loop."""
        if self._async_client is not None:
            return self._async_client
        if self._async_factory is None:
            raise ConfigurationError(
                "this chatkeep store was given only a sync client: use its sync methods, "
                "or give an asyncio client too"
            )
        loop = asyncio.get_running_loop()
        entry = self._by_loop.get(loop)
        if entry is None:
            made = self._async_factory()
            entry = self._by_loop[loop] = (made, _closed_with_loop(made))
        return entry[0]

    @property
    def safe_url(self) -> str:
        return self.config.safe_url

    def adopt(self, client: Any) -> None:
        """Use ``client`` for the side (sync or asyncio) this connection has no client
        for yet (a twin store given the other kind of client)."""
        asynchronous = is_async_client(client)
        with self._lock:
            current = self._async_client if asynchronous else self._client
            if current is client:
                return
            if current is not None or not self.given:
                raise ConfigurationError(
                    "a twin shares its store's Redis: give it the same client, or none"
                )
            if asynchronous:
                self._async_client = client
                self.sync_only = False
            else:
                self._client = client
                self.async_only = False

    # -- round trips ------------------------------------------------------------------

    def send(self, commands: list[Command]) -> list[Any]:
        """Send ``commands`` in one round trip (Cluster: routed one by one) and return
        their replies, error replies in place. Driver failures are raised translated:
        :class:`Unreachable` for reachability, chatkeep errors for the rest."""
        identify = self._identify
        if identify:
            commands = [("INFO", "server"), *commands]
        try:
            client = self.client
            if self.cluster or _single(client):
                replies = _send_each(client, commands)
            else:
                replies = _send_pooled(client, commands)
        except _DRIVER_ERRORS as exc:
            _raise_translated(exc)
        return self._received(replies, identify)

    def _received(self, replies: list[Any], identify: bool) -> list[Any]:
        self.reached = True
        if identify:
            # Which server this is (its run_id): a later change means it restarted.
            self._identify = False
            if self.circuit is not None:
                self.circuit.identified(replies[0])
            return replies[1:]
        return replies

    async def asend(self, commands: list[Command]) -> list[Any]:
        """The asyncio twin of :meth:`send`."""
        identify = self._identify
        if identify:
            commands = [("INFO", "server"), *commands]
        try:
            client = self.async_client
            if self.cluster or _single(client):
                replies = await _asend_each(client, commands)
            else:
                replies = await _asend_pooled(client, commands)
        except _DRIVER_ERRORS as exc:
            _raise_translated(exc)
        return self._received(replies, identify)

    def run(self, flow: Flow[T]) -> T:
        """Drive ``flow`` with this connection's sync client."""
        return run(flow, self)

    async def arun(self, flow: Flow[T]) -> T:
        """Drive ``flow`` with the running loop's asyncio client."""
        return await arun(flow, self)

    # -- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Close the sync client if chatkeep made it (asyncio clients made per loop
        close with their loop, or with :meth:`aclose` on it)."""
        if self.given:
            return
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()
            for sentinel in sentinels_of(client):
                sentinel.close()

    async def aclose_loop(self) -> None:
        """Close the running loop's asyncio client, if chatkeep made it."""
        if self.given:
            return
        entry = self._by_loop.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()  # the parked closer closes the client

    async def aclose(self) -> None:
        """Close the running loop's asyncio client and the sync one (if chatkeep made them)."""
        await self.aclose_loop()
        self.close()

    def __repr__(self) -> str:
        return f"Connection({self.safe_url!r}, cluster={self.cluster})"

    # -- sharing ----------------------------------------------------------------------

    @property
    def users(self) -> int:
        """Stores using this connection."""
        return self._users

    def acquire(self, *, asynchronous: bool = False) -> Connection:
        with _registry_lock:
            self._users += 1
            self._async_users += asynchronous
        return self

    def release(self, *, asynchronous: bool = False) -> tuple[bool, bool]:
        """One user fewer: (whether it was the last, whether it was the last asyncio
        one). The last leaves the registry; the caller closes what it must."""
        with _registry_lock:
            self._users -= 1
            self._async_users -= asynchronous
            last = self._users <= 0
            if last and self._registry_key is not None:
                if _registry.get(self._registry_key) is self:
                    del _registry[self._registry_key]
                self._registry_key = None
            return last, asynchronous and self._async_users <= 0


_registry: dict[Any, Connection] = {}
_registry_lock = threading.Lock()

# The settings that make two stores' connections the same connection: where and how
# to reach Redis, and how its fallback behaves.
_SHARED_SETTINGS = (
    "url",
    "connect_timeout",
    "socket_timeout",
    "max_connections",
    "pool_timeout",
    "fallback",
    "probe_interval",
    "probe_max",
    "journal_size",
    "journal_max_bytes",
    "journal_path",
    "replay_wait",
    "restore_lost_sessions",
)


def connection_key(config: StoreConfig, client: Any = None, async_client: Any = None) -> Any:
    settings = tuple(getattr(config, name) for name in _SHARED_SETTINGS)
    if client is None and async_client is None:
        return ("url", *settings)
    return ("clients", id(client), id(async_client), *settings[1:])


def connect(
    config: StoreConfig,
    *,
    client: Any = None,
    async_client: Any = None,
    asynchronous: bool = False,
) -> Connection:
    """The process's shared connection to the Redis of ``config`` (or of the given
    clients), acquired for one more user (an asyncio one: ``asynchronous``); give it
    back with ``release()``."""
    if client is not None and async_client is None and is_async_client(client):
        client, async_client = None, client
    key = connection_key(config, client, async_client)
    given = client is not None or async_client is not None
    made: Connection | None = None
    while True:
        with _registry_lock:
            found = _registry.get(key)
            # ids of given clients may be reused once they are gone: compare the objects
            if found is not None and (
                not given or (found._client is client and found._async_client is async_client)
            ):
                found._users += 1
                found._async_users += asynchronous
                return found
            if made is not None:
                _registry[key] = made
                made._registry_key = key
                made._users += 1
                made._async_users += asynchronous
                return made
        # made outside the lock (a client factory may look at the URL)
        made = Connection(config, client=client, async_client=async_client)
