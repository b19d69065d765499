"""LangChain messages <-> chatkeep records.

A LangChain message is stored as one :class:`chatkeep.Message` that carries

* the **neutral fields** every chatkeep adapter reads: ``role`` (``human`` ->
  ``user``, ``ai`` -> ``assistant``, ``system``, ``tool``, ``function``, and a
  ``ChatMessage``'s own role), ``content`` (the string or the list of content
  blocks, as is), ``name``, ``tool_calls`` (id, name, arguments) and
  ``tool_call_id``; the LangChain message id becomes the record id when set;
* ``native``: LangChain's own form, ``{"format": "langchain", "type": ..., "data":
  ...}`` with ``type`` and ``data`` from ``message_to_dict(message)``, *without* the
  ``content`` in ``data`` (the content is stored once, in the neutral field, and put
  back on read; ``format`` tells readers whose form it is). It keeps everything
  else (``additional_kwargs``, ``response_metadata``, ``tool_calls`` with their
  type, ``invalid_tool_calls``, ``usage_metadata``, ``artifact``, ``status``, chunk
  fields, ...), so a message read back compares equal (``==``) to the one written.

A record without ``native`` (written by another adapter, or by hand) is read from
its neutral fields. A record whose ``native`` cannot be rebuilt (unknown type,
fields a newer LangChain added) is read from its neutral fields too, with a
warning, rather than failing the whole read.

Values JSON cannot hold follow chatkeep's codec policy: ``bytes`` anywhere (for
example in ``additional_kwargs`` or a ``ToolMessage.artifact``) are stored
base64-tagged and come back as ``bytes``; a ``UUID`` comes back as its string;
anything else (datetime, set, arbitrary objects, NaN) raises
:class:`chatkeep.SerializationError` and nothing is written.
"""

from __future__ import annotations

import logging
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
    messages_from_dict,
)
from langchain_core.messages.tool import tool_call

from chatkeep import Message, ToolCall

__all__ = ["NATIVE_FORMAT", "from_chatkeep", "role_of", "to_chatkeep"]

logger = logging.getLogger("chatkeep.langchain")

NATIVE_FORMAT = "langchain"
"""Value of ``native["format"]`` in records written by this adapter."""

_ROLE_BY_CLASS: tuple[tuple[type[BaseMessage], str], ...] = (
    (HumanMessage, "user"),
    (AIMessage, "assistant"),
    (SystemMessage, "system"),
    (ToolMessage, "tool"),
    (FunctionMessage, "function"),
)


def role_of(message: BaseMessage) -> str:
    """The neutral role of a LangChain message (chunks map like their message)."""
    for cls, role in _ROLE_BY_CLASS:
        if isinstance(message, cls):
            return role
    if isinstance(message, ChatMessage):
        return message.role
    return message.type


def to_chatkeep(message: BaseMessage, *, metadata: dict[str, Any] | None = None) -> Message:
    """The chatkeep record of one LangChain message (neutral fields + ``native``)."""
    if not isinstance(message, BaseMessage):
        raise TypeError(f"expected a langchain BaseMessage, got {type(message).__name__}")
    native = message_to_dict(message)
    data = dict(native["data"])
    content = data.pop("content")
    fields: dict[str, Any] = {
        "role": role_of(message),
        "content": content,
        "name": message.name,
        "native": {"format": NATIVE_FORMAT, "type": native["type"], "data": data},
    }
    if message.id:
        fields["id"] = message.id
    if isinstance(message, AIMessage) and message.tool_calls:
        fields["tool_calls"] = [
            ToolCall(id=call.get("id"), name=call["name"], arguments=call["args"])
            for call in message.tool_calls
        ]
    if isinstance(message, ToolMessage):
        fields["tool_call_id"] = message.tool_call_id
    if metadata:
        fields["metadata"] = metadata
    return Message(**fields)


def from_chatkeep(record: Message) -> BaseMessage:
    """The LangChain message of one chatkeep record: from ``native`` when this
    adapter wrote it, else from the neutral fields."""
    native = record.native
    if (
        native is not None
        and native.get("format") == NATIVE_FORMAT
        and isinstance(native.get("type"), str)
        and isinstance(native.get("data"), dict)
    ):
        data = {**native["data"], "content": record.content}
        try:
            return messages_from_dict([{"type": native["type"], "data": data}])[0]
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            logger.warning(
                "record %r: cannot rebuild LangChain %r message (%s); reading its neutral fields",
                record.id,
                native["type"],
                type(exc).__name__,
            )
    return _from_neutral(record)


def _from_neutral(record: Message) -> BaseMessage:
    content: Any = record.content
    common: dict[str, Any] = {"content": content, "id": record.id}
    if record.name is not None:
        common["name"] = record.name
    role = record.role
    if role == "user":
        return HumanMessage(**common)
    if role == "assistant":
        calls = [
            tool_call(name=call.name, args=dict(call.arguments), id=call.id)
            for call in record.tool_calls
        ]
        return AIMessage(**common, tool_calls=calls)
    if role == "system":
        return SystemMessage(**common)
    if role == "tool":
        return ToolMessage(**common, tool_call_id=record.tool_call_id or "")
    if role == "function":
        common.setdefault("name", "")
        return FunctionMessage(**common)
    return ChatMessage(**common, role=role)
