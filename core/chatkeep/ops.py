"""Operations and results shared by every backend (internal).

A store method validates and encodes its arguments once into an operation; any
backend (Redis sync or async, memory, the fallback mirror) executes the same
operation, and the fallback journal keeps operations for replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from .message import Message

if TYPE_CHECKING:
    from .codec import Conversion, Entry

__all__ = [
    "Append",
    "Clear",
    "Info",
    "Insert",
    "Op",
    "Pop",
    "Read",
    "Replace",
    "SessionInfo",
    "Sessions",
    "StoreStatus",
    "Ttl",
    "WriteResult",
    "ReadResult",
    "PopResult",
    "Recent",
    "RecentConversation",
]

# TTL of an operation, in milliseconds: None = not given (session's or store default),
# 0 = never expires, > 0 = that many milliseconds.
TtlMs = int | None


@dataclass(slots=True)
class Append:
    session_id: str
    messages: list[Message]
    records: list[bytes]
    owner: str | None
    idem: bytes
    ttl_ms: TtlMs = None
    kind: Literal["append"] = "append"
    is_write: bool = True


@dataclass(slots=True)
class Replace:
    session_id: str
    messages: list[Message]
    records: list[bytes]
    owner: str | None
    idem: bytes
    ttl_ms: TtlMs = None
    kind: Literal["replace"] = "replace"
    is_write: bool = True


@dataclass(slots=True)
class Insert:
    session_id: str
    index: int
    messages: list[Message]
    records: list[bytes]
    owner: str | None
    idem: bytes
    kind: Literal["insert"] = "insert"
    is_write: bool = True


@dataclass(slots=True)
class Pop:
    session_id: str
    index: int
    owner: str | None
    idem: bytes
    message_id: str | None = None  # remove this message wherever it is (journal replay)
    kind: Literal["pop"] = "pop"
    is_write: bool = True


@dataclass(slots=True)
class Clear:
    session_id: str
    owner: str | None
    kind: Literal["clear"] = "clear"
    is_write: bool = True


@dataclass(slots=True)
class Read:
    session_id: str
    last: int | None
    owner: str | None
    into: Conversion[Any] | None = None  # what the store decodes the records into
    kind: Literal["read"] = "read"
    is_write: bool = False


@dataclass(slots=True)
class Ttl:
    session_id: str
    kind: Literal["ttl"] = "ttl"
    is_write: bool = False


@dataclass(slots=True)
class Info:
    session_id: str
    owner: str | None
    kind: Literal["info"] = "info"
    is_write: bool = False


@dataclass(slots=True)
class Sessions:
    owner: str | None
    limit: int | None
    kind: Literal["sessions"] = "sessions"
    is_write: bool = False


@dataclass(slots=True)
class Recent:
    owner: str | None
    limit: int | None
    kind: Literal["recent"] = "recent"
    is_write: bool = False


Op = Append | Replace | Insert | Pop | Clear | Read | Ttl | Info | Sessions | Recent


@dataclass(slots=True)
class WriteResult:
    """Outcome of append/replace/insert: length after the write."""

    length: int
    expires_at_ms: int | None  # None: never expires; -2: unknown (duplicate)
    owner: str | None
    duplicate: bool = False


@dataclass(slots=True)
class ReadResult:
    records: list[Entry]  # as stored; the store decodes them (codec.RecordDecoder)
    expires_at_ms: int | None  # None: never expires; -2: session does not exist
    owner: str | None
    exists: bool = True


@dataclass(slots=True)
class PopResult:
    message: Message | None
    expires_at_ms: int | None
    owner: str | None
    length: int = 0


def ms_to_datetime(value: int | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc)


class SessionInfo(BaseModel):
    """What is known about one session."""

    model_config = ConfigDict(frozen=True)

    id: str
    owner: str | None
    message_count: int
    created_at: datetime | None
    updated_at: datetime | None
    expires_at: datetime | None
    """None when the session never expires."""


class RecentConversation(SessionInfo):
    """A session as a "recent conversations" list shows it."""

    title: str | None = Field(repr=False)
    """The start of the first user message (among the first 16), or None. Left out
    of ``repr()``: it is message content."""


TITLE_SCAN = 16  # messages looked at for a title
TITLE_LENGTH = 80  # characters of a title


def title_of(messages: list[Message]) -> str | None:
    """The first user message's text, on one line and at most TITLE_LENGTH long."""
    for message in messages:
        if message.role == "user":
            text = " ".join(message.text.split())
            if len(text) > TITLE_LENGTH:
                text = text[: TITLE_LENGTH - 1].rstrip() + "…"
            return text
    return None


def recent_of(info: SessionInfo, head: list[Message]) -> RecentConversation:
    return RecentConversation(**dict(info), title=title_of(head))


class StoreStatus(BaseModel):
    """Where a store's calls go now, and what the fallback has been through."""

    model_config = ConfigDict(frozen=True)

    backend: str
    """``redis`` or ``memory``: the backend configured as primary."""
    serving: str
    """Where calls are served now: the primary's name, or ``fallback``."""
    degraded: bool
    """True while the primary is unreachable and calls are served from memory."""
    circuit: Literal["closed", "open", "probing"] = "closed"
    pending_replay: int = 0
    """Writes in the journal, waiting for the primary to come back."""
    replayed: int = 0
    """Writes replayed to the primary since the store was made."""
    journal_dropped: int = 0
    """Writes not journaled because the journal was full (kept in memory only)."""
    replay_rejected: int = 0
    """Journaled writes the primary refused when replayed (logged)."""
    skipped_records: int = 0
    """Stored records that could not be decoded and were skipped."""
    outages: int = 0
    """Times the primary became unreachable."""
    last_error: str | None = None
    """Type and short text of the last backend error (no credentials)."""
    degraded_since: datetime | None = None
