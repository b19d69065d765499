"""The fallback: one circuit per Redis, for every store that uses it.

While Redis answers (``closed``), every result is also given to the family's local
mirror (write-through). When a call finds Redis unreachable the circuit opens:
calls are served by the mirrors at memory speed and writes go to the journal
before the call returns. After a backoff (``probe_interval``, doubling up to
``probe_max``) one caller probes: ``PING`` (and ``INFO server``, to notice a restart),
then the journal is replayed in batches (the oldest entries of many keys per round
trip, each key's entries in order) while other calls wait briefly
(``replay_wait``) behind it; when the journal is empty the circuit closes.

Guarantees (docs/fallback.md states them for users):

* a write is acknowledged only once it is in the journal; a full journal raises
  :class:`chatkeep.JournalFullError`;
* closing the circuit and journaling a write are serialized: a write is either
  journaled while the circuit is open, and replayed, or sent to Redis;
* a refusal that is not the write's own fault (``OOM``, ``MISCONF``, ``NOPERM``,
  ``LOADING``, ``BUSY``, ``READONLY``) stops the replay and keeps every entry; a write
  that is itself invalid (an owner conflict, ``WRONGTYPE``, a version conflict) is
  dropped, counted, logged and reported to its family;
* whatever is raised into a probe (a timeout, ``KeyboardInterrupt``, a cancellation),
  the circuit leaves ``probing``/``replaying``.

A *family* is what one kind of store keeps in Redis (conversations of one prefix,
long-term memory, checkpoints...): it runs an operation as a flow, names the key a
write is ordered by, replays journaled writes, and owns a mirror.
"""

from __future__ import annotations

import atexit
import enum
import json
import logging
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from ..errors import (
    BackendError,
    BackendUnavailableError,
    ChatkeepError,
    ConflictError,
    FallbackWarning,
    JournalFullError,
)
from ..status import CircuitState, StoreStatus
from .errors import Unreachable, check, is_temporary
from .flows import Flow, Sleep, gather
from .journal import Journal, Journaled, MemoryJournal, SqliteJournal

if TYPE_CHECKING:
    from .connection import Connection

__all__ = [
    "FAMILIES",
    "BaseFamily",
    "Circuit",
    "Family",
    "Mirror",
    "Route",
    "direct",
    "guarded",
    "register_family",
]

logger = logging.getLogger("chatkeep")
WHERE: Final = object()  # Circuit._log: replaced by the Redis and prefixes a line concerns


class Route(enum.Enum):
    PRIMARY = "primary"  # circuit closed: use Redis
    PROBE = "probe"  # this caller checks Redis and replays the journal first
    LOCAL = "local"  # circuit open: serve from the mirror
    WAIT = "wait"  # the journal is being replayed: wait for it (briefly)


class Mirror(Protocol):
    """A family's local copy: learns from Redis, serves while Redis is away."""

    def absorb(self, op: Any, result: Any) -> None:
        """Keep the effect of ``op``, which Redis carried out with ``result``."""

    def serve(self, op: Any) -> tuple[Any, Any]:
        """Carry out ``op`` locally: (its result, the write to journal or None). Raise
        (e.g. :class:`chatkeep.IncompleteMirrorError`) to refuse; nothing is kept."""


class Family(Protocol):
    """What one kind of store keeps in Redis, as the circuit sees it."""

    name: str
    """Registered with :func:`register_family`, so another process can rebuild it."""
    params: dict[str, Any]
    """JSON parameters that rebuild it (prefix, TTL...)."""

    @property
    def mirror(self) -> Mirror | None:
        """Its local copy (None: nothing is served locally)."""

    def run(self, op: Any) -> Flow[Any]:
        """``op`` on Redis."""

    def key(self, op: Any) -> str | None:
        """The key a write is ordered by at replay (a session...); None for a read."""

    def size(self, op: Any) -> int:
        """Bytes a journaled ``op`` takes (roughly)."""

    def replay(self, ops: list[Any]) -> Flow[list[BaseException | None]]:
        """Replay the next step of the journaled writes of one key (their oldest
        first, usually in one script call): for each write it carried out, in order,
        None or the error Redis answered (a temporary one ends the list)."""

    def rejected(self, op: Any, error: BaseException) -> None:
        """A journaled write was refused as invalid (reported, dropped)."""

    def attempted(self, op: Any) -> Any:
        """The write to journal for ``op``, which was sent to Redis and may have been
        applied there although no reply came (its replay must recognise it)."""

    def encode(self, op: Any) -> bytes:
        """``op`` for the durable journal."""

    def decode(self, data: bytes) -> Any:
        """The inverse of :meth:`encode`."""

    def restarted(self) -> Flow[None]:
        """Redis restarted (a new ``run_id``): repair what it may have lost."""


class BaseFamily:
    """Defaults for a :class:`Family`: writes replayed one by one in order (stopping
    at a temporary refusal), nothing to report or repair, sizes from the encoding.
    Subclasses give ``name``, ``params``, ``mirror``, ``run`` and ``key``, and, when
    their writes are journaled, ``encode`` and ``decode``."""

    name: str
    params: dict[str, Any]
    mirror: Mirror | None = None

    def run(self, op: Any) -> Flow[Any]:
        raise NotImplementedError

    def key(self, op: Any) -> str | None:
        raise NotImplementedError

    def encode(self, op: Any) -> bytes:
        raise NotImplementedError

    def decode(self, data: bytes) -> Any:
        raise NotImplementedError

    def size(self, op: Any) -> int:
        return 64 + len(self.encode(op))

    def replay(self, ops: list[Any]) -> Flow[list[BaseException | None]]:
        try:
            yield from self.run(ops[0])
        except Exception as exc:
            return [exc]
        return [None]

    def rejected(self, op: Any, error: BaseException) -> None:
        return None

    def attempted(self, op: Any) -> Any:
        return op

    def restarted(self) -> Flow[None]:
        return None
        yield  # pragma: no cover  (a flow that needs nothing)


FAMILIES: dict[str, Callable[[dict[str, Any], Connection], Family]] = {}
"""Family builders by name, for replaying another process's durable journal."""


def register_family(name: str, build: Callable[[dict[str, Any], Connection], Family]) -> None:
    FAMILIES[name] = build


_RETRY: Any = object()  # serve(): the circuit closed meanwhile; go to Redis


class _Once:
    """FallbackWarning is emitted once per process."""

    done = False
    lock = threading.Lock()


# A replay batch: the oldest entries of up to this many keys, this many per key,
# this many bytes (one round trip per step of the families' replay flows).
REPLAY_KEYS = 500
REPLAY_PER_KEY = 500
REPLAY_BYTES = 8 * 1024 * 1024
# Writes of one key a family's replay step may take (the idempotency ring's size).
REPLAY_STEP = 32
# How long process exit waits for the in-memory journal to reach Redis.
EXIT_FLUSH_SECONDS = 5.0


def _run_id(reply: Any) -> str | None:
    if isinstance(reply, dict):
        found = reply.get("run_id")
        return None if found is None else str(found)
    if isinstance(reply, (bytes, str)):
        text = reply.decode() if isinstance(reply, bytes) else reply
        for line in text.splitlines():
            if line.startswith("run_id:"):
                return line.partition(":")[2].strip()
    return None


class Circuit:
    """The fallback state of one Redis: route, journal, probes, replay, counters."""

    def __init__(self, connection: Connection) -> None:
        config = connection.config
        self._connection = weakref.ref(connection)
        self.safe_url = config.safe_url
        self.probe_interval = config.probe_interval
        self.probe_max = config.probe_max
        self.replay_wait = config.replay_wait
        self.restore_lost_sessions = config.restore_lost_sessions
        self._lock = threading.RLock()  # replay resolves families under it; they ask for mirrors
        self.state: CircuitState = "closed"
        self._backoff = self.probe_interval
        self._next_probe = 0.0
        self.families: dict[tuple[str, str], Family] = {}
        self.mirrors: dict[Any, Mirror] = {}
        self._listeners: list[Callable[[str], None]] = []
        self.journal: Journal
        if config.journal_path:
            self.journal = SqliteJournal(
                config.journal_path,
                config.safe_url,
                config.journal_size,
                config.journal_max_bytes,
                self._resolve,
            )
        else:
            self.journal = MemoryJournal(config.journal_size, config.journal_max_bytes)
        # counters
        self.outages = 0
        self.failures = 0
        self.recoveries = 0
        self.served = 0
        self.replayed = 0
        self.rejected = 0
        self.conflicts = 0
        self.refused = 0
        self.restarts = 0
        self.lost_sessions = 0
        self.last_error: str | None = None
        self.degraded_since: datetime | None = None
        self.run_id: str | None = None
        if self.journal.path is not None and self.journal.pending:
            # Writes another process journaled and did not replay: replay them first.
            self.state = "open"
            self.degraded_since = datetime.now(timezone.utc)
        _exits.add(self)

    # -- what uses it -----------------------------------------------------------------

    def attach(self, family: Family) -> Family:
        """Register a live family (so a durable journal entry finds it); returns the
        family already attached with the same name and parameters, if any."""
        key = (family.name, json.dumps(family.params, sort_keys=True, separators=(",", ":")))
        with self._lock:
            return self.families.setdefault(key, family)

    def mirror(self, key: Any, make: Callable[[], Mirror]) -> Mirror:
        """The mirror kept under ``key`` (one per family and settings), made once."""
        with self._lock:
            found = self.mirrors.get(key)
            if found is None:
                found = self.mirrors[key] = make()
            return found

    @property
    def prefixes(self) -> list[str]:
        """Key prefixes of the stores this circuit serves (their families'), sorted."""
        with self._lock:
            families = list(self.families.values())
        return sorted({str(f.params["prefix"]) for f in families if "prefix" in f.params})

    def _where(self) -> str:
        """Which stores a log line concerns: the Redis (credentials redacted) and the
        prefixes, so that the logs of several stores in one process stay apart."""
        prefixes = self.prefixes
        if not prefixes:
            return self.safe_url
        return f"{self.safe_url} (prefix {', '.join(prefixes)})"

    def log(self, level: int, message: str, *args: Any) -> None:
        """Log ``message``, its ``WHERE`` arguments replaced by :meth:`_where`, with the
        Redis and the prefixes also as record attributes (``chatkeep_redis``,
        ``chatkeep_prefixes``) for handlers that route by store."""
        where = self._where()
        extra = {"chatkeep_redis": self.safe_url, "chatkeep_prefixes": self.prefixes}
        logger.log(level, message, *(where if a is WHERE else a for a in args), extra=extra)

    def listen(self, listener: Callable[[str], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def unlisten(self, listener: Callable[[str], None]) -> None:
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def _resolve(self, name: str, params: dict[str, Any]) -> Family:
        key = (name, json.dumps(params, sort_keys=True, separators=(",", ":")))
        found = self.families.get(key)
        if found is not None:
            return found
        build = FAMILIES.get(name)
        if build is None:  # an adapter's: its "chatkeep.features" entry point registers it
            from .scripts import load_features

            load_features()
            build = FAMILIES.get(name)
        connection = self._connection()
        if build is None or connection is None:
            raise ChatkeepError(f"no chatkeep family {name!r} to replay a journaled write")
        return self.attach(build(params, connection))

    def identified(self, reply: Any) -> None:
        """The first reply of ``INFO server`` on this connection: remember the run_id."""
        if self.run_id is None and not isinstance(reply, Exception):
            self.run_id = _run_id(reply)

    # -- routing ----------------------------------------------------------------------

    @property
    def degraded(self) -> bool:
        return self.state != "closed"

    @property
    def pending(self) -> int:
        return self.journal.pending

    def route(self, *, force_probe: bool = False) -> Route:
        if self.state == "closed":  # the hot path takes no lock
            return Route.PRIMARY
        with self._lock:
            state: CircuitState = self.state  # it may have changed before the lock
            if state == "open" and (force_probe or time.monotonic() >= self._next_probe):
                self.state = "probing"
                return Route.PROBE
            if state == "closed":
                return Route.PRIMARY
            return Route.WAIT if state == "replaying" else Route.LOCAL

    def failed(self, exc: Unreachable) -> None:
        """A call found Redis unreachable: open the circuit (if it was closed)."""
        with self._lock:
            self.failures += 1
            self.last_error = str(exc)
            if self.state != "closed":
                return
            self.state = "open"
            self._backoff = self.probe_interval
            self._next_probe = time.monotonic() + self._backoff
            self.outages += 1
            self.degraded_since = datetime.now(timezone.utc)
        self.log(
            logging.WARNING,
            "Redis at %s is unreachable (%s); serving from the in-memory fallback and "
            "journaling writes for replay",
            WHERE,
            type(exc.cause).__name__,
        )
        self._warn()
        self._emit("degraded")

    def _warn(self) -> None:
        with _Once.lock:
            if _Once.done:
                return
            _Once.done = True
        connection = self._connection()
        reached = connection is not None and connection.reached
        warnings.warn(
            FallbackWarning(
                f"chatkeep: Redis at {self.safe_url} "
                + ("is unreachable" if reached else "has never been reached")
                + "; calls are served from the in-memory fallback and writes are journaled "
                "for replay (see store.status())"
            ),
            stacklevel=2,
        )

    def serve(self, family: Family, op: Any, *, attempted: bool = False) -> Any:
        """Carry out ``op`` on the family's mirror and journal it if it is a write; or
        :data:`_RETRY` when the circuit closed meanwhile. ``attempted``: ``op`` was sent
        to Redis, which may have applied it although no reply came."""
        mirror = family.mirror
        assert mirror is not None
        key = family.key(op)
        with self._lock:
            if self.state == "closed":
                return _RETRY
            self.served += 1
            if key is None:
                return mirror.serve(op)[0]
            size = family.size(op)
            try:  # before the mirror changes: a write that cannot be kept is not made
                self.journal.room(size)
            except JournalFullError:
                self.refused += 1
                raise
            result, journaled = mirror.serve(op)
            if journaled is not None:
                if attempted:
                    journaled = family.attempted(journaled)
                self.journal.add(family, journaled, key, size)
                _unreplayed.add(self)  # kept alive (and flushed at exit) until replayed
            return result

    # -- probing and replay -----------------------------------------------------------

    def probe(self) -> Flow[None]:
        """Check Redis, replay the journal, close the circuit (state is ``probing``)."""
        closed = False
        lease = isinstance(self.journal, SqliteJournal)
        try:
            replies = yield [("PING",), ("INFO", "server")]
            check(replies[:1])
            run_id = None if isinstance(replies[1], Exception) else _run_id(replies[1])
            restarted = run_id is not None and self.run_id is not None and run_id != self.run_id
            if run_id is not None:
                self.run_id = run_id
            if lease and not self.journal.lease():  # type: ignore[attr-defined]
                return  # another process replays this journal; look again soon
            with self._lock:
                self.state = "replaying"
            if restarted:
                yield from self._restarted()
            while True:
                with self._lock:
                    runs = self.journal.batch(REPLAY_KEYS, REPLAY_PER_KEY, REPLAY_BYTES)
                    if not runs:
                        self._close()
                        closed = True
                        break
                yield from self._replay(runs)
        except BackendError as exc:
            with self._lock:
                self.last_error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            if lease:
                self.journal.unlease()  # type: ignore[attr-defined]
            if not closed:
                self._reopen()
        self._closed_now()

    def _reopen(self) -> None:
        with self._lock:
            if self.state in ("probing", "replaying"):
                self.state = "open"
                self._backoff = min(self._backoff * 2, self.probe_max)
                self._next_probe = time.monotonic() + self._backoff

    def _close(self) -> None:
        # under the lock: no write can be journaled after the journal was found empty
        _unreplayed.discard(self)
        self.recoveries += 1
        self.state = "closed"
        self._backoff = self.probe_interval
        self.degraded_since = None

    def _closed_now(self) -> None:
        self.log(
            logging.WARNING,
            "Redis at %s is reachable again; back from the fallback (%d writes replayed so "
            "far, %d rejected)",
            WHERE,
            self.replayed,
            self.rejected,
        )
        self._emit("recovered")

    def _replay(self, runs: list[list[Journaled]]) -> Flow[None]:
        """Replay runs of journaled writes (one run per key), one step per round trip:
        each round, every key's family replays the next writes of its run (usually one
        script call) side by side with the other keys'. What a round confirms leaves
        the journal at once, so a replay cut halfway resends only the step in flight
        (whose writes the idempotency keys recognise)."""
        pending = [run for run in runs if run]
        stop: BaseException | None = None
        while pending and stop is None:
            try:
                outcomes = yield from gather(
                    [run[0].family.replay([entry.op for entry in run]) for run in pending]
                )
            except Unreachable:
                # The step in flight may have reached Redis: its replay must know it.
                self.journal.attempted([e for run in pending for e in run[:REPLAY_STEP]])
                raise
            done: list[int] = []
            going: list[list[Journaled]] = []
            for run, outcome in zip(pending, outcomes, strict=True):
                results = [outcome] if isinstance(outcome, BaseException) else outcome
                handled = 0
                for entry, error in zip(run, results, strict=False):
                    if error is not None and is_temporary(error):
                        stop = stop or error
                        break
                    handled += 1
                    done.append(entry.id)
                    if error is None:
                        self.replayed += 1
                    else:
                        self._rejected(entry, error)
                if stop is None and handled < len(run):
                    going.append(run[handled:])
            self.journal.remove(done)
            pending = going
        if stop is not None:
            if isinstance(stop, Unreachable):
                raise stop
            self.log(
                logging.WARNING,
                "Redis at %s refused the replay for now (%s); %d journaled writes are kept "
                "and will be replayed later",
                WHERE,
                type(stop).__name__ if not isinstance(stop, BackendError) else stop.code,
                self.journal.pending,
            )
            raise stop

    def _rejected(self, entry: Journaled, error: BaseException) -> None:
        self.rejected += 1
        if isinstance(error, ConflictError):
            self.conflicts += 1
        self.log(
            logging.ERROR,
            "Redis at %s refused a journaled %s during replay (%s: %s); dropped it",
            WHERE,
            type(entry.op).__name__.lower(),
            type(error).__name__,
            error,
        )
        try:
            entry.family.rejected(entry.op, error)
        except Exception:  # a reporting hook must not stop the replay
            logger.exception("a rejected-write hook failed")

    def _restarted(self) -> Flow[None]:
        self.restarts += 1
        for family in list(self.families.values()):
            yield from family.restarted()

    def flush(self) -> Flow[int]:
        """Probe now (whatever the backoff) and replay; return the writes left."""
        if self.state == "closed" and not self.journal.pending:
            return 0
        with self._lock:
            if self.state == "closed":
                self.state = "open"  # a durable journal another process left
        if self.route(force_probe=True) is Route.PROBE:
            yield from self.attempt()
        return self.journal.pending

    def attempt(self) -> Flow[None]:
        """The probe of a caller :meth:`route` chose: Redis unreachable keeps the
        circuit open, a temporary refusal keeps the journal for later; a refusal that is
        not temporary (credentials rotated during the outage) is raised to the caller."""
        try:
            yield from self.probe()
        except Unreachable as exc:
            self.failed(exc)
        except ChatkeepError as exc:
            if not is_temporary(exc):
                raise

    def _emit(self, event: str) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a listener must not break the store
                logger.exception("on_state_change listener failed")

    # -- status -----------------------------------------------------------------------

    def status(self, backend: str, skipped: int = 0) -> StoreStatus:
        connection = self._connection()
        degraded = self.state != "closed"
        return StoreStatus(
            backend=backend,
            serving="fallback" if degraded else backend,
            degraded=degraded,
            circuit=self.state,
            reached=connection is not None and connection.reached,
            pending_replay=self.journal.pending,
            journal_bytes=self.journal.bytes,
            journal_path=self.journal.path,
            replayed=self.replayed,
            replay_rejected=self.rejected,
            conflicts=self.conflicts,
            journal_refused=self.refused,
            skipped_records=skipped,
            outages=self.outages,
            restarts=self.restarts,
            lost_sessions=self.lost_sessions,
            last_error=self.last_error,
            degraded_since=self.degraded_since,
        )

    # -- process exit -----------------------------------------------------------------

    def at_exit(self) -> None:
        """Try for a bounded time to replay an in-memory journal; warn with what is left."""
        if isinstance(self.journal, SqliteJournal) or not self.journal.pending:
            return
        connection = self._connection()
        deadline = time.monotonic() + EXIT_FLUSH_SECONDS
        left = self.journal.pending
        # Retry only while the replay makes progress: an unreachable Redis is tried once.
        while connection is not None and not connection.async_only and left:
            before = left
            try:
                left = connection.run(self.flush())
            except Exception:  # exiting: report below
                break
            if not left or left >= before or time.monotonic() >= deadline:
                break
        if left:
            self.log(
                logging.ERROR,
                "exiting with %d journaled writes that did not reach Redis at %s; they are "
                "lost (set journal_path to keep them across restarts)",
                left,
                WHERE,
            )
            warnings.warn(
                FallbackWarning(
                    f"chatkeep: exiting with {left} journaled writes that did not reach Redis"
                ),
                stacklevel=1,
            )


_exits: weakref.WeakSet[Circuit] = weakref.WeakSet()
# Circuits with journaled writes not yet replayed: held even when no store uses them
# any more, so that exit still tries to replay their writes (or says they are lost).
_unreplayed: set[Circuit] = set()


@atexit.register
def _flush_at_exit() -> None:
    for circuit in {*_exits, *_unreplayed}:
        circuit.at_exit()


def guarded(
    connection: Connection | None, family: Family, op: Any, *, local: Any = None
) -> Flow[Any]:
    """``op`` through the circuit of ``connection``: on Redis while it answers, from
    the family's mirror (journaled) while it does not. ``connection`` None: ``local``
    (the in-process backend) carries it out."""
    if connection is None:
        return local(op)
    circuit = connection.circuit
    if circuit is None:
        try:
            return (yield from family.run(op))
        except Unreachable as exc:
            raise BackendUnavailableError(
                f"Redis at {connection.safe_url} is unreachable ({exc}); fallback is off"
            ) from exc.cause
    waited = 0.0
    while True:
        route = circuit.route()
        if route is Route.WAIT:
            if waited < circuit.replay_wait:
                yield Sleep(0.002)
                waited += 0.002
                continue
            route = Route.LOCAL
        elif route is Route.PROBE:
            yield from circuit.attempt()
            # Only a closed circuit sends this call to Redis: otherwise it queues
            # behind the journal (the replay was refused for now, or is another's).
            route = Route.PRIMARY if circuit.state == "closed" else Route.LOCAL
        attempted = False
        if route is Route.PRIMARY:
            try:
                result = yield from family.run(op)
            except Unreachable as exc:
                circuit.failed(exc)
                attempted = True
            else:
                if family.mirror is not None:
                    family.mirror.absorb(op, result)
                return result
        served = circuit.serve(family, op, attempted=attempted)
        if served is not _RETRY:
            return served


T = TypeVar("T")


def direct(connection: Connection, flow: Flow[T]) -> Flow[T]:
    """``flow`` on Redis with no fallback, as a store with ``fallback="raise"`` runs
    its operations: an unreachable Redis raises :class:`chatkeep.BackendUnavailableError`
    (the cause kept); every other error is raised as it is."""
    try:
        return (yield from flow)
    except Unreachable as exc:
        raise BackendUnavailableError(
            f"Redis at {connection.safe_url} is unreachable ({exc}); fallback is off"
        ) from exc.cause
