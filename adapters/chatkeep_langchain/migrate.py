"""Bring conversations over from ``langchain_community``'s Redis history."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import messages_from_dict

from chatkeep import ConfigurationError

from .history import RedisChatMessageHistory

__all__ = ["import_community_history"]


def import_community_history(
    client: Any,
    history: RedisChatMessageHistory,
    *,
    key_prefix: str = "message_store:",
    session_id: str | None = None,
    delete: bool = False,
) -> int:
    """Copy one ``langchain_community`` conversation into ``history``; return how
    many messages were copied.

    ``langchain_community`` keeps a session in the LIST ``<key_prefix><session_id>``,
    newest first, one ``message_to_dict`` JSON per item. ``client`` is a sync
    ``redis.Redis`` on that database; ``session_id`` defaults to the history's.
    The copy is one append with an idempotency key, so running it again does not
    duplicate the messages (within the store's idempotency memory). ``delete=True``
    removes the old key afterwards.
    """
    sid = history.session_id if session_id is None else session_id
    key = f"{key_prefix}{sid}"
    raw = client.lrange(key, 0, -1)
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
    if delete:
        client.delete(key)
    return len(records)
