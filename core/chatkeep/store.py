"""ConversationStore (sync) and AsyncConversationStore: the public face of chatkeep.

All policy lives in :class:`_StoreBase`: argument validation, encoding, size limits,
idempotency keys, TTL conversion, backend choice and status. The twins differ only
in how they wait for I/O, like httpx's ``Client``/``AsyncClient``.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, TypeVar, overload

from pydantic import ValidationError

from . import codec
from .backends import build_backend
from .backends.base import Unreachable
from .backends.fallback import Fallback, Route
from .backends.memory import MemoryBackend
from .config import StoreConfig
from .errors import (
    BackendUnavailableError,
    ChatkeepError,
    ConfigurationError,
    InvalidArgumentError,
    InvalidMessageError,
    MessageTooLargeError,
)
from .keys import validate_id
from .message import Message
from .metrics import Metrics, MetricsSnapshot
from .ops import (
    Append,
    Clear,
    Info,
    Insert,
    Op,
    Pop,
    Read,
    ReadResult,
    Recent,
    RecentConversation,
    Replace,
    SessionInfo,
    Sessions,
    StoreStatus,
    Ttl,
)

if TYPE_CHECKING:
    from .coordination import (
        AsyncSessionLock,
        AsyncSubscription,
        LocalHub,
        SessionLock,
        Subscription,
    )

__all__ = ["AsyncConversationStore", "ConversationStore", "MessagesInput", "UNSET"]

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


class _StoreBase:
    """Shared policy of both stores. Not for direct use."""

    config: StoreConfig
    _hub: LocalHub | None = None  # in-process subscribers (memory://), made on first subscribe

    def __init__(
        self,
        config: StoreConfig | None,
        options: dict[str, Any],
        on_state_change: Callable[[str, StoreStatus], None] | None,
    ) -> None:
        if config is None:
            config = StoreConfig.create(**options)
        elif options:
            config = config.replace(**options)
        elif not isinstance(config, StoreConfig):
            raise InvalidArgumentError("config must be a chatkeep.StoreConfig")
        self.config = config
        self._on_state_change = on_state_change
        self._ttl_ms = 0 if config.ttl is None else round(config.ttl * 1000)
        self._decoder = codec.RecordDecoder(strict=config.strict, logger=logger)
        self._metrics = Metrics()
        self._closed = False

    def _make_fallback(self, primary_name: str) -> Fallback | None:
        if self.config.fallback != "memory" or primary_name == "memory":
            return None
        mirror = MemoryBackend(
            ttl_ms=self._ttl_ms,
            fixed=self.config.ttl_mode == "fixed",
            max_messages=self.config.max_messages or 0,
            max_sessions=self.config.mirror_sessions,
            keep_messages=self.config.mirror_messages,
        )
        return Fallback(
            mirror=mirror,
            journal_size=self.config.journal_size,
            probe_interval=self.config.probe_interval,
            probe_max=self.config.probe_max,
            logger=logger,
            notify=self._notify,
        )

    def _notify(self, event: str) -> None:
        if self._on_state_change is not None:
            self._on_state_change(event, self.status())

    # -- validation and encoding (one place for both twins) -----------------------------

    @staticmethod
    def _sid(session_id: object) -> str:
        return validate_id(session_id)

    @staticmethod
    def _owner(owner: object) -> str | None:
        return None if owner is None else validate_id(owner, "owner")

    def _messages(self, messages: object) -> tuple[list[Message], list[bytes]]:
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
                    f"message {i} is a {type(item).__name__}, not a Message or mapping"
                )
        limit = self.config.max_message_bytes
        records = []
        for i, message in enumerate(parsed):
            record = codec.encode(message)
            if len(record) > limit:
                raise MessageTooLargeError(len(record), limit, i)
            records.append(record)
        return parsed, records

    @staticmethod
    def _ttl(ttl: Any) -> int | None:
        if ttl is UNSET:
            return None
        if ttl is None:
            return 0
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
            raise InvalidArgumentError("ttl must be a positive number of seconds, or None")
        return max(round(ttl * 1000), 1)

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

    def _plan_append(
        self, session_id: str, messages: object, owner: object, key: Any, ttl: Any
    ) -> Append:
        sid = self._sid(session_id)
        parsed, records = self._messages(messages)
        return Append(
            sid, parsed, records, self._owner(owner), _IDEMPOTENCY.make(key), self._ttl(ttl)
        )

    def _plan_replace(self, session_id: str, messages: object, owner: object, ttl: Any) -> Replace:
        sid = self._sid(session_id)
        parsed, records = self._messages(messages)
        return Replace(
            sid, parsed, records, self._owner(owner), _IDEMPOTENCY.make(None), self._ttl(ttl)
        )

    def _plan_insert(
        self, session_id: str, index: object, messages: object, owner: object
    ) -> Insert:
        sid = self._sid(session_id)
        parsed, records = self._messages(messages)
        return Insert(
            sid, self._index(index), parsed, records, self._owner(owner), _IDEMPOTENCY.make(None)
        )

    def _plan_pop(self, session_id: str, index: object, owner: object) -> Pop:
        return Pop(
            self._sid(session_id), self._index(index), self._owner(owner), _IDEMPOTENCY.make(None)
        )

    def _plan_recent(self, owner: object, limit: object) -> Recent:
        plan = self._plan_sessions(owner, limit)
        return Recent(plan.owner, plan.limit)

    def _plan_sessions(self, owner: object, limit: object) -> Sessions:
        if limit is not None and (
            isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        ):
            raise InvalidArgumentError("limit must be None or an int >= 1")
        return Sessions(self._owner(owner), limit)

    # -- status ---------------------------------------------------------------------------

    _primary_name: str
    _fallback: Fallback | None

    def status(self) -> StoreStatus:
        """Where calls go now and what the fallback has been through (no I/O)."""
        fb = self._fallback
        if fb is None:
            return StoreStatus(
                backend=self._primary_name,
                serving=self._primary_name,
                degraded=False,
                skipped_records=self._decoder.skipped,
            )
        degraded = fb.state != "closed"
        return StoreStatus(
            backend=self._primary_name,
            serving="fallback" if degraded else self._primary_name,
            degraded=degraded,
            circuit=fb.state,  # type: ignore[arg-type]
            pending_replay=fb.pending,
            replayed=fb.replayed_count,
            journal_dropped=fb.dropped_count,
            replay_rejected=fb.rejected_count,
            skipped_records=self._decoder.skipped,
            outages=fb.outages,
            last_error=fb.last_error,
            degraded_since=fb.degraded_since,
        )

    def metrics(self) -> MetricsSnapshot:
        """Counters since the store was made: operations, errors by kind, fallback
        transitions, journal size, replayed writes, skipped records, latency (no I/O)."""
        return self._metrics.snapshot(self._fallback, self._decoder.skipped)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(url={self.config.safe_url!r}, prefix={self.config.prefix!r}, "
            f"fallback={self.config.fallback!r})"
        )

    def _unavailable(self, exc: Unreachable) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"Redis at {self.config.safe_url} is unreachable ({exc}); fallback is off"
        )

    def _closed_check(self) -> None:
        if self._closed:
            raise InvalidArgumentError("this store is closed")

    def _share_fallback(self, twin: object) -> None:
        """Serve, journal and replay through ``twin``'s fallback (one mirror, one
        journal, one circuit for a sync store and its async twin)."""
        if not isinstance(twin, _StoreBase):
            raise ConfigurationError(
                "twin must be a chatkeep ConversationStore or AsyncConversationStore"
            )
        if twin.config != self.config:
            raise ConfigurationError(
                "a twin needs the same configuration (URL, prefix, TTL, fallback)"
            )
        if twin._fallback is not None:
            twin._fallback.hold()
        self._fallback = twin._fallback

    def _closing_remaining(self, remaining: int) -> None:
        fb = self._fallback
        if fb is not None and fb.release() and remaining:
            # The last store of a fallback to close: what is left will not be replayed.
            logger.error("closing with %d journaled writes that did not reach Redis", remaining)

    def _decoded(self, op: Read, result: ReadResult) -> list[Any]:
        # After the mirror took the records as they are: decode (or convert) them once.
        return self._decoder.convert_all(result.records, op.session_id, op.into)

    @staticmethod
    def _into(into: object) -> codec.Conversion[Any] | None:
        if into is None or isinstance(into, codec.Conversion):
            return into
        raise InvalidArgumentError("into must be a chatkeep.Conversion")


class ConversationStore(_StoreBase):
    """Conversation memory in Redis (or memory), with TTL and transparent fallback.

    Thread-safe: one store (one connection pool) serves every thread and session.

    >>> store = ConversationStore.from_url("memory://")
    >>> store.append("s1", Message(role="user", content="hi"))
    1
    """

    def __init__(
        self,
        config: StoreConfig | None = None,
        *,
        client: Any = None,
        on_state_change: Callable[[str, StoreStatus], None] | None = None,
        twin: AsyncConversationStore | ConversationStore | None = None,
        **options: Any,
    ) -> None:
        super().__init__(config, options, on_state_change)
        self._primary = build_backend(self.config, client, self._decoder, asyncio=False)
        self._primary_name = self._primary.name
        if twin is None:
            self._fallback = self._make_fallback(self._primary_name)
        else:
            self._share_fallback(twin)
        if self.config.publish:
            from .coordination import enable_publish

            enable_publish(self)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ConversationStore:
        """A store for ``redis://``, ``rediss://``, ``unix://`` or ``memory://`` URLs."""
        return cls(url=url, **options)

    @classmethod
    def from_env(cls, **options: Any) -> ConversationStore:
        """A store configured from ``CHATKEEP_*`` variables (keyword arguments win)."""
        hooks = {k: options.pop(k) for k in ("client", "on_state_change", "twin") if k in options}
        return cls(StoreConfig.from_env(**options), **hooks)

    # -- the one place where calls meet the fallback ------------------------------------

    def _run(self, op: Op) -> Any:
        self._closed_check()
        started = perf_counter()  # metrics: one perf_counter pair per call
        try:
            result = self._call(op)
            return self._decoded(op, result) if op.kind == "read" else result
        except ChatkeepError as exc:
            self._metrics.failed(exc)
            raise
        finally:
            self._metrics.observe(op.kind, perf_counter() - started)

    def _call(self, op: Op) -> Any:
        fb = self._fallback
        if fb is None:
            try:
                return getattr(self._primary, op.kind)(op)
            except Unreachable as exc:
                raise self._unavailable(exc) from exc.cause
        route = fb.route()
        if route is not Route.LOCAL:
            try:
                if route is Route.PROBE:
                    self._probe(fb)
                result = getattr(self._primary, op.kind)(op)
            except Unreachable as exc:
                fb.failed(exc)
            else:
                fb.succeeded(op, result)
                return result
        return fb.serve(op)

    def _probe(self, fb: Fallback) -> None:
        try:
            self._replay(fb)
        except ChatkeepError as exc:
            fb.probe_refused(exc)
            raise

    def _replay(self, fb: Fallback) -> None:
        self._primary.ping()
        while (op := fb.next_pending()) is not None:
            try:
                getattr(self._primary, op.kind)(op)
            except ChatkeepError as exc:
                fb.rejected(op, exc)
            else:
                fb.replayed(op)

    def flush(self) -> int:
        """Try now to reach Redis and replay journaled writes; return how many remain."""
        fb = self._fallback
        if fb is None or fb.state == "closed":
            return 0
        if fb.route(force_probe=True) is Route.PROBE:
            try:
                self._probe(fb)
            except Unreachable as exc:
                fb.failed(exc)
        return fb.pending

    # -- public API -----------------------------------------------------------------------

    def append(
        self,
        session_id: str,
        messages: MessagesInput,
        *,
        owner: str | None = None,
        idempotency_key: str | bytes | None = None,
        ttl: float | None = UNSET,
    ) -> int:
        """Append messages (one atomic round trip) and return the session's new length.

        A retried call with the same ``idempotency_key`` is stored once.
        ``ttl`` (seconds, or None for never) becomes the session's own TTL.
        """
        op = self._plan_append(session_id, messages, owner, idempotency_key, ttl)
        if not op.messages:  # nothing to write: report the length as it is
            info = self.info(op.session_id, owner=op.owner)
            return info.message_count if info else 0
        result = self._run(op)
        if self._hub is not None and not result.duplicate:
            self._hub.publish(op.session_id, op.messages)
        return int(result.length)

    @overload
    def messages(
        self, session_id: str, *, last: int | None = None, owner: str | None = None
    ) -> list[Message]: ...

    @overload
    def messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        owner: str | None = None,
        into: codec.Conversion[T],
    ) -> list[T]: ...

    def messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        owner: str | None = None,
        into: codec.Conversion[Any] | None = None,
    ) -> list[Any]:
        """The session's messages, oldest first; ``last=k`` reads only the newest k.
        ``into`` builds another message type straight from the stored records."""
        sid = self._sid(session_id)
        count = self._last(last)
        if count == 0:
            return []
        result: list[Any] = self._run(Read(sid, count, self._owner(owner), self._into(into)))
        return result

    def replace(
        self,
        session_id: str,
        messages: MessagesInput,
        *,
        owner: str | None = None,
        ttl: float | None = UNSET,
    ) -> int:
        """Replace the whole history atomically (readers never see it half-done)."""
        return int(self._run(self._plan_replace(session_id, messages, owner, ttl)).length)

    def insert(
        self, session_id: str, index: int, messages: MessagesInput, *, owner: str | None = None
    ) -> int:
        """Insert messages before ``index`` (``list.insert`` semantics); return the new length."""
        return int(self._run(self._plan_insert(session_id, index, messages, owner)).length)

    def pop(self, session_id: str, index: int = -1, *, owner: str | None = None) -> Message | None:
        """Remove and return the message at ``index`` (default the last); None if out of range."""
        result = self._run(self._plan_pop(session_id, index, owner))
        message: Message | None = result.message
        return message

    def clear(self, session_id: str, *, owner: str | None = None) -> bool:
        """Delete the session (messages and metadata); True if it existed."""
        return bool(self._run(Clear(self._sid(session_id), self._owner(owner))))

    def ttl(self, session_id: str) -> float | None:
        """Seconds until the session expires; None if it never does; 0.0 if it does not exist."""
        result: float | None = self._run(Ttl(self._sid(session_id)))
        return result

    def info(self, session_id: str, *, owner: str | None = None) -> SessionInfo | None:
        """What is known about a session, or None if it does not exist."""
        result: SessionInfo | None = self._run(Info(self._sid(session_id), self._owner(owner)))
        return result

    def recent(
        self, *, owner: str | None = None, limit: int | None = 20
    ) -> list[RecentConversation]:
        """Live sessions (of one owner), most recent first, each titled with the start
        of its first user message: a "recent conversations" list. Two or three round
        trips for the whole page; no session's TTL is refreshed."""
        result: list[RecentConversation] = self._run(self._plan_recent(owner, limit))
        return result

    def sessions(self, *, owner: str | None = None, limit: int | None = None) -> list[SessionInfo]:
        """Live sessions (of one owner), most recently active first. Uses the session
        index, never KEYS or a keyspace SCAN."""
        result: list[SessionInfo] = self._run(self._plan_sessions(owner, limit))
        return result

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
        from .coordination import SessionLock

        return SessionLock(self, session_id, timeout, blocking_timeout)

    def subscribe(self, session_id: str) -> Subscription:
        """Messages appended to the session by any process (stores with ``publish=True``),
        as they are appended: ``with store.subscribe(sid) as updates: for m in updates``."""
        from .coordination import Subscription

        return Subscription(self, session_id)

    def close(self) -> None:
        """Replay what can be replayed, then close the connection pool (if chatkeep made it)."""
        if self._closed:
            return
        self._closing_remaining(self.flush())
        self._closed = True
        self._primary.close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncConversationStore(_StoreBase):
    """The asyncio twin of :class:`ConversationStore` on ``redis.asyncio``: same
    names, awaited; no thread offloading."""

    def __init__(
        self,
        config: StoreConfig | None = None,
        *,
        client: Any = None,
        on_state_change: Callable[[str, StoreStatus], None] | None = None,
        twin: ConversationStore | AsyncConversationStore | None = None,
        **options: Any,
    ) -> None:
        super().__init__(config, options, on_state_change)
        self._primary = build_backend(self.config, client, self._decoder, asyncio=True)
        self._primary_name = self._primary.name
        if twin is None:
            self._fallback = self._make_fallback(self._primary_name)
        else:
            self._share_fallback(twin)
        if self.config.publish:
            from .coordination import enable_publish

            enable_publish(self)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncConversationStore:
        """A store for ``redis://``, ``rediss://``, ``unix://`` or ``memory://`` URLs."""
        return cls(url=url, **options)

    @classmethod
    def from_env(cls, **options: Any) -> AsyncConversationStore:
        """A store configured from ``CHATKEEP_*`` variables (keyword arguments win)."""
        hooks = {k: options.pop(k) for k in ("client", "on_state_change", "twin") if k in options}
        return cls(StoreConfig.from_env(**options), **hooks)

    async def _run(self, op: Op) -> Any:
        self._closed_check()
        started = perf_counter()  # metrics: one perf_counter pair per call
        try:
            result = await self._call(op)
            return self._decoded(op, result) if op.kind == "read" else result
        except ChatkeepError as exc:
            self._metrics.failed(exc)
            raise
        finally:
            self._metrics.observe(op.kind, perf_counter() - started)

    async def _call(self, op: Op) -> Any:
        fb = self._fallback
        if fb is None:
            try:
                return await getattr(self._primary, op.kind)(op)
            except Unreachable as exc:
                raise self._unavailable(exc) from exc.cause
        route = fb.route()
        if route is not Route.LOCAL:
            try:
                if route is Route.PROBE:
                    await self._probe(fb)
                result = await getattr(self._primary, op.kind)(op)
            except Unreachable as exc:
                fb.failed(exc)
            else:
                fb.succeeded(op, result)
                return result
        return fb.serve(op)

    async def _probe(self, fb: Fallback) -> None:
        try:
            await self._replay(fb)
        except ChatkeepError as exc:
            fb.probe_refused(exc)
            raise

    async def _replay(self, fb: Fallback) -> None:
        await self._primary.ping()
        while (op := fb.next_pending()) is not None:
            try:
                await getattr(self._primary, op.kind)(op)
            except ChatkeepError as exc:
                fb.rejected(op, exc)
            else:
                fb.replayed(op)

    async def flush(self) -> int:
        """Try now to reach Redis and replay journaled writes; return how many remain."""
        fb = self._fallback
        if fb is None or fb.state == "closed":
            return 0
        if fb.route(force_probe=True) is Route.PROBE:
            try:
                await self._probe(fb)
            except Unreachable as exc:
                fb.failed(exc)
        return fb.pending

    async def append(
        self,
        session_id: str,
        messages: MessagesInput,
        *,
        owner: str | None = None,
        idempotency_key: str | bytes | None = None,
        ttl: float | None = UNSET,
    ) -> int:
        """Append messages (one atomic round trip) and return the session's new length."""
        op = self._plan_append(session_id, messages, owner, idempotency_key, ttl)
        if not op.messages:  # nothing to write: report the length as it is
            info = await self.info(op.session_id, owner=op.owner)
            return info.message_count if info else 0
        result = await self._run(op)
        if self._hub is not None and not result.duplicate:
            self._hub.publish(op.session_id, op.messages)
        return int(result.length)

    @overload
    async def messages(
        self, session_id: str, *, last: int | None = None, owner: str | None = None
    ) -> list[Message]: ...

    @overload
    async def messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        owner: str | None = None,
        into: codec.Conversion[T],
    ) -> list[T]: ...

    async def messages(
        self,
        session_id: str,
        *,
        last: int | None = None,
        owner: str | None = None,
        into: codec.Conversion[Any] | None = None,
    ) -> list[Any]:
        """The session's messages, oldest first; ``last=k`` reads only the newest k.
        ``into`` builds another message type straight from the stored records."""
        sid = self._sid(session_id)
        count = self._last(last)
        if count == 0:
            return []
        op = Read(sid, count, self._owner(owner), self._into(into))
        result: list[Any] = await self._run(op)
        return result

    async def replace(
        self,
        session_id: str,
        messages: MessagesInput,
        *,
        owner: str | None = None,
        ttl: float | None = UNSET,
    ) -> int:
        """Replace the whole history atomically."""
        return int((await self._run(self._plan_replace(session_id, messages, owner, ttl))).length)

    async def insert(
        self, session_id: str, index: int, messages: MessagesInput, *, owner: str | None = None
    ) -> int:
        """Insert messages before ``index``; return the new length."""
        return int((await self._run(self._plan_insert(session_id, index, messages, owner))).length)

    async def pop(
        self, session_id: str, index: int = -1, *, owner: str | None = None
    ) -> Message | None:
        """Remove and return the message at ``index``; None if out of range."""
        result = await self._run(self._plan_pop(session_id, index, owner))
        message: Message | None = result.message
        return message

    async def clear(self, session_id: str, *, owner: str | None = None) -> bool:
        """Delete the session; True if it existed."""
        return bool(await self._run(Clear(self._sid(session_id), self._owner(owner))))

    async def ttl(self, session_id: str) -> float | None:
        """Seconds until the session expires; None if never; 0.0 if it does not exist."""
        result: float | None = await self._run(Ttl(self._sid(session_id)))
        return result

    async def info(self, session_id: str, *, owner: str | None = None) -> SessionInfo | None:
        """What is known about a session, or None if it does not exist."""
        result: SessionInfo | None = await self._run(
            Info(self._sid(session_id), self._owner(owner))
        )
        return result

    async def recent(
        self, *, owner: str | None = None, limit: int | None = 20
    ) -> list[RecentConversation]:
        """Live sessions (of one owner), most recent first, titled with their first
        user message (see ``ConversationStore.recent``)."""
        result: list[RecentConversation] = await self._run(self._plan_recent(owner, limit))
        return result

    async def sessions(
        self, *, owner: str | None = None, limit: int | None = None
    ) -> list[SessionInfo]:
        """Live sessions (of one owner), most recently active first; no KEYS or SCAN."""
        result: list[SessionInfo] = await self._run(self._plan_sessions(owner, limit))
        return result

    def lock(
        self,
        session_id: str,
        *,
        timeout: float | None = 30.0,
        blocking_timeout: float | None = None,
    ) -> AsyncSessionLock:
        """A per-session distributed lock: ``async with astore.lock(sid):``."""
        from .coordination import AsyncSessionLock

        return AsyncSessionLock(self, session_id, timeout, blocking_timeout)

    def subscribe(self, session_id: str) -> AsyncSubscription:
        """Messages appended to the session by any process, as they are appended:
        ``async with astore.subscribe(sid) as updates: async for m in updates``."""
        from .coordination import AsyncSubscription

        return AsyncSubscription(self, session_id)

    async def aclose(self) -> None:
        """Replay what can be replayed, then close the connection pool (if chatkeep made it)."""
        if self._closed:
            return
        self._closing_remaining(await self.flush())
        self._closed = True
        await self._primary.close()

    close = aclose

    async def __aenter__(self: S) -> S:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
