"""Long-term memory operations and their results.

A store method validates and encodes its arguments once into an operation; the Redis
family, the local backend (``memory://``) and the fallback mirror carry out the same
operation, and the journal keeps the writes (:class:`Put`, :class:`Delete`) for replay.
``ns`` is always the escaped namespace (its parts joined by ``:``).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Delete", "Found", "Get", "Item", "List", "Op", "Put", "Ttl", "Vectors"]

Item = tuple[str, bytes, bool, int]
"""One value to write: key, JSON data, whether bytes were tagged, TTL ms (0 = never)."""

Found = tuple[bytes, bool, int] | None
"""One value read: JSON data, whether bytes were tagged, TTL ms; None when missing."""


@dataclass(slots=True)
class Put:
    ns: str
    items: list[Item]
    # Embeddings of the values (chatkeep.vectors blobs) by key; a value put without one
    # loses the one it had (it described the old value).
    vectors: dict[str, bytes] | None = None


@dataclass(slots=True)
class Get:
    ns: str
    keys: list[str]
    refresh: bool = True  # slide the TTLs of what is read (in sliding mode)
    # A search's read of what it returns: the embeddings it ranked these keys by (the
    # mirror keeps them with the values: a search in an outage ranks them). Such a read
    # answers (values, embeddings as they are now), so a value replaced since it was
    # ranked is not returned with the score of the one it replaced.
    vectors: dict[str, bytes] | None = None


@dataclass(slots=True)
class Delete:
    ns: str
    keys: list[str]


@dataclass(slots=True)
class List:
    ns: str
    prefix: str


@dataclass(slots=True)
class Ttl:
    ns: str
    key: str


@dataclass(slots=True)
class Vectors:
    """The embeddings of values (None where a value has none or is missing); no
    TTL refresh: a search refreshes only what it returns."""

    ns: str
    keys: list[str]


Op = Put | Get | Delete | List | Ttl | Vectors
