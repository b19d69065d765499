"""ChatMessage <-> chatkeep.Message: lossless for LlamaIndex, neutral for everyone."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from llama_index.core.base.llms.types import (
    AudioBlock,
    CacheControl,
    CachePoint,
    ChatMessage,
    DocumentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from pydantic import BaseModel

from chatkeep import ConversationStore, Message, SerializationError, ToolCall, codec
from chatkeep_llama_index import (
    CONVERSION,
    NATIVE_KEY,
    RedisChatStore,
    chat_from_record,
    from_chatkeep,
    is_llama_index_native,
    to_chatkeep,
)
from tests.adapters.llama_index.cross_framework import (
    LLAMA_AS_NEUTRAL,
    NEUTRAL_AS_LLAMA,
    as_neutral,
    llama_conversation,
    neutral_conversation,
    write_llama_conversation,
)

# A 1x1 PNG.
PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d4944415478da63f8cfc0f01f0005000201a5b1f0e50000000049454e44ae426082"
)


def through_codec(message: ChatMessage) -> ChatMessage:
    """What a Redis-backed store gives back: encoded to record bytes and decoded."""
    return from_chatkeep(codec.decode(codec.encode(to_chatkeep(message))))


def rich_message() -> ChatMessage:
    return ChatMessage(
        role=MessageRole.ASSISTANT,
        blocks=[
            TextBlock(text="Here is the chart."),
            ImageBlock(image=PNG, detail="high"),
            ImageBlock(url="https://example.com/a.png"),
            ThinkingBlock(content="user wants a chart", num_tokens=5,
                          additional_information={"signature": "sig=="}),
            ToolCallBlock(tool_call_id="t1", tool_name="plot", tool_kwargs={"x": [1, 2]}),
            ToolCallBlock(tool_call_id="t2", tool_name="raw", tool_kwargs='{"q": 1}'),
            AudioBlock(audio=b"RIFF\x00\x00fake", format="wav"),
            DocumentBlock(data=b"%PDF-1.4 tiny", title="doc"),
            CachePoint(cache_control=CacheControl(type="ephemeral")),
        ],
        additional_kwargs={
            "tool_calls": [
                {"id": "t1", "type": "function",
                 "function": {"name": "plot", "arguments": '{"x": [1, 2]}'}},
            ],
            "raw_bytes": b"\x00\xff\x10",
            "nested": {"list": [1, 2.5, None, True, {"k": "v"}]},
            "usage": {"prompt_tokens": 3},
        },
    )  # fmt: skip


@pytest.mark.parametrize("role", list(MessageRole), ids=lambda r: r.value)
def test_every_role_round_trips_equal(role: MessageRole) -> None:
    message = ChatMessage(role=role, content=f"I am {role.value}")
    assert through_codec(message) == message
    assert from_chatkeep(to_chatkeep(message)) == message


def test_rich_message_round_trips_equal() -> None:
    message = rich_message()
    back = through_codec(message)
    assert back == message
    assert back.additional_kwargs["raw_bytes"] == b"\x00\xff\x10"
    image = back.blocks[1]
    assert isinstance(image, ImageBlock) and image.image == message.blocks[1].image  # type: ignore[union-attr]
    assert image.image_mimetype == "image/png"


def _same_instance(a: BaseModel, b: BaseModel) -> None:
    """Equal, and built alike: what pydantic reports as set and dumps."""
    assert type(a) is type(b) and a == b
    assert a.model_fields_set == b.model_fields_set
    assert a.model_dump() == b.model_dump()
    assert a.model_dump(exclude_unset=True) == b.model_dump(exclude_unset=True)


@pytest.mark.parametrize(
    "message",
    [
        *(ChatMessage(role=role, content=f"I am {role.value}") for role in MessageRole),
        ChatMessage(role="assistant", content="", additional_kwargs={"tool_call_id": "t1"}),
        ChatMessage(role="user", content="with kwargs", additional_kwargs={"raw": b"\x00"}),
        rich_message(),
        *llama_conversation(),
    ],
    ids=lambda m: f"{m.role.value}-{len(m.blocks)}",
)
def test_reading_from_records_matches_reading_from_messages(message: ChatMessage) -> None:
    """CONVERSION builds plain-text messages straight from the record; the result is
    the same instance, field for field, as the path through chatkeep.Message."""
    record = codec.parse(codec.encode(to_chatkeep(message)))
    via_message = from_chatkeep(codec.from_record(record))
    direct = chat_from_record(record)
    plain = len(message.blocks) == 1 and type(message.blocks[0]) is TextBlock
    assert (direct is not None) == plain
    assert via_message == message
    if direct is not None:
        _same_instance(direct, via_message)
        _same_instance(direct.blocks[0], via_message.blocks[0])
        _same_instance(direct.blocks[0], message.blocks[0])
    assert CONVERSION.from_record is chat_from_record


def test_round_trip_through_a_store(make_chat_store: Callable[..., RedisChatStore]) -> None:
    store = make_chat_store()
    conversation = [*llama_conversation(), rich_message()]
    store.set_messages("s", conversation)
    assert store.get_messages("s") == conversation


def test_neutral_fields_are_filled() -> None:
    records = [to_chatkeep(m) for m in llama_conversation()]
    assert [as_neutral(r) for r in records] == LLAMA_AS_NEUTRAL
    assert all(is_llama_index_native(r) and set(r.native or {}) == {NATIVE_KEY} for r in records)


def test_neutral_fields_of_a_rich_message() -> None:
    record = to_chatkeep(rich_message())
    assert record.role == "assistant"
    # Tool calls from blocks and from additional_kwargs, each once (same id t1).
    assert record.tool_calls == [
        ToolCall(id="t1", name="plot", arguments={"x": [1, 2]}),
        ToolCall(id="t2", name="raw", arguments={"q": 1}),
    ]
    # Text, the image URL and the thinking are readable parts; inline bytes stay in native.
    assert record.content == [
        {"type": "text", "text": "Here is the chart."},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
        {"type": "thinking", "thinking": "user wants a chart"},
    ]
    assert record.text == "Here is the chart."


@pytest.mark.parametrize(
    ("role", "neutral"),
    [
        (MessageRole.DEVELOPER, "system"),
        (MessageRole.CHATBOT, "assistant"),
        (MessageRole.MODEL, "assistant"),
        (MessageRole.FUNCTION, "function"),
    ],
)
def test_role_synonyms_map_to_neutral_roles(role: MessageRole, neutral: str) -> None:
    record = to_chatkeep(ChatMessage(role=role, content="x"))
    assert record.role == neutral
    assert from_chatkeep(record).role == role  # native keeps the exact role


def test_reads_neutral_only_messages(make_chat_store: Callable[..., RedisChatStore]) -> None:
    chat_store = make_chat_store()
    chat_store.store.append("plain", neutral_conversation())
    assert chat_store.get_messages("plain") == NEUTRAL_AS_LLAMA


def test_what_it_writes_reads_as_plain_chatkeep_messages(
    make_chat_store: Callable[..., RedisChatStore],
) -> None:
    chat_store = make_chat_store()
    write_llama_conversation(chat_store.store, "s")
    assert [as_neutral(m) for m in chat_store.store.messages("s")] == LLAMA_AS_NEUTRAL


def langchain_shaped(message: Any) -> Message:
    """A record as the LangChain adapter writes it: neutral fields plus LangChain's
    ``message_to_dict`` output as ``native`` (no "llama_index" key)."""
    from langchain_core.messages import AIMessage, ToolMessage, message_to_dict

    role = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}[message.type]
    calls = [
        ToolCall(id=c["id"], name=c["name"], arguments=c["args"])
        for c in (message.tool_calls if isinstance(message, AIMessage) else [])
    ]
    return Message(
        role=role,
        content=message.content,
        tool_calls=calls,
        tool_call_id=message.tool_call_id if isinstance(message, ToolMessage) else None,
        native=message_to_dict(message),
    )


def test_reads_a_langchain_written_session(make_chat_store: Callable[..., RedisChatStore]) -> None:
    lc = pytest.importorskip("langchain_core.messages")
    chat_store = make_chat_store()
    records = [
        langchain_shaped(lc.SystemMessage(content="You are terse.")),
        langchain_shaped(lc.HumanMessage(content="Weather in Paris?")),
        langchain_shaped(
            lc.AIMessage(
                content="Checking.",
                tool_calls=[{"id": "call_1", "name": "weather", "args": {"city": "Paris"}}],
            )
        ),
        langchain_shaped(lc.ToolMessage(content="18 C", tool_call_id="call_1")),
        langchain_shaped(lc.AIMessage(content=[{"type": "text", "text": "It is 18 C."}])),
    ]
    chat_store.store.append("lc", records)
    got = chat_store.get_messages("lc")
    assert [m.role for m in got] == [
        MessageRole.SYSTEM, MessageRole.USER, MessageRole.ASSISTANT, MessageRole.TOOL,
        MessageRole.ASSISTANT,
    ]  # fmt: skip
    assert [m.content for m in got] == [
        "You are terse.", "Weather in Paris?", "Checking.", "18 C", "It is 18 C.",
    ]  # fmt: skip
    calls = [b for b in got[2].blocks if isinstance(b, ToolCallBlock)]
    assert [(c.tool_call_id, c.tool_name, c.tool_kwargs) for c in calls] == [
        ("call_1", "weather", {"city": "Paris"})
    ]
    assert got[3].additional_kwargs == {"tool_call_id": "call_1"}


def test_both_directions_with_the_langchain_adapter(
    make_chat_store: Callable[..., RedisChatStore],
) -> None:
    """Real ``chatkeep_langchain`` converters, when that adapter is installed."""
    lc_convert = pytest.importorskip("chatkeep_langchain.convert")
    lc = pytest.importorskip("langchain_core.messages")
    if not hasattr(lc_convert, "to_chatkeep") or not hasattr(lc_convert, "from_chatkeep"):
        pytest.skip("chatkeep_langchain.convert has no to_chatkeep/from_chatkeep")
    chat_store = make_chat_store()

    # LangChain -> LlamaIndex
    written = [
        lc.HumanMessage(content="hi"),
        lc.AIMessage(content="", tool_calls=[{"id": "c9", "name": "f", "args": {"a": 1}}]),
        lc.ToolMessage(content="done", tool_call_id="c9"),
        lc.SystemMessage(content="be nice"),
    ]
    chat_store.store.append("from-lc", [lc_convert.to_chatkeep(m) for m in written])
    got = chat_store.get_messages("from-lc")
    assert [m.role.value for m in got] == ["user", "assistant", "tool", "system"]
    assert got[0].content == "hi" and got[2].content == "done"
    assert [
        (b.tool_call_id, b.tool_name) for b in got[1].blocks if isinstance(b, ToolCallBlock)
    ] == [("c9", "f")]
    assert got[2].additional_kwargs["tool_call_id"] == "c9"

    # LlamaIndex -> LangChain
    write_llama_conversation(chat_store.store, "from-llama")
    back = [lc_convert.from_chatkeep(m) for m in chat_store.store.messages("from-llama")]
    assert [m.type for m in back] == ["system", "human", "ai", "tool", "ai", "tool", "ai"]
    assert back[2].tool_calls[0]["id"] == "call_1" and back[2].tool_calls[0]["args"] == {
        "city": "Paris", "unit": "C",
    }  # fmt: skip
    assert back[3].tool_call_id == "call_1" and back[3].content == "18 C, sunny"
    assert back[4].tool_calls[0]["name"] == "clock"
    assert back[6].content == "18 C and sunny at 14:05."


def test_pydantic_values_in_additional_kwargs_are_stored_as_data() -> None:
    class Call(BaseModel):
        id: str
        name: str

    message = ChatMessage(
        role="assistant", content="x", additional_kwargs={"obj": Call(id="1", name="f")}
    )
    back = through_codec(message)
    assert back.additional_kwargs == {"obj": {"id": "1", "name": "f"}}


def test_non_json_values_raise_and_write_nothing(
    make_chat_store: Callable[..., RedisChatStore],
) -> None:
    chat_store = make_chat_store()
    with pytest.raises(SerializationError):
        chat_store.add_message("s", ChatMessage(content="x", additional_kwargs={"s": {1, 2}}))
    assert chat_store.get_messages("s") == []
    assert chat_store.get_keys() == []


def test_unreadable_native_falls_back_to_neutral(caplog: pytest.LogCaptureFixture) -> None:
    record = to_chatkeep(ChatMessage(role="user", content="hello"))
    broken = record.model_copy(update={"native": {NATIVE_KEY: {"v": 99}}})
    with caplog.at_level(logging.WARNING, logger="chatkeep.llama_index"):
        back = from_chatkeep(broken)
    assert back == ChatMessage(role="user", content="hello")
    assert "neutral" in caplog.text


def test_image_whose_file_is_gone_still_reads(tmp_path: Path) -> None:
    picture = tmp_path / "p.png"
    picture.write_bytes(PNG)
    message = ChatMessage(role="user", blocks=[ImageBlock(path=picture), TextBlock(text="see")])
    record = codec.decode(codec.encode(to_chatkeep(message)))
    picture.unlink()
    back = from_chatkeep(record)
    assert str(back.blocks[0].path) == str(picture)  # type: ignore[union-attr]
    assert back.content == "see"


def test_legacy_images_in_additional_kwargs_do_not_duplicate_blocks() -> None:
    # ChatMessage's validator turns additional_kwargs["images"] into blocks; reading
    # back must not run it again.
    message = ChatMessage(role="user", content="x")
    message.additional_kwargs["images"] = []
    assert through_codec(message) == message


def test_plain_store_url_memory_round_trip() -> None:
    with ConversationStore.from_url("memory://") as store:
        RedisChatStore(store=store).add_message("k", rich_message())
        assert RedisChatStore(store=store).get_messages("k") == [rich_message()]
