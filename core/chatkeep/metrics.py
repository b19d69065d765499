"""Counters of one store that an application can read or export.

Every store keeps a :class:`Metrics` (operations, errors by kind, a latency histogram
per operation) and :meth:`ConversationStore.metrics` returns a
:class:`MetricsSnapshot` that adds the fallback's counters (transitions, journal size,
replayed and dropped writes) and the skipped corrupt records::

    snap = store.metrics()
    snap.operations["append"], snap.errors["unreachable"], snap.journal_size
    snap.latency["read"].quantile(0.99)          # upper bound of the p99 bucket, seconds

The hot path costs one ``perf_counter`` pair, a ``bisect`` and two list increments per
call: no lock, no allocation. Updates are plain integer increments under the GIL; a
reader may see a snapshot that is a few calls behind, never a torn value.
``chatkeep.otel`` exports the same figures to OpenTelemetry.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Final, get_args

from pydantic import BaseModel, ConfigDict

from .errors import (
    BackendError,
    BackendUnavailableError,
    InvalidArgumentError,
    SerializationError,
    SessionOwnershipError,
)
from .sessions.ops import Op

if TYPE_CHECKING:
    from .redis.circuit import Circuit

__all__ = [
    "ERROR_KINDS",
    "LATENCY_BOUNDS",
    "OPERATIONS",
    "LatencyHistogram",
    "Metrics",
    "MetricsSnapshot",
    "error_kind",
]

OPERATIONS: Final = tuple(cls.kind for cls in get_args(Op))
"""Operation kinds, as counted (``messages()`` is ``read``)."""

ERROR_KINDS: Final = (
    "unreachable",
    "backend",
    "ownership",
    "serialization",
    "invalid_argument",
    "other",
)
"""``unreachable``: Redis could not be reached (whether the fallback served the call or
``BackendUnavailableError`` was raised); ``backend``: Redis refused (WRONGTYPE, NOAUTH,
OOM...); ``ownership``: ``SessionOwnershipError``; ``serialization``: an undecodable
record with ``strict=True``; ``invalid_argument`` and ``other`` for the rest."""

LATENCY_BOUNDS: Final = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
"""Upper bounds (seconds, inclusive) of the latency histogram's buckets; one more
bucket counts what is above the last bound."""


def error_kind(exc: BaseException) -> str:
    """The kind under which an exception raised by a store call is counted."""
    if isinstance(exc, BackendUnavailableError):
        return "unreachable"
    if isinstance(exc, SessionOwnershipError):
        return "ownership"
    if isinstance(exc, BackendError):
        return "backend"
    if isinstance(exc, SerializationError):
        return "serialization"
    if isinstance(exc, InvalidArgumentError):
        return "invalid_argument"
    return "other"


class LatencyHistogram(BaseModel):
    """Client-side duration of one kind of operation (including fallback-served calls)."""

    model_config = ConfigDict(frozen=True)

    bounds: tuple[float, ...]
    """Upper bounds of the buckets, in seconds (inclusive)."""
    counts: tuple[int, ...]
    """Calls per bucket; one more entry than ``bounds`` (above the last bound)."""
    count: int
    sum: float
    """Total seconds."""

    def quantile(self, q: float) -> float | None:
        """Upper bound of the bucket holding quantile ``q`` (``inf`` past the last
        bound); None when nothing was observed."""
        if not 0 <= q <= 1:
            raise ValueError("q must be within [0, 1]")
        if self.count == 0:
            return None
        rank = q * self.count
        seen = 0
        for i, n in enumerate(self.counts):
            seen += n
            if n and seen >= rank:
                return self.bounds[i] if i < len(self.bounds) else float("inf")
        return float("inf")  # pragma: no cover - counts sum to count


class MetricsSnapshot(BaseModel):
    """What one store has done since it was made (a copy; it does not change)."""

    model_config = ConfigDict(frozen=True)

    operations: dict[str, int]
    """Calls per operation kind (see :data:`OPERATIONS`), failed ones included."""
    served_by_fallback: int
    """Calls served by the in-memory fallback while Redis was unreachable."""
    errors: dict[str, int]
    """Failures per kind (see :data:`ERROR_KINDS`)."""
    fallback_transitions: dict[str, int]
    """``degraded``: times Redis became unreachable; ``recovered``: times it came back."""
    journal_size: int
    """Writes in the fallback journal now, waiting for replay."""
    journal_refused: int
    """Writes refused (JournalFullError) because the journal was full."""
    replayed: int
    """Journaled writes replayed to Redis."""
    replay_rejected: int
    """Journaled writes Redis refused on replay."""
    skipped_records: int
    """Stored records that could not be decoded and were skipped."""
    latency: dict[str, LatencyHistogram]
    """Duration per operation kind."""


class Metrics:
    """The live counters of one store (internal; read them through a snapshot)."""

    __slots__ = ("_latency", "errors")

    def __init__(self) -> None:
        # Per kind: one count per bucket (len(LATENCY_BOUNDS) + 1), then the sum.
        # Every key exists from the start, so the hot path never grows a dict.
        size = len(LATENCY_BOUNDS) + 1
        self._latency: dict[str, list[float]] = {k: [0] * size + [0.0] for k in OPERATIONS}
        self.errors: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)

    def observe(self, kind: str, seconds: float) -> None:
        """Count one call of ``kind`` that took ``seconds`` (the hot path)."""
        buckets = self._latency[kind]
        buckets[bisect_left(LATENCY_BOUNDS, seconds)] += 1
        buckets[-1] += seconds

    def failed(self, exc: BaseException) -> None:
        self.errors[error_kind(exc)] += 1

    def snapshot(self, fallback: Circuit | None, skipped_records: int) -> MetricsSnapshot:
        latency = {}
        operations = {}
        for kind, values in self._latency.items():
            counts = tuple(int(n) for n in values[:-1])
            count = sum(counts)
            operations[kind] = count
            latency[kind] = LatencyHistogram(
                bounds=LATENCY_BOUNDS, counts=counts, count=count, sum=values[-1]
            )
        errors = dict(self.errors)
        if fallback is not None:
            errors["unreachable"] += fallback.failures
        return MetricsSnapshot(
            operations=operations,
            served_by_fallback=fallback.served if fallback else 0,
            errors=errors,
            fallback_transitions={
                "degraded": fallback.outages if fallback else 0,
                "recovered": fallback.recoveries if fallback else 0,
            },
            journal_size=fallback.pending if fallback else 0,
            journal_refused=fallback.refused if fallback else 0,
            replayed=fallback.replayed if fallback else 0,
            replay_rejected=fallback.rejected if fallback else 0,
            skipped_records=skipped_records,
            latency=latency,
        )
