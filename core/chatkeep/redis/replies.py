"""Reading Redis replies: raw (bytes, ints, nil) on one server, parsed on a Cluster."""

from __future__ import annotations

from typing import Any

__all__ = ["reply_int", "reply_str", "reply_text"]


def reply_str(value: Any) -> str:
    """A reply as text (bytes decoded as UTF-8, anything undecodable replaced)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def reply_text(value: Any) -> str | None:
    """A reply as text, or None for nil (or false, as Lua returns a missing value)."""
    return None if value is None or value is False else reply_str(value)


def reply_int(value: Any) -> int | None:
    """A reply as an integer, or None when nil or not an integer (a field written by
    something other than chatkeep)."""
    if value is None or value is False:
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
