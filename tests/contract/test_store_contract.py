"""The store contract: every test runs on memory, fakeredis and a real redis-server,
through the sync store and the async twin (see conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from chatkeep import (
    Conversion,
    InvalidArgumentError,
    InvalidMessageError,
    InvalidSessionId,
    Message,
    MessageTooLargeError,
    SessionOwnershipError,
    ToolCall,
)
from tests.support.messages import msg, texts

# -- append and read --------------------------------------------------------------------


def test_append_returns_new_length_and_reads_back_in_order(store: Any) -> None:
    assert store.append("s1", [msg("a"), msg("b", "assistant")]) == 2
    assert store.append("s1", [msg("c")]) == 3
    assert texts(store.messages("s1")) == ["a", "b", "c"]
    assert [m.role for m in store.messages("s1")] == ["user", "assistant", "user"]


def test_append_accepts_a_single_message_and_mappings(store: Any) -> None:
    assert store.append("s1", msg("one")) == 1
    assert store.append("s1", {"role": "assistant", "content": "two"}) == 2
    assert store.append("s1", [{"role": "user", "content": "three"}]) == 3
    assert texts(store.messages("s1")) == ["one", "two", "three"]


def test_append_of_nothing_reports_length_and_writes_nothing(store: Any) -> None:
    assert store.append("empty", []) == 0
    assert store.info("empty") is None
    store.append("s1", [msg("a")])
    assert store.append("s1", []) == 1


def test_messages_last_k_returns_the_newest_in_order(store: Any) -> None:
    store.append("s1", [msg(str(i)) for i in range(10)])
    assert texts(store.messages("s1", last=3)) == ["7", "8", "9"]
    assert texts(store.messages("s1", last=100)) == [str(i) for i in range(10)]
    assert store.messages("s1", last=0) == []


def test_missing_session_reads_empty_and_has_no_info(store: Any) -> None:
    assert store.messages("nope") == []
    assert store.info("nope") is None
    assert store.pop("nope") is None
    assert store.clear("nope") is False
    assert store.ttl("nope") == 0.0


def test_round_trip_keeps_every_field(store: Any) -> None:
    original = [
        Message(
            role="assistant",
            content=[{"type": "text", "text": "héllo ✓ 🎉"}, "plain part"],
            name="bot",
            tool_calls=[ToolCall(id="call_1", name="search", arguments={"q": "x", "n": [1, 2.5]})],
            metadata={"usage": {"in": 3}, "blob": b"\x00\xffbytes", "none": None},
            native={"type": "ai", "data": {"k": [True, False]}},
        ),
        Message(role="tool", content="result", tool_call_id="call_1"),
        Message(role="critic", content="custom role"),
    ]
    store.append("rt", original)
    assert store.messages("rt") == original


def test_messages_from_different_sessions_stay_apart(store: Any) -> None:
    store.append("a", [msg("for a")])
    store.append("b", [msg("for b")])
    assert texts(store.messages("a")) == ["for a"]
    assert texts(store.messages("b")) == ["for b"]


# -- reading into another message type ----------------------------------------------------


def _as_tuple(message: Message) -> tuple[str, str, str, tuple[str, ...]]:
    return (message.id, message.role, message.text, tuple(c.name for c in message.tool_calls))


def _record_as_tuple(record: dict[str, Any]) -> tuple[str, str, str, tuple[str, ...]] | None:
    if record["role"] == "critic":
        return None  # left to from_message
    if record["role"] == "system":
        raise ValueError("this builder cannot read system messages")  # also left to it
    calls = tuple(call["name"] for call in record.get("tool_calls", []))
    return (record["id"], record["role"], record["content"], calls)


def test_into_builds_the_same_results_from_records_and_from_messages(store: Any) -> None:
    written = [
        msg("hi"),
        msg("calling", "assistant", tool_calls=[ToolCall(id="c1", name="search", arguments={})]),
        msg("custom", "critic"),
        msg("be terse", "system"),
        msg("bye"),
    ]
    store.append("s1", written)
    seen: list[str] = []

    def from_record(record: dict[str, Any]) -> Any:
        seen.append(record["id"])
        return _record_as_tuple(record)

    from_messages_only = Conversion(_as_tuple)
    both = Conversion(_as_tuple, from_record)
    expected = [_as_tuple(m) for m in written]
    assert store.messages("s1", into=from_messages_only) == expected
    assert store.messages("s1", into=both) == expected
    assert store.messages("s1", last=2, into=both) == expected[-2:]
    assert store.messages("s1") == written  # a plain read is unchanged
    assert store.messages("nope", into=both) == []
    assert set(seen) <= {m.id for m in written}


def test_into_must_be_a_conversion(store: Any) -> None:
    store.append("s1", [msg("a")])
    with pytest.raises(InvalidArgumentError):
        store.messages("s1", into=_as_tuple)


# -- replace, insert, pop, clear --------------------------------------------------------


def test_replace_swaps_the_whole_history(store: Any) -> None:
    store.append("s1", [msg("old1"), msg("old2")])
    assert store.replace("s1", [msg("new")]) == 1
    assert texts(store.messages("s1")) == ["new"]
    assert store.replace("s1", []) == 0
    assert store.messages("s1") == []
    assert store.replace("fresh", [msg("x"), msg("y")]) == 2
    assert texts(store.messages("fresh")) == ["x", "y"]


@pytest.mark.parametrize(
    ("index", "expected"),
    [
        (0, ["N", "a", "b", "c"]),
        (1, ["a", "N", "b", "c"]),
        (3, ["a", "b", "c", "N"]),
        (99, ["a", "b", "c", "N"]),
        (-1, ["a", "b", "N", "c"]),
        (-99, ["N", "a", "b", "c"]),
    ],
)
def test_insert_follows_list_insert(store: Any, index: int, expected: list[str]) -> None:
    store.append("s1", [msg("a"), msg("b"), msg("c")])
    assert store.insert("s1", index, [msg("N")]) == 4
    assert texts(store.messages("s1")) == expected


def test_insert_several_keeps_their_order(store: Any) -> None:
    store.append("s1", [msg("a"), msg("d")])
    store.insert("s1", 1, [msg("b"), msg("c")])
    assert texts(store.messages("s1")) == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("index", "popped", "left"),
    [
        (-1, "d", ["a", "b", "c"]),
        (0, "a", ["b", "c", "d"]),
        (1, "b", ["a", "c", "d"]),
        (3, "d", ["a", "b", "c"]),
        (-2, "c", ["a", "b", "d"]),
        (4, None, ["a", "b", "c", "d"]),
        (-5, None, ["a", "b", "c", "d"]),
    ],
)
def test_pop_removes_exactly_one_and_keeps_order(
    store: Any, index: int, popped: str | None, left: list[str]
) -> None:
    store.append("s1", [msg("a"), msg("b"), msg("c"), msg("d")])
    got = store.pop("s1", index)
    assert (got.text if got else None) == popped
    assert texts(store.messages("s1")) == left


def test_pop_of_identical_messages_removes_the_right_one(store: Any) -> None:
    twin = msg("same")
    store.append("s1", [twin, msg("mid"), twin])
    store.pop("s1", 2)
    assert texts(store.messages("s1")) == ["same", "mid"]


def test_pop_the_only_message_leaves_an_empty_session(store: Any) -> None:
    store.append("s1", [msg("only")])
    assert store.pop("s1").text == "only"
    assert store.messages("s1") == []
    assert store.pop("s1") is None


def test_clear_removes_the_session(store: Any) -> None:
    store.append("s1", [msg("a")])
    assert store.clear("s1") is True
    assert store.messages("s1") == []
    assert store.info("s1") is None
    assert [s.id for s in store.sessions()] == []


# -- idempotency ------------------------------------------------------------------------


def test_same_idempotency_key_is_stored_once(store: Any) -> None:
    assert store.append("s1", [msg("turn")], idempotency_key="k1") == 1
    assert store.append("s1", [msg("turn")], idempotency_key="k1") == 1
    assert store.append("s1", [msg("next")], idempotency_key="k2") == 2
    assert texts(store.messages("s1")) == ["turn", "next"]


def test_idempotency_keys_are_per_session(store: Any) -> None:
    store.append("s1", [msg("a")], idempotency_key="k")
    store.append("s2", [msg("b")], idempotency_key="k")
    assert texts(store.messages("s2")) == ["b"]


def test_idempotency_remembers_the_recent_keys(store: Any) -> None:
    for i in range(31):
        store.append("s1", [msg(str(i))], idempotency_key=f"k{i}")
    store.append("s1", [msg("dup")], idempotency_key="k0")  # 31 keys back: still known
    assert len(store.messages("s1")) == 31


# -- ownership --------------------------------------------------------------------------


def test_other_owner_can_neither_read_nor_write(store: Any) -> None:
    store.append("s1", [msg("secret")], owner="alice")
    assert texts(store.messages("s1", owner="alice")) == ["secret"]
    for call in (
        lambda: store.messages("s1", owner="mallory"),
        lambda: store.append("s1", [msg("x")], owner="mallory"),
        lambda: store.replace("s1", [msg("x")], owner="mallory"),
        lambda: store.insert("s1", 0, [msg("x")], owner="mallory"),
        lambda: store.pop("s1", owner="mallory"),
        lambda: store.clear("s1", owner="mallory"),
        lambda: store.info("s1", owner="mallory"),
    ):
        with pytest.raises(SessionOwnershipError):
            call()
    assert texts(store.messages("s1")) == ["secret"]
    assert store.info("s1").owner == "alice"


def test_an_unowned_session_cannot_be_claimed(store: Any) -> None:
    store.append("s1", [msg("public")])
    with pytest.raises(SessionOwnershipError):
        store.append("s1", [msg("mine now")], owner="mallory")
    with pytest.raises(SessionOwnershipError):
        store.messages("s1", owner="mallory")


def test_sessions_lists_only_the_owners_sessions(store: Any) -> None:
    store.append("a1", [msg("x")], owner="alice")
    store.append("a2", [msg("x")], owner="alice")
    store.append("b1", [msg("x")], owner="bob")
    store.append("n1", [msg("x")])
    with pytest.raises(SessionOwnershipError):
        store.messages("a1", owner="bob")  # must not add a1 to bob's list
    assert sorted(s.id for s in store.sessions(owner="alice")) == ["a1", "a2"]
    assert [s.id for s in store.sessions(owner="bob")] == ["b1"]
    assert sorted(s.id for s in store.sessions()) == ["a1", "a2", "b1", "n1"]
    assert store.sessions(owner="carol") == []


# -- session ids ------------------------------------------------------------------------

TRICKY_IDS = [
    "plain",
    "a:b",
    "a:{b}",
    "{a}",
    "*",
    "?",
    "[x]",
    "with space",
    "new\nline",
    "tab\there",
    "ünïcödé-日本語-🎉",
    "%41",
    "A",
    "a" * 512,
    "x:m",
    "}:m",
]


def test_tricky_session_ids_each_get_their_own_session(store: Any) -> None:
    for sid in TRICKY_IDS:
        store.append(sid, [msg(sid)])
    for sid in TRICKY_IDS:
        assert texts(store.messages(sid)) == [sid]
    assert sorted(s.id for s in store.sessions()) == sorted(TRICKY_IDS)


@pytest.mark.parametrize(
    ("first", "second"),
    [("a:b", "a%3Ab"), ("a", "a:m"), ("a}", "a%7D"), ("x{y}", "x%7By%7D")],
)
def test_ids_that_naive_concatenation_would_collide_stay_apart(
    store: Any, first: str, second: str
) -> None:
    store.append(first, [msg("first")])
    store.append(second, [msg("second")])
    assert texts(store.messages(first)) == ["first"]
    assert texts(store.messages(second)) == ["second"]


@pytest.mark.parametrize("bad", ["", "a" * 513, None, 42, b"bytes", "\ud800"])
def test_invalid_session_ids_raise(store: Any, bad: Any) -> None:
    with pytest.raises(InvalidSessionId):
        store.append(bad, [msg("x")])
    with pytest.raises(InvalidSessionId):
        store.messages(bad)


def test_invalid_session_id_is_a_value_error(store: Any) -> None:
    with pytest.raises(ValueError):
        store.messages("")


# -- limits and bad input ---------------------------------------------------------------


def test_too_large_message_raises_and_writes_nothing(make_store: Any) -> None:
    store = make_store(max_message_bytes=1000)
    store.append("s1", [msg("kept")])
    with pytest.raises(MessageTooLargeError) as info:
        store.append("s1", [msg("fine"), msg("x" * 2000)])
    assert info.value.index == 1
    assert texts(store.messages("s1")) == ["kept"]
    with pytest.raises(MessageTooLargeError):
        store.replace("s1", [msg("x" * 2000)])
    assert texts(store.messages("s1")) == ["kept"]


def test_default_message_limit_is_one_mebibyte(store: Any) -> None:
    assert store.config.max_message_bytes == 1024 * 1024
    store.append("s1", [msg("x" * 500_000)])
    with pytest.raises(MessageTooLargeError):
        store.append("s1", [msg("x" * 1_100_000)])
    assert len(store.messages("s1")) == 1


@pytest.mark.parametrize(
    "bad",
    ["just text", 42, [42], [{"content": "no role"}], [{"role": "", "content": "x"}], None],
)
def test_invalid_messages_raise_and_write_nothing(store: Any, bad: Any) -> None:
    with pytest.raises(InvalidMessageError):
        store.append("s1", bad)
    assert store.info("s1") is None


def test_unencodable_value_raises_serialization_error(store: Any) -> None:
    from chatkeep import SerializationError

    with pytest.raises(SerializationError):
        store.append("s1", [Message(role="user", content="x", metadata={"s": {1, 2}})])
    with pytest.raises(SerializationError):
        store.append("s1", [Message(role="user", content="x", metadata={"f": float("nan")})])
    assert store.info("s1") is None


@pytest.mark.parametrize("bad", [-1, 1.5, "3", True])
def test_bad_last_raises(store: Any, bad: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        store.messages("s1", last=bad)


@pytest.mark.parametrize("bad", [0, -5, "1"])
def test_bad_ttl_raises(store: Any, bad: Any) -> None:
    with pytest.raises(InvalidArgumentError):
        store.append("s1", [msg("x")], ttl=bad)
    assert store.info("s1") is None


def test_max_messages_keeps_the_newest(make_store: Any) -> None:
    store = make_store(max_messages=3)
    for i in range(5):
        store.append("s1", [msg(str(i))])
    assert texts(store.messages("s1")) == ["2", "3", "4"]
    assert store.append("s1", [msg("5"), msg("6")]) == 3
    assert texts(store.messages("s1")) == ["4", "5", "6"]


# -- TTL --------------------------------------------------------------------------------


def test_default_ttl_is_seven_days(store: Any) -> None:
    store.append("s1", [msg("a")])
    left = store.ttl("s1")
    assert 7 * 86400 - 60 < left <= 7 * 86400


def test_ttl_per_call_becomes_the_sessions_ttl(store: Any) -> None:
    store.append("s1", [msg("a")], ttl=3600)
    assert 3500 < store.ttl("s1") <= 3600
    store.append("s1", [msg("b")])  # no ttl given: the session keeps its own
    assert 3500 < store.ttl("s1") <= 3600
    store.messages("s1")
    assert 3500 < store.ttl("s1") <= 3600


def test_ttl_none_never_expires(store: Any) -> None:
    store.append("s1", [msg("a")], ttl=None)
    assert store.ttl("s1") is None
    assert store.info("s1").expires_at is None
    never = store.config.replace(ttl=None)
    assert never.ttl is None


def test_store_without_ttl(make_store: Any) -> None:
    store = make_store(ttl=None)
    store.append("s1", [msg("a")])
    assert store.ttl("s1") is None


def test_info_describes_the_session(store: Any) -> None:
    store.append("s1", [msg("a"), msg("b")], owner="u1")
    info = store.info("s1")
    assert info.id == "s1"
    assert info.owner == "u1"
    assert info.message_count == 2
    assert info.created_at <= info.updated_at < info.expires_at


def test_sessions_limit_and_most_recent_first(store: Any) -> None:
    for sid in ("s1", "s2", "s3"):
        store.append(sid, [msg("x")])
    listed = store.sessions(limit=2)
    assert len(listed) == 2
    assert {s.id for s in listed} <= {"s1", "s2", "s3"}
    with pytest.raises(InvalidArgumentError):
        store.sessions(limit=0)


def test_status_when_healthy(store: Any, harness: Any) -> None:
    store.append("s1", [msg("a")])
    status = store.status()
    assert status.degraded is False
    assert status.pending_replay == 0
    assert status.backend == ("memory" if harness.backend == "memory" else "redis")


def test_repr_hides_credentials(make_store: Any, harness: Any) -> None:
    if harness.backend == "memory":
        store = make_store(url="memory://user:hunter2@x")
    else:
        store = make_store()
    assert "hunter2" not in repr(store)
    assert "hunter2" not in repr(store.config)
    assert "hunter2" not in store.config.model_dump_json()


def test_a_closed_store_refuses_calls(make_store: Any) -> None:
    store = make_store()
    store.close()
    with pytest.raises(InvalidArgumentError):
        store.messages("s1")
    store.close()  # closing twice is fine


def test_every_backend_returns_what_a_redis_round_trip_returns(store: Any) -> None:
    import uuid

    ident = uuid.uuid4()
    store.append("s1", [Message(role="user", content="x", metadata={"u": ident, "b": b"\x01"})])
    read = store.messages("s1")[0]
    assert read.metadata == {"u": str(ident), "b": b"\x01"}
    assert store.pop("s1").metadata == {"u": str(ident), "b": b"\x01"}


def test_fixed_ttl_counts_from_creation_even_with_a_new_ttl(make_store: Any) -> None:
    import time

    store = make_store(ttl=100, ttl_mode="fixed")
    store.append("s1", [msg("a")])
    time.sleep(0.3)
    store.append("s1", [msg("b")])
    store.messages("s1")
    assert 99.0 <= store.ttl("s1") <= 99.8
    store.append("s1", [msg("c")], ttl=50)
    assert 49.0 <= store.ttl("s1") <= 49.8


def test_recent_conversations_are_titled_by_their_first_user_message(store: Any) -> None:
    store.append(
        "c1",
        [msg("Be brief.", "system"), msg("  Plan a trip\nto Lisbon  "), msg("ok", "assistant")],
        owner="u",
    )
    store.append("c2", [msg("x" * 200)], owner="u")
    store.append("c3", [msg("only the assistant", "assistant")], owner="u")
    store.append("other", [msg("not u's")], owner="v")
    store.append("c2", [msg("later question")], owner="u")
    recent = store.recent(owner="u")
    by_id = {r.id: r for r in recent}
    assert set(by_id) == {"c1", "c2", "c3"}
    assert by_id["c1"].title == "Plan a trip to Lisbon"
    assert by_id["c2"].title == "x" * 79 + "…"
    assert by_id["c3"].title is None
    assert by_id["c1"].message_count == 3 and by_id["c1"].owner == "u"
    assert len(store.recent(owner="u", limit=2)) == 2
    assert "Lisbon" not in repr(by_id["c1"])  # content stays out of repr
