"""Session metadata: ``update_session`` sets a title and a status and merges a context,
atomically, without touching messages; ``info``/``sessions``/``recent`` report them and
``sessions(status=...)`` filters on them. Every backend, sync and async."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from chatkeep import (
    InvalidArgumentError,
    SerializationError,
    SessionInfo,
    SessionOwnershipError,
    ValueTooLargeError,
)
from tests.contract.conftest import Harness
from tests.support.messages import msg, texts


def test_update_creates_the_session_and_reports_it(store: Any) -> None:
    info = store.update_session(
        "s", title="Trip to Lyon", status="active", context={"topic": "travel"}
    )
    assert isinstance(info, SessionInfo)
    assert (info.title, info.status, info.context, info.message_count) == (
        "Trip to Lyon",
        "active",
        {"topic": "travel"},
        0,
    )
    assert info.created_at is not None and info.expires_at is not None
    again = store.info("s")
    assert (again.title, again.status, again.context, again.owner) == (
        "Trip to Lyon",
        "active",
        {"topic": "travel"},
        None,
    )
    assert again.created_at == info.created_at
    assert store.messages("s") == []


def test_context_is_merged_and_none_removes_a_key(store: Any) -> None:
    store.update_session("s", context={"topic": "travel", "flow": "booking", "n": 1})
    info = store.update_session("s", context={"flow": None, "n": 2, "queries": ["a", "b"]})
    assert info.context == {"topic": "travel", "n": 2, "queries": ["a", "b"]}
    assert store.info("s").context == info.context
    # values keep their JSON types, big integers and nesting included
    info = store.update_session("s", context={"big": 2**63 + 1, "deep": {"a": [1.5, None, True]}})
    assert info.context["big"] == 2**63 + 1 and info.context["deep"] == {"a": [1.5, None, True]}


def test_title_and_status_are_kept_unless_given_and_none_removes_them(store: Any) -> None:
    store.update_session("s", title="t", status="active")
    assert store.update_session("s", context={"k": 1}).title == "t"
    info = store.update_session("s", title=None)
    assert (info.title, info.status) == (None, "active")
    assert store.update_session("s", status=None).status is None


def test_metadata_does_not_touch_messages_and_messages_keep_metadata(store: Any) -> None:
    store.append("s", [msg("a"), msg("b")])
    info = store.update_session("s", title="t")
    assert info.message_count == 2
    assert texts(store.messages("s")) == ["a", "b"]
    store.append("s", [msg("c")])
    assert store.info("s").title == "t"
    assert store.info("s").message_count == 3


def test_sessions_filter_by_status_and_recent_prefers_the_given_title(store: Any) -> None:
    store.append("a", [msg("first words of a")])
    store.append("b", [msg("first words of b")])
    store.append("c", [msg("first words of c")])
    store.update_session("a", status="archived", title="Named A")
    store.update_session("b", status="active")
    assert {s.id for s in store.sessions(status="archived")} == {"a"}
    assert {s.id for s in store.sessions(status="active")} == {"b"}
    assert len(store.sessions()) == 3
    assert store.sessions(status="none-such") == []
    titles = {r.id: r.title for r in store.recent()}
    assert titles == {"a": "Named A", "b": "first words of b", "c": "first words of c"}


def test_owner_rules_apply_to_metadata(store: Any) -> None:
    store.update_session("s", title="mine", owner="u1")
    assert store.info("s").owner == "u1"
    with pytest.raises(SessionOwnershipError):
        store.update_session("s", title="theirs", owner="u2")
    assert store.info("s").title == "mine"
    assert [s.id for s in store.sessions(owner="u1")] == ["s"]


def test_ttl_given_to_update_becomes_the_sessions(store: Any) -> None:
    store.update_session("s", title="t", ttl=60)
    assert 0 < store.ttl("s") <= 60
    store.update_session("forever", title="t", ttl=None)
    assert store.ttl("forever") is None


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"title": 5}, InvalidArgumentError),
        ({"title": "x" * 1025}, InvalidArgumentError),
        ({"status": ""}, InvalidArgumentError),
        ({"status": 3}, InvalidArgumentError),
        ({"context": ["not", "a", "mapping"]}, InvalidArgumentError),
        ({"context": {1: "int key"}}, InvalidArgumentError),
        ({"context": {"when": object()}}, SerializationError),
        ({"context": {"big": "x" * 2_000_000}}, ValueTooLargeError),
    ],
)
def test_bad_metadata_raises_and_writes_nothing(
    store: Any, arguments: dict[str, Any], error: type[Exception]
) -> None:
    store.update_session("s", title="before", context={"k": 1})
    with pytest.raises(error):
        store.update_session("s", **{"title": "after", **arguments})
    info = store.info("s")
    assert (info.title, info.context) == ("before", {"k": 1})
    with pytest.raises(error):
        store.update_session("new", **arguments)
    assert store.info("new") is None


def test_sessions_status_must_be_a_status(store: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        store.sessions(status="")


def test_a_bad_context_entry_in_redis_is_skipped(
    harness: Harness, make_store: Callable[..., Any]
) -> None:
    if harness.backend == "memory":
        pytest.skip("no Redis to write a bad entry into")
    store = make_store()
    store.update_session("s", context={"good": 1})
    harness.client().hset(f"{harness.prefix}:{{s}}:h", "x:bad", "not json")
    assert store.info("s").context == {"good": 1}
    assert store.status().skipped_records >= 1
