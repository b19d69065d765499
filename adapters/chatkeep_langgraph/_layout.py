"""Checkpoint layout on plain Redis, and the policy shared by every backend (internal).

One thread is four keys under one hash tag (one Cluster slot, so each script is
atomic and one round trip)::

    <prefix>:lg:{<thread>}:i   ZSET  "<ns>:<checkpoint id>", score 0 (byte order = id order)
    <prefix>:lg:{<thread>}:c   HASH  same member -> "<blob refs>\\n<header json>\\n<checkpoint>"
    <prefix>:lg:{<thread>}:b   HASH  "<ns>:<channel>:<version>" -> "<type>\\n<bytes>"
    <prefix>:lg:{<thread>}:w   ZSET  "<ns>:<id>:<task>:<idx>\\n<header json>\\n<value>"

``<thread>``, ``<ns>``, channel names, versions and task ids are percent-encoded
(:func:`chatkeep.keys.escape_id`), so ``:`` and newlines only ever separate parts
and no id can reach another thread's keys. A channel value is stored once per
(channel, version): a checkpoint whose channel did not change refers to the blob
written before, it never writes it again.

Values are LangGraph's typed serialization (``JsonPlusSerializer.dumps_typed``:
msgpack, bytes, null) stored as raw bytes next to their type name; metadata is
JSON with chatkeep's policy (bytes base64-tagged). Pickle is refused both ways.

Backends (Redis twins, the in-memory one, the fallback mirror) all move the same
raw entries: ``(member, record, [blob or None, ...], [write member, ...])``.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_serializable_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from chatkeep import codec
from chatkeep.errors import InvalidArgumentError, SerializationError
from chatkeep.keys import KeySchema, escape_id, unescape_id, validate_id

__all__ = ["Entry", "MemoryCheckpoints", "Policy"]

Entry = tuple[bytes, bytes, list[bytes | None], list[bytes]]
"""One checkpoint as backends return it: member, record, blobs (record's ref order),
write members."""

RECORD_VERSION = 1
_B64 = "$b64"


def _b(text: str) -> bytes:
    return text.encode()


def _untag(obj: Any) -> Any:
    if isinstance(obj, dict):
        if len(obj) == 1 and isinstance(obj.get(_B64), str):
            return base64.b64decode(obj[_B64])
        return {key: _untag(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_untag(value) for value in obj]
    return obj


def upper(prefix: bytes) -> bytes:
    """The smallest bytes above every member that starts with ``prefix``."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


# -- operations (what the fallback journals and replays) ------------------------------------


@dataclass(frozen=True, slots=True)
class Page:
    """Newest-first checkpoints with ``lo <= member < hi`` (at most ``count``)."""

    thread: str
    keys: tuple[str, str, str, str]
    lo: bytes
    hi: bytes
    count: int
    kind = "page"
    is_write = False

    @property
    def session_id(self) -> str:
        return self.thread


@dataclass(frozen=True, slots=True)
class Put:
    thread: str
    keys: tuple[str, str, str, str]
    member: bytes
    record: bytes
    ns_prefix: bytes
    blobs: tuple[tuple[bytes, bytes], ...]
    kind = "put"
    is_write = True

    @property
    def session_id(self) -> str:
        return self.thread


@dataclass(frozen=True, slots=True)
class Writes:
    thread: str
    keys: tuple[str, str, str, str]
    items: tuple[tuple[bytes, bytes, bool], ...]  # (prefix, member, replace)
    kind = "writes"
    is_write = True

    @property
    def session_id(self) -> str:
        return self.thread


@dataclass(frozen=True, slots=True)
class Delete:
    thread: str
    keys: tuple[str, str, str, str]
    kind = "delete"
    is_write = True

    @property
    def session_id(self) -> str:
        return self.thread


@dataclass(frozen=True, slots=True)
class Prune:
    thread: str
    keys: tuple[str, str, str, str]
    keep: int
    kind = "prune"
    is_write = True

    @property
    def session_id(self) -> str:
        return self.thread


@dataclass(frozen=True, slots=True)
class Dump:
    thread: str
    keys: tuple[str, str, str, str]
    kind = "dump"
    is_write = False

    @property
    def session_id(self) -> str:
        return self.thread


@dataclass(frozen=True, slots=True)
class ThreadData:
    """Everything of one thread, as ``dump`` returns it and ``load`` merges it."""

    index: list[bytes] = field(default_factory=list)
    records: dict[bytes, bytes] = field(default_factory=dict)
    blobs: dict[bytes, bytes] = field(default_factory=dict)
    writes: list[bytes] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.index or self.writes)


@dataclass(frozen=True, slots=True)
class Load:
    thread: str
    keys: tuple[str, str, str, str]
    data: ThreadData
    kind = "load"
    is_write = True

    @property
    def session_id(self) -> str:
        return self.thread


Op = Page | Put | Writes | Delete | Prune | Dump | Load


# -- policy -------------------------------------------------------------------------------


class Policy:
    """Keys, encoding and decoding: everything but I/O, shared by every backend."""

    def __init__(
        self,
        *,
        prefix: str,
        serde: SerializerProtocol,
        ttl_ms: int,
        fixed: bool,
        keep_last: int,
    ) -> None:
        KeySchema(prefix)  # validates the prefix (ConfigurationError)
        self.prefix = prefix
        self.serde = serde
        self.ttl_ms = ttl_ms
        self.fixed = fixed
        self.keep_last = keep_last

    # keys --------------------------------------------------------------------------------

    @staticmethod
    def thread_id(value: object) -> str:
        if isinstance(value, (int, uuid.UUID)) and not isinstance(value, bool):
            value = str(value)  # ints and UUIDs are common thread ids
        return validate_id(value, "thread id")

    def keys(self, thread: str) -> tuple[str, str, str, str]:
        tag = f"{self.prefix}:lg:{{{escape_id(thread)}}}"
        return f"{tag}:i", f"{tag}:c", f"{tag}:b", f"{tag}:w"

    @staticmethod
    def _ns(ns: str) -> bytes:
        return _b(escape_id(ns)) if ns else b""

    def member(self, ns: str, checkpoint_id: str) -> bytes:
        return self._ns(ns) + b":" + _b(escape_id(checkpoint_id))

    def blob_field(self, ns: str, channel: str, version: object) -> bytes:
        return b":".join((self._ns(ns), _b(escape_id(channel)), _b(escape_id(str(version)))))

    # values ------------------------------------------------------------------------------

    def dumps(self, value: Any) -> tuple[bytes, bytes]:
        kind, data = self.serde.dumps_typed(value)
        if kind == "pickle":
            raise SerializationError(
                "the serializer produced pickle; chatkeep stores no pickle "
                "(use JsonPlusSerializer with pickle_fallback=False)"
            )
        return _b(kind), bytes(data)

    def loads(self, kind: bytes, data: bytes) -> Any:
        name = kind.decode()
        if name == "pickle":
            raise SerializationError("refusing to load a pickled value")
        return self.serde.loads_typed((name, data))

    # operations --------------------------------------------------------------------------

    def _config_parts(self, config: RunnableConfig) -> tuple[Any, str, str]:
        configurable = config.get("configurable") or {}
        if "thread_id" not in configurable:
            raise InvalidArgumentError("config['configurable'] needs a thread_id")
        original = configurable["thread_id"]
        return original, self.thread_id(original), str(configurable.get("checkpoint_ns") or "")

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[Put, RunnableConfig]:
        original, thread, ns = self._config_parts(config)
        parent = get_checkpoint_id(config)
        body: dict[str, Any] = dict(checkpoint)
        values: dict[str, Any] = body.pop("channel_values", None) or {}
        kind, payload = self.dumps(body)
        blobs = tuple(
            (self.blob_field(ns, channel, version), b"\n".join(self.dumps(values[channel])))
            for channel, version in new_versions.items()
            if channel in values
        )
        refs = b" ".join(
            self.blob_field(ns, channel, version)
            for channel, version in checkpoint["channel_versions"].items()
        )
        meta = get_serializable_checkpoint_metadata(config, metadata)
        header = codec.dumps({"v": RECORD_VERSION, "p": parent, "t": kind.decode(), "m": meta})
        record = b"\n".join((refs, header, payload))
        op = Put(
            thread,
            self.keys(thread),
            self.member(ns, checkpoint["id"]),
            record,
            self._ns(ns) + b":",
            blobs,
        )
        return op, {
            "configurable": {
                "thread_id": original,
                "checkpoint_ns": ns,
                "checkpoint_id": checkpoint["id"],
            }
        }

    def writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> Writes:
        _, thread, ns = self._config_parts(config)
        checkpoint_id = get_checkpoint_id(config)
        if not checkpoint_id:
            raise InvalidArgumentError("put_writes needs a config with a checkpoint_id")
        base = self.member(ns, checkpoint_id) + b":" + _b(escape_id(str(task_id))) + b":"
        items = []
        for idx, (channel, value) in enumerate(writes):
            slot = WRITES_IDX_MAP.get(channel, idx)
            prefix = base + str(slot).encode() + b"\n"
            kind, data = self.dumps(value)
            header = codec.dumps(
                {"k": str(task_id), "i": slot, "c": channel, "t": kind.decode(), "p": task_path}
            )
            items.append((prefix, prefix + header + b"\n" + data, slot < 0))
        return Writes(thread, self.keys(thread), tuple(items))

    def page(
        self,
        config: RunnableConfig,
        *,
        before: RunnableConfig | None = None,
        count: int,
        default_ns: str | None = "",
    ) -> Page:
        """One page of checkpoints, newest first: the config's checkpoint (if it names
        one), else its namespace (``default_ns`` when it names none; None = every
        namespace), below ``before``'s checkpoint id."""
        _, thread, _ = self._config_parts(config)
        configurable = config.get("configurable") or {}
        ns_given = configurable.get("checkpoint_ns", default_ns)
        checkpoint_id = get_checkpoint_id(config)
        before_id = get_checkpoint_id(before) if before else None
        if ns_given is None:
            return Page(thread, self.keys(thread), b"", b"\xff", count)
        ns = str(ns_given)
        prefix = self._ns(ns) + b":"
        lo, hi = prefix, upper(prefix)
        if checkpoint_id:
            lo = self.member(ns, checkpoint_id)
            hi = lo + b"\x00"
        if before_id:
            hi = min(hi, self.member(ns, before_id))
        return Page(thread, self.keys(thread), lo, hi, count)

    @staticmethod
    def keep(config: RunnableConfig, before: RunnableConfig | None, entry: Entry) -> bool:
        """Whether a listed entry matches the checkpoint id filters a page could not
        express (listing every namespace)."""
        checkpoint_id = unescape_id(entry[0].decode().partition(":")[2])
        wanted = get_checkpoint_id(config)
        if wanted and checkpoint_id != wanted:
            return False
        before_id = get_checkpoint_id(before) if before else None
        return not (before_id and checkpoint_id >= before_id)

    # decoding ------------------------------------------------------------------------------

    def decode(self, thread_id: Any, entry: Entry) -> CheckpointTuple:
        member, record, blob_values, write_members = entry
        ns_text, _, cid_text = member.decode().partition(":")
        ns = unescape_id(ns_text) if ns_text else ""
        checkpoint_id = unescape_id(cid_text)
        try:
            refs_line, header_raw, payload = record.split(b"\n", 2)
            header = codec.loads(header_raw)
            checkpoint: Checkpoint = self.loads(_b(header["t"]), payload)
        except (ValueError, KeyError, TypeError) as exc:
            raise SerializationError(
                f"stored checkpoint {checkpoint_id!r} cannot be decoded: {exc}"
            ) from None
        channels = {
            self.blob_field(ns, channel, version): channel
            for channel, version in checkpoint["channel_versions"].items()
        }
        values: dict[str, Any] = {}
        for ref, blob in zip(refs_line.split(), blob_values, strict=False):
            if blob is None or ref not in channels:
                continue
            kind, _, data = blob.partition(b"\n")
            if kind != b"empty":
                values[channels[ref]] = self.loads(kind, data)
        checkpoint["channel_values"] = values
        parent = header.get("p")
        ordered = []
        for raw in write_members:
            _, head, data = raw.split(b"\n", 2)
            w = codec.loads(head)
            ordered.append((writes_sort_key(w["p"], w["k"], w["i"]), w, data))
        ordered.sort(key=lambda item: item[0])
        pending: list[PendingWrite] = [
            (w["k"], w["c"], self.loads(_b(w["t"]), data)) for _, w, data in ordered
        ]
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": ns,
                    "checkpoint_id": checkpoint_id,
                }
            },
            checkpoint=checkpoint,
            metadata=_untag(header.get("m") or {}),
            parent_config=(
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": ns,
                        "checkpoint_id": parent,
                    }
                }
                if parent
                else None
            ),
            pending_writes=pending,
        )


# -- the in-memory backend (memory:// and the fallback mirror) --------------------------------


@dataclass
class _Thread:
    index: set[bytes] = field(default_factory=set)
    records: dict[bytes, bytes] = field(default_factory=dict)
    blobs: dict[bytes, bytes] = field(default_factory=dict)
    writes: dict[bytes, bytes] = field(default_factory=dict)  # prefix -> member
    expires: float | None = None


def _refs(record: bytes) -> list[bytes]:
    return record.partition(b"\n")[0].split()


def _write_prefix(member: bytes) -> bytes:
    return member[: member.index(b"\n") + 1]


class MemoryCheckpoints:
    """The Redis layout in process memory, same operations and raw entries.

    Used for ``memory://`` and as the fallback mirror (then bounded to the
    ``max_threads`` most recently used threads).
    """

    name = "memory"

    def __init__(self, *, ttl_ms: int, fixed: bool, keep_last: int, max_threads: int = 0) -> None:
        self._threads: OrderedDict[str, _Thread] = OrderedDict()
        self._ttl = ttl_ms / 1000
        self._fixed = fixed
        self._keep = keep_last
        self._max = max_threads
        self._lock = threading.RLock()

    def _get(self, op: Op, *, create: bool, write: bool) -> _Thread | None:
        key = op.keys[0]
        found = self._threads.get(key)
        now = time.monotonic()
        if found is not None and found.expires is not None and found.expires <= now:
            del self._threads[key]
            found = None
        if found is None:
            if not create:
                return None
            found = self._threads[key] = _Thread()
            if self._ttl:
                found.expires = now + self._ttl
        self._threads.move_to_end(key)
        if self._ttl and not self._fixed and (write or found.index):
            found.expires = now + self._ttl
        if self._max and len(self._threads) > self._max:
            self._threads.popitem(last=False)
        return found

    def threads(self) -> int:
        return len(self._threads)

    # reads ------------------------------------------------------------------------------

    def page(self, op: Page) -> list[Entry]:
        with self._lock:
            t = self._get(op, create=False, write=False)
            if t is None:
                return []
            found = sorted((m for m in t.index if op.lo <= m < op.hi), reverse=True)
            out: list[Entry] = []
            for member in found[: op.count]:
                record = t.records.get(member)
                if record is None:
                    continue
                start = member + b":"
                writes = sorted(w for p, w in t.writes.items() if p.startswith(start))
                out.append((member, record, [t.blobs.get(r) for r in _refs(record)], writes))
            return out

    def dump(self, op: Dump) -> ThreadData:
        with self._lock:
            t = self._get(op, create=False, write=False)
            if t is None:
                return ThreadData()
            return ThreadData(
                sorted(t.index), dict(t.records), dict(t.blobs), sorted(t.writes.values())
            )

    # writes -----------------------------------------------------------------------------

    def put(self, op: Put) -> int:
        with self._lock:
            t = self._get(op, create=True, write=True)
            assert t is not None
            t.index.add(op.member)
            t.records[op.member] = op.record
            t.blobs.update(op.blobs)
            return self._trim(t, op.ns_prefix, self._keep) if self._keep else 0

    def writes(self, op: Writes) -> int:
        with self._lock:
            t = self._get(op, create=True, write=True)
            assert t is not None
            added = 0
            for prefix, member, replace in op.items:
                if replace or prefix not in t.writes:
                    added += t.writes.get(prefix) != member
                    t.writes[prefix] = member
            return added

    def delete(self, op: Delete) -> int:
        with self._lock:
            return 1 if self._threads.pop(op.keys[0], None) is not None else 0

    def prune(self, op: Prune) -> int:
        with self._lock:
            t = self._get(op, create=False, write=False)
            if t is None:
                return 0
            prefixes = {m[: m.index(b":") + 1] for m in t.index}
            return sum(self._trim(t, p, op.keep) for p in prefixes)

    def load(self, op: Load) -> int:
        with self._lock:
            t = self._get(op, create=True, write=True)
            assert t is not None
            t.index.update(op.data.index)
            t.records.update(op.data.records)
            t.blobs.update(op.data.blobs)
            for member in op.data.writes:
                t.writes[_write_prefix(member)] = member
            return 1

    @staticmethod
    def _trim(t: _Thread, prefix: bytes, keep: int) -> int:
        hi = upper(prefix)
        members = sorted(m for m in t.index if prefix <= m < hi)
        drop, survivors = members[: max(len(members) - keep, 0)], members[len(members) - keep :]
        if not drop:
            return 0
        kept = {r for m in survivors if m in t.records for r in _refs(t.records[m])}
        for member in drop:
            record = t.records.pop(member, None)
            t.index.discard(member)
            start = member + b":"
            for p in [p for p in t.writes if p.startswith(start)]:
                del t.writes[p]
            for ref in _refs(record or b""):
                if ref not in kept:
                    t.blobs.pop(ref, None)
        return len(drop)

    # the fallback mirror ------------------------------------------------------------------

    def absorb(self, op: Op, result: Any) -> None:
        """Keep what the primary just did or returned (write-through mirror)."""
        with self._lock:
            if isinstance(op, Page):
                if not result:
                    return
                t = self._get(op, create=True, write=False)
                assert t is not None
                for member, record, blobs, writes in result:
                    t.index.add(member)
                    t.records[member] = record
                    for ref, blob in zip(_refs(record), blobs, strict=False):
                        if blob is not None:
                            t.blobs[ref] = blob
                    for w in writes:
                        t.writes[_write_prefix(w)] = w
            elif isinstance(op, Dump):
                if result:
                    self.load(Load(op.thread, op.keys, result))
            else:
                getattr(self, op.kind)(op)

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None
