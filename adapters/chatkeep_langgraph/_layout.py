"""Checkpoint layout on plain Redis, its operations and the policy (internal).

One thread is four keys under one hash tag (one Cluster slot, so each script is
atomic and one round trip)::

    <prefix>:lg:{<thread>}:i   ZSET  "<ns>:<checkpoint id>", score 0 (byte order = id order)
    <prefix>:lg:{<thread>}:c   HASH  same member -> "<blob refs>\\n<header json>\\n<checkpoint>"
    <prefix>:lg:{<thread>}:b   HASH  "<ns>:<channel>:<version>" -> "<type>\\n<bytes>"
    <prefix>:lg:{<thread>}:w   ZSET  "<ns>:<id>:<task>:<idx>\\n<header json>\\n<value>"

``<thread>``, ``<ns>``, channel names, versions and task ids are percent-encoded
(:func:`chatkeep.redis.escape_id`), so ``:`` and newlines only ever separate parts
and no id can reach another thread's keys. A channel value is stored once per
(channel, version): a checkpoint whose channel did not change refers to the blob
written before, it never writes it again.

Values are LangGraph's typed serialization (``JsonPlusSerializer.dumps_typed``:
msgpack, bytes, null) stored as raw bytes next to their type name; metadata is
JSON with chatkeep's policy (bytes base64-tagged). Pickle is refused both ways.

Here: the operations (what the circuit routes, journals and replays), the
:class:`Policy` (keys, encoding, decoding: everything but I/O) and
:class:`MemoryCheckpoints` (``memory://`` and the fallback's mirror). The Redis
family is in ``_redis``. Every backend moves the same raw entries:
``(member, record, [blob or None, ...], [write member, ...])``.
"""

from __future__ import annotations

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

from chatkeep import InvalidArgumentError, Sealing, SerializationError
from chatkeep.redis import KeySchema, decode_value, escape_id, unescape_id, validate_id
from chatkeep.redis import dumps as json_dumps
from chatkeep.redis import loads as json_loads

__all__ = ["Entry", "MemoryCheckpoints", "Op", "Policy", "ThreadData", "Write"]

Entry = tuple[bytes, bytes, list[bytes | None], list[bytes]]
"""One checkpoint as backends return it: member, record, blobs (record's ref order),
write members."""

RECORD_VERSION = 1


_SEALED = b"sealed+"  # the type name of a sealed value starts so (docs/security-at-rest.md)


def _b(text: str) -> bytes:
    return text.encode()


def upper(prefix: bytes) -> bytes:
    """The smallest bytes above every member that starts with ``prefix``."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


# -- operations (what the fallback journals and replays) ------------------------------------
# Reads (Page, Dump) are never journaled; every other operation is a write ordered by
# its thread. Keys are not part of an operation: the family names them
# (``KeySchema.checkpoints``), so a journaled write replays under its own prefix.


@dataclass(frozen=True, slots=True)
class Page:
    """Newest-first checkpoints with ``lo <= member < hi`` (at most ``count``)."""

    thread: str
    lo: bytes
    hi: bytes
    count: int


@dataclass(frozen=True, slots=True)
class Put:
    """One checkpoint, the channel values that changed, and ``keep`` (keep_last)."""

    thread: str
    member: bytes
    record: bytes
    ns_prefix: bytes
    blobs: tuple[tuple[bytes, bytes], ...]
    keep: int = 0
    run: str = ""  # the run id of the checkpoint's metadata ("" = none): delete_for_runs
    owner: str = ""  # the thread's owner (metadata user_id, else the saver's owner)


@dataclass(frozen=True, slots=True)
class Writes:
    thread: str
    items: tuple[tuple[bytes, bytes, bool], ...]  # (prefix, member, replace)


def record_header(record: bytes) -> dict[str, Any]:
    """The JSON header of a stored checkpoint record ({} if it has none, or one that
    cannot be decoded: deleting, listing, export and purge go on without its owner and
    run)."""
    parts = record.split(b"\n", 2)
    if len(parts) < 3:
        return {}
    try:
        header = decode_value(parts[1], True)
    except ValueError:  # chatkeep's SerializationError
        return {}
    return header if isinstance(header, dict) else {}


def index_entries(thread: str, data: ThreadData) -> tuple[set[str], dict[str, list[bytes]]]:
    """Where a thread is named outside its own keys, from its records: the owners whose
    index holds it, and its entries in the run index by run id."""
    escaped = escape_id(thread).encode()
    owners: set[str] = set()
    runs: dict[str, list[bytes]] = {}
    for member, record in data.records.items():
        meta = record_header(record).get("m", {})
        if not isinstance(meta, dict):
            continue
        if meta.get("run_id"):
            runs.setdefault(str(meta["run_id"]), []).append(escaped + b"\n" + member)
        if isinstance(meta.get("user_id"), str) and meta["user_id"]:
            owners.add(meta["user_id"])
    return owners, runs


@dataclass(frozen=True, slots=True)
class Delete:
    thread: str


@dataclass(frozen=True, slots=True)
class Prune:
    thread: str
    keep: int


@dataclass(frozen=True, slots=True)
class Dump:
    thread: str


@dataclass(frozen=True, slots=True)
class Runs:
    """Read: the checkpoints of some run ids, ``[[b"<thread>\\n<member>", ...], ...]``."""

    runs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Forget:
    """Delete some checkpoints of a thread with their writes and the blobs no other
    checkpoint of their namespace refers to."""

    thread: str
    members: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class DropRuns:
    """Delete the run index entries of some run ids."""

    runs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Threads:
    """Read: thread ids, most recently written first (``owner``'s only, if given)."""

    owner: str
    offset: int
    count: int


@dataclass(frozen=True, slots=True)
class Unindex:
    """Drop threads found gone (expired) from the thread index (and ``owner``'s)."""

    threads: tuple[str, ...]
    owner: str = ""


THREADS_KEY = "\x00threads"  # the journal orders Unindex by this key
RUNS_KEY = "\x00runs"  # the journal orders DropRuns by this key (threads never hold NUL)


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
    data: ThreadData


Op = (
    Page
    | Put
    | Writes
    | Delete
    | Prune
    | Dump
    | Load
    | Runs
    | Forget
    | DropRuns
    | Threads
    | Unindex
)
Write = Put | Writes | Delete | Prune | Load | Forget | DropRuns | Unindex
READS = (Page, Dump, Runs, Threads)


# -- policy -------------------------------------------------------------------------------


class Policy:
    """Keys, encoding and decoding: everything but I/O, shared by every backend."""

    def __init__(
        self,
        *,
        prefix: str,
        serde: SerializerProtocol,
        keep_last: int,
        owner: str = "",
        sealing: Sealing | None = None,
    ) -> None:
        self.schema = KeySchema(prefix)  # validates the prefix (ConfigurationError)
        self.sealing = sealing or Sealing()
        self.prefix = prefix
        self.owner = owner
        self.serde = serde
        self.keep_last = keep_last

    # keys --------------------------------------------------------------------------------

    @staticmethod
    def thread_id(value: object) -> str:
        if isinstance(value, (int, uuid.UUID)) and not isinstance(value, bool):
            value = str(value)  # ints and UUIDs are common thread ids
        return validate_id(value, "thread id")

    def keys(self, thread: str) -> tuple[str, str, str, str]:
        """(index, records, blobs, writes) keys of one thread."""
        return self.schema.checkpoints(thread)

    @staticmethod
    def _ns(ns: str) -> bytes:
        return _b(escape_id(ns)) if ns else b""

    def member(self, ns: str, checkpoint_id: str) -> bytes:
        return self._ns(ns) + b":" + _b(escape_id(checkpoint_id))

    def blob_field(self, ns: str, channel: str, version: object) -> bytes:
        return b":".join((self._ns(ns), _b(escape_id(channel)), _b(escape_id(str(version)))))

    # values ------------------------------------------------------------------------------

    def dumps(self, value: Any, thread: str) -> tuple[bytes, bytes]:
        """(type name, bytes) of a value of ``thread``: sealed (compressed and/or
        encrypted, bound to the thread) when the store's configuration says so, and
        then its type name says so (``sealed+<type>``)."""
        kind, data = self.serde.dumps_typed(value)
        if kind == "pickle":
            raise SerializationError(
                "the serializer produced pickle; chatkeep stores no pickle "
                "(use JsonPlusSerializer with pickle_fallback=False)"
            )
        raw = bytes(data)
        if self.sealing.applies(len(raw)):
            sealed = self.sealing.seal_value(raw, "langgraph", thread)
            if sealed is not raw:
                return _SEALED + _b(kind), sealed
        return _b(kind), raw

    def loads(self, kind: bytes, data: bytes, thread: str) -> Any:
        if kind.startswith(_SEALED):
            kind = kind[len(_SEALED) :]
            data = self.sealing.open_value(data, "langgraph", thread)
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
        kind, payload = self.dumps(body, thread)
        blobs = tuple(
            (self.blob_field(ns, channel, version), b"\n".join(self.dumps(values[channel], thread)))
            for channel, version in new_versions.items()
            if channel in values
        )
        refs = b" ".join(
            self.blob_field(ns, channel, version)
            for channel, version in checkpoint["channel_versions"].items()
        )
        meta: dict[str, Any] = dict(get_serializable_checkpoint_metadata(config, metadata))
        run = meta.get("run_id")
        run = str(run) if run is not None and 0 < len(str(run)) <= 512 else ""
        owner = meta.get("user_id")
        if owner is None and self.owner:  # the saver's owner, in the metadata too
            meta["user_id"] = owner = self.owner
        owner = str(owner) if owner is not None and 0 < len(str(owner)) <= 512 else ""
        header = json_dumps({"v": RECORD_VERSION, "p": parent, "t": kind.decode(), "m": meta})
        record = b"\n".join((refs, header, payload))
        op = Put(
            thread,
            self.member(ns, checkpoint["id"]),
            record,
            self._ns(ns) + b":",
            blobs,
            self.keep_last,
            run,
            owner,
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
            kind, data = self.dumps(value, thread)
            header = json_dumps(
                {"k": str(task_id), "i": slot, "c": channel, "t": kind.decode(), "p": task_path}
            )
            items.append((prefix, prefix + header + b"\n" + data, slot < 0))
        return Writes(thread, tuple(items))

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
            return Page(thread, b"", b"\xff", count)
        ns = str(ns_given)
        prefix = self._ns(ns) + b":"
        lo, hi = prefix, upper(prefix)
        if checkpoint_id:
            lo = self.member(ns, checkpoint_id)
            hi = lo + b"\x00"
        if before_id:
            hi = min(hi, self.member(ns, before_id))
        return Page(thread, lo, hi, count)

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
        thread = self.thread_id(thread_id)
        ns_text, _, cid_text = member.decode().partition(":")
        ns = unescape_id(ns_text) if ns_text else ""
        checkpoint_id = unescape_id(cid_text)
        try:
            refs_line, header_raw, payload = record.split(b"\n", 2)
            header = decode_value(header_raw, True)  # bytes in metadata are tagged
            checkpoint: Checkpoint = self.loads(_b(header["t"]), payload, thread)
            metadata: CheckpointMetadata = header.get("m") or CheckpointMetadata()
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
                values[channels[ref]] = self.loads(kind, data, thread)
        checkpoint["channel_values"] = values
        parent = header.get("p")
        ordered = []
        for raw in write_members:
            _, head, data = raw.split(b"\n", 2)
            w = json_loads(head)
            ordered.append((writes_sort_key(w["p"], w["k"], w["i"]), w, data))
        ordered.sort(key=lambda item: item[0])
        pending: list[PendingWrite] = [
            (w["k"], w["c"], self.loads(_b(w["t"]), data, thread)) for _, w, data in ordered
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
            metadata=metadata,
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


# -- in this process: the memory:// backend and the fallback's mirror --------------------------


@dataclass
class _Thread:
    index: set[bytes] = field(default_factory=set)
    records: dict[bytes, bytes] = field(default_factory=dict)
    blobs: dict[bytes, bytes] = field(default_factory=dict)
    writes: dict[bytes, bytes] = field(default_factory=dict)  # prefix -> member
    expires: float | None = None
    bytes: int = 0


def _refs(record: bytes) -> list[bytes]:
    return record.partition(b"\n")[0].split()


def _write_prefix(member: bytes) -> bytes:
    return member[: member.index(b"\n") + 1]


class MemoryCheckpoints:
    """The Redis layout in process memory: the same operations, the same raw entries.

    Two uses, one class:

    * the ``memory://`` backend (:meth:`do`): every thread for the life of the process;
    * the mirror of a Redis family in the fallback (bounded to the ``max_threads``
      most recently used threads and about ``max_bytes`` bytes): it learns from what
      Redis did (:meth:`absorb`) and, while Redis is unreachable, carries out calls
      (:meth:`serve`), handing every write back to be journaled as it is (each one is
      idempotent in Redis: a replay lands once).

    Thread-safe: one lock guards all state; no I/O happens here.
    """

    def __init__(
        self,
        *,
        ttl_ms: int,
        fixed: bool,
        max_threads: int | None = None,
        max_bytes: int | None = None,
        refresh_on_read: bool = True,
    ) -> None:
        self._threads: OrderedDict[str, _Thread] = OrderedDict()
        self._runs: dict[str, set[bytes]] = {}  # run id -> b"<thread>\n<member>"
        self._index: dict[str, dict[str, int]] = {}  # owner ("" = all) -> thread -> ms
        self._refresh_on_read = refresh_on_read
        self._ttl = ttl_ms / 1000
        self._fixed = fixed
        self._max = max_threads
        self._max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.RLock()

    # -- helpers (call with the lock held) -------------------------------------------------

    def _get(self, thread: str, *, create: bool, write: bool) -> _Thread | None:
        found = self._threads.get(thread)
        now = time.monotonic()
        if found is not None and found.expires is not None and found.expires <= now:
            self._forget(thread)
            found = None
        if found is None:
            if not create:
                return None
            found = self._threads[thread] = _Thread()
            if self._ttl:
                found.expires = now + self._ttl
        self._threads.move_to_end(thread)
        if self._ttl and not self._fixed and (write or (found.index and self._refresh_on_read)):
            found.expires = now + self._ttl
        return found

    def _forget(self, thread: str) -> bool:
        gone = self._threads.pop(thread, None)
        if gone is not None:
            self._bytes -= gone.bytes
        return gone is not None

    def _bound(self, thread: str) -> None:
        """Evict the least recently used threads (never ``thread``) beyond the bounds."""
        while len(self._threads) > 1 and (
            (self._max is not None and len(self._threads) > self._max)
            or (self._max_bytes is not None and self._bytes > self._max_bytes)
        ):
            oldest = next(iter(self._threads))
            if oldest == thread:
                self._threads.move_to_end(thread)
                continue
            self._forget(oldest)
        if self._max == 0:
            self._forget(thread)

    def _set(self, t: _Thread, table: dict[bytes, bytes], key: bytes, value: bytes) -> None:
        old = table.get(key)
        table[key] = value
        change = len(value) - (len(old) if old is not None else -len(key))
        t.bytes += change
        self._bytes += change

    def _drop(self, t: _Thread, table: dict[bytes, bytes], key: bytes) -> bytes | None:
        old = table.pop(key, None)
        if old is not None:
            t.bytes -= len(key) + len(old)
            self._bytes -= len(key) + len(old)
        return old

    # -- operations ------------------------------------------------------------------------

    def do(self, op: Op) -> Any:
        """Carry out ``op`` here (the ``memory://`` backend)."""
        with self._lock:
            if isinstance(op, Page):
                return self._page(op)
            if isinstance(op, Dump):
                return self._dump(op)
            if isinstance(op, Delete):
                owners, runs = index_entries(op.thread, self._dump(Dump(op.thread)))
                for owner in {"", *owners}:
                    self._index.get(owner, {}).pop(op.thread, None)
                for run, entries in runs.items():
                    kept = self._runs.get(run, set()) - set(entries)
                    if kept:
                        self._runs[run] = kept
                    else:
                        self._runs.pop(run, None)
                return 1 if self._forget(op.thread) else 0
            if isinstance(op, Threads):
                found = self._index.get(op.owner, {})
                ordered = sorted(found, key=lambda t: (found[t], t), reverse=True)
                return ordered[op.offset : op.offset + op.count]
            if isinstance(op, Unindex):
                for owner in {"", op.owner}:
                    for thread in op.threads:
                        self._index.get(owner, {}).pop(thread, None)
                return len(op.threads)
            if isinstance(op, Runs):
                return [sorted(self._runs.get(run, ())) for run in op.runs]
            if isinstance(op, DropRuns):
                return sum(self._runs.pop(run, None) is not None for run in op.runs)
            result = self._write(op)
            self._bound(op.thread)
            return result

    def _write(self, op: Put | Writes | Prune | Load | Forget) -> int:
        if isinstance(op, Forget):
            t = self._get(op.thread, create=False, write=False)
            return 0 if t is None else self._remove(t, set(op.members))
        if isinstance(op, Prune):
            t = self._get(op.thread, create=False, write=False)
            if t is None:
                return 0
            prefixes = {m[: m.index(b":") + 1] for m in t.index}
            return sum(self._trim(t, p, op.keep) for p in prefixes)
        t = self._get(op.thread, create=True, write=True)
        assert t is not None
        if isinstance(op, Put):
            t.index.add(op.member)
            self._set(t, t.records, op.member, op.record)
            for name, value in op.blobs:
                self._set(t, t.blobs, name, value)
            now = int(time.time() * 1000)
            for owner in {"", op.owner}:
                self._index.setdefault(owner, {})[op.thread] = now
            if op.run:
                self._runs.setdefault(op.run, set()).add(
                    _b(escape_id(op.thread)) + b"\n" + op.member
                )
            return self._trim(t, op.ns_prefix, op.keep) if op.keep else 0
        if isinstance(op, Writes):
            added = 0
            for prefix, member, replace in op.items:
                if replace or prefix not in t.writes:
                    added += t.writes.get(prefix) != member
                    self._set(t, t.writes, prefix, member)
            return added
        assert isinstance(op, Load)
        self._merge(t, op.data)
        return 1

    def _page(self, op: Page) -> list[Entry]:
        t = self._get(op.thread, create=False, write=False)
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

    def _dump(self, op: Dump) -> ThreadData:
        t = self._get(op.thread, create=False, write=False)
        if t is None:
            return ThreadData()
        return ThreadData(
            sorted(t.index), dict(t.records), dict(t.blobs), sorted(t.writes.values())
        )

    def _merge(self, t: _Thread, data: ThreadData) -> None:
        t.index.update(data.index)
        for name, value in data.records.items():
            self._set(t, t.records, name, value)
        for name, value in data.blobs.items():
            self._set(t, t.blobs, name, value)
        for member in data.writes:
            self._set(t, t.writes, _write_prefix(member), member)

    def _remove(self, t: _Thread, members: set[bytes]) -> int:
        """Drop ``members`` (checkpoints), their writes and the blobs no surviving
        checkpoint of their namespace refers to."""
        refs: dict[bytes, set[bytes]] = {}
        dropped = 0
        for member in members & t.index:
            t.index.discard(member)
            dropped += 1
            record = self._drop(t, t.records, member)
            start = member + b":"
            for p in [p for p in t.writes if p.startswith(start)]:
                self._drop(t, t.writes, p)
            prefix = member[: member.index(b":") + 1]
            refs.setdefault(prefix, set()).update(_refs(record or b""))
        for prefix, gone in refs.items():
            hi = upper(prefix)
            for member in t.index:
                if prefix <= member < hi and member in t.records:
                    gone.difference_update(_refs(t.records[member]))
            for ref in gone:
                self._drop(t, t.blobs, ref)
        return dropped

    def _trim(self, t: _Thread, prefix: bytes, keep: int) -> int:
        hi = upper(prefix)
        members = sorted(m for m in t.index if prefix <= m < hi)
        drop, survivors = members[: max(len(members) - keep, 0)], members[len(members) - keep :]
        if not drop:
            return 0
        kept = {r for m in survivors if m in t.records for r in _refs(t.records[m])}
        for member in drop:
            record = self._drop(t, t.records, member)
            t.index.discard(member)
            start = member + b":"
            for p in [p for p in t.writes if p.startswith(start)]:
                self._drop(t, t.writes, p)
            for ref in _refs(record or b""):
                if ref not in kept:
                    self._drop(t, t.blobs, ref)
        return len(drop)

    # -- the fallback's mirror (chatkeep.redis.Mirror) ---------------------------------------

    def serve(self, op: Op) -> tuple[Any, Write | None]:
        """Carry out ``op`` while Redis is unreachable: its result, and the write to
        journal (every write, as it is; None for a read)."""
        result = self.do(op)
        return result, (None if isinstance(op, READS) else op)

    def absorb(self, op: Op, result: Any) -> None:
        """Keep what Redis just did or returned (write-through)."""
        with self._lock:
            if isinstance(op, Page):
                if not result:
                    return
                t = self._get(op.thread, create=True, write=False)
                assert t is not None
                for member, record, blobs, writes in result:
                    t.index.add(member)
                    self._set(t, t.records, member, record)
                    for ref, blob in zip(_refs(record), blobs, strict=False):
                        if blob is not None:
                            self._set(t, t.blobs, ref, blob)
                    for w in writes:
                        self._set(t, t.writes, _write_prefix(w), w)
                self._bound(op.thread)
            elif isinstance(op, Dump):
                if result:
                    self.do(Load(op.thread, result))
            elif not isinstance(op, (Runs, Threads)):
                self.do(op)
