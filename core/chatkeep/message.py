"""The framework-neutral message model.

A :class:`Message` carries the neutral fields every adapter can read (role, text or
content parts, tool calls) plus ``native``: the writing framework's own serialised
form, so a message read back by the framework that wrote it compares equal.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["ContentPart", "Message", "Role", "ToolCall"]

Role = Union[Literal["system", "user", "assistant", "tool", "function"], str]  # noqa: UP007
"""The usual roles, or any other non-empty string (e.g. a custom ChatMessage role)."""

ContentPart = Union[str, dict[str, Any]]  # noqa: UP007
"""One part of a multi-part content: plain text or a typed block such as
``{"type": "text", "text": ...}`` or ``{"type": "image_url", "image_url": {...}}``."""


def _new_id() -> str:
    # 128 random bits as 32 hex digits (what uuid4().hex gives, at a fifth of its cost).
    return os.urandom(16).hex()


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ToolCall(BaseModel):
    """A tool (function) call requested by an assistant message."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str | None = None
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One message of a conversation. Immutable once made."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=_new_id, min_length=1)
    role: Role = Field(min_length=1)
    content: str | list[ContentPart] = ""
    name: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    tool_call_id: str | None = None
    created_at: datetime = Field(default_factory=_utcnow)
    metadata: dict[str, Any] = Field(default_factory=dict)
    native: dict[str, Any] | None = None
    """The writing framework's own form of the message, kept for a lossless round trip."""

    @field_validator("created_at")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        # Naive datetimes are taken as UTC so that stored and read values compare equal.
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    @property
    def text(self) -> str:
        """The text of the message: ``content`` if it is a string, else its text parts joined."""
        if isinstance(self.content, str):
            return self.content
        texts: list[str] = []
        for part in self.content:
            if isinstance(part, str):
                texts.append(part)
            elif part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
        return "".join(texts)

    def __repr__(self) -> str:
        # Content stays out of repr (and so out of logs and tracebacks).
        return (
            f"Message(id={self.id!r}, role={self.role!r}, "
            f"content=<{len(self.text)} chars>, tool_calls={len(self.tool_calls)})"
        )

    __str__ = __repr__
