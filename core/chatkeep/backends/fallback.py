"""Fallback policy: circuit breaker, write journal and local mirror (internal).

While the primary answers, every result is absorbed by a bounded local mirror
(write-through). When the primary becomes unreachable the circuit opens: calls are
served by the mirror at memory speed, writes are journaled (bounded), and after a
backoff one caller probes the primary, replays the journal in order (idempotency
keys make a replay of an ambiguous write land once) and closes the circuit.

Only state and decisions live here; the sync and async stores do the I/O.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timezone
from typing import Any

from ..errors import ChatkeepError
from ..ops import Op, Pop, PopResult, WriteResult
from .base import Unreachable
from .memory import MemoryBackend

__all__ = ["Fallback", "Route"]


class Route(enum.Enum):
    PRIMARY = "primary"  # circuit closed: use the primary
    PROBE = "probe"  # this caller probes the primary and replays the journal first
    LOCAL = "local"  # circuit open: serve from the mirror


class Fallback:
    def __init__(
        self,
        *,
        mirror: MemoryBackend,
        journal_size: int,
        probe_interval: float,
        probe_max: float,
        logger: logging.Logger,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.mirror = mirror
        self._journal: deque[Op] = deque()
        self._journal_size = journal_size
        self._probe_interval = probe_interval
        self._probe_max = probe_max
        self._logger = logger
        self._notify = notify
        self._lock = threading.Lock()
        self.state = "closed"  # closed | open | probing
        self._backoff = probe_interval
        self._next_probe = 0.0
        self.outages = 0
        self.replayed_count = 0
        self.rejected_count = 0
        self.dropped_count = 0
        self._dropped_logged = False
        self.last_error: str | None = None
        self.degraded_since: datetime | None = None
        # metrics (read by chatkeep.metrics): failed primary calls, recoveries,
        # calls served locally
        self.failures = 0
        self.recoveries = 0
        self.served = 0
        self._holders = 1  # stores serving through this fallback (a store and its twins)

    def hold(self) -> None:
        """One more store (a twin) serves, journals and replays through this fallback."""
        with self._lock:
            self._holders += 1

    def release(self) -> bool:
        """A store closes; True if it was the last one holding this fallback."""
        with self._lock:
            self._holders -= 1
            return self._holders <= 0

    @property
    def pending(self) -> int:
        return len(self._journal)

    # -- routing ------------------------------------------------------------------------

    def route(self, *, force_probe: bool = False) -> Route:
        if self.state == "closed":  # the hot path takes no lock
            return Route.PRIMARY
        with self._lock:
            if self.state == "open" and (force_probe or time.monotonic() >= self._next_probe):
                self.state = "probing"
                return Route.PROBE
            if self.state == "closed":
                return Route.PRIMARY
            return Route.LOCAL

    # -- outcomes -------------------------------------------------------------------------

    def succeeded(self, op: Op, result: Any) -> None:
        self.mirror.absorb(op, result)

    def failed(self, exc: Unreachable) -> None:
        """The primary could not be reached: open (or keep open) the circuit."""
        with self._lock:
            self.failures += 1  # metrics
            self.last_error = str(exc)
            was = self.state
            if was == "probing":
                self._backoff = min(self._backoff * 2, self._probe_max)
            elif was == "closed":
                self._backoff = self._probe_interval
                self.outages += 1
                self.degraded_since = datetime.now(timezone.utc)
                self._dropped_logged = False
            self.state = "open"
            self._next_probe = time.monotonic() + self._backoff
        if was == "closed":
            self._logger.warning(
                "Redis is unreachable (%s); serving from the in-memory fallback and "
                "journaling writes for replay",
                type(exc.cause).__name__,
            )
            self._emit("degraded")

    def probe_refused(self, exc: BaseException) -> None:
        """The probe reached the primary but it refused (e.g. credentials rotated during
        the outage): stay degraded and probe again later; the caller sees the error."""
        with self._lock:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.state = "open"
            self._next_probe = time.monotonic() + self._backoff

    def serve(self, op: Op) -> Any:
        """Carry out ``op`` on the mirror; journal it if it changes something."""
        self.served += 1  # metrics (degraded path only)
        result = getattr(self.mirror, op.kind)(op)
        if isinstance(op, Pop):
            # Replay removes the message this pop removed here, found by id: an index
            # could point elsewhere once earlier journaled writes have landed.
            if isinstance(result, PopResult) and result.message is not None:
                self._journal_op(replace(op, message_id=result.message.id))
        elif op.is_write and not (isinstance(result, WriteResult) and result.duplicate):
            self._journal_op(op)
        return result

    def _journal_op(self, op: Op) -> None:
        with self._lock:
            if len(self._journal) < self._journal_size:
                self._journal.append(op)
                return
            self.dropped_count += 1
            first = not self._dropped_logged
            self._dropped_logged = True
        if first:
            self._logger.error(
                "fallback journal is full (%d writes); further writes during this outage "
                "are kept in memory only and will not reach Redis (see status().journal_dropped)",
                self._journal_size,
            )

    # -- replay ---------------------------------------------------------------------------

    def next_pending(self) -> Op | None:
        """The oldest journaled write, or None, in which case the circuit is closed."""
        with self._lock:
            if self._journal:
                return self._journal[0]
            recovered = self.state != "closed"
            self.recoveries += recovered  # metrics
            self.state = "closed"
            self._backoff = self._probe_interval
            self.degraded_since = None
        if recovered:
            self._logger.warning(
                "Redis is reachable again; back from the fallback (%d writes replayed so far, "
                "%d rejected)",
                self.replayed_count,
                self.rejected_count,
            )
            self._emit("recovered")
        return None

    def replayed(self, op: Op) -> None:
        with self._lock:
            if self._journal and self._journal[0] is op:
                self._journal.popleft()
                self.replayed_count += 1

    def rejected(self, op: Op, exc: ChatkeepError) -> None:
        with self._lock:
            if self._journal and self._journal[0] is op:
                self._journal.popleft()
                self.rejected_count += 1
        self._logger.error(
            "Redis refused a journaled %s of session %r during replay (%s: %s); dropped it",
            op.kind,
            getattr(op, "session_id", "?"),
            type(exc).__name__,
            exc,
        )

    def _emit(self, event: str) -> None:
        if self._notify is not None:
            try:
                self._notify(event)
            except Exception:  # a listener must not break the store
                self._logger.exception("on_state_change listener failed")
