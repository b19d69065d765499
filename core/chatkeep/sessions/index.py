"""The session index, kept fresh without a write on every call.

``<prefix>:idx`` (and ``<prefix>:own:<owner>``) map session ids to their expiry. A
write refreshes the entries only when the expiry they hold is stale by more than the
slack, or when the write creates the session; the write script itself does it
(standalone and Sentinel), so a refused write indexes nothing; on a Cluster, whose
index keys live in other slots, a ZADD follows a successful write.

The invariant listing relies on: whenever a session's expiry becomes E, the index
holds a score >= E - slack (slack <= INDEX_SLACK_MS). So an entry whose score is older
than now - INDEX_SLACK_MS is certainly expired.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

from ..keys import KeySchema

__all__ = ["INDEX_SLACK_MS", "REFRESH_SLACK_MS", "IndexPlan", "Indexed", "RedisIndex"]

# Listing keeps index entries up to this long past their recorded expiry.
INDEX_SLACK_MS = 60_000

# A read refreshes a sliding TTL unless this process set the session's expiry less than
# this long ago (or 1% of the TTL, if that is shorter): the refresh would move it by
# no more, and skipping it lets a read be a plain LRANGE, with no script.
REFRESH_SLACK_MS = 60_000


def _slack(ttl_ms: int) -> int:
    return min(INDEX_SLACK_MS, max(ttl_ms // 10, 1000))


@dataclass(slots=True)
class Indexed:
    score: float  # what the index holds (ms; inf = never expires)
    owner: str | None  # owner index written, if any
    ttl_ms: int  # TTL last seen for the session (0 = never)
    expires_at: int | None  # the expiry this process last saw set (None = never)
    seen_ms: int  # when it saw it


@dataclass(slots=True)
class IndexPlan:
    mode: str  # '0' nothing, '1' write (reads: refresh existing), '2' only for a new session
    keys: list[str]  # the index keys concerned
    owner: str | None = None  # whose owner index is among them
    read: bool = False  # ZADD XX: refresh entries, never add


NOTHING = IndexPlan("0", [])


class RedisIndex:
    """What this process knows of the index entries of its sessions."""

    def __init__(self, keys: KeySchema, default_ttl_ms: int, fixed: bool, capacity: int = 10_000):
        self._keys = keys
        self._default_ttl = default_ttl_ms
        self._fixed = fixed
        self._capacity = capacity
        self._known: OrderedDict[str, Indexed] = OrderedDict()
        self._lock = threading.Lock()

    def _plan(self, mode: str, owner: str | None, *, read: bool = False) -> IndexPlan:
        keys = [self._keys.index]
        if owner is not None:
            keys.append(self._keys.owner_index(owner))
        return IndexPlan(mode, keys, owner, read)

    def before(self, sid: str, owner: str | None, ttl_ms: int | None, now: int) -> IndexPlan:
        """The index writes of a write: all of them when stale or unknown, else only
        for a session the write creates (one that expired, or that Redis lost)."""
        with self._lock:
            known = self._known.get(sid)
        if known is not None and (owner is None or owner == known.owner):
            if self._fixed and ttl_ms is None:
                return self._plan("2", owner)
            ttl = ttl_ms if ttl_ms is not None else known.ttl_ms
            score = math.inf if ttl <= 0 else float(now + ttl)
            if known.score == score or (
                math.inf not in (known.score, score) and score - known.score <= _slack(ttl)
            ):
                return self._plan("2", owner)
        return self._plan("1", owner)

    def before_read(self, sid: str, now: int) -> IndexPlan:
        """A sliding read: refresh existing entries when they trail by more than the slack."""
        if self._fixed:
            return NOTHING
        with self._lock:
            known = self._known.get(sid)
        if known is not None and known.score != math.inf:
            ttl = known.ttl_ms
            if ttl > 0 and now + ttl - known.score <= _slack(ttl):
                return NOTHING
        return self._plan("1", known.owner if known else None, read=True)

    def after(
        self,
        sid: str,
        plan: IndexPlan,
        expires_at: int | None,
        owner: str | None,
        now: int,
        *,
        new: bool = False,
    ) -> tuple[list[tuple[str, float]], bool]:
        """Record what the index holds now. Returns the ZADDs still to send (an owner
        index this process could not name before the call) and whether the write
        found gone a session this process had written and saw alive (data lost)."""
        if expires_at is not None and expires_at < 0:
            return [], False  # expiry unknown or unchanged
        actual = math.inf if expires_at is None else float(expires_at)
        ttl = 0 if expires_at is None else max(expires_at - now, 1)
        wrote = plan.mode == "1" or (plan.mode == "2" and new)
        fixes: list[tuple[str, float]] = []
        with self._lock:
            known = self._known.get(sid)
            lost = (
                new
                and known is not None
                and (known.expires_at is None or known.expires_at > now + 1000)
            )
            if wrote:
                score, indexed_owner = actual, plan.owner
            elif known is not None:
                score, indexed_owner = known.score, known.owner
            else:  # nothing written and nothing known: write the entry now
                score, indexed_owner = actual, None
                fixes.append((self._keys.index, actual))
            if owner is not None and owner != indexed_owner:
                fixes.append((self._keys.owner_index(owner), score))
                indexed_owner = owner
            self._known[sid] = Indexed(score, indexed_owner, ttl, expires_at, now)
            self._known.move_to_end(sid)
            while len(self._known) > self._capacity:
                self._known.popitem(last=False)
        return fixes, lost

    def fresh(self, sid: str, now: int) -> Indexed | None:
        """What this process knows of the session, if a read need not refresh its TTL:
        fixed, never expiring, or a sliding expiry it set so recently that a refresh
        would move it by no more than the refresh slack. None otherwise."""
        with self._lock:
            known = self._known.get(sid)
        if known is None or self._fixed:
            return known
        if known.expires_at is None:  # another process may give it a TTL: look again soon
            return known if now - known.seen_ms <= REFRESH_SLACK_MS else None
        drift = now + known.ttl_ms - known.expires_at
        return known if drift <= min(REFRESH_SLACK_MS, known.ttl_ms // 100) else None

    def forget(self, sid: str) -> None:
        with self._lock:
            self._known.pop(sid, None)

    def known(self) -> list[tuple[str, Indexed]]:
        with self._lock:
            return list(self._known.items())
