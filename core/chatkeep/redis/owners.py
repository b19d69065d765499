"""What features keep besides conversations, so that the ``chatkeep`` command sees it
all: lists it, shows it, exports and imports it, and deletes it with an owner's
conversations (a data-protection purge, ``chatkeep purge --owner``).

A feature registers a :class:`DataKind` with :func:`register_data_kind` (the LangGraph
adapter: checkpoint threads and store namespaces; chatkeep itself: long-term memory
namespaces and result caches); a package loaded through the ``chatkeep.features``
entry point registers its kinds on import. :func:`register_owned_data` is the older,
narrower hook (count and delete an owner's items), still honoured.

A session id ``<id>\x00<part>`` (a NUL, then a name) holds a part of session ``<id>``
kept apart, as LlamaIndex ``Memory``'s archive (``<key>\x00archived``): the command
shows it as ``<id> [<part>]`` and reaches it with ``show <id> --part <part>``.
:data:`PART_MARK` is that NUL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

__all__ = [
    "DATA_KINDS",
    "OWNED_DATA",
    "PART_MARK",
    "DataItem",
    "DataKind",
    "DataSite",
    "OwnedData",
    "register_data_kind",
    "register_owned_data",
    "session_part",
]


@dataclass(frozen=True)
class OwnedData:
    """What one feature holds of one owner."""

    what: str
    """What the items are, plural (e.g. "LangGraph threads")."""
    count: int
    delete: Callable[[], int]
    """Deletes them; returns how many were deleted."""


OwnedFinder = Callable[[Any, str], OwnedData]
"""``(store, owner) -> OwnedData``: ``store`` is a sync ConversationStore of the prefix."""

OWNED_DATA: dict[str, OwnedFinder] = {}


def register_owned_data(name: str, finder: OwnedFinder) -> None:
    """Register what feature ``name`` keeps per owner (replaces an earlier finder)."""
    OWNED_DATA[name] = finder


class DataSite(Protocol):
    """Where a :class:`DataKind` works: one prefix of one Redis, reached with
    ``fallback="raise"`` (an administrator hears that Redis is unreachable)."""

    @property
    def config(self) -> Any:
        """The :class:`chatkeep.StoreConfig` (its ``prefix``, its ``ttl``...)."""

    @property
    def store(self) -> Any:
        """A sync :class:`chatkeep.ConversationStore` of the prefix (its connection)."""

    def send(self, commands: list[Any], *, checked: bool = True) -> list[Any]:
        """One round trip of raw commands (errors translated, and raised if checked)."""

    def run(self, flow: Any) -> Any:
        """Drive a flow (:mod:`chatkeep.redis.flows`) on Redis, with no fallback."""


@dataclass(frozen=True)
class DataItem:
    """One thing a kind keeps: a thread, a namespace..."""

    id: str
    """What names it for ``chatkeep show --kind`` (a thread id, a dotted namespace)."""
    owner: str | None
    count: int
    """How many records it holds (checkpoints, values, entries)."""
    updated_at: datetime | None = None
    expires_at: datetime | None = None
    """When it expires if nothing touches it (None: never, or not known)."""


class DataKind(Protocol):
    """What one feature keeps, as the ``chatkeep`` command handles it. Every value a
    method returns or takes is JSON-safe (export files are JSON lines)."""

    name: str
    """Stable name: ``chatkeep --kind NAME`` and the ``kind`` of export lines."""
    what: str
    """What the items are, plural ("LangGraph threads")."""
    unit: str
    """What :attr:`DataItem.count` counts, plural ("checkpoints")."""

    def items(self, site: DataSite, owner: str | None) -> Iterator[DataItem]:
        """Every item (``owner``'s only when given: none if the kind has no owners)."""

    def show(self, site: DataSite, item_id: str) -> dict[str, Any] | None:
        """A readable, JSON-safe view of one item; None if there is none."""

    def export(self, site: DataSite, item_id: str) -> dict[str, Any] | None:
        """Everything of one item, JSON-safe, as :meth:`restore` takes it back."""

    def restore(
        self, site: DataSite, item_id: str, owner: str | None, data: dict[str, Any], ttl: Any
    ) -> int:
        """Write back what :meth:`export` gave (merged with what is there); ``ttl`` is
        seconds, None for never, or ``chatkeep.UNSET`` for the exported/default one.
        Returns how many records were written. Bad data: a ``ValueError``."""

    def delete(self, site: DataSite, items: list[DataItem]) -> int:
        """Delete items (as :meth:`items` listed them); returns how many existed."""

    # Optional: ``claims(site) -> set[tuple[str, ...]]``, the long-term memory
    # namespaces this kind keeps its items in, which the ``memory`` kind then leaves
    # to it (LangGraph's store).


DATA_KINDS: dict[str, DataKind] = {}


def register_data_kind(kind: DataKind) -> None:
    """Register (or replace) the kind named ``kind.name``."""
    DATA_KINDS[kind.name] = kind


PART_MARK = "\x00"
"""Separates a session id from the name of a part of it kept apart (no framework's
ids hold a NUL; the LlamaIndex adapter refuses keys with one)."""


def session_part(session_id: str) -> tuple[str, str | None]:
    """(the session ``session_id`` is a part of, the part's name), or (id, None)."""
    base, mark, part = session_id.rpartition(PART_MARK)
    if not mark or not base or not part:
        return session_id, None
    return base, part
