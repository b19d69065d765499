"""What the ``chatkeep`` command does, without the command line (no click, no rich).

:class:`Admin` wraps a :class:`~chatkeep.ConversationStore` made with
``fallback="raise"`` (an administrator must hear that Redis is unreachable, not be
served from an empty in-memory fallback) and adds read-only, paged access to the raw
records: administrative reads never refresh a sliding TTL, and export streams each
session in pages instead of loading it.

Sessions are found through the session index (``<prefix>:idx``) and the owner
indexes, walked with ``ZSCAN`` (cursor-based: every member present for the whole walk
is seen, duplicates are dropped); never ``KEYS`` or a keyspace ``SCAN``.

Only ``chatkeep`` and ``chatkeep.redis`` are used: the administrative round trips go
through the store's :class:`~chatkeep.redis.Connection` (errors translated there, an
unreachable Redis raised by :func:`~chatkeep.redis.direct`), and the commands the
command sends itself are declared in :data:`CLI`, so that
:func:`chatkeep.redis.acl_rules` grants them.
"""

from __future__ import annotations

import hashlib
import json
import random
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import IO, Any, TypeVar

# chatkeep imports every core feature (conversations, memory, the cache, locks, live
# updates): acl_rules(), which imports this module, covers them all.
from chatkeep import (
    RECORD_VERSION,
    UNSET,
    ChatkeepError,
    ConfigurationError,
    ConversationStore,
    FallbackWarning,
    InvalidSessionId,
    Message,
    MessageTooLargeError,
    SerializationError,
    SessionInfo,
    SessionOwnershipError,
    StoreConfig,
    decode_record,
    encode_record,
)
from chatkeep.redis import (
    DATA_KINDS,
    OWNED_DATA,
    PART_MARK,
    VECTOR_FAMILY,
    Closing,
    Command,
    Connection,
    DataItem,
    DataKind,
    Feature,
    Flow,
    KeySchema,
    OwnedData,
    PendingWrites,
    check,
    direct,
    is_sealed,
    is_sealed_value,
    load_features,
    loads,
    pending_writes,
    record_key_id,
    reply_text,
    run_script,
    seal_record,
    session_part,
    unescape_id,
    validate_id,
    value_form,
)

from . import kinds as _kinds

__all__ = [
    "CLI",
    "EXPORT_VERSION",
    "Admin",
    "DataLine",
    "ExportResult",
    "ImportResult",
    "LineError",
    "PurgeResult",
    "RekeyResult",
    "ReplayResult",
    "parse_line",
    "replay_journal",
]

CLI = Feature(
    "cli",
    package="chatkeep.cli",
    scripts=("rekey", "rekey_value"),
    commands=(
        "PING", "INFO",  # doctor
        "ZSCAN", "HMGET", "LLEN", "PTTL",  # walking the session index, session metadata
        "LRANGE",  # show, export, import (ids already there)
        "ZCARD", "DEL",  # purge drops an emptied owner index; stats counts the index
        "MEMORY|USAGE",  # stats
        "ZRANGE", "ZREM", "GET", "SET", "ZADD", "PERSIST", "PEXPIREAT",  # cache kind
        "PEXPIRE",  # LangGraph threads: run index entries imported
    ),
)  # fmt: skip
"""What the ``chatkeep`` command sends itself (its writes go through the store):
:func:`chatkeep.redis.acl_rules` includes it, so a user made from those rules can run
every command."""

EXPORT_VERSION = 1
"""Version of the JSONL export format (the first line's ``chatkeep_export``)."""

PAGE = 1000  # records per LRANGE when streaming a session
SCAN_COUNT = 500  # index members per ZSCAN step / sessions per metadata round trip

T = TypeVar("T")


class LineError(ValueError):
    """One line of an import file is not valid; the message says why."""


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _loads(data: bytes | str) -> Any:
    """JSON, or ValueError."""
    return json.loads(data)


def _ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, tz=timezone.utc)


def _members(reply: Any) -> tuple[int, list[Any]]:
    """(next cursor, members) of a ``ZSCAN`` reply: raw ``[cursor, [m, s, ...]]``, or
    ``(cursor, [(m, s), ...])`` when routed through redis-py (a Cluster)."""
    cursor, items = reply
    if items and isinstance(items[0], (tuple, list)):
        return int(cursor), [member for member, _ in items]
    return int(cursor), list(items[::2])


@dataclass
class RekeyResult:
    key_id: str = ""
    """The key every record rewritten is now encrypted with."""
    sessions: int = 0
    """Sessions looked at."""
    rewritten: int = 0
    """Records re-encrypted under the current key (plain ones encrypted)."""
    values: int = 0
    """Memory and cache values re-encrypted under the current key."""
    current: int = 0
    """Records and values already under the current key (left as they are)."""
    unreadable: int = 0
    """Records and values that could not be opened (a key not given, failed
    authentication): left as they are."""
    changed: int = 0
    """Records and values changed by a writer between the read and the rewrite: left;
    run again."""
    cursor: int = 0
    """Where a later run continues (``--cursor``); 0 when the whole index was walked."""


@dataclass
class ExportResult:
    sessions: int = 0
    messages: int = 0
    skipped_records: int = 0
    """Stored records that could not be decoded (left out of the file)."""
    missing: list[str] = field(default_factory=list)
    """Sessions asked for with ``--session`` that do not exist."""
    skipped_contexts: int = 0
    """Session contexts left out because JSON cannot hold them (bytes values)."""
    data: dict[str, int] = field(default_factory=dict)
    """Items of other kinds written, by kind (LangGraph threads...)."""


@dataclass
class ImportResult:
    messages: int = 0
    """Messages written."""
    already_present: int = 0
    """Messages skipped because the session already holds a message with that id."""
    sessions: int = 0
    """Sessions written to."""
    bad_lines: list[tuple[int, str]] = field(default_factory=list)
    """(line number, reason) of every line that was not imported."""
    complete: bool = False
    """True when the file ended with its trailer (it was not cut short)."""
    data: dict[str, int] = field(default_factory=dict)
    """Items of other kinds restored, by kind (LangGraph threads...)."""


@dataclass
class PurgeResult:
    sessions: int = 0
    messages: int = 0
    appeared: int = 0
    """Sessions of the owner that were created while the purge ran (not removed)."""


class Admin(Closing):
    """Administrative access to one prefix of one Redis, through the store's
    connection (its round trips translate every driver error, as the store's do)."""

    def __init__(self, config: StoreConfig) -> None:
        if config.scheme == "memory":
            raise ConfigurationError(
                "the chatkeep command needs a Redis URL (memory:// lives only inside one process)"
            )
        # Administrative scans move more data than an app's calls: allow for it.
        self.config = config.replace(
            fallback="raise",
            connect_timeout=max(config.connect_timeout, 2.0),
            socket_timeout=max(config.socket_timeout, 10.0),
        )
        self.store = ConversationStore(self.config)
        self.keys = KeySchema(self.config.prefix)

    @property
    def connection(self) -> Connection:
        """The store's connection to Redis (its clients: ``connection.client``)."""
        connection = self.store.connection
        assert connection is not None  # memory:// was refused above
        return connection

    def run(self, flow: Flow[T]) -> T:
        """Drive ``flow`` on Redis: an unreachable Redis raises
        :class:`chatkeep.BackendUnavailableError`, a refusal a chatkeep error."""
        return self.connection.run(direct(self.connection, flow))

    def send(self, commands: list[Command], *, checked: bool = True) -> list[Any]:
        """One round trip; error replies raised (``checked``) or left in place."""

        def flow() -> Flow[list[Any]]:
            replies: list[Any] = yield commands
            if checked:
                check(replies)
            return replies

        return self.run(flow())

    def close(self) -> None:
        self.store.close()

    # -- sessions -------------------------------------------------------------------------

    def session_ids(self, owner: str | None = None) -> Iterator[str]:
        """Every session id in the index (or an owner's index), each once, unordered.
        Entries of expired sessions may be included; :meth:`infos` drops them."""
        key = self.keys.index if owner is None else self.keys.owner_index(owner)
        seen: set[bytes] = set()  # 16-byte digests: memory grows with sessions, not messages
        cursor = 0
        while True:
            (reply,) = self.send([("ZSCAN", key, cursor, "COUNT", SCAN_COUNT)])
            cursor, members = _members(reply)
            for member in members:
                sid = reply_text(member) or ""
                digest = hashlib.blake2b(sid.encode(), digest_size=16).digest()
                if digest not in seen:
                    seen.add(digest)
                    yield sid
            if cursor == 0:
                return

    def infos(self, sids: Iterable[str]) -> Iterator[SessionInfo]:
        """:class:`SessionInfo` of the sessions that exist, a page per round trip."""
        for info, _ in self.rows(sids):
            yield info

    def rows(self, sids: Iterable[str]) -> Iterator[tuple[SessionInfo, int | None]]:
        """(info, the TTL in ms stored with the session when it was given per session)
        of the sessions that exist, a page per round trip."""
        page: list[str] = []
        for sid in sids:
            page.append(sid)
            if len(page) >= SCAN_COUNT:
                yield from self._info_page(page)
                page = []
        if page:
            yield from self._info_page(page)

    def _info_page(self, sids: list[str]) -> list[tuple[SessionInfo, int | None]]:
        commands: list[Command] = []
        for sid in sids:
            messages, meta = self.keys.session(sid)
            commands += [("HMGET", meta, "c", "u", "o", "t"), ("LLEN", messages), ("PTTL", meta)]
        replies = self.send(commands)
        now = datetime.now(timezone.utc)
        found = []
        for i, sid in enumerate(sids):
            (created, updated, owner, ttl), length, pttl = replies[3 * i : 3 * i + 3]
            try:
                created_at = _ms(int(created))
                updated_at = _ms(int(updated)) if updated is not None else None
                stored_ttl = int(ttl) if ttl is not None else None
            except (TypeError, ValueError):
                continue  # gone meanwhile, or a hash that is not a session's
            info = SessionInfo(
                id=sid,
                owner=reply_text(owner),
                message_count=int(length),
                created_at=created_at,
                updated_at=updated_at,
                expires_at=now + timedelta(milliseconds=int(pttl)) if int(pttl) >= 0 else None,
            )
            found.append((info, stored_ttl))
        return found

    def info(self, session_id: str) -> SessionInfo | None:
        """Read-only, like :meth:`ConversationStore.info` (no TTL refresh)."""
        return self.store.info(session_id)

    # -- raw records (read-only: a sliding TTL is not refreshed) --------------------------

    def records(self, session_id: str) -> Iterator[bytes]:
        """The session's stored records, oldest first, read in pages."""
        messages_key, _ = self.keys.session(validate_id(session_id))
        start = 0
        while True:
            (page,) = self.send([("LRANGE", messages_key, start, start + PAGE - 1)])
            yield from page
            if len(page) < PAGE:
                return
            start += PAGE

    def tail(self, session_id: str, last: int | None) -> tuple[list[Message], int]:
        """The newest ``last`` messages (all if None) and how many records were unreadable."""
        messages_key, _ = self.keys.session(validate_id(session_id))
        if last is None:
            raws: Iterable[bytes] = self.records(session_id)
        elif last > 0:
            (raws,) = self.send([("LRANGE", messages_key, -last, -1)])
        else:
            raws = []
        messages, bad = [], 0
        sealing = self.config.sealing
        for raw in raws:
            try:
                messages.append(decode_record(raw, sealing, session_id))
            except SerializationError:
                bad += 1
        return messages, bad

    # -- rekey ----------------------------------------------------------------------------

    def rekey(
        self,
        *,
        cursor: int = 0,
        progress: Callable[[RekeyResult], None] | None = None,
    ) -> RekeyResult:
        """Re-encrypt every record of the prefix that is not under the current (first)
        key of ``encryption_keys``: records under older keys and plain ones. Walks the
        session index with ``ZSCAN`` from ``cursor``; ``progress`` gets the result so
        far after each session (its ``cursor`` resumes the walk). Each rewrite is one
        script call that replaces a record only if it is still what was read, so
        concurrent writers lose nothing; running it again finishes what it left."""
        sealing = self.config.sealing
        if sealing.keys is None:
            raise ConfigurationError(
                "rekey needs encryption keys: set CHATKEEP_ENCRYPTION_KEYS "
                "('new:<base64>,old:<base64>', the new key first)"
            )
        result = RekeyResult(key_id=sealing.keys.writer()[0], cursor=cursor)
        while True:
            (reply,) = self.send([("ZSCAN", self.keys.index, result.cursor, "COUNT", 100)])
            next_cursor, members = _members(reply)
            for member in dict.fromkeys(reply_text(m) or "" for m in members):
                self._rekey_session(member, result)
                result.sessions += 1
                if progress is not None:
                    progress(result)
            result.cursor = next_cursor
            if progress is not None:
                progress(result)
            if next_cursor == 0:
                break
        self._rekey_values(result, progress)
        return result

    def _rekey_values(
        self, result: RekeyResult, progress: Callable[[RekeyResult], None] | None
    ) -> None:
        """Memory values (and their embeddings) and cache values: each namespace from
        the registry its store keeps, then the namespace's own index; never a keyspace
        SCAN (the least-privilege ACL user has none, and SCAN would show other
        prefixes' key names). A run again finds what changed meanwhile."""
        keys = self.keys
        for ns, _ in _kinds._scan(self, keys.memory_namespaces()):
            (members,) = self.send([("ZRANGE", keys.memory_index(ns), 0, -1)])
            names = [reply_text(member) or "" for member in members]
            reads = [("HMGET", keys.memory_value(ns, n), "d", "e", "b") for n in names]
            found = self.send(reads) if reads else []
            for name, (stored, vector, tagged) in zip(names, found, strict=True):
                key = keys.memory_value(ns, name)
                if stored is not None:
                    form = value_form(reply_text(tagged) == "1")
                    at: tuple[str, ...] = ("memory", ns, name, form)
                    self._rekey_value(key, "d", at, stored=stored, body=stored, result=result)
                if vector is not None:  # plain ones too: embeddings tell of the text
                    at = (VECTOR_FAMILY, ns, name)
                    self._rekey_value(key, "e", at, stored=vector, body=vector, result=result)
                if progress is not None:
                    progress(result)
        for escaped, _ in _kinds._scan(self, keys.cache_namespaces()):
            namespace = unescape_id(escaped)
            (digests,) = self.send([("ZRANGE", keys.cache_index(namespace), 0, -1)])
            entries = [keys.cache_entry(namespace, reply_text(d) or "")[0] for d in digests]
            found = self.send([("GET", key) for key in entries]) if entries else []
            for raw_digest, key, stored in zip(digests, entries, found, strict=True):
                digest = reply_text(raw_digest) or ""
                if stored is not None:  # a flag byte, then the value
                    where = ("cache", namespace, digest, value_form(stored[:1] == b"1"))
                    self._rekey_value(
                        key, "s", where, stored=stored, body=stored[1:], result=result
                    )
                    if progress is not None:
                        progress(result)

    def _rekey_value(
        self,
        key: str,
        kind: str,
        where: tuple[str, ...],
        *,
        stored: bytes,
        body: bytes,
        result: RekeyResult,
    ) -> None:
        """Re-encrypt one stored value: ``kind`` is the hash field (``d`` a memory value,
        ``e`` its embeddings) or ``s`` (a cache entry, a flag byte before ``body``)."""
        sealing = self.config.sealing
        if sealing.value_key_id(body) == result.key_id:
            result.current += 1
            return
        family, *parts = where
        try:
            # A plain embedding has no envelope, and its first byte may be NUL (a
            # sealed value's mark): only one with the whole mark is opened.
            if kind == "e" and not is_sealed_value(body):
                opened = body
            else:
                opened = sealing.open_value(body, family, *parts)
            sealed = sealing.seal_value(opened, family, *parts)
        except (SerializationError, ConfigurationError):
            result.unreadable += 1
            return
        new = stored[:1] + sealed if kind == "s" else sealed
        replies = self.run(
            run_script(
                CLI["rekey_value"], [key], [kind, stored, new], cluster=self.connection.cluster
            )
        )
        if int(replies[0]):
            result.values += 1
        else:
            result.changed += 1

    def _rekey_session(self, session_id: str, result: RekeyResult) -> None:
        sealing = self.config.sealing
        messages_key, _ = self.keys.session(session_id)
        start = 0
        # Each page is read with the last record of the one before: a writer that
        # trims, pops or inserts between two pages moves records past the walk by
        # index, so when that record is not where it was the walk starts over
        # (records already under the current key are only read again).
        anchor: tuple[Any, ...] = ()
        while True:
            first = start - 1 if anchor else start
            (page,) = self.send([("LRANGE", messages_key, first, start + PAGE - 1)])
            if anchor:
                if not page or page[0] not in anchor:
                    start, anchor = 0, ()
                    continue
                page = page[1:]
            changes: list[Any] = []
            for at, raw in enumerate(page, start):
                if record_key_id(raw) == result.key_id:
                    result.current += 1
                    continue
                try:
                    message = decode_record(raw, sealing, session_id)
                    tokens = loads(raw).get("tk")
                    if type(tokens) is not int:
                        # Written before counts: the scripts counted a quarter of its
                        # length; kept as its count, so the session's totals stay exact.
                        tokens = (len(raw) + 3) // 4
                    plain = encode_record(message, tokens)
                    changes += [at, raw, seal_record(plain, sealing, session_id)]
                except (SerializationError, ConfigurationError):
                    result.unreadable += 1
            if changes:
                replies = self.run(
                    run_script(
                        CLI["rekey"],
                        [messages_key],
                        changes,
                        session_id=session_id,
                        cluster=self.connection.cluster,
                    )
                )
                done = int(replies[0])
                result.rewritten += done
                result.changed += len(changes) // 3 - done
            if len(page) < PAGE:
                return
            last = page[-1]
            anchor = (last, changes[-1]) if changes and changes[-3] == start + PAGE - 1 else (last,)
            start += PAGE

    # -- export ---------------------------------------------------------------------------

    def export(
        self,
        out: IO[bytes],
        *,
        owner: str | None = None,
        sessions: list[str] | None = None,
        kinds: list[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ExportResult:
        """Write the JSONL export (see docs/cli.md) to ``out``, streaming.

        ``kinds`` names what goes in: ``"conversations"`` and registered kinds of data
        (:meth:`kinds`); None: everything (only conversations when ``sessions`` names
        some). Items of other kinds are one line each:
        ``{"kind": ..., "id": ..., "owner": ..., "data": {...}}``.
        ``progress`` is called with the number of messages written after each page.
        Sealed records (compressed or encrypted) are written opened, as plain records:
        the file holds the text, and an import seals them as its configuration says.
        """
        if kinds is None:
            kinds = ["conversations"] if sessions is not None else ["conversations", *self.kinds()]
        others = [self.kind(name) for name in kinds if name != "conversations"]
        result = ExportResult()
        header = {
            "chatkeep_export": EXPORT_VERSION,
            "record_version": RECORD_VERSION,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "prefix": self.config.prefix,
        }
        out.write(_json(header) + b"\n")
        if "conversations" in kinds:
            self._export_sessions(out, result, owner, sessions, progress)
        for kind in others:
            for item in kind.items(self, owner):
                data = kind.export(self, item.id)
                if data is None:
                    continue  # gone meanwhile
                line = {"kind": kind.name, "id": item.id, "owner": item.owner, "data": data}
                out.write(_json(line) + b"\n")
                result.data[kind.name] = result.data.get(kind.name, 0) + 1
        end: dict[str, Any] = {"sessions": result.sessions, "messages": result.messages}
        if result.data:
            end["data"] = result.data
        out.write(_json({"chatkeep_export_end": end}) + b"\n")
        return result

    def _export_sessions(
        self,
        out: IO[bytes],
        result: ExportResult,
        owner: str | None,
        sessions: list[str] | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        if sessions is not None:
            wanted = [validate_id(s) for s in dict.fromkeys(sessions)]
            infos: Iterable[SessionInfo] = self.infos(wanted)
            found: set[str] = set()
        else:
            infos = self.infos(self.session_ids(owner))
        for info in infos:
            if sessions is not None:
                found.add(info.id)
            if owner is not None and info.owner != owner:
                continue  # a stale owner-index entry (the id was reused)
            head = b'{"session":' + _json(info.id) + b',"owner":' + _json(info.owner)
            meta = self._meta(info.id, result)  # on the session's first line only
            written = 0
            for raw in self.records(info.id):
                try:
                    message = decode_record(raw, self.config.sealing, info.id)
                except SerializationError:
                    result.skipped_records += 1
                    continue
                if is_sealed(raw):  # exported opened: sealed, it is bound to this session
                    tokens = loads(raw).get("tk")
                    record = encode_record(message, tokens if type(tokens) is int else None)
                elif raw[:1] == b"{":
                    record = raw
                else:
                    record = encode_record(message)
                out.write(head + (meta if not written else b"") + b',"record":' + record + b"}\n")
                written += 1
                if progress is not None and written % PAGE == 0:
                    progress(PAGE)
            if progress is not None and written % PAGE:
                progress(written % PAGE)
            if not written and meta:  # a session with metadata and no message (yet)
                out.write(head + meta + b"}\n")
            result.messages += written
            result.sessions += 1 if written or meta else 0
        if sessions is not None:
            result.missing = [s for s in wanted if s not in found]

    def _meta(self, session_id: str, result: ExportResult) -> bytes:
        """``,"meta":{...}`` with the session's title, status and context (nothing when
        it has none); a context JSON cannot hold is left out and counted."""
        info = self.store.info(session_id)
        if info is None:
            return b""
        meta: dict[str, Any] = {
            k: v for k, v in (("title", info.title), ("status", info.status)) if v is not None
        }
        if info.context:
            try:
                _json(info.context)
                meta["context"] = info.context
            except (TypeError, ValueError):
                result.skipped_contexts += 1
        return b',"meta":' + _json(meta) if meta else b""

    # -- import ---------------------------------------------------------------------------

    def existing_ids(self, session_id: str) -> set[str]:
        ids: set[str] = set()
        for raw in self.records(session_id):
            try:
                record = _loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict) and isinstance(record.get("id"), str):
                ids.add(record["id"])
        return ids

    def import_lines(
        self,
        lines: Iterable[bytes],
        *,
        ttl: Any = UNSET,
        batch: int = 500,
        on_bad_line: Callable[[int, str], None] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ImportResult:
        """Import an export, line by line. Idempotent: a message whose id the session
        already holds is skipped, so importing a file twice stores each message once.

        A bad line is reported (``on_bad_line(number, reason)``) and the rest goes on.
        A first line that is not an export header raises :class:`LineError`.
        ``progress`` is called with the bytes of each line read.
        """
        result = ImportResult()
        pending: list[tuple[int, Message]] = []
        current: tuple[str, str | None] | None = None
        present: set[str] = set()
        touched: set[bytes] = set()

        def bad(number: int, reason: str) -> None:
            result.bad_lines.append((number, reason))
            if on_bad_line is not None:
                on_bad_line(number, reason)

        def flush() -> None:
            if not pending or current is None:
                return
            sid, owner = current
            items = list(pending)
            pending.clear()
            while items:
                ids = "\n".join(m.id for _, m in items)
                key = (
                    "chatkeep-import:"
                    + hashlib.blake2b(f"{sid}\n{ids}".encode(), digest_size=16).hexdigest()
                )
                try:
                    self.store.append(
                        sid, [m for _, m in items], owner=owner, idempotency_key=key, ttl=ttl
                    )
                except MessageTooLargeError as exc:
                    number, _ = items.pop(exc.index)
                    bad(number, f"message too large ({exc.size} bytes, limit {exc.limit})")
                    continue
                except SessionOwnershipError:
                    for number, _ in items:
                        bad(number, f"session {sid!r} belongs to a different owner")
                    return
                result.messages += len(items)
                touched.add(hashlib.blake2b(sid.encode(), digest_size=16).digest())
                return

        number = 0
        for number, line in enumerate(lines, start=1):
            if progress is not None:
                progress(len(line))
            if number == 1:
                _check_header(line)
                continue
            if not line.strip():
                continue
            if result.complete:
                bad(number, "line after the end-of-export trailer")
                continue
            try:
                parsed = parse_line(line)
            except LineError as exc:
                bad(number, str(exc))
                continue
            if isinstance(parsed, DataLine):
                self._restore_data(number, parsed, ttl, result, bad)
                continue
            if parsed is None:
                result.complete = True
                continue
            sid, owner, message, meta = parsed
            if current != (sid, owner):
                flush()
                current = (sid, owner)
                present = self.existing_ids(sid)
            if meta is not None:
                self._restore_meta(number, (sid, owner), meta, ttl, bad)
                touched.add(hashlib.blake2b(sid.encode(), digest_size=16).digest())
            if message is None:
                continue
            if message.id in present:
                result.already_present += 1
                continue
            present.add(message.id)
            pending.append((number, message))
            if len(pending) >= batch:
                flush()
        if number == 0:
            raise LineError("line 1: the file is empty, not a chatkeep export")
        flush()
        result.sessions = len(touched)
        return result

    def _restore_data(
        self,
        number: int,
        line: DataLine,
        ttl: Any,
        result: ImportResult,
        bad: Callable[[int, str], None],
    ) -> None:
        kinds = self.kinds()
        kind = kinds.get(line.kind)
        if kind is None:
            bad(number, f"kind {line.kind!r} is unknown here (is its package installed?)")
            return
        try:
            kind.restore(self, line.id, line.owner, line.data, ttl)
        except (ValueError, TypeError, KeyError) as exc:  # ChatkeepError's are ValueErrors
            bad(number, f"{line.kind}: {exc}")
            return
        result.data[line.kind] = result.data.get(line.kind, 0) + 1

    def _restore_meta(
        self,
        number: int,
        session: tuple[str, str | None],
        meta: dict[str, Any],
        ttl: Any,
        bad: Callable[[int, str], None],
    ) -> None:
        sid, owner = session
        try:
            self.store.update_session(
                sid,
                title=meta.get("title"),
                status=meta.get("status"),
                context=meta.get("context") or None,
                owner=owner,
                ttl=ttl,
            )
        except SessionOwnershipError:
            bad(number, f"session {sid!r} belongs to a different owner")
        except ChatkeepError as exc:
            bad(number, f"meta: {exc}")

    # -- delete and purge -----------------------------------------------------------------

    def owned_data(self, owner: str) -> list[OwnedData]:
        """What the installed features keep of ``owner`` besides conversations (e.g.
        LangGraph threads); only what has items."""
        validate_id(owner, "owner")
        found = [finder(self.store, owner) for finder in self.finders().values()]
        for kind in self.kinds().values():
            items = list(kind.items(self, owner))
            found.append(OwnedData(kind.what, len(items), _deleter(self, kind, items)))
        return [data for data in found if data.count]

    # -- what features keep besides conversations (chatkeep.redis.DataKind) ---------------

    @staticmethod
    def kinds() -> dict[str, DataKind]:
        """Every registered kind of data (the adapters' through their entry points)."""
        load_features()
        return dict(sorted(DATA_KINDS.items()))

    @staticmethod
    def finders() -> dict[str, Any]:
        load_features()
        return dict(OWNED_DATA)

    def kind(self, name: str) -> DataKind:
        """The kind called ``name``, or :class:`ConfigurationError` naming the known ones."""
        kinds = self.kinds()
        if name not in kinds:
            known = ", ".join(["conversations", *kinds]) or "none"
            raise ConfigurationError(
                f"unknown kind {name!r} (known here: {known}; is its package installed?)"
            )
        return kinds[name]

    def data_items(self, name: str, owner: str | None = None) -> list[DataItem]:
        if owner is not None:
            validate_id(owner, "owner")
        return list(self.kind(name).items(self, owner))

    @staticmethod
    def session_part(session_id: str) -> tuple[str, str | None]:
        """(the session a session id is a part of, the part) for ids with a part mark
        (LlamaIndex Memory's archive: ``<key>\\x00archived``); (id, None) otherwise."""
        return session_part(session_id)

    def parts_of(self, session_id: str, parts: Iterable[str] = ("archived",)) -> list[str]:
        """Which of the known ``parts`` the session has (its archive...)."""
        return [p for p in parts if self.store.info(self.part_id(session_id, p)) is not None]

    @staticmethod
    def part_id(session_id: str, part: str) -> str:
        """The id of the ``part`` of a session (``show --part archived``)."""
        return validate_id(session_id + PART_MARK + part)

    def owner_sessions(self, owner: str) -> list[SessionInfo]:
        validate_id(owner, "owner")
        return [i for i in self.infos(self.session_ids(owner)) if i.owner == owner]

    def purge(
        self,
        owner: str,
        sessions: list[SessionInfo],
        progress: Callable[[int], None] | None = None,
    ) -> PurgeResult:
        """Delete the given sessions of ``owner`` (from :meth:`owner_sessions`);
        ``progress`` is called with 1 after each session."""
        result = PurgeResult()
        for info in sessions:
            if progress is not None:
                progress(1)
            try:
                existed = self.store.clear(info.id, owner=owner)
            except SessionOwnershipError:
                continue  # the id was reused by someone else meanwhile
            if existed:
                result.sessions += 1
                result.messages += info.message_count
        removed = {i.id for i in sessions}
        result.appeared = sum(1 for i in self.owner_sessions(owner) if i.id not in removed)
        index = self.keys.owner_index(owner)
        (left,) = self.send([("ZCARD", index)])
        if int(left) == 0:
            self.send([("DEL", index)])
        return result

    # -- stats ----------------------------------------------------------------------------

    def stats(self, samples: int = 100) -> dict[str, Any]:
        """Counts over every live session (one pass over the index) and memory sampled
        with ``MEMORY USAGE`` on up to ``samples`` sessions."""
        buckets = {"<1h": 0, "<1d": 0, "<7d": 0, "<30d": 0, ">=30d": 0, "never": 0}
        limits = [(3600, "<1h"), (86400, "<1d"), (7 * 86400, "<7d"), (30 * 86400, "<30d")]
        sessions = messages = largest = unowned = 0
        owners: set[bytes] = set()
        reservoir: list[str] = []
        rng = random.Random()
        ttls: Counter[int | None] = Counter()
        for info, stored_ttl in self.rows(self.session_ids()):
            ttls[_session_ttl(info, stored_ttl)] += 1
            sessions += 1
            messages += info.message_count
            largest = max(largest, info.message_count)
            if info.owner is None:
                unowned += 1
            else:
                owners.add(hashlib.blake2b(info.owner.encode(), digest_size=16).digest())
            if info.expires_at is None:
                buckets["never"] += 1
            else:
                # now, not the start of the pass: expires_at was computed from PTTL a
                # moment ago, and a session written just before ends up at 7d otherwise
                left = (info.expires_at - datetime.now(timezone.utc)).total_seconds()
                buckets[next((name for limit, name in limits if left < limit), ">=30d")] += 1
            if len(reservoir) < samples:
                reservoir.append(info.id)
            else:
                j = rng.randrange(sessions)
                if j < samples:
                    reservoir[j] = info.id
        sampled_bytes: int | None = 0
        usage: list[Command] = [
            ("MEMORY", "USAGE", key) for sid in reservoir for key in self.keys.session(sid)
        ]
        try:
            *sampled, index_usage = self.send([*usage, ("MEMORY", "USAGE", self.keys.index)])
            sampled_bytes = sum(int(n or 0) for n in sampled)
            index_bytes = int(index_usage or 0)
        except ChatkeepError:
            sampled_bytes = None  # MEMORY USAGE not permitted or not supported
            index_bytes = 0
        estimate = None
        if sampled_bytes is not None and reservoir:
            estimate = round(sampled_bytes / len(reservoir) * sessions) + index_bytes
        (index_entries,) = self.send([("ZCARD", self.keys.index)])
        return {
            "prefix": self.config.prefix,
            "sessions": sessions,
            "messages": messages,
            "largest_session": largest,
            "owners": len(owners),
            "sessions_without_owner": unowned,
            "index_entries": int(index_entries),
            "bytes_estimated": estimate,
            "bytes_sampled_sessions": len(reservoir) if sampled_bytes is not None else 0,
            "expires_in": buckets,
            "ttls": [
                {"ttl": _ttl_label(ms), "seconds": None if ms is None else ms / 1000, "sessions": n}
                for ms, n in sorted(ttls.items(), key=lambda kv: (-kv[1], kv[0] or 0))
            ],
        }


def _session_ttl(info: SessionInfo, stored_ms: int | None) -> int | None:
    """The TTL a session has, in ms (None: it never expires), rounded: the one stored
    with it when it was given per session, else measured from Redis (its expiry minus
    its last write: what a sliding TTL was set to then; a read since adds its age)."""
    if info.expires_at is None:
        return None
    if stored_ms is not None and stored_ms > 0:
        ms = stored_ms
    else:
        since = info.updated_at or info.created_at or info.expires_at
        ms = max(round((info.expires_at - since).total_seconds() * 1000), 0)
    # rounded as it is shown (seconds, minutes past an hour, hours past a day)
    unit = 1000 if ms < 3_600_000 else 60_000 if ms < 86_400_000 else 3_600_000
    return max(round(ms / unit), 1) * unit


def _ttl_label(ms: int | None) -> str:
    if ms is None:
        return "never"
    seconds = ms // 1000
    for name, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{name}"
    parts = []
    for name, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{name}")
            seconds %= size
    return " ".join(parts) or "0s"


def _deleter(admin: Admin, kind: DataKind, items: list[DataItem]) -> Callable[[], int]:
    return lambda: kind.delete(admin, items)


def _check_header(line: bytes) -> None:
    try:
        header = _loads(line)
    except ValueError:
        header = None
    if not isinstance(header, dict) or "chatkeep_export" not in header:
        raise LineError("line 1: not a chatkeep export (no chatkeep_export header)")
    version = header["chatkeep_export"]
    if version != EXPORT_VERSION:
        raise LineError(
            f"line 1: export format version {version!r} is not supported "
            f"(this chatkeep reads version {EXPORT_VERSION})"
        )


@dataclass(frozen=True)
class DataLine:
    """One export line of another kind than conversations (a LangGraph thread...)."""

    kind: str
    id: str
    owner: str | None
    data: dict[str, Any]


def parse_line(
    line: bytes | str,
) -> tuple[str, str | None, Message | None, dict[str, Any] | None] | DataLine | None:
    """(session id, owner, message, the session's metadata if the line carries it) of
    one export line (a session with metadata and no message has a line without a
    record); a :class:`DataLine` for an item of another kind; None for the end
    trailer. Raises :class:`LineError` saying what is wrong (never quoting content)."""
    try:
        obj = _loads(line)
    except ValueError:
        raise LineError("not valid JSON") from None
    if not isinstance(obj, dict):
        raise LineError("not a JSON object")
    if "chatkeep_export_end" in obj:
        return None
    if "kind" in obj:
        kind, item_id, owner, data = (obj.get(k) for k in ("kind", "id", "owner", "data"))
        if not isinstance(kind, str) or not isinstance(item_id, str) or not item_id:
            raise LineError("kind and id: missing or not strings")
        if owner is not None and not isinstance(owner, str):
            raise LineError("owner: not a string")
        if not isinstance(data, dict):
            raise LineError("data: missing or not a JSON object")
        return DataLine(kind, item_id, owner, data)
    try:
        sid = validate_id(obj.get("session"), "session")
        owner = obj.get("owner")
        if owner is not None:
            owner = validate_id(owner, "owner")
    except InvalidSessionId as exc:
        raise LineError(str(exc)) from None
    meta = obj.get("meta")
    if meta is not None and not isinstance(meta, dict):
        raise LineError("meta: not a JSON object")
    record = obj.get("record")
    if record is None and meta is not None:
        return sid, owner, None, meta
    if not isinstance(record, dict):
        raise LineError("record: missing or not a JSON object")
    try:
        message = decode_record(json.dumps(record, allow_nan=False))
    except ValueError as exc:  # SerializationError, or a number JSON does not allow
        raise LineError(f"record: {exc}") from None
    return sid, owner, message, meta


# -- the durable journal ----------------------------------------------------------------------


@dataclass
class ReplayResult:
    replayed: int
    """Journaled writes that reached Redis."""
    rejected: int
    """Journaled writes Redis refused as invalid (conflicts included): dropped, reported."""
    conflicts: int
    left: int
    """Writes still in the journal for this Redis."""
    reached: bool
    """Whether Redis answered."""
    last_error: str | None
    others: list[PendingWrites]
    """What the file holds for other Redis servers (left alone)."""


def replay_journal(config: StoreConfig, path: str) -> ReplayResult:
    """Replay the durable journal at ``path`` to the Redis of ``config``, as a process
    of the application with that ``journal_path`` does once Redis answers: a
    connection with the journal as its circuit's, flushed (one replayer at a time: a
    process replaying it now keeps it). The families of the adapters are loaded from
    the ``chatkeep.features`` entry points."""
    if config.scheme == "memory":
        raise ConfigurationError("replaying a journal needs a Redis URL")
    pending_writes(path)  # a clear error for a file that is not a journal
    load_features()
    connection = Connection(config.replace(journal_path=path, fallback="memory"))
    circuit = connection.circuit
    assert circuit is not None
    try:
        with warnings.catch_warnings():  # this command reports the outcome itself
            warnings.simplefilter("ignore", FallbackWarning)
            left = connection.run(circuit.flush())
        status = circuit.status("redis")
    finally:
        circuit.journal.close()
        connection.close()
    target = config.safe_url
    return ReplayResult(
        replayed=status.replayed,
        rejected=status.replay_rejected,
        conflicts=status.conflicts,
        left=left,
        reached=connection.reached,
        last_error=status.last_error,
        others=[p for p in pending_writes(path) if p.target != target],
    )
