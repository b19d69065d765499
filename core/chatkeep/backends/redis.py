"""Redis backends: :class:`RedisBackend` (sync) and :class:`AsyncRedisBackend`.

All policy lives in :class:`RedisProtocol`: the shipped Lua scripts, the arguments
they take, how replies become results, the session index, and the one boundary
where driver exceptions are translated. The twins only move bytes.

Every per-session change is one Lua script over the session's two keys (same hash
tag, so one Cluster slot). Index entries (``<prefix>:idx``, ``<prefix>:own:<owner>``)
live in other slots; they ride in the same pipeline, and only when stale. On Redis
Cluster, whose pipelines refuse scripts, the script goes alone and the (rare) index
write follows it.

Clients: ``redis://``/``rediss://``/``unix://`` URLs make a ``Redis``;
``redis+cluster://h1:p1,h2:p2`` a ``RedisCluster`` (startup nodes);
``redis+sentinel://h1:p1,h2:p2/service`` a master client from ``Sentinel.master_for``
that follows failovers. Ready clients of all three kinds are accepted as they are.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib
import math
import os
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

import redis as redis_sync
import redis.asyncio as redis_async
from redis import exceptions as rex

from .. import codec
from ..codec import RecordDecoder
from ..config import StoreConfig
from ..errors import BackendError, ConfigurationError, SessionOwnershipError
from ..keys import KeySchema
from ..message import Message
from ..ops import (
    TITLE_SCAN,
    Append,
    Clear,
    Info,
    Insert,
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
from .base import INDEX_SLACK_MS, Unreachable, now_ms

__all__ = [
    "AsyncRedisBackend",
    "RedisBackend",
    "RedisProtocol",
    "Script",
    "acl_rules",
    "client_factory",
    "translate",
]

_OWNER_ERROR = "CHATKEEP_OWNER"
_UNKNOWN = -2  # script reply: expiry not known (duplicate, missing session)
_UNCHANGED = -3  # script reply: expiry not touched (fixed TTL on read)


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    text: bytes
    sha: str


def _load_scripts() -> dict[str, Script]:
    folder = resources.files("chatkeep.backends").joinpath("lua")
    common = folder.joinpath("common.lua").read_bytes()
    scripts = {}
    for name in ("append", "replace", "insert", "pop", "read", "touch", "clear"):
        text = common + b"\n" + folder.joinpath(f"{name}.lua").read_bytes()
        scripts[name] = Script(name, text, hashlib.sha1(text, usedforsecurity=False).hexdigest())
    return scripts


SCRIPTS = _load_scripts()

# Least privilege: every command chatkeep sends, directly or from its scripts (ACL
# checks commands run by scripts too). Keep in step with backends/lua/*.lua.
ACL_COMMANDS = (
    "ping",
    "evalsha",
    "eval",
    # scripts
    "hmget",
    "hset",
    "hdel",
    "llen",
    "lrange",
    "lindex",
    "lset",
    "linsert",
    "lrem",
    "rpush",
    "lpop",
    "rpop",
    "ltrim",
    "del",
    "persist",
    "pexpireat",
    # info, listing and the session index
    "pttl",
    "zadd",
    "zrem",
    "zremrangebyscore",
    "zrevrangebyscore",
)
# What redis-py's RedisCluster needs on top: topology discovery and command key specs.
ACL_CLUSTER_COMMANDS = ("cluster|slots", "command")


def acl_rules(prefix: str, *, cluster: bool = False) -> list[str]:
    """The ``ACL SETUSER`` rules of a least-privilege chatkeep user for ``prefix``."""
    commands = ACL_COMMANDS + (ACL_CLUSTER_COMMANDS if cluster else ())
    return ["resetkeys", f"~{prefix}:*", "resetchannels", "-@all", *(f"+{c}" for c in commands)]


# Errors that mean "Redis cannot be reached right now": the fallback's business.
# AuthenticationError and friends subclass ConnectionError but are configuration
# problems, so they are checked first and raised.
_CONFIG_ERRORS: tuple[type[BaseException], ...] = (
    rex.AuthenticationError,
    rex.AuthorizationError,
    rex.ExternalAuthProviderError,
    rex.AuthenticationWrongNumberOfArgsError,
    rex.NoPermissionError,
)
_REACHABILITY_ERRORS: tuple[type[BaseException], ...] = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.ReadOnlyError,  # a replica that was just demoted, during failover
    rex.TryAgainError,
    rex.ClusterDownError,
    rex.ClusterError,  # MOVED/ASK/TRYAGAIN kept coming: the topology is in flux
    rex.SlotNotCoveredError,
    rex.BusyLoadingError,
    ConnectionError,
    TimeoutError,
)
# NOREPLICAS: min-replicas-to-write refused the write (replicas lagging): transient.
_TRANSIENT_PREFIXES = ("MASTERDOWN", "BUSY ", "LOADING", "CLUSTERDOWN", "TRYAGAIN", "NOREPLICAS")
# RedisClusterException is not a RedisError; these ones mean "no node answers (yet)".
_CLUSTER_UNREACHABLE = ("cannot be connected", "not covered", "could not agree")


def translate(exc: BaseException, session_id: str | None = None) -> BaseException:
    """The exception chatkeep raises for a driver exception (cause kept by the caller)."""
    text = str(exc)
    # redis-py prefixes pipeline errors with the command and its arguments, which
    # may hold message content: keep only the server's words.
    text = text.rpartition(" of pipeline caused error: ")[2]
    if isinstance(exc, rex.ResponseError) and _OWNER_ERROR in text:
        return SessionOwnershipError(session_id or "?")
    if isinstance(exc, _CONFIG_ERRORS):
        return BackendError(
            f"Redis refused the credentials or command: {type(exc).__name__}: {text}"
        )
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return BackendError(f"TLS certificate verification failed: {text}")
    if isinstance(exc, rex.RedisClusterException) and "Cluster mode is not enabled" in text:
        return BackendError(
            f"not usable as a Redis Cluster: {text} (a redis+cluster:// URL needs cluster "
            "nodes, and an ACL user needs +cluster|slots and +command there)"
        )
    if isinstance(exc, _REACHABILITY_ERRORS) or text.startswith(_TRANSIENT_PREFIXES):
        return Unreachable(exc)
    if isinstance(exc, rex.RedisClusterException) and any(
        words in text for words in _CLUSTER_UNREACHABLE
    ):
        return Unreachable(exc)
    return BackendError(f"Redis error: {type(exc).__name__}: {text}")


class _translated:
    """Turns redis-py and socket errors into chatkeep's (a class: the hot path pays
    less for it than for a generator-based context manager)."""

    __slots__ = ("session_id",)

    def __init__(self, session_id: str | None = None) -> None:
        self.session_id = session_id

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if isinstance(exc, (rex.RedisError, rex.RedisClusterException)):
            raise translate(exc, self.session_id) from exc
        if isinstance(exc, (OSError, ConnectionError, TimeoutError)):
            raise Unreachable(exc) from exc


def _text(value: Any) -> str | None:
    if value is None or value is False:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _expiry(value: int) -> int | None:
    """Script expiry reply -> result field: -1 never (None), else as is."""
    return None if value == -1 else value


def _slack(ttl_ms: int) -> int:
    return min(INDEX_SLACK_MS, max(ttl_ms // 10, 1000))


@dataclass(slots=True)
class _Indexed:
    score: float  # what the index holds (ms; inf = never expires)
    owner: str | None  # owner index written, if any
    ttl_ms: int  # TTL last seen for the session (0 = never)
    expires_at: int | None  # the expiry this process last saw set (None = never)
    seen_ms: int  # when it saw it


# A read refreshes a sliding TTL unless this process set the session's expiry less than
# this long ago (or 1% of the TTL, if that is shorter): the refresh would move it by
# no more, and skipping it lets an owner-free read be a plain LRANGE, with no script.
REFRESH_SLACK_MS = 60_000


@dataclass(slots=True)
class IndexPlan:
    score: float
    owner: str | None
    zadds: list[tuple[str, float]]
    existing_only: bool = False  # ZADD XX: refresh entries, never add (reads)


class RedisIndex:
    """Keeps ``<prefix>:idx`` and owner indexes fresh without writing on every call.

    The invariant listing relies on: whenever a session's expiry becomes E, the
    index holds a score >= E - slack (slack <= INDEX_SLACK_MS). So an entry whose
    score is older than now - INDEX_SLACK_MS is certainly expired.
    """

    def __init__(self, keys: KeySchema, default_ttl_ms: int, fixed: bool, capacity: int = 10_000):
        self._keys = keys
        self._default_ttl = default_ttl_ms
        self._fixed = fixed
        self._capacity = capacity
        self._known: OrderedDict[str, _Indexed] = OrderedDict()
        self._lock = threading.Lock()

    def before(
        self,
        sid: str,
        owner: str | None,
        ttl_ms: int | None,
        now: int,
        *,
        existing_only: bool = False,
    ) -> IndexPlan | None:
        with self._lock:
            known = self._known.get(sid)
        ttl = ttl_ms if ttl_ms is not None else (known.ttl_ms if known else self._default_ttl)
        score = math.inf if ttl <= 0 else float(now + ttl)
        if known is not None and (owner is None or owner == known.owner):
            if known.score == score or (self._fixed and ttl_ms is None):
                return None
            if math.inf not in (known.score, score) and score - known.score <= _slack(ttl):
                return None
        zadds = [(self._keys.index, score)]
        if owner is not None:
            zadds.append((self._keys.owner_index(owner), score))
        return IndexPlan(score, owner, zadds, existing_only)

    def after(
        self, sid: str, plan: IndexPlan | None, expires_at: int | None, owner: str | None, now: int
    ) -> list[tuple[str, float]]:
        """Record what the index holds now; return corrective ZADDs when the guess was off."""
        if expires_at is not None and expires_at < 0:
            return []  # expiry unknown or unchanged
        actual = math.inf if expires_at is None else float(expires_at)
        ttl = 0 if expires_at is None else max(expires_at - now, 1)
        with self._lock:
            known = self._known.get(sid)
            if (  # the usual append: the index already holds this expiry (within slack)
                plan is None
                and known is not None
                and (owner is None or owner == known.owner)
                and (
                    actual == known.score
                    or (actual != math.inf and abs(actual - known.score) <= _slack(ttl))
                )
            ):
                known.ttl_ms = ttl
                known.expires_at = expires_at
                known.seen_ms = now
                self._known.move_to_end(sid)
                return []
            score = plan.score if plan else (known.score if known else None)
            indexed_owner = plan.owner if plan else (known.owner if known else None)
            fixes: list[tuple[str, float]] = []
            off = score is None or (
                (score == math.inf) != (actual == math.inf)
                or (actual != math.inf and abs(actual - score) > _slack(ttl))
            )
            if off:
                score = actual
                fixes.append((self._keys.index, actual))
                indexed_owner = None
            assert score is not None
            if owner is not None and owner != indexed_owner:
                fixes.append((self._keys.owner_index(owner), score))
                indexed_owner = owner
            self._known[sid] = _Indexed(score, indexed_owner, ttl, expires_at, now)
            self._known.move_to_end(sid)
            while len(self._known) > self._capacity:
                self._known.popitem(last=False)
        return fixes

    def fresh(self, sid: str, now: int) -> _Indexed | None:
        """What this process knows of the session, if a read need not refresh its TTL:
        fixed, never expiring, or a sliding expiry it set so recently that a refresh
        would move it by no more than the refresh slack. None otherwise."""
        with self._lock:
            known = self._known.get(sid)
        if known is None or self._fixed:
            return known
        if known.expires_at is None:  # another process may give it a TTL: look again soon
            return known if now - known.seen_ms <= REFRESH_SLACK_MS else None
        drift = now + known.ttl_ms - known.expires_at
        return known if drift <= min(REFRESH_SLACK_MS, known.ttl_ms // 100) else None

    def forget(self, sid: str) -> None:
        with self._lock:
            self._known.pop(sid, None)


class RedisProtocol:
    """Everything the Redis twins share: arguments, replies, index policy."""

    def __init__(
        self,
        *,
        keys: KeySchema,
        ttl_ms: int,
        fixed: bool,
        max_messages: int,
        decoder: RecordDecoder,
    ) -> None:
        self.keys = keys
        self.ttl_ms = ttl_ms
        self.fixed = fixed
        self.max_messages = max_messages
        self.decoder = decoder
        self.index = RedisIndex(keys, ttl_ms, fixed)
        self._marker_seed = os.urandom(8).hex()
        self._scripts_loaded_at = -1.0
        self.publish = False
        """Set by the store (``StoreConfig.publish``): append.lua publishes each record."""

    # -- script arguments ---------------------------------------------------------------

    @staticmethod
    def publishing(
        keys: Sequence[str], args: list[Any], sharded: bool
    ) -> tuple[list[str], list[Any]]:
        """KEYS/ARGV of an append that publishes its records to ``<prefix>:{<sid>}:ch``
        (same hash tag; SPUBLISH when ``sharded``)."""
        return [*keys, keys[0][:-2] + ":ch"], [*args, 1 if sharded else 0]

    def write_args(self, op: Append | Replace, now: int) -> list[Any]:
        return [
            now,
            "" if op.ttl_ms is None else op.ttl_ms,
            self.ttl_ms,
            1 if self.fixed else 0,
            self.max_messages,
            op.owner or "",
            op.idem,
            *op.records,
        ]

    def insert_args(self, op: Insert, now: int) -> list[Any]:
        return [
            now,
            self.ttl_ms,
            1 if self.fixed else 0,
            self.max_messages,
            op.owner or "",
            op.index,
            self.marker(),
            op.idem,
            *op.records,
        ]

    def pop_args(self, op: Pop, now: int) -> list[Any]:
        return [
            now,
            self.ttl_ms,
            1 if self.fixed else 0,
            op.owner or "",
            op.index,
            self.marker(),
            op.idem,
            "" if op.message_id is None else b'{"v":1,"id":' + codec.dumps(op.message_id),
        ]

    def plain_read(self, op: Read, now: int) -> _Indexed | None:
        """What this process knows of the session, if ``op`` can be a plain LRANGE: no
        owner to check, and no TTL to refresh (fixed, or refreshed moments ago)."""
        return None if op.owner is not None else self.index.fresh(op.session_id, now)

    @staticmethod
    def plain_range(op: Read) -> tuple[int, int]:
        return -(op.last or 0), -1

    @staticmethod
    def plain_result(known: _Indexed, records: list[Any]) -> ReadResult:
        # The expiry is not read (the mirror keeps what it knows), the owner is the one
        # this process saw last (so the mirror still checks it in an outage); an empty
        # list is a session that is gone, as Redis keeps no empty lists.
        return ReadResult(records, _UNKNOWN, known.owner, exists=bool(records))

    def read_args(self, op: Read, now: int) -> list[Any]:
        return [now, self.ttl_ms, 1 if self.fixed else 0, op.owner or "", op.last or 0]

    def load_all_scripts_now(self) -> bool:
        """Whether this NOSCRIPT should also load every other script (the server lost
        them: new, restarted, failed over). At most once a second, so a burst of
        callers meeting NOSCRIPT together loads them once, not once each."""
        now = time.monotonic()
        if now - self._scripts_loaded_at < 1.0:
            return False
        self._scripts_loaded_at = now
        return True

    def batch(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Any],
        *,
        plan: IndexPlan | None,
        member: str,
        lrange: tuple[int, int] | None,
        attempt: int,
    ) -> tuple[list[tuple[Any, ...]], int]:
        """The commands of one round trip: the script (EVALSHA, or EVAL on the retry),
        the LRANGE, the index ZADDs, and on a retry that should, SCRIPT LOADs of every
        script; with how many of them count (the loads are a courtesy)."""
        if attempt == 0:
            commands: list[tuple[Any, ...]] = [("EVALSHA", script.sha, len(keys), *keys, *args)]
        else:
            commands = [("EVAL", script.text, len(keys), *keys, *args)]
        if lrange:
            commands.append(("LRANGE", keys[0], *lrange))
        if plan:
            xx = ("XX",) if plan.existing_only else ()
            commands += [("ZADD", key, *xx, score, member) for key, score in plan.zadds]
        wanted = len(commands)
        if attempt and self.load_all_scripts_now():
            commands += [("SCRIPT", "LOAD", other.text) for other in SCRIPTS.values()]
        return commands, wanted

    def marker(self) -> str:
        # A value no record can equal (records are JSON objects), unique per call.
        return f"chatkeep-marker:{self._marker_seed}:{os.urandom(6).hex()}"

    # -- replies --------------------------------------------------------------------------

    @staticmethod
    def write_result(reply: Sequence[Any]) -> WriteResult:
        return WriteResult(int(reply[0]), _expiry(int(reply[1])), _text(reply[2]), reply[3] == 1)

    @staticmethod
    def read_result(reply: Sequence[Any]) -> ReadResult:
        at = int(reply[0])
        records = list(reply[2])  # decoded by the store, after the mirror has them
        if at == _UNKNOWN:
            return ReadResult(records, _UNKNOWN, None, exists=False)
        return ReadResult(records, _expiry(at), _text(reply[1]))

    def pop_result(self, op: Pop, reply: Sequence[Any]) -> PopResult:
        raw = reply[0]
        message: Message | None = None
        if raw is not None and raw is not False:
            found = self.decoder.decode_all([raw], op.session_id)
            message = found[0] if found else None
        return PopResult(message, _expiry(int(reply[1])), _text(reply[2]), int(reply[3]))

    @staticmethod
    def ttl_result(pttl: int) -> float | None:
        if pttl == -2:
            return 0.0
        if pttl == -1:
            return None
        return pttl / 1000

    @staticmethod
    def info_result(sid: str, meta: Sequence[Any], length: int, pttl: int) -> SessionInfo | None:
        created, updated, owner = meta
        if created is None:
            return None
        expires = None if pttl < 0 else now_ms() + pttl
        return SessionInfo(
            id=sid,
            owner=_text(owner),
            message_count=int(length),
            created_at=ms_to_datetime(int(created)),
            updated_at=ms_to_datetime(int(updated)) if updated is not None else None,
            expires_at=ms_to_datetime(expires),
        )

    def listing_key(self, op: Sessions) -> str:
        return self.keys.index if op.owner is None else self.keys.owner_index(op.owner)

    def queue_page(self, pipe: Any, sids: list[str]) -> None:
        for sid in sids:
            messages, meta = self.keys.session(sid)
            pipe.hmget(meta, ["c", "u", "o"])
            pipe.llen(messages)
            pipe.pttl(meta)

    def read_page(
        self, op: Sessions, sids: list[str], replies: Sequence[Any], found: list[SessionInfo]
    ) -> list[str]:
        """Add live sessions of one page to ``found``; return the stale index members."""
        stale = []
        for i, sid in enumerate(sids):
            info = self.info_result(sid, *replies[3 * i : 3 * i + 3])
            if info is None or (op.owner is not None and info.owner != op.owner):
                stale.append(sid)
            elif op.limit is None or len(found) < op.limit:
                found.append(info)
        return stale


def _zadd(pipe: Any, zadds: list[tuple[str, float]], member: str, xx: bool = False) -> None:
    for key, score in zadds:
        pipe.zadd(key, {member: score}, xx=xx)


# A tail read of up to this many records runs LRANGE inside the read script; longer
# reads pipeline the script (owner check, TTL refresh) with a plain LRANGE, which
# spares Redis copying every record through Lua (2.5x faster at 1,000 records).
SMALL_READ = 32


def _first_error(replies: list[Any], wanted: int) -> list[Any]:
    for reply in replies[:wanted]:
        if isinstance(reply, Exception):
            raise reply
    return replies


def _exchange(connection: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    connection.send_packed_command(connection.pack_commands(commands))
    replies: list[Any] = []
    for _ in commands:
        try:
            replies.append(connection.read_response())
        except rex.ResponseError as exc:  # an error reply: the next replies still come
            replies.append(exc)
    return replies


def _send(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """Send ``commands`` in one round trip on a pooled connection and return their
    replies (error replies in their place): what a redis-py pipeline does, without
    building one (its bookkeeping costs about as much as a short read itself)."""
    pool = client.connection_pool
    connection = pool.get_connection()
    try:
        replies: list[Any] = connection.retry.call_with_retry(
            lambda: _exchange(connection, commands), lambda _: connection.disconnect()
        )
        return replies
    except BaseException:
        connection.disconnect()  # replies may still be on their way: never reuse it
        raise
    finally:
        pool.release(connection)


async def _asend(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
    """The ``redis.asyncio`` twin of :func:`_send`."""

    async def exchange() -> list[Any]:
        await connection.send_packed_command(connection.pack_commands(commands))
        replies: list[Any] = []
        for _ in commands:
            try:
                replies.append(await connection.read_response())
            except rex.ResponseError as exc:
                replies.append(exc)
        return replies

    async def drop(_: Any) -> None:
        await connection.disconnect()

    pool = client.connection_pool
    connection = await pool.get_connection()
    try:
        replies: list[Any] = await connection.retry.call_with_retry(exchange, drop)
        return replies
    except BaseException:
        await connection.disconnect()
        raise
    finally:
        await pool.release(connection)


def _check_client(client: object, expected: tuple[type, ...], what: str) -> None:
    if not isinstance(client, expected):
        raise ConfigurationError(
            f"{what} needs a {' or '.join(t.__module__ + '.' + t.__name__ for t in expected)} "
            f"client, got {type(client).__module__}.{type(client).__name__}"
        )


class RedisBackend:
    """Synchronous Redis backend (``redis.Redis`` or ``redis.RedisCluster``)."""

    name = "redis"

    def __init__(
        self,
        client: Any,
        protocol: RedisProtocol,
        *,
        owns_client: bool,
        factory: Callable[[], Any] | None = None,
    ) -> None:
        self.p = protocol
        self._owns_client = owns_client
        self._factory = factory
        self._lock = threading.Lock()
        self._scripts_in_pipelines = True  # set by _adopt, which runs before any call
        if client is not None:
            self._adopt(client)

    client: Any
    """The client. One made from a URL is made on first use (a ``RedisCluster``
    contacts the cluster when made, and the store must start when Redis is down);
    from then on it is a plain attribute, so the hot path pays nothing for this."""

    def _adopt(self, client: Any) -> None:
        _check_client(client, (redis_sync.Redis, redis_sync.RedisCluster), "ConversationStore")
        self._scripts_in_pipelines = not isinstance(client, redis_sync.RedisCluster)
        self.client = client

    def __getattr__(self, name: str) -> Any:
        # Only reached while ``client`` is not set yet (normal lookup failed).
        if name != "client" or self.__dict__.get("_factory") is None:
            raise AttributeError(name)
        with self._lock:
            if "client" not in self.__dict__:
                self._adopt(self._factory())  # type: ignore[misc]
        return self.__dict__["client"]

    def _eval(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Any],
        plan: IndexPlan | None = None,
        *,
        member: str = "",
        lrange: tuple[int, int] | None = None,
    ) -> Any:
        """Run ``script`` (EVALSHA, EVAL on NOSCRIPT) with the index writes of ``plan``
        in the same round trip; with ``lrange``, also that LRANGE of ``keys[0]``, and
        return ``(script reply, records)``. ``lrange`` needs pipelines with scripts."""
        client = self.client
        for attempt in (0, 1):
            try:
                if (plan or lrange or attempt) and self._scripts_in_pipelines:
                    commands, wanted = self.p.batch(
                        script, keys, args, plan=plan, member=member, lrange=lrange, attempt=attempt
                    )
                    # Loading is a courtesy a least-privilege user may be refused:
                    # only the errors of the commands we need count.
                    replies = _first_error(self._send(client, commands), wanted)
                    return (replies[0], replies[1]) if lrange else replies[0]
                if attempt == 0:
                    reply = client.evalsha(script.sha, len(keys), *keys, *args)
                else:
                    reply = client.eval(script.text, len(keys), *keys, *args)
            except rex.NoScriptError:
                continue
            if plan:  # Cluster: the index write follows the script
                pipe = client.pipeline(transaction=False)
                _zadd(pipe, plan.zadds, member, plan.existing_only)
                pipe.execute()
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _send(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        if client.connection is None:  # pooled (the usual client)
            return _send(client, commands)
        pipe = client.pipeline(transaction=False)  # a single-connection client
        for command in commands:
            pipe.execute_command(*command)
        replies: list[Any] = pipe.execute(raise_on_error=False)
        return replies

    def _write(
        self, name: str, op: Append | Replace | Insert, args: list[Any], now: int
    ) -> WriteResult:
        keys: Sequence[str] = self.p.keys.session(op.session_id)
        plan = self.p.index.before(op.session_id, op.owner, getattr(op, "ttl_ms", None), now)
        with _translated(op.session_id):
            if name == "append" and self.p.publish:
                self.client  # noqa: B018  (adopts a client made on first use: Cluster or not)
                keys, args = self.p.publishing(keys, args, not self._scripts_in_pipelines)
            reply = self._eval(SCRIPTS[name], keys, args, plan, member=op.session_id)
            result = self.p.write_result(reply)
            if not result.duplicate:
                self._fix_index(op.session_id, plan, result.expires_at_ms, result.owner, now)
        return result

    def _fix_index(
        self, sid: str, plan: IndexPlan | None, expires: int | None, owner: str | None, now: int
    ) -> None:
        fixes = self.p.index.after(sid, plan, expires, owner, now)
        if fixes:
            pipe = self.client.pipeline(transaction=False)
            _zadd(pipe, fixes, sid)
            pipe.execute()

    def append(self, op: Append) -> WriteResult:
        now = now_ms()
        return self._write("append", op, self.p.write_args(op, now), now)

    def replace(self, op: Replace) -> WriteResult:
        now = now_ms()
        return self._write("replace", op, self.p.write_args(op, now), now)

    def insert(self, op: Insert) -> WriteResult:
        now = now_ms()
        return self._write("insert", op, self.p.insert_args(op, now), now)

    def pop(self, op: Pop) -> PopResult:
        now = now_ms()
        keys = self.p.keys.session(op.session_id)
        with _translated(op.session_id):
            reply = self._eval(SCRIPTS["pop"], keys, self.p.pop_args(op, now))
        return self.p.pop_result(op, reply)

    def _pipelined_read(self, op: Read) -> bool:
        self.client  # noqa: B018  (adopts a client made on first use; it decides the next line)
        return self._scripts_in_pipelines and (op.last is None or op.last > SMALL_READ)

    def read(self, op: Read) -> ReadResult:
        now = now_ms()
        keys = self.p.keys.session(op.session_id)
        known = self.p.plain_read(op, now)
        if known is not None:
            with _translated(op.session_id):
                records = self.client.lrange(keys[0], *self.p.plain_range(op))
                return self.p.plain_result(known, records)
        plan = None
        if not self.p.fixed:
            plan = self.p.index.before(op.session_id, None, None, now, existing_only=True)
        args = self.p.read_args(op, now)
        with _translated(op.session_id):
            if self._pipelined_read(op):
                touched, records = self._eval(
                    SCRIPTS["touch"],
                    keys,
                    args,
                    plan,
                    member=op.session_id,
                    lrange=(-(op.last or 0), -1),
                )
                reply = [touched[0], touched[1], records]
            else:
                reply = self._eval(SCRIPTS["read"], keys, args, plan, member=op.session_id)
            result = self.p.read_result(reply)
            if result.exists:
                self._fix_index(op.session_id, plan, result.expires_at_ms, result.owner, now)
        return result

    def clear(self, op: Clear) -> bool:
        keys = self.p.keys.session(op.session_id)
        with _translated(op.session_id):
            existed, owner = self._eval(SCRIPTS["clear"], keys, [op.owner or ""])
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(self.p.keys.index, op.session_id)
            if owner is not None:
                pipe.zrem(self.p.keys.owner_index(_text(owner) or ""), op.session_id)
            pipe.execute()
        self.p.index.forget(op.session_id)
        return bool(existed)

    def ttl(self, op: Ttl) -> float | None:
        _, meta = self.p.keys.session(op.session_id)
        with _translated(op.session_id):
            return self.p.ttl_result(int(self.client.pttl(meta)))

    def info(self, op: Info) -> SessionInfo | None:
        messages, meta = self.p.keys.session(op.session_id)
        with _translated(op.session_id):
            pipe = self.client.pipeline(transaction=False)
            pipe.hmget(meta, ["c", "u", "o"])
            pipe.llen(messages)
            pipe.pttl(meta)
            fields, length, pttl = pipe.execute()
        info = self.p.info_result(op.session_id, fields, length, pttl)
        if info is not None and op.owner is not None and info.owner != op.owner:
            raise SessionOwnershipError(op.session_id)
        return info

    def sessions(self, op: Sessions) -> list[SessionInfo]:
        key = self.p.listing_key(op)
        floor = now_ms() - INDEX_SLACK_MS
        found: list[SessionInfo] = []
        offset = 0
        batch = op.limit if op.limit is not None else 500
        with _translated():
            self.client.zremrangebyscore(key, "-inf", f"({floor}")
            while op.limit is None or len(found) < op.limit:
                members = self.client.zrevrangebyscore(key, "+inf", floor, start=offset, num=batch)
                if not members:
                    break
                offset += len(members)
                sids = [_text(m) or "" for m in members]
                pipe = self.client.pipeline(transaction=False)
                self.p.queue_page(pipe, sids)
                stale = self.p.read_page(op, sids, pipe.execute(), found)
                if stale:
                    self.client.zrem(key, *stale)
                    offset -= len(stale)
                if len(members) < batch:
                    break
        return found

    def recent(self, op: Recent) -> list[RecentConversation]:
        infos = self.sessions(Sessions(op.owner, op.limit))
        with _translated():
            pipe = self.client.pipeline(transaction=False)
            for info in infos:  # LRANGE, not the read script: listing refreshes no TTL
                pipe.lrange(self.p.keys.session(info.id)[0], 0, TITLE_SCAN - 1)
            heads = pipe.execute() if infos else []
        return [
            recent_of(info, self.p.decoder.decode_all(head, info.id))
            for info, head in zip(infos, heads, strict=True)
        ]

    def ping(self) -> None:
        with _translated():
            self.client.ping()

    def close(self) -> None:
        client = self.__dict__.get("client")
        if self._owns_client and client is not None:
            client.close()
            for sentinel in _sentinels_of(client):
                sentinel.close()


async def _close_at_shutdown(client: Any) -> AsyncIterator[None]:
    try:
        yield
    finally:
        with contextlib.suppress(Exception):  # shutting down: nothing left to tell
            await client.aclose()


def _closed_with_loop(client: Any) -> AsyncIterator[None]:
    """An async generator parked on the running loop that closes ``client`` there when
    the loop shuts down (``asyncio.run``/``Runner`` call ``shutdown_asyncgens()``
    while the loop still runs). Calling ``__anext__`` registers it with the loop;
    stepping it once, synchronously, parks it inside its ``try``."""
    closer = _close_at_shutdown(client)
    step: Any = closer.__anext__()
    with contextlib.suppress(StopIteration):
        step.send(None)
    return closer


class AsyncRedisBackend:
    """Asynchronous twin of :class:`RedisBackend` on ``redis.asyncio``."""

    name = "redis"

    def __init__(
        self,
        client: Any,
        protocol: RedisProtocol,
        *,
        owns_client: bool,
        factory: Callable[[], Any] | None = None,
    ) -> None:
        self.p = protocol
        self._owns_client = owns_client
        # redis.asyncio clients do no I/O when made: no need to defer.
        first = factory() if client is None and factory is not None else client
        _check_client(
            first, (redis_async.Redis, redis_async.RedisCluster), "AsyncConversationStore"
        )
        self._first = first
        self._first_taken = False
        self._factory = factory if client is None else None
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._scripts_in_pipelines = not isinstance(first, redis_async.RedisCluster)

    @property
    def client(self) -> Any:
        """The client of the running event loop.

        asyncio connections belong to the loop that opened them, so a store made from
        a URL gives each loop (each ``asyncio.run``) a client of its own, closed when
        that loop shuts down. A client you passed is used as it is."""
        if self._factory is None:
            return self._first
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return self._first
        entry = self._by_loop.get(loop)
        if entry is None:
            client = self._factory() if self._first_taken else self._first
            self._first_taken = True
            entry = self._by_loop[loop] = (client, _closed_with_loop(client))
        return entry[0]

    async def _eval(
        self,
        script: Script,
        keys: Sequence[str],
        args: Sequence[Any],
        plan: IndexPlan | None = None,
        *,
        member: str = "",
        lrange: tuple[int, int] | None = None,
    ) -> Any:
        """Run ``script`` (EVALSHA, EVAL on NOSCRIPT) with the index writes of ``plan``
        in the same round trip; with ``lrange``, also that LRANGE of ``keys[0]``, and
        return ``(script reply, records)``. ``lrange`` needs pipelines with scripts."""
        client = self.client
        for attempt in (0, 1):
            try:
                if (plan or lrange or attempt) and self._scripts_in_pipelines:
                    commands, wanted = self.p.batch(
                        script, keys, args, plan=plan, member=member, lrange=lrange, attempt=attempt
                    )
                    # Loading is a courtesy a least-privilege user may be refused:
                    # only the errors of the commands we need count.
                    replies = _first_error(await self._send(client, commands), wanted)
                    return (replies[0], replies[1]) if lrange else replies[0]
                if attempt == 0:
                    reply = await client.evalsha(script.sha, len(keys), *keys, *args)
                else:
                    reply = await client.eval(script.text, len(keys), *keys, *args)
            except rex.NoScriptError:
                continue
            if plan:  # Cluster: the index write follows the script
                pipe = client.pipeline(transaction=False)
                _zadd(pipe, plan.zadds, member, plan.existing_only)
                await pipe.execute()
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    async def _send(client: Any, commands: list[tuple[Any, ...]]) -> list[Any]:
        if client.connection is None:  # pooled (the usual client)
            return await _asend(client, commands)
        pipe = client.pipeline(transaction=False)  # a single-connection client
        for command in commands:
            pipe.execute_command(*command)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies

    async def _write(
        self, name: str, op: Append | Replace | Insert, args: list[Any], now: int
    ) -> WriteResult:
        keys: Sequence[str] = self.p.keys.session(op.session_id)
        plan = self.p.index.before(op.session_id, op.owner, getattr(op, "ttl_ms", None), now)
        with _translated(op.session_id):
            if name == "append" and self.p.publish:
                keys, args = self.p.publishing(keys, args, not self._scripts_in_pipelines)
            reply = await self._eval(SCRIPTS[name], keys, args, plan, member=op.session_id)
            result = self.p.write_result(reply)
            if not result.duplicate:
                await self._fix_index(op.session_id, plan, result.expires_at_ms, result.owner, now)
        return result

    async def _fix_index(
        self, sid: str, plan: IndexPlan | None, expires: int | None, owner: str | None, now: int
    ) -> None:
        fixes = self.p.index.after(sid, plan, expires, owner, now)
        if fixes:
            pipe = self.client.pipeline(transaction=False)
            _zadd(pipe, fixes, sid)
            await pipe.execute()

    async def append(self, op: Append) -> WriteResult:
        now = now_ms()
        return await self._write("append", op, self.p.write_args(op, now), now)

    async def replace(self, op: Replace) -> WriteResult:
        now = now_ms()
        return await self._write("replace", op, self.p.write_args(op, now), now)

    async def insert(self, op: Insert) -> WriteResult:
        now = now_ms()
        return await self._write("insert", op, self.p.insert_args(op, now), now)

    async def pop(self, op: Pop) -> PopResult:
        now = now_ms()
        keys = self.p.keys.session(op.session_id)
        with _translated(op.session_id):
            reply = await self._eval(SCRIPTS["pop"], keys, self.p.pop_args(op, now))
        return self.p.pop_result(op, reply)

    def _pipelined_read(self, op: Read) -> bool:
        self.client  # noqa: B018  (adopts a client made on first use; it decides the next line)
        return self._scripts_in_pipelines and (op.last is None or op.last > SMALL_READ)

    async def read(self, op: Read) -> ReadResult:
        now = now_ms()
        keys = self.p.keys.session(op.session_id)
        known = self.p.plain_read(op, now)
        if known is not None:
            with _translated(op.session_id):
                records = await self.client.lrange(keys[0], *self.p.plain_range(op))
                return self.p.plain_result(known, records)
        plan = None
        if not self.p.fixed:
            plan = self.p.index.before(op.session_id, None, None, now, existing_only=True)
        args = self.p.read_args(op, now)
        with _translated(op.session_id):
            if self._pipelined_read(op):
                touched, records = await self._eval(
                    SCRIPTS["touch"],
                    keys,
                    args,
                    plan,
                    member=op.session_id,
                    lrange=(-(op.last or 0), -1),
                )
                reply = [touched[0], touched[1], records]
            else:
                reply = await self._eval(SCRIPTS["read"], keys, args, plan, member=op.session_id)
            result = self.p.read_result(reply)
            if result.exists:
                await self._fix_index(op.session_id, plan, result.expires_at_ms, result.owner, now)
        return result

    async def clear(self, op: Clear) -> bool:
        keys = self.p.keys.session(op.session_id)
        with _translated(op.session_id):
            existed, owner = await self._eval(SCRIPTS["clear"], keys, [op.owner or ""])
            pipe = self.client.pipeline(transaction=False)
            pipe.zrem(self.p.keys.index, op.session_id)
            if owner is not None:
                pipe.zrem(self.p.keys.owner_index(_text(owner) or ""), op.session_id)
            await pipe.execute()
        self.p.index.forget(op.session_id)
        return bool(existed)

    async def ttl(self, op: Ttl) -> float | None:
        _, meta = self.p.keys.session(op.session_id)
        with _translated(op.session_id):
            return self.p.ttl_result(int(await self.client.pttl(meta)))

    async def info(self, op: Info) -> SessionInfo | None:
        messages, meta = self.p.keys.session(op.session_id)
        with _translated(op.session_id):
            pipe = self.client.pipeline(transaction=False)
            pipe.hmget(meta, ["c", "u", "o"])
            pipe.llen(messages)
            pipe.pttl(meta)
            fields, length, pttl = await pipe.execute()
        info = self.p.info_result(op.session_id, fields, length, pttl)
        if info is not None and op.owner is not None and info.owner != op.owner:
            raise SessionOwnershipError(op.session_id)
        return info

    async def sessions(self, op: Sessions) -> list[SessionInfo]:
        key = self.p.listing_key(op)
        floor = now_ms() - INDEX_SLACK_MS
        found: list[SessionInfo] = []
        offset = 0
        batch = op.limit if op.limit is not None else 500
        with _translated():
            await self.client.zremrangebyscore(key, "-inf", f"({floor}")
            while op.limit is None or len(found) < op.limit:
                members = await self.client.zrevrangebyscore(
                    key, "+inf", floor, start=offset, num=batch
                )
                if not members:
                    break
                offset += len(members)
                sids = [_text(m) or "" for m in members]
                pipe = self.client.pipeline(transaction=False)
                self.p.queue_page(pipe, sids)
                stale = self.p.read_page(op, sids, await pipe.execute(), found)
                if stale:
                    await self.client.zrem(key, *stale)
                    offset -= len(stale)
                if len(members) < batch:
                    break
        return found

    async def recent(self, op: Recent) -> list[RecentConversation]:
        infos = await self.sessions(Sessions(op.owner, op.limit))
        with _translated():
            pipe = self.client.pipeline(transaction=False)
            for info in infos:  # LRANGE, not the read script: listing refreshes no TTL
                pipe.lrange(self.p.keys.session(info.id)[0], 0, TITLE_SCAN - 1)
            heads = await pipe.execute() if infos else []
        return [
            recent_of(info, self.p.decoder.decode_all(head, info.id))
            for info, head in zip(infos, heads, strict=True)
        ]

    async def ping(self) -> None:
        with _translated():
            await self.client.ping()

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()
            for sentinel in _sentinels_of(self.client):
                await sentinel.aclose()


def client_options(
    connect_timeout: float, socket_timeout: float, *, asyncio: bool
) -> dict[str, Any]:
    """Connection options chatkeep sets on clients it makes from a URL."""
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import ExponentialBackoff
    from redis.retry import Retry

    retry_class = AsyncRetry if asyncio else Retry
    return {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": socket_timeout,
        # One quick retry heals a pooled connection the server closed. Timeouts are
        # not retried: a server that did not answer in time will not answer the
        # retry either, and the fallback is waiting.
        "retry": retry_class(
            ExponentialBackoff(cap=0.05, base=0.01), 1, supported_errors=(rex.ConnectionError,)
        ),
        "health_check_interval": 30,
    }


def _sentinels_of(client: Any) -> list[Any]:
    """The sentinel clients behind a ``Sentinel.master_for`` client (closed with it)."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    return list(getattr(manager, "sentinels", []))


CLUSTER_SCHEME = "redis+cluster"
SENTINEL_SCHEME = "redis+sentinel"
_DEFAULT_PORTS = {CLUSTER_SCHEME: 6379, SENTINEL_SCHEME: 26379}
# Query options of redis+sentinel:// URLs that go to the sentinels, not to Redis.
_SENTINEL_OPTIONS = ("sentinel_username", "sentinel_password")


@dataclass(frozen=True, slots=True)
class MultiHostUrl:
    """A ``redis+cluster://`` or ``redis+sentinel://`` URL, taken apart."""

    scheme: str
    userinfo: str  # "user:password@" or ""
    hosts: list[tuple[str, int]]
    path: str
    query: list[tuple[str, str]]

    def single(self, host: tuple[str, int], path: str, query: list[tuple[str, str]]) -> str:
        """A plain ``redis://`` URL to one host, for redis-py's own URL parser."""
        name, port = host
        name = f"[{name}]" if ":" in name else name
        netloc = f"{self.userinfo}{name}:{port}"
        return urlunsplit(("redis", netloc, path, urlencode(query), ""))


def parse_multi_host(url: str, safe_url: str) -> MultiHostUrl:
    """Split ``scheme://[user:pw@]h1[:p1][,h2[:p2]...][/path][?query]``."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    userinfo, at, hostlist = parts.netloc.rpartition("@")
    hosts: list[tuple[str, int]] = []
    for raw in hostlist.split(","):
        item = raw.strip()
        if item.startswith("["):  # [ipv6]:port
            name, _, rest = item[1:].partition("]")
            port_text = rest.removeprefix(":")
        else:
            name, _, port_text = item.partition(":")
        try:
            port = int(port_text) if port_text else _DEFAULT_PORTS[scheme]
        except ValueError:
            port = -1
        if not name or not 0 < port < 65536:
            raise ConfigurationError(
                f"cannot use URL {safe_url}: hosts must be host[:port] separated by commas"
            )
        hosts.append((unquote(name), port))
    query = parse_qsl(parts.query, keep_blank_values=True)
    return MultiHostUrl(scheme, userinfo + at, hosts, parts.path, query)


def client_factory(config: StoreConfig, *, asyncio: bool) -> Callable[[], Any]:
    """Check ``config.url`` now (:class:`ConfigurationError` if unusable) and return a
    function that makes the client. Error messages show the URL without credentials."""
    from . import SCHEMES

    url, safe_url = config.url, config.safe_url
    scheme = config.scheme
    if scheme not in SCHEMES or scheme == "memory":
        raise ConfigurationError(
            f"unknown URL scheme {scheme!r}; use one of: " + ", ".join(f"{s}://" for s in SCHEMES)
        )
    options = client_options(config.connect_timeout, config.socket_timeout, asyncio=asyncio)
    try:
        if scheme == CLUSTER_SCHEME:
            return _cluster_factory(parse_multi_host(url, safe_url), options, asyncio=asyncio)
        if scheme == SENTINEL_SCHEME:
            return _sentinel_factory(parse_multi_host(url, safe_url), options, asyncio=asyncio)
        # A burst of callers beyond the pool waits (briefly) for a free connection
        # instead of failing with "Too many connections" (redis-py's default pool).
        sizing = {"max_connections": config.max_connections, "timeout": config.pool_timeout}

        def make() -> Any:
            if asyncio:
                return redis_async.Redis.from_pool(
                    redis_async.BlockingConnectionPool.from_url(url, **sizing, **options)
                )
            return redis_sync.Redis.from_pool(
                redis_sync.BlockingConnectionPool.from_url(url, **sizing, **options)
            )

        made = [make()]  # made now, so a bad URL fails here; handed out first
    except (ValueError, TypeError, rex.RedisClusterException) as exc:
        if isinstance(exc, ConfigurationError):
            raise
        raise ConfigurationError(f"cannot use URL {safe_url}: {exc}") from None
    return lambda: made.pop() if made else make()


def _untyped(module: str, name: str) -> Any:
    """A redis-py function without annotations (mypy --strict refuses to call those)."""
    return getattr(importlib.import_module(module), name)


def _cluster_factory(
    parsed: MultiHostUrl, options: dict[str, Any], *, asyncio: bool
) -> Callable[[], Any]:
    parse_url = _untyped("redis.connection", "parse_url")

    if parsed.path not in ("", "/", "/0") or any(k == "db" and v != "0" for k, v in parsed.query):
        raise ValueError("Redis Cluster has only database 0")
    first, *others = parsed.hosts
    url = parsed.single(first, "", [(k, v) for k, v in parsed.query if k != "db"])
    parse_url(url)  # raises ValueError on bad query options, now rather than later
    if asyncio:
        from redis.asyncio.cluster import ClusterNode as AsyncNode

        nodes: list[Any] = [AsyncNode(host, port) for host, port in others]
        return lambda: redis_async.RedisCluster.from_url(url, startup_nodes=nodes, **options)
    cluster_node = _untyped("redis.cluster", "ClusterNode")
    sync_nodes = [cluster_node(host, port) for host, port in others]
    # A RedisCluster contacts the cluster when made: made on first use (RedisBackend).
    return lambda: redis_sync.RedisCluster.from_url(url, startup_nodes=sync_nodes, **options)


def _sentinel_factory(
    parsed: MultiHostUrl, options: dict[str, Any], *, asyncio: bool
) -> Callable[[], Any]:
    parse_url = _untyped("redis.connection", "parse_url")

    service, _, db_path = parsed.path.strip("/").partition("/")
    if not service:
        raise ValueError("name the monitored service: redis+sentinel://host:port/service_name")
    query = [(k, v) for k, v in parsed.query if k not in _SENTINEL_OPTIONS]
    db = f"/{db_path}" if db_path else ""
    data_options = parse_url(parsed.single(parsed.hosts[0], db, query))
    for key in ("host", "port", "connection_class", "path"):
        data_options.pop(key, None)
    data_options = {**options, **data_options}
    # Sentinels get the same short timeouts and single quick retry (redis-py's default
    # retry would back off for seconds on each unreachable sentinel).
    sentinel_options: dict[str, Any] = {
        key: value for key, value in options.items() if key.startswith("socket_") or key == "retry"
    }
    for key, value in parsed.query:
        if key in _SENTINEL_OPTIONS:
            sentinel_options[key.removeprefix("sentinel_")] = unquote(value)
    if asyncio:
        async_sentinel = _untyped("redis.asyncio.sentinel", "Sentinel")
        return lambda: async_sentinel(parsed.hosts, sentinel_kwargs=sentinel_options).master_for(
            service, **data_options
        )
    sentinel = _untyped("redis.sentinel", "Sentinel")
    return lambda: sentinel(parsed.hosts, sentinel_kwargs=sentinel_options).master_for(
        service, **data_options
    )
