"""Session analytics kept with the session at no extra round trip: messages by role
and tokens stored (with ``updated_at``, the last activity), as every write leaves
them. Every backend, sync and async."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chatkeep import Message
from tests.contract.conftest import Harness
from tests.support.messages import msg


def words(message: Message) -> int:
    return len(message.text.split())


def said(n: int, role: str = "user") -> Message:
    return msg(" ".join(["w"] * n), role)


def analytics(store: Any, sid: str) -> tuple[dict[str, int], int | None]:
    info = store.info(sid)
    assert info is not None
    return info.messages_by_role, info.tokens


def test_every_write_keeps_counts_by_role_and_tokens(make_store: Callable[..., Any]) -> None:
    store = make_store(token_counter=words)
    store.append("s", [said(3, "system"), said(2), said(4, "assistant")])
    assert analytics(store, "s") == ({"system": 1, "user": 1, "assistant": 1}, 9)
    store.append("s", [said(1), said(5, "tool")])
    assert analytics(store, "s") == ({"system": 1, "user": 2, "assistant": 1, "tool": 1}, 15)
    store.pop("s", 0)
    assert analytics(store, "s") == ({"user": 2, "assistant": 1, "tool": 1}, 12)
    store.insert("s", 1, [said(6, "critic")])
    assert analytics(store, "s") == ({"user": 2, "assistant": 1, "tool": 1, "critic": 1}, 18)
    store.replace("s", [said(2, "assistant")])
    assert analytics(store, "s") == ({"assistant": 1}, 2)
    info = store.info("s")
    assert info.updated_at is not None  # the last activity
    assert store.sessions()[0].messages_by_role == {"assistant": 1}


def test_trimmed_messages_leave_the_counts(make_store: Callable[..., Any]) -> None:
    store = make_store(token_counter=words, max_messages=3)
    store.append("s", [said(1, "system"), said(2), said(3, "assistant")])
    store.append("s", [said(4), said(5, "assistant")])
    assert analytics(store, "s") == ({"assistant": 2, "user": 1}, 12)


def test_a_session_with_only_metadata_has_no_messages_counted(
    make_store: Callable[..., Any],
) -> None:
    store = make_store(token_counter=words)
    store.update_session("s", title="t")
    assert store.info("s").messages_by_role == {}
    store.append("s", [said(2)])
    assert analytics(store, "s") == ({"user": 1}, 2)


def test_sessions_written_before_analytics_are_counted_on_their_next_write(
    harness: Harness, make_store: Callable[..., Any]
) -> None:
    """A session whose hash has no counts yet (written by an older chatkeep) reports
    none, and its next write counts everything it holds."""
    if harness.backend == "memory":
        pytest.skip("memory:// holds no session written by another version")
    store = make_store(token_counter=words)
    store.append("s", [said(2), said(3, "assistant")])
    raw = harness.client()
    key = f"{harness.prefix}:{{s}}:h"
    raw.hdel(key, "tt", "r:user", "r:assistant")
    assert analytics(store, "s") == ({}, None)
    store.append("s", [said(1)])
    assert analytics(store, "s") == ({"user": 2, "assistant": 1}, 6)
