"""``llama_index`` :class:`ChatMessage` <-> chatkeep :class:`~chatkeep.Message`.

Writing fills both halves of a chatkeep record:

* the **neutral** fields every adapter reads (role, text or content parts, tool calls
  with their ids, ``tool_call_id``, ``name``), and
* ``native = {"llama_index": {...}}``: this module's own JSON form of the whole
  ``ChatMessage`` (role, ``additional_kwargs`` when any, content blocks unless the
  message is one plain text block, whose text the neutral ``content`` already
  holds), so a message read back by LlamaIndex compares *equal* to the one
  written. The ``ChatMessage`` serializer of ``SimpleChatStore`` is not used (it
  breaks with pydantic 2.14, and it turns bytes in ``additional_kwargs`` into base64
  strings).

:data:`CONVERSION` reads records straight into ``ChatMessage`` objects
(``store.messages(key, into=CONVERSION)``): a plain-text message this adapter wrote
is built from the record itself, with no intermediate ``chatkeep.Message``.

Reading uses ``native`` when it carries the ``"llama_index"`` key, and the neutral
fields otherwise (e.g. a record written by ``chatkeep_langchain``, whose ``native`` is
LangChain's ``message_to_dict`` output), mapping roles ``human``/``user`` -> user,
``ai``/``assistant`` -> assistant, ``tool``, ``system``, ``function``.

Values policy (on top of chatkeep's codec policy):

* ``bytes`` anywhere (image data, ``additional_kwargs``) come back as ``bytes``;
* a pydantic model inside ``additional_kwargs`` (e.g. an OpenAI tool-call object) is
  stored as its JSON dump and comes back as a ``dict``;
* any other value JSON cannot hold raises :class:`chatkeep.SerializationError` and
  nothing is written.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import PurePath
from typing import Any, Final

from llama_index.core.base.llms.types import (
    ChatMessage,
    ContentBlock,
    ImageBlock,
    MessageRole,
    TextBlock,
    ThinkingBlock,
    ToolCallBlock,
)
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import PydanticSerializationError

from chatkeep import Conversion, Message, ToolCall, model_builder

__all__ = [
    "CONVERSION",
    "NATIVE_KEY",
    "chat_from_record",
    "from_chatkeep",
    "is_llama_index_native",
    "to_chatkeep",
]

logger = logging.getLogger("chatkeep.llama_index")

NATIVE_KEY: Final = "llama_index"
"""The key of ``Message.native`` under which this adapter keeps its own form."""

_NATIVE_VERSION: Final = 1

_BLOCK: TypeAdapter[Any] = TypeAdapter(ContentBlock)
_BLOCK_CLASSES: dict[str, type[BaseModel]] = {}
for _member in ContentBlock.__origin__.__args__:  # type: ignore[attr-defined]
    _BLOCK_CLASSES[_member.model_fields["block_type"].default] = _member

# LlamaIndex role -> neutral role. Synonyms collapse to the neutral vocabulary so that
# other frameworks understand them; ``native`` keeps the exact role.
_TO_NEUTRAL_ROLE: Final[dict[str, str]] = {
    MessageRole.SYSTEM.value: "system",
    MessageRole.DEVELOPER.value: "system",
    MessageRole.USER.value: "user",
    MessageRole.ASSISTANT.value: "assistant",
    MessageRole.FUNCTION.value: "function",
    MessageRole.TOOL.value: "tool",
    MessageRole.CHATBOT.value: "assistant",
    MessageRole.MODEL.value: "assistant",
}

_ROLE_BY_VALUE: Final[dict[str, MessageRole]] = {role.value: role for role in MessageRole}
# Built without validating again: the values come from a message that was valid.
_chat_message = model_builder(ChatMessage, shared=True)
_text_block = model_builder(TextBlock, frozenset({"text"}))  # as TextBlock(text=...)

# Neutral (or LangChain ``type``) role -> LlamaIndex role. Unknown roles read as user.
_FROM_NEUTRAL_ROLE: Final[dict[str, MessageRole]] = {
    "system": MessageRole.SYSTEM,
    "developer": MessageRole.DEVELOPER,
    "user": MessageRole.USER,
    "human": MessageRole.USER,
    "assistant": MessageRole.ASSISTANT,
    "ai": MessageRole.ASSISTANT,
    "tool": MessageRole.TOOL,
    "function": MessageRole.FUNCTION,
    "chatbot": MessageRole.CHATBOT,
    "model": MessageRole.MODEL,
}


# -- writing ------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """``value`` with pydantic models, enums, paths and URLs turned into JSON data.

    ``bytes`` stay bytes (chatkeep stores them base64-tagged); anything else that is
    not JSON is left as is, so that chatkeep's codec raises ``SerializationError``.
    """
    if value is None or isinstance(value, (str, int, float, bool, bytes)):
        return value
    if isinstance(value, Mapping):
        return {k.value if isinstance(k, Enum) else k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if isinstance(value, BaseModel):
        try:
            return value.model_dump(mode="json")
        except PydanticSerializationError:  # e.g. bytes that are not UTF-8
            return _jsonable(value.model_dump())
    if isinstance(value, PurePath):
        return str(value)
    if type(value).__module__.startswith(("pydantic", "pydantic_core")):  # AnyUrl & co
        return str(value)
    return value


def _dump_block(block: BaseModel) -> dict[str, Any]:
    dumped: dict[str, Any] = _jsonable(block.model_dump())
    return dumped


def _parse_arguments(raw: Any) -> dict[str, Any]:
    if isinstance(raw, Mapping):
        parsed: dict[str, Any] = _jsonable(dict(raw))
        return parsed
    if isinstance(raw, str):
        try:
            loaded = json.loads(raw) if raw.strip() else {}
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            return loaded
        return {"__raw__": raw}
    return {} if raw is None else {"__raw__": _jsonable(raw)}


def _openai_tool_calls(kwargs: Mapping[str, Any]) -> list[ToolCall]:
    """Tool calls kept OpenAI-style in ``additional_kwargs["tool_calls"]``."""
    raw = kwargs.get("tool_calls")
    if not isinstance(raw, Sequence) or isinstance(raw, (str, bytes)):
        return []
    calls = []
    for item in raw:
        data = _jsonable(item)
        if not isinstance(data, Mapping):
            continue
        function = data.get("function")
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            name, arguments = function["name"], function.get("arguments")
        elif isinstance(data.get("name"), str):
            name, arguments = data["name"], data.get("arguments", data.get("args"))
        else:
            continue
        call_id = data.get("id")
        calls.append(
            ToolCall(
                id=call_id if isinstance(call_id, str) else None,
                name=name,
                arguments=_parse_arguments(arguments),
            )
        )
    return calls


def _neutral_content(blocks: Sequence[BaseModel], text: str | None) -> str | list[Any]:
    parts: list[Any] = []
    rich = False
    for block in blocks:
        if isinstance(block, TextBlock):
            parts.append({"type": "text", "text": block.text})
        elif isinstance(block, ImageBlock) and block.url is not None:
            # Inline image bytes stay in ``native`` only (no second copy of the data).
            parts.append({"type": "image_url", "image_url": {"url": str(block.url)}})
            rich = True
        elif isinstance(block, ThinkingBlock) and block.content:
            parts.append({"type": "thinking", "thinking": block.content})
            rich = True
    if rich:
        return parts
    return text or ""


def _plain_text(blocks: Sequence[BaseModel]) -> bool:
    """One plain text block: the neutral ``content`` already holds all of it, so
    ``native`` leaves the blocks out (the text is stored once)."""
    if len(blocks) != 1 or type(blocks[0]) is not TextBlock:
        return False
    block = blocks[0]
    return block.__dict__ == {"block_type": "text", "text": block.text}


def to_chatkeep(message: ChatMessage, **fields: Any) -> Message:
    """The chatkeep :class:`~chatkeep.Message` for a LlamaIndex ``ChatMessage``.

    Extra keyword arguments (``id``, ``created_at``, ``metadata``) go to ``Message``.
    """
    role = message.role.value if isinstance(message.role, MessageRole) else str(message.role)
    kwargs = message.additional_kwargs or {}
    blocks = list(message.blocks)

    tool_calls: list[ToolCall] = []
    for block in blocks:
        if isinstance(block, ToolCallBlock):
            tool_calls.append(
                ToolCall(
                    id=block.tool_call_id,
                    name=block.tool_name,
                    arguments=_parse_arguments(block.tool_kwargs),
                )
            )
    known = {call.id for call in tool_calls if call.id is not None}
    for call in _openai_tool_calls(kwargs):
        if call.id is None or call.id not in known:
            tool_calls.append(call)

    tool_call_id = kwargs.get("tool_call_id")
    name = kwargs.get("name")
    form: dict[str, Any] = {"v": _NATIVE_VERSION, "role": role}
    if kwargs:
        form["additional_kwargs"] = _jsonable(dict(kwargs))
    if not _plain_text(blocks):
        form["blocks"] = [_dump_block(block) for block in blocks]
    native = {NATIVE_KEY: form}
    return Message(
        role=_TO_NEUTRAL_ROLE.get(role, role),
        content=_neutral_content(blocks, message.content),
        name=name if isinstance(name, str) and name else None,
        tool_calls=tool_calls,
        tool_call_id=tool_call_id if isinstance(tool_call_id, str) and tool_call_id else None,
        native=native,
        **fields,
    )


# -- reading ------------------------------------------------------------------------------


def is_llama_index_native(message: Message) -> bool:
    """Whether ``message`` carries this adapter's own form in ``native``."""
    native = message.native
    return isinstance(native, dict) and isinstance(native.get(NATIVE_KEY), dict)


def _load_block(data: Any) -> Any:
    try:
        return _BLOCK.validate_python(data)
    except ValidationError:
        # A block that validated when written but not now (e.g. an ImageBlock whose
        # file path no longer exists): keep its data as written rather than drop it.
        cls = _BLOCK_CLASSES.get(str(data.get("block_type"))) if isinstance(data, dict) else None
        if cls is None:
            raise
        return cls.model_construct(**data)


def _from_native(data: Mapping[str, Any], message: Message) -> ChatMessage:
    if data.get("v") != _NATIVE_VERSION:
        raise ValueError(f"unsupported llama_index native version {data.get('v')!r}")
    kwargs = data.get("additional_kwargs") or {}
    if not isinstance(kwargs, dict):
        raise ValueError("additional_kwargs is not an object")
    blocks: list[Any]
    if "blocks" in data:
        blocks = [_load_block(block) for block in data["blocks"] or []]
    elif isinstance(message.content, str):  # one plain text block, kept in ``content``
        blocks = [_text_block({"block_type": "text", "text": message.content})]
    else:
        raise ValueError("no blocks and no text content")
    # Not validated again: the blocks are checked above, and validating the message
    # would re-run its legacy ``images`` hook and duplicate image blocks.
    role = _ROLE_BY_VALUE[data["role"]]
    return _chat_message({"role": role, "additional_kwargs": kwargs, "blocks": blocks})


def _part_to_block(part: Any) -> Any | None:
    if isinstance(part, str):
        return TextBlock(text=part)
    if not isinstance(part, Mapping):
        return None
    kind = part.get("type")
    if kind == "text" and isinstance(part.get("text"), str):
        return TextBlock(text=part["text"])
    if kind == "image_url":
        url = part.get("image_url")
        if isinstance(url, Mapping):
            url = url.get("url")
        if isinstance(url, str):
            detail = (
                part.get("image_url", {}).get("detail")
                if isinstance(part.get("image_url"), Mapping)
                else None
            )
            return ImageBlock(url=url, detail=detail)
    if kind == "image":
        mime = part.get("mime_type")
        if isinstance(part.get("url"), str):
            return ImageBlock(url=part["url"], image_mimetype=mime)
        data = part.get("base64", part.get("data"))
        if isinstance(data, (str, bytes)):
            raw = data.encode() if isinstance(data, str) else data
            return ImageBlock(image=raw, image_mimetype=mime)
    if kind in ("thinking", "reasoning"):
        text = part.get(kind)
        if isinstance(text, str):
            return ThinkingBlock(content=text)
    if isinstance(part.get("text"), str):
        return TextBlock(text=part["text"])
    return None


def _from_neutral(message: Message) -> ChatMessage:
    role = _FROM_NEUTRAL_ROLE.get(message.role.lower(), MessageRole.USER)
    blocks: list[Any]
    if isinstance(message.content, str):
        blocks = [TextBlock(text=message.content)]
    else:
        blocks = [b for b in map(_part_to_block, message.content) if b is not None]
    for call in message.tool_calls:
        blocks.append(
            ToolCallBlock(tool_call_id=call.id, tool_name=call.name, tool_kwargs=call.arguments)
        )
    kwargs: dict[str, Any] = {}
    if message.tool_call_id is not None:
        kwargs["tool_call_id"] = message.tool_call_id
    if message.name is not None:
        kwargs["name"] = message.name
    return ChatMessage(role=role, blocks=blocks, additional_kwargs=kwargs)


def from_chatkeep(message: Message) -> ChatMessage:
    """The LlamaIndex ``ChatMessage`` for a chatkeep :class:`~chatkeep.Message`.

    Uses this adapter's ``native`` form when present (a lossless round trip), else the
    neutral fields (a message written by another framework, or by plain chatkeep).
    """
    if is_llama_index_native(message):
        assert message.native is not None
        try:
            return _from_native(message.native[NATIVE_KEY], message)
        except (ValidationError, ValueError, TypeError, KeyError) as exc:
            logger.warning(
                "message %s: llama_index form unreadable (%s); using its neutral fields",
                message.id,
                type(exc).__name__,
            )
    return _from_neutral(message)


def chat_from_record(record: dict[str, Any]) -> ChatMessage | None:
    """The ``ChatMessage`` of a stored record this adapter wrote as one plain text
    block (most chat turns), built straight from the record; None for any other
    record (rich blocks, other writers), which :func:`from_chatkeep` reads."""
    native = record.get("native")
    if type(native) is not dict:
        return None
    form = native.get(NATIVE_KEY)
    if type(form) is not dict or form.get("v") != _NATIVE_VERSION or "blocks" in form:
        return None
    content = record.get("content", "")
    role = _ROLE_BY_VALUE.get(form.get("role"))  # type: ignore[arg-type]
    kwargs = form.get("additional_kwargs") or {}
    if type(content) is not str or role is None or type(kwargs) is not dict:
        return None
    block = _text_block({"block_type": "text", "text": content})
    return _chat_message({"role": role, "additional_kwargs": kwargs, "blocks": [block]})


CONVERSION: Final = Conversion(from_chatkeep, chat_from_record)
"""Reads records into ``ChatMessage`` objects: ``store.messages(key, into=CONVERSION)``."""
