"""Result cache operations and their results.

The Redis family, the local backend (``memory://``) and the fallback mirror carry out
the same operations. Nothing of a cache is journaled: while Redis is away its writes
are kept in this process only.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Claim", "Claimed", "Clear", "Delete", "Op", "Release", "Set"]


@dataclass(slots=True)
class Claim:
    """Read an entry; with a ``token``, also claim the right to compute it when missing."""

    digest: str
    token: str  # "" = read only
    lock_ms: int
    ttl_ms: int  # how long the mirror keeps a value it learns from this read (0 = never)


@dataclass(slots=True)
class Set:
    """Store an entry (and release the claim of ``token``, if any)."""

    digest: str
    data: bytes
    ttl_ms: int  # 0 = never expires
    token: str


@dataclass(slots=True)
class Release:
    """Give up the claim of ``token`` (its computation failed)."""

    digest: str
    token: str


@dataclass(slots=True)
class Delete:
    digest: str


@dataclass(slots=True)
class Clear:
    """Forget every entry of the namespace."""


Op = Claim | Set | Release | Delete | Clear


@dataclass(frozen=True, slots=True)
class Claimed:
    """What a :class:`Claim` found."""

    data: bytes | None  # the stored entry (flag byte + JSON), or None
    claimed: bool = False  # this caller holds the lock: it computes
    local: bool = False  # answered in this process (memory://, or Redis away)
