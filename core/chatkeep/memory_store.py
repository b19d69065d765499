"""Long-term memory: namespaced JSON values with per-namespace TTLs.

What a user told the assistant in earlier sessions, what an agent learned, shared
knowledge, summaries of past sessions: values that outlive one conversation.

>>> from chatkeep import MemoryStore
>>> memory = MemoryStore.from_url("memory://")
>>> memory.put(("user", "u42"), "profile", {"name": "Ada", "language": "en"})
>>> memory.get(("user", "u42"), "profile")
{'name': 'Ada', 'language': 'en'}
>>> memory.list(("user", "u42"))
['profile']

A namespace is a string or a tuple of strings; its first part picks the default TTL
(:data:`DEFAULT_MEMORY_TTLS`, overridable with ``ttls=``; other namespaces use the
store's ``ttl``). Layout in Redis (one hash tag per namespace, so every script runs
on one Cluster slot; listing uses the namespace index, never KEYS or SCAN)::

    <prefix>:mem:{<ns>}:i         ZSET  key -> expires_at (ms; inf = never)
    <prefix>:mem:{<ns>}:v:<key>   HASH  d JSON value, b bytes tagged, t TTL ms, c created, u updated

Values follow chatkeep's JSON policy (bytes come back as bytes, UUIDs as strings,
anything else JSON cannot hold is a :class:`SerializationError`) and are limited to
``max_message_bytes`` (:class:`ValueTooLargeError`); nothing partial is written.
TTLs slide (refreshed on read and write) unless ``ttl_mode="fixed"``. While Redis is
unreachable, reads are served from a local mirror of recently used values and writes
are journaled and replayed in order when it is back.
"""

from __future__ import annotations

import builtins
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Final, TypeVar

from ._kv import Breaker, Connection, Route, decode_value, encode_value, load_script
from .clock import now_ms
from .redis.errors import Unreachable
from .config import StoreConfig
from .errors import ChatkeepError, InvalidArgumentError
from .keys import KeySchema, escape_id, validate_id

__all__ = ["DEFAULT_MEMORY_TTLS", "AsyncMemoryStore", "MemoryStore", "Namespace"]

logger = logging.getLogger("chatkeep")

_DAY = 24 * 3600.0

DEFAULT_MEMORY_TTLS: Final[Mapping[str, float | None]] = {
    "user": 3 * _DAY,  # user context: what a user told the assistant
    "agent": 3 * _DAY,  # agent memory: what an agent learned
    "knowledge": 7 * _DAY,  # shared knowledge
    "summary": 30 * _DAY,  # session history summaries
}
"""Default TTL (seconds) by the first part of a namespace. Other namespaces use the
store's ``ttl`` (7 days unless configured). Override with ``MemoryStore(ttls={...})``."""

Namespace = str | tuple[str, ...]
"""``"knowledge"`` or ``("user", "u42")``: each part 1..512 characters."""

_SCRIPTS = {name: load_script(f"memory_{name}") for name in ("put", "get", "delete", "list")}
_MIRROR_ENTRIES = 10_000

S = TypeVar("S", bound="_MemoryStoreBase")


# -- operations (what every backend executes, and what the journal keeps) --------------


@dataclass(slots=True)
class _Put:
    ns: str
    items: list[tuple[str, bytes, bool, int]]  # key, data, tagged, ttl ms (0 = never)
    is_write: bool = True


@dataclass(slots=True)
class _Get:
    ns: str
    keys: list[str]
    is_write: bool = False


@dataclass(slots=True)
class _Delete:
    ns: str
    keys: list[str]
    is_write: bool = True


@dataclass(slots=True)
class _List:
    ns: str
    prefix: str
    is_write: bool = False


@dataclass(slots=True)
class _Ttl:
    ns: str
    key: str
    is_write: bool = False


_Op = _Put | _Get | _Delete | _List | _Ttl
_Found = tuple[bytes, bool, int] | None  # data, tagged, ttl ms


# -- in-process backend (memory://) and the fallback mirror ----------------------------


@dataclass(slots=True)
class _Entry:
    data: bytes
    tagged: bool
    ttl_ms: int
    created: int
    expires: int | None


class _LocalMemory:
    """Values in a dict; bounded (least recently used evicted) when used as a mirror."""

    def __init__(self, *, sliding: bool, max_entries: int | None) -> None:
        self._sliding = sliding
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._by_ns: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def _live(self, ns: str, key: str, now: int) -> _Entry | None:
        entry = self._entries.get((ns, key))
        if entry is None:
            return None
        if entry.expires is not None and entry.expires <= now:
            self._drop(ns, key)
            return None
        self._entries.move_to_end((ns, key))
        return entry

    def _drop(self, ns: str, key: str) -> bool:
        if self._entries.pop((ns, key), None) is None:
            return False
        keys = self._by_ns.get(ns)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_ns[ns]
        return True

    def _store(  # noqa: PLR0917
        self, ns: str, key: str, data: bytes, tagged: bool, ttl: int, now: int
    ) -> None:
        old = self._live(ns, key, now)
        created = old.created if old is not None else now
        expires = None if ttl <= 0 else (now if self._sliding else created) + ttl
        self._entries[(ns, key)] = _Entry(data, tagged, ttl, created, expires)
        self._entries.move_to_end((ns, key))
        self._by_ns.setdefault(ns, set()).add(key)
        if self._max is not None:
            while len(self._entries) > self._max:
                (old_ns, old_key), _ = next(iter(self._entries.items()))
                self._drop(old_ns, old_key)

    def run(self, op: _Op) -> Any:
        now = now_ms()
        with self._lock:
            if isinstance(op, _Put):
                for key, data, tagged, ttl in op.items:
                    self._store(op.ns, key, data, tagged, ttl, now)
                return len(op.items)
            if isinstance(op, _Get):
                found: list[_Found] = []
                for key in op.keys:
                    entry = self._live(op.ns, key, now)
                    if entry is None:
                        found.append(None)
                        continue
                    if self._sliding and entry.ttl_ms > 0:
                        entry.expires = now + entry.ttl_ms
                    found.append((entry.data, entry.tagged, entry.ttl_ms))
                return found
            if isinstance(op, _Delete):
                return sum(self._drop(op.ns, key) for key in op.keys)
            if isinstance(op, _List):
                keys = sorted(self._by_ns.get(op.ns, ()))
                return [
                    key
                    for key in keys
                    if key.startswith(op.prefix) and self._live(op.ns, key, now) is not None
                ]
            entry = self._live(op.ns, op.key, now)
            if entry is None:
                return 0.0
            return None if entry.expires is None else max(entry.expires - now, 0) / 1000

    def absorb(self, op: _Op, result: Any) -> None:
        """Mirror what Redis did (write-through, and values seen by reads)."""
        if isinstance(op, (_Put, _Delete)):
            self.run(op)
        elif isinstance(op, _Get):
            now = now_ms()
            with self._lock:
                for key, found in zip(op.keys, result, strict=True):
                    if found is None:
                        self._drop(op.ns, key)
                    else:
                        self._store(op.ns, key, found[0], found[1], found[2], now)


# -- shared policy -----------------------------------------------------------------------


class _MemoryStoreBase:
    """Shared policy of both memory stores. Not for direct use."""

    config: StoreConfig

    def __init__(
        self,
        config: StoreConfig | None,
        ttls: Mapping[str, float | None] | None,
        options: dict[str, Any],
    ) -> None:
        if config is None:
            config = StoreConfig.create(**options)
        elif not isinstance(config, StoreConfig):
            raise InvalidArgumentError("config must be a chatkeep.StoreConfig")
        elif options:
            config = config.replace(**options)
        self.config = config
        self._keys = KeySchema(config.prefix)
        table = dict(DEFAULT_MEMORY_TTLS)
        table.update(ttls or {})
        self._ttls = {kind: self._ttl_ms(value, f"ttls[{kind!r}]") for kind, value in table.items()}
        self._default_ttl = self._ttl_ms(config.ttl, "ttl")
        self._sliding = config.ttl_mode == "sliding"
        self._local_primary = config.scheme == "memory"
        self._local = _LocalMemory(
            sliding=self._sliding, max_entries=None if self._local_primary else _MIRROR_ENTRIES
        )
        self._breaker: Breaker[_Op] = Breaker(config, logger, "memory store")
        self._closed = False

    @property
    def ttls(self) -> dict[str, float | None]:
        """The TTL table in use (seconds by namespace kind; None = never expires)."""
        return {k: (v / 1000 if v else None) for k, v in self._ttls.items()}

    # -- validation -------------------------------------------------------------------

    @staticmethod
    def _ttl_ms(value: object, what: str) -> int:
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise InvalidArgumentError(f"{what} must be a positive number of seconds, or None")
        return max(round(value * 1000), 1)

    @staticmethod
    def _ns(namespace: object) -> tuple[str, str]:
        """(first part, escaped namespace) of a namespace."""
        if isinstance(namespace, str):
            parts: tuple[object, ...] = (namespace,)
        elif isinstance(namespace, tuple) and namespace:
            parts = namespace
        else:
            raise InvalidArgumentError("namespace must be a str or a non-empty tuple of str")
        checked = [validate_id(part, "namespace part") for part in parts]
        return checked[0], ":".join(escape_id(part) for part in checked)

    @staticmethod
    def _key(key: object) -> str:
        return validate_id(key, "key")

    def _plan_put(
        self, namespace: object, items: Iterable[tuple[object, object]], ttl: object
    ) -> _Put:
        kind, ns = self._ns(namespace)
        if ttl is _DEFAULT:
            ttl_ms = self._ttls.get(kind, self._default_ttl)
        else:
            ttl_ms = self._ttl_ms(ttl, "ttl")
        planned: dict[str, tuple[str, bytes, bool, int]] = {}
        limit = self.config.max_message_bytes
        for key, value in items:
            checked = self._key(key)
            data, tagged = encode_value(value, limit, f"value of key {checked!r}")
            planned[checked] = (checked, data, tagged, ttl_ms)
        return _Put(ns, list(planned.values()))

    def _plan_keys(self, keys: object) -> list[str]:
        if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
            raise InvalidArgumentError("keys must be a sequence of str")
        return [self._key(key) for key in keys]

    # -- Redis calls ------------------------------------------------------------------

    def _value_key(self, ns: str, key: str) -> str:
        return f"{self._keys.prefix}:mem:{{{ns}}}:v:{escape_id(key)}"

    def _index_key(self, ns: str) -> str:
        return f"{self._keys.prefix}:mem:{{{ns}}}:i"

    def _call(self, op: _Op) -> tuple[str, list[str], list[Any]]:
        index = self._index_key(op.ns)
        now = now_ms()
        if isinstance(op, _Put):
            args: list[Any] = [now, 0 if self._sliding else 1]
            for key, data, tagged, ttl in op.items:
                args += [key, data, 1 if tagged else 0, ttl]
            return "put", [index] + [self._value_key(op.ns, k) for k, *_ in op.items], args
        if isinstance(op, _Get):
            keys = [index] + [self._value_key(op.ns, k) for k in op.keys]
            return "get", keys, [now, 1 if self._sliding else 0, *op.keys]
        if isinstance(op, _Delete):
            return "delete", [index] + [self._value_key(op.ns, k) for k in op.keys], list(op.keys)
        if isinstance(op, _List):
            return "list", [index], [now, op.prefix]
        raise AssertionError(op)  # _Ttl is a plain PTTL

    @staticmethod
    def _result(op: _Op, reply: Any) -> Any:
        if isinstance(op, _Get):
            found: list[_Found] = []
            for i in range(len(op.keys)):
                data, tagged, ttl = reply[3 * i : 3 * i + 3]
                if data is None:
                    found.append(None)
                else:
                    found.append((bytes(data), tagged in (b"1", "1"), int(ttl or 0)))
            return found
        if isinstance(op, _List):
            return sorted(m.decode() if isinstance(m, bytes) else str(m) for m in reply)
        if isinstance(op, _Ttl):
            pttl = int(reply)
            return 0.0 if pttl == -2 else None if pttl == -1 else pttl / 1000
        return int(reply)

    @staticmethod
    def _values(found: list[_Found], default: Any) -> list[Any]:
        return [default if f is None else decode_value(f[0], f[1]) for f in found]

    def _serve_local(self, op: _Op) -> Any:
        result = self._local.run(op)
        if op.is_write and not self._local_primary:
            self._breaker.journal(op)
        return result

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidArgumentError("this memory store is closed")

    def status(self) -> dict[str, Any]:
        """Where calls go now and what the fallback has been through (no I/O)."""
        b = self._breaker
        backend = "memory" if self._local_primary else "redis"
        return {
            "backend": backend,
            "serving": "fallback" if b.degraded else backend,
            "degraded": b.degraded,
            "pending_replay": b.pending,
            "replayed": b.replayed,
            "replay_rejected": b.rejected,
            "journal_dropped": b.dropped,
            "outages": b.outages,
            "last_error": b.last_error,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.config.safe_url!r}, prefix={self.config.prefix!r})"


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


_DEFAULT: Final[Any] = _Default()


class MemoryStore(_MemoryStoreBase):
    """Long-term memory (sync). Thread-safe; one connection pool.

    ``MemoryStore.from_url("redis://...")``, ``MemoryStore(config)``, or
    ``MemoryStore(client=redis.Redis(...))``; options are :class:`StoreConfig` fields
    (``prefix``, ``ttl`` for namespaces without a default, ``ttl_mode``, ``fallback``,
    ``max_message_bytes`` as the value size limit, ...).
    """

    def __init__(
        self,
        config: StoreConfig | None = None,
        *,
        client: Any = None,
        ttls: Mapping[str, float | None] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(config, ttls, options)
        self._conn = None if self._local_primary else Connection(self.config, client, asyncio=False)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryStore:
        return cls(url=url, **options)

    def _redis(self, op: _Op) -> Any:
        assert self._conn is not None
        if isinstance(op, _Ttl):
            from ._kv import translated

            with translated():
                pttl = self._conn.client.pttl(self._value_key(op.ns, op.key))
            return self._result(op, pttl)
        name, keys, args = self._call(op)
        return self._result(op, self._conn.eval(_SCRIPTS[name], keys, args))

    def _run(self, op: _Op) -> Any:
        self._check_open()
        if self._conn is None:
            return self._local.run(op)
        route = self._breaker.route()
        if route is not Route.LOCAL:
            try:
                if route is Route.PROBE:
                    self._replay()
                result = self._redis(op)
            except Unreachable as exc:
                self._breaker.failed(exc)
            else:
                self._local.absorb(op, result)
                return result
        return self._serve_local(op)

    def _replay(self) -> None:
        assert self._conn is not None
        from ._kv import translated

        with translated():
            self._conn.client.ping()
        while (op := self._breaker.next_pending()) is not None:
            try:
                self._redis(op)
            except ChatkeepError as exc:
                self._breaker.done(op, rejected=exc)
            else:
                self._breaker.done(op)

    def flush(self) -> int:
        """Try now to reach Redis and replay journaled writes; return how many remain."""
        b = self._breaker
        if b.degraded and b.route(force_probe=True) is Route.PROBE:
            try:
                self._replay()
            except Unreachable as exc:
                b.failed(exc)
        return b.pending

    # -- public API -------------------------------------------------------------------

    def put(
        self, namespace: Namespace, key: str, value: Any, *, ttl: float | None = _DEFAULT
    ) -> None:
        """Store a JSON value (replacing any); ``ttl`` overrides the namespace default."""
        self._run(self._plan_put(namespace, [(key, value)], ttl))

    def mput(
        self, namespace: Namespace, items: Mapping[str, Any], *, ttl: float | None = _DEFAULT
    ) -> None:
        """Store several values of one namespace atomically (one round trip)."""
        op = self._plan_put(namespace, items.items(), ttl)
        if op.items:
            self._run(op)

    def get(self, namespace: Namespace, key: str, default: Any = None) -> Any:
        """The value, or ``default`` if there is none (or it expired)."""
        return self.mget(namespace, [key], default)[0]

    def mget(
        self, namespace: Namespace, keys: Sequence[str], default: Any = None
    ) -> builtins.list[Any]:
        """Values of several keys of one namespace, in order (one round trip)."""
        _, ns = self._ns(namespace)
        checked = self._plan_keys(keys)
        if not checked:
            return []
        return self._values(self._run(_Get(ns, checked)), default)

    def delete(self, namespace: Namespace, key: str) -> bool:
        """Delete a value; True if it existed."""
        return self.mdelete(namespace, [key]) > 0

    def mdelete(self, namespace: Namespace, keys: Sequence[str]) -> int:
        """Delete several values of one namespace; return how many existed."""
        _, ns = self._ns(namespace)
        checked = self._plan_keys(keys)
        return int(self._run(_Delete(ns, checked))) if checked else 0

    def list(
        self, namespace: Namespace, *, prefix: str = "", limit: int | None = None
    ) -> builtins.list[str]:
        """Live keys of a namespace (sorted) that start with ``prefix``. Reads the
        namespace index, never KEYS or SCAN."""
        _, ns = self._ns(namespace)
        if not isinstance(prefix, str):
            raise InvalidArgumentError("prefix must be a str")
        keys: builtins.list[str] = self._run(_List(ns, prefix))
        return keys if limit is None else keys[:limit]

    def ttl(self, namespace: Namespace, key: str) -> float | None:
        """Seconds until the value expires; None if never; 0.0 if it does not exist."""
        _, ns = self._ns(namespace)
        result: float | None = self._run(_Ttl(ns, self._key(key)))
        return result

    def close(self) -> None:
        if self._closed:
            return
        if self.flush():
            logger.error("closing the memory store with journaled writes that did not reach Redis")
        self._closed = True
        if self._conn is not None:
            self._conn.close()

    def __enter__(self: S) -> S:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncMemoryStore(_MemoryStoreBase):
    """The asyncio twin of :class:`MemoryStore`: same names, awaited."""

    def __init__(
        self,
        config: StoreConfig | None = None,
        *,
        client: Any = None,
        ttls: Mapping[str, float | None] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(config, ttls, options)
        self._conn = None if self._local_primary else Connection(self.config, client, asyncio=True)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncMemoryStore:
        return cls(url=url, **options)

    async def _redis(self, op: _Op) -> Any:
        assert self._conn is not None
        if isinstance(op, _Ttl):
            from ._kv import translated

            with translated():
                pttl = await self._conn.client.pttl(self._value_key(op.ns, op.key))
            return self._result(op, pttl)
        name, keys, args = self._call(op)
        return self._result(op, await self._conn.aeval(_SCRIPTS[name], keys, args))

    async def _run(self, op: _Op) -> Any:
        self._check_open()
        if self._conn is None:
            return self._local.run(op)
        route = self._breaker.route()
        if route is not Route.LOCAL:
            try:
                if route is Route.PROBE:
                    await self._replay()
                result = await self._redis(op)
            except Unreachable as exc:
                self._breaker.failed(exc)
            else:
                self._local.absorb(op, result)
                return result
        return self._serve_local(op)

    async def _replay(self) -> None:
        assert self._conn is not None
        from ._kv import translated

        with translated():
            await self._conn.client.ping()
        while (op := self._breaker.next_pending()) is not None:
            try:
                await self._redis(op)
            except ChatkeepError as exc:
                self._breaker.done(op, rejected=exc)
            else:
                self._breaker.done(op)

    async def flush(self) -> int:
        """Try now to reach Redis and replay journaled writes; return how many remain."""
        b = self._breaker
        if b.degraded and b.route(force_probe=True) is Route.PROBE:
            try:
                await self._replay()
            except Unreachable as exc:
                b.failed(exc)
        return b.pending

    async def put(
        self, namespace: Namespace, key: str, value: Any, *, ttl: float | None = _DEFAULT
    ) -> None:
        """Store a JSON value (replacing any); ``ttl`` overrides the namespace default."""
        await self._run(self._plan_put(namespace, [(key, value)], ttl))

    async def mput(
        self, namespace: Namespace, items: Mapping[str, Any], *, ttl: float | None = _DEFAULT
    ) -> None:
        """Store several values of one namespace atomically (one round trip)."""
        op = self._plan_put(namespace, items.items(), ttl)
        if op.items:
            await self._run(op)

    async def get(self, namespace: Namespace, key: str, default: Any = None) -> Any:
        """The value, or ``default`` if there is none (or it expired)."""
        return (await self.mget(namespace, [key], default))[0]

    async def mget(
        self, namespace: Namespace, keys: Sequence[str], default: Any = None
    ) -> builtins.list[Any]:
        """Values of several keys of one namespace, in order (one round trip)."""
        _, ns = self._ns(namespace)
        checked = self._plan_keys(keys)
        if not checked:
            return []
        return self._values(await self._run(_Get(ns, checked)), default)

    async def delete(self, namespace: Namespace, key: str) -> bool:
        """Delete a value; True if it existed."""
        return (await self.mdelete(namespace, [key])) > 0

    async def mdelete(self, namespace: Namespace, keys: Sequence[str]) -> int:
        """Delete several values of one namespace; return how many existed."""
        _, ns = self._ns(namespace)
        checked = self._plan_keys(keys)
        return int(await self._run(_Delete(ns, checked))) if checked else 0

    async def list(
        self, namespace: Namespace, *, prefix: str = "", limit: int | None = None
    ) -> builtins.list[str]:
        """Live keys of a namespace (sorted) that start with ``prefix``; no KEYS or SCAN."""
        _, ns = self._ns(namespace)
        if not isinstance(prefix, str):
            raise InvalidArgumentError("prefix must be a str")
        keys: builtins.list[str] = await self._run(_List(ns, prefix))
        return keys if limit is None else keys[:limit]

    async def ttl(self, namespace: Namespace, key: str) -> float | None:
        """Seconds until the value expires; None if never; 0.0 if it does not exist."""
        _, ns = self._ns(namespace)
        result: float | None = await self._run(_Ttl(ns, self._key(key)))
        return result

    async def aclose(self) -> None:
        if self._closed:
            return
        if await self.flush():
            logger.error("closing the memory store with journaled writes that did not reach Redis")
        self._closed = True
        if self._conn is not None:
            await self._conn.aclose()

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
