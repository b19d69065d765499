"""Bring conversations over from ``langchain_community``'s Redis history."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import messages_from_dict

from chatkeep import ConfigurationError
from chatkeep.redis import plural

from .history import RedisChatMessageHistory

__all__ = ["COMMUNITY_KEY_PREFIX", "ImportResult", "import_community_history"]

logger = logging.getLogger("chatkeep.langchain")

COMMUNITY_KEY_PREFIX = "message_store:"
"""``langchain_community``'s default ``key_prefix``."""


@dataclass(frozen=True)
class ImportResult:
    """What :func:`import_community_history` did."""

    key: str
    """The ``langchain_community`` key that was read."""
    found: bool
    """Whether that key held a conversation."""
    read: int
    """Messages read from it."""
    copied: int
    """Messages appended to the chatkeep history (a retried import stores them once)."""
    skipped: int
    """Messages the history's ``to_record`` left out."""
    deleted: bool
    """Whether the old key was deleted (``delete=True``)."""

    def __str__(self) -> str:
        if not self.found:
            return f"no conversation at {self.key!r}"
        return (
            f"copied {plural(self.copied, 'message')} from {self.key!r}"
            + (f" ({self.skipped} left out by to_record)" if self.skipped else "")
            + (", then deleted it" if self.deleted else "")
        )


def import_community_history(
    source: Any,
    history: RedisChatMessageHistory,
    *,
    key_prefix: str | None = None,
    session_id: str | None = None,
    delete: bool = False,
) -> ImportResult:
    """Copy one ``langchain_community`` conversation into ``history``.

    ``source`` is the old ``langchain_community.chat_message_histories.
    RedisChatMessageHistory`` itself (its client, key prefix and session id are used),
    or a sync ``redis.Redis`` on its database: then the key is ``<key_prefix><session_id>``
    (``key_prefix`` defaults to ``"message_store:"``, ``session_id`` to the history's).
    ``langchain_community`` keeps a session in that LIST, newest first, one
    ``message_to_dict`` JSON per item.

    The copy is one append with an idempotency key, so running it again does not
    duplicate the messages (within the store's idempotency memory). ``delete=True``
    removes the old key afterwards. Returns an :class:`ImportResult`; a key that holds
    nothing is reported (``found=False``) and logged as a warning.
    """
    client, key = _source_key(source, history, key_prefix, session_id)
    raw = client.lrange(key, 0, -1)
    if not raw:
        logger.warning(
            "no langchain_community conversation at key %r (is the key prefix right? pass "
            "the old history itself to use its own)",
            key,
        )
    items = [json.loads(item) for item in reversed(raw)]
    messages = messages_from_dict(items)
    records = [r for r in (history.to_record(m) for m in messages) if r is not None]
    if records:
        store = history.store
        if store is None:
            raise ConfigurationError("importing needs a history with a sync store")
        store.append(
            history.store_session_id,
            records,
            owner=history.owner,
            ttl=history._append_ttl,
            idempotency_key=f"chatkeep-langchain:import:{key}",
        )
    deleted = bool(delete and raw)
    if deleted:
        client.delete(key)
    return ImportResult(
        key=key,
        found=bool(raw),
        read=len(messages),
        copied=len(records),
        skipped=len(messages) - len(records),
        deleted=deleted,
    )


def _source_key(
    source: Any,
    history: RedisChatMessageHistory,
    key_prefix: str | None,
    session_id: str | None,
) -> tuple[Any, str]:
    """(client, key) of the conversation to import."""
    if hasattr(source, "key_prefix") and hasattr(source, "session_id"):
        # langchain_community's history: its own client, prefix and session.
        if key_prefix is not None and key_prefix != source.key_prefix:
            raise ConfigurationError(
                f"key_prefix {key_prefix!r} differs from the source history's "
                f"{source.key_prefix!r}; leave it out to use the history's"
            )
        if session_id is not None and session_id != source.session_id:
            raise ConfigurationError(
                "session_id differs from the source history's; leave it out to use its own"
            )
        client = getattr(source, "redis_client", None)
        if client is None:
            raise ConfigurationError(
                "the source history has no Redis client (it could not connect when made)"
            )
        return client, f"{source.key_prefix}{source.session_id}"
    if not callable(getattr(source, "lrange", None)):
        raise ConfigurationError(
            "source must be a langchain_community RedisChatMessageHistory or a sync "
            f"redis.Redis client, not {type(source).__name__}"
        )
    prefix = COMMUNITY_KEY_PREFIX if key_prefix is None else key_prefix
    sid = history.session_id if session_id is None else session_id
    return source, f"{prefix}{sid}"
