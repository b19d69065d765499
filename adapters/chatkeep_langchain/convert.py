"""LangChain messages <-> chatkeep records.

A LangChain message is stored as one :class:`chatkeep.Message` that carries

* the **neutral fields** every chatkeep adapter reads: ``role`` (``human`` ->
  ``user``, ``ai`` -> ``assistant``, ``system``, ``tool``, ``function``, and a
  ``ChatMessage``'s own role), ``content`` (the string or the list of content
  blocks, as is), ``name``, ``tool_calls`` (id, name, arguments) and
  ``tool_call_id``; the LangChain message id becomes the record id when set;
* ``native``: LangChain's own form, compact and versioned: ``{"lc": 2}`` plus only
  what the neutral fields, the role and the class defaults do not already say:
  ``"t"``, the ``message_to_dict`` type, when it is not the role's usual one
  (``human`` for ``user``, ``ai`` for ``assistant``, ...; chunks always say it);
  ``"d"``, the fields of ``message_to_dict(message)["data"]`` that are not at their
  default and not in the record already (no ``content``, ``name``, ``id``; no
  ``tool_calls`` when they are exactly what the neutral ``tool_calls`` give back,
  no ``tool_call_id`` of a tool message); ``"i": 1`` when the message had an id
  (the record's id is then the message's). So a plain message costs 19 bytes more
  than its text and tool calls are stored once, while everything else
  (``additional_kwargs``, ``response_metadata``, ``invalid_tool_calls``,
  ``usage_metadata``, ``artifact``, ``status``, chunk fields, ...) is kept: a
  message read back compares equal (``==``) to the one written.

  Records of the first form, ``{"format": "langchain", "type": ..., "data": ...,
  "anon": true}``, are still read as before.

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
from collections.abc import Callable
from typing import Any, Final

from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    ChatMessageChunk,
    FunctionMessage,
    FunctionMessageChunk,
    HumanMessage,
    HumanMessageChunk,
    RemoveMessage,
    SystemMessage,
    SystemMessageChunk,
    ToolMessage,
    ToolMessageChunk,
    message_to_dict,
)
from langchain_core.messages.tool import tool_call

from chatkeep import Conversion, Message, ToolCall, model_builder

__all__ = [
    "CONVERSION",
    "NATIVE_FORMAT",
    "NATIVE_VERSION",
    "from_chatkeep",
    "message_from_record",
    "role_of",
    "to_chatkeep",
]

logger = logging.getLogger("chatkeep.langchain")

NATIVE_FORMAT = "langchain"
"""Value of ``native["format"]`` in the first form of this adapter's records."""
NATIVE_VERSION = 2
"""Value of ``native["lc"]`` in records written by this adapter (the compact form)."""

_ROLE_BY_CLASS: tuple[tuple[type[BaseMessage], str], ...] = (
    (HumanMessage, "user"),
    (AIMessage, "assistant"),
    (SystemMessage, "system"),
    (ToolMessage, "tool"),
    (FunctionMessage, "function"),
)


# The classes ``messages_from_dict`` knows, by the type name ``message_to_dict`` writes.
_CLASS_BY_TYPE: dict[str, type[BaseMessage]] = {
    "human": HumanMessage,
    "ai": AIMessage,
    "system": SystemMessage,
    "chat": ChatMessage,
    "function": FunctionMessage,
    "tool": ToolMessage,
    "remove": RemoveMessage,
    "AIMessageChunk": AIMessageChunk,
    "HumanMessageChunk": HumanMessageChunk,
    "FunctionMessageChunk": FunctionMessageChunk,
    "ToolMessageChunk": ToolMessageChunk,
    "SystemMessageChunk": SystemMessageChunk,
    "ChatMessageChunk": ChatMessageChunk,
}
# Kept by the record itself (content, name, id) or implied by the class (type).
_NOT_IN_NATIVE = ("content", "name", "id", "type")
_MISSING = object()
# The type a role implies in the compact form (any other role: "chat").
_TYPE_BY_ROLE = {
    "user": "human",
    "assistant": "ai",
    "system": "system",
    "tool": "tool",
    "function": "function",
}


def _defaults(cls: type[BaseMessage]) -> dict[str, Any]:
    """Every optional field of ``cls`` with its default (factories called)."""
    return {
        name: field.get_default(call_default_factory=True)
        for name, field in cls.model_fields.items()
        if not field.is_required()
    }


_DEFAULT_VALUES: dict[type[BaseMessage], dict[str, Any]] = {}
_DEFAULTS: dict[type[BaseMessage], dict[str, Any]] = {}
_FACTORIES: dict[type[BaseMessage], dict[str, Any]] = {}
_BUILDERS: dict[type[BaseMessage], Callable[[dict[str, Any]], BaseMessage]] = {}


def _build(cls: type[BaseMessage], data: dict[str, Any]) -> BaseMessage:
    """``cls`` from ``data`` without validating it again (it came from a valid message).

    Every field is filled in here (factories called for fresh values), so the
    instance is set up directly; pydantic's ``model_construct`` would inspect the
    default factories' signatures on every call. Data with keys that are not fields
    (extras of an ``extra="allow"`` message) goes through ``model_construct``.
    """
    defaults = _DEFAULTS.get(cls)
    if defaults is None:
        defaults = _DEFAULTS[cls] = {
            name: field.default
            for name, field in cls.model_fields.items()
            if not field.is_required() and field.default_factory is None
        }
        _FACTORIES[cls] = {
            name: field.default_factory
            for name, field in cls.model_fields.items()
            if field.default_factory is not None
        }
        _BUILDERS[cls] = model_builder(cls)
    values = dict(defaults)
    for name, factory in _FACTORIES[cls].items():
        if name not in data:
            values[name] = factory()
    values.update(data)
    if len(values) == len(cls.model_fields):
        return _BUILDERS[cls](values)
    return cls.model_construct(**values)


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
    kind, content, data = _dumped(message)
    role = role_of(message)
    calls = message.tool_calls if isinstance(message, AIMessage) else []
    # What the neutral fields give back is not stored twice (see _native_data).
    if calls and data.get("tool_calls") == _calls_from_neutral(
        [(call.get("id"), call["name"], call["args"]) for call in calls]
    ):
        del data["tool_calls"]
    if isinstance(message, ToolMessage) and data.get("tool_call_id") == message.tool_call_id:
        del data["tool_call_id"]
    form: dict[str, Any] = {"lc": NATIVE_VERSION}
    if _TYPE_BY_ROLE.get(role, "chat") != kind:
        form["t"] = kind
    if data:
        form["d"] = data
    if message.id:
        form["i"] = 1
    fields: dict[str, Any] = {
        "role": role,
        "content": content,
        "name": message.name,
        "native": form,
    }
    if message.id:
        fields["id"] = message.id
    if calls:
        fields["tool_calls"] = [
            ToolCall(id=call.get("id"), name=call["name"], arguments=call["args"]) for call in calls
        ]
    if isinstance(message, ToolMessage):
        fields["tool_call_id"] = message.tool_call_id
    if metadata:
        fields["metadata"] = metadata
    return Message(**fields)


def _dumped(message: BaseMessage) -> tuple[str, Any, dict[str, Any]]:
    """(type, content, the other fields not at their default) of ``message``, as
    ``message_to_dict`` gives them. Only what is not at its default is dumped (most
    fields of a chat turn are): a fifth of the cost of dumping the whole message."""
    cls = type(message)
    defaults = _DEFAULT_VALUES.get(cls)
    if defaults is None:
        defaults = _DEFAULT_VALUES[cls] = _defaults(cls)
    if message.__pydantic_extra__:  # extra attributes: only model_dump knows them all
        dumped = message_to_dict(message)
        data = {
            key: value
            for key, value in dumped["data"].items()
            if key not in _NOT_IN_NATIVE and defaults.get(key, _MISSING) != value
        }
        return dumped["type"], dumped["data"]["content"], data
    changed = {
        key
        for key, value in message.__dict__.items()
        if key not in _NOT_IN_NATIVE and defaults.get(key, _MISSING) != value
    }
    content = message.content
    if type(content) is str and not changed:
        return message.type, content, {}
    if type(content) is not str:
        changed.add("content")  # dumped: a copy the caller's later changes cannot reach
    data = message.model_dump(include=changed)
    if type(content) is not str:
        content = data.pop("content")
    return message.type, content, data


def _calls_from_neutral(calls: list[tuple[Any, str, Any]]) -> list[Any]:
    """LangChain's tool calls of the neutral (id, name, arguments) triples."""
    return [tool_call(name=name, args=dict(args), id=cid) for cid, name, args in calls]


def _native_data(
    native: dict[str, Any], role: str, calls: list[tuple[Any, str, Any]], call_id: Any
) -> tuple[str | None, Any, bool]:
    """(type, data, whether the message had an id) of either native form; type None
    when the form is not this adapter's. The compact form's data gets back what it
    left to the neutral fields."""
    if native.get("lc") == NATIVE_VERSION:
        kind = native.get("t", _TYPE_BY_ROLE.get(role, "chat"))
        data = native.get("d", {})
        if type(data) is not dict:
            return kind, None, False
        cls = _CLASS_BY_TYPE.get(kind) if type(kind) is str else None
        if cls is not None and issubclass(cls, AIMessage) and "tool_calls" not in data:
            data = {**data, "tool_calls": _calls_from_neutral(calls)}
        elif cls is not None and issubclass(cls, ToolMessage) and "tool_call_id" not in data:
            data = {**data, "tool_call_id": call_id or ""}
        return kind, data, native.get("i") == 1
    if native.get("format") == NATIVE_FORMAT:
        return native.get("type"), native.get("data", {}), not native.get("anon")
    return None, None, False


def _from_native(
    native: dict[str, Any],
    content: Any,
    name: Any,
    mid: str,
    *,
    role: str,
    calls: list[tuple[Any, str, Any]],
    call_id: Any,
) -> BaseMessage | None:
    """The message of this adapter's ``native`` form, or None if it cannot be rebuilt."""
    kind, data, own_id = _native_data(native, role, calls, call_id)
    cls = _CLASS_BY_TYPE.get(kind) if type(kind) is str else None
    if cls is None or type(data) is not dict:
        return None
    data = {**data, "content": content, "name": name, "id": mid if own_id else None}
    if kind == "function" and name is None:
        data["name"] = ""
    # What this adapter wrote came from a valid message: build it without
    # validating again (a third of the cost; defaults are filled in).
    return _build(cls, data)


def _is_ours(native: dict[str, Any]) -> bool:
    return native.get("lc") == NATIVE_VERSION or native.get("format") == NATIVE_FORMAT


def from_chatkeep(record: Message) -> BaseMessage:
    """The LangChain message of one chatkeep record: from ``native`` when this
    adapter wrote it, else from the neutral fields."""
    native = record.native
    if native is not None and _is_ours(native):
        calls = [(call.id, call.name, call.arguments) for call in record.tool_calls]
        message = _from_native(
            native,
            record.content,
            record.name,
            record.id,
            role=record.role,
            calls=calls,
            call_id=record.tool_call_id,
        )
        if message is not None:
            return message
        logger.warning(
            "record %r: cannot rebuild LangChain %r message; reading its neutral fields",
            record.id,
            native.get("t", native.get("type")),
        )
    return _from_neutral(record)


def message_from_record(record: dict[str, Any]) -> BaseMessage | None:
    """The LangChain message of a stored record this adapter wrote, built straight
    from the record (no intermediate ``chatkeep.Message``); None for any other
    record, which :func:`from_chatkeep` reads."""
    native = record.get("native")
    if type(native) is not dict:
        return None
    content = record.get("content", "")
    name = record.get("name")
    call_id = record.get("tool_call_id")
    if type(content) is not str and (
        type(content) is not list or not all(type(p) in (str, dict) for p in content)
    ):
        return None
    if (name is not None and type(name) is not str) or (
        call_id is not None and type(call_id) is not str
    ):
        return None
    calls = []
    for call in record.get("tool_calls", ()):
        if type(call) is not dict:
            return None
        cid, cname, args = call.get("id"), call.get("name"), call.get("arguments", {})
        if (cid is not None and type(cid) is not str) or type(cname) is not str:
            return None
        if type(args) is not dict:
            return None
        calls.append((cid, cname, args))
    return _from_native(
        native, content, name, record["id"], role=record["role"], calls=calls, call_id=call_id
    )


CONVERSION: Final = Conversion(from_chatkeep, message_from_record)
"""Reads records into LangChain messages: ``store.messages(sid, into=CONVERSION)``."""


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
