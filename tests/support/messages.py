"""Short ways to write the messages a test appends and to read back what it got."""

from __future__ import annotations

from typing import Any

from chatkeep import Message


def msg(text: str, role: str = "user", **fields: Any) -> Message:
    """A text message (a user's unless ``role`` says otherwise)."""
    return Message(role=role, content=text, **fields)


def texts(messages: list[Message]) -> list[str]:
    return [m.text for m in messages]
