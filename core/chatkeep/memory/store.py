"""MemoryStore (sync) and AsyncMemoryStore: long-term memory, namespaced JSON values
with per-namespace TTLs.

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
store's ``ttl``). In Redis one hash tag per namespace keeps every script on one
Cluster slot; listing uses the namespace index, never KEYS or SCAN (see
:mod:`chatkeep.keys`).

Values follow chatkeep's JSON policy (bytes come back as bytes, UUIDs as strings,
anything else JSON cannot hold is a :class:`SerializationError`) and are limited to
``max_message_bytes`` (:class:`ValueTooLargeError`); nothing partial is written.
TTLs slide (refreshed on read and write) unless ``ttl_mode="fixed"``. While Redis is
unreachable, reads are served from a local mirror of recently used values and writes
are journaled (the one journal of that Redis) and replayed in order when it is back.

All policy is in :class:`_MemoryStoreBase`, every operation written once as a flow;
the twins only drive the flows (:func:`~chatkeep.redis.sync_method`,
:func:`~chatkeep.redis.async_method`).
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, TypeVar

from ..codec import decode_value, encode_value
from ..config import StoreConfig, ttl_ms
from ..errors import InvalidArgumentError
from ..keys import escape_id, validate_id
from ..redis.flows import Flow, async_method, sync_method
from ..redis.stores import Awaiting, Blocking, FamilyStore, resolve_config
from .local import LocalMemory
from .ops import Delete, Found, Get, List, Put, Ttl
from .redis import RedisMemory

__all__ = ["DEFAULT_MEMORY_TTLS", "AsyncMemoryStore", "MemoryStore", "Namespace"]

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

MIRROR_ENTRIES = 10_000  # values the fallback mirror keeps (least recently used go first)

S = TypeVar("S", bound="_MemoryStoreBase")


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


_DEFAULT: Final[Any] = _Default()


class _MemoryStoreBase(FamilyStore):
    """Shared policy of both memory stores: every operation as a flow. Not for direct use."""

    def __init__(
        self,
        config: StoreConfig | None = None,
        *,
        client: Any = None,
        ttls: Mapping[str, float | None] | None = None,
        **options: Any,
    ) -> None:
        config = resolve_config(config, options)
        table = dict(DEFAULT_MEMORY_TTLS)
        table.update(ttls or {})
        self._ttls = {kind: ttl_ms(value, f"ttls[{kind!r}]") for kind, value in table.items()}
        self._default_ttl = ttl_ms(config.ttl)
        sliding = config.ttl_mode == "sliding"
        connection = self._open(config, {}, client, asyncio=self._asyncio)
        if connection is None:
            self._local = LocalMemory(sliding=sliding)
            return
        self._route(
            RedisMemory(connection, prefix=config.prefix, sliding=sliding),
            ("memory", config.prefix, sliding),
            lambda: LocalMemory(
                sliding=sliding, max_entries=MIRROR_ENTRIES, max_bytes=config.mirror_max_bytes
            ),
        )

    @property
    def ttls(self) -> dict[str, float | None]:
        """The TTL table in use (seconds by namespace kind; None = never expires)."""
        return {k: (v / 1000 if v else None) for k, v in self._ttls.items()}

    # -- validation and encoding ----------------------------------------------------------

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
    def _checked_keys(keys: object) -> builtins.list[str]:
        if isinstance(keys, (str, bytes)) or not isinstance(keys, Sequence):
            raise InvalidArgumentError("keys must be a sequence of str")
        return [validate_id(key, "key") for key in keys]

    def _plan_put(
        self, namespace: object, items: Iterable[tuple[object, object]], ttl: object
    ) -> Put:
        kind, ns = self._ns(namespace)
        ms = self._ttls.get(kind, self._default_ttl) if ttl is _DEFAULT else ttl_ms(ttl)
        planned: dict[str, tuple[str, bytes, bool, int]] = {}
        limit = self.config.max_message_bytes
        sealing = self.config.sealing
        for key, value in items:
            checked = validate_id(key, "key")
            data, tagged = encode_value(value, limit, f"value of key {checked!r}")
            if sealing.active:  # bound to this namespace and key (docs/security-at-rest.md)
                data = sealing.seal_value(data, "memory", ns, checked)
            planned[checked] = (checked, data, tagged, ms)
        return Put(ns, list(planned.values()))

    # -- operations, each written once (the twins drive them) -----------------------------

    def _put(
        self, namespace: Namespace, key: str, value: Any, *, ttl: float | None = _DEFAULT
    ) -> Flow[None]:
        """Store a JSON value (replacing any); ``ttl`` overrides the namespace default."""
        yield from self._call(self._plan_put(namespace, [(key, value)], ttl))

    def _mput(
        self, namespace: Namespace, items: Mapping[str, Any], *, ttl: float | None = _DEFAULT
    ) -> Flow[None]:
        """Store several values of one namespace atomically (one round trip)."""
        op = self._plan_put(namespace, items.items(), ttl)
        if op.items:
            yield from self._call(op)

    def _get(
        self, namespace: Namespace, key: str, default: Any = None, *, refresh: bool = True
    ) -> Flow[Any]:
        """The value, or ``default`` if there is none (or it expired). ``refresh=False``
        reads without sliding the TTL."""
        return (yield from self._mget(namespace, [key], default, refresh=refresh))[0]

    def _mget(
        self,
        namespace: Namespace,
        keys: Sequence[str],
        default: Any = None,
        *,
        refresh: bool = True,
    ) -> Flow[builtins.list[Any]]:
        """Values of several keys of one namespace, in order (one round trip);
        ``refresh=False`` reads without sliding their TTLs."""
        _, ns = self._ns(namespace)
        checked = self._checked_keys(keys)
        if not checked:
            return []
        found: builtins.list[Found] = yield from self._call(Get(ns, checked, bool(refresh)))
        sealing = self.config.sealing
        return [
            default if f is None else decode_value(sealing.open_value(f[0], "memory", ns, k), f[1])
            for f, k in zip(found, checked, strict=True)
        ]

    def _delete(self, namespace: Namespace, key: str) -> Flow[bool]:
        """Delete a value; True if it existed."""
        return (yield from self._mdelete(namespace, [key])) > 0

    def _mdelete(self, namespace: Namespace, keys: Sequence[str]) -> Flow[int]:
        """Delete several values of one namespace; return how many existed."""
        _, ns = self._ns(namespace)
        checked = self._checked_keys(keys)
        return int((yield from self._call(Delete(ns, checked)))) if checked else 0

    def _list(
        self, namespace: Namespace, *, prefix: str = "", limit: int | None = None
    ) -> Flow[builtins.list[str]]:
        """Live keys of a namespace (sorted) that start with ``prefix``. Reads the
        namespace index, never KEYS or SCAN."""
        _, ns = self._ns(namespace)
        if not isinstance(prefix, str):
            raise InvalidArgumentError("prefix must be a str")
        keys: builtins.list[str] = yield from self._call(List(ns, prefix))
        return keys if limit is None else keys[:limit]

    def _ttl(self, namespace: Namespace, key: str) -> Flow[float | None]:
        """Seconds until the value expires; None if never; 0.0 if it does not exist."""
        _, ns = self._ns(namespace)
        result: float | None = yield from self._call(Ttl(ns, validate_id(key, "key")))
        return result


class MemoryStore(_MemoryStoreBase, Blocking):
    """Long-term memory (sync). Thread-safe; shares the connection and fallback of its
    Redis with every other chatkeep store of the process.

    ``MemoryStore.from_url("redis://...")``, ``MemoryStore(config)``, or
    ``MemoryStore(client=redis.Redis(...))``; options are :class:`StoreConfig` fields
    (``prefix``, ``ttl`` for namespaces without a default, ``ttl_mode``, ``fallback``,
    ``max_message_bytes`` as the value size limit, ...).
    """

    put = sync_method(_MemoryStoreBase._put)
    mput = sync_method(_MemoryStoreBase._mput)
    get = sync_method(_MemoryStoreBase._get)
    mget = sync_method(_MemoryStoreBase._mget)
    delete = sync_method(_MemoryStoreBase._delete)
    mdelete = sync_method(_MemoryStoreBase._mdelete)
    list = sync_method(_MemoryStoreBase._list)
    ttl = sync_method(_MemoryStoreBase._ttl)
    flush = sync_method(_MemoryStoreBase._flush)


class AsyncMemoryStore(_MemoryStoreBase, Awaiting):
    """The asyncio twin of :class:`MemoryStore`: same names, awaited."""

    put = async_method(_MemoryStoreBase._put)
    mput = async_method(_MemoryStoreBase._mput)
    get = async_method(_MemoryStoreBase._get)
    mget = async_method(_MemoryStoreBase._mget)
    delete = async_method(_MemoryStoreBase._delete)
    mdelete = async_method(_MemoryStoreBase._mdelete)
    list = async_method(_MemoryStoreBase._list)
    ttl = async_method(_MemoryStoreBase._ttl)
    flush = async_method(_MemoryStoreBase._flush)
