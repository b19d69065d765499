"""What a store reports about where its calls go (one type for every store)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = ["CircuitState", "StoreStatus"]

CircuitState = Literal["closed", "open", "probing", "replaying"]


class StoreStatus(BaseModel):
    """Where a store's calls go now, and what the fallback has been through."""

    model_config = ConfigDict(frozen=True)

    backend: str
    """``redis`` or ``memory``: the backend configured as primary."""
    serving: str
    """Where calls are served now: the primary's name, or ``fallback``."""
    degraded: bool
    """True while Redis is unreachable (or its journal is being replayed) and calls
    are served from the local mirror."""
    circuit: CircuitState = "closed"
    """``closed``: calls go to Redis; ``open``: served locally; ``probing``: one call
    checks whether Redis is back; ``replaying``: the journal is being replayed (calls
    wait for it, briefly)."""
    reached: bool = True
    """Whether this process ever reached Redis (False: a wrong host, or down since start)."""
    pending_replay: int = 0
    """Writes in the journal, waiting for Redis to come back."""
    journal_bytes: int = 0
    """Bytes those writes take."""
    journal_path: str | None = None
    """The durable journal's file (``journal_path``), or None for the in-memory one."""
    replayed: int = 0
    """Journaled writes replayed to Redis."""
    replay_rejected: int = 0
    """Journaled writes Redis refused as invalid when replayed (logged, reported)."""
    conflicts: int = 0
    """Of those, changes made during an outage that met a later write (not applied)."""
    journal_refused: int = 0
    """Writes refused (``JournalFullError``) because the journal was full."""
    skipped_records: int = 0
    """Stored records that could not be decoded and were skipped."""
    outages: int = 0
    """Times Redis became unreachable."""
    restarts: int = 0
    """Times Redis was found restarted (a new ``run_id``)."""
    lost_sessions: int = 0
    """Sessions this process knew that a restarted Redis no longer had."""
    last_error: str | None = None
    """Type and short text of the last backend error (no credentials)."""
    degraded_since: datetime | None = None
