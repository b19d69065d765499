"""What every chatkeep store shares, whatever it keeps: its configuration, its
connection (shared with every other store of the process that uses the same Redis),
how it drives its flows, and how it closes.

A store of your own::

    class Notes(Blocking):                       # or Awaiting, for the asyncio twin
        def __init__(self, config=None, *, client=None, **options):
            self._open(config, options, client, asyncio=False)

        def add(self, key, text):                # a flow: written once for both twins
            return (yield [("SET", f"{self.config.prefix}:note:{key}", text)])

    Notes.add = sync_method(Notes.add)           # what users call
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from ..config import StoreConfig, config_from
from ..errors import ConfigurationError, InvalidArgumentError
from ..status import StoreStatus
from ..wording import plural
from .circuit import Family, Mirror, guarded
from .clients import is_async_client
from .connection import Connection, connect
from .flows import NO_IO, Flow, arun, run

__all__ = [
    "Awaiting",
    "Blocking",
    "FamilyStore",
    "RedisBacked",
    "keywords_of",
    "resolve_config",
    "with_url",
]

T = TypeVar("T")
S = TypeVar("S", bound="RedisBacked")
C = TypeVar("C")

logger = logging.getLogger("chatkeep")


def resolve_config(
    config: StoreConfig | None,
    options: Mapping[str, Any],
    *,
    what: str = "a chatkeep store",
    accepted: Iterable[str] = (),
) -> StoreConfig:
    """A store's configuration: ``config`` (with ``options`` changed), or one made
    from ``options`` over the ``CHATKEEP_*`` variables; ``key_prefix`` (or the
    deprecated ``prefix``); an unknown option is a ConfigurationError naming the closest
    valid one (see :func:`chatkeep.config.config_from`)."""
    return config_from(config, options, what=what, accepted=accepted)


def with_url(url: str | None, options: Mapping[str, Any]) -> dict[str, Any]:
    """``from_url``'s arguments as the constructor's keywords (the URL given once)."""
    given = dict(options)
    if url is not None:
        if "url" in given:
            raise ConfigurationError("give the URL once: as the first argument or url=")
        given["url"] = url
    return given


_KEYWORDS: dict[type, frozenset[str]] = {}


def keywords_of(cls: type) -> frozenset[str]:
    """The keyword arguments ``cls(...)`` names itself (for "did you mean" hints)."""
    known = _KEYWORDS.get(cls)
    if known is None:
        try:
            parameters = inspect.signature(cls).parameters
        except (TypeError, ValueError):
            parameters = {}  # type: ignore[assignment]
        known = _KEYWORDS[cls] = frozenset(
            name
            for name, p in parameters.items()
            if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        )
    return known


class Closing:
    """``with`` it, and it is closed (``close()``) at the end of the block."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self: C) -> C:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClosing:
    """``async with`` it, and it is closed (``await aclose()``) at the end of the block."""

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self: C) -> C:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class RedisBacked:
    """A store on one Redis (or ``memory://``, then without a connection)."""

    config: StoreConfig
    _connection: Connection | None = None
    _closed: bool = False
    _asyncio: ClassVar[bool] = False
    """Which twin this is: the asyncio one drives its flows with asyncio I/O."""

    @classmethod
    def from_url(cls: type[S], url: str, **options: Any) -> S:
        """A store for a ``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``,
        ``redis+sentinel://`` or ``memory://`` URL; other options as the constructor's."""
        return cls(**with_url(url, options))

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name, value in vars(cls).items():  # methods made by sync_method/async_method
            if getattr(value, "__twin__", None) is not None:
                value.__qualname__ = f"{cls.__qualname__}.{name}"

    def _open(
        self,
        config: StoreConfig | None,
        options: Mapping[str, Any],
        client: Any,
        *,
        asyncio: bool,
    ) -> Connection | None:
        """Set ``config`` and take this store's share of the process's connection to
        its Redis (None for ``memory://``)."""
        self.config = resolve_config(
            config, options, what=type(self).__name__, accepted=keywords_of(type(self))
        )
        if client is None and self.config.scheme == "memory":
            self._connection = None
            return None
        if client is not None and is_async_client(client) != asyncio:
            kind = (
                "redis.asyncio.Redis or RedisCluster" if asyncio else "redis.Redis or RedisCluster"
            )
            raise ConfigurationError(
                f"{type(self).__name__} needs a {kind} client, got "
                f"{type(client).__module__}.{type(client).__name__}"
            )
        self._connection = connect(self.config, client=client, asynchronous=asyncio)
        return self._connection

    @property
    def connection(self) -> Connection | None:
        """The shared :class:`~chatkeep.redis.Connection` this store uses (None for
        ``memory://``): its clients, its circuit; for building on chatkeep."""
        return self._connection

    def _check_open(self) -> None:
        if self._closed:
            raise InvalidArgumentError(f"this {type(self).__name__} is closed")

    def _flush(self) -> Flow[int]:
        """Try now to reach Redis and replay journaled writes; return how many remain."""
        circuit = None if self._connection is None else self._connection.circuit
        if circuit is None:
            return 0
        return (yield from circuit.flush())

    def _closing_flow(self) -> Flow[None]:
        """What closing does before the connection is given back: replay what can be
        replayed; the last store of a Redis says what is left."""
        remaining = yield from self._flush()
        connection = self._connection
        if remaining and connection is not None and connection.users <= 1:
            logger.error(
                "closing with %s that did not reach Redis (replayed at exit if Redis is "
                "back by then%s)",
                plural(remaining, "journaled write"),
                "" if self.config.journal_path is None else ", and kept in the journal file",
            )

    def _status(self, skipped: int = 0) -> StoreStatus:
        """This store's :class:`~chatkeep.StoreStatus` (its circuit's, if it has one)."""
        connection = self._connection
        if connection is None or connection.circuit is None:
            backend = "memory" if connection is None else "redis"
            return StoreStatus(
                backend=backend,
                serving=backend,
                degraded=False,
                reached=connection is None or connection.reached,
                skipped_records=skipped,
            )
        return connection.circuit.status("redis", skipped)

    def _release(self, *, asynchronous: bool = False) -> tuple[bool, bool]:
        """Mark closed and give back the connection: (whether this store was its last
        user, its last asyncio user); the caller closes what it must."""
        if self._closed or self._connection is None:
            self._closed = True
            return False, False
        self._closed = True
        return self._connection.release(asynchronous=asynchronous)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self.config.safe_url!r}, prefix={self.config.prefix!r})"


class FamilyStore(RedisBacked):
    """A store whose every operation is an operation of one circuit
    :class:`~chatkeep.redis.Family`: on Redis through the circuit of its connection
    (the family's mirror serves while Redis is away), or on ``_local``, an in-process
    backend (``memory://``) whose ``do(op)`` returns the result."""

    _local: Any = None
    _family: Any = None

    def _route(self, family: Family, mirror_key: Any, make_mirror: Callable[[], Mirror]) -> None:
        """Send this store's operations to ``family``, or to the family already attached
        to the circuit with the same name and parameters; with a circuit, the mirror
        kept under ``mirror_key`` (made once by ``make_mirror``) serves them while Redis
        is away."""
        circuit = None if self._connection is None else self._connection.circuit
        if circuit is not None:
            family.mirror = circuit.mirror(mirror_key, make_mirror)  # type: ignore[misc]
            family = circuit.attach(family)
        self._family = family

    def _call(self, op: Any) -> Flow[Any]:
        """``op`` through the circuit (or on the in-process backend)."""
        self._check_open()
        if self._local is not None:
            return self._local.do(op)
        return (yield from guarded(self._connection, self._family, op))

    def status(self) -> StoreStatus:
        """Where calls go now and what the fallback of this Redis has been through (no I/O)."""
        return self._status()


class Blocking(RedisBacked, Closing):
    """The synchronous twin: drives flows with blocking I/O; ``with`` closes it."""

    def _drive(self, flow: Flow[T]) -> T:
        return run(flow, self._connection or NO_IO)

    def _closing(self) -> None:
        """What this store does before its connection is given back (a hook)."""
        self._drive(self._closing_flow())

    def close(self) -> None:
        """Replay what can be replayed, then give back the connection (closed by the
        last store using it, if chatkeep made it)."""
        if self._closed:
            return
        self._closing()
        last, _ = self._release()
        if last:
            assert self._connection is not None
            self._connection.close()


class Awaiting(RedisBacked, AsyncClosing):
    """The asyncio twin: drives flows with asyncio I/O; ``async with`` closes it."""

    _asyncio = True

    async def _adrive(self, flow: Flow[T]) -> T:
        return await arun(flow, self._connection or NO_IO)

    async def _aclosing(self) -> None:
        """What this store does before its connection is given back (a hook)."""
        await self._adrive(self._closing_flow())

    async def aclose(self) -> None:
        """Replay what can be replayed, then give back the connection."""
        if self._closed:
            return
        await self._aclosing()
        last, last_async = self._release(asynchronous=True)
        if last_async:
            assert self._connection is not None
            await self._connection.aclose_loop()
        if last:
            assert self._connection is not None
            self._connection.close()

    close = aclose
