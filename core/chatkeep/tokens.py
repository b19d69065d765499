"""Token counts: counted once per message at write time, kept in its record.

A store's ``token_counter`` (a callable ``Message -> int``) counts each message when it
is written; the count is stored in the record (``"tk"``, right after the id) so that
``messages(session_id, max_tokens=N)`` can pick the newest messages that fit in N on
the server, reading only the tail it returns. The default, :func:`estimate_tokens`,
needs no tokenizer; pass your model's own for exact budgets (docs/store.md: "Token budgets").
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .message import Message

__all__ = ["TokenCounter", "estimate_tokens", "record_role", "record_tokens"]

TokenCounter = Callable[[Message], int]
"""Counts the tokens of one message (what a model's context window is measured in)."""

MESSAGE_OVERHEAD = 4
"""Tokens every message costs beyond its text (role and framing, as chat formats add)."""


def estimate_tokens(message: Message) -> int:
    """About one token per four characters of text, tool-call names and arguments
    (the usual rule of thumb for English with GPT-style tokenizers), plus
    :data:`MESSAGE_OVERHEAD`. Non-text content parts (images, audio) are not counted.
    An estimate: within about 20% for English prose, further off for code and other
    languages; use your model's tokenizer when the budget must be exact."""
    chars = len(message.text)
    if message.name:
        chars += len(message.name)
    for call in message.tool_calls:
        chars += len(call.name) + len(repr(call.arguments))
    return MESSAGE_OVERHEAD + (chars + 3) // 4


# What the server-side scripts read too (sessions/lua/budget.lua), anchored at the
# start: records begin {"v":1,"id":"<id>","tk":<count>,"role":"<role>", (when the id
# needs no escaping).
_COUNT = re.compile(rb'\{"v":1,"id":"[^"\\]*","tk":(\d+),')
_HEAD = re.compile(rb'\{"v":1,"id":"[^"\\]*",(?:"tk":\d+,)?"role":"([^"\\]*)",')


def record_tokens(record: bytes) -> int:
    """The token count stored in ``record``; for a record without one (written before
    counts were kept, or with an id that needed escaping), a quarter of its length."""
    found = _COUNT.match(record)
    if found is not None:
        return int(found.group(1))
    return (len(record) + 3) // 4


def record_role(record: bytes) -> str | None:
    """The role at the start of ``record`` (None when it cannot be read there)."""
    found = _HEAD.match(record)
    return None if found is None else found.group(1).decode("utf-8", "replace")
