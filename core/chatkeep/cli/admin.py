"""What the ``chatkeep`` command does, without the command line (no click, no rich).

:class:`Admin` wraps a :class:`~chatkeep.ConversationStore` made with
``fallback="raise"`` (an administrator must hear that Redis is unreachable, not be
served from an empty in-memory fallback) and adds read-only, paged access to the raw
records: administrative reads never refresh a sliding TTL, and export streams each
session in pages instead of loading it.

Sessions are found through the session index (``<prefix>:idx``) and the owner
indexes, walked with ``ZSCAN`` (cursor-based: every member present for the whole walk
is seen, duplicates are dropped); never ``KEYS`` or a keyspace ``SCAN``.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Any

from redis import exceptions as rex

from .. import MemoryStore, ResultCache, codec  # noqa: F401  (their features: acl_rules covers them)
from ..config import StoreConfig
from ..errors import (
    BackendUnavailableError,
    ChatkeepError,
    ConfigurationError,
    InvalidSessionId,
    MessageTooLargeError,
    SerializationError,
    SessionOwnershipError,
)
from ..keys import KeySchema, validate_id
from ..message import Message
from ..redis.errors import Unreachable, translate
from ..sessions.ops import SessionInfo, ms_to_datetime
from ..store import UNSET, ConversationStore

__all__ = [
    "EXPORT_VERSION",
    "Admin",
    "ExportResult",
    "ImportResult",
    "LineError",
    "PurgeResult",
    "parse_line",
]

EXPORT_VERSION = 1
"""Version of the JSONL export format (the first line's ``chatkeep_export``)."""

PAGE = 1000  # records per LRANGE when streaming a session
SCAN_COUNT = 500  # index members per ZSCAN step / sessions per metadata pipeline


class LineError(ValueError):
    """One line of an import file is not valid; the message says why."""


def _text(value: Any) -> str | None:
    if value is None or value is False:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _json(value: Any) -> bytes:
    return codec.dumps(value)


@dataclass
class ExportResult:
    sessions: int = 0
    messages: int = 0
    skipped_records: int = 0
    """Stored records that could not be decoded (left out of the file)."""
    missing: list[str] = field(default_factory=list)
    """Sessions asked for with ``--session`` that do not exist."""


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


@dataclass
class PurgeResult:
    sessions: int = 0
    messages: int = 0
    appeared: int = 0
    """Sessions of the owner that were created while the purge ran (not removed)."""


class Admin:
    """Administrative access to one prefix of one Redis."""

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
    def client(self) -> Any:
        return self.store._connection.client

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Translate driver errors the way the store does (unreachable -> raised)."""
        try:
            yield
        except rex.RedisError as exc:
            translated = translate(exc)
            if isinstance(translated, Unreachable):
                raise BackendUnavailableError(
                    f"cannot reach Redis at {self.config.safe_url} ({translated})"
                ) from exc
            raise translated from exc
        except (OSError, ConnectionError, TimeoutError) as exc:
            raise BackendUnavailableError(
                f"cannot reach Redis at {self.config.safe_url} ({type(exc).__name__}: {exc})"
            ) from exc

    # -- sessions -------------------------------------------------------------------------

    def session_ids(self, owner: str | None = None) -> Iterator[str]:
        """Every session id in the index (or an owner's index), each once, unordered.
        Entries of expired sessions may be included; :meth:`infos` drops them."""
        key = self.keys.index if owner is None else self.keys.owner_index(owner)
        seen: set[bytes] = set()  # 16-byte digests: memory grows with sessions, not messages
        cursor = 0
        while True:
            with self.guard():
                cursor, members = self.client.zscan(key, cursor, count=SCAN_COUNT)
            for member, _score in members:
                sid = _text(member) or ""
                digest = hashlib.blake2b(sid.encode(), digest_size=16).digest()
                if digest not in seen:
                    seen.add(digest)
                    yield sid
            if int(cursor) == 0:
                return

    def infos(self, sids: Iterable[str]) -> Iterator[SessionInfo]:
        """:class:`SessionInfo` of the sessions that exist, in pipelined pages."""
        page: list[str] = []
        for sid in sids:
            page.append(sid)
            if len(page) >= SCAN_COUNT:
                yield from self._info_page(page)
                page = []
        if page:
            yield from self._info_page(page)

    def _info_page(self, sids: list[str]) -> list[SessionInfo]:
        with self.guard():
            pipe = self.client.pipeline(transaction=False)
            for sid in sids:
                messages, meta = self.keys.session(sid)
                pipe.hmget(meta, ["c", "u", "o"])
                pipe.llen(messages)
                pipe.pttl(meta)
            replies = pipe.execute()
        now = time.time_ns() // 1_000_000
        found = []
        for i, sid in enumerate(sids):
            (created, updated, owner), length, pttl = replies[3 * i : 3 * i + 3]
            if created is None:
                continue
            found.append(
                SessionInfo(
                    id=sid,
                    owner=_text(owner),
                    message_count=int(length),
                    created_at=ms_to_datetime(int(created)),
                    updated_at=ms_to_datetime(int(updated)) if updated is not None else None,
                    expires_at=ms_to_datetime(now + int(pttl)) if int(pttl) >= 0 else None,
                )
            )
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
            with self.guard():
                page = self.client.lrange(messages_key, start, start + PAGE - 1)
            yield from page
            if len(page) < PAGE:
                return
            start += PAGE

    def tail(self, session_id: str, last: int | None) -> tuple[list[Message], int]:
        """The newest ``last`` messages (all if None) and how many records were unreadable."""
        messages_key, _ = self.keys.session(validate_id(session_id))
        if last is None:
            raws: Iterable[bytes] = self.records(session_id)
        else:
            with self.guard():
                raws = self.client.lrange(messages_key, -last, -1) if last > 0 else []
        messages, bad = [], 0
        for raw in raws:
            try:
                messages.append(codec.decode(raw))
            except SerializationError:
                bad += 1
        return messages, bad

    # -- export ---------------------------------------------------------------------------

    def export(
        self,
        out: IO[bytes],
        *,
        owner: str | None = None,
        sessions: list[str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ExportResult:
        """Write the JSONL export (see docs/readme-operating.md) to ``out``, streaming.

        ``progress`` is called with the number of messages written after each page.
        """
        result = ExportResult()
        header = {
            "chatkeep_export": EXPORT_VERSION,
            "record_version": codec.RECORD_VERSION,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "prefix": self.config.prefix,
        }
        out.write(_json(header) + b"\n")
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
            head = (
                b'{"session":' + _json(info.id) + b',"owner":' + _json(info.owner) + b',"record":'
            )
            written = 0
            for raw in self.records(info.id):
                try:
                    message = codec.decode(raw)
                except SerializationError:
                    result.skipped_records += 1
                    continue
                record = raw if raw[:1] == b"{" else codec.encode(message)
                out.write(head + record + b"}\n")
                written += 1
                if progress is not None and written % PAGE == 0:
                    progress(PAGE)
            if progress is not None and written % PAGE:
                progress(written % PAGE)
            result.messages += written
            result.sessions += 1 if written else 0
        if sessions is not None:
            result.missing = [s for s in wanted if s not in found]
        trailer = {
            "chatkeep_export_end": {"sessions": result.sessions, "messages": result.messages}
        }
        out.write(_json(trailer) + b"\n")
        return result

    # -- import ---------------------------------------------------------------------------

    def existing_ids(self, session_id: str) -> set[str]:
        ids: set[str] = set()
        for raw in self.records(session_id):
            try:
                record = codec.loads(raw)
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
            if parsed is None:
                result.complete = True
                continue
            sid, owner, message = parsed
            if current != (sid, owner):
                flush()
                current = (sid, owner)
                with self.guard():
                    present = self.existing_ids(sid)
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

    # -- delete and purge -----------------------------------------------------------------

    def owner_sessions(self, owner: str) -> list[SessionInfo]:
        validate_id(owner, "owner")
        return [i for i in self.infos(self.session_ids(owner)) if i.owner == owner]

    def purge(self, owner: str, sessions: list[SessionInfo]) -> PurgeResult:
        """Delete the given sessions of ``owner`` (from :meth:`owner_sessions`)."""
        result = PurgeResult()
        for info in sessions:
            try:
                existed = self.store.clear(info.id, owner=owner)
            except SessionOwnershipError:
                continue  # the id was reused by someone else meanwhile
            if existed:
                result.sessions += 1
                result.messages += info.message_count
        removed = {i.id for i in sessions}
        result.appeared = sum(1 for i in self.owner_sessions(owner) if i.id not in removed)
        with self.guard():
            if self.client.zcard(self.keys.owner_index(owner)) == 0:
                self.client.delete(self.keys.owner_index(owner))
        return result

    # -- stats ----------------------------------------------------------------------------

    def stats(self, samples: int = 100) -> dict[str, Any]:
        """Counts over every live session (one pass over the index) and memory sampled
        with ``MEMORY USAGE`` on up to ``samples`` sessions."""
        now = datetime.now(timezone.utc)
        buckets = {"<1h": 0, "<1d": 0, "<7d": 0, "<30d": 0, ">=30d": 0, "never": 0}
        limits = [(3600, "<1h"), (86400, "<1d"), (7 * 86400, "<7d"), (30 * 86400, "<30d")]
        sessions = messages = largest = unowned = 0
        owners: set[bytes] = set()
        reservoir: list[str] = []
        rng = random.Random()
        for info in self.infos(self.session_ids()):
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
                left = (info.expires_at - now).total_seconds()
                buckets[next((name for limit, name in limits if left < limit), ">=30d")] += 1
            if len(reservoir) < samples:
                reservoir.append(info.id)
            else:
                j = rng.randrange(sessions)
                if j < samples:
                    reservoir[j] = info.id
        sampled_bytes: int | None = 0
        try:
            with self.guard():
                pipe = self.client.pipeline(transaction=False)
                for sid in reservoir:
                    for key in self.keys.session(sid):
                        pipe.memory_usage(key)
                sampled_bytes = sum(int(n or 0) for n in pipe.execute())
                index_bytes = int(self.client.memory_usage(self.keys.index) or 0)
        except ChatkeepError:
            sampled_bytes = None  # MEMORY USAGE not permitted or not supported
            index_bytes = 0
        estimate = None
        if sampled_bytes is not None and reservoir:
            estimate = round(sampled_bytes / len(reservoir) * sessions) + index_bytes
        with self.guard():
            index_entries = int(self.client.zcard(self.keys.index))
        return {
            "prefix": self.config.prefix,
            "sessions": sessions,
            "messages": messages,
            "largest_session": largest,
            "owners": len(owners),
            "sessions_without_owner": unowned,
            "index_entries": index_entries,
            "bytes_estimated": estimate,
            "bytes_sampled_sessions": len(reservoir) if sampled_bytes is not None else 0,
            "expires_in": buckets,
        }


def _check_header(line: bytes) -> None:
    try:
        header = codec.loads(line)
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


def parse_line(line: bytes | str) -> tuple[str, str | None, Message] | None:
    """(session id, owner, message) of one export line; None for the end trailer.
    Raises :class:`LineError` saying what is wrong (never quoting content)."""
    try:
        obj = codec.loads(line)
    except ValueError:
        raise LineError("not valid JSON") from None
    if not isinstance(obj, dict):
        raise LineError("not a JSON object")
    if "chatkeep_export_end" in obj:
        return None
    try:
        sid = validate_id(obj.get("session"), "session")
        owner = obj.get("owner")
        if owner is not None:
            owner = validate_id(owner, "owner")
    except InvalidSessionId as exc:
        raise LineError(str(exc)) from None
    record = obj.get("record")
    if not isinstance(record, dict):
        raise LineError("record: missing or not a JSON object")
    try:
        message = codec.decode(codec.dumps(record))
    except SerializationError as exc:
        raise LineError(f"record: {exc}") from None
    return sid, owner, message
