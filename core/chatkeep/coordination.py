"""Coordination between app instances serving the same conversation.

* :meth:`ConversationStore.lock` -> :class:`SessionLock`: a per-session distributed
  lock on redis-py's ``Lock`` (key ``<prefix>:{<sid>}:lock``, in the session's hash
  tag, so it is Cluster-safe), so two workers never interleave one turn::

      with store.lock("s1", timeout=30):
          history = store.messages("s1")
          store.append("s1", [question, answer])

  ``async with astore.lock("s1"):`` is the asyncio twin. ``timeout`` is how long the
  lock lives if its holder dies; ``blocking_timeout`` how long to wait for it
  (None = as long as it takes; then :class:`LockTimeoutError`). While Redis is
  unreachable (``fallback="memory"``) the lock is a per-process lock, logged once.

* :meth:`ConversationStore.subscribe` -> :class:`Subscription`: messages appended to a
  session by any process, as they are appended. The append script itself publishes
  each record (``PUBLISH``, or ``SPUBLISH`` on Cluster, channel ``<prefix>:{<sid>}:ch``
  in the session's slot) when the appending store has ``publish=True``; a store that
  subscribes turns it on for itself. The subscription reconnects after a Redis
  restart (messages appended while it was disconnected are not replayed: read them
  with ``messages()``). On ``memory://`` it sees the appends of its own store.
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
from types import TracebackType
from typing import TYPE_CHECKING, Any

import redis.asyncio
import redis.asyncio.lock
import redis.lock
from redis import exceptions as rex

from .errors import BackendUnavailableError, LockTimeoutError
from .keys import escape_id
from .message import Message
from .redis.errors import Unreachable, translate

if TYPE_CHECKING:
    from .store import _StoreBase

__all__ = ["AsyncSessionLock", "AsyncSubscription", "SessionLock", "Subscription"]

logger = logging.getLogger("chatkeep")


@contextlib.contextmanager
def translated() -> Iterator[None]:
    """Driver exceptions -> chatkeep's, at chatkeep.redis's one boundary (until locks and
    live updates stand on chatkeep.redis flows)."""
    try:
        yield
    except (rex.RedisError, rex.RedisClusterException, OSError) as exc:
        raise translate(exc) from exc


_local_guard = threading.Lock()
_reconnect_max = 1.0


def lock_key(store: _StoreBase, sid: str) -> str:
    return f"{store.config.prefix}:{{{escape_id(sid)}}}:lock"


def channel(store: _StoreBase, sid: str) -> str:
    return f"{store.config.prefix}:{{{escape_id(sid)}}}:ch"


def _redis_backend(store: _StoreBase) -> Any:
    return store._connection


def enable_publish(store: _StoreBase) -> None:
    """Make the store's append script publish what it appends (Redis backends)."""
    store._publish = True


def _local_lock(store: _StoreBase, sid: str) -> threading.Lock:
    with _local_guard:
        locks: dict[str, threading.Lock] | None = store.__dict__.get("_session_locks")
        if locks is None:
            locks = store.__dict__["_session_locks"] = {}
        lock = locks.get(sid)
        if lock is None:
            lock = locks[sid] = threading.Lock()
        return lock


class _LockBase:
    def __init__(
        self,
        store: _StoreBase,
        session_id: str,
        timeout: float | None,
        blocking_timeout: float | None,
    ) -> None:
        self.session_id = store._sid(session_id)
        for name, value in (("timeout", timeout), ("blocking_timeout", blocking_timeout)):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
            ):
                from .errors import InvalidArgumentError

                raise InvalidArgumentError(f"{name} must be None or a number of seconds >= 0")
        self.store = store
        self.timeout = timeout
        self.blocking_timeout = blocking_timeout
        self.name = lock_key(store, self.session_id)
        self._lock: Any = None  # redis-py lock while held in Redis
        self._local: threading.Lock | None = None  # per-process lock while held locally
        self.local = False
        """True when the lock is only a per-process lock (Redis was unreachable)."""

    def _fallback(self, exc: Unreachable) -> threading.Lock:
        if self.store.config.fallback != "memory":
            raise BackendUnavailableError(
                f"Redis at {self.store.config.safe_url} is unreachable ({exc}); fallback is off"
            ) from exc.cause
        logger.warning(
            "Redis is unreachable (%s): the lock of session %r only holds within this process",
            type(exc.cause).__name__,
            self.session_id,
        )
        self.local = True
        return _local_lock(self.store, self.session_id)

    def _timed_out(self) -> LockTimeoutError:
        return LockTimeoutError(self.session_id, self.blocking_timeout or 0.0)

    def _lost(self) -> None:
        logger.warning(
            "the lock of session %r expired before it was released (turn longer than timeout=%ss?)",
            self.session_id,
            self.timeout,
        )


def _as_bytes(value: str | bytes | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


class _RetrySafeLock(redis.lock.Lock):
    """redis-py's lock, whose acquire also succeeds when the key already holds this
    lock's own token: a client retry (after a lost reply) re-sends the SET NX whose
    first run took the lock, and without this the caller would wait out its own lock."""

    def do_acquire(self, token: str) -> bool:
        if super().do_acquire(token):
            return True
        return _as_bytes(self.redis.get(self.name)) == _as_bytes(token)


class _AsyncRetrySafeLock(redis.asyncio.lock.Lock):
    """The ``redis.asyncio`` twin of :class:`_RetrySafeLock`."""

    async def do_acquire(self, token: str | bytes) -> bool:
        if await super().do_acquire(token):
            return True
        return _as_bytes(await self.redis.get(self.name)) == _as_bytes(token)


class SessionLock(_LockBase):
    """A held-for-one-turn lock of one session (``with store.lock(sid):``)."""

    def acquire(self) -> None:
        backend = _redis_backend(self.store)
        if backend is not None:
            try:
                with translated():
                    lock = backend.client.lock(
                        self.name,
                        timeout=self.timeout,
                        sleep=0.005,
                        blocking_timeout=self.blocking_timeout,
                        thread_local=False,
                        lock_class=_RetrySafeLock,
                    )
                    acquired = lock.acquire()
                if not acquired:
                    raise self._timed_out()
                self._lock = lock
                return
            except Unreachable as exc:
                local = self._fallback(exc)
        else:
            local = _local_lock(self.store, self.session_id)
        wait = -1 if self.blocking_timeout is None else self.blocking_timeout
        if not local.acquire(timeout=wait):
            raise self._timed_out()
        self._local = local

    def release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            from redis.exceptions import LockError

            try:
                with translated():
                    lock.release()
            except LockError:
                self._lost()
            except Unreachable:
                pass  # it expires after ``timeout``
        local, self._local = self._local, None
        if local is not None:
            local.release()

    def __enter__(self) -> SessionLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class AsyncSessionLock(_LockBase):
    """The asyncio twin of :class:`SessionLock` (``async with astore.lock(sid):``)."""

    async def acquire(self) -> None:
        backend = _redis_backend(self.store)
        if backend is not None:
            try:
                with translated():
                    lock = backend.client.lock(
                        self.name,
                        timeout=self.timeout,
                        sleep=0.005,
                        blocking_timeout=self.blocking_timeout,
                        thread_local=False,
                        lock_class=_AsyncRetrySafeLock,
                    )
                    acquired = await lock.acquire()
                if not acquired:
                    raise self._timed_out()
                self._lock = lock
                return
            except Unreachable as exc:
                local = self._fallback(exc)
        else:
            local = _local_lock(self.store, self.session_id)
        deadline = (
            None if self.blocking_timeout is None else time.monotonic() + self.blocking_timeout
        )
        while not local.acquire(blocking=False):
            if deadline is not None and time.monotonic() >= deadline:
                raise self._timed_out()
            await asyncio.sleep(0.005)
        self._local = local

    async def release(self) -> None:
        lock, self._lock = self._lock, None
        if lock is not None:
            from redis.exceptions import LockError

            try:
                with translated():
                    await lock.release()
            except LockError:
                self._lost()
            except Unreachable:
                pass
        local, self._local = self._local, None
        if local is not None:
            local.release()

    async def __aenter__(self) -> AsyncSessionLock:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()


# -- live updates --------------------------------------------------------------------------


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
    with _local_guard:
        hub = store._hub
        if hub is None:
            hub = store._hub = LocalHub()
        return hub


class _SubscriptionBase:
    def __init__(self, store: _StoreBase, session_id: str) -> None:
        self.store = store
        self.session_id = store._sid(session_id)
        self.channel = channel(store, self.session_id)
        self.reconnects = 0
        """Times the subscription reconnected after losing Redis."""
        self._backend = _redis_backend(store)
        self._pubsub: Any = None
        self._token: str | None = None
        self._closed = False
        self._backoff = 0.05
        if self._backend is not None:
            enable_publish(store)

    def _sharded(self) -> bool:
        import redis
        import redis.asyncio

        client = self._backend.client
        return isinstance(client, (redis.RedisCluster, redis.asyncio.RedisCluster))

    def _decode(self, raw: Any) -> Message | None:
        found = self.store._decoder.decode_all([raw], self.session_id)
        return found[0] if found else None

    def _lost(self, exc: BaseException) -> None:
        if self.reconnects == 0 or self._backoff <= 0.05:
            logger.warning(
                "subscription to session %r lost Redis (%s); reconnecting",
                self.session_id,
                type(exc).__name__,
            )
        self.reconnects += 1


class Subscription(_SubscriptionBase):
    """Messages appended to one session, as they are appended (sync).

    Subscribed when made (nothing appended after that is missed while connected)::

        with store.subscribe("s1") as updates:
            for message in updates:          # blocks; or updates.get(timeout=1.0)
                print(message.text)
    """

    def __init__(self, store: _StoreBase, session_id: str) -> None:
        super().__init__(store, session_id)
        self._queue: queue.SimpleQueue[Message] = queue.SimpleQueue()
        if self._backend is None:
            self._token = _hub(store).add(self.session_id, self._queue.put)
        else:
            try:
                self._connect()
            except Unreachable as exc:
                self._lost(exc)

    def _connect(self) -> None:
        with translated():
            pubsub = self._backend.client.pubsub(ignore_subscribe_messages=True)
            try:
                if self._sharded():
                    pubsub.ssubscribe(self.channel)
                else:
                    pubsub.subscribe(self.channel)
            except BaseException:
                pubsub.close()
                raise
        self._pubsub = pubsub
        self._backoff = 0.05

    def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):  # the connection is gone anyway
                pubsub.close()

    def get(self, timeout: float | None = None) -> Message | None:
        """The next appended message; None if none came within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed:
            left = 1.0 if deadline is None else max(deadline - time.monotonic(), 0.0)
            if self._backend is None:
                try:
                    return self._queue.get(timeout=min(left, 1.0) if deadline else 1.0)
                except queue.Empty:
                    pass
            elif self._pubsub is None:
                try:
                    self._connect()
                except Unreachable:
                    pause = min(self._backoff, left) if deadline else self._backoff
                    time.sleep(pause)
                    self._backoff = min(self._backoff * 2, _reconnect_max)
            else:
                try:
                    with translated():
                        if self._sharded():
                            item = self._pubsub.get_sharded_message(timeout=min(left, 1.0))
                        else:
                            item = self._pubsub.get_message(timeout=min(left, 1.0))
                except Unreachable as exc:
                    self._lost(exc)
                    self._drop()
                    continue
                if item is not None and item.get("type") in ("message", "smessage"):
                    message = self._decode(item["data"])
                    if message is not None:
                        return message
            if deadline is not None and time.monotonic() >= deadline:
                return None
        return None

    def __iter__(self) -> Iterator[Message]:
        while not self._closed:
            message = self.get(timeout=None)
            if message is not None:
                yield message

    def close(self) -> None:
        self._closed = True
        if self._token is not None:
            _hub(self.store).remove(self.session_id, self._token)
            self._token = None
        self._drop()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncSubscription(_SubscriptionBase):
    """The asyncio twin of :class:`Subscription`::

    async with astore.subscribe("s1") as updates:
        async for message in updates:
            ...
    """

    def __init__(self, store: _StoreBase, session_id: str) -> None:
        super().__init__(store, session_id)
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._node_client: Any = None
        if self._backend is None:
            loop = asyncio.get_running_loop()

            def deliver(message: Message) -> None:
                loop.call_soon_threadsafe(self._queue.put_nowait, message)

            self._token = _hub(store).add(self.session_id, deliver)

    async def _connect(self) -> None:
        pubsub: Any
        with translated():
            node_client = None
            if self._sharded():
                # redis-py's asyncio cluster pub/sub cannot wait on sharded messages:
                # subscribe on a plain connection to the node owning the channel's slot
                # (asking the cluster for its current map first: after a failover the
                # owner has changed).
                cluster = self._backend.client
                await cluster.initialize()
                await cluster.nodes_manager.initialize()
                node = cluster.get_node_from_key(self.channel)
                node_client = redis.asyncio.Redis(
                    connection_pool=redis.asyncio.ConnectionPool(
                        connection_class=node.connection_class, **node.connection_kwargs
                    )
                )
                pubsub = node_client.pubsub(ignore_subscribe_messages=True)
            else:
                pubsub = self._backend.client.pubsub(ignore_subscribe_messages=True)
            try:
                if node_client is not None:
                    await pubsub.ssubscribe(self.channel)
                else:
                    await pubsub.subscribe(self.channel)
            except BaseException:
                await pubsub.aclose()
                if node_client is not None:
                    await node_client.aclose()
                raise
        self._pubsub = pubsub
        self._node_client = node_client
        self._backoff = 0.05

    async def _drop(self) -> None:
        pubsub, self._pubsub = self._pubsub, None
        node_client, self._node_client = self._node_client, None
        if pubsub is not None:
            with contextlib.suppress(Exception):  # the connection is gone anyway
                await pubsub.aclose()
        if node_client is not None:
            with contextlib.suppress(Exception):
                await node_client.aclose()

    async def start(self) -> AsyncSubscription:
        """Subscribe now (``async with`` does this)."""
        if self._backend is not None and self._pubsub is None:
            try:
                await self._connect()
            except Unreachable as exc:
                self._lost(exc)
        return self

    async def get(self, timeout: float | None = None) -> Message | None:
        """The next appended message; None if none came within ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._closed:
            left = 1.0 if deadline is None else max(deadline - time.monotonic(), 0.0)
            if self._backend is None:
                try:
                    return await asyncio.wait_for(self._queue.get(), min(left, 1.0))
                except asyncio.TimeoutError:
                    pass
            elif self._pubsub is None:
                try:
                    await self._connect()
                except Unreachable:
                    await asyncio.sleep(min(self._backoff, left) if deadline else self._backoff)
                    self._backoff = min(self._backoff * 2, _reconnect_max)
            else:
                try:
                    with translated():
                        item = await self._pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=min(left, 1.0)
                        )
                except Unreachable as exc:
                    self._lost(exc)
                    await self._drop()
                    continue
                if item is not None and item.get("type") in ("message", "smessage"):
                    message = self._decode(item["data"])
                    if message is not None:
                        return message
            if deadline is not None and time.monotonic() >= deadline:
                return None
        return None

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Message]:
        await self.start()
        while not self._closed:
            message = await self.get(timeout=None)
            if message is not None:
                yield message

    async def aclose(self) -> None:
        self._closed = True
        if self._token is not None:
            _hub(self.store).remove(self.session_id, self._token)
            self._token = None
        await self._drop()

    close = aclose

    async def __aenter__(self) -> AsyncSubscription:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
