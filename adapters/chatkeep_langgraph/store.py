"""``RedisStore``: LangGraph long-term memory (``BaseStore``) on chatkeep's MemoryStore.

Items live in chatkeep's long-term memory store (:class:`chatkeep.MemoryStore`: one
hash tag per namespace, per-item TTL refreshed on read). Made from a URL, it uses the
process's one connection to that Redis: it shares the fallback circuit and journal
with every chatkeep store and ``RedisSaver`` made from the same URL and settings (its
items have their own mirror); with ``memory=`` or ``client=`` it shares whatever that
store or client shares. Each value is kept with its timestamps::

    {"value": {...}, "c": <created µs>, "u": <updated µs>}

Namespaces that hold items are registered in one more chatkeep namespace,
``("langgraph-namespaces",)``, keyed by the dotted namespace (LangGraph forbids
dots inside labels, so the key is unambiguous); ``list_namespaces`` and ``search``
by prefix read that registry, never KEYS or SCAN. Semantic search (``index=``) is
not offered yet: ``query`` is ignored and scores are None.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from langgraph.store.base import (
    BaseStore,
    GetOp,
    Item,
    ListNamespacesOp,
    MatchCondition,
    Op,
    PutOp,
    Result,
    SearchItem,
    SearchOp,
    TTLConfig,
)

from chatkeep import InvalidArgumentError, MemoryStore, StoreConfig
from chatkeep.redis import Closing

__all__ = ["RedisStore"]

_REGISTRY = ("langgraph-namespaces",)


def _now_us() -> int:
    return time.time_ns() // 1000


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, tz=timezone.utc)


def _compare(value: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        if any(k.startswith("$") for k in wanted):
            return all(_operator(value, k, v) for k, v in wanted.items())
        return isinstance(value, dict) and all(_compare(value.get(k), v) for k, v in wanted.items())
    return bool(value == wanted)


def _operator(value: Any, op: str, wanted: Any) -> bool:
    if op == "$eq":
        return bool(value == wanted)
    if op == "$ne":
        return bool(value != wanted)
    if value is None:
        return False
    if op == "$gt":
        return float(value) > float(wanted)
    if op == "$gte":
        return float(value) >= float(wanted)
    if op == "$lt":
        return float(value) < float(wanted)
    if op == "$lte":
        return float(value) <= float(wanted)
    raise InvalidArgumentError(f"unsupported filter operator {op!r}")


def _matches(ns: tuple[str, ...], condition: MatchCondition) -> bool:
    path = tuple(condition.path)
    if len(path) > len(ns):
        return False
    if condition.match_type == "prefix":
        pairs = zip(ns, path, strict=False)
    else:
        pairs = zip(reversed(ns), reversed(path), strict=False)
    return all(p in ("*", n) for n, p in pairs)


class RedisStore(BaseStore, Closing):
    """LangGraph ``BaseStore`` on plain Redis (or ``memory://``), through chatkeep.

    ::

        store = RedisStore("redis://localhost:6379/0", ttl={"default_ttl": 60 * 24})
        graph = builder.compile(checkpointer=saver, store=store)

    ``ttl`` is LangGraph's ``TTLConfig`` (minutes; ``refresh_on_read`` defaults to
    True). Other options are chatkeep ``StoreConfig`` fields (``prefix``,
    ``fallback``, timeouts, ...); ``memory=`` reuses a ready ``MemoryStore``.
    """

    supports_ttl = True

    def __init__(
        self,
        url: str | None = None,
        *,
        memory: MemoryStore | None = None,
        client: Any = None,
        ttl: TTLConfig | None = None,
        **options: Any,
    ) -> None:
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
        default = (ttl or {}).get("default_ttl")
        self._default_ttl: float | None = None if default is None else float(default) * 60

    @property
    def memory(self) -> MemoryStore:
        """The chatkeep long-term memory store underneath."""
        return self._memory

    # -- BaseStore ------------------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return [self._one(op) for op in ops]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        listed = list(ops)
        return await asyncio.to_thread(self.batch, listed)

    def _one(self, op: Op) -> Result:
        if isinstance(op, GetOp):
            return self._get(op.namespace, op.key)
        if isinstance(op, PutOp):
            self._put(op)
            return None
        if isinstance(op, SearchOp):
            return self._search(op)
        if isinstance(op, ListNamespacesOp):
            return self._list_namespaces(op)
        raise InvalidArgumentError(f"unknown store operation {type(op).__name__}")

    def _get(self, namespace: tuple[str, ...], key: str) -> Item | None:
        found = self._memory.get(namespace, key)
        return None if found is None else self._item(namespace, key, found)

    @staticmethod
    def _item(namespace: tuple[str, ...], key: str, found: dict[str, Any]) -> Item:
        return Item(
            value=found["value"],
            key=key,
            namespace=namespace,
            created_at=_dt(found["c"]),
            updated_at=_dt(found["u"]),
        )

    def _ttl_seconds(self, ttl: float | None) -> float | None:
        return self._default_ttl if ttl is None else float(ttl) * 60

    def _put(self, op: PutOp) -> None:
        namespace = tuple(op.namespace)
        if not namespace or any("." in part for part in namespace):
            raise InvalidArgumentError("namespace labels must be non-empty and hold no '.'")
        if op.value is None:
            self._memory.delete(namespace, op.key)
            return
        now = _now_us()
        previous = self._memory.get(namespace, op.key)
        created = previous["c"] if isinstance(previous, dict) and "c" in previous else now
        ttl = self._ttl_seconds(op.ttl)
        self._memory.put(
            namespace, op.key, {"value": dict(op.value), "c": created, "u": now}, ttl=ttl
        )
        self._memory.put(_REGISTRY, ".".join(namespace), {"ns": list(namespace)}, ttl=ttl)

    def _namespaces(self) -> list[tuple[str, ...]]:
        return [tuple(name.split(".")) for name in self._memory.list(_REGISTRY)]

    def _search(self, op: SearchOp) -> list[SearchItem]:
        prefix = tuple(op.namespace_prefix)
        found: list[SearchItem] = []
        for ns in self._namespaces():
            if ns[: len(prefix)] != prefix:
                continue
            keys = self._memory.list(ns)
            if not keys:
                continue
            for key, value in zip(keys, self._memory.mget(ns, keys), strict=True):
                if value is None:
                    continue
                if op.filter and not all(
                    _compare(value["value"].get(k), v) for k, v in op.filter.items()
                ):
                    continue
                item = self._item(ns, key, value)
                found.append(
                    SearchItem(
                        namespace=ns,
                        key=key,
                        value=item.value,
                        created_at=item.created_at,
                        updated_at=item.updated_at,
                    )
                )
        found.sort(key=lambda item: item.updated_at, reverse=True)
        return found[op.offset : op.offset + op.limit]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        result: set[tuple[str, ...]] = set()
        for ns in self._namespaces():
            if op.match_conditions and not all(_matches(ns, c) for c in op.match_conditions):
                continue
            if not self._memory.list(ns, limit=1):
                continue  # every item expired or was deleted
            result.add(ns if op.max_depth is None else ns[: op.max_depth])
        ordered = sorted(result)
        return ordered[op.offset : op.offset + op.limit]

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        if self._owns:
            self._memory.close()
