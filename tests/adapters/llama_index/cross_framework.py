"""Conversations for cross-framework tests (LlamaIndex <-> neutral <-> LangChain).

Made to be imported by either adapter's tests:

* :func:`llama_conversation` is a LlamaIndex conversation with every neutral role,
  tool calls (as ``ToolCallBlock`` and OpenAI-style ``additional_kwargs``) and a tool
  result; :data:`LLAMA_AS_NEUTRAL` says what any reader must find in its neutral
  fields; :func:`write_llama_conversation` stores it through ``RedisChatStore``.
* :func:`neutral_conversation` is the same conversation as plain ``chatkeep.Message``
  objects without ``native`` (what a third adapter could write);
  :data:`NEUTRAL_AS_LLAMA` is what ``RedisChatStore`` must read from it.

A LangChain-side test can write ``llama_conversation()`` with
``write_llama_conversation(store, sid)`` and check its own reading against
``LLAMA_AS_NEUTRAL`` (roles user/assistant/tool/system, texts, tool call ids).
"""

from __future__ import annotations

from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    MessageRole,
    TextBlock,
    ToolCallBlock,
)

from chatkeep import ConversationStore, Message, ToolCall

WEATHER_ARGS = {"city": "Paris", "unit": "C"}


def llama_opening() -> list[ChatMessage]:
    """How both conversations begin: a system prompt, a question, a weather tool call."""
    return [
        ChatMessage(role=MessageRole.SYSTEM, content="You are terse."),
        ChatMessage(role=MessageRole.USER, content="Weather in Paris?"),
        ChatMessage(
            role=MessageRole.ASSISTANT,
            blocks=[
                TextBlock(text="Checking."),
                ToolCallBlock(tool_call_id="call_1", tool_name="weather", tool_kwargs=WEATHER_ARGS),
            ],
        ),
    ]


def llama_conversation() -> list[ChatMessage]:
    return [
        *llama_opening(),
        ChatMessage(
            role=MessageRole.TOOL,
            content="18 C, sunny",
            additional_kwargs={"tool_call_id": "call_1", "name": "weather"},
        ),
        ChatMessage(
            role=MessageRole.ASSISTANT,
            content="",
            additional_kwargs={
                "tool_calls": [
                    {
                        "id": "call_2",
                        "type": "function",
                        "function": {"name": "clock", "arguments": '{"tz": "CET"}'},
                    }
                ]
            },
        ),
        ChatMessage(
            role=MessageRole.TOOL,
            content="14:05",
            additional_kwargs={"tool_call_id": "call_2"},
        ),
        ChatMessage(role=MessageRole.ASSISTANT, content="18 C and sunny at 14:05."),
    ]


# (role, text, [(tool call id, name, arguments)], tool_call_id) per message
LLAMA_AS_NEUTRAL: list[tuple[str, str, list[tuple[str, str, dict[str, Any]]], str | None]] = [
    ("system", "You are terse.", [], None),
    ("user", "Weather in Paris?", [], None),
    ("assistant", "Checking.", [("call_1", "weather", WEATHER_ARGS)], None),
    ("tool", "18 C, sunny", [], "call_1"),
    ("assistant", "", [("call_2", "clock", {"tz": "CET"})], None),
    ("tool", "14:05", [], "call_2"),
    ("assistant", "18 C and sunny at 14:05.", [], None),
]


def as_neutral(
    message: Message,
) -> tuple[str, str, list[tuple[str, str, dict[str, Any]]], str | None]:
    calls = [(c.id or "", c.name, dict(c.arguments)) for c in message.tool_calls]
    return (message.role, message.text, calls, message.tool_call_id)


def write_llama_conversation(store: ConversationStore, session_id: str) -> None:
    """Store :func:`llama_conversation` through ``RedisChatStore`` on ``store``."""
    from chatkeep_llama_index import RedisChatStore

    RedisChatStore(store=store).set_messages(session_id, llama_conversation())


def neutral_conversation() -> list[Message]:
    return [
        Message(role="system", content="You are terse."),
        Message(role="user", content="Weather in Paris?"),
        Message(
            role="assistant",
            content="Checking.",
            tool_calls=[ToolCall(id="call_1", name="weather", arguments=WEATHER_ARGS)],
        ),
        Message(role="tool", content="18 C, sunny", tool_call_id="call_1"),
        Message(
            role="assistant",
            content=[{"type": "text", "text": "Done: "}, "18 C."],
        ),
    ]


NEUTRAL_AS_LLAMA: list[ChatMessage] = [
    *llama_opening(),
    ChatMessage(
        role=MessageRole.TOOL, content="18 C, sunny", additional_kwargs={"tool_call_id": "call_1"}
    ),
    ChatMessage(
        role=MessageRole.ASSISTANT, blocks=[TextBlock(text="Done: "), TextBlock(text="18 C.")]
    ),
]
