"""Live updates: messages appended to a session by any process, as they are appended.

::

    with store.subscribe("s1") as updates:
        for message in updates:              # blocks; or updates.get(timeout=1.0)
            print(message.text)

``async with astore.subscribe("s1") as updates: async for message in updates`` is the
asyncio twin. The append script publishes each record (``PUBLISH``, ``SPUBLISH`` on
Cluster, channel ``<prefix>:{<sid>}:ch``) when the appending store has ``publish=True``;
a store that subscribes turns it on for itself. A subscription reconnects after
losing Redis (what was appended meanwhile is not replayed: read it with
``messages()``). On ``memory://`` it sees the appends of its own store (:class:`LocalHub`).

Subscribing, receiving, decoding and reconnecting are flows, written once: redis-py's
pub/sub calls are :class:`~chatkeep.redis.Call` steps (called, or awaited) and the
backoff is :class:`~chatkeep.redis.Sleep`; the twins differ in how they wait on their
in-process queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import redis.asyncio

from .keys import KeySchema
from .message import Message
from .redis.connection import _DRIVER_ERRORS, _closed_with_loop
from .redis.errors import Unreachable, translate
from .redis.flows import NO_IO, Call, Flow, Sleep, arun, run
from .redis.scripts import Feature

if TYPE_CHECKING:
    from .store import _StoreBase

__all__ = ["UPDATES", "AsyncSubscription", "LocalHub", "Subscription"]

logger = logging.getLogger("chatkeep")

# PUBLISH/SPUBLISH: the append script's; PING: the health check of an idle subscriber.
_COMMANDS = ("SUBSCRIBE", "UNSUBSCRIBE", "SSUBSCRIBE", "SUNSUBSCRIBE")
UPDATES = Feature("updates", commands=(*_COMMANDS, "PUBLISH", "SPUBLISH", "PING"), channels=True)

_BACKOFF_FIRST = 0.05
_BACKOFF_MAX = 1.0
_POLL = 1.0  # longest single wait, so close() and deadlines are noticed
_hub_guard = threading.Lock()


class LocalHub:
    """In-process delivery of appends, for stores without Redis (``memory://``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, dict[str, Callable[[Message], None]]] = {}

    def add(self, sid: str, deliver: Callable[[Message], None]) -> str:
        token = uuid.uuid4().hex
        with self._lock:
            self._subscribers.setdefault(sid, {})[token] = deliver
        return token

    def remove(self, sid: str, token: str) -> None:
        with self._lock:
            found = self._subscribers.get(sid)
            if found is not None:
                found.pop(token, None)
                if not found:
                    del self._subscribers[sid]

    def publish(self, sid: str, messages: list[Message]) -> None:
        with self._lock:
            targets = list(self._subscribers.get(sid, {}).values())
        for deliver in targets:
            for message in messages:
                deliver(message)


def _hub(store: _StoreBase) -> LocalHub:
    with _hub_guard:
        hub = store._hub
        if hub is None:
            hub = store._hub = LocalHub()
        return hub


_CONFIRM_SECONDS = 1.0  # longest wait for Redis to confirm a subscription


def _io(function: Callable[..., Any], *args: Any) -> Flow[Any]:
    """``function(*args)`` as a step (awaited in async code), its driver exceptions
    translated (:class:`Unreachable`, or the chatkeep error)."""
    try:
        return (yield Call(function, args))
    except _DRIVER_ERRORS as exc:
        raise translate(exc) from exc


class _SubscriptionBase:
    """The policy of both twins: subscribe, receive, decode, reconnect, close."""

    _asyncio = False  # which client of the connection a twin uses

    def __init__(self, store: _StoreBase, session_id: str) -> None:
        self.store = store
        self.session_id = store._sid(session_id)
        self.channel = KeySchema(store.config.prefix).channel(self.session_id)
        self.reconnects = 0
        """Times the subscription reconnected after losing Redis."""
        self._connection = store.connection
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        self._token: str | None = None  # LocalHub subscription (memory://)
        self._pubsub: Any = None
        # asyncio on a Cluster: what closes the client of the slot's node (with its loop
        # at the latest)
        self._node_closer: Any = None
        self._receive: Callable[[float], Any] | None = None
        self._bound: object = None  # the event loop the pubsub belongs to (asyncio)
        self._closed = False
        self._backoff = _BACKOFF_FIRST
        if self._connection is None:
            self._token = _hub(store).add(self.session_id, self._deliver)
        else:
            store._publish = True  # a store that subscribes publishes what it appends

    # -- what the twins provide -----------------------------------------------------------

    def _deliver(self, message: Message) -> None:
        """Called by the LocalHub (in the appending thread)."""
        self._queue.put(message)

    def _take(self, seconds: float) -> Any:
        """The next message of the in-process queue, None after ``seconds``."""
        raise NotImplementedError

    def _loop(self) -> object:
        """The running event loop (asyncio twin), else None."""
        return None

    # -- the flows ------------------------------------------------------------------------

    def _subscribe(self) -> Flow[None]:
        """Subscribe to the channel (SSUBSCRIBE on a Cluster)."""
        connection = self._connection
        assert connection is not None
        sharded = connection.cluster
        try:
            client = connection.async_client if self._asyncio else connection.client
            if sharded and self._asyncio:
                # redis-py's asyncio cluster pub/sub cannot wait on sharded messages:
                # subscribe on a plain client of the node owning the channel's slot
                # (asking the cluster for its current map first: after a failover the
                # owner has changed). It is closed with its event loop at the latest.
                yield from _io(client.initialize)
                yield from _io(client.nodes_manager.initialize)
                node = client.get_node_from_key(self.channel)
                client = redis.asyncio.Redis.from_pool(  # closing it closes its pool
                    redis.asyncio.ConnectionPool(
                        connection_class=node.connection_class, **node.connection_kwargs
                    )
                )
                self._node_closer = _closed_with_loop(client)
            pubsub = self._pubsub = client.pubsub(ignore_subscribe_messages=True)
            self._bound = self._loop()
            yield from _io(pubsub.ssubscribe if sharded else pubsub.subscribe, self.channel)
        except BaseException:
            yield from self._drop()
            raise
        if sharded and not self._asyncio:
            self._receive = lambda seconds: pubsub.get_sharded_message(timeout=seconds)
        else:
            self._receive = lambda seconds: pubsub.get_message(timeout=seconds)
        # Redis confirms a subscription before any message of its channel: read the
        # confirmation (an ignored message), so that whatever is published once
        # subscribe() returned is delivered. Without it, the server could run another
        # client's PUBLISH before this SUBSCRIBE when both arrive together.
        try:
            yield from _io(self._receive, _CONFIRM_SECONDS)
        except BaseException:
            yield from self._drop()
            raise
        self._backoff = _BACKOFF_FIRST

    def _start(self) -> Flow[None]:
        """Subscribe now if not subscribed (Redis unreachable: later, on ``get``)."""
        if self._bound is not self._loop():
            self._forget()
        if self._connection is None or self._pubsub is not None or self._closed:
            return
        try:
            yield from self._subscribe()
        except Unreachable as exc:
            self._lost(exc)

    def _get(self, timeout: float | None) -> Flow[Message | None]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed:
            left = _POLL if deadline is None else max(deadline - time.monotonic(), 0.0)
            wait = min(left, _POLL)
            if self._connection is None:
                message = yield Call(self._take, (wait,))
                if isinstance(message, Message):
                    return message
            elif self._pubsub is None or self._bound is not self._loop():
                self._forget()
                try:
                    yield from self._subscribe()
                except Unreachable:
                    yield Sleep(min(self._backoff, left))
                    self._backoff = min(self._backoff * 2, _BACKOFF_MAX)
            else:
                assert self._receive is not None
                try:
                    item = yield from _io(self._receive, wait)
                except Unreachable as exc:
                    if self._closed:  # closed by another thread meanwhile
                        return None
                    self._lost(exc)
                    yield from self._drop()
                    continue
                message = self._decode(item)
                if message is not None:
                    return message
            if deadline is not None and time.monotonic() >= deadline:
                return None
        return None

    def _decode(self, item: Any) -> Message | None:
        if not isinstance(item, dict) or item.get("type") not in ("message", "smessage"):
            return None
        found = self.store._decoder.decode_all([item["data"]], self.session_id)
        return found[0] if found else None

    def _lost(self, exc: Unreachable) -> None:
        if self.reconnects == 0 or self._backoff <= _BACKOFF_FIRST:
            logger.warning(
                "subscription to session %r lost Redis (%s); reconnecting",
                self.session_id,
                type(exc.cause).__name__,
            )
        self.reconnects += 1

    def _forget(self) -> None:
        """Let go of a pubsub of an event loop that is gone (closed with it)."""
        self._pubsub = self._node_closer = self._receive = None
        self._bound = self._loop()

    def _drop(self) -> Flow[None]:
        pubsub, node_closer = self._pubsub, self._node_closer
        self._pubsub = self._node_closer = self._receive = None
        closers = [] if pubsub is None else [getattr(pubsub, "aclose", None) or pubsub.close]
        if node_closer is not None:
            closers.append(node_closer.aclose)
        for close in closers:
            with contextlib.suppress(Exception):  # the connection is gone anyway
                yield Call(close)

    def _close(self) -> Flow[None]:
        self._closed = True
        if self._token is not None:
            _hub(self.store).remove(self.session_id, self._token)
            self._token = None
        if self._bound is self._loop():
            yield from self._drop()
        else:
            self._forget()


class Subscription(_SubscriptionBase):
    """Messages appended to one session, as they are appended (sync).

    Subscribed when made (nothing appended after that is missed while connected)::

        with store.subscribe("s1") as updates:
            for message in updates:          # blocks; or updates.get(timeout=1.0)
                print(message.text)
    """

    def __init__(self, store: _StoreBase, session_id: str) -> None:
        super().__init__(store, session_id)
        run(self._start(), NO_IO)

    def _take(self, seconds: float) -> Message | None:
        try:
            return self._queue.get(timeout=seconds)
        except queue.Empty:
            return None

    def get(self, timeout: float | None = None) -> Message | None:
        """The next appended message; None if none came within ``timeout`` seconds."""
        return run(self._get(timeout), NO_IO)

    def __iter__(self) -> Iterator[Message]:
        while not self._closed:
            message = self.get(timeout=None)
            if message is not None:
                yield message

    def close(self) -> None:
        run(self._close(), NO_IO)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncSubscription(_SubscriptionBase):
    """The asyncio twin of :class:`Subscription`; subscribed by :meth:`start` (which
    ``async with`` and ``async for`` call) or on the first :meth:`get`::

        async with astore.subscribe("s1") as updates:
            async for message in updates:
                ...

    Usable from several event loops one after the other (``asyncio.run`` twice): in
    a new loop it subscribes again.
    """

    _asyncio = True

    def __init__(self, store: _StoreBase, session_id: str) -> None:
        super().__init__(store, session_id)
        self._waiter: tuple[asyncio.AbstractEventLoop, asyncio.Event] | None = None

    def _loop(self) -> object:
        return asyncio.get_running_loop()

    def _deliver(self, message: Message) -> None:
        super()._deliver(message)
        waiter = self._waiter
        if waiter is not None:
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits there
                waiter[0].call_soon_threadsafe(waiter[1].set)

    async def _take(self, seconds: float) -> Message | None:
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            pass
        event = asyncio.Event()
        self._waiter = (asyncio.get_running_loop(), event)
        try:
            if self._queue.empty():
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(event.wait(), seconds)
            return self._queue.get_nowait()
        except queue.Empty:
            return None
        finally:
            self._waiter = None

    async def start(self) -> AsyncSubscription:
        """Subscribe now (``async with`` does this)."""
        await arun(self._start(), NO_IO)
        return self

    async def get(self, timeout: float | None = None) -> Message | None:
        """The next appended message; None if none came within ``timeout`` seconds."""
        return await arun(self._get(timeout), NO_IO)

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        await self.start()
        while not self._closed:
            message = await self.get(timeout=None)
            if message is not None:
                yield message

    async def aclose(self) -> None:
        await arun(self._close(), NO_IO)

    close = aclose

    async def __aenter__(self) -> AsyncSubscription:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
