"""Conversation operations and their results.

A store method validates and encodes its arguments once into an operation; the
Redis family, the local backend (``memory://``) and the fallback mirror all carry
out the same operation, and the fallback journal keeps operations for replay.

Changes made during an outage that could overwrite a later write (``replace``,
``insert``, ``pop``, ``clear``) carry ``expect``: the version of the session the
mirror knew (``"<created ms>:<writes>"``, or ``"-"`` for no session); at replay they
are applied only if the session is still at that version.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Final

from pydantic import BaseModel, ConfigDict, Field

from ..message import Message

if TYPE_CHECKING:
    from ..codec import Conversion, Entry

__all__ = [
    "Append",
    "Budget",
    "Clear",
    "Info",
    "Insert",
    "KEEP",
    "Keep",
    "Update",
    "Op",
    "Pop",
    "Read",
    "Replace",
    "Search",
    "SessionInfo",
    "Sessions",
    "Ttl",
    "WriteResult",
    "ReadResult",
    "PopResult",
    "SearchResult",
    "Recent",
    "RecentConversation",
]


class Keep:
    def __repr__(self) -> str:
        return "KEEP"


KEEP: Final[Keep] = Keep()
"""A metadata field an :class:`Update` leaves as it is."""

# TTL of an operation, in milliseconds: None = not given (session's or store default),
# 0 = never expires, > 0 = that many milliseconds.
TtlMs = int | None


@dataclass(slots=True)
class _Write:
    """What every write of messages carries."""

    session_id: str
    messages: list[Message]  # decoded; not journaled (the records are)
    records: list[bytes]
    owner: str | None
    idem: bytes


@dataclass(slots=True)
class Append(_Write):
    ttl_ms: TtlMs = None
    publish: bool = False  # the script publishes each record (store.subscribe)
    ambiguous: bool = False  # sent to Redis without a reply: its replay looks for its records
    kind: ClassVar[str] = "append"


@dataclass(slots=True)
class Replace(_Write):
    ttl_ms: TtlMs = None
    expect: str | None = None
    kind: ClassVar[str] = "replace"


@dataclass(slots=True)
class Insert(_Write):
    index: int = 0
    expect: str | None = None
    kind: ClassVar[str] = "insert"


@dataclass(slots=True)
class Pop:
    session_id: str
    index: int
    owner: str | None
    idem: bytes
    message_id: str | None = None  # remove this message wherever it is (journal replay)
    expect: str | None = None
    kind: ClassVar[str] = "pop"


@dataclass(slots=True)
class Clear:
    session_id: str
    owner: str | None
    expect: str | None = None
    kind: ClassVar[str] = "clear"


@dataclass(slots=True, frozen=True)
class Budget:
    """A read of the newest messages whose token counts fit in ``max_tokens``."""

    max_tokens: int
    keep_system: bool  # count a leading system message first, and keep it if it fits


@dataclass(slots=True)
class Update:
    """Session metadata: title and status set (a str), removed (None) or kept (KEEP);
    context entries merged (a key with None is removed). Creates the session."""

    session_id: str
    owner: str | None
    title: str | Keep | None
    status: str | Keep | None
    context: list[tuple[str, bytes | None]]  # (key, encoded value or None to remove)
    idem: bytes = b""
    ttl_ms: TtlMs = None
    # Set when journaled during an outage: the call's time (a replay older than the
    # session's last metadata change is a conflict) and the creation time of the
    # session the mirror held (a replay onto a session deleted meanwhile is one too).
    at_ms: int | None = None
    made_ms: int | None = None
    kind: ClassVar[str] = "update"


@dataclass(slots=True)
class Read:
    session_id: str
    last: int | None
    owner: str | None
    into: Conversion[Any] | None = None  # what the store decodes the records into
    budget: Budget | None = None
    kind: ClassVar[str] = "read"


@dataclass(slots=True)
class Ttl:
    session_id: str
    kind: ClassVar[str] = "ttl"


@dataclass(slots=True)
class Info:
    session_id: str
    owner: str | None
    kind: ClassVar[str] = "info"


@dataclass(slots=True)
class Sessions:
    owner: str | None
    limit: int | None
    status: str | None = None
    kind: ClassVar[str] = "sessions"


@dataclass(slots=True)
class Recent:
    owner: str | None
    limit: int | None
    kind: ClassVar[str] = "recent"


@dataclass(slots=True)
class Search:
    """Messages of one session whose text or tool-call arguments contain ``query``
    (already folded, see :mod:`chatkeep.sessions.search`), newest first."""

    session_id: str
    query: str
    limit: int
    owner: str | None
    kind: ClassVar[str] = "search"


Op = (
    Append
    | Replace
    | Insert
    | Pop
    | Clear
    | Update
    | Read
    | Ttl
    | Info
    | Sessions
    | Recent
    | Search
)


@dataclass(slots=True)
class WriteResult:
    """Outcome of append/replace/insert: length after the write."""

    length: int
    expires_at_ms: int | None  # None: never expires; -2: unknown (duplicate)
    owner: str | None
    duplicate: bool = False
    created_ms: int | None = None  # the session's creation time (with version: its identity)
    version: int = 0  # writes the session has had
    new: bool = False  # this write created the session


@dataclass(slots=True)
class ReadResult:
    records: list[Entry]  # as stored; the store decodes them (codec.RecordDecoder)
    expires_at_ms: int | None  # None: never expires; -2: unknown; -3: unchanged
    owner: str | None
    exists: bool = True
    created_ms: int | None = None
    version: int = 0
    length: int | None = None  # the session's whole length (None: not known)
    head: list[Entry] | None = None  # a budget read's leading system message, kept apart
    # from ``records`` (which are always a tail of the session)


@dataclass(slots=True)
class SearchResult:
    records: list[Entry]  # matching records as stored, newest first
    owner: str | None
    scanned: int  # records looked at (at most search.SEARCH_BOUND)


@dataclass(slots=True)
class PopResult:
    record: Entry | None  # as stored; the store decodes it
    expires_at_ms: int | None
    owner: str | None
    length: int = 0
    created_ms: int | None = None
    version: int = 0


def version_of(created_ms: int | None, version: int) -> str:
    """The ``expect`` of a session at that creation time and version ("-": none)."""
    return "-" if created_ms is None else f"{created_ms}:{version}"


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
    title: str | None = Field(default=None, repr=False)
    """The title given with ``update_session`` (left out of ``repr()``: content)."""
    status: str | None = None
    """The status given with ``update_session`` (e.g. "active", "archived")."""
    context: dict[str, Any] = Field(default_factory=dict, repr=False)
    """Free-form context merged by ``update_session`` (left out of ``repr()``)."""
    messages_by_role: dict[str, int] = Field(default_factory=dict)
    """How many of the session's messages each role has (kept by every write; empty
    for a session no write of this chatkeep version has counted yet)."""
    tokens: int | None = None
    """Tokens of the session's messages, by the counts stored at write time (None:
    not counted yet)."""


class RecentConversation(SessionInfo):
    """A session as a "recent conversations" list shows it: ``title`` is the one given
    with ``update_session``, else the start of the first user message (among the first
    16), else None."""


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
    fields = dict(info)
    if fields["title"] is None:
        fields["title"] = title_of(head)
    return RecentConversation(**fields)
