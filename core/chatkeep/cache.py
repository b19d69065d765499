"""Result cache: tool calls, chain steps and model responses, keyed by a stable hash
of their inputs, with a TTL (default one day) and stampede protection.

>>> from chatkeep import ResultCache
>>> cache = ResultCache.from_url("memory://")
>>> @cache.cached()
... def weather(city: str) -> dict:
...     return {"city": city, "temp": 21}
>>> weather("Oslo")
{'city': 'Oslo', 'temp': 21}

Keys are the sha256 of the canonical JSON of the inputs (sorted keys, compact), so
every process computes the same key. Values follow chatkeep's JSON policy (bytes come
back as bytes, tuples as lists); a value above ``max_message_bytes`` raises
:class:`ValueTooLargeError`. Layout in Redis (a hash tag per entry spreads entries
over Cluster slots; entry and lock share it, so each script runs on one slot)::

    <prefix>:cache:<ns>:{<sha256>}        STRING  flag byte + JSON value (PX ttl)
    <prefix>:cache:<ns>:{<sha256>}:lock   STRING  token of the one computing it (PX lock_timeout)
    <prefix>:cache:<ns>:idx               ZSET    sha256 -> expires_at, for clear()

Stampede protection: a miss claims the entry's lock in the same script that reads it
(one round trip); other callers, in any process, wait (polling every 2-50 ms) for the
value instead of computing it again. A lock whose holder died expires after
``lock_timeout``. While Redis is unreachable the cache is served from a bounded local
cache with one computation per key per process.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from types import TracebackType
from typing import Any, Final, TypeVar, cast

from ._kv import Breaker, Connection, Route, decode_value, encode_value, load_script, stable_hash
from .clock import now_ms
from .redis.errors import Unreachable
from .config import StoreConfig
from .errors import InvalidArgumentError
from .keys import KeySchema, escape_id, validate_id

__all__ = ["DEFAULT_CACHE_TTL", "AsyncResultCache", "ResultCache"]

logger = logging.getLogger("chatkeep")

DEFAULT_CACHE_TTL: Final = 24 * 3600.0
"""One day, in seconds."""

_CLAIM = load_script("cache_claim")
_SET = load_script("cache_set")
_MISS: Final[Any] = object()

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound="_CacheBase")


class _LocalCache:
    """Entries in a dict with expiry; least recently used evicted past ``max_entries``."""

    def __init__(self, max_entries: int | None) -> None:
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[bytes, int | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> bytes | None:
        now = now_ms()
        with self._lock:
            found = self._entries.get(digest)
            if found is None:
                return None
            if found[1] is not None and found[1] <= now:
                del self._entries[digest]
                return None
            self._entries.move_to_end(digest)
            return found[0]

    def set(self, digest: str, data: bytes, ttl_ms: int) -> None:
        expires = None if ttl_ms <= 0 else now_ms() + ttl_ms
        with self._lock:
            self._entries[digest] = (data, expires)
            self._entries.move_to_end(digest)
            while self._max is not None and len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def delete(self, digest: str) -> bool:
        with self._lock:
            return self._entries.pop(digest, None) is not None

    def clear(self) -> int:
        with self._lock:
            n = len(self._entries)
            self._entries.clear()
            return n


class _KeyLocks:
    """One lock per key, made on demand and dropped when nobody holds or waits for it."""

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._locks: dict[str, list[Any]] = {}  # key -> [lock, users]
        self._guard = threading.Lock()

    def enter(self, key: str) -> Any:
        with self._guard:
            slot = self._locks.setdefault(key, [self._factory(), 0])
            slot[1] += 1
            return slot[0]

    def leave(self, key: str) -> None:
        with self._guard:
            slot = self._locks[key]
            slot[1] -= 1
            if slot[1] == 0:
                del self._locks[key]

    @contextmanager
    def hold(self, key: str) -> Iterator[None]:
        lock = self.enter(key)
        try:
            with lock:
                yield
        finally:
            self.leave(key)

    @asynccontextmanager
    async def ahold(self, key: str) -> Any:
        lock = self.enter(key)
        try:
            async with lock:
                yield
        finally:
            self.leave(key)


class _CacheBase:
    """Shared policy of both caches. Not for direct use."""

    config: StoreConfig

    def __init__(
        self,
        config: StoreConfig | None,
        namespace: str,
        ttl: float | None,
        lock_timeout: float,
        options: dict[str, Any],
    ) -> None:
        if config is None:
            config = StoreConfig.create(**options)
        elif not isinstance(config, StoreConfig):
            raise InvalidArgumentError("config must be a chatkeep.StoreConfig")
        elif options:
            config = config.replace(**options)
        self.config = config
        self.namespace = validate_id(namespace, "cache namespace")
        self.ttl = ttl
        self._ttl_ms = self._ttl(ttl)
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)):
            raise InvalidArgumentError("lock_timeout must be a number of seconds")
        if not lock_timeout > 0:
            raise InvalidArgumentError("lock_timeout must be a positive number of seconds")
        self.lock_timeout = float(lock_timeout)
        self._lock_ms = max(round(lock_timeout * 1000), 1)
        self._base = f"{KeySchema(config.prefix).prefix}:cache:{escape_id(self.namespace)}"
        self._local_primary = config.scheme == "memory"
        self._local = _LocalCache(None if self._local_primary else max(config.mirror_sessions, 1))
        self._breaker: Breaker[None] = Breaker(config, logger, "result cache")
        self.hits = 0
        self.misses = 0
        self.computations = 0

    # -- policy -----------------------------------------------------------------------

    @staticmethod
    def _ttl(ttl: object) -> int:
        if ttl is None:
            return 0
        if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0:
            raise InvalidArgumentError("ttl must be a positive number of seconds, or None")
        return max(round(ttl * 1000), 1)

    def _ttl_of(self, ttl: object) -> int:
        return self._ttl_ms if ttl is _DEFAULT else self._ttl(ttl)

    def key(self, inputs: Any) -> str:
        """The cache key (sha256 hex of the canonical JSON) of ``inputs``."""
        return stable_hash(inputs)

    def _keys(self, digest: str) -> list[str]:
        entry = f"{self._base}:{{{digest}}}"
        return [entry, f"{entry}:lock"]

    @property
    def _index(self) -> str:
        return f"{self._base}:idx"

    def _encode(self, value: Any) -> bytes:
        data, tagged = encode_value(value, self.config.max_message_bytes, "cached value")
        return (b"1" if tagged else b"0") + data

    @staticmethod
    def _decode(data: bytes) -> Any:
        return decode_value(data[1:], data[:1] == b"1")

    @staticmethod
    def _token() -> str:
        return os.urandom(12).hex()

    def _count(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1

    @staticmethod
    def _check_function(func: Callable[..., Any], want_async: bool) -> None:
        is_async = inspect.iscoroutinefunction(func)
        if is_async and not want_async:
            raise InvalidArgumentError(
                f"{func.__qualname__} is async: decorate it with AsyncResultCache.cached"
            )
        if want_async and not is_async:
            raise InvalidArgumentError(
                f"{func.__qualname__} is not async: decorate it with ResultCache.cached"
            )

    @staticmethod
    def _inputs(
        func: Callable[..., Any],
        name: str | None,
        key: Callable[..., Any] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Any:
        inputs = key(*args, **kwargs) if key is not None else [list(args), kwargs]
        return {"fn": name or f"{func.__module__}.{func.__qualname__}", "in": inputs}

    def status(self) -> dict[str, Any]:
        """Where calls go now, and hit/miss counters (no I/O)."""
        b = self._breaker
        backend = "memory" if self._local_primary else "redis"
        return {
            "backend": backend,
            "serving": "fallback" if b.degraded else backend,
            "degraded": b.degraded,
            "outages": b.outages,
            "last_error": b.last_error,
            "hits": self.hits,
            "misses": self.misses,
            "computations": self.computations,
        }

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(url={self.config.safe_url!r}, prefix={self.config.prefix!r}, "
            f"namespace={self.namespace!r}, ttl={self.ttl!r})"
        )


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


_DEFAULT: Final[Any] = _Default()


class ResultCache(_CacheBase):
    """Result cache (sync). Thread-safe; one connection pool.

    ``ResultCache.from_url(url, namespace="tools", ttl=3600)``; other options are
    :class:`StoreConfig` fields (``prefix``, ``fallback``, timeouts, ...).
    """

    def __init__(
        self,
        config: StoreConfig | None = None,
        *,
        client: Any = None,
        namespace: str = "default",
        ttl: float | None = DEFAULT_CACHE_TTL,
        lock_timeout: float = 30.0,
        **options: Any,
    ) -> None:
        super().__init__(config, namespace, ttl, lock_timeout, options)
        self._conn = None if self._local_primary else Connection(self.config, client, asyncio=False)
        self._locks = _KeyLocks(threading.Lock)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> ResultCache:
        return cls(url=url, **options)

    # -- Redis, behind the breaker ------------------------------------------------------

    def _redis(self, call: Callable[[Connection], T]) -> T | None:
        """``call(connection)``, or None when Redis is away (memory fallback)."""
        conn = self._conn
        if conn is None:
            return None
        route = self._breaker.route()
        if route is Route.LOCAL:
            return None
        try:
            if route is Route.PROBE:
                from ._kv import translated

                with translated():
                    conn.client.ping()
                self._breaker.next_pending()
            return call(conn)
        except Unreachable as exc:
            self._breaker.failed(exc)
            return None

    def _claim(self, digest: str, token: str) -> tuple[Any, bool] | None:
        reply = self._redis(lambda c: c.eval(_CLAIM, self._keys(digest), [token, self._lock_ms]))
        if reply is None:
            return None
        raw, claimed = reply
        if raw is not None:
            self._local.set(digest, raw, self._ttl_ms)
            return self._decode(raw), False
        return _MISS, bool(claimed)

    def _store(self, digest: str, data: bytes, ttl_ms: int, token: str) -> None:
        self._local.set(digest, data, ttl_ms)

        def write(c: Connection) -> None:
            c.eval(_SET, self._keys(digest), [data, ttl_ms, token])
            score = "+inf" if ttl_ms <= 0 else now_ms() + ttl_ms
            from ._kv import translated

            with translated():
                pipe = c.client.pipeline(transaction=False)
                pipe.zadd(self._index, {digest: score})
                pipe.zremrangebyscore(self._index, "-inf", f"({now_ms()}")
                pipe.execute()

        self._redis(write)

    def _release(self, digest: str, token: str) -> None:
        self._redis(lambda c: c.eval(_SET, self._keys(digest), ["", 0, token]))

    # -- public API -------------------------------------------------------------------

    def get(self, inputs: Any, default: Any = None) -> Any:
        """The cached value for ``inputs``, or ``default``."""
        digest = self.key(inputs)
        found = self._claim(digest, "")
        if found is None:
            raw = self._local.get(digest)
            value = _MISS if raw is None else self._decode(raw)
        else:
            value = found[0]
        self._count(value is not _MISS)
        return default if value is _MISS else value

    def set(self, inputs: Any, value: Any, *, ttl: float | None = _DEFAULT) -> None:
        """Cache ``value`` for ``inputs`` (``ttl`` seconds, None = never expires)."""
        self._store(self.key(inputs), self._encode(value), self._ttl_of(ttl), "")

    def delete(self, inputs: Any) -> bool:
        """Forget the value cached for ``inputs``; True if there was one."""
        digest = self.key(inputs)
        local = self._local.delete(digest)

        def remove(c: Connection) -> bool:
            from ._kv import translated

            with translated():
                pipe = c.client.pipeline(transaction=False)
                pipe.delete(self._keys(digest)[0])
                pipe.zrem(self._index, digest)
                return bool(pipe.execute()[0])

        removed = self._redis(remove)
        return bool(removed) or local

    def clear(self) -> int:
        """Forget every entry of this cache's namespace (uses its index, not KEYS/SCAN);
        return how many were in Redis (or locally, when Redis is away)."""
        local = self._local.clear()

        def clear(c: Connection) -> int:
            from ._kv import translated

            n = 0
            with translated():
                while digests := c.client.zrange(self._index, 0, 499):
                    pipe = c.client.pipeline(transaction=False)
                    for digest in digests:
                        pipe.delete(self._keys(digest.decode())[0])
                    n += sum(pipe.execute())
                    c.client.zrem(self._index, *digests)
            return n

        removed = self._redis(clear)
        return local if removed is None else removed

    def get_or_compute(
        self, inputs: Any, compute: Callable[[], T], *, ttl: float | None = _DEFAULT
    ) -> T:
        """The cached value for ``inputs``, else ``compute()`` cached. One caller computes
        a key at a time (across processes); the others wait for its value."""
        digest = self.key(inputs)
        ttl_ms = self._ttl_of(ttl)
        token = self._token()
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.002
        while True:
            found = self._claim(digest, token)
            if found is None:  # memory:// or Redis away: one computation per process
                return self._compute_locally(digest, compute, ttl_ms)
            value, claimed = found
            if value is not _MISS:
                self._count(True)
                return cast(T, value)
            if claimed or time.monotonic() > deadline:
                self._count(False)
                return self._compute(digest, compute, ttl_ms, token if claimed else "")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _compute(self, digest: str, compute: Callable[[], T], ttl_ms: int, token: str) -> T:
        self.computations += 1
        try:
            value = compute()
            data = self._encode(value)
        except BaseException:
            if token:
                self._release(digest, token)
            raise
        self._store(digest, data, ttl_ms, token)
        return value

    def _compute_locally(self, digest: str, compute: Callable[[], T], ttl_ms: int) -> T:
        with self._locks.hold(digest):
            raw = self._local.get(digest)
            self._count(raw is not None)
            if raw is not None:
                return cast(T, self._decode(raw))
            self.computations += 1
            value = compute()
            self._store(digest, self._encode(value), ttl_ms, "")
            return value

    def cached(
        self,
        func: F | None = None,
        *,
        ttl: float | None = _DEFAULT,
        key: Callable[..., Any] | None = None,
        name: str | None = None,
    ) -> Any:
        """Decorator: cache a function's results by its arguments (``@cache.cached`` or
        ``@cache.cached(ttl=60, key=lambda q, **_: q)``). Arguments must be JSON values
        unless ``key`` maps them to one; ``name`` defaults to the function's module and
        qualified name. Async functions take :meth:`AsyncResultCache.cached`."""

        def decorate(f: F) -> F:
            self._check_function(f, want_async=False)

            @functools.wraps(f)
            def wrapper(*args: Any, **kwargs: Any) -> Any:
                inputs = self._inputs(f, name, key, args, kwargs)
                return self.get_or_compute(inputs, lambda: f(*args, **kwargs), ttl=ttl)

            wrapper.cache = self  # type: ignore[attr-defined]
            return cast(F, wrapper)

        return decorate if func is None else decorate(func)

    def close(self) -> None:
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


class AsyncResultCache(_CacheBase):
    """The asyncio twin of :class:`ResultCache`: same names, awaited."""

    def __init__(
        self,
        config: StoreConfig | None = None,
        *,
        client: Any = None,
        namespace: str = "default",
        ttl: float | None = DEFAULT_CACHE_TTL,
        lock_timeout: float = 30.0,
        **options: Any,
    ) -> None:
        super().__init__(config, namespace, ttl, lock_timeout, options)
        self._conn = None if self._local_primary else Connection(self.config, client, asyncio=True)
        self._locks = _KeyLocks(asyncio.Lock)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncResultCache:
        return cls(url=url, **options)

    async def _redis(self, call: Callable[[Connection], Awaitable[T]]) -> T | None:
        conn = self._conn
        if conn is None:
            return None
        route = self._breaker.route()
        if route is Route.LOCAL:
            return None
        try:
            if route is Route.PROBE:
                from ._kv import translated

                with translated():
                    await conn.client.ping()
                self._breaker.next_pending()
            return await call(conn)
        except Unreachable as exc:
            self._breaker.failed(exc)
            return None

    async def _claim(self, digest: str, token: str) -> tuple[Any, bool] | None:
        reply = await self._redis(
            lambda c: c.aeval(_CLAIM, self._keys(digest), [token, self._lock_ms])
        )
        if reply is None:
            return None
        raw, claimed = reply
        if raw is not None:
            self._local.set(digest, raw, self._ttl_ms)
            return self._decode(raw), False
        return _MISS, bool(claimed)

    async def _store(self, digest: str, data: bytes, ttl_ms: int, token: str) -> None:
        self._local.set(digest, data, ttl_ms)

        async def write(c: Connection) -> None:
            await c.aeval(_SET, self._keys(digest), [data, ttl_ms, token])
            score = "+inf" if ttl_ms <= 0 else now_ms() + ttl_ms
            from ._kv import translated

            with translated():
                pipe = c.client.pipeline(transaction=False)
                pipe.zadd(self._index, {digest: score})
                pipe.zremrangebyscore(self._index, "-inf", f"({now_ms()}")
                await pipe.execute()

        await self._redis(write)

    async def _release(self, digest: str, token: str) -> None:
        await self._redis(lambda c: c.aeval(_SET, self._keys(digest), ["", 0, token]))

    async def get(self, inputs: Any, default: Any = None) -> Any:
        """The cached value for ``inputs``, or ``default``."""
        digest = self.key(inputs)
        found = await self._claim(digest, "")
        if found is None:
            raw = self._local.get(digest)
            value = _MISS if raw is None else self._decode(raw)
        else:
            value = found[0]
        self._count(value is not _MISS)
        return default if value is _MISS else value

    async def set(self, inputs: Any, value: Any, *, ttl: float | None = _DEFAULT) -> None:
        """Cache ``value`` for ``inputs`` (``ttl`` seconds, None = never expires)."""
        await self._store(self.key(inputs), self._encode(value), self._ttl_of(ttl), "")

    async def delete(self, inputs: Any) -> bool:
        """Forget the value cached for ``inputs``; True if there was one."""
        digest = self.key(inputs)
        local = self._local.delete(digest)

        async def remove(c: Connection) -> bool:
            from ._kv import translated

            with translated():
                pipe = c.client.pipeline(transaction=False)
                pipe.delete(self._keys(digest)[0])
                pipe.zrem(self._index, digest)
                return bool((await pipe.execute())[0])

        removed = await self._redis(remove)
        return bool(removed) or local

    async def clear(self) -> int:
        """Forget every entry of this cache's namespace (no KEYS/SCAN)."""
        local = self._local.clear()

        async def clear(c: Connection) -> int:
            from ._kv import translated

            n = 0
            with translated():
                while digests := await c.client.zrange(self._index, 0, 499):
                    pipe = c.client.pipeline(transaction=False)
                    for digest in digests:
                        pipe.delete(self._keys(digest.decode())[0])
                    n += sum(await pipe.execute())
                    await c.client.zrem(self._index, *digests)
            return n

        removed = await self._redis(clear)
        return local if removed is None else removed

    async def get_or_compute(
        self,
        inputs: Any,
        compute: Callable[[], Awaitable[T]],
        *,
        ttl: float | None = _DEFAULT,
    ) -> T:
        """The cached value for ``inputs``, else ``await compute()`` cached; one caller
        computes a key at a time across processes."""
        digest = self.key(inputs)
        ttl_ms = self._ttl_of(ttl)
        token = self._token()
        deadline = time.monotonic() + self.lock_timeout
        delay = 0.002
        while True:
            found = await self._claim(digest, token)
            if found is None:
                return await self._compute_locally(digest, compute, ttl_ms)
            value, claimed = found
            if value is not _MISS:
                self._count(True)
                return cast(T, value)
            if claimed or time.monotonic() > deadline:
                self._count(False)
                return await self._compute(digest, compute, ttl_ms, token if claimed else "")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _compute(
        self, digest: str, compute: Callable[[], Awaitable[T]], ttl_ms: int, token: str
    ) -> T:
        self.computations += 1
        try:
            value = await compute()
            data = self._encode(value)
        except BaseException:
            if token:
                await self._release(digest, token)
            raise
        await self._store(digest, data, ttl_ms, token)
        return value

    async def _compute_locally(
        self, digest: str, compute: Callable[[], Awaitable[T]], ttl_ms: int
    ) -> T:
        async with self._locks.ahold(digest):
            raw = self._local.get(digest)
            self._count(raw is not None)
            if raw is not None:
                return cast(T, self._decode(raw))
            self.computations += 1
            value = await compute()
            await self._store(digest, self._encode(value), ttl_ms, "")
            return value

    def cached(
        self,
        func: F | None = None,
        *,
        ttl: float | None = _DEFAULT,
        key: Callable[..., Any] | None = None,
        name: str | None = None,
    ) -> Any:
        """Decorator for async functions; see :meth:`ResultCache.cached`."""

        def decorate(f: F) -> F:
            self._check_function(f, want_async=True)

            @functools.wraps(f)
            async def wrapper(*args: Any, **kwargs: Any) -> Any:
                inputs = self._inputs(f, name, key, args, kwargs)
                return await self.get_or_compute(inputs, lambda: f(*args, **kwargs), ttl=ttl)

            wrapper.cache = self  # type: ignore[attr-defined]
            return cast(F, wrapper)

        return decorate if func is None else decorate(func)

    async def aclose(self) -> None:
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
