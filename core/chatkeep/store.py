"""ConversationStore (sync) and AsyncConversationStore: the public face of chatkeep.

All policy lives in :class:`_StoreBase`: argument validation, encoding, size limits,
idempotency keys, TTLs, decoding, and every operation as one flow (see
:mod:`chatkeep.redis.flows`). The twins only drive those flows, one with blocking
I/O and one with asyncio, like httpx's ``Client``/``AsyncClient``: their public
methods are made from the flows by :func:`~chatkeep.redis.flows.sync_method` and
:func:`~chatkeep.redis.flows.async_method`.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack
from time import perf_counter
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from pydantic import ValidationError
from typing_extensions import Unpack

from . import codec
from .config import StoreConfig, StoreOptions, ttl_ms
from .errors import (
    ChatkeepError,
    ConfigurationError,
    ConflictError,
    InvalidArgumentError,
    InvalidMessageError,
    MessageTooLargeError,
    ValueTooLargeError,
)
from .keys import utf8_text, validate_id
from .message import Message
from .metrics import Metrics, MetricsSnapshot
from .redis.connection import Connection
from .redis.flows import Flow, async_method, sync_method
from .redis.stores import (
    Awaiting,
    Blocking,
    FamilyStore,
    keywords_of,
    resolve_config,
    with_url,
)
from .sessions import ops
from .sessions.local import LocalSessions, encode_context
from .sessions.redis import RedisSessions
from .sessions.search import matches, search_query
from .status import StoreStatus
from .tokens import TokenCounter, estimate_tokens
from .wording import a_or_an

if TYPE_CHECKING:
    from .locks import AsyncSessionLock, SessionLock
    from .updates import AsyncSubscription, LocalHub, Subscription

__all__ = [
    "AsyncConversationStore",
    "ConversationStore",
    "ConversationStoreOptions",
    "MessagesInput",
    "UNSET",
]

logger = logging.getLogger("chatkeep")

MessagesInput = Message | Mapping[str, Any] | Sequence[Message | Mapping[str, Any]]
"""One message or a sequence of them; mappings are validated into :class:`Message`."""


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final[Any] = _Unset()
"""Default of ``ttl=`` arguments: keep the session's TTL (or the store default)."""

S = TypeVar("S", bound="_StoreBase")
T = TypeVar("T")

MAX_TITLE = 1024  # characters of a session title
MAX_STATUS = 64  # characters of a session status
MAX_CONTEXT_KEY = 256  # characters of a context key

CallHook = Callable[[str], AbstractContextManager[Any]]
"""Called with the operation kind around every store call (OpenTelemetry spans)."""


class ConversationStoreOptions(StoreOptions, total=False):
    """What :meth:`ConversationStore.from_url` and ``from_env`` take: the store options
    and the constructor's keywords."""

    client: Any
    on_state_change: Callable[[str, StoreStatus], None] | None
    on_conflict: Callable[[ConflictError], None] | None
    twin: ConversationStore | AsyncConversationStore | None
    token_counter: TokenCounter | None


class _IdempotencyKeys:
    """16-byte keys: a caller's key is hashed; otherwise process token + counter."""

    def __init__(self) -> None:
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._token = os.urandom(8)
        self._counter = itertools.count(1)

    def make(self, key: str | bytes | None) -> bytes:
        if key is None:
            return self._token + next(self._counter).to_bytes(8, "big")
        if isinstance(key, str):
            key = key.encode()
        elif not isinstance(key, bytes):
            raise InvalidArgumentError("idempotency_key must be str or bytes")
        return hashlib.blake2b(key, digest_size=16).digest()


_IDEMPOTENCY = _IdempotencyKeys()


def _ttl(ttl: Any) -> int | None:
    """A ``ttl=`` argument in milliseconds: None = not given, 0 = never expires."""
    return None if ttl is UNSET else ttl_ms(ttl)


class _StoreBase(FamilyStore):
    """Shared policy of both stores: every operation as a flow. Not for direct use."""

    _hub: LocalHub | None = None  # in-process subscribers (memory://), made on first subscribe
    _local: LocalSessions | None
    _family: RedisSessions | None

    def __init__(
        self,
        config: StoreConfig | None = None,
        *,
        client: Any = None,
        on_state_change: Callable[[str, StoreStatus], None] | None = None,
        on_conflict: Callable[[ConflictError], None] | None = None,
        twin: ConversationStore | AsyncConversationStore | None = None,
        token_counter: TokenCounter | None = None,
        **options: Unpack[StoreOptions],
    ) -> None:
        """``config`` (a :class:`StoreConfig`), or options: every ``StoreConfig`` field
        as a keyword (``url``, ``key_prefix``, ``ttl``, ``fallback``...); options not
        given come from the ``CHATKEEP_*`` variables (the URL also from ``REDIS_URL``)."""
        asyncio = self._asyncio
        if token_counter is not None and not callable(token_counter):
            raise ConfigurationError("token_counter must be a callable Message -> int")
        if token_counter is None and isinstance(twin, _StoreBase):
            token_counter = twin._count
        self._count: TokenCounter = token_counter or estimate_tokens
        self._on_state_change = on_state_change
        self._on_conflict = on_conflict
        self._decoder = codec.RecordDecoder(strict=False, logger=logger)
        self._metrics = Metrics()
        self._hooks: list[CallHook] = []
        if twin is not None:
            self.config = resolve_config(
                config, options, what=type(self).__name__, accepted=keywords_of(type(self))
            )
            self._join(twin, client, asynchronous=asyncio)
        else:
            self._open(config, options, client, asyncio=asyncio)
            self._local = None
            self._family = None
            if self._connection is not None:
                self._family = self._make_family(self._connection)
        config = self.config
        self._decoder.strict = config.strict
        self._decoder.sealing = config.sealing
        self._sealing = config.sealing if config.sealing.active else None
        self._ttl_ms = 0 if config.ttl is None else round(config.ttl * 1000)
        self._publish = config.publish
        if twin is None and self._connection is None:
            self._local = LocalSessions(
                ttl_ms=self._ttl_ms,
                fixed=config.ttl_mode == "fixed",
                max_messages=config.max_messages or 0,
            )
        if self._connection is not None and self._connection.circuit is not None:
            self._connection.circuit.listen(self._notify)
        if self._family is not None:
            self._family.conflict_hooks.append(self._conflict)

    def _make_family(self, connection: Connection) -> RedisSessions:
        config = self.config
        ttl = 0 if config.ttl is None else round(config.ttl * 1000)
        fixed = config.ttl_mode == "fixed"
        limit = config.max_messages or 0
        self._route(
            RedisSessions(
                connection, prefix=config.prefix, ttl_ms=ttl, fixed=fixed, max_messages=limit
            ),
            ("sessions", config.prefix, ttl, fixed, limit, config.mirror_sessions,
             config.mirror_messages, config.mirror_max_bytes),
            lambda: LocalSessions(
                ttl_ms=ttl,
                fixed=fixed,
                max_messages=limit,
                max_sessions=config.mirror_sessions,
                keep_messages=config.mirror_messages,
                max_bytes=config.mirror_max_bytes,
            ),
        )  # fmt: skip
        assert isinstance(self._family, RedisSessions)
        return self._family

    @classmethod
    def from_url(  # type: ignore[override]
        cls: type[S], url: str | None = None, /, **options: Unpack[ConversationStoreOptions]
    ) -> S:
        """A store for a ``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``,
        ``redis+sentinel://`` or ``memory://`` URL; other options as the constructor's
        (those not given come from the ``CHATKEEP_*`` variables)."""
        return cls(**with_url(url, options))

    @classmethod
    def from_env(cls: type[S], **options: Unpack[ConversationStoreOptions]) -> S:
        """A store configured from ``CHATKEEP_*`` variables (keyword arguments win),
        as every constructor without a ``config`` is."""
        return cls(**options)

    def _join(self, twin: Any, client: Any, *, asynchronous: bool) -> None:
        """Share ``twin``'s connection, circuit, mirror and journal (a sync store and
        its asyncio twin see one history in an outage and replay it once)."""
        if not isinstance(twin, _StoreBase):
            raise ConfigurationError(
                "twin must be a chatkeep ConversationStore or AsyncConversationStore"
            )
        if twin.config != self.config:
            raise ConfigurationError(
                "a twin needs the same configuration (URL, prefix, TTL, fallback)"
            )
        self._local = twin._local
        connection = twin._connection
        if connection is not None:
            if client is not None:
                connection.adopt(client)
            connection.acquire(asynchronous=asynchronous)
        self._connection = connection
        self._family = twin._family

    # -- notifications --------------------------------------------------------------------

    def _notify(self, event: str) -> None:
        if self._on_state_change is not None:
            self._on_state_change(event, self.status())

    def _conflict(self, op: Any, error: BaseException) -> None:
        if self._on_conflict is not None and isinstance(error, ConflictError):
            self._on_conflict(error)

    # -- validation and encoding (one place for both twins) -----------------------------

    @staticmethod
    def _sid(session_id: object) -> str:
        return validate_id(session_id)

    @staticmethod
    def _owner(owner: object) -> str | None:
        return None if owner is None else validate_id(owner, "owner")

    def _messages(self, messages: object, sid: str) -> tuple[list[Message], list[bytes]]:
        if isinstance(messages, (Message, Mapping)):
            items: Sequence[Any] = [messages]
        elif isinstance(messages, Sequence) and not isinstance(messages, (str, bytes)):
            items = messages
        else:
            raise InvalidMessageError(
                f"expected a Message or a sequence of Messages, got {type(messages).__name__}"
            )
        parsed: list[Message] = []
        for i, item in enumerate(items):
            if isinstance(item, Message):
                parsed.append(item)
            elif isinstance(item, Mapping):
                try:
                    parsed.append(Message.model_validate(item))
                except ValidationError as exc:
                    raise InvalidMessageError(
                        f"message {i} is not valid: "
                        + "; ".join(
                            f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                            for e in exc.errors(include_input=False, include_url=False)
                        )
                    ) from None
            else:
                raise InvalidMessageError(
                    f"message {i} is {a_or_an(type(item).__name__)}, not a Message or mapping"
                )
        limit = self.config.max_message_bytes
        records = []
        for i, message in enumerate(parsed):
            record = codec.encode(message, self._tokens(message, i))
            if len(record) > limit:
                raise MessageTooLargeError(len(record), limit, i)
            records.append(record)
        if self._sealing is not None:  # the limit is on the plain record, whatever the store
            records = [codec.seal_record(record, self._sealing, sid) for record in records]
        return parsed, records

    def _tokens(self, message: Message, i: int) -> int:
        try:
            count = self._count(message)
        except Exception as exc:
            raise InvalidMessageError(
                f"token_counter failed on message {i}: {type(exc).__name__}"
            ) from exc
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ConfigurationError(
                f"token_counter returned {a_or_an(type(count).__name__)}, not an int >= 0"
            )
        return count

    @staticmethod
    def _title(title: object) -> str | None:
        if title is not None and (not isinstance(title, str) or len(title) > MAX_TITLE):
            raise InvalidArgumentError(
                f"title must be None or a str of at most {MAX_TITLE} characters"
            )
        return None if title is None else utf8_text(title, "title")

    @staticmethod
    def _status_text(status: object) -> str:
        if not isinstance(status, str) or not 1 <= len(status) <= MAX_STATUS:
            raise InvalidArgumentError(f"status must be a str of 1..{MAX_STATUS} characters")
        return utf8_text(status, "status")

    def _context(self, context: object) -> list[tuple[str, bytes | None]]:
        if context is None:
            return []
        if not isinstance(context, Mapping):
            raise InvalidArgumentError("context must be a mapping of str keys to JSON values")
        entries: list[tuple[str, bytes | None]] = []
        total = 0
        for key, value in context.items():
            if not isinstance(key, str) or not 1 <= len(key) <= MAX_CONTEXT_KEY:
                raise InvalidArgumentError(
                    f"context keys must be str of 1..{MAX_CONTEXT_KEY} characters"
                )
            utf8_text(key, "a context key")
            encoded = None if value is None else encode_context(value)
            total += len(key) + len(encoded or b"")
            entries.append((key, encoded))
        limit = self.config.max_message_bytes
        if total > limit:
            raise ValueTooLargeError(total, limit, "context")
        return entries

    @staticmethod
    def _budget(max_tokens: object, last: int | None) -> int | None:
        if max_tokens is None:
            return None
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
            raise InvalidArgumentError("max_tokens must be None or an int >= 0")
        if last is not None:
            raise InvalidArgumentError("give last or max_tokens, not both")
        return max_tokens

    @staticmethod
    def _last(last: object) -> int | None:
        if last is None:
            return None
        if isinstance(last, bool) or not isinstance(last, int) or last < 0:
            raise InvalidArgumentError("last must be None or an int >= 0")
        return last

    @staticmethod
    def _index(index: object) -> int:
        if isinstance(index, bool) or not isinstance(index, int):
            raise InvalidArgumentError("index must be an int")
        return index

    @staticmethod
    def _limit(limit: object) -> int | None:
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise InvalidArgumentError("limit must be None or an int >= 1")
        return limit

    @staticmethod
    def _into(into: object) -> codec.Conversion[Any] | None:
        if into is None or isinstance(into, codec.Conversion):
            return into
        raise InvalidArgumentError("into must be a chatkeep.Conversion")

    # -- the one place where calls meet the circuit ---------------------------------------

    def _call(self, op: ops.Op) -> Flow[Any]:
        """``op`` through the circuit (or the local backend), measured and observed."""
        if self._closed:
            raise InvalidArgumentError("this store is closed")
        kind = op.kind
        started = perf_counter()
        try:
            if self._hooks:
                with ExitStack() as stack:
                    for hook in self._hooks:
                        stack.enter_context(hook(kind))
                    return (yield from FamilyStore._call(self, op))
            return (yield from FamilyStore._call(self, op))
        except ChatkeepError as exc:
            self._metrics.failed(exc)
            raise
        finally:
            self._metrics.observe(kind, perf_counter() - started)

    # -- operations, each written once (the twins drive them) ----------------------------

    def _append(
        self,
        session_id: str,
        messages: MessagesInput,
        *,
        owner: str | None = None,
        idempotency_key: str | bytes | None = None,
        ttl: float | None = UNSET,
    ) -> Flow[int]:
        """Append messages (one atomic round trip) and return the session's new length.

        A retried call with the same ``idempotency_key`` is stored once.
        ``ttl`` (seconds, or None for never) becomes the session's own TTL.
        """
        sid = self._sid(session_id)
        parsed, records = self._messages(messages, sid)
        checked_owner = self._owner(owner)
        op = ops.Append(
            sid, parsed, records, checked_owner, _IDEMPOTENCY.make(idempotency_key), _ttl(ttl)
        )
        if not parsed:  # nothing to write: report the length as it is
            info = yield from self._call(ops.Info(sid, checked_owner))
            return info.message_count if info else 0
        op.publish = self._publish
        result = yield from self._call(op)
        if self._hub is not None and not result.duplicate:
            self._hub.publish(sid, parsed)
        return int(result.length)

    def _read(
        self,
        session_id: str,
        last: int | None,
        owner: str | None,
        into: Any,
        *,
        max_tokens: int | None = None,
        keep_system: bool = True,
    ) -> Flow[list[Any]]:
        sid = self._sid(session_id)
        count = self._last(last)
        budget = self._budget(max_tokens, count)
        conversion = self._into(into)
        checked_owner = self._owner(owner)
        if count == 0:
            return []
        op = ops.Read(sid, count, checked_owner, conversion)
        if budget is not None:
            op.budget = ops.Budget(budget, bool(keep_system))
        result: ops.ReadResult = yield from self._call(op)
        # After the mirror took the records as they are: decode (or convert) them once.
        records = result.records if not result.head else [*result.head, *result.records]
        return self._decoder.convert_all(records, sid, conversion)

    def _replace(
        self,
        session_id: str,
        messages: MessagesInput,
        *,
        owner: str | None = None,
        ttl: float | None = UNSET,
    ) -> Flow[int]:
        """Replace the whole history atomically (readers never see it half-done)."""
        sid = self._sid(session_id)
        parsed, records = self._messages(messages, sid)
        op = ops.Replace(
            sid, parsed, records, self._owner(owner), _IDEMPOTENCY.make(None), _ttl(ttl)
        )
        result = yield from self._call(op)
        return int(result.length)

    def _insert(
        self, session_id: str, index: int, messages: MessagesInput, *, owner: str | None = None
    ) -> Flow[int]:
        """Insert messages before ``index`` (``list.insert`` rules); return the new length."""
        sid = self._sid(session_id)
        position = self._index(index)
        parsed, records = self._messages(messages, sid)
        op = ops.Insert(sid, parsed, records, self._owner(owner), _IDEMPOTENCY.make(None), position)
        result = yield from self._call(op)
        return int(result.length)

    def _pop(
        self, session_id: str, index: int = -1, *, owner: str | None = None
    ) -> Flow[Message | None]:
        """Remove and return the message at ``index`` (default the last); None if out of range."""
        sid = self._sid(session_id)
        op = ops.Pop(sid, self._index(index), self._owner(owner), _IDEMPOTENCY.make(None))
        result: ops.PopResult = yield from self._call(op)
        if result.record is None:
            return None
        found = self._decoder.decode_all([result.record], sid)
        return found[0] if found else None

    def _clear(self, session_id: str, *, owner: str | None = None) -> Flow[bool]:
        """Delete the session (messages and metadata); True if it existed."""
        return bool((yield from self._call(ops.Clear(self._sid(session_id), self._owner(owner)))))

    def _ttl(self, session_id: str) -> Flow[float | None]:
        """Seconds until the session expires; None if it never does; 0.0 if it does not exist."""
        result: float | None = yield from self._call(ops.Ttl(self._sid(session_id)))
        return result

    def _info(self, session_id: str, *, owner: str | None = None) -> Flow[ops.SessionInfo | None]:
        """What is known about a session, or None if it does not exist."""
        result: ops.SessionInfo | None = yield from self._call(
            ops.Info(self._sid(session_id), self._owner(owner))
        )
        return result

    def _recent(
        self, *, owner: str | None = None, limit: int | None = 20
    ) -> Flow[list[ops.RecentConversation]]:
        """Live sessions (of one owner), most recent first, each titled with the start
        of its first user message: a "recent conversations" list. Two or three round
        trips for the whole page; no session's TTL is refreshed."""
        found = yield from self._call(ops.Recent(self._owner(owner), self._limit(limit)))
        return [
            ops.recent_of(info, self._decoder.decode_all(head, info.id)) for info, head in found
        ]

    def _sessions(
        self, *, owner: str | None = None, status: str | None = None, limit: int | None = None
    ) -> Flow[list[ops.SessionInfo]]:
        """Live sessions (of one owner, with one status), most recently active first.
        Uses the session index, never KEYS or a keyspace SCAN."""
        checked = None if status is None else self._status_text(status)
        result: list[ops.SessionInfo] = yield from self._call(
            ops.Sessions(self._owner(owner), self._limit(limit), checked)
        )
        return result

    def _update_session(
        self,
        session_id: str,
        *,
        title: str | None = UNSET,
        status: str | None = UNSET,
        context: Mapping[str, Any] | None = None,
        owner: str | None = None,
        ttl: float | None = UNSET,
    ) -> Flow[ops.SessionInfo]:
        """Set the session's title and status (None removes one) and merge ``context``
        into its context (a key given None is removed), in one atomic round trip;
        creates the session if needed, touches no message. Returns the session's info
        as it is after the change."""
        sid = self._sid(session_id)
        op = ops.Update(
            sid,
            self._owner(owner),
            ops.KEEP if title is UNSET else self._title(title),
            ops.KEEP
            if status is UNSET
            else (None if status is None else self._status_text(status)),
            self._context(context),
            _IDEMPOTENCY.make(None),
            _ttl(ttl),
        )
        result: ops.SessionInfo = yield from self._call(op)
        return result

    def _search(
        self, session_id: str, query: str, *, limit: int = 10, owner: str | None = None
    ) -> Flow[list[Message]]:
        """Messages of the session whose text or tool-call arguments contain ``query``
        (case-insensitive), newest first, at most ``limit``. Looks at the newest
        ``SEARCH_BOUND`` (2,000) messages at most; on Redis one script call, no
        RediSearch needed; refreshes no TTL. During an outage: what the fallback's
        mirror holds of the session. See :mod:`chatkeep.sessions.search`."""
        sid = self._sid(session_id)
        folded, count = search_query(query, limit)
        result: ops.SearchResult = yield from self._call(
            ops.Search(sid, folded, count, self._owner(owner))
        )
        found = self._decoder.decode_all(result.records, sid)
        if len(found) <= count and not any(map(codec.is_sealed, result.records)):
            return found
        # Sealed records (compressed or encrypted) are matched here, after opening:
        # the server (and the fallback) send them as candidates.
        return [message for message in found if matches(message, folded)][:count]

    # -- status -------------------------------------------------------------------------

    def status(self) -> StoreStatus:
        """Where calls go now and what the fallback has been through (no I/O)."""
        return self._status(
            self._decoder.skipped + (self._family.bad_hashes if self._family else 0)
        )

    def metrics(self) -> MetricsSnapshot:
        """Counters since the store was made: operations, errors by kind, fallback
        transitions, journal size, replayed writes, skipped records, latency (no I/O)."""
        circuit = None if self._connection is None else self._connection.circuit
        return self._metrics.snapshot(circuit, self.status().skipped_records)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(url={self.config.safe_url!r}, prefix={self.config.prefix!r}, "
            f"fallback={self.config.fallback!r})"
        )

    def _closing_flow(self) -> Flow[None]:
        if self._connection is not None and self._connection.circuit is not None:
            self._connection.circuit.unlisten(self._notify)
        yield from FamilyStore._closing_flow(self)


class ConversationStore(_StoreBase, Blocking):
    """Conversation memory in Redis (or memory), with TTL and transparent fallback.

    Thread-safe: one store (one connection pool) serves every thread and session.

    >>> store = ConversationStore.from_url("memory://")
    >>> store.append("s1", Message(role="user", content="hi"))
    1
    """

    append = sync_method(_StoreBase._append)
    replace = sync_method(_StoreBase._replace)
    insert = sync_method(_StoreBase._insert)
    pop = sync_method(_StoreBase._pop)
    clear = sync_method(_StoreBase._clear)
    ttl = sync_method(_StoreBase._ttl)
    info = sync_method(_StoreBase._info)
    recent = sync_method(_StoreBase._recent)
    sessions = sync_method(_StoreBase._sessions)
    update_session = sync_method(_StoreBase._update_session)
    flush = sync_method(_StoreBase._flush)
    search = sync_method(_StoreBase._search)

    @overload
    def messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        owner: str | None = None,
        max_tokens: int | None = None,
        keep_system: bool = True,
    ) -> list[Message]: ...

    @overload
    def messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        owner: str | None = None,
        into: codec.Conversion[T],
        max_tokens: int | None = None,
        keep_system: bool = True,
    ) -> list[T]: ...

    def messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        owner: str | None = None,
        into: codec.Conversion[Any] | None = None,
        max_tokens: int | None = None,
        keep_system: bool = True,
    ) -> list[Any]:
        """The session's messages, oldest first; ``last=k`` reads only the newest k.
        ``max_tokens=N`` reads the newest messages whose token counts (stored at write
        time, see ``token_counter``) add up to at most N, never part of a message; with
        ``keep_system`` a leading system message is counted first and kept when it fits.
        ``into`` builds another message type straight from the stored records."""
        return self._drive(
            self._read(
                session_id, last, owner, into, max_tokens=max_tokens, keep_system=keep_system
            )
        )

    def lock(
        self,
        session_id: str,
        *,
        timeout: float | None = 30.0,
        blocking_timeout: float | None = None,
    ) -> SessionLock:
        """A per-session distributed lock (``with store.lock(sid):``) so two workers never
        interleave one turn. ``timeout``: seconds the lock lives if its holder dies;
        ``blocking_timeout``: seconds to wait (None = no limit), then LockTimeoutError."""
        from .locks import SessionLock

        return SessionLock(self, session_id, timeout, blocking_timeout)

    def subscribe(self, session_id: str) -> Subscription:
        """Messages appended to the session by any process (stores with ``publish=True``),
        as they are appended: ``with store.subscribe(sid) as updates: for m in updates``."""
        from .updates import Subscription

        return Subscription(self, session_id)


class AsyncConversationStore(_StoreBase, Awaiting):
    """The asyncio twin of :class:`ConversationStore` on ``redis.asyncio``: same
    names, awaited; no thread offloading."""

    append = async_method(_StoreBase._append)
    replace = async_method(_StoreBase._replace)
    insert = async_method(_StoreBase._insert)
    pop = async_method(_StoreBase._pop)
    clear = async_method(_StoreBase._clear)
    ttl = async_method(_StoreBase._ttl)
    info = async_method(_StoreBase._info)
    recent = async_method(_StoreBase._recent)
    sessions = async_method(_StoreBase._sessions)
    update_session = async_method(_StoreBase._update_session)
    flush = async_method(_StoreBase._flush)
    search = async_method(_StoreBase._search)

    @overload
    async def messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        owner: str | None = None,
        max_tokens: int | None = None,
        keep_system: bool = True,
    ) -> list[Message]: ...

    @overload
    async def messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        owner: str | None = None,
        into: codec.Conversion[T],
        max_tokens: int | None = None,
        keep_system: bool = True,
    ) -> list[T]: ...

    async def messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        owner: str | None = None,
        into: codec.Conversion[Any] | None = None,
        max_tokens: int | None = None,
        keep_system: bool = True,
    ) -> list[Any]:
        """:meth:`ConversationStore.messages`, awaited."""
        return await self._adrive(
            self._read(
                session_id, last, owner, into, max_tokens=max_tokens, keep_system=keep_system
            )
        )

    def lock(
        self,
        session_id: str,
        *,
        timeout: float | None = 30.0,
        blocking_timeout: float | None = None,
    ) -> AsyncSessionLock:
        """A per-session distributed lock: ``async with astore.lock(sid):``."""
        from .locks import AsyncSessionLock

        return AsyncSessionLock(self, session_id, timeout, blocking_timeout)

    def subscribe(self, session_id: str) -> AsyncSubscription:
        """Messages appended to the session by any process, as they are appended:
        ``async with astore.subscribe(sid) as updates: async for m in updates``."""
        from .updates import AsyncSubscription

        return AsyncSubscription(self, session_id)
