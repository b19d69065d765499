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
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from typing_extensions import Unpack

from .. import vectors
from ..codec import decode_value, encode_value
from ..config import StoreConfig, StoreOptions, ttl_ms
from ..errors import ConfigurationError, InvalidArgumentError, SerializationError
from ..keys import escape_id, utf8_text, validate_id
from ..redis.flows import Call, Flow, async_method, sync_method
from ..redis.stores import (
    Awaiting,
    Blocking,
    FamilyStore,
    keywords_of,
    resolve_config,
    with_url,
)
from ..sealing import VECTOR_FAMILY, Sealing, is_sealed_value, value_form
from .local import LocalMemory
from .ops import Delete, Found, Get, List, Put, Ttl, Vectors
from .redis import RedisMemory

__all__ = [
    "DEFAULT_MEMORY_TTLS",
    "AsyncMemoryStore",
    "MemoryHit",
    "MemoryStore",
    "MemoryStoreOptions",
    "Namespace",
]

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


@dataclass(frozen=True, slots=True)
class MemoryHit:
    """One value found by :meth:`MemoryStore.search`: its key, the value and its cosine
    similarity to the query (the best of its embedded texts)."""

    key: str
    value: Any
    score: float


class MemoryStoreOptions(StoreOptions, total=False):
    """What :meth:`MemoryStore.from_url` takes: the store options and the constructor's
    keywords."""

    client: Any
    ttls: Mapping[str, float | None] | None
    embed: vectors.Embedder | None
    embed_fields: Sequence[str] | None


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
        embed: vectors.Embedder | None = None,
        embed_fields: Sequence[str] | None = None,
        **options: Unpack[StoreOptions],
    ) -> None:
        if embed is not None:
            vectors.check_embedder(embed)
        if embed_fields is not None and (
            isinstance(embed_fields, str)
            or not all(isinstance(path, str) and path for path in embed_fields)
        ):
            raise ConfigurationError('embed_fields must be a list of paths such as ["text"]')
        self._embed = embed
        self._embed_fields = None if embed_fields is None else builtins.list(embed_fields)
        config = resolve_config(
            config, options, what=type(self).__name__, accepted=keywords_of(type(self))
        )
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

    @classmethod
    def from_url(  # type: ignore[override]
        cls: type[S], url: str | None = None, /, **options: Unpack[MemoryStoreOptions]
    ) -> S:
        """A memory store for a ``redis://`` (``rediss://``, ``unix://``,
        ``redis+cluster://``, ``redis+sentinel://``) or ``memory://`` URL; other options
        as the constructor's (those not given come from the ``CHATKEEP_*`` variables)."""
        return cls(**with_url(url, options))

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
        self,
        namespace: object,
        items: Iterable[tuple[object, object]],
        ttl: object,
        index: object = None,
    ) -> Flow[Put]:
        """The write of ``items``, their embeddings included (one call of the embedder
        for every text of the put)."""
        kind, ns = self._ns(namespace)
        ms = self._ttls.get(kind, self._default_ttl) if ttl is _DEFAULT else ttl_ms(ttl)
        fields = self._index_fields(index)
        planned: dict[str, tuple[str, bytes, bool, int]] = {}
        texts: dict[str, builtins.list[str]] = {}
        limit = self.config.max_message_bytes
        sealing = self.config.sealing
        for key, value in items:
            checked = validate_id(key, "key")
            data, tagged = encode_value(value, limit, f"value of key {checked!r}")
            if sealing.active:  # bound to this namespace and key (docs/security-at-rest.md)
                data = sealing.seal_value(data, "memory", ns, checked, value_form(tagged))
            planned[checked] = (checked, data, tagged, ms)
            if fields is not False:
                texts[checked] = vectors.texts_at(value, fields)
        op = Put(ns, builtins.list(planned.values()))
        everything = [text for found in texts.values() for text in found]
        if everything:
            embedded = vectors.rows(
                (yield Call(self._embed_documents, (everything,))), len(everything)
            )
            op.vectors = {}
            at = 0
            for key, found in texts.items():
                if found:
                    blob = vectors.pack(embedded[at : at + len(found)])
                    if sealing.keys is not None:  # embeddings tell of the text: sealed too
                        blob = sealing.seal_value(blob, VECTOR_FAMILY, ns, key)
                    op.vectors[key] = blob
                    at += len(found)
        return op

    def _index_fields(self, index: object) -> builtins.list[str] | Literal[False] | None:
        """What a put embeds: the store's fields, others given, or nothing (False)."""
        if index is False or self._embed is None:
            if index not in (None, False):
                raise ConfigurationError("index= needs a store made with embed=")
            return False
        if index is None or index is True:
            fields = self._embed_fields
        elif (
            isinstance(index, str)
            or not isinstance(index, Sequence)
            or not all(isinstance(path, str) and path for path in index)
        ):
            raise InvalidArgumentError('index must be False or a list of paths such as ["text"]')
        else:
            fields = [utf8_text(path, "index path") for path in index]
        # no path at all embeds nothing (as in LangGraph's stores), not the whole value
        return False if fields == [] else fields

    def _embed_documents(self, texts: builtins.list[str]) -> Any:
        return vectors.embed_documents(self._embed, texts, awaited=self._asyncio)

    def _embed_query(self, text: str) -> Any:
        return vectors.embed_query(self._embed, text, awaited=self._asyncio)

    # -- operations, each written once (the twins drive them) -----------------------------

    def _put(
        self,
        namespace: Namespace,
        key: str,
        value: Any,
        *,
        ttl: float | None = _DEFAULT,
        index: bool | Sequence[str] | None = None,
    ) -> Flow[None]:
        """Store a JSON value (replacing any); ``ttl`` overrides the namespace default.
        With ``embed=``, the value is embedded for :meth:`search` (``index`` = paths to
        embed instead of the store's ``embed_fields``, ``False`` not to embed)."""
        op = yield from self._plan_put(namespace, [(key, value)], ttl, index)
        yield from self._call(op)

    def _mput(
        self,
        namespace: Namespace,
        items: Mapping[str, Any],
        *,
        ttl: float | None = _DEFAULT,
        index: bool | Sequence[str] | None = None,
    ) -> Flow[None]:
        """Store several values of one namespace atomically (one round trip)."""
        if not isinstance(items, Mapping):
            raise InvalidArgumentError("items must be a mapping of key to value")
        op = yield from self._plan_put(namespace, items.items(), ttl, index)
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
            default if f is None else decode_value(self._opened_value(sealing, ns, k, f), f[1])
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

    def _search(
        self, namespace: Namespace, query: str, *, limit: int = 10
    ) -> Flow[builtins.list[MemoryHit]]:
        """The values of a namespace most similar in meaning to ``query``, best first
        (cosine similarity of the embeddings made at put; values put without one are
        not found). Needs ``embed=``. Reads every embedding of the namespace (exact
        search, in this process), then only the values it returns, refreshing their
        TTLs."""
        if self._embed is None:
            raise ConfigurationError("search needs a store made with embed=")
        if not isinstance(query, str) or not query:
            raise InvalidArgumentError("query must be a non-empty str")
        utf8_text(query, "query")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidArgumentError("limit must be a positive int")
        _, ns = self._ns(namespace)
        keys: builtins.list[str] = yield from self._call(List(ns, ""))
        if not keys:
            return []
        vector = vectors.coordinates((yield Call(self._embed_query, (query,))))
        blobs = yield from self._call(Vectors(ns, keys))
        sealing = self.config.sealing
        scores = vectors.scores(
            vector, [self._open_vector(sealing, ns, k, b) for k, b in zip(keys, blobs, strict=True)]
        )
        ranked = sorted(
            ((score, key) for key, score in zip(keys, scores, strict=True) if score is not None),
            key=lambda pair: -pair[0],
        )[:limit]
        if not ranked:
            return []
        read = dict(zip(keys, blobs, strict=True))
        returned = [key for _, key in ranked]
        found: builtins.list[Found]
        current: builtins.list[bytes | None]
        found, current = yield from self._call(
            Get(ns, returned, vectors={key: read[key] for key in returned if read[key]})
        )
        return [
            MemoryHit(key, decode_value(self._opened_value(sealing, ns, key, f), f[1]), score)
            for (score, key), f, now in zip(ranked, found, current, strict=True)
            # gone (deleted, expired) or replaced since its embedding was ranked
            if f is not None and now == read[key]
        ]

    @staticmethod
    def _opened_value(sealing: Sealing, ns: str, key: str, found: tuple[bytes, bool, int]) -> bytes:
        """A stored value's JSON (opened where it is sealed)."""
        return sealing.open_value(found[0], "memory", ns, key, value_form(found[1]))

    @staticmethod
    def _open_vector(sealing: Sealing, ns: str, key: str, blob: bytes | None) -> bytes | None:
        """A stored embedding as :mod:`chatkeep.vectors` reads it; None if it does not
        open here (tampered, or moved from another key: not found, like an undecodable
        value). A key this store lacks is a ConfigurationError, as for values."""
        if blob is None or not is_sealed_value(blob):
            return blob
        try:
            return sealing.open_value(blob, VECTOR_FAMILY, ns, key)
        except SerializationError:
            return None

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

    ``embed=`` (a LangChain ``Embeddings`` object or a function from texts to vectors)
    makes values searchable by meaning: each put embeds the value (or the paths in
    ``embed_fields``) and :meth:`search` ranks a namespace by cosine similarity.
    """

    put = sync_method(_MemoryStoreBase._put)
    mput = sync_method(_MemoryStoreBase._mput)
    get = sync_method(_MemoryStoreBase._get)
    mget = sync_method(_MemoryStoreBase._mget)
    delete = sync_method(_MemoryStoreBase._delete)
    mdelete = sync_method(_MemoryStoreBase._mdelete)
    list = sync_method(_MemoryStoreBase._list)
    search = sync_method(_MemoryStoreBase._search)
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
    search = async_method(_MemoryStoreBase._search)
    ttl = async_method(_MemoryStoreBase._ttl)
    flush = async_method(_MemoryStoreBase._flush)
