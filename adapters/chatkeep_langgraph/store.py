"""``RedisStore``: LangGraph long-term memory (``BaseStore``) on chatkeep's MemoryStore,
with semantic search on plain Redis.

Items live in chatkeep's long-term memory store (:class:`chatkeep.MemoryStore`: one
hash tag per namespace, per-item TTL). Made from a URL, it uses the process's one
connection to that Redis: it shares the fallback circuit and journal with every
chatkeep store and ``RedisSaver`` made from the same URL and settings (its items have
their own mirror); with ``memory=`` or ``client=`` it shares whatever that store or
client shares. Each value is kept with its timestamps and, when the store has an
``index``, its embeddings (float32, little-endian, one per embedded text)::

    {"value": {...}, "c": <created µs>, "u": <updated µs>, "e": [[<path>, <base64>], ...]}

Namespaces that hold items are registered in one more chatkeep namespace,
``("langgraph-namespaces",)``, keyed by the dotted namespace (LangGraph forbids
dots inside labels, so the key is unambiguous), with their owner when the store
knows it (``owner=`` or ``namespace_owner=``); ``list_namespaces`` and ``search``
by prefix read that registry, never KEYS or SCAN, and so does the ``chatkeep``
command (``sessions/show/export/purge --owner``).

Semantics follow LangGraph's reference stores (``InMemoryStore``, ``SqliteStore``):

* a batch reads first (gets, searches, namespace listings, in order), then applies
  its puts, the last put of a (namespace, key) winning;
* ``get``/``search`` slide the TTL of what they *return* when the operation's
  ``refresh_ttl`` says so (``TTLConfig(refresh_on_read=...)`` is its default); a
  search never refreshes an item it scanned but did not return;
* ``put(ttl=None)`` never expires, ``put()`` takes ``TTLConfig["default_ttl"]``;
* filters take dotted paths (``{"user.access-level": "admin"}``) and the operators
  ``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte`` with SQL's treatment of a
  missing field (it equals only ``None`` and is never ``$ne`` nor ordered);
* ``search(prefix, query=...)`` ranks by cosine similarity (the best of an item's
  embedded texts), items without embeddings last with ``score=None``.

Search is exact: it reads the candidate items of the prefix (one round trip per
namespace) and scores them in this process (numpy when installed). See docs/langgraph.md
for the measured cost and why the server's vector search is not used.
"""

from __future__ import annotations

import asyncio
import binascii
import operator
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from langchain_core.embeddings import Embeddings
from langgraph.store.base import (
    BaseStore,
    GetOp,
    IndexConfig,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
    ensure_embeddings,
    get_text_at_path,
    tokenize_path,
)
from typing_extensions import Unpack

from chatkeep import (
    BackendOptions,
    ConfigurationError,
    InvalidArgumentError,
    MemoryStore,
    StoreConfig,
    vectors,
)
from chatkeep.redis import Closing, keywords_of, plural, store_options, validate_id

__all__ = ["REGISTRY", "RedisStore"]

REGISTRY = ("langgraph-namespaces",)
"""The chatkeep namespace where the namespaces that hold items are registered (with
their owner, for ``chatkeep sessions/export/purge --owner``)."""
_MISSING: Any = object()
_ORDER = {
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
}

Namespace = tuple[str, ...]
Vectors = list[list[Any]]  # [[path, float32 bytes], ...]


def _now_us() -> int:
    return time.time_ns() // 1000


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)


# -- filters ------------------------------------------------------------------------------


def _at_path(value: Any, path: str) -> Any:
    """The value at a dotted path of a JSON object, or _MISSING."""
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(found: Any, wanted: Any) -> bool:
    if found is _MISSING:
        return wanted is None
    if isinstance(wanted, dict):
        return isinstance(found, dict) and all(
            _equal(found.get(k, _MISSING), v) for k, v in wanted.items()
        )
    if _number(found) and _number(wanted):
        return float(found) == float(wanted)
    return bool(found == wanted)


def _operator(found: Any, op: str, wanted: Any) -> bool:
    if op == "$eq":
        return _equal(found, wanted)
    if op == "$ne":
        if wanted is None:
            return found is not _MISSING and found is not None
        return found is not _MISSING and found is not None and not _equal(found, wanted)
    compare = _ORDER.get(op)
    if compare is None:
        raise InvalidArgumentError(f"unsupported filter operator {op!r}")
    if _number(wanted) and _number(found):
        return bool(compare(float(found), float(wanted)))
    if isinstance(wanted, str) and isinstance(found, str):
        return bool(compare(found, wanted))
    return False


def _matches_filter(value: dict[str, Any], conditions: dict[str, Any]) -> bool:
    for path, wanted in conditions.items():
        if not isinstance(path, str) or not path:
            raise InvalidArgumentError("filter keys must be non-empty str (dotted paths)")
        found = _at_path(value, path)
        if isinstance(wanted, dict) and any(str(k).startswith("$") for k in wanted):
            if not all(_operator(found, op, v) for op, v in wanted.items()):
                return False
        elif not _equal(found, wanted):
            return False
    return True


def _matches(ns: Namespace, condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(path) > len(ns):
        return False
    if condition.match_type == "prefix":
        pairs = zip(ns, path, strict=False)
    elif condition.match_type == "suffix":
        pairs = zip(reversed(ns), reversed(path), strict=False)
    else:
        raise InvalidArgumentError(f"unsupported match type {condition.match_type!r}")
    return all(p in ("*", n) for n, p in pairs)


def _check_namespace(namespace: Namespace) -> Namespace:
    namespace = tuple(namespace)
    if not namespace or any(not isinstance(p, str) or not p or "." in p for p in namespace):
        raise InvalidArgumentError("namespace labels must be non-empty str and hold no '.'")
    if len(".".join(namespace)) > 512:  # its registry key
        raise InvalidArgumentError("a namespace has at most 512 characters (dots included)")
    return namespace


# -- vectors ------------------------------------------------------------------------------


def _pack(vector: Sequence[float], dims: int) -> str:
    packed = vectors.coordinates(vector)  # finite numbers, else ConfigurationError
    if len(packed) != dims:
        raise ConfigurationError(
            f"the embedding has {plural(len(packed), 'dimension')}, index dims is {dims}"
        )
    if sys.byteorder == "big":  # pragma: no cover - stored little-endian everywhere
        packed.byteswap()
    # base64 text, not JSON bytes: decoded here only for scoring, all at once
    return binascii.b2a_base64(packed.tobytes(), newline=False).decode("ascii")


def _scores(query: Sequence[float], items: list[list[str]], dims: int) -> list[float | None]:
    """Best cosine similarity of each item's vectors to ``query`` (None: no vectors)."""
    size = ((4 * dims + 2) // 3) * 4  # base64 length of one float32 vector
    blobs: list[bytes | None] = []
    for stored in items:
        raw = b"".join(binascii.a2b_base64(text) for text in stored if len(text) == size)
        blobs.append(vectors.frame(dims, raw) if raw else None)
    return vectors.scores(query, blobs)


@dataclass
class _Plan:
    """One batch: reads (in order), then the puts (last per key), and what to embed."""

    reads: list[tuple[int, GetOp | SearchOp | ListNamespacesOp]] = field(default_factory=list)
    puts: dict[tuple[Namespace, str], PutOp] = field(default_factory=dict)
    texts: list[tuple[tuple[Namespace, str], str, str]] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)
    owners: dict[Namespace, str | None] = field(default_factory=dict)
    size: int = 0


class StoreOptions(BackendOptions, total=False):
    """The chatkeep options :class:`RedisStore` takes (typed, so a misspelling is caught
    by mypy): ``key_prefix`` (``prefix`` is its older name) and the
    :class:`chatkeep.StoreConfig` fields but the URL and TTL (its own arguments)."""

    key_prefix: str
    prefix: str


class RedisStore(BaseStore, Closing):
    """LangGraph ``BaseStore`` on plain Redis (or ``memory://``), through chatkeep.

    ::

        store = RedisStore(
            "redis://localhost:6379/0",
            ttl={"default_ttl": 60 * 24, "refresh_on_read": True},
            index={"dims": 1536, "embed": embeddings, "fields": ["text"]},
        )
        graph = builder.compile(checkpointer=saver, store=store)
        store.search(("memories", user_id), query="what does the user like?")

    ``ttl`` is LangGraph's ``TTLConfig`` (minutes; ``refresh_on_read`` defaults to
    True). ``index`` is LangGraph's ``IndexConfig``: ``dims``, ``embed`` (a LangChain
    ``Embeddings``, a sync or async function of a list of texts, or a
    ``"provider:model"`` string) and ``fields`` (JSON paths to embed, default the
    whole value). Other options are chatkeep ``StoreConfig`` fields (``key_prefix``,
    ``fallback``, timeouts, ...); ``memory=`` reuses a ready ``MemoryStore``.

    Owners, so that ``chatkeep sessions/export/purge --owner USER`` cover the user's
    long-term memory: ``namespace_owner=1`` says the user id is the label at that
    position of a namespace (``("memories", user_id)``, the shape of LangGraph's
    memory guides and LangMem; ``0`` for ``(user_id, ...)``), or give a function of
    the namespace returning the owner (or None); ``owner="u42"`` binds every namespace
    this store writes to one user. Namespaces written without either have no owner
    (but for the ``chatkeep`` command, ``("user", <id>, ...)`` belongs to ``<id>``).
    """

    supports_ttl = True

    def __init__(
        self,
        url: str | None = None,
        *,
        memory: MemoryStore | None = None,
        client: Any = None,
        ttl: TTLConfig | None = None,
        index: IndexConfig | None = None,
        owner: str | None = None,
        namespace_owner: int | Callable[[Namespace], str | None] | None = None,
        **chatkeep_options: Unpack[StoreOptions],
    ) -> None:
        options = store_options(
            chatkeep_options, what=type(self).__name__, accepted=keywords_of(type(self))
        )
        if owner is not None and namespace_owner is not None:
            raise ConfigurationError("pass either owner= or namespace_owner=, not both")
        if owner is not None:
            validate_id(owner, "owner")
        if (
            namespace_owner is not None
            and not callable(namespace_owner)
            and (
                isinstance(namespace_owner, bool)
                or not isinstance(namespace_owner, int)
                or namespace_owner < 0
            )
        ):
            raise ConfigurationError(
                "namespace_owner must be the position of the owner's label (an int >= 0) "
                "or a function of the namespace"
            )
        self.owner = owner
        self.namespace_owner = namespace_owner
        if memory is not None:
            if url is not None or options or client is not None:
                raise InvalidArgumentError("pass either memory=, or a URL/client and options")
            self._memory = memory
            self._owns = False
        else:
            if url is not None:
                options["url"] = url
            self._memory = MemoryStore(StoreConfig.from_env(**options), client=client)
            self._owns = True
        self.ttl_config = ttl
        self.index_config: IndexConfig | None = None
        self.embeddings: Embeddings | None = None
        self._fields: list[tuple[str, str | list[str]]] = []
        self._dims = 0
        if index is not None:
            self._configure_index(index)

    def _configure_index(self, index: IndexConfig) -> None:
        dims = index.get("dims")
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            raise ConfigurationError("index['dims'] must be a positive int")
        try:
            self.embeddings = ensure_embeddings(index.get("embed"))
        except ValueError as error:
            raise ConfigurationError(f"index['embed']: {error}") from error
        given: dict[str, Any] = dict(index)
        if given.get("distance_type", "cosine") != "cosine":
            raise ConfigurationError("RedisStore ranks by cosine similarity only")
        # SqliteStore calls the fields "text_fields": accepted too, for a drop-in swap.
        fields: Any = given.get("fields") or given.get("text_fields") or ["$"]
        if isinstance(fields, str) or not all(isinstance(f, str) and f for f in fields):
            raise ConfigurationError("index['fields'] must be a list of JSON paths")
        self.index_config = index
        self._dims = dims
        self._fields = [(f, f if f == "$" else tokenize_path(f)) for f in fields]

    @property
    def memory(self) -> MemoryStore:
        """The chatkeep long-term memory store underneath."""
        return self._memory

    def setup(self) -> None:
        """Nothing to set up (no schema, no server modules); here for drop-in use where
        LangGraph stores are set up (``PostgresStore``, ``SqliteStore``)."""

    # -- BaseStore ------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        plan = self._plan(ops)
        embeddings = self.embeddings
        queries: dict[str, list[float]] = {}
        vectors: list[list[float]] = []
        if embeddings is not None:
            queries = {q: embeddings.embed_query(q) for q in plan.queries}
            if plan.texts:
                vectors = embeddings.embed_documents([text for _, _, text in plan.texts])
        return self._execute(plan, queries, vectors)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        plan = self._plan(ops)
        embeddings = self.embeddings
        queries: dict[str, list[float]] = {}
        vectors: list[list[float]] = []
        if embeddings is not None:
            found = await asyncio.gather(*(embeddings.aembed_query(q) for q in plan.queries))
            queries = dict(zip(plan.queries, found, strict=True))
            if plan.texts:
                texts = [text for _, _, text in plan.texts]
                vectors = await embeddings.aembed_documents(texts)
        return await asyncio.to_thread(self._execute, plan, queries, vectors)

    # -- planning (no I/O) --------------------------------------------------------------------

    def _plan(self, ops: Iterable[Op]) -> _Plan:
        plan = _Plan()
        for i, op in enumerate(ops):
            plan.size = i + 1
            if isinstance(op, PutOp):
                namespace = _check_namespace(op.namespace)
                if not isinstance(op.key, str) or not op.key:
                    raise InvalidArgumentError("key must be a non-empty str")
                if op.value is not None and not isinstance(op.value, dict):
                    raise InvalidArgumentError("value must be a dict (or None to delete)")
                plan.puts.pop((namespace, op.key), None)  # the last put of a key wins
                plan.puts[(namespace, op.key)] = op
            elif isinstance(op, (GetOp, SearchOp, ListNamespacesOp)):
                plan.reads.append((i, op))
                if (
                    isinstance(op, SearchOp)
                    and op.query
                    and self.embeddings is not None
                    and op.query not in plan.queries
                ):
                    plan.queries.append(op.query)
            else:
                raise InvalidArgumentError(f"unknown store operation {type(op).__name__}")
        for (namespace, _), op in plan.puts.items():
            # the owners are known before anything is written (a bad one writes nothing)
            if op.value is not None and namespace not in plan.owners:
                plan.owners[namespace] = self._owner_of(namespace)
        if self.embeddings is not None:
            for (namespace, key), op in plan.puts.items():
                if op.value is None or op.index is False:
                    continue
                if op.index is None:
                    fields = self._fields
                else:
                    fields = [(f, f if f == "$" else tokenize_path(f)) for f in op.index]
                for name, path in fields:
                    texts = get_text_at_path(op.value, path)
                    for n, text in enumerate(texts):
                        label = name if len(texts) == 1 else f"{name}.{n}"
                        plan.texts.append(((namespace, key), label, text))
        return plan

    # -- execution (I/O through the memory store) ------------------------------------------------

    def _execute(
        self, plan: _Plan, queries: dict[str, list[float]], embedded: list[list[float]]
    ) -> list[Result]:
        results: list[Result] = [None] * plan.size
        for i, op in plan.reads:
            if isinstance(op, GetOp):
                results[i] = self._get(op)
            elif isinstance(op, SearchOp):
                results[i] = self._search(op, queries.get(op.query) if op.query else None)
            else:
                results[i] = self._list_namespaces(op)
        if plan.puts:
            if len(embedded) != len(plan.texts):
                raise ConfigurationError("the embedding function returned the wrong count")
            vectors: dict[tuple[Namespace, str], Vectors] = defaultdict(list)
            for (where, label, _), vector in zip(plan.texts, embedded, strict=True):
                vectors[where].append([label, _pack(vector, self._dims)])
            self._put(plan.puts, vectors, plan.owners)
        return results

    def _get(self, op: GetOp) -> Item | None:
        namespace = tuple(op.namespace)
        found = self._memory.get(namespace, op.key, refresh=op.refresh_ttl)
        return None if found is None else self._item(namespace, op.key, found)

    @staticmethod
    def _item(namespace: Namespace, key: str, found: dict[str, Any]) -> Item:
        return Item(
            value=found["value"],
            key=key,
            namespace=namespace,
            created_at=_dt(found["c"]),
            updated_at=_dt(found["u"]),
        )

    def _put(
        self,
        puts: dict[tuple[Namespace, str], PutOp],
        vectors: dict[tuple[Namespace, str], Vectors],
        owners: dict[Namespace, str | None],
    ) -> None:
        by_namespace: dict[Namespace, list[PutOp]] = defaultdict(list)
        for (namespace, _), op in puts.items():
            by_namespace[namespace].append(op)
        for namespace, ops in by_namespace.items():
            if any(op.value is not None for op in ops):
                # Registered first: an entry never expires (an item's TTL slides, an
                # entry's would not); an emptied namespace costs one check when listing.
                name = ".".join(namespace)
                # "at": when it was registered (the chatkeep command keeps the entry of
                # an emptied namespace a minute, for a put racing with its listing)
                entry: dict[str, Any] = {"ns": list(namespace), "at": time.time_ns() // 10**6}
                found_owner = owners.get(namespace)
                if found_owner is None:
                    # a store that knows no owner keeps the one another store recorded
                    known = self._memory.get(REGISTRY, name, refresh=False)
                    if isinstance(known, dict) and isinstance(known.get("owner"), str):
                        found_owner = known["owner"]
                if found_owner is not None:
                    entry["owner"] = found_owner
                self._memory.put(REGISTRY, name, entry, ttl=None)
            deleted = [op.key for op in ops if op.value is None]
            if deleted:
                self._memory.mdelete(namespace, deleted)
            written = [op for op in ops if op.value is not None]
            if not written:
                continue
            keys = [op.key for op in written]
            previous = self._memory.mget(namespace, keys, refresh=False)
            now = _now_us()
            by_ttl: dict[float | None, dict[str, Any]] = defaultdict(dict)
            for op, old in zip(written, previous, strict=True):
                created = old["c"] if isinstance(old, dict) and "c" in old else now
                record: dict[str, Any] = {"value": dict(op.value or {}), "c": created, "u": now}
                embedded = vectors.get((namespace, op.key))
                if embedded:
                    record["e"] = embedded
                by_ttl[op.ttl][op.key] = record
            for ttl, items in by_ttl.items():
                self._memory.mput(namespace, items, ttl=None if ttl is None else float(ttl) * 60)

    def _owner_of(self, namespace: Namespace) -> str | None:
        """The owner recorded for ``namespace`` (``owner=`` / ``namespace_owner=``)."""
        if self.owner is not None:
            return self.owner
        rule = self.namespace_owner
        if rule is None:
            return None
        if callable(rule):
            found = rule(namespace)
            return None if found is None else validate_id(found, "owner")
        return namespace[rule] if rule < len(namespace) else None

    def _namespaces(self) -> list[Namespace]:
        return [tuple(name.split(".")) for name in self._memory.list(REGISTRY)]

    def _search(self, op: SearchOp, query: list[float] | None) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        found: list[tuple[Namespace, str, dict[str, Any]]] = []
        for ns in self._namespaces():
            if ns[: len(prefix)] != prefix:
                continue
            keys = self._memory.list(ns)
            if not keys:
                continue
            # Read without refreshing: only what the search returns is refreshed.
            for key, record in zip(keys, self._memory.mget(ns, keys, refresh=False), strict=True):
                if not isinstance(record, dict) or not isinstance(record.get("value"), dict):
                    continue
                if op.filter and not _matches_filter(record["value"], op.filter):
                    continue
                found.append((ns, key, record))
        found.sort(key=lambda one: one[2]["u"], reverse=True)
        scores: list[float | None] = [None] * len(found)
        if query is not None:
            checked = vectors.coordinates(query)  # a NaN query would make every score NaN
            stored = [[blob for _, blob in one[2].get("e", ())] for one in found]
            scores = _scores(checked, stored, self._dims)
            order = sorted(
                range(len(found)),
                key=lambda i: (scores[i] is None, -(scores[i] or 0.0)),
            )
            found = [found[i] for i in order]
            scores = [scores[i] for i in order]
        start = max(op.offset, 0)
        stop = start + max(op.limit, 0)
        page = list(zip(found[start:stop], scores[start:stop], strict=True))
        if op.refresh_ttl:
            returned: dict[Namespace, list[str]] = defaultdict(list)
            for (ns, key, _), _score in page:
                returned[ns].append(key)
            for ns, keys in returned.items():
                self._memory.mget(ns, keys, refresh=True)
        return [
            SearchItem(
                namespace=ns,
                key=key,
                value=record["value"],
                created_at=_dt(record["c"]),
                updated_at=_dt(record["u"]),
                score=score,
            )
            for (ns, key, record), score in page
        ]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[Namespace]:
        result: set[Namespace] = set()
        for ns in self._namespaces():
            if op.match_conditions and not all(_matches(ns, c) for c in op.match_conditions):
                continue
            if not self._memory.list(ns, limit=1):
                continue  # every item expired or was deleted
            result.add(ns if op.max_depth is None else ns[: op.max_depth])
        ordered = sorted(result)
        start = max(op.offset, 0)
        return ordered[start : start + max(op.limit, 0)]

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        if self._owns:
            self._memory.close()
