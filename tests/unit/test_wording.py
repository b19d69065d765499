"""Counts and articles in chatkeep's messages (issue 17: "1 message", "an AIMessage",
"1 journaled write")."""

from __future__ import annotations

import logging

import pytest

from chatkeep import ConversationStore, InvalidMessageError, Message, codec
from chatkeep.redis import a_or_an, plural


@pytest.mark.parametrize(
    ("count", "noun", "expected"),
    [
        (0, "message", "0 messages"),
        (1, "message", "1 message"),
        (2, "message", "2 messages"),
        (1, "journaled write", "1 journaled write"),
        (100, "journaled write", "100 journaled writes"),
        (-1, "message", "-1 messages"),
    ],
)
def test_plural(count: int, noun: str, expected: str) -> None:
    assert plural(count, noun) == expected


def test_irregular_plural() -> None:
    assert plural(3, "entry", "entries") == "3 entries"
    assert plural(1, "entry", "entries") == "1 entry"


@pytest.mark.parametrize(
    ("noun", "expected"),
    [
        ("AIMessage", "an AIMessage"),
        ("HumanMessage", "a HumanMessage"),
        ("int", "an int"),
        ("str", "a str"),
        ("object", "an object"),
        ("user", "a user"),
        ("UUID", "a UUID"),
        ("undecodable record", "an undecodable record"),
        ("ellipsis", "an ellipsis"),
    ],
)
def test_article(noun: str, expected: str) -> None:
    assert a_or_an(noun) == expected


class AIMessage:  # a framework's message passed where chatkeep Messages go
    pass


def test_a_wrong_message_type_is_named_with_the_right_article() -> None:
    store = ConversationStore.from_url("memory://")
    with pytest.raises(InvalidMessageError, match="message 1 is an AIMessage, not a Message"):
        store.append("s1", [Message(role="user", content="hi"), AIMessage()])  # type: ignore[list-item]
    with pytest.raises(InvalidMessageError, match="message 0 is a float, not a Message"):
        store.append("s1", [1.5])  # type: ignore[list-item]


def test_one_undecodable_record_is_logged_in_the_singular(
    caplog: pytest.LogCaptureFixture,
) -> None:
    decoder = codec.RecordDecoder(strict=False, logger=logging.getLogger("chatkeep"))
    good = codec.encode(Message(role="user", content="hi"), 1)
    with caplog.at_level(logging.WARNING, logger="chatkeep"):
        decoder.decode_all([good, b"not a record"], "s1")
    assert "skipped 1 undecodable record in session 's1'" in caplog.text
