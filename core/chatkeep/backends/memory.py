"""In-process backend (``memory://``) and the fallback's local mirror.

The same class serves both: as a primary it keeps whole sessions for the life of
the process; as the fallback mirror it is bounded (least recently used sessions
are evicted, each keeps its newest messages) and is fed by write-through from the
primary. Thread-safe: one lock guards all state, and no I/O happens under it.
"""

from __future__ import annotations

import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field

from .. import codec
from ..errors import SerializationError, SessionOwnershipError
from ..message import Message
from ..ops import (
    TITLE_SCAN,
    Append,
    Clear,
    Info,
    Insert,
    Op,
    Pop,
    PopResult,
    Read,
    ReadResult,
    Recent,
    RecentConversation,
    Replace,
    SessionInfo,
    Sessions,
    Ttl,
    WriteResult,
    ms_to_datetime,
    recent_of,
)
from .base import now_ms

__all__ = ["MemoryBackend"]

_RING = 32  # idempotency keys remembered per session, as in Redis


# A session holds what Redis would: the encoded records, decoded on first read (and
# kept decoded). So memory:// and the fallback mirror return exactly what a Redis
# round trip returns (bytes tagged and restored, UUIDs as strings), and the hot
# write path pays no decoding. A record the mirror learned from a Redis read may be
# undecodable: it stays raw, and the store's decoder skips it (or raises) as it
# would for Redis.
Entry = codec.Entry


@dataclass(slots=True)
class _Session:
    messages: list[Entry]
    owner: str | None
    created_ms: int
    updated_ms: int
    ttl_ms: int | None = None  # the session's own TTL, when one was given
    expires_ms: int | None = None  # None = never
    ring: deque[bytes] = field(default_factory=lambda: deque(maxlen=_RING))
    complete: bool = True  # False when a mirror holds only the newest messages


class MemoryBackend:
    """Sessions in a dict. ``max_sessions``/``keep_messages`` bound it (mirror use)."""

    name = "memory"

    def __init__(
        self,
        *,
        ttl_ms: int = 0,
        fixed: bool = False,
        max_messages: int = 0,
        max_sessions: int | None = None,
        keep_messages: int | None = None,
    ) -> None:
        self._default_ttl = ttl_ms
        self._fixed = fixed
        self._max_messages = max_messages
        self._max_sessions = max_sessions
        self._keep = keep_messages
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()

    # -- helpers (call with the lock held) ------------------------------------------

    def _get(self, sid: str, now: int) -> _Session | None:
        session = self._sessions.get(sid)
        if session is None:
            return None
        if session.expires_ms is not None and session.expires_ms <= now:
            del self._sessions[sid]
            return None
        self._sessions.move_to_end(sid)
        return session

    @staticmethod
    def _check_owner(sid: str, session: _Session | None, owner: str | None) -> None:
        if owner is None:
            return
        if session is None:
            return
        if session.owner != owner:
            raise SessionOwnershipError(sid)

    def _expire(self, session: _Session, now: int, ttl_ms: int | None) -> None:
        """Sliding TTLs count from now, fixed ones from the session's creation."""
        if ttl_ms is not None:
            session.ttl_ms = ttl_ms
        ttl = session.ttl_ms if session.ttl_ms is not None else self._default_ttl
        if ttl <= 0:
            session.expires_ms = None
        else:
            session.expires_ms = (session.created_ms if self._fixed else now) + ttl

    def _bound(self, session: _Session) -> None:
        limit = self._max_messages
        if limit and len(session.messages) > limit:
            del session.messages[:-limit]
        keep = self._keep
        if keep and len(session.messages) > keep:
            del session.messages[:-keep]
            session.complete = False

    def _new(self, sid: str, owner: str | None, now: int) -> _Session:
        session = _Session(messages=[], owner=owner, created_ms=now, updated_ms=now)
        self._sessions[sid] = session
        if self._max_sessions is not None:
            while len(self._sessions) > self._max_sessions:
                self._sessions.popitem(last=False)
        return session

    def _write_session(
        self, sid: str, owner: str | None, idem: bytes, now: int
    ) -> tuple[_Session, bool]:
        """(session to write to, made if new; whether ``idem`` was seen)."""
        session = self._get(sid, now)
        self._check_owner(sid, session, owner)
        if session is not None and idem and idem in session.ring:
            return session, True
        if session is None:
            session = self._new(sid, owner, now)
        if idem:
            session.ring.append(idem)
        session.updated_ms = now
        return session, False

    @staticmethod
    def _result(session: _Session, duplicate: bool = False) -> WriteResult:
        return WriteResult(
            length=len(session.messages),
            expires_at_ms=session.expires_ms,
            owner=session.owner,
            duplicate=duplicate,
        )

    # -- operations -----------------------------------------------------------------

    def append(self, op: Append) -> WriteResult:
        now = now_ms()
        with self._lock:
            session, seen = self._write_session(op.session_id, op.owner, op.idem, now)
            if seen:
                return self._result(session, duplicate=True)
            session.messages.extend(op.records)
            self._bound(session)
            self._expire(session, now, op.ttl_ms)
            return self._result(session)

    def replace(self, op: Replace) -> WriteResult:
        now = now_ms()
        with self._lock:
            session, seen = self._write_session(op.session_id, op.owner, op.idem, now)
            if seen:
                return self._result(session, duplicate=True)
            session.messages = list(op.records)
            session.complete = True
            self._bound(session)
            self._expire(session, now, op.ttl_ms)
            return self._result(session)

    def insert(self, op: Insert) -> WriteResult:
        now = now_ms()
        with self._lock:
            session, seen = self._write_session(op.session_id, op.owner, op.idem, now)
            if seen:
                return self._result(session, duplicate=True)
            index = op.index
            if index < 0:
                index = max(len(session.messages) + index, 0)
            session.messages[index:index] = op.records
            self._bound(session)
            self._expire(session, now, None)
            return self._result(session)

    def pop(self, op: Pop) -> PopResult:
        now = now_ms()
        with self._lock:
            session = self._get(op.session_id, now)
            self._check_owner(op.session_id, session, op.owner)
            if session is None:
                return PopResult(None, None, None, 0)
            if op.idem and op.idem in session.ring:
                return PopResult(None, session.expires_ms, session.owner, len(session.messages))
            size = len(session.messages)
            index = op.index + size if op.index < 0 else op.index
            if op.message_id is not None:  # a replayed removal: that message, if still here
                index = _find(session.messages, op.message_id)
            if not 0 <= index < size:
                return PopResult(None, session.expires_ms, session.owner, size)
            if op.idem:
                session.ring.append(op.idem)
            message = _decoded(session.messages.pop(index))
            session.updated_ms = now
            self._expire(session, now, None)
            return PopResult(message, session.expires_ms, session.owner, size - 1)

    def clear(self, op: Clear) -> bool:
        with self._lock:
            session = self._get(op.session_id, now_ms())
            self._check_owner(op.session_id, session, op.owner)
            return self._sessions.pop(op.session_id, None) is not None

    def read(self, op: Read) -> ReadResult:
        now = now_ms()
        with self._lock:
            session = self._get(op.session_id, now)
            self._check_owner(op.session_id, session, op.owner)
            if session is None:
                return ReadResult([], None, None, exists=False)
            if not self._fixed:
                self._expire(session, now, None)
            entries = session.messages
            start = max(len(entries) - op.last, 0) if op.last else 0
            for i in range(start, len(entries)):
                if not isinstance(entries[i], Message):
                    decoded = _decoded(entries[i])
                    if decoded is not None:
                        entries[i] = decoded
            return ReadResult(entries[start:], session.expires_ms, session.owner)

    def ttl(self, op: Ttl) -> float | None:
        now = now_ms()
        with self._lock:
            session = self._get(op.session_id, now)
            if session is None:
                return 0.0
            if session.expires_ms is None:
                return None
            return max(session.expires_ms - now, 0) / 1000

    def _info(self, sid: str, session: _Session) -> SessionInfo:
        return SessionInfo(
            id=sid,
            owner=session.owner,
            message_count=len(session.messages),
            created_at=ms_to_datetime(session.created_ms),
            updated_at=ms_to_datetime(session.updated_ms),
            expires_at=ms_to_datetime(session.expires_ms),
        )

    def info(self, op: Info) -> SessionInfo | None:
        with self._lock:
            session = self._get(op.session_id, now_ms())
            self._check_owner(op.session_id, session, op.owner)
            return None if session is None else self._info(op.session_id, session)

    def sessions(self, op: Sessions) -> list[SessionInfo]:
        now = now_ms()
        with self._lock:
            live = []
            for sid in list(self._sessions):
                session = self._sessions[sid]
                if session.expires_ms is not None and session.expires_ms <= now:
                    del self._sessions[sid]
                    continue
                if op.owner is None or session.owner == op.owner:
                    live.append((sid, session))
            # Most recently active first, as the Redis backend orders by expiry.
            live.sort(key=lambda item: item[1].updated_ms, reverse=True)
            if op.limit is not None:
                live = live[: op.limit]
            return [self._info(sid, session) for sid, session in live]

    def recent(self, op: Recent) -> list[RecentConversation]:
        infos = self.sessions(Sessions(op.owner, op.limit))
        now = now_ms()
        found = []
        with self._lock:
            for info in infos:
                session = self._get(info.id, now)
                entries = session.messages[:TITLE_SCAN] if session else []
                found.append(recent_of(info, [m for m in map(_decoded, entries) if m is not None]))
        return found

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None

    # -- mirror: learn from what the primary did ---------------------------------------

    def absorb(self, op: Op, result: object) -> None:
        """Mirror the effect of ``op`` that the primary carried out with ``result``."""
        if isinstance(op, (Ttl, Info, Sessions, Recent)):
            return
        sid = op.session_id
        now = now_ms()
        with self._lock:
            session = self._get(sid, now)
            if isinstance(op, Clear):
                self._sessions.pop(sid, None)
                return
            if isinstance(op, Read):
                assert isinstance(result, ReadResult)
                if not result.exists:
                    self._sessions.pop(sid, None)
                    return
                if session is None:
                    session = self._new(sid, result.owner, now)
                if not _is_tail(session.messages, result.records):
                    # Keep a longer history the tail agrees with; else take what Redis has.
                    session.messages = list(result.records)
                    session.complete = op.last is None or len(result.records) < op.last
                self._learn(session, result.owner, result.expires_at_ms)
                self._bound(session)
                return
            if isinstance(op, Pop):
                assert isinstance(result, PopResult)
                if session is not None and result.message is not None:
                    index = _find(session.messages, result.message.id)
                    if index >= 0:
                        del session.messages[index]
                    self._learn(session, result.owner, result.expires_at_ms)
                return
            assert isinstance(result, WriteResult)
            if result.duplicate:
                return
            if isinstance(op, Append):
                if session is None:
                    session = self._new(sid, result.owner, now)
                    session.complete = result.length == len(op.records)
                session.messages.extend(op.records)
            elif isinstance(op, Replace):
                if session is None:
                    session = self._new(sid, result.owner, now)
                session.messages = list(op.records)
                session.complete = True
            elif isinstance(op, Insert):
                if session is None or not session.complete:
                    self._sessions.pop(sid, None)
                    return
                index = op.index if op.index >= 0 else max(len(session.messages) + op.index, 0)
                session.messages[index:index] = op.records
            if op.idem:
                session.ring.append(op.idem)
            session.updated_ms = now
            self._learn(session, result.owner, result.expires_at_ms)
            self._bound(session)

    @staticmethod
    def _learn(session: _Session, owner: str | None, expires_at_ms: int | None) -> None:
        if owner is not None:
            session.owner = owner
        if expires_at_ms is None or expires_at_ms > 0:  # negative: not known
            session.expires_ms = expires_at_ms


def _decoded(entry: Entry | str) -> Message | None:
    """The message of an entry; None if its record is undecodable."""
    if isinstance(entry, Message):
        return entry
    try:
        return codec.decode(entry)
    except SerializationError:
        return None


def _same(a: Entry | str, b: Entry | str) -> bool:
    """Whether two entries are the same message (same record bytes, or same id)."""
    if a is b or (type(a) is type(b) and not isinstance(a, Message) and a == b):
        return True
    first, second = _decoded(a), _decoded(b)
    return first is not None and second is not None and first.id == second.id


def _is_tail(entries: list[Entry], tail: list[Entry]) -> bool:
    """Whether ``tail`` is the end of ``entries`` (compared by message id)."""
    if not tail or len(tail) > len(entries):
        return False
    offset = len(entries) - len(tail)
    if entries[offset:] == tail:  # the usual case, compared in C: the same record bytes
        return True
    return all(_same(entries[offset + i], entry) for i, entry in enumerate(tail))


def _find(entries: list[Entry], message_id: str) -> int:
    """Index of the newest entry with ``message_id``, or -1."""
    for i in range(len(entries) - 1, -1, -1):
        entry = _decoded(entries[i])
        if entry is not None:
            entries[i] = entry
            if entry.id == message_id:
                return i
    return -1
