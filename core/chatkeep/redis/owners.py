"""What features keep of one owner beyond conversations, so that a data-protection
purge (``chatkeep purge --owner``) finds it all.

A feature whose package is loaded through the ``chatkeep.features`` entry point
registers a finder (the LangGraph adapter: checkpoint threads written for a user);
the CLI asks every finder, shows what each found, and deletes it with the owner's
conversations.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["OwnedData", "OWNED_DATA", "register_owned_data"]


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
