"""Every LangChain message type comes back equal (``==``), sync and async, on real
Redis and memory://; the records carry chatkeep's neutral fields so another adapter
can read them, and records written without LangChain's form read right too."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timezone

import pytest
import redis
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    HumanMessageChunk,
    SystemMessage,
    ToolMessage,
    message_to_dict,
)
from langchain_core.messages.tool import invalid_tool_call, tool_call

from chatkeep import ConversationStore, Message, SerializationError, ToolCall, codec
from chatkeep_langchain import (
    CONVERSION,
    HistoryFactory,
    RedisChatMessageHistory,
    from_chatkeep,
    message_from_record,
    to_chatkeep,
)
from tests.support.servers import RedisServer


def zoo() -> list[BaseMessage]:
    """One of each message type, with every field LangChain keeps."""
    return [
        SystemMessage("You are terse.", id="sys-1"),
        HumanMessage(
            content=[
                {"type": "text", "text": "What is in this picture?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
            id="h-1",
            name="alice",
        ),
        AIMessage(
            content="Let me look that up.",
            tool_calls=[tool_call(name="search", args={"q": "cat", "n": 3}, id="call-1")],
            invalid_tool_calls=[
                invalid_tool_call(name="lookup", args="{not json", id="call-2", error="bad JSON")
            ],
            usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
            response_metadata={"model_name": "fake-1", "finish_reason": "tool_calls"},
            additional_kwargs={"refusal": None, "extra": {"nested": [1, 2.5, True]}},
            id="a-1",
            name="assistant-bot",
        ),
        ToolMessage(
            content="a cat",
            tool_call_id="call-1",
            artifact={"hits": [{"id": 1, "score": 0.9}]},
            status="error",
            name="search",
            id="t-1",
        ),
        ChatMessage(role="critic", content="Too long.", id="c-1"),
        FunctionMessage(name="legacy_fn", content='{"ok": true}'),
        AIMessageChunk(
            content="stream ed",
            id="lc_run--1",
            tool_call_chunks=[
                {"name": "search", "args": '{"q": "dog"}', "id": "call-3", "index": 0}
            ],
            chunk_position="last",
            usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
        ),
        HumanMessageChunk(content="chunked"),
        HumanMessage("plain text, unicode ✓ and \u0000 and emoji 🐈"),
    ]


NEUTRAL_ROLES = [
    "system",
    "user",
    "assistant",
    "tool",
    "critic",
    "function",
    "assistant",
    "user",
    "user",
]


def test_sync_round_trip_is_lossless(make_factory: Callable[..., HistoryFactory]) -> None:
    history = make_factory()("zoo")
    written = zoo()
    history.add_messages(written)
    read = history.messages
    assert read == written
    assert [type(m) for m in read] == [type(m) for m in written]


async def test_async_round_trip_is_lossless(make_factory: Callable[..., HistoryFactory]) -> None:
    history = make_factory()("azoo")
    written = zoo()
    await history.aadd_messages(written)
    read = await history.aget_messages()
    assert read == written
    assert [type(m) for m in read] == [type(m) for m in written]
    assert history.messages == written  # and the sync side reads the same


def test_conversion_without_a_store_is_lossless() -> None:
    for message in zoo():
        assert from_chatkeep(to_chatkeep(message)) == message


@pytest.mark.redis_server
@pytest.mark.parametrize("message", zoo(), ids=lambda m: type(m).__name__)
def test_reading_from_records_matches_reading_from_messages(message: BaseMessage) -> None:
    """CONVERSION builds each message straight from its record; the result is the
    same instance, field for field, as the path through chatkeep.Message."""
    record = codec.parse(codec.encode(to_chatkeep(message)))
    direct = message_from_record(record)
    via_message = from_chatkeep(codec.from_record(record))
    assert direct is not None
    assert type(direct) is type(via_message) is type(message)
    assert direct == via_message == message
    assert direct.model_fields_set == via_message.model_fields_set
    assert direct.model_dump() == via_message.model_dump() == message.model_dump()
    assert direct.__pydantic_extra__ == via_message.__pydantic_extra__
    assert CONVERSION.from_record is message_from_record


def first_form(message: BaseMessage) -> Message:
    """The record this adapter wrote before the compact form: ``native`` was
    ``{"format": "langchain", "type", "data", "anon"}``, data without content, name,
    id, type and fields at their default, tool calls in both places."""
    dumped = message_to_dict(message)
    defaults = {
        name: field.get_default(call_default_factory=True)
        for name, field in type(message).model_fields.items()
        if not field.is_required()
    }
    data = {
        key: value
        for key, value in dumped["data"].items()
        if key not in ("content", "name", "id", "type") and defaults.get(key, ...) != value
    }
    native: dict[str, object] = {"format": "langchain", "type": dumped["type"]}
    if data:
        native["data"] = data
    if not message.id:
        native["anon"] = True
    compact = to_chatkeep(message)
    return compact.model_copy(update={"native": native})


@pytest.mark.parametrize("message", zoo(), ids=lambda m: type(m).__name__)
def test_records_of_the_first_native_form_still_read(message: BaseMessage) -> None:
    record = codec.parse(codec.encode(first_form(message)))
    assert record["native"]["format"] == "langchain"
    assert message_from_record(record) == message
    assert from_chatkeep(codec.from_record(record)) == message


def test_compact_form_stores_what_the_record_does_not_say_once() -> None:
    plain = codec.parse(codec.encode(to_chatkeep(HumanMessage("hi"))))
    assert plain["native"] == {"lc": 2}
    named = codec.parse(codec.encode(to_chatkeep(AIMessage("hi", id="run-1"))))
    assert named["native"] == {"lc": 2, "i": 1} and named["id"] == "run-1"
    calling = AIMessage("", tool_calls=[tool_call(name="f", args={"x": [1]}, id="c1")])
    record = codec.parse(codec.encode(to_chatkeep(calling)))
    assert record["tool_calls"] == [{"id": "c1", "name": "f", "arguments": {"x": [1]}}]
    assert record["native"] == {"lc": 2}  # the tool calls are not stored twice
    answer = ToolMessage("42", tool_call_id="c1")
    record = codec.parse(codec.encode(to_chatkeep(answer)))
    assert record["native"] == {"lc": 2} and record["tool_call_id"] == "c1"
    chunk = codec.parse(codec.encode(to_chatkeep(HumanMessageChunk("x"))))
    assert chunk["native"] == {"lc": 2, "t": "HumanMessageChunk"}
    for message in (HumanMessage("hi"), calling, answer, HumanMessageChunk("x")):
        assert from_chatkeep(to_chatkeep(message)) == message
        assert len(codec.encode(to_chatkeep(message))) < len(codec.encode(first_form(message)))


def test_records_of_other_writers_are_left_to_the_message_path() -> None:
    plain = codec.parse(codec.encode(Message(role="user", content="hi")))
    assert message_from_record(plain) is None
    assert from_chatkeep(codec.from_record(plain)) == HumanMessage("hi", id=plain["id"])


def test_records_carry_neutral_fields(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    history = RedisChatMessageHistory("neutral", redis_server.url, f"{prefix}:")
    history.add_messages(zoo())
    records = [json.loads(r) for r in raw.lrange(f"{prefix}:{{neutral}}:m", 0, -1)]

    assert [r["role"] for r in records] == NEUTRAL_ROLES
    for record in records:
        assert {"v", "id", "role", "content", "ts", "native"} <= record.keys()
        assert record["v"] == 1
        assert record["native"]["lc"] == 2  # the compact form
        # stored once, in the neutral fields
        assert not {"content", "name", "id"} & record["native"].get("d", {}).keys()
    system, human, ai, tool, critic, function, chunk, _, _ = records
    assert system["content"] == "You are terse." and system["id"] == "sys-1"
    assert human["content"][0] == {"type": "text", "text": "What is in this picture?"}
    assert human["content"][1]["type"] == "image_url"
    assert human["name"] == "alice"
    assert ai["tool_calls"] == [
        {"id": "call-1", "name": "search", "arguments": {"q": "cat", "n": 3}}
    ]
    assert ai["content"] == "Let me look that up."
    assert tool["tool_call_id"] == "call-1" and tool["content"] == "a cat"
    assert critic["role"] == "critic"
    assert function["name"] == "legacy_fn"
    assert chunk["tool_calls"] == [{"id": "call-3", "name": "search", "arguments": {"q": "dog"}}]

    # what another adapter sees through the core
    store = ConversationStore.from_url(redis_server.url, key_prefix=prefix)
    neutral = store.messages("neutral")
    assert [m.role for m in neutral] == NEUTRAL_ROLES
    assert neutral[1].text == "What is in this picture?"
    assert neutral[2].tool_calls == [
        ToolCall(id="call-1", name="search", arguments={"q": "cat", "n": 3})
    ]
    store.close()


def test_records_without_native_read_from_neutral_fields(
    make_factory: Callable[..., HistoryFactory],
) -> None:
    """What another adapter (LlamaIndex) writes: neutral fields only."""
    factory = make_factory()
    store = factory.store
    assert store is not None
    store.append(
        "foreign",
        [
            Message(role="system", content="sys", id="m1"),
            Message(role="user", content=[{"type": "text", "text": "hi"}], id="m2", name="bob"),
            Message(
                role="assistant",
                content="calling",
                id="m3",
                tool_calls=[ToolCall(id="c1", name="add", arguments={"a": 1})],
            ),
            Message(role="tool", content="2", tool_call_id="c1", id="m4"),
            Message(role="function", content="out", name="fn", id="m5"),
            Message(role="developer", content="be nice", id="m6"),
            Message(
                role="assistant", content="x", id="m7", native={"role": "assistant", "blocks": []}
            ),
        ],
    )
    assert factory("foreign").messages == [
        SystemMessage("sys", id="m1"),
        HumanMessage([{"type": "text", "text": "hi"}], id="m2", name="bob"),
        AIMessage("calling", id="m3", tool_calls=[tool_call(name="add", args={"a": 1}, id="c1")]),
        ToolMessage("2", tool_call_id="c1", id="m4"),
        FunctionMessage(content="out", name="fn", id="m5"),
        ChatMessage(role="developer", content="be nice", id="m6"),
        AIMessage("x", id="m7"),  # another framework's native form is not LangChain's
    ]


def test_unreadable_native_falls_back_to_neutral_fields(
    make_factory: Callable[..., HistoryFactory], caplog: pytest.LogCaptureFixture
) -> None:
    factory = make_factory()
    assert factory.store is not None
    broken = {"format": "langchain", "type": "hologram", "data": {}}
    factory.store.append("odd", Message(role="user", content="hi", id="x1", native=broken))
    with caplog.at_level(logging.WARNING, logger="chatkeep.langchain"):
        assert factory("odd").messages == [HumanMessage("hi", id="x1")]
    assert "hologram" in caplog.text


# -- values JSON cannot hold --------------------------------------------------------------


def test_bytes_round_trip_as_bytes(make_factory: Callable[..., HistoryFactory]) -> None:
    """chatkeep's policy: bytes anywhere are stored base64-tagged, read back as bytes."""
    history = make_factory()("bytes")
    written = [
        AIMessage("audio", additional_kwargs={"audio": {"data": b"\x00\xffRIFF", "id": "au1"}}),
        ToolMessage("img", tool_call_id="c", artifact=b"\x89PNG\r\n"),
        HumanMessage([{"type": "text", "text": "raw"}, {"type": "blob", "data": b"\x01\x02"}]),
    ]
    history.add_messages(written)
    read = history.messages
    assert read == written
    assert read[0].additional_kwargs["audio"]["data"] == b"\x00\xffRIFF"


@pytest.mark.redis_server
def test_bytes_are_tagged_in_the_record(
    redis_server: RedisServer, raw: redis.Redis, prefix: str
) -> None:
    history = RedisChatMessageHistory("b", redis_server.url, prefix)
    history.add_message(AIMessage("a", additional_kwargs={"blob": b"\x00\x01"}))
    record = json.loads(raw.lrange(f"{prefix}:{{b}}:m", 0, -1)[0])
    assert record["b"] == 2  # records with bytes: tagged, look-alikes escaped (codec)
    assert record["native"]["d"]["additional_kwargs"]["blob"] == {"$b64": "AAE="}


async def test_non_json_values_raise_and_write_nothing(
    make_factory: Callable[..., HistoryFactory],
) -> None:
    history = make_factory()("nonjson")
    history.add_user_message("kept")
    bad = AIMessage("when", additional_kwargs={"at": datetime.now(timezone.utc)})
    with pytest.raises(SerializationError, match="datetime"):
        history.add_messages([HumanMessage("lost too"), bad])
    with pytest.raises(SerializationError):
        await history.aadd_messages([bad])
    with pytest.raises(SerializationError):
        history.add_message(ToolMessage("x", tool_call_id="c", artifact={1, 2}))
    assert history.messages == [HumanMessage("kept")]


@pytest.mark.redis_server
def test_uuid_values_come_back_as_strings(redis_server: RedisServer, prefix: str) -> None:
    # (memory:// keeps the Message objects it was given, so there a UUID stays a UUID)
    history = RedisChatMessageHistory("uuid", redis_server.url, prefix)
    value = uuid.uuid4()
    history.add_message(AIMessage("u", additional_kwargs={"trace": value}))
    assert history.messages[0].additional_kwargs["trace"] == str(value)
