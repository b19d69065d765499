"""What the ``chatkeep`` command sees of LangGraph (internal): checkpoint threads and
store namespaces, as :class:`chatkeep.redis.DataKind` s.

Threads are read and written through the checkpoint family with no TTL refresh (an
administrator's reads leave a sliding TTL alone), exported in their stored form
(every key of the thread, bytes in base64), so an import restores them exactly,
with their thread, owner and run index entries. Store namespaces are read through
chatkeep's long-term memory (values, timestamps, embeddings and each item's TTL).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

from chatkeep import UNSET, MemoryStore
from chatkeep.redis import (
    DataItem,
    DataSite,
    KeySchema,
    encode_value,
    escape_id,
    memory_owner,
    reply_text,
    ttl_ms,
    unescape_id,
    validate_id,
)

from ._layout import record_header

__all__ = ["CheckpointThreads", "StoreNamespaces"]

_PAGE = 200
REGISTRY_GRACE_MS = 60_000
"""How long the registry entry of a LangGraph store namespace found empty is kept
after its last registration: a put registers its namespace, then writes its items, so
a listing racing with it must not unregister it."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: object) -> bytes:
    if not isinstance(text, str):
        raise ValueError("expected base64 text")
    return base64.b64decode(text, validate=True)


def _ms(value: Any) -> datetime | None:
    text = reply_text(value)
    if text is None:
        return None
    return datetime.fromtimestamp(float(text) / 1000, tz=timezone.utc)


def _expires(pttl: Any) -> datetime | None:
    left = int(pttl)
    return datetime.now(timezone.utc) + timedelta(milliseconds=left) if left >= 0 else None


def _ttl_ms(ttl: Any, exported: Any, default: float | None) -> int:
    """The TTL to restore with (ms, 0 = never): ``ttl`` given to the import, else the
    time the item had left when exported, else the configured default. One out of
    range (beyond chatkeep's longest TTL) is a ValueError, before anything is written."""
    if ttl is not UNSET:
        return ttl_ms(None if ttl is None else float(ttl))
    if exported is None:
        return 0
    if isinstance(exported, (int, float)) and not isinstance(exported, bool) and exported > 0:
        return ttl_ms(exported)
    return 0 if default is None else round(default * 1000)


def jsonable(value: Any) -> Any:
    """A JSON-safe view of a checkpoint value (messages and models as their fields)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return {"base64": _b64(value)}
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return jsonable(dump(mode="json"))
        except Exception:  # a model JSON cannot hold: its text
            return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


class CheckpointThreads:
    """LangGraph checkpoint threads (``chatkeep_langgraph.RedisSaver``); their owner is
    the ``user_id`` of their checkpoints (``configurable.user_id`` or the saver's
    ``owner=``)."""

    name = "langgraph-threads"
    what = "LangGraph threads"
    unit = "checkpoints"

    def _family(self, site: DataSite, ttl_ms: int = 0) -> Any:
        from ._redis import RedisCheckpoints  # imports this module

        return RedisCheckpoints(
            site.store.connection,
            prefix=site.config.prefix,
            ttl_ms=ttl_ms,
            fixed=site.config.ttl_mode == "fixed",
            refresh_on_read=False,
        )

    def items(self, site: DataSite, owner: str | None) -> Iterator[DataItem]:
        keys = KeySchema(site.config.prefix)
        index = keys.checkpoint_threads(owner or "")
        start = 0
        while True:
            (page,) = site.send([("ZREVRANGE", index, start, start + _PAGE - 1)])
            threads = [unescape_id(reply_text(m) or "") for m in page]
            if not threads:
                return
            commands: list[Any] = []
            for thread in threads:
                checkpoints = keys.checkpoints(thread)[0]
                commands += [
                    ("ZCARD", checkpoints),
                    ("PTTL", checkpoints),
                    ("ZSCORE", index, escape_id(thread)),
                ]
            replies = site.send(commands)
            gone: list[str] = []
            for i, thread in enumerate(threads):
                count, pttl, score = replies[3 * i : 3 * i + 3]
                if not int(count):
                    gone.append(thread)  # expired or deleted: the index entry is stale
                    continue
                yield DataItem(
                    thread,
                    owner or self._owner(site, thread),
                    int(count),
                    updated_at=_ms(score),
                    expires_at=_expires(pttl),
                )
            if gone:
                # Stale entries leave the index listed (as RedisSaver.list(None) does),
                # so that a purge by owner leaves no id of an expired thread behind.
                escaped = [escape_id(thread) for thread in gone]
                stale: list[Any] = [("ZREM", index, *escaped)]
                if owner:
                    stale.append(("ZREM", keys.checkpoint_threads(), *escaped))
                site.send(stale)
            if len(threads) < _PAGE:
                return
            start += _PAGE - len(gone)

    def _entries(self, site: DataSite, thread: str, count: int) -> list[Any]:
        from ._layout import Page

        return list(site.run(self._family(site).run(Page(thread, b"", b"\xff", count))))

    def _owner(self, site: DataSite, thread: str) -> str | None:
        """The ``user_id`` of the thread's newest checkpoint (any namespace)."""
        for _, record, _, _ in self._entries(site, thread, 1):
            owner = record_header(record).get("m", {}).get("user_id")
            return str(owner) if owner else None
        return None

    def show(self, site: DataSite, item_id: str) -> dict[str, Any] | None:
        from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

        from ._layout import Policy

        thread = validate_id(item_id, "thread id")
        policy = Policy(
            prefix=site.config.prefix,
            serde=JsonPlusSerializer(pickle_fallback=False),
            keep_last=0,
        )
        entries = self._entries(site, thread, 1000)
        if not entries:
            return None
        checkpoints = []
        for entry in entries:
            one = policy.decode(thread, entry)
            checkpoints.append(
                {
                    "checkpoint_ns": one.config["configurable"]["checkpoint_ns"],
                    "checkpoint_id": one.checkpoint["id"],
                    "ts": one.checkpoint.get("ts"),
                    "metadata": jsonable(one.metadata),
                    "pending_writes": len(one.pending_writes or ()),
                }
            )
        latest = policy.decode(thread, entries[0])
        return {
            "thread_id": thread,
            "owner": latest.metadata.get("user_id"),
            "checkpoints": checkpoints,
            "latest_values": jsonable(latest.checkpoint.get("channel_values", {})),
        }

    def export(self, site: DataSite, item_id: str) -> dict[str, Any] | None:
        from ._layout import Dump

        thread = validate_id(item_id, "thread id")
        data = site.run(self._family(site).run(Dump(thread)))
        if not data:
            return None
        (pttl,) = site.send([("PTTL", KeySchema(site.config.prefix).checkpoints(thread)[0])])
        return {
            "ttl": int(pttl) / 1000 if int(pttl) >= 0 else None,
            "index": [_b64(m) for m in data.index],
            "records": [[_b64(k), _b64(v)] for k, v in data.records.items()],
            "blobs": [[_b64(k), _b64(v)] for k, v in data.blobs.items()],
            "writes": [_b64(m) for m in data.writes],
        }

    def restore(
        self, site: DataSite, item_id: str, owner: str | None, data: dict[str, Any], ttl: Any
    ) -> int:
        from ._layout import Load, ThreadData

        thread = validate_id(item_id, "thread id")
        if owner is not None:
            validate_id(owner, "owner")
        try:
            thread_data = ThreadData(
                [_unb64(m) for m in data["index"]],
                {_unb64(k): _unb64(v) for k, v in data["records"]},
                {_unb64(k): _unb64(v) for k, v in data["blobs"]},
                [_unb64(m) for m in data["writes"]],
            )
            runs = [
                (str(run), member)
                for member, record in thread_data.records.items()
                if (run := record_header(record).get("m", {}).get("run_id"))
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a LangGraph thread export ({exc})") from None
        left_ms = _ttl_ms(ttl, data.get("ttl"), site.config.ttl)
        site.run(self._family(site, left_ms).run(Load(thread, thread_data)))
        keys = KeySchema(site.config.prefix)
        escaped = escape_id(thread).encode()
        now = int(time.time() * 1000)
        commands: list[Any] = [("ZADD", keys.checkpoint_threads(), now, escaped)]
        if owner:
            commands.append(("ZADD", keys.checkpoint_threads(owner), now, escaped))
        for run, member in runs:
            key = keys.checkpoint_run(run)
            commands.append(("ZADD", key, 0, escaped + b"\n" + member))
            if left_ms > 0:
                commands.append(("PEXPIRE", key, left_ms))
        site.send(commands)
        return len(thread_data.index)

    def delete(self, site: DataSite, items: list[DataItem]) -> int:
        from ._layout import Delete

        keys = KeySchema(site.config.prefix)
        deleted = 0
        for item in items:
            # The family's delete also drops the thread's entries in the run index and
            # in the index of every user its checkpoints name (a purge leaves no id).
            deleted += 1 if int(site.run(self._family(site).run(Delete(item.id)))) else 0
            if item.owner:  # the owner it was listed under, in case no record names it
                site.send([("ZREM", keys.checkpoint_threads(item.owner), escape_id(item.id))])
        return deleted


class StoreNamespaces:
    """LangGraph store namespaces (``chatkeep_langgraph.RedisStore``), named by their
    dotted labels (``memories.u1``); their owner is the one the store was configured
    to record (``owner=`` or ``namespace_owner=``), kept in its namespace registry."""

    name = "langgraph-store"
    what = "LangGraph store namespaces"
    unit = "items"

    @staticmethod
    def _memory(site: DataSite) -> MemoryStore:
        return MemoryStore(site.config)

    def _registry(self, memory: MemoryStore) -> dict[str, dict[str, Any]]:
        from .store import REGISTRY

        names = memory.list(REGISTRY)
        entries = memory.mget(REGISTRY, names, refresh=False) if names else []
        return {n: e for n, e in zip(names, entries, strict=True) if isinstance(e, dict)}

    def claims(self, site: DataSite) -> set[tuple[str, ...]]:
        """The long-term memory namespaces this kind's items live in (the registry and
        every registered namespace): the ``memory`` kind leaves them to this one."""
        from .store import REGISTRY

        with self._memory(site) as memory:
            found = {tuple(e.get("ns") or n.split(".")) for n, e in self._registry(memory).items()}
        return {REGISTRY, *found}

    def items(self, site: DataSite, owner: str | None) -> Iterator[DataItem]:
        from .store import REGISTRY

        with self._memory(site) as memory:
            for name, entry in sorted(self._registry(memory).items()):
                namespace = tuple(entry.get("ns") or name.split("."))
                found_owner = _owner(entry, namespace)
                if owner is not None and found_owner != owner:
                    continue
                keys = memory.list(namespace)
                if not keys:
                    # emptied (deleted or expired): its entries go, once no put can
                    # be racing with this listing (a purge leaves no owner behind)
                    at = entry.get("at")
                    if not isinstance(at, int) or at < time.time() * 1000 - REGISTRY_GRACE_MS:
                        memory.delete(REGISTRY, name)
                        _unregister(site, namespace)
                    continue
                try:
                    records = memory.mget(namespace, keys, refresh=False)
                except ValueError:  # a value that cannot be decoded: listed (and purged)
                    records = []  # without its time of last update
                updated = max((r.get("u", 0) for r in records if isinstance(r, dict)), default=0)
                yield DataItem(
                    name,
                    found_owner,
                    len(keys),
                    updated_at=(
                        datetime.fromtimestamp(updated / 1e6, tz=timezone.utc) if updated else None
                    ),
                )

    @staticmethod
    def _namespace(item_id: str) -> tuple[str, ...]:
        if not isinstance(item_id, str) or not item_id or any(not p for p in item_id.split(".")):
            raise ValueError(f"{item_id!r} is not a dotted LangGraph namespace")
        return tuple(item_id.split("."))

    def show(self, site: DataSite, item_id: str) -> dict[str, Any] | None:
        namespace = self._namespace(item_id)
        with self._memory(site) as memory:
            keys = memory.list(namespace)
            if not keys:
                return None
            owner = _owner(self._registry(memory).get(item_id, {}), namespace)
            records = memory.mget(namespace, keys, refresh=False)
        items = [
            {
                "key": key,
                "value": jsonable(record.get("value")),
                "created_at": _us(record.get("c")),
                "updated_at": _us(record.get("u")),
                "embedded": [path for path, _ in record.get("e", ())],
            }
            for key, record in zip(keys, records, strict=True)
            if isinstance(record, dict)
        ]
        return {"namespace": list(namespace), "owner": owner, "items": items}

    def export(self, site: DataSite, item_id: str) -> dict[str, Any] | None:
        namespace = self._namespace(item_id)
        with self._memory(site) as memory:
            keys = memory.list(namespace)
            if not keys:
                return None
            records = memory.mget(namespace, keys, refresh=False)
            ttls = [memory.ttl(namespace, key) for key in keys]
        items = []
        for key, record, ttl in zip(keys, records, ttls, strict=True):
            if isinstance(record, dict) and ttl != 0.0:
                items.append({"key": key, "record": jsonable(record), "ttl": ttl})
        return {"namespace": list(namespace), "items": items}

    def restore(
        self, site: DataSite, item_id: str, owner: str | None, data: dict[str, Any], ttl: Any
    ) -> int:
        from .store import REGISTRY

        namespace = self._namespace(item_id)
        items = data.get("items")
        if not isinstance(items, list) or not all(
            isinstance(i, dict)
            and isinstance(i.get("key"), str)
            and isinstance(i.get("record"), dict)
            for i in items
        ):
            raise ValueError("not a LangGraph store namespace export (items)")
        entry: dict[str, Any] = {"ns": list(namespace), "at": int(time.time() * 1000)}
        if owner is not None:
            entry["owner"] = validate_id(owner, "owner")
        # Every item checked (key, JSON, size) before the first is written.
        limit = site.config.max_message_bytes
        planned: list[tuple[str, Any, float | None]] = []
        for item in items:
            key = validate_id(item["key"], "key")
            encode_value(item["record"], limit, f"value of key {key!r}")
            ms = _ttl_ms(ttl, item.get("ttl"), site.config.ttl)
            planned.append((key, item["record"], ms / 1000 if ms else None))
        with self._memory(site) as memory:
            memory.put(REGISTRY, item_id, entry, ttl=None)
            for key, record, left in planned:
                memory.put(namespace, key, record, ttl=left)
        return len(planned)

    def delete(self, site: DataSite, items: list[DataItem]) -> int:
        from .store import REGISTRY

        deleted = 0
        with self._memory(site) as memory:
            for item in items:
                namespace = self._namespace(item.id)
                keys = memory.list(namespace)
                if keys:
                    memory.mdelete(namespace, keys)
                    deleted += 1
                memory.delete(REGISTRY, item.id)
                _unregister(site, namespace)
        return deleted


def _owner(entry: dict[str, Any], namespace: tuple[str, ...]) -> str | None:
    """A store namespace's owner: the one its store recorded, else chatkeep's rule for
    long-term memory (``("user", <id>, ...)`` is ``<id>``'s)."""
    recorded = entry.get("owner")
    return recorded if isinstance(recorded, str) else memory_owner(namespace)


def _unregister(site: DataSite, namespace: tuple[str, ...]) -> None:
    """Drop a namespace from the long-term memory registry (the ``memory`` kind's)."""
    member = ":".join(escape_id(part) for part in namespace)
    site.send([("ZREM", KeySchema(site.config.prefix).memory_namespaces(), member)])


def _us(value: Any) -> str | None:
    if not isinstance(value, int):
        return None
    return datetime.fromtimestamp(value / 1e6, tz=timezone.utc).isoformat()
