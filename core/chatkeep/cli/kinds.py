"""What the ``chatkeep`` command sees of chatkeep's own long-term memory and result
caches: two :class:`chatkeep.redis.DataKind` s, registered when the CLI's admin module
is imported.

* ``memory``: :class:`chatkeep.MemoryStore` namespaces, named by their escaped parts
  joined with ``:`` (``user:u42``, as in their keys). A namespace ``("user", <id>, ...)``
  belongs to ``<id>`` (the first part picks the TTL: ``user`` is user context), so a
  purge by owner takes it. Namespaces another kind keeps its items in (LangGraph's
  store) are left to that kind (its ``claims``).
* ``cache``: :class:`chatkeep.ResultCache` namespaces (no owner).

Both are found through the namespace registries their stores keep
(``<prefix>:mem:namespaces``, ``<prefix>:cache:namespaces``), walked with ZSCAN; a
namespace written by a chatkeep older than these registries is not listed until it
is written again. Listing drops the entries of namespaces found empty (expired) a
minute after their last write. Reads never refresh a TTL.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

from chatkeep import UNSET, MemoryStore, ResultCache, vectors
from chatkeep.redis import (
    VECTOR_FAMILY,
    DataItem,
    DataSite,
    KeySchema,
    decode_value,
    encode_value,
    escape_id,
    is_sealed_value,
    memory_owner,
    register_data_kind,
    reply_text,
    ttl_ms,
    unescape_id,
    validate_id,
    value_form,
)

__all__ = ["CacheNamespaces", "MemoryNamespaces"]

_SCAN = 500


def _scan(site: DataSite, key: str) -> Iterator[tuple[str, float]]:
    """(member, score) of a ZSET, walked with ZSCAN (each member present for the whole
    walk is seen; duplicates dropped)."""
    seen: set[str] = set()
    cursor = 0
    while True:
        (reply,) = site.send([("ZSCAN", key, cursor, "COUNT", _SCAN)])
        cursor, items = int(reply[0]), reply[1]
        pairs = (
            [(m, s) for m, s in items]
            if items and isinstance(items[0], (tuple, list))
            else list(zip(items[0::2], items[1::2], strict=True))
        )
        for member, score in pairs:
            text = reply_text(member) or ""
            if text not in seen:
                seen.add(text)
                yield text, float(reply_text(score) or 0)
        if cursor == 0:
            return


def _stale(last_write_ms: float) -> bool:
    """Whether an empty namespace's registry entry may go: its last write is over a
    minute old, so a write racing with the listing (which re-registers it) is not
    unregistered. The registries stay as small as the live namespaces."""
    return last_write_ms < time.time() * 1000 - 60_000


def _when(ms: float) -> datetime | None:
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc) if ms else None


def _jsonable(value: Any) -> Any:
    """A JSON-safe view (bytes as {"base64": ...})."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return {"base64": base64.b64encode(value).decode("ascii")}
    return value


def _ttl_seconds(ttl: Any, exported: Any, default: float | None) -> float | None:
    """The TTL to restore with (None: never): ``ttl`` given to the import, else what
    the item had left when exported (None: never), else ``default``."""
    if ttl is not UNSET:
        return None if ttl is None else float(ttl)
    if exported is None:
        return None
    if isinstance(exported, (int, float)) and not isinstance(exported, bool) and exported > 0:
        ttl_ms(exported)  # in range, checked before the line's first value is written
        return float(exported)
    return default


class MemoryNamespaces:
    name = "memory"
    what = "long-term memory namespaces"
    unit = "values"

    @staticmethod
    def namespace(item_id: str) -> tuple[str, ...]:
        """The namespace of an id (``user:u42``: escaped parts joined by ``:``)."""
        if not isinstance(item_id, str) or not item_id:
            raise ValueError("a memory namespace id is its parts, escaped, joined by ':'")
        return tuple(validate_id(unescape_id(p), "namespace part") for p in item_id.split(":"))

    @staticmethod
    def owner_of(namespace: tuple[str, ...]) -> str | None:
        return memory_owner(namespace)

    @staticmethod
    def _claimed(site: DataSite) -> set[tuple[str, ...]]:
        from chatkeep.redis import DATA_KINDS

        claimed: set[tuple[str, ...]] = set()
        for kind in list(DATA_KINDS.values()):
            claims = getattr(kind, "claims", None)
            if claims is not None:
                claimed |= set(claims(site))
        return claimed

    def items(self, site: DataSite, owner: str | None) -> Iterator[DataItem]:
        claimed = self._claimed(site)
        registry = KeySchema(site.config.prefix).memory_namespaces()
        with MemoryStore(site.config) as memory:
            for item_id, score in sorted(_scan(site, registry)):
                namespace = self.namespace(item_id)
                found_owner = self.owner_of(namespace)
                if namespace in claimed or (owner is not None and found_owner != owner):
                    continue
                keys = memory.list(namespace)
                if keys:
                    yield DataItem(item_id, found_owner, len(keys), updated_at=_when(score))
                elif _stale(score):
                    site.send([("ZREM", registry, item_id)])

    @staticmethod
    def _read(site: DataSite, namespace: tuple[str, ...]) -> list[tuple[str, Any, Any]]:
        """(key, value, seconds left) of each value of a namespace, TTLs left alone."""
        with MemoryStore(site.config) as memory:
            keys = memory.list(namespace)
            values = memory.mget(namespace, keys, refresh=False) if keys else []
            ttls = [memory.ttl(namespace, key) for key in keys]
        return list(zip(keys, values, ttls, strict=True))

    def show(self, site: DataSite, item_id: str) -> dict[str, Any] | None:
        namespace = self.namespace(item_id)
        found = self._read(site, namespace)
        if not found:
            return None
        return {
            "namespace": list(namespace),
            "owner": self.owner_of(namespace),
            "items": [
                {"key": k, "value": _jsonable(v), "expires_in_seconds": t} for k, v, t in found
            ],
        }

    def export(self, site: DataSite, item_id: str) -> dict[str, Any] | None:
        namespace = self.namespace(item_id)
        limit = site.config.max_message_bytes
        found = self._read(site, namespace)
        if not found:
            return None
        embeddings = self._embeddings(site, item_id, [key for key, _, _ in found])
        items = []
        for (key, value, ttl), embedding in zip(found, embeddings, strict=True):
            if ttl == 0.0:
                continue  # expired meanwhile
            data, tagged = encode_value(value, limit, f"value of key {key!r}")
            item = {"key": key, "value": json.loads(data), "tagged": tagged, "ttl": ttl}
            if embedding is not None:  # opened: an import seals it as its store says
                item["embedding"] = base64.b64encode(embedding).decode("ascii")
            items.append(item)
        return {"namespace": list(namespace), "items": items}

    @staticmethod
    def _embeddings(site: DataSite, ns: str, keys: list[str]) -> list[bytes | None]:
        """The search embeddings of values (MemoryStore(embed=...)), opened."""
        schema = KeySchema(site.config.prefix)
        replies = site.send([("HGET", schema.memory_value(ns, key), "e") for key in keys])
        sealing = site.config.sealing
        found: list[bytes | None] = []
        for key, reply in zip(keys, replies, strict=True):
            blob = None if reply is None else bytes(reply)
            if blob is not None and is_sealed_value(blob):
                blob = sealing.open_value(blob, VECTOR_FAMILY, ns, key)
            found.append(blob)
        return found

    def restore(
        self, site: DataSite, item_id: str, owner: str | None, data: dict[str, Any], ttl: Any
    ) -> int:
        namespace = self.namespace(item_id)
        items = data.get("items")
        if not isinstance(items, list) or not all(
            isinstance(i, dict) and isinstance(i.get("key"), str) and "value" in i for i in items
        ):
            raise ValueError("not a memory namespace export (items)")
        # Every value decoded and checked (JSON, size) before the first is written.
        limit = site.config.max_message_bytes
        planned = []
        for item in items:
            key = validate_id(item["key"], "key")
            value = decode_value(json.dumps(item["value"]), bool(item.get("tagged")))
            encode_value(value, limit, f"value of key {key!r}")
            embedding = self._embedding(item.get("embedding"))
            seconds = _ttl_seconds(ttl, item.get("ttl"), site.config.ttl)
            planned.append((key, value, seconds, embedding))
        schema, sealing = KeySchema(site.config.prefix), site.config.sealing
        with MemoryStore(site.config) as memory:
            for key, value, seconds, embedding in planned:
                memory.put(namespace, key, value, ttl=seconds)
                if embedding is not None:  # beside the value, as the store's put keeps it
                    stored = embedding
                    if sealing.keys is not None:
                        stored = sealing.seal_value(embedding, VECTOR_FAMILY, item_id, key)
                    site.send([("HSET", schema.memory_value(item_id, key), "e", stored)])
        return len(planned)

    @staticmethod
    def _embedding(text: object) -> bytes | None:
        """An exported embedding (base64 of a chatkeep.vectors blob), checked."""
        if text is None:
            return None
        try:
            blob = base64.b64decode(str(text), validate=True)
        except (ValueError, TypeError):
            raise ValueError("an embedding is not base64") from None
        if not vectors.vector_dims(blob):
            raise ValueError("an embedding is not a chatkeep.vectors blob")
        return blob

    def delete(self, site: DataSite, items: list[DataItem]) -> int:
        registry = KeySchema(site.config.prefix).memory_namespaces()
        deleted = 0
        with MemoryStore(site.config) as memory:
            for item in items:
                namespace = self.namespace(item.id)
                keys = memory.list(namespace)
                deleted += 1 if keys and memory.mdelete(namespace, keys) else 0
                site.send([("ZREM", registry, item.id)])
        return deleted


class CacheNamespaces:
    name = "cache"
    what = "result cache namespaces"
    unit = "entries"

    @staticmethod
    def _namespace(item_id: str) -> str:
        return validate_id(item_id, "cache namespace")

    def items(self, site: DataSite, owner: str | None) -> Iterator[DataItem]:
        if owner is not None:
            return  # cached results belong to no one
        keys = KeySchema(site.config.prefix)
        for escaped, score in sorted(_scan(site, keys.cache_namespaces())):
            namespace = unescape_id(escaped)
            (count,) = site.send([("ZCARD", keys.cache_index(namespace))])
            if int(count):
                yield DataItem(namespace, None, int(count), updated_at=_when(score))
            elif _stale(score):
                site.send([("ZREM", keys.cache_namespaces(), escaped)])

    def _entries(self, site: DataSite, namespace: str) -> list[tuple[str, bytes, float | None]]:
        """(digest, stored bytes, seconds left or None) of the live entries."""
        keys = KeySchema(site.config.prefix)
        (digests,) = site.send([("ZRANGE", keys.cache_index(namespace), 0, -1)])
        names = [reply_text(d) or "" for d in digests]
        commands: list[Any] = []
        for digest in names:
            entry = keys.cache_entry(namespace, digest)[0]
            commands += [("GET", entry), ("PTTL", entry)]
        replies = site.send(commands) if commands else []
        found = []
        for i, digest in enumerate(names):
            data, pttl = replies[2 * i], int(replies[2 * i + 1])
            if data is not None and pttl != -2:
                # Opened here (a store with compression or encryption seals its values):
                # flag byte + the value's JSON, as a plain cache stores it.
                data = bytes(data)
                form = value_form(data[:1] == b"1")
                data = data[:1] + site.config.sealing.open_value(
                    data[1:], "cache", namespace, digest, form
                )
                found.append((digest, data, None if pttl < 0 else pttl / 1000))
        return found

    def show(self, site: DataSite, item_id: str) -> dict[str, Any] | None:
        namespace = self._namespace(item_id)
        entries = self._entries(site, namespace)
        if not entries:
            return None
        return {
            "namespace": namespace,
            "entries": [
                {
                    "digest": digest,
                    "value": _jsonable(decode_value(data[1:], data[:1] == b"1")),
                    "expires_in_seconds": left,
                }
                for digest, data, left in entries
            ],
        }

    def export(self, site: DataSite, item_id: str) -> dict[str, Any] | None:
        namespace = self._namespace(item_id)
        entries = self._entries(site, namespace)
        if not entries:
            return None
        return {
            "entries": [
                {
                    "digest": digest,
                    "value": json.loads(data[1:]),
                    "tagged": data[:1] == b"1",
                    "ttl": left,
                }
                for digest, data, left in entries
            ]
        }

    def restore(
        self, site: DataSite, item_id: str, owner: str | None, data: dict[str, Any], ttl: Any
    ) -> int:
        namespace = self._namespace(item_id)
        entries = data.get("entries")
        if not isinstance(entries, list) or not all(
            isinstance(e, dict)
            and isinstance(e.get("digest"), str)
            and len(e["digest"]) == 64
            and all(c in "0123456789abcdef" for c in e["digest"])
            for e in entries
        ):
            raise ValueError("not a cache namespace export (entries)")
        keys = KeySchema(site.config.prefix)
        index = keys.cache_index(namespace)
        now = int(time.time() * 1000)
        commands: list[Any] = []
        latest: float | None = 0.0
        for entry in entries:
            value = json.dumps(
                entry.get("value"), ensure_ascii=False, separators=(",", ":")
            ).encode()
            if site.config.sealing.active:  # sealed as the cache itself would write it
                form = value_form(bool(entry.get("tagged")))
                value = site.config.sealing.seal_value(
                    value, "cache", namespace, entry["digest"], form
                )
            stored = (b"1" if entry.get("tagged") else b"0") + value
            seconds = _ttl_seconds(ttl, entry.get("ttl"), site.config.ttl)
            key = keys.cache_entry(namespace, entry["digest"])[0]
            if seconds is None:
                commands += [("SET", key, stored), ("ZADD", index, "inf", entry["digest"])]
                latest = None
            else:
                ms = max(round(seconds * 1000), 1)
                commands += [
                    ("SET", key, stored, "PX", ms),
                    ("ZADD", index, now + ms, entry["digest"]),
                ]
                if latest is not None:
                    latest = max(latest, now + ms)
        if not commands:
            return 0
        # the index lives as long as its longest-lived entry (as the cache keeps it)
        (left,) = site.send([("PTTL", index)])
        if latest is None or int(left) == -1:
            commands.append(("PERSIST", index))
        else:
            commands.append(("PEXPIREAT", index, int(max(latest, now + max(int(left), 0)))))
        commands.append(("ZADD", keys.cache_namespaces(), now, escape_id(namespace)))
        site.send(commands)
        return len(entries)

    def delete(self, site: DataSite, items: list[DataItem]) -> int:
        registry = KeySchema(site.config.prefix).cache_namespaces()
        deleted = 0
        for item in items:
            with ResultCache(site.config, namespace=self._namespace(item.id)) as cache:
                deleted += 1 if cache.clear() else 0
            site.send([("ZREM", registry, escape_id(item.id))])
        return deleted


register_data_kind(MemoryNamespaces())
register_data_kind(CacheNamespaces())
