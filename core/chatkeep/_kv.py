"""What the long-term memory store and the result cache share (internal).

* :class:`Breaker`: the circuit breaker and bounded write journal of the fallback
  (the same policy as :mod:`chatkeep.backends.fallback`, for operations that are not
  conversation operations).
* :class:`Connection`: the Redis client of a store (made from the URL on first use,
  like the conversation store's, or given), the shipped Lua scripts and the one
  boundary where driver exceptions are translated (:func:`chatkeep.backends.redis.translate`).
* :func:`encode_value` / :func:`decode_value`: JSON values under chatkeep's codec policy
  (bytes tagged as base64 and restored, UUIDs as strings, NaN and other non-JSON values
  refused), with a size limit checked before anything is written.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from typing import Any, Generic, TypeVar

from . import codec
from .redis.errors import Unreachable
from .config import StoreConfig
from .errors import (
    BackendUnavailableError,
    SerializationError,
    ValueTooLargeError,
)

__all__ = [
    "Breaker",
    "Connection",
    "Route",
    "Script",
    "decode_value",
    "encode_value",
    "load_script",
    "stable_hash",
    "translated",
]

T = TypeVar("T")


# -- values -------------------------------------------------------------------------------


def encode_value(value: Any, limit: int, what: str) -> tuple[bytes, bool]:
    """(JSON bytes, whether bytes were tagged). Raises SerializationError/ValueTooLargeError."""
    hook = codec._Encoding()
    try:
        data = codec._checked_dumps(value, hook)
        if codec.JSON_LIBRARY == "orjson" and b"null" in data:
            codec._check_floats(value)
    except SerializationError as exc:
        raise SerializationError(
            f"{what}: {str(exc).replace('message', 'value')}; nothing was written"
        ) from None
    if len(data) > limit:
        raise ValueTooLargeError(len(data), limit, what)
    return data, hook.tagged


def decode_value(data: bytes | str, tagged: bool) -> Any:
    try:
        value = codec.loads(data)
    except ValueError:
        raise SerializationError("stored value is not valid JSON") from None
    return codec._untag(value) if tagged else value


def _canonical_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$b64": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def stable_hash(inputs: Any) -> str:
    """sha256 of the canonical JSON of ``inputs`` (sorted keys, compact, UTF-8).

    The stdlib ``json`` is used whether or not orjson is installed, so every process
    computes the same key for the same inputs. Raises SerializationError for inputs
    JSON cannot hold.
    """
    try:
        text = json.dumps(
            inputs,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_canonical_default,
        )
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"cannot hash cache inputs as JSON: {exc}") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# -- scripts ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    text: bytes
    sha: str


def load_script(name: str) -> Script:
    text = resources.files("chatkeep").joinpath("lua").joinpath(f"{name}.lua").read_bytes()
    return Script(name, text, hashlib.sha1(text, usedforsecurity=False).hexdigest())


@contextmanager
def translated() -> Iterator[None]:
    """Driver exceptions -> chatkeep exceptions (:class:`Unreachable` for the fallback)."""
    from redis import exceptions as rex

    from .redis.errors import translate

    try:
        yield
    except (rex.RedisError, rex.RedisClusterException) as exc:
        raise translate(exc) from exc
    except (OSError, ConnectionError, TimeoutError) as exc:
        raise Unreachable(exc) from exc


class Connection:
    """The Redis client of one store: given, or made from the URL on first use."""

    def __init__(self, config: StoreConfig, client: Any, *, asyncio: bool) -> None:
        self.asyncio = asyncio
        self.owns = client is None
        self._client = client
        self._factory: Callable[[], Any] | None = None
        self._lock = threading.Lock()
        if client is None:
            from .redis.clients import client_factory

            self._factory = client_factory(config, asyncio=asyncio)

    @property
    def client(self) -> Any:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    assert self._factory is not None
                    with translated():
                        self._client = self._factory()
                client = self._client
        return client

    @property
    def cluster(self) -> bool:
        import redis
        import redis.asyncio

        return isinstance(self.client, (redis.RedisCluster, redis.asyncio.RedisCluster))

    def eval(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        from redis import exceptions as rex

        client = self.client
        with translated():
            try:
                return client.evalsha(script.sha, len(keys), *keys, *args)
            except rex.NoScriptError:
                return client.eval(script.text, len(keys), *keys, *args)

    async def aeval(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        from redis import exceptions as rex

        client = self.client
        with translated():
            try:
                return await client.evalsha(script.sha, len(keys), *keys, *args)
            except rex.NoScriptError:
                return await client.eval(script.text, len(keys), *keys, *args)

    def close(self) -> None:
        if self.owns and self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self.owns and self._client is not None:
            await self._client.aclose()
            self._client = None


# -- the fallback's circuit breaker -----------------------------------------------------


class Route(enum.Enum):
    PRIMARY = "primary"
    PROBE = "probe"
    LOCAL = "local"


class Breaker(Generic[T]):
    """Circuit breaker with a bounded journal of writes made while Redis was away.

    ``closed``: calls go to Redis. A reachability failure opens the circuit (logged
    once at WARNING); calls are served locally and writes journaled. After a backoff
    (doubling up to ``probe_max``) one caller probes: it replays the journal in order,
    and the circuit closes when the journal is empty.
    """

    def __init__(self, config: StoreConfig, logger: logging.Logger, what: str) -> None:
        self.enabled = config.fallback == "memory"
        self._safe_url = config.safe_url
        self._interval = config.probe_interval
        self._max = config.probe_max
        self._journal_size = config.journal_size
        self._logger = logger
        self._what = what
        self._lock = threading.Lock()
        self._journal: deque[T] = deque()
        self.state = "closed"
        self._backoff = self._interval
        self._next_probe = 0.0
        self.outages = 0
        self.replayed = 0
        self.rejected = 0
        self.dropped = 0
        self.last_error: str | None = None
        self.degraded_since: datetime | None = None

    @property
    def pending(self) -> int:
        return len(self._journal)

    @property
    def degraded(self) -> bool:
        return self.state != "closed"

    def route(self, *, force_probe: bool = False) -> Route:
        if self.state == "closed":
            return Route.PRIMARY
        with self._lock:
            if self.state == "open" and (force_probe or time.monotonic() >= self._next_probe):
                self.state = "probing"
                return Route.PROBE
            return Route.PRIMARY if self.state == "closed" else Route.LOCAL

    def failed(self, exc: Unreachable) -> None:
        """Redis could not be reached: open the circuit, or raise when fallback is off."""
        if not self.enabled:
            raise BackendUnavailableError(
                f"Redis at {self._safe_url} is unreachable ({exc}); fallback is off"
            ) from exc.cause
        with self._lock:
            was = self.state
            self.last_error = str(exc)
            if was == "probing":
                self._backoff = min(self._backoff * 2, self._max)
            elif was == "closed":
                self._backoff = self._interval
                self.outages += 1
                self.degraded_since = datetime.now(timezone.utc)
            self.state = "open"
            self._next_probe = time.monotonic() + self._backoff
        if was == "closed":
            self._logger.warning(
                "Redis is unreachable (%s); the %s serves from memory until it is back",
                type(exc.cause).__name__,
                self._what,
            )

    def journal(self, op: T) -> None:
        with self._lock:
            if len(self._journal) < self._journal_size:
                self._journal.append(op)
                return
            self.dropped += 1
        self._logger.error(
            "%s fallback journal is full; a write made during the outage stays in memory only",
            self._what,
        )

    def next_pending(self) -> T | None:
        """The oldest journaled write; None when there is none (the circuit closes)."""
        with self._lock:
            if self._journal:
                return self._journal[0]
            recovered = self.state != "closed"
            self.state = "closed"
            self._backoff = self._interval
            self.degraded_since = None
        if recovered:
            self._logger.warning(
                "Redis is reachable again; the %s is back from memory (%d writes replayed)",
                self._what,
                self.replayed,
            )
        return None

    def done(self, op: T, *, rejected: BaseException | None = None) -> None:
        with self._lock:
            if self._journal and self._journal[0] is op:
                self._journal.popleft()
                if rejected is None:
                    self.replayed += 1
                else:
                    self.rejected += 1
        if rejected is not None:
            self._logger.error(
                "Redis refused a journaled %s write during replay (%s); dropped it",
                self._what,
                type(rejected).__name__,
            )
