"""``store.search``: the contract on every backend of the matrix (memory, fakeredis,
real Redis, Cluster, Sentinel, TLS, ACL; sync and async, see conftest.py)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from chatkeep import (
    InvalidArgumentError,
    InvalidSessionId,
    Message,
    SessionOwnershipError,
    ToolCall,
)
from chatkeep.sessions.search import SEARCH_BOUND
from tests.support.messages import msg, texts


def test_search_is_case_insensitive_newest_first_and_limited(store: Any) -> None:
    store.append("s", [msg(f"Weather report {i}") for i in range(5)])
    store.append("s", [msg("nothing here", "assistant"), msg("the WEATHER today")])
    found = store.search("s", "weather")
    assert texts(found) == ["the WEATHER today", *(f"Weather report {i}" for i in range(4, -1, -1))]
    assert texts(store.search("s", "WeAtHeR", limit=2)) == ["the WEATHER today", "Weather report 4"]
    assert store.search("s", "absent") == []
    assert store.search("no-such-session", "weather") == []


def test_search_returns_whole_messages(store: Any) -> None:
    written = Message(
        role="assistant",
        content="Paris it is",
        name="bot",
        metadata={"usage": {"in": 3}},
        native={"type": "ai"},
    )
    store.append("s", [msg("where to?"), written])
    assert store.search("s", "paris") == [written]


def test_search_matches_text_parts_joined_as_message_text(store: Any) -> None:
    parts = Message(
        role="user",
        content=[{"type": "text", "text": "hello wor"}, "ld, again", {"type": "image_url",
                 "image_url": {"url": "https://example.com/needle.png"}}],
    )  # fmt: skip
    store.append("s", [parts])
    assert store.search("s", "WORLD, AG") == [parts]  # across two parts, as .text joins them
    assert store.search("s", "needle") == []  # not a text part
    assert store.search("s", "image_url") == []


def test_search_matches_tool_call_arguments_as_json_text(store: Any) -> None:
    call = Message(
        role="assistant",
        content="",
        tool_calls=[
            ToolCall(id="call_1", name="lookup", arguments={}),
            ToolCall(id="call_2", name="get_weather", arguments={"city": "Paris", "days": 3}),
        ],
    )
    result = Message(role="tool", content="sunny", tool_call_id="call_2", name="get_weather")
    store.append("s", [call, result])
    assert store.search("s", "pARIs") == [call]
    assert store.search("s", '"city":"paris"') == [call]  # the arguments' JSON text
    assert store.search("s", "days") == [call]  # keys of the arguments are their text
    assert store.search("s", "sunny") == [result]


def test_search_never_matches_record_keys_ids_roles_names_or_metadata(store: Any) -> None:
    written = Message(
        id="idneedle",
        role="rolecritic",
        content="plain text",
        name="nameneedle",
        tool_calls=[ToolCall(id="callneedle", name="toolneedle", arguments={"a": 1})],
        tool_call_id="tcneedle",
        metadata={"meta": "metaneedle"},
        native={"nativekey": "nativeneedle"},
    )
    store.append("s", [written])
    for query in (
        "idneedle", "rolecritic", "nameneedle", "callneedle", "toolneedle", "tcneedle",
        "metaneedle", "nativeneedle", "content", "role", '"v":1', "tool_calls", "arguments",
        "plain text\"",
    ):  # fmt: skip
        assert store.search("s", query) == [], query
    assert store.search("s", "PLAIN") == [written]


def test_search_matches_the_text_not_its_json_escapes(store: Any) -> None:
    quoted = msg('she said "hi"\nthen left \\ back')
    store.append("s", [quoted, msg("unrelated")])
    assert store.search("s", 'said "HI"\nthen') == [quoted]
    assert store.search("s", "left \\ back") == [quoted]
    assert store.search("s", "\\n") == []  # the escape is not the text
    assert store.search("s", "hi\\") == []


def test_search_folds_two_byte_letters_and_keeps_others_exact(store: Any) -> None:
    store.append(
        "s",
        [
            msg("Été à PARIS"),
            msg("ЖУК и ΣΟΦΊΑ"),
            msg("Straße"),
            msg("東京 tokyo"),
            msg("200 \u212a"),  # KELVIN SIGN: three UTF-8 bytes, not folded
        ],
    )
    assert texts(store.search("s", "été à paris")) == ["Été à PARIS"]
    assert texts(store.search("s", "ÉTÉ")) == ["Été à PARIS"]
    assert texts(store.search("s", "жук")) == ["ЖУК и ΣΟΦΊΑ"]
    assert texts(store.search("s", "σοφία")) == ["ЖУК и ΣΟΦΊΑ"]
    assert texts(store.search("s", "STRASSE")) == []  # ß has no one-letter upper case
    assert texts(store.search("s", "STRAßE")) == ["Straße"]
    assert texts(store.search("s", "東京 TOKYO")) == ["東京 tokyo"]
    assert texts(store.search("s", "200 \u212a")) == ["200 \u212a"]
    assert texts(store.search("s", "200 k")) == []


def test_search_checks_the_owner_like_reads(store: Any) -> None:
    store.append("mine", [msg("secret plan")], owner="u1")
    assert texts(store.search("mine", "plan", owner="u1")) == ["secret plan"]
    assert texts(store.search("mine", "plan")) == ["secret plan"]  # no owner given: unchecked
    with pytest.raises(SessionOwnershipError):
        store.search("mine", "plan", owner="u2")
    store.append("open", [msg("public plan")])
    with pytest.raises(SessionOwnershipError):
        store.search("open", "plan", owner="u1")  # an unowned session is nobody's to claim
    assert store.search("missing", "plan", owner="u1") == []


@pytest.mark.parametrize(
    ("query", "limit"),
    [("", 10), ("x", 0), ("x", -1), ("x", True), ("x", 1.5), ("x", None), (None, 10),
     (b"x", 10), (3, 10), ("x" * 1001, 10)],
)  # fmt: skip
def test_search_refuses_bad_arguments(store: Any, query: Any, limit: Any) -> None:
    store.append("s", [msg("x")])
    with pytest.raises(InvalidArgumentError):
        store.search("s", query, limit=limit)


def test_search_refuses_a_bad_session_id(store: Any) -> None:
    with pytest.raises(InvalidSessionId):
        store.search("", "x")


def test_search_changes_nothing_and_refreshes_no_ttl(make_store: Any) -> None:
    store = make_store(ttl=60)
    store.append("s", [msg("a needle"), msg("b")])
    before = store.ttl("s")
    time.sleep(0.3)
    assert texts(store.search("s", "needle")) == ["a needle"]
    after = store.ttl("s")
    assert after is not None and before is not None and after <= before - 0.2
    assert texts(store.messages("s")) == ["a needle", "b"]
    assert store.info("s").message_count == 2


def test_search_looks_at_the_newest_search_bound_messages_only(store: Any) -> None:
    old = [msg(f"old needle {i}") for i in range(3)]
    recent = [msg(f"filler {i}") for i in range(SEARCH_BOUND - 1)] + [msg("new needle")]
    store.append("s", old + recent)
    found = store.search("s", "needle", limit=10)
    assert texts(found) == ["new needle"]  # the old ones lie beyond the bound
    assert texts(store.search("s", "filler 0", limit=1)) == ["filler 0"]  # the oldest searched
