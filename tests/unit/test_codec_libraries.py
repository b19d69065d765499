"""Records written with the stdlib json and with orjson (the ``fast`` extra) are the
same data: each library reads what the other wrote, and non-JSON policy matches."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap

import pytest

from chatkeep import Message, ToolCall, codec

SAMPLES = [
    Message(role="user", content='héllo ✓ 🎉 "quotes" \\ back\nslash'),
    Message(
        role="assistant",
        content=[{"type": "text", "text": "t"}, "p"],
        tool_calls=[ToolCall(id="c1", name="f", arguments={"x": 1.5, "y": [1, None, True]})],
        metadata={"raw": b"\x00\x01\xfe", "uuid_like": "u", "n": 1e-7, "k": {"1": 2}},
    ),
    Message(role="tool", content="r", tool_call_id="c1", native={"type": "tool", "data": {}}),
]

STDLIB_SCRIPT = textwrap.dedent(
    """
    import base64, json, sys
    sys.modules["orjson"] = None  # hide the fast extra
    from chatkeep import Message, SerializationError, codec
    assert codec.JSON_LIBRARY == "json", codec.JSON_LIBRARY
    records = [base64.b64decode(r) for r in json.loads(sys.stdin.read())]
    messages = [codec.decode(r) for r in records]
    written = [base64.b64encode(codec.encode(m)).decode() for m in messages]
    refused = []
    for bad in ({1}, float("nan"), float("inf")):
        try:
            codec.encode(Message(role="user", content="x", metadata={"bad": bad}))
        except SerializationError:
            refused.append(True)
    print(json.dumps({"written": written, "refused": refused}))
    """
)


def test_stdlib_and_orjson_read_each_other() -> None:
    assert codec.JSON_LIBRARY == "orjson"  # the test environment has the fast extra
    records = [base64.b64encode(codec.encode(m)).decode() for m in SAMPLES]
    child = subprocess.run(
        [sys.executable, "-c", STDLIB_SCRIPT],
        input=json.dumps(records),
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(child.stdout)
    # The child decoded orjson's records and wrote them again with the stdlib:
    # reading those back here gives the original messages.
    assert [codec.decode(base64.b64decode(r)) for r in result["written"]] == SAMPLES
    assert result["refused"] == [True, True, True]


def test_integers_beyond_64_bits_that_a_stdlib_writer_stored_read_exactly() -> None:
    """orjson would read 2**70 + 1 as a float (silently, one digit lost); records are
    read with pydantic-core's parser, which keeps it."""
    big = 2**70 + 1
    record = json.dumps(
        {"v": 1, "id": "m1", "role": "user", "content": "x", "ts": 1, "meta": {"n": big}}
    ).encode()
    assert codec.decode(record).metadata == {"n": big}
    with pytest.raises(ValueError):
        codec.loads(b'{"truncated": ')


def test_decoded_messages_share_a_fields_set_that_pydantic_never_changes() -> None:
    first, second = (codec.decode(codec.encode(m)) for m in SAMPLES[:2])
    fields = set(Message.model_fields)
    assert first.model_fields_set == second.model_fields_set == fields
    changed = first.model_copy(update={"content": "new"})
    assert changed.content == "new" and changed.model_fields_set == fields
    assert changed.model_fields_set is not first.model_fields_set
    assert second.model_fields_set == fields
