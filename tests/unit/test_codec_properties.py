"""Property tests of the record codec and of session-id escaping."""

from __future__ import annotations

import contextlib
import re
import string
from datetime import datetime, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatkeep import Message, SerializationError, ToolCall
from chatkeep.codec import decode, encode
from chatkeep.keys import KeySchema, escape_id, unescape_id

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.binary(max_size=64)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
content_parts = st.lists(
    st.text(max_size=20)
    | st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=20)})
    | st.fixed_dictionaries(
        {
            "type": st.just("image_url"),
            "image_url": st.fixed_dictionaries({"url": st.text(max_size=20)}),
        }
    ),
    max_size=4,
)
messages = st.builds(
    Message,
    role=st.sampled_from(["system", "user", "assistant", "tool", "function"])
    | st.text(min_size=1, max_size=10),
    content=st.text() | content_parts,
    name=st.none() | st.text(max_size=10),
    tool_calls=st.lists(
        st.builds(
            ToolCall,
            id=st.none() | st.text(max_size=8),
            name=st.text(min_size=1, max_size=8),
            arguments=st.dictionaries(st.text(max_size=6), json_values, max_size=3),
        ),
        max_size=3,
    ),
    tool_call_id=st.none() | st.text(max_size=10),
    created_at=st.datetimes(
        min_value=datetime(1971, 1, 1),
        max_value=datetime(2200, 1, 1),
        timezones=st.just(timezone.utc),
    ),
    metadata=st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    native=st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=4),
)


@settings(max_examples=300, deadline=None)
@given(messages)
def test_every_message_round_trips_equal(message: Message) -> None:
    assert decode(encode(message)) == message


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_garbage_never_crashes_decode(raw: bytes) -> None:
    with contextlib.suppress(SerializationError):
        decode(raw)


def test_non_json_values_raise_a_clear_error() -> None:
    for bad in ({1, 2}, object(), datetime.now(), float("inf")):
        with pytest.raises(SerializationError):
            encode(Message(role="user", content="x", metadata={"bad": bad}))


def test_records_are_never_pickled() -> None:
    record = encode(Message(role="user", content="hi", metadata={"b": b"\x00"}))
    assert record.startswith(b"{") and b'"$b64"' in record


SAFE = re.compile(r"[A-Za-z0-9_.~%-]+")


@settings(max_examples=500, deadline=None)
@given(
    st.text(min_size=1, max_size=512).filter(
        lambda s: not any(0xD800 <= ord(c) <= 0xDFFF for c in s)
    )
)
def test_escaped_ids_are_safe_and_reversible(sid: str) -> None:
    escaped = escape_id(sid)
    assert SAFE.fullmatch(escaped)
    assert unescape_id(escaped) == sid


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=40), st.text(min_size=1, max_size=40))
def test_distinct_ids_never_share_keys(first: str, second: str) -> None:
    keys = KeySchema("app")
    if first != second:
        assert set(keys.session(first)).isdisjoint(keys.session(second))


@given(st.text(alphabet=string.printable, min_size=1, max_size=30))
def test_session_keys_keep_one_hash_tag(sid: str) -> None:
    messages_key, meta_key = KeySchema("app").session(sid)
    for key in (messages_key, meta_key):
        assert key.count("{") == 1 and key.count("}") == 1
        assert messages_key[: messages_key.index("}")] == meta_key[: meta_key.index("}")]


@settings(max_examples=300, deadline=None)
@given(messages)
def test_the_fast_read_path_builds_what_validation_builds(message: Message) -> None:
    from chatkeep.codec import _trusted_message, loads

    record = loads(encode(message))
    if "b" in record:
        return  # bytes are untagged before the fast path; covered by the round trip
    fast = _trusted_message(record)
    assert fast is not None
    assert fast == message
    assert fast.model_dump() == message.model_dump()
    assert Message.model_validate(fast.model_dump()) == fast


@pytest.mark.parametrize(
    "record",
    [
        {"v": 1, "id": "", "role": "user", "content": "x", "ts": 1},
        {"v": 1, "id": "a", "role": 5, "content": "x", "ts": 1},
        {"v": 1, "id": "a", "role": "user", "content": 5, "ts": 1},
        {"v": 1, "id": "a", "role": "user", "content": [5], "ts": 1},
        {"v": 1, "id": "a", "role": "user", "content": "x", "ts": "1"},
        {"v": 1, "id": "a", "role": "user", "content": "x", "ts": 10**20},
        {"v": 1, "id": "a", "role": "user", "content": "x", "ts": 1, "meta": []},
        {"v": 1, "id": "a", "role": "user", "content": "x", "ts": 1, "tool_calls": [{"x": 1}]},
    ],
)
def test_records_with_wrong_types_are_refused_by_both_paths(record: dict[str, Any]) -> None:
    import json

    from chatkeep.codec import _trusted_message

    assert _trusted_message(record) is None
    with pytest.raises(SerializationError):
        decode(json.dumps(record))


def test_unknown_record_keys_are_ignored() -> None:
    import json

    record = {"v": 1, "id": "a", "role": "user", "content": "x", "ts": 1, "later": 1}
    assert decode(json.dumps(record)).text == "x"
