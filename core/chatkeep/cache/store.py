"""ResultCache (sync) and AsyncResultCache: tool calls, chain steps and model
responses, keyed by a stable hash of their inputs, with a TTL (default one day) and
stampede protection.

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
:class:`ValueTooLargeError`. The Redis layout is in :mod:`chatkeep.cache.redis`.

Stampede protection: a miss claims the entry's lock in the same script that reads it
(one round trip); other callers, in any process, wait (polling every 2-50 ms) for the
value instead of computing it again. A lock whose holder died expires after
``lock_timeout``. While Redis is unreachable the cache is served from a bounded local
cache with one computation per key per process; what is cached then stays in this
process (it is not journaled).

All policy is in :class:`_CacheBase`, every operation written once as a flow; the
twins only drive the flows, and differ in the lock that makes a key's local
computation wait (a thread lock, an asyncio lock) and in the decorator's wrapper.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar, cast

from typing_extensions import Unpack

from ..codec import decode_value, encode_value, stable_hash
from ..config import BackendOptions, PrefixOptions, StoreConfig, ttl_ms
from ..errors import ChatkeepError, InvalidArgumentError
from ..keys import validate_id
from ..redis.flows import Call, Flow, Sleep, async_method, sync_method
from ..redis.stores import (
    Awaiting,
    Blocking,
    FamilyStore,
    keywords_of,
    resolve_config,
    with_url,
)
from ..sealing import value_form
from .local import LocalCache
from .ops import Claim, Claimed, Clear, Delete, Release, Set
from .redis import RedisResults

__all__ = [
    "DEFAULT_CACHE_TTL",
    "AsyncResultCache",
    "CacheOptions",
    "ResultCache",
    "ResultCacheOptions",
]

DEFAULT_CACHE_TTL: Final = 24 * 3600.0
"""One day, in seconds."""

_MISS: Final[Any] = object()
_FIRST_POLL = 0.002  # seconds between polls for another caller's value, doubling...
_LAST_POLL = 0.05  # ...up to this

F = TypeVar("F", bound=Callable[..., Any])
S = TypeVar("S", bound="_CacheBase")


class CacheOptions(BackendOptions, PrefixOptions, total=False):
    """The store options a cache takes (its ``ttl`` is its own: the entries')."""

    url: str


class ResultCacheOptions(CacheOptions, total=False):
    """What :meth:`ResultCache.from_url` takes: the cache options and the constructor's
    keywords."""

    client: Any
    namespace: str
    ttl: float | None
    lock_timeout: float


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


_DEFAULT: Final[Any] = _Default()


class _KeyLocks:
    """One lock per key, made on demand and dropped when nobody holds or waits for it.
    ``factory`` makes a thread lock or an asyncio lock: both ``acquire()`` (a flow's
    :class:`~chatkeep.redis.Call` awaits the asyncio one) and ``release()``."""

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


class _CacheBase(FamilyStore):
    """Shared policy of both caches: every operation as a flow. Not for direct use."""

    hits: int
    """Reads that found a value (``get``, ``get_or_compute``, the decorator)."""
    misses: int
    """Reads that found none."""
    computations: int
    """Values this cache computed (``get_or_compute``, the decorator)."""

    def __init__(
        self,
        config: StoreConfig | None = None,
        *,
        client: Any = None,
        namespace: str = "default",
        ttl: float | None = DEFAULT_CACHE_TTL,
        lock_timeout: float = 30.0,
        **options: Unpack[CacheOptions],
    ) -> None:
        config = resolve_config(
            config, options, what=type(self).__name__, accepted=keywords_of(type(self))
        )
        self.namespace = validate_id(namespace, "cache namespace")
        self.ttl = ttl
        self._ttl_ms = ttl_ms(ttl)
        if isinstance(lock_timeout, bool) or not isinstance(lock_timeout, (int, float)):
            raise InvalidArgumentError("lock_timeout must be a number of seconds")
        if not lock_timeout > 0:
            raise InvalidArgumentError("lock_timeout must be a positive number of seconds")
        self.lock_timeout = float(lock_timeout)
        self._lock_ms = max(round(lock_timeout * 1000), 1)
        self._locks = _KeyLocks(asyncio.Lock if self._asyncio else threading.Lock)
        self.hits = 0
        self.misses = 0
        self.computations = 0
        connection = self._open(config, {}, client, asyncio=self._asyncio)
        if connection is None:
            self._local = LocalCache()
            return
        self._route(
            RedisResults(connection, prefix=config.prefix, namespace=self.namespace),
            ("cache", config.prefix, self.namespace),
            lambda: LocalCache(max(config.mirror_sessions, 1)),
        )

    @classmethod
    def from_url(  # type: ignore[override]
        cls: type[S], url: str | None = None, /, **options: Unpack[ResultCacheOptions]
    ) -> S:
        """A cache for a ``redis://`` (``rediss://``, ``unix://``, ``redis+cluster://``,
        ``redis+sentinel://``) or ``memory://`` URL; other options as the constructor's
        (store options not given come from the ``CHATKEEP_*`` variables)."""
        return cls(**with_url(url, options))

    # -- policy ---------------------------------------------------------------------------

    def key(self, inputs: Any) -> str:
        """The cache key (sha256 hex of the canonical JSON) of ``inputs``."""
        return stable_hash(inputs)

    def _ttl_of(self, ttl: object) -> int:
        return self._ttl_ms if ttl is _DEFAULT else ttl_ms(ttl)

    def _encode(self, value: Any, digest: str) -> bytes:
        data, tagged = encode_value(value, self.config.max_message_bytes, "cached value")
        sealing = self.config.sealing
        if sealing.active:  # bound to this namespace and key (docs/security-at-rest.md)
            data = sealing.seal_value(data, "cache", self.namespace, digest, value_form(tagged))
        return (b"1" if tagged else b"0") + data

    def _decode(self, data: bytes, digest: str) -> Any:
        tagged = data[:1] == b"1"
        where = (self.namespace, digest, value_form(tagged))
        return decode_value(self.config.sealing.open_value(data[1:], "cache", *where), tagged)

    def _count(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1

    def _check_function(self, func: Callable[..., Any]) -> None:
        is_async = inspect.iscoroutinefunction(func)
        if is_async and not self._asyncio:
            raise InvalidArgumentError(
                f"{func.__qualname__} is async: decorate it with AsyncResultCache.cached"
            )
        if self._asyncio and not is_async:
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

    def _claim(self, digest: str, token: str) -> Flow[Claimed]:
        found: Claimed = yield from self._call(Claim(digest, token, self._lock_ms, self._ttl_ms))
        return found

    # -- operations, each written once (the twins drive them) -----------------------------

    def _get(self, inputs: Any, default: Any = None) -> Flow[Any]:
        """The cached value for ``inputs``, or ``default``."""
        digest = self.key(inputs)
        found = yield from self._claim(digest, "")
        self._count(found.data is not None)
        return default if found.data is None else self._decode(found.data, digest)

    def _set(self, inputs: Any, value: Any, *, ttl: float | None = _DEFAULT) -> Flow[None]:
        """Cache ``value`` for ``inputs`` (``ttl`` seconds, None = never expires)."""
        digest = self.key(inputs)
        op = Set(digest, self._encode(value, digest), self._ttl_of(ttl), "")
        yield from self._call(op)

    def _delete(self, inputs: Any) -> Flow[bool]:
        """Forget the value cached for ``inputs``; True if there was one."""
        return bool((yield from self._call(Delete(self.key(inputs)))))

    def _clear(self) -> Flow[int]:
        """Forget every entry of this cache's namespace (uses its index, not KEYS/SCAN);
        return how many were in Redis (or locally, when Redis is away)."""
        return int((yield from self._call(Clear())))

    def _get_or_compute(
        self, inputs: Any, compute: Callable[[], Any], *, ttl: float | None = _DEFAULT
    ) -> Flow[Any]:
        """The cached value for ``inputs``, else ``compute()`` (awaited if it returns an
        awaitable) cached. One caller computes a key at a time (across processes); the
        others wait for its value."""
        digest = self.key(inputs)
        ttl_ms = self._ttl_of(ttl)
        token = os.urandom(12).hex()
        deadline = time.monotonic() + self.lock_timeout
        delay = _FIRST_POLL
        while True:
            found = yield from self._claim(digest, token)
            if found.local:  # memory://, or Redis away: one computation per process
                return (yield from self._compute_locally(digest, compute, ttl_ms))
            if found.data is not None:
                self._count(True)
                return self._decode(found.data, digest)
            if found.claimed or time.monotonic() > deadline:
                self._count(False)
                token = token if found.claimed else ""
                return (yield from self._compute(digest, compute, ttl_ms, token))
            yield Sleep(delay)
            delay = min(delay * 2, _LAST_POLL)

    def _compute(
        self, digest: str, compute: Callable[[], Any], ttl_ms: int, token: str
    ) -> Flow[Any]:
        self.computations += 1
        try:
            value = yield Call(compute)
            data = self._encode(value, digest)
        except GeneratorExit:
            raise
        except BaseException:
            if token:  # let the next caller compute (else the lock expires by itself)
                with contextlib.suppress(ChatkeepError):
                    yield from self._call(Release(digest, token))
            raise
        yield from self._call(Set(digest, data, ttl_ms, token))
        return value

    def _compute_locally(self, digest: str, compute: Callable[[], Any], ttl_ms: int) -> Flow[Any]:
        lock = self._locks.enter(digest)
        try:
            yield Call(lock.acquire)
            try:
                found = yield from self._claim(digest, "")
                self._count(found.data is not None)
                if found.data is not None:
                    return self._decode(found.data, digest)
                self.computations += 1
                value = yield Call(compute)
                yield from self._call(Set(digest, self._encode(value, digest), ttl_ms, ""))
                return value
            finally:
                lock.release()
        finally:
            self._locks.leave(digest)

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
            self._check_function(f)

            def flow(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Flow[Any]:
                inputs = self._inputs(f, name, key, args, kwargs)
                compute = functools.partial(f, *args, **kwargs)
                return self._get_or_compute(inputs, compute, ttl=ttl)

            wrapper = self._wrap(f, flow)
            wrapper.cache = self  # type: ignore[attr-defined]
            return cast(F, wrapper)

        return decorate if func is None else decorate(func)

    def _wrap(self, f: Callable[..., Any], flow: Callable[..., Flow[Any]]) -> Callable[..., Any]:
        """``f``'s wrapper, driving ``flow(args, kwargs)`` (the twins' own I/O)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(url={self.config.safe_url!r}, prefix={self.config.prefix!r}, "
            f"namespace={self.namespace!r}, ttl={self.ttl!r})"
        )


class ResultCache(_CacheBase, Blocking):
    """Result cache (sync). Thread-safe; shares the connection and fallback of its Redis
    with every other chatkeep store of the process.

    ``ResultCache.from_url(url, namespace="tools", ttl=3600)``; other options are
    :class:`StoreConfig` fields (``prefix``, ``fallback``, timeouts, ...).
    """

    get = sync_method(_CacheBase._get)
    set = sync_method(_CacheBase._set)
    delete = sync_method(_CacheBase._delete)
    clear = sync_method(_CacheBase._clear)
    get_or_compute = sync_method(_CacheBase._get_or_compute)

    def _wrap(self, f: Callable[..., Any], flow: Callable[..., Flow[Any]]) -> Callable[..., Any]:
        @functools.wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            return self._drive(flow(args, kwargs))

        return wrapper


class AsyncResultCache(_CacheBase, Awaiting):
    """The asyncio twin of :class:`ResultCache`: same names, awaited."""

    get = async_method(_CacheBase._get)
    set = async_method(_CacheBase._set)
    delete = async_method(_CacheBase._delete)
    clear = async_method(_CacheBase._clear)
    get_or_compute = async_method(_CacheBase._get_or_compute)

    def _wrap(self, f: Callable[..., Any], flow: Callable[..., Flow[Any]]) -> Callable[..., Any]:
        @functools.wraps(f)
        async def wrapper(*args: Any, **kwargs: Any) -> Any:
            return await self._adrive(flow(args, kwargs))

        return wrapper
