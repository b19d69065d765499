"""Session locks: ``with store.lock(sid):`` so two workers never interleave one turn.

::

    with store.lock("s1", timeout=30):
        history = store.messages("s1")
        store.append("s1", [question, answer])

``async with astore.lock("s1"):`` is the asyncio twin. ``timeout`` is how long the
lock lives if its holder dies (None = until released); ``blocking_timeout`` how
long to wait for it (None = as long as it takes; then :class:`LockTimeoutError`).

The lock is the key ``<prefix>:{<sid>}:lock`` (in the session's hash tag) holding a
random token, taken and given back by two scripts (Feature ``locks``): taking it
also succeeds when the key holds the caller's own token (a client retry re-sent the
call), and only the holder's token frees it. Acquire and release are flows, written
once; the twins drive them. On ``memory://``, and while the store's circuit finds
Redis unreachable (logged once per outage), the lock is a per-process lock; with
``fallback="raise"`` an unreachable Redis raises BackendUnavailableError.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import InvalidArgumentError, LockTimeoutError
from .keys import KeySchema
from .redis.circuit import BaseFamily, Circuit, guarded
from .redis.connection import Connection
from .redis.errors import Unreachable
from .redis.flows import NO_IO, Flow, Sleep, arun, done, run
from .redis.scripts import Feature, run_script

if TYPE_CHECKING:
    from .store import _StoreBase

__all__ = ["LOCKS", "AsyncSessionLock", "SessionLock"]

logger = logging.getLogger("chatkeep")

LOCKS = Feature("locks", package="chatkeep", scripts=("lock_acquire", "lock_release"))

_POLL_FIRST = 0.002
_POLL_MAX = 0.05


class _LocalLocks:
    """Per-process locks by key, made when first wanted and dropped when nobody
    holds or waits for them."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    def checkout(self, key: str) -> threading.Lock:
        with self._guard:
            lock, users = self._locks.get(key) or (threading.Lock(), 0)
            self._locks[key] = (lock, users + 1)
            return lock

    def checkin(self, key: str) -> None:
        with self._guard:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


# One table per Redis connection (every store of the process on that Redis) or per
# memory:// store's data (shared with its twin).
_tables: weakref.WeakKeyDictionary[object, _LocalLocks] = weakref.WeakKeyDictionary()
_tables_guard = threading.Lock()
# The outage (Circuit.outages) of each circuit whose per-process locks were announced.
_announced: weakref.WeakKeyDictionary[Circuit, int] = weakref.WeakKeyDictionary()


def _table(owner: object) -> _LocalLocks:
    with _tables_guard:
        table = _tables.get(owner)
        if table is None:
            table = _tables[owner] = _LocalLocks()
        return table


def _announce(circuit: Circuit, session_id: str) -> None:
    """Log once per outage that locks hold only within this process."""
    with _tables_guard:
        if _announced.get(circuit) == circuit.outages:
            return
        _announced[circuit] = circuit.outages
    logger.warning(
        "Redis at %s is unreachable: session locks (first: %r) hold only within this "
        "process until it is back",
        circuit.safe_url,
        session_id,
    )


class _Local:
    """The circuit's answer for a lock while Redis is unreachable: hold it here."""


_LOCAL = _Local()


class _Locks(BaseFamily):
    """Session locks as the circuit sees them (a family that never journals): on
    Redis, the acquire flow; from the "mirror", the answer to lock in-process."""

    name = "locks"

    def __init__(self) -> None:
        self.params = {}
        self.mirror = self

    def run(self, op: _LockBase) -> Flow[Any]:
        return op._take()

    def key(self, op: Any) -> None:
        return None  # nothing is journaled

    def absorb(self, op: Any, result: Any) -> None:
        pass

    def serve(self, op: Any) -> tuple[Any, None]:
        return _LOCAL, None

    def size(self, op: Any) -> int:
        return 0


_FAMILY = _Locks()


def _seconds(name: str, value: object) -> float | None:
    if value is not None and (
        isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
    ):
        raise InvalidArgumentError(f"{name} must be None or a number of seconds >= 0")
    return value


class _LockBase:
    """Acquire and release of one session's lock, each written once as a flow."""

    def __init__(
        self,
        store: _StoreBase,
        session_id: str,
        timeout: float | None,
        blocking_timeout: float | None,
    ) -> None:
        self.session_id = store._sid(session_id)
        self.timeout = _seconds("timeout", timeout)
        self.blocking_timeout = _seconds("blocking_timeout", blocking_timeout)
        self.store = store
        self.name = KeySchema(store.config.prefix).lock(self.session_id)
        self._connection: Connection | None = store.connection
        owner: object = self._connection if self._connection is not None else store._local
        self._table = _table(owner)
        self._token: str | None = None  # held in Redis with this token
        self._held: threading.Lock | None = None  # held in this process
        self._deadline: float | None = None  # of the acquire under way
        self.local = False
        """True when the lock is only a per-process lock (Redis was unreachable)."""

    # -- the flows ------------------------------------------------------------------------

    def _acquire(self) -> Flow[None]:
        if self._token is not None or self._held is not None:
            raise InvalidArgumentError(
                f"this lock of session {self.session_id!r} is already held (release it first)"
            )
        wait = self.blocking_timeout
        self._deadline = None if wait is None else time.monotonic() + wait
        taken = yield from guarded(self._connection, _FAMILY, self, local=lambda op: _LOCAL)
        if taken is not _LOCAL:
            return
        connection = self._connection
        if connection is not None and connection.circuit is not None:
            _announce(connection.circuit, self.session_id)
            self.local = True
        lock = self._table.checkout(self.name)
        try:
            yield from self._until(lambda: done(lock.acquire(blocking=False)))
        except BaseException:
            self._table.checkin(self.name)
            raise
        self._held = lock

    def _take(self) -> Flow[None]:
        """Take the lock in Redis (the circuit runs this while Redis answers)."""
        connection = self._connection
        assert connection is not None
        token = uuid.uuid4().hex
        ttl = 0 if not self.timeout else max(round(self.timeout * 1000), 1)

        def attempt() -> Flow[bool]:
            replies = yield from run_script(
                LOCKS["lock_acquire"],
                [self.name],
                [token, ttl],
                session_id=self.session_id,
                cluster=connection.cluster,
            )
            return bool(replies[0] == 1)

        yield from self._until(attempt)
        self._token = token
        self.local = False

    def _until(self, attempt: Callable[[], Flow[bool]]) -> Flow[None]:
        """Repeat ``attempt`` (polling from 2 ms, up to 50 ms apart) until it takes the
        lock; LockTimeoutError at the deadline."""
        pause = _POLL_FIRST
        while not (yield from attempt()):
            left = None if self._deadline is None else self._deadline - time.monotonic()
            if left is not None and left <= 0:
                raise LockTimeoutError(self.session_id, self.blocking_timeout or 0.0)
            yield Sleep(pause if left is None else min(pause, left))
            pause = min(pause * 1.5, _POLL_MAX)

    def _release(self) -> Flow[None]:
        token, self._token = self._token, None
        held, self._held = self._held, None
        if held is not None:
            held.release()
            self._table.checkin(self.name)
        if token is None:
            return
        assert self._connection is not None
        try:
            replies = yield from run_script(
                LOCKS["lock_release"],
                [self.name],
                [token],
                session_id=self.session_id,
                cluster=self._connection.cluster,
            )
        except Unreachable as exc:  # the lock expires after ``timeout``
            if self._connection.circuit is not None:
                self._connection.circuit.failed(exc)
            return
        if replies[0] != 1:
            logger.warning(
                "the lock of session %r expired before it was released (turn longer than "
                "timeout=%ss?)",
                self.session_id,
                self.timeout,
            )

    def __repr__(self) -> str:
        state = "local" if self._held else "held" if self._token else "free"
        return f"{type(self).__name__}({self.session_id!r}, {state})"


class SessionLock(_LockBase):
    """A held-for-one-turn lock of one session (``with store.lock(sid):``)."""

    def acquire(self) -> None:
        """Take the lock (waiting up to ``blocking_timeout``, then LockTimeoutError)."""
        run(self._acquire(), self._connection or NO_IO)

    def release(self) -> None:
        """Give the lock back (nothing happens if it is not held)."""
        run(self._release(), self._connection or NO_IO)

    def __enter__(self) -> SessionLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


class AsyncSessionLock(_LockBase):
    """The asyncio twin of :class:`SessionLock` (``async with astore.lock(sid):``)."""

    async def acquire(self) -> None:
        """Take the lock (waiting up to ``blocking_timeout``, then LockTimeoutError)."""
        await arun(self._acquire(), self._connection or NO_IO)

    async def release(self) -> None:
        """Give the lock back (nothing happens if it is not held)."""
        await arun(self._release(), self._connection or NO_IO)

    async def __aenter__(self) -> AsyncSessionLock:
        await self.acquire()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.release()
