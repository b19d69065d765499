"""Records written with the stdlib json and with orjson (the ``fast`` extra) are the
same data: each library reads what the other wrote, and non-JSON policy matches."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import textwrap

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
