"""The fallback's write journal: writes served while Redis was unreachable, kept in
order until they are replayed.

Two kinds, one interface:

* :class:`MemoryJournal` (the default): in this process's memory, bounded by count
  (``journal_size``) and bytes (``journal_max_bytes``). Lost if the process dies;
  at exit, chatkeep tries for a bounded time to replay it and warns with the count
  otherwise.
* :class:`SqliteJournal` (``journal_path=``): a sqlite3 file in WAL mode. A write is
  in the file before the call returns, so it survives the process (a crash, a
  SIGKILL); any later process with the same path replays it, one at a time (a lease
  row), as does ``chatkeep journal replay``. Several processes of one host may share
  the file.

A full journal raises :class:`chatkeep.JournalFullError` and the write is not made:
nothing is acknowledged that could be dropped later. Replay takes, for each key (a
session, a namespace, a thread), a run of its oldest entries: keys are replayed side
by side, each key's entries in order.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from ..errors import ConfigurationError, JournalFullError

__all__ = [
    "Journal",
    "Journaled",
    "MemoryJournal",
    "PendingWrites",
    "SqliteJournal",
    "pending_writes",
]


@dataclass(slots=True)
class Journaled:
    """One journaled write."""

    id: int
    family: Any  # chatkeep.redis.Family
    op: Any
    key: str
    size: int


class Journal(Protocol):
    @property
    def path(self) -> str | None: ...
    @property
    def pending(self) -> int: ...
    @property
    def bytes(self) -> int: ...
    def room(self, size: int) -> None:
        """Raise JournalFullError if a write of ``size`` bytes would not fit."""

    def add(self, family: Any, op: Any, key: str, size: int) -> None: ...
    def batch(self, max_keys: int, max_per_key: int, max_bytes: int) -> list[list[Journaled]]: ...
    def remove(self, ids: list[int]) -> None: ...
    def ops(self, family: str, key: str) -> list[Any]:
        """The journaled writes of ``family`` for ``key``, oldest first."""

    def attempted(self, entries: list[Journaled]) -> None:
        """These writes were sent and no reply came: their replay must recognise them
        if they reached Redis (``family.attempted``)."""

    def close(self) -> None: ...


def _full(what: str, limit: int) -> JournalFullError:
    return JournalFullError(
        f"Redis is unreachable and the fallback journal is full ({what} {limit}); the write "
        "was not made (raise journal_size/journal_max_bytes, or set journal_path)"
    )


def _check_room(count: int, used: int, size: int, max_entries: int, max_bytes: int) -> None:
    if count >= max_entries:
        raise _full("journal_size", max_entries)
    if used + size > max_bytes:
        raise _full("journal_max_bytes", max_bytes)


def _take(entries: Any, max_keys: int, max_per_key: int, max_bytes: int) -> list[list[Journaled]]:
    """Runs of the oldest entries of each key: a prefix of every key's entries."""
    runs: dict[str, list[Journaled]] = {}
    closed: set[str] = set()
    total = 0
    for entry in entries:
        key = entry.key
        if key in closed:
            continue
        run = runs.get(key)
        if run is None:
            if len(runs) >= max_keys:
                closed.add(key)
                continue
            run = runs[key] = []
        if len(run) >= max_per_key or (run and total + entry.size > max_bytes):
            closed.add(key)
            continue
        run.append(entry)
        total += entry.size
        if total >= max_bytes:
            break
    return list(runs.values())


class MemoryJournal:
    """Journaled writes in this process's memory."""

    path: str | None = None

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[int, Journaled] = OrderedDict()
        self._bytes = 0
        self._next = 1
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        return self._bytes

    def room(self, size: int) -> None:
        _check_room(len(self._entries), self._bytes, size, self.max_entries, self.max_bytes)

    def add(self, family: Any, op: Any, key: str, size: int) -> None:
        with self._lock:
            self.room(size)
            entry = Journaled(self._next, family, op, key, size)
            self._next += 1
            self._entries[entry.id] = entry
            self._bytes += size

    def batch(self, max_keys: int, max_per_key: int, max_bytes: int) -> list[list[Journaled]]:
        with self._lock:
            return _take(list(self._entries.values()), max_keys, max_per_key, max_bytes)

    def remove(self, ids: list[int]) -> None:
        with self._lock:
            for entry_id in ids:
                entry = self._entries.pop(entry_id, None)
                if entry is not None:
                    self._bytes -= entry.size

    def ops(self, family: str, key: str) -> list[Any]:
        with self._lock:
            return [
                e.op for e in self._entries.values() if e.key == key and e.family.name == family
            ]

    def attempted(self, entries: list[Journaled]) -> None:
        with self._lock:
            for entry in entries:
                if entry.id in self._entries:
                    entry.op = entry.family.attempted(entry.op)

    def close(self) -> None:
        return None


class SqliteJournal:
    """Journaled writes in a sqlite3 file (WAL), shared by the processes of one host.

    Entries of one Redis (``target``, its credential-free URL) are kept with what is
    needed to replay them in another process: the family's name and parameters, and
    the encoded operation. ``resolve(name, params)`` turns those back into a family.
    """

    LEASE_SECONDS = 30.0

    def __init__(
        self,
        path: str,
        target: str,
        max_entries: int,
        max_bytes: int,
        resolve: Callable[[str, dict[str, Any]], Any],
    ) -> None:
        self.path: str | None = path
        self.target = target
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._resolve = resolve
        self._families: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()
        self._holder = f"{os.getpid()}-{os.urandom(6).hex()}"
        try:
            self._db = sqlite3.connect(path, timeout=10.0, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._db:
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS entries (id INTEGER PRIMARY KEY AUTOINCREMENT,"
                    " target TEXT NOT NULL, family TEXT NOT NULL, params TEXT NOT NULL,"
                    " key TEXT NOT NULL, op BLOB NOT NULL, size INTEGER NOT NULL,"
                    " created REAL NOT NULL)"
                )
                self._db.execute("CREATE INDEX IF NOT EXISTS by_target ON entries (target, id)")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS leases (target TEXT PRIMARY KEY,"
                    " holder TEXT NOT NULL, until REAL NOT NULL)"
                )
        except sqlite3.Error as exc:
            raise ConfigurationError(f"cannot use journal_path {path!r}: {exc}") from None

    # -- counts -----------------------------------------------------------------------

    def _counts(self) -> tuple[int, int]:
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries WHERE target = ?",
                (self.target,),
            ).fetchone()
        return int(row[0]), int(row[1])

    @property
    def pending(self) -> int:
        return self._counts()[0]

    @property
    def bytes(self) -> int:
        return self._counts()[1]

    # -- writing ----------------------------------------------------------------------

    def room(self, size: int) -> None:
        count, used = self._counts()
        _check_room(count, used, size, self.max_entries, self.max_bytes)

    def add(self, family: Any, op: Any, key: str, size: int) -> None:
        data = family.encode(op)
        params = json.dumps(family.params, sort_keys=True, separators=(",", ":"))
        with self._lock, self._db:
            count, used = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries WHERE target = ?",
                (self.target,),
            ).fetchone()
            _check_room(count, used, size, self.max_entries, self.max_bytes)
            self._db.execute(
                "INSERT INTO entries (target, family, params, key, op, size, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self.target, family.name, params, key, data, size, time.time()),
            )
            self._families.setdefault((family.name, params), family)

    # -- replaying --------------------------------------------------------------------

    def lease(self) -> bool:
        """Take (or renew) the right to replay this target's entries; False when
        another process holds it."""
        now = time.time()
        with self._lock, self._db:
            row = self._db.execute(
                "SELECT holder, until FROM leases WHERE target = ?", (self.target,)
            ).fetchone()
            if row is not None and row[0] != self._holder and row[1] > now:
                return False
            self._db.execute(
                "INSERT OR REPLACE INTO leases (target, holder, until) VALUES (?, ?, ?)",
                (self.target, self._holder, now + self.LEASE_SECONDS),
            )
        return True

    def unlease(self) -> None:
        with self._lock, self._db:
            self._db.execute(
                "DELETE FROM leases WHERE target = ? AND holder = ?", (self.target, self._holder)
            )

    def _family(self, name: str, params: str) -> Any:
        found = self._families.get((name, params))
        if found is None:
            found = self._families[(name, params)] = self._resolve(name, json.loads(params))
        return found

    def batch(self, max_keys: int, max_per_key: int, max_bytes: int) -> list[list[Journaled]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, family, params, key, op, size FROM entries WHERE target = ?"
                " ORDER BY id LIMIT ?",
                (self.target, max_keys * max_per_key),
            ).fetchall()
        entries = []
        for entry_id, name, params, key, data, size in rows:
            family = self._family(name, params)
            entries.append(Journaled(entry_id, family, family.decode(bytes(data)), key, size))
        return _take(entries, max_keys, max_per_key, max_bytes)

    def remove(self, ids: list[int]) -> None:
        if not ids:
            return
        with self._lock, self._db:
            self._db.executemany("DELETE FROM entries WHERE id = ?", [(i,) for i in ids])

    def attempted(self, entries: list[Journaled]) -> None:
        changed = [(e.family.encode(e.family.attempted(e.op)), e.id) for e in entries]
        with self._lock, self._db:
            self._db.executemany("UPDATE entries SET op = ? WHERE id = ?", changed)

    def ops(self, family: str, key: str) -> list[Any]:
        with self._lock:
            rows = self._db.execute(
                "SELECT params, op FROM entries WHERE target = ? AND family = ? AND key = ?"
                " ORDER BY id",
                (self.target, family, key),
            ).fetchall()
        return [self._family(family, params).decode(bytes(data)) for params, data in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


@dataclass(frozen=True, slots=True)
class PendingWrites:
    """Writes a durable journal holds for one key (a session...) of one family."""

    target: str
    """The Redis they are for (its credential-free URL)."""
    family: str
    prefix: str | None
    """The family's key prefix, when it has one."""
    key: str
    writes: int
    bytes: int
    oldest: float
    """When the oldest was journaled (seconds since the epoch)."""


def pending_writes(path: str) -> list[PendingWrites]:
    """What the durable journal at ``path`` holds, per Redis, family and key, oldest
    first; never the writes themselves. The file is only read (``chatkeep journal
    show``); a missing file or one that is not a journal raises ConfigurationError."""
    if not os.path.isfile(path):
        raise ConfigurationError(f"no journal file at {path!r}")
    try:
        db = sqlite3.connect(f"file:{quote(os.path.abspath(path))}?mode=ro", uri=True)
        try:
            rows = db.execute(
                "SELECT target, family, params, key, COUNT(*), SUM(size), MIN(created)"
                " FROM entries GROUP BY target, family, params, key ORDER BY MIN(id)"
            ).fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise ConfigurationError(f"{path!r} is not a chatkeep journal ({exc})") from None
    found = []
    for target, family, params, key, writes, size, oldest in rows:
        try:
            prefix = json.loads(params).get("prefix")
        except (ValueError, AttributeError):
            prefix = None
        found.append(
            PendingWrites(
                target, family, prefix if isinstance(prefix, str) else None, key,
                int(writes), int(size or 0), float(oldest),
            )
        )  # fmt: skip
    return found
