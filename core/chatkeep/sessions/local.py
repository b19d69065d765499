"""Sessions in this process: the ``memory://`` backend and the fallback's mirror.

One class serves both. As the backend of a ``memory://`` store it keeps whole
sessions for the life of the process. As the mirror of a Redis store it is bounded
(``mirror_sessions`` sessions, the newest ``mirror_messages`` of each,
``mirror_max_bytes`` bytes; least recently used sessions go first), learns from
every Redis result (write-through), and serves calls while Redis is unreachable:

* a session keeps what Redis said of it: its owner (never guessed: only an owner
  Redis returned, or one this process wrote), its version (creation time and write
  count) and its whole length, also when only its newest messages are held;
* a change that could overwrite a later write is journaled with the version it saw
  (``expect``), so the replay applies it only if nobody changed the session since;
* an operation by position on a session held only in part (``pop(0)``,
  ``insert(3, ...)``) raises :class:`chatkeep.IncompleteMirrorError` instead of
  guessing; ``pop(-1)`` and other positions from the end within what is held work.

Thread-safe: one lock guards all state; no I/O happens under it. Records are kept as
stored (bytes) and decoded on first read, so reads return exactly what a Redis
round trip returns.
"""

from __future__ import annotations

import builtins
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from .. import codec
from ..clock import now_ms
from ..errors import IncompleteMirrorError, SerializationError, SessionOwnershipError
from ..message import Message
from ..redis.flows import Flow, done
from ..tokens import estimate_tokens, record_role, record_tokens
from ..wording import plural
from . import ops
from .search import search_entries

__all__ = ["LocalSessions"]

_RING = 32  # idempotency keys remembered per session, as in Redis
Entry = codec.Entry


@dataclass(slots=True)
class _Session:
    messages: list[Entry]
    sizes: list[int]
    tokens: list[int]  # each entry's stored token count (records are decoded in place)
    owner: str | None
    created_ms: int
    updated_ms: int
    ttl_ms: int | None = None  # the session's own TTL, when one was given
    expires_ms: int | None = None  # None = never
    ring: deque[bytes] = field(default_factory=lambda: deque(maxlen=_RING))
    length: int = 0  # the whole session's length (may exceed what is held)
    redis_created: int | None = None  # Redis's creation time, when known
    writes: int = 0  # the version: writes Redis counted (+ local ones since)
    bytes: int = 0
    title: str | None = None
    status: str | None = None
    context: dict[str, builtins.bytes] = field(default_factory=dict)  # encoded, as in Redis

    @property
    def complete(self) -> bool:
        return len(self.messages) >= self.length

    def expect(self) -> str:
        """The version a change made now has seen (see ``sessions.ops``)."""
        if self.redis_created is not None:
            return f"{self.redis_created}:{self.writes}"
        return f"*:{self.writes}" if self.writes else "-"


def _size(entry: Entry) -> int:
    return len(entry) if isinstance(entry, bytes) else 256


def _tokens(entry: Entry) -> int:
    return record_tokens(entry) if isinstance(entry, bytes) else estimate_tokens(entry)


def _role(entry: Entry) -> str:
    if isinstance(entry, Message):
        return entry.role
    return record_role(entry) or "?"


def _decoded(entry: Entry | str) -> Message | None:
    """The message of an entry; None if its record is undecodable here (sealed
    records are kept as they are: only their store opens them)."""
    if isinstance(entry, Message):
        return entry
    try:
        return codec.decode(entry)
    except SerializationError:
        return None


def _id_of(entry: Entry | str) -> str | None:
    """The id of an entry's message (sealed records keep it plain)."""
    if isinstance(entry, Message):
        return entry.id
    decoded = _decoded(entry)
    return decoded.id if decoded is not None else codec.record_id(entry)


def _fit(
    entries: list[Entry], tokens: list[int], budget: ops.Budget, complete: bool
) -> tuple[int, list[Entry] | None]:
    """Where the tail that fits in ``budget`` starts, and the leading system entry kept
    apart (the rules of sessions/lua/budget.lua), by the counts the entries were
    stored with. Held only in part (a mirror), the first entry held is not the
    session's first: no system message is looked for."""
    room, first, head = budget.max_tokens, 0, None
    if budget.keep_system and complete and entries and _role(entries[0]) == "system":
        first = 1
        if tokens[0] > room:
            return len(entries), None  # nothing after a system message that does not fit
        head, room = [entries[0]], room - tokens[0]
    start, total = len(entries), 0
    while start > first:
        count = tokens[start - 1]
        if total + count > room:
            break
        total += count
        start -= 1
    return start, head


class LocalSessions:
    """Sessions in a dict; bounded when used as a mirror."""

    name = "memory"

    def __init__(
        self,
        *,
        ttl_ms: int = 0,
        fixed: bool = False,
        max_messages: int = 0,
        max_sessions: int | None = None,
        keep_messages: int | None = None,
        max_bytes: int | None = None,
    ) -> None:
        self._default_ttl = ttl_ms
        self._fixed = fixed
        self._max_messages = max_messages
        self._max_sessions = max_sessions
        self._keep = keep_messages
        self._max_bytes = max_bytes
        self._bytes = 0
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._lock = threading.Lock()

    # -- helpers (call with the lock held) ------------------------------------------

    def _get(self, sid: str, now: int) -> _Session | None:
        session = self._sessions.get(sid)
        if session is None:
            return None
        if session.expires_ms is not None and session.expires_ms <= now:
            self._drop(sid)
            return None
        self._sessions.move_to_end(sid)
        return session

    def _drop(self, sid: str) -> _Session | None:
        session = self._sessions.pop(sid, None)
        if session is not None:
            self._bytes -= session.bytes
        return session

    @staticmethod
    def _check_owner(sid: str, session: _Session | None, owner: str | None) -> None:
        if owner is not None and session is not None and session.owner != owner:
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

    def _set(self, session: _Session, entries: list[Entry]) -> None:
        sizes = [_size(e) for e in entries]
        total = sum(sizes)
        self._bytes += total - session.bytes
        session.messages, session.sizes, session.bytes = list(entries), sizes, total
        session.tokens = [_tokens(e) for e in entries]

    def _add(self, session: _Session, entries: list[Entry], at: int | None = None) -> None:
        sizes = [_size(e) for e in entries]
        tokens = [_tokens(e) for e in entries]
        if at is None:
            session.messages.extend(entries)
            session.sizes.extend(sizes)
            session.tokens.extend(tokens)
        else:
            session.messages[at:at] = entries
            session.sizes[at:at] = sizes
            session.tokens[at:at] = tokens
        added = sum(sizes)
        session.bytes += added
        self._bytes += added

    def _remove(self, session: _Session, index: int) -> Entry:
        entry = session.messages.pop(index)
        size = session.sizes.pop(index)
        session.tokens.pop(index)
        session.bytes -= size
        self._bytes -= size
        return entry

    def _bound(self, sid: str, session: _Session) -> None:
        limit = self._max_messages
        if limit and len(session.messages) > limit:
            self._cut(session, limit)
            session.length = min(session.length, limit)
        keep = self._keep
        if keep and len(session.messages) > keep:
            self._cut(session, keep)
        if self._max_bytes is not None:
            while self._bytes > self._max_bytes and len(self._sessions) > 1:
                oldest = next(iter(self._sessions))
                if oldest == sid:
                    self._sessions.move_to_end(sid)
                    continue
                self._drop(oldest)
            while self._bytes > self._max_bytes and len(session.messages) > 1:
                self._cut(session, len(session.messages) // 2)

    def _cut(self, session: _Session, keep: int) -> None:
        gone = sum(session.sizes[:-keep])
        del session.messages[:-keep]
        del session.sizes[:-keep]
        del session.tokens[:-keep]
        session.bytes -= gone
        self._bytes -= gone

    def _new(self, sid: str, owner: str | None, now: int) -> _Session:
        session = _Session(
            messages=[], sizes=[], tokens=[], owner=owner, created_ms=now, updated_ms=now
        )
        self._sessions[sid] = session
        if self._max_sessions is not None:
            while len(self._sessions) > self._max_sessions:
                self._drop(next(iter(self._sessions)))
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
        session.writes += 1
        return session, False

    @staticmethod
    def _result(session: _Session, duplicate: bool = False) -> ops.WriteResult:
        return ops.WriteResult(
            length=session.length,
            expires_at_ms=session.expires_ms,
            owner=session.owner,
            duplicate=duplicate,
            created_ms=session.redis_created,
            version=session.writes,
        )

    # -- operations -----------------------------------------------------------------

    def run(self, op: ops.Op) -> Flow[Any]:
        """``op`` as a flow that needs no I/O (the ``memory://`` backend)."""
        return done(self.do(op))

    def do(self, op: ops.Op) -> Any:
        if isinstance(op, ops.Append):
            return self._append(op)
        if isinstance(op, ops.Read):
            return self._read(op)
        if isinstance(op, ops.Replace):
            return self._replace(op)
        if isinstance(op, ops.Insert):
            return self._insert(op)
        if isinstance(op, ops.Pop):
            return self._pop(op)
        if isinstance(op, ops.Clear):
            return self._clear(op)
        if isinstance(op, ops.Update):
            return self._update(op)
        if isinstance(op, ops.Ttl):
            return self._ttl(op)
        if isinstance(op, ops.Info):
            return self._info_of(op)
        if isinstance(op, ops.Sessions):
            return self._sessions_of(op)
        if isinstance(op, ops.Search):
            return self._search(op)
        return self._recent(op)

    def _append(self, op: ops.Append) -> ops.WriteResult:
        now = now_ms()
        with self._lock:
            session, seen = self._write_session(op.session_id, op.owner, op.idem, now)
            if seen:
                return self._result(session, duplicate=True)
            self._add(session, list(op.records))
            session.length += len(op.records)
            self._bound(op.session_id, session)
            self._expire(session, now, op.ttl_ms)
            return self._result(session)

    def _update(self, op: ops.Update) -> ops.SessionInfo:
        now = now_ms()
        with self._lock:
            session, _ = self._write_session(op.session_id, op.owner, op.idem, now)
            _apply(session, op)
            self._expire(session, now, op.ttl_ms)
            return self._info(op.session_id, session)

    def _replace(self, op: ops.Replace) -> ops.WriteResult:
        now = now_ms()
        with self._lock:
            session, seen = self._write_session(op.session_id, op.owner, op.idem, now)
            if seen:
                return self._result(session, duplicate=True)
            self._set(session, list(op.records))
            session.length = len(op.records)
            self._bound(op.session_id, session)
            self._expire(session, now, op.ttl_ms)
            return self._result(session)

    def _insert(self, op: ops.Insert) -> ops.WriteResult:
        now = now_ms()
        with self._lock:
            found = self._get(op.session_id, now)
            self._check_owner(op.session_id, found, op.owner)
            index = 0
            if found is not None:  # refuse before changing anything
                index = self._position(op.session_id, found, op.index, inserting=True)
            session, seen = self._write_session(op.session_id, op.owner, op.idem, now)
            if seen:
                return self._result(session, duplicate=True)
            self._add(session, list(op.records), index)
            session.length += len(op.records)
            self._bound(op.session_id, session)
            self._expire(session, now, None)
            return self._result(session)

    @staticmethod
    def _position(sid: str, session: _Session, index: int, *, inserting: bool) -> int:
        """The held position of ``index`` (Python rules; an insert clamps like
        ``list.insert``), or IncompleteMirrorError when it lies in the part of the
        session that is not held."""
        held = len(session.messages)
        if session.length <= held:
            if inserting:
                return max(held + index, 0) if index < 0 else min(index, held)
            return held + index if index < 0 else index
        if index < 0 and -index <= held:
            return held + index
        raise IncompleteMirrorError(
            f"Redis is unreachable and this process holds only the newest "
            f"{held} of {plural(session.length, 'message')} of session {sid!r}; "
            "an operation at that position would have to guess"
        )

    def _pop(self, op: ops.Pop) -> ops.PopResult:
        now = now_ms()
        with self._lock:
            session = self._get(op.session_id, now)
            self._check_owner(op.session_id, session, op.owner)
            if session is None:
                return ops.PopResult(None, None, None, 0)
            if op.idem and op.idem in session.ring:
                return ops.PopResult(None, session.expires_ms, session.owner, session.length)
            held = len(session.messages)
            if op.message_id is not None:  # a replayed removal: that message, if still here
                index = _find(session.messages, op.message_id)
            elif not -session.length <= op.index < session.length:
                return ops.PopResult(None, session.expires_ms, session.owner, session.length)
            else:
                index = self._position(op.session_id, session, op.index, inserting=False)
            if not 0 <= index < held:
                return ops.PopResult(None, session.expires_ms, session.owner, session.length)
            if op.idem:
                session.ring.append(op.idem)
            entry = self._remove(session, index)
            session.length -= 1
            session.writes += 1
            session.updated_ms = now
            self._expire(session, now, None)
            return ops.PopResult(entry, session.expires_ms, session.owner, session.length)

    def _clear(self, op: ops.Clear) -> bool:
        with self._lock:
            session = self._get(op.session_id, now_ms())
            self._check_owner(op.session_id, session, op.owner)
            return self._drop(op.session_id) is not None

    def _read(self, op: ops.Read) -> ops.ReadResult:
        now = now_ms()
        with self._lock:
            session = self._get(op.session_id, now)
            self._check_owner(op.session_id, session, op.owner)
            if session is None:
                return ops.ReadResult([], None, None, exists=False)
            if not self._fixed:
                self._expire(session, now, None)
            entries = session.messages
            head = None
            if op.budget is not None:
                start, head = _fit(entries, session.tokens, op.budget, session.complete)
            else:
                start = max(len(entries) - op.last, 0) if op.last else 0
            for i in range(start, len(entries)):
                if not isinstance(entries[i], Message):
                    decoded = _decoded(entries[i])
                    if decoded is not None:
                        entries[i] = decoded
            return ops.ReadResult(
                entries[start:],
                session.expires_ms,
                session.owner,
                created_ms=session.redis_created,
                version=session.writes,
                length=session.length,
                head=head,
            )

    def _ttl(self, op: ops.Ttl) -> float | None:
        now = now_ms()
        with self._lock:
            session = self._get(op.session_id, now)
            if session is None:
                return 0.0
            if session.expires_ms is None:
                return None
            return max(session.expires_ms - now, 0) / 1000

    def _info(self, sid: str, session: _Session) -> ops.SessionInfo:
        context = {}
        for key, raw in session.context.items():
            try:
                context[key] = context_value(raw)
            except SerializationError:
                continue
        return ops.SessionInfo(
            id=sid,
            owner=session.owner,
            message_count=session.length,
            created_at=ops.ms_to_datetime(session.redis_created or session.created_ms),
            updated_at=ops.ms_to_datetime(session.updated_ms),
            expires_at=ops.ms_to_datetime(session.expires_ms),
            title=session.title,
            status=session.status,
            context=context,
            **_analytics(session),
        )

    def _info_of(self, op: ops.Info) -> ops.SessionInfo | None:
        with self._lock:
            session = self._get(op.session_id, now_ms())
            self._check_owner(op.session_id, session, op.owner)
            return None if session is None else self._info(op.session_id, session)

    def _sessions_of(self, op: ops.Sessions) -> list[ops.SessionInfo]:
        now = now_ms()
        with self._lock:
            live = []
            for sid in list(self._sessions):
                session = self._sessions[sid]
                if session.expires_ms is not None and session.expires_ms <= now:
                    self._drop(sid)
                    continue
                if (op.owner is None or session.owner == op.owner) and (
                    op.status is None or session.status == op.status
                ):
                    live.append((sid, session))
            # Most recently active first, as the Redis family orders by expiry.
            live.sort(key=lambda item: item[1].updated_ms, reverse=True)
            if op.limit is not None:
                live = live[: op.limit]
            return [self._info(sid, session) for sid, session in live]

    def _recent(self, op: ops.Recent) -> list[tuple[ops.SessionInfo, list[Entry]]]:
        infos = self._sessions_of(ops.Sessions(op.owner, op.limit))
        now = now_ms()
        found = []
        with self._lock:
            for info in infos:
                session = self._get(info.id, now)
                head = session.messages[: ops.TITLE_SCAN] if session and session.complete else []
                found.append((info, list(head)))
        return found

    def _search(self, op: ops.Search) -> ops.SearchResult:
        """What ``search.lua`` does, on what is held here (a mirror: the newest
        ``mirror_messages`` of the session, while it is held). Refreshes no TTL."""
        with self._lock:
            session = self._get(op.session_id, now_ms())
            self._check_owner(op.session_id, session, op.owner)
            if session is None:
                return ops.SearchResult([], None, 0)
            entries, owner = list(session.messages), session.owner
        found, scanned = search_entries(entries, op.query, op.limit)  # not under the lock
        return ops.SearchResult(found, owner, scanned)

    def held(self) -> list[tuple[str, str | None, list[Entry]]]:
        """(session id, owner, entries) of every session held (for a restore)."""
        with self._lock:
            return [(sid, s.owner, list(s.messages)) for sid, s in self._sessions.items()]

    # -- mirror: serve while Redis is away ----------------------------------------------

    def serve(self, op: ops.Op) -> tuple[Any, ops.Op | None]:
        """Carry out ``op`` here; return its result and the write to journal."""
        if isinstance(op, ops.Update):
            with self._lock:
                session = self._get(op.session_id, now_ms())
                created = None if session is None else session.redis_created
            op.at_ms, op.made_ms = now_ms(), created
            return self.do(op), op  # merged here; replayed unless changed meanwhile
        if isinstance(op, ops.Search):
            return self.do(op), None
        if isinstance(op, (ops.Append, ops.Read, ops.Ttl, ops.Info, ops.Sessions, ops.Recent)):
            result = self.do(op)
            if isinstance(op, ops.Append) and not result.duplicate:
                # The journal keeps the records only: the decoded messages would double
                # what an outage costs in memory, and replay needs nothing else.
                op.messages = []  # the store made this operation for this call alone
                return result, op
            return result, None
        with self._lock:
            session = self._get(op.session_id, now_ms())
            expect = session.expect() if session is not None else "-"
        if isinstance(op, ops.Clear):
            existed = self._clear(op)
            op.expect = expect
            return existed, (op if existed else None)
        if isinstance(op, ops.Pop):
            popped = self._pop(op)
            if popped.record is None:
                return popped, None
            message_id = _id_of(popped.record)
            if message_id is None:  # undecodable: removable by position only
                raise IncompleteMirrorError(
                    f"Redis is unreachable and the record to remove from session "
                    f"{op.session_id!r} cannot be decoded to name it"
                )
            op.message_id, op.expect = message_id, expect
            return popped, op
        result = self.do(op)
        if result.duplicate:
            return result, None
        op.messages, op.expect = [], expect  # replace, insert: journaled as they are
        return result, op

    # -- mirror: learn from what Redis did -----------------------------------------------

    def absorb(self, op: ops.Op, result: Any) -> None:
        """Mirror the effect of ``op`` that Redis carried out with ``result``."""
        if isinstance(op, ops.Search):
            return  # a search changes nothing, and its records are not a tail
        if isinstance(op, ops.Info):
            self._absorb_info(op.session_id, result)
            return
        if isinstance(op, (ops.Ttl, ops.Sessions, ops.Recent)):
            return
        sid = op.session_id
        now = now_ms()
        with self._lock:
            session = self._get(sid, now)
            if isinstance(op, ops.Clear):
                self._drop(sid)
                return
            created = getattr(result, "created_ms", None)
            if (
                session is not None
                and created is not None
                and session.redis_created is not None
                and created != session.redis_created
            ):
                # Not the session held here: it was deleted and made again (by another
                # process, another owner): what is held belongs to the old one.
                self._drop(sid)
                session = None
            if isinstance(op, ops.Read):
                self._absorb_read(sid, session, op, result, now)
                return
            if isinstance(op, ops.Update):
                # Redis answered with the whole metadata: hold it as it is there.
                if session is not None:
                    _hold_metadata(session, result)
                return
            if isinstance(op, ops.Pop):
                if session is not None and result.record is not None:
                    message_id = _id_of(result.record)
                    index = -1 if message_id is None else _find(session.messages, message_id)
                    if index >= 0:
                        self._remove(session, index)
                    self._learn(session, result.owner, result.expires_at_ms, result)
                    session.length = result.length
                return
            if result.duplicate:
                return
            if isinstance(op, ops.Append):
                if session is None:
                    session = self._new(sid, result.owner, now)
                    session.length = result.length - len(op.records)
                self._add(session, list(op.records))
            elif isinstance(op, ops.Replace):
                if session is None:
                    session = self._new(sid, result.owner, now)
                self._set(session, list(op.records))
            elif isinstance(op, ops.Insert):
                if session is None or not session.complete:
                    self._drop(sid)
                    return
                index = op.index if op.index >= 0 else max(len(session.messages) + op.index, 0)
                self._add(session, list(op.records), min(index, len(session.messages)))
            if op.idem:
                session.ring.append(op.idem)
            session.updated_ms = now
            session.length = result.length
            self._learn(session, result.owner, result.expires_at_ms, result)
            self._bound(sid, session)

    def _absorb_info(self, sid: str, info: ops.SessionInfo | None) -> None:
        """What an info read said of a session held here: its metadata and length."""
        if info is None:
            return
        with self._lock:
            session = self._get(sid, now_ms())
            if session is not None:
                _hold_metadata(session, info)
                session.length = max(session.length, info.message_count)

    def _absorb_read(
        self, sid: str, session: _Session | None, op: ops.Read, result: ops.ReadResult, now: int
    ) -> None:
        if not result.exists:
            self._drop(sid)
            return
        if session is None:
            session = self._new(sid, result.owner, now)
        records, whole = result.records, op.last is None or len(result.records) < op.last
        if op.budget is not None:  # a tail of the session (and its system message apart)
            held = len(records) + (1 if result.head else 0)
            whole = result.length is not None and held >= result.length
            if whole and result.head:
                records = [*result.head, *records]
            elif not records:  # nothing to learn about the messages but their number
                if result.length is not None:
                    session.length = max(session.length, result.length)
                self._learn(session, result.owner, result.expires_at_ms, result)
                self._bound(sid, session)
                return
        if not _is_tail(session.messages, records):
            # Keep a longer history the tail agrees with; else take what Redis has.
            self._set(session, list(records))
        if whole:
            session.length = len(records)
        elif result.length is not None:  # as of just before the records were read
            session.length = max(result.length, len(records))
        else:
            session.length = max(session.length, len(session.messages))
        session.owner = result.owner  # Redis said so in this call (None: no owner)
        self._learn(session, result.owner, result.expires_at_ms, result)
        self._bound(sid, session)

    @staticmethod
    def _learn(
        session: _Session,
        owner: str | None,
        expires_at_ms: int | None,
        result: ops.WriteResult | ops.ReadResult | ops.PopResult,
    ) -> None:
        if owner is not None:
            session.owner = owner
        if expires_at_ms is None or expires_at_ms > 0:  # negative: not known
            session.expires_ms = expires_at_ms
        if result.created_ms is not None:
            session.redis_created = result.created_ms
            session.writes = result.version


def _analytics(session: _Session) -> dict[str, Any]:
    """Messages by role and tokens, from what is held when it is the whole session
    (a mirror holding part of one knows neither)."""
    if not session.complete:
        return {}
    roles: dict[str, int] = {}
    for entry in session.messages:
        role = _role(entry)
        roles[role] = roles.get(role, 0) + 1
    return {"messages_by_role": roles, "tokens": sum(session.tokens)}


def _apply(session: _Session, op: ops.Update) -> None:
    """The metadata changes of ``op`` (see update.lua)."""
    if not isinstance(op.title, ops.Keep):
        session.title = op.title
    if not isinstance(op.status, ops.Keep):
        session.status = op.status
    for key, value in op.context:
        if value is None:
            session.context.pop(key, None)
        else:
            session.context[key] = value


def _hold_metadata(session: _Session, info: ops.SessionInfo) -> None:
    session.title, session.status = info.title, info.status
    session.context = {k: encode_context(v) for k, v in info.context.items()}


def encode_context(value: Any) -> bytes:
    """A context value as Redis keeps it: ``j`` or ``b`` (bytes tagged), then its JSON."""
    data, tagged = codec.encode_value(value, 1 << 62, "context value")
    return (b"b" if tagged else b"j") + data


def context_value(raw: bytes) -> Any:
    """The inverse of :func:`encode_context`. Raises :class:`SerializationError`."""
    if raw[:1] not in (b"j", b"b"):
        raise SerializationError("stored context entry has an unknown form")
    return codec.decode_value(raw[1:], raw[:1] == b"b")


def _same(a: Entry | str, b: Entry | str) -> bool:
    """Whether two entries are the same message (same record bytes, or same id)."""
    if a is b or (type(a) is type(b) and not isinstance(a, Message) and a == b):
        return True
    first, second = _id_of(a), _id_of(b)
    return first is not None and first == second


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
        elif codec.record_id(entries[i]) == message_id:
            return i
    return -1
