"""Issue 14, "Also": records that made a session unreadable or came back changed.

* a message holding real bytes *and* a dict shaped like the bytes tag
  (``{"$b64": "abc"}``) must round-trip exactly; ``{"$b64": "aGk="}`` is user data,
  not ``b"hi"``;
* records of the first tagged format (``"b":1``) are still read, and a record that
  cannot be decoded is skipped and counted (``strict=True``: SerializationError),
  never a raw ``binascii.Error``;
* one depth limit (MAX_DEPTH): a write refuses deeper values, and every record a
  write accepts reads back.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import subprocess
import sys
import textwrap
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatkeep import Message, SerializationError, ToolCall, codec

POISON = {"raw": b"\x89PNG", "api_response": {"$b64": "abc"}}


def record_of(**fields: Any) -> bytes:
    base = {"v": 1, "id": "m1", "role": "user", "content": "x", "ts": 1}
    return json.dumps({**base, **fields}).encode()


# -- exact round trips ------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        POISON,
        {"$b64": "aGk="},
        {"$b64": "abc"},
        {"$b64": b"real bytes under the tag's key"},
        {"$esc": {"$b64": "aGk="}},
        {"$esc": 1},
        {"$b64": {"$b64": "aGk="}},
        {"$b64": "aGk=", "other": 1},
        [{"$b64": "aGk="}, b"\x00", {"$esc": [b"\x01"]}],
        {"b": 1, "v": 2, "nested": [{"$b64": "!!"}, {"$b64": None}]},
    ],
)
@pytest.mark.parametrize("with_bytes", [False, True])
def test_tag_look_alikes_round_trip_exactly(value: Any, with_bytes: bool) -> None:
    metadata = {"value": value}
    if with_bytes:
        metadata["bytes"] = b"\xff\x00"
    message = Message(role="tool", content="r", metadata=metadata, native={"artifact": value})
    assert codec.decode(codec.encode(message)) == message


def test_the_issue_poison_record() -> None:
    """A LangChain ToolMessage artifact with real bytes and an API response that looks
    like the tag: accepted, then read back exactly (it used to raise binascii.Error)."""
    message = Message(role="tool", content="ok", tool_call_id="c1", native={"artifact": POISON})
    back = codec.decode(codec.encode(message))
    assert back.native == {"artifact": {"raw": b"\x89PNG", "api_response": {"$b64": "abc"}}}
    assert back == message


def test_a_user_dict_shaped_like_the_tag_is_not_turned_into_bytes() -> None:
    for extra in ({}, {"also": b"bytes"}):
        message = Message(role="user", content="x", metadata={"u": {"$b64": "aGk="}, **extra})
        assert codec.decode(codec.encode(message)).metadata["u"] == {"$b64": "aGk="}


def test_records_without_bytes_are_stored_untagged() -> None:
    """The common record pays nothing: no marker, no escaping."""
    record = codec.encode(Message(role="user", content="x", metadata={"u": {"$b64": "aGk="}}))
    parsed = json.loads(record)
    assert "b" not in parsed and parsed["meta"] == {"u": {"$b64": "aGk="}}


# -- reading the first format and bad records ----------------------------------------------


def test_first_format_records_are_still_read() -> None:
    old = record_of(b=1, meta={"raw": {"$b64": base64.b64encode(b"\x89PNG").decode()}})
    assert codec.decode(old).metadata == {"raw": b"\x89PNG"}
    # The issue's poison record as the first format wrote it: the look-alike is not
    # base64, so it can only have been the user's dict.
    poison = record_of(b=1, native={"raw": {"$b64": "iVBORw=="}, "api_response": {"$b64": "abc"}})
    assert codec.decode(poison).native == {"raw": b"\x89PNG", "api_response": {"$b64": "abc"}}


@pytest.mark.parametrize(
    "raw",
    [
        record_of(b=2, meta={"x": {"$b64": "abc"}}),  # not base64
        record_of(b=2, meta={"x": {"$b64": "a"}}),
        record_of(b=2, meta={"x": {"$b64": 5}}),
        record_of(b=2, meta={"x": {"$esc": 5}}),
        record_of(b=2, meta={"x": {"$esc": [1]}}),
        record_of(b=7, meta={}),
        record_of(b="1"),
    ],
)
def test_undecodable_tagged_records_raise_serialization_error_only(raw: bytes) -> None:
    with pytest.raises(SerializationError):
        codec.decode(raw)
    decoder = codec.RecordDecoder(strict=False, logger=logging.getLogger("test"))
    good = codec.encode(Message(role="user", content="fine"))
    assert [m.text for m in decoder.decode_all([good, raw, good], "s")] == ["fine", "fine"]
    assert decoder.skipped == 1
    into = codec.Conversion(lambda m: m.text, lambda record: record["content"])
    assert decoder.convert_all([raw, good], "s", into) == ["fine"]
    assert decoder.skipped == 2
    strict = codec.RecordDecoder(strict=True, logger=logging.getLogger("test"))
    with pytest.raises(SerializationError, match="session 's'"):
        strict.decode_all([good, raw], "s")


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.binary(max_size=16)
    | st.sampled_from(["aGk=", "abc", "", "$b64", "$esc", "====", "AA=="])
)
tag_keys = st.sampled_from(["$b64", "$esc", "b", "v", "$B64", "$b64 "]) | st.text(max_size=6)
adversarial = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(tag_keys, children, min_size=1, max_size=1)  # tag-shaped
        | st.dictionaries(tag_keys, children, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=500, deadline=None)
@given(
    st.dictionaries(tag_keys, adversarial, max_size=3),
    st.none() | st.dictionaries(tag_keys, adversarial, max_size=3),
    st.dictionaries(tag_keys, adversarial, max_size=2),
)
def test_adversarial_values_round_trip_exactly(
    metadata: dict[str, Any], native: dict[str, Any] | None, arguments: dict[str, Any]
) -> None:
    message = Message(
        role="tool",
        content="x",
        metadata=metadata,
        native=native,
        tool_calls=[ToolCall(id="c", name="f", arguments=arguments)],
    )
    assert codec.decode(codec.encode(message)) == message


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([None, 1, 2, 3]), adversarial)
def test_any_stored_record_decodes_or_raises_serialization_error(b: Any, value: Any) -> None:
    """A record as anyone could have written it (tags forged, malformed): decoding it
    gives a message or SerializationError, nothing else."""
    fields: dict[str, Any] = {"v": 1, "id": "m", "role": "user", "content": "x", "ts": 1}
    if b is not None:
        fields["b"] = b
    fields["meta"] = {"k": value}
    raw = json.dumps(fields, default=lambda v: base64.b64encode(v).decode()).encode()
    with contextlib.suppress(SerializationError):
        codec.decode(raw)


STDLIB = textwrap.dedent(
    """
    import base64, json, sys
    sys.modules["orjson"] = None
    from chatkeep import Message, codec
    assert codec.JSON_LIBRARY == "json"
    poison = {"raw": b"\\x89PNG", "api_response": {"$b64": "abc"}}
    m = Message(id="m1", role="tool", content="r", native=poison, metadata={"u": {"$b64": "aGk="}})
    print(base64.b64encode(codec.encode(m)).decode())
    """
)


def test_stdlib_writer_escapes_the_same_way() -> None:
    child = subprocess.run(
        [sys.executable, "-c", STDLIB], capture_output=True, text=True, check=True
    )
    record = base64.b64decode(child.stdout.strip())
    message = codec.decode(record)
    assert message.native == POISON and message.metadata == {"u": {"$b64": "aGk="}}
    assert json.loads(record) == json.loads(codec.encode(message))


# -- one depth limit ---------------------------------------------------------------------


def nested(depth: int, leaf: Any = 1) -> Any:
    value = leaf
    for _ in range(depth):
        value = {"a": value}
    return value


def deep_message(record_depth: int) -> Message:
    """A message whose record nests exactly ``record_depth`` levels (record, meta, m...)."""
    return Message(role="user", content="x", metadata={"m": nested(record_depth - 2)})


def test_the_deepest_record_a_write_accepts_reads_back() -> None:
    """The issue: metadata 200-250 deep was written, then skipped on every read."""
    deepest = deep_message(codec.MAX_DEPTH)
    assert codec.decode(codec.encode(deepest)) == deepest
    for depth in (200, 201, 202, 225, 250):
        message = Message(role="user", content="x", metadata={"m": nested(depth)})
        assert codec.decode(codec.encode(message)) == message
    with pytest.raises(SerializationError, match=f"deeper than {codec.MAX_DEPTH} levels"):
        codec.encode(deep_message(codec.MAX_DEPTH + 1))
    with pytest.raises(SerializationError, match="deeper"):
        codec.encode(Message(role="user", content="x", metadata={"m": nested(300)}))


def test_max_depth_is_what_orjson_writes() -> None:
    """If orjson's limit moves, MAX_DEPTH (and the stdlib writer's check) must follow."""
    import orjson

    orjson.dumps(nested(codec.MAX_DEPTH - 1))  # + the innermost int: MAX_DEPTH containers
    with pytest.raises(orjson.JSONEncodeError):
        orjson.dumps(nested(codec.MAX_DEPTH + 1))


DEPTH_STDLIB = textwrap.dedent(
    """
    import sys
    sys.modules["orjson"] = None
    from chatkeep import Message, SerializationError, codec
    def nested(depth):
        value = 1
        for _ in range(depth):
            value = {"a": value}
        return value
    for depth, fits in ((codec.MAX_DEPTH, True), (codec.MAX_DEPTH + 1, False)):
        message = Message(role="user", content="x", metadata={"m": nested(depth - 2)},
                          native={"b": b"x"} if depth % 2 else None)
        try:
            record = codec.encode(message)
        except SerializationError:
            assert not fits, depth
        else:
            assert fits, depth
            assert codec.decode(record) == message
    print("ok")
    """
)


def test_the_stdlib_writer_has_the_same_depth_limit() -> None:
    child = subprocess.run(
        [sys.executable, "-c", DEPTH_STDLIB], capture_output=True, text=True, check=True
    )
    assert child.stdout.strip() == "ok"


@pytest.mark.parametrize("where", ["metadata", "native", "arguments", "list"])
def test_every_depth_either_is_refused_at_write_or_reads_back(where: str) -> None:
    accepted = []
    for depth in range(1, 300, 3):
        value = nested(depth) if where != "list" else json.loads("[" * depth + "]" * depth)
        if where == "metadata":
            message = Message(role="user", content="x", metadata={"m": value})
        elif where == "native":
            message = Message(role="user", content="x", native={"m": value})
        elif where == "list":
            message = Message(role="user", content="x", metadata={"m": value, "b": b"1"})
        else:
            call = ToolCall(name="f", arguments={"m": value})
            message = Message(role="assistant", content="", tool_calls=[call])
        try:
            record = codec.encode(message)
        except SerializationError as exc:
            assert "deeper" in str(exc)
            continue
        accepted.append(depth)
        assert codec.decode(record) == message, depth  # never written then skipped
    assert accepted and max(accepted) < codec.MAX_DEPTH
    assert max(accepted) >= codec.MAX_DEPTH - 6


def test_content_full_of_brackets_is_not_deep() -> None:
    code = "{[" * 5000 + "]}" * 5000
    message = Message(role="assistant", content=code, metadata={"lang": "json"})
    assert codec.decode(codec.encode(message)) == message
