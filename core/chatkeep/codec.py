"""Message <-> record bytes.

A record is one compact JSON object per message::

    {"v":1,"id":"…","tk":<tokens>,"role":"user","content":"…","ts":<µs since epoch>,
     "name":…,"tool_calls":[…],"tool_call_id":…,"meta":{…},"native":{…},"b":2}

Optional keys are left out when empty. Non-JSON values follow one policy, the same
with the stdlib ``json`` and with ``orjson`` (the ``fast`` extra):

* ``bytes``/``bytearray`` are stored as ``{"$b64": "<base64>"}`` and the record is
  marked ``"b":2``; they come back as ``bytes``. In a marked record a dict of yours
  whose only key is a tag (``"$b64"`` or ``"$esc"``) is stored wrapped as
  ``{"$esc": {...}}``, so every value comes back exactly as it was given (a dict
  ``{"$b64": "aGk="}`` stays that dict). A record without bytes is stored untagged.
  Records of the first format (``"b":1``, no escaping) are still read: there a
  ``{"$b64": <str>}`` that is not valid base64 is read as the dict it was.
* ``uuid.UUID`` is stored as its string.
* anything else that JSON cannot hold (datetime, set, custom objects, NaN) raises
  :class:`SerializationError` naming the type; nothing is written.
* containers nested deeper than :data:`MAX_DEPTH` (the record itself is level 1)
  raise :class:`SerializationError`; every record a write accepts reads back.

A store with compression or encryption (:mod:`chatkeep.sealing`) writes a record
*sealed*: the fields the server-side scripts read stay plain at its start, the rest
is one payload, compressed and/or encrypted, in base64::

    {"v":1,"id":"…","tk":<tokens>,"role":"user","ts":<µs>,
     "z":"zstd","k":"k2","b":3,"p":"<base64>"}

``"p"`` says the record is sealed, ``"z"`` names the compression and ``"k"`` the key
(each only when used); ``"b":3`` makes a chatkeep from before sealing skip the record
as one of an unknown form rather than read it as a message without content. The
payload is the JSON object of the other fields (with ``"b"`` when bytes are tagged).
Encryption binds the session id and the record's plain start (everything before
``"p"``) as associated data. Any reader opens it; only one without the key fails
(:class:`ConfigurationError`).

Records are written with ``orjson`` when installed, else the stdlib ``json``, and read
with pydantic-core's JSON parser. No pickle, ever: a record
is data, never code.

A read can build your own message type instead of :class:`Message`: pass a
:class:`Conversion` (``store.messages(sid, into=...)``). Its ``from_record`` gets
each record as the dict above (version checked, bytes restored) and builds the
result straight from it, skipping the intermediate :class:`Message`; a record it
returns ``None`` for (or raises on) is decoded the usual way and handed to
``from_message``. The adapters read this way.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import threading
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Generic, TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError

from .errors import SerializationError, ValueTooLargeError
from .message import Message, ToolCall
from .sealing import Sealing, record_context
from .wording import plural

__all__ = [
    "JSON_LIBRARY",
    "MAX_DEPTH",
    "RECORD_VERSION",
    "Conversion",
    "RecordDecoder",
    "decode",
    "decode_value",
    "dumps",
    "encode",
    "encode_value",
    "is_sealed",
    "loads",
    "model_builder",
    "parse",
    "record_id",
    "record_key_id",
    "seal_record",
    "stable_hash",
]

RECORD_VERSION = 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
_B64 = "$b64"
_ESC = "$esc"
_TAGS = (_B64, _ESC)
_TAGGED = 2  # "b" of a record with tagged bytes and escaped look-alikes
_TAGGED_V1 = 1  # the first format: bytes tagged, look-alikes not escaped

MAX_DEPTH = 254
"""Deepest nesting of objects and arrays in a record (the record itself is level 1, a
flat ``metadata`` dict level 2): what orjson writes at most. The stdlib writer checks
it too; the reader reads every record this deep (pydantic-core's parser stops at 200
levels: deeper records, rare, are read with the stdlib parser)."""

try:  # the ``fast`` extra
    import orjson

    _ORJSON_OPTIONS = (
        orjson.OPT_NON_STR_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
    )

    def _dumps(obj: Any, default: Callable[[Any], Any]) -> bytes:
        # orjson's result keeps the buffer it wrote into, sized for the worst case (at
        # least 4 KiB, about ten times a long string) and never shrunk. Records are
        # kept (the fallback's mirror and journal): keep them at their size.
        return memoryview(orjson.dumps(obj, default=default, option=_ORJSON_OPTIONS)).tobytes()

    JSON_LIBRARY = "orjson"
except ImportError:  # pragma: no cover - exercised when orjson is absent

    def _dumps(obj: Any, default: Callable[[Any], Any]) -> bytes:
        encoder = json.JSONEncoder(
            separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=default
        )
        data = encoder.encode(obj).encode()
        # orjson refuses what nests deeper than MAX_DEPTH; so does this writer (the
        # brackets in the text bound the depth: only then is the structure walked).
        if data.count(b"{") + data.count(b"[") > MAX_DEPTH and _deeper(obj, MAX_DEPTH):
            raise ValueError("Recursion limit reached")
        return data

    JSON_LIBRARY = "json"

# Reading always uses pydantic-core's parser (Rust, installed with pydantic): fast
# without the ``fast`` extra, and exact where orjson is not (orjson silently turns an
# integer beyond 64 bits, which a stdlib writer may have stored, into a float).
loads: Callable[[bytes | str], Any] = pydantic_core.from_json


class _Encoding:
    """The ``default`` hook of one encoding; remembers whether bytes were tagged."""

    __slots__ = ("tagged",)

    def __init__(self) -> None:
        self.tagged = False

    def __call__(self, value: Any) -> Any:
        if isinstance(value, (bytes, bytearray, memoryview)):
            self.tagged = True
            return {_B64: base64.b64encode(bytes(value)).decode("ascii")}
        if isinstance(value, uuid.UUID):
            return str(value)
        raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps(obj: Any) -> bytes:
    """Compact JSON with chatkeep's non-JSON policy (bytes tagged, UUIDs as strings)."""
    return _checked_dumps(obj, _Encoding())


def _checked_dumps(obj: Any, hook: _Encoding) -> bytes:
    try:
        return _dumps(obj, hook)
    except (TypeError, ValueError, RecursionError) as exc:
        if isinstance(exc, RecursionError) or "Recursion limit" in str(exc):
            raise SerializationError(
                f"cannot encode message as JSON: values nested deeper than {MAX_DEPTH} levels"
            ) from None
        # orjson raises its JSONEncodeError (a TypeError); stdlib raises TypeError/ValueError.
        raise SerializationError(f"cannot encode message as JSON: {exc}") from None


def _check_floats(obj: Any) -> None:
    # orjson writes NaN/Infinity as null; refuse them so both libraries behave alike.
    if isinstance(obj, float):
        if not math.isfinite(obj):
            raise SerializationError("cannot encode message as JSON: NaN or Infinity")
    elif isinstance(obj, dict):
        for value in obj.values():
            _check_floats(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            _check_floats(value)


def encode_value(value: Any, limit: int, what: str) -> tuple[bytes, bool]:
    """A JSON value under chatkeep's policy: (compact JSON, whether bytes were tagged as
    ``{"$b64": ...}``). Raises :class:`SerializationError` for what JSON cannot hold
    and :class:`ValueTooLargeError` above ``limit`` bytes (``what`` names the value)."""
    hook = _Encoding()
    try:
        data = _checked_dumps(value, hook)
        if JSON_LIBRARY == "orjson" and b"null" in data:
            _check_floats(value)
    except SerializationError as exc:
        raise SerializationError(
            f"{what}: {str(exc).replace('message', 'value')}; nothing was written"
        ) from None
    if len(data) > limit:
        raise ValueTooLargeError(len(data), limit, what)
    return data, hook.tagged


def decode_value(data: bytes | str, tagged: bool) -> Any:
    """The inverse of :func:`encode_value`. Raises :class:`SerializationError`."""
    try:
        try:
            value = loads(data)
        except ValueError as exc:  # as deep as the writer allows, or not JSON
            value = _deep(data, exc)
        return _untag(value) if tagged else value
    except (SerializationError, ValueError, binascii.Error):
        raise SerializationError("stored value is not valid JSON") from None


def _canonical_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {_B64: base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def stable_hash(inputs: Any) -> str:
    """sha256 (hex) of the canonical JSON of ``inputs`` (sorted keys, compact, UTF-8).

    The stdlib ``json`` is used whether or not orjson is installed, so every process
    computes the same key for the same inputs. Raises :class:`SerializationError` for
    inputs JSON cannot hold.
    """
    try:
        text = json.dumps(
            inputs,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_canonical_default,
        )
    except (TypeError, ValueError) as exc:
        raise SerializationError(f"cannot hash cache inputs as JSON: {exc}") from None
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def to_record(message: Message, tokens: int | None = None) -> dict[str, Any]:
    """The record (a JSON-ready dict) of one message, with its token count if given
    (``"tk"``, right after the id: the server-side scripts read it there)."""
    record: dict[str, Any] = {"v": RECORD_VERSION, "id": message.id}
    if tokens is not None:
        record["tk"] = tokens
    record["role"] = message.role
    record["content"] = message.content
    record["ts"] = (message.created_at - _EPOCH) // _US
    if message.name is not None:
        record["name"] = message.name
    if message.tool_calls:
        record["tool_calls"] = [
            {"id": call.id, "name": call.name, "arguments": call.arguments}
            for call in message.tool_calls
        ]
    if message.tool_call_id is not None:
        record["tool_call_id"] = message.tool_call_id
    if message.metadata:
        record["meta"] = message.metadata
    if message.native is not None:
        record["native"] = message.native
    return record


def encode(message: Message, tokens: int | None = None) -> bytes:
    """Encode one message to record bytes. Raises :class:`SerializationError`."""
    record = to_record(message, tokens)
    hook = _Encoding()
    data = _checked_dumps(record, hook)
    if JSON_LIBRARY == "orjson" and (b"null" in data):
        _check_floats(record)
    if hook.tagged:
        tagged = _tag(record)
        tagged["b"] = _TAGGED
        data = _checked_dumps(tagged, _Encoding())
    return data


def _tag(obj: Any) -> Any:
    """``obj`` with bytes tagged and dicts that look like a tag escaped."""
    if isinstance(obj, dict):
        tagged = {key: _tag(value) for key, value in obj.items()}
        if len(obj) == 1 and next(iter(obj)) in _TAGS:
            return {_ESC: tagged}
        return tagged
    if isinstance(obj, (list, tuple)):
        return [_tag(value) for value in obj]
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return {_B64: base64.b64encode(bytes(obj)).decode("ascii")}
    return obj


def _deeper(obj: Any, limit: int) -> bool:
    """Whether containers nest more than ``limit`` levels in ``obj`` (one level: obj;
    bytes are one: their tag)."""
    if isinstance(obj, dict):
        children: Iterable[Any] = obj.values()
    elif isinstance(obj, (list, tuple)):
        children = obj
    elif isinstance(obj, (bytes, bytearray, memoryview)):
        return limit <= 0
    else:
        return False
    if limit <= 0:
        return True
    return any(_deeper(child, limit - 1) for child in children)


def _untag(obj: Any) -> Any:
    """A value of the first tagged format (``"b":1``): a ``{"$b64": <str>}`` that is
    valid base64 is bytes; any other dict (a user's look-alike) is kept as it is."""
    if isinstance(obj, dict):
        if len(obj) == 1 and _B64 in obj and isinstance(obj[_B64], str):
            try:
                return base64.b64decode(obj[_B64], validate=True)
            except ValueError:  # binascii.Error: not ours, a user's dict
                pass
        return {key: _untag(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_untag(value) for value in obj]
    return obj


def _untag2(obj: Any) -> Any:
    """A value of a ``"b":2`` record: tags restored, escaped dicts unwrapped."""
    if isinstance(obj, dict):
        if len(obj) == 1:
            key, value = next(iter(obj.items()))
            if key == _B64:
                if not isinstance(value, str):
                    raise SerializationError("stored record has a malformed bytes tag")
                try:
                    return base64.b64decode(value, validate=True)
                except ValueError:
                    raise SerializationError("stored record has invalid base64") from None
            if key == _ESC:
                if type(value) is not dict:
                    raise SerializationError("stored record has a malformed escape")
                return {k: _untag2(v) for k, v in value.items()}
        return {key: _untag2(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_untag2(value) for value in obj]
    return obj


def parse(
    raw: bytes | str, sealing: Sealing | None = None, session_id: str | None = None
) -> dict[str, Any]:
    """The record dict of record bytes (version checked, bytes restored).
    Raises :class:`SerializationError`. A sealed record is opened only when
    ``session_id`` is given (with the store's ``sealing`` for encrypted ones)."""
    try:
        record = loads(raw)
    except ValueError as exc:
        record = _deep(raw, exc)
    if type(record) is not dict:
        raise SerializationError("stored record is not a JSON object")
    version = record.get("v")
    if version != RECORD_VERSION:
        raise SerializationError(f"stored record has unsupported version {version!r}")
    if "p" in record:
        if session_id is None:
            raise SerializationError("stored record is sealed (opened by its store)")
        record = _opened(raw, record, sealing or _PLAIN, session_id)
    tagging = record.get("b")
    if tagging is None:
        plain: dict[str, Any] = record
        return plain
    if tagging == _TAGGED:
        untagged: dict[str, Any] = _untag2(record)
        return untagged
    if tagging == _TAGGED_V1:
        legacy: dict[str, Any] = _untag(record)
        return legacy
    raise SerializationError(f"stored record has unsupported tagging {tagging!r}")


# -- sealed records -----------------------------------------------------------------------

_PLAIN = Sealing()
_HEAD_FIELDS = ("v", "id", "tk", "role", "ts")  # what stays plain, in this order
_PAYLOAD_AT = b',"p":"'
_BASE64_DIGITS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# "b" of a sealed record: a chatkeep from before sealing refuses the record as one of an
# unknown form (skipped and counted) instead of reading it as a message without content.
_SEALED_FORM = 3


def seal_record(data: bytes, sealing: Sealing, session_id: str) -> bytes:
    """Plain record bytes as ``sealing`` stores them in ``session_id`` (see the module
    docs); the plain record itself when nothing applies to it."""
    if not sealing.applies(len(data)):
        return data
    try:
        record = loads(data)
    except ValueError as exc:
        record = _deep(data, exc)
    head = {name: record.pop(name) for name in _HEAD_FIELDS if name in record}
    payload = _dumps(record, _Encoding())
    method, body = sealing.pack(payload)
    keys = sealing.keys
    if keys is None and (method is None or (len(body) + 2) // 3 * 4 >= len(payload)):
        return data  # compression did not pay for its base64: kept plain
    if method is not None:
        head["z"] = method
    cipher = None
    if keys is not None:
        head["k"], cipher = keys.writer()
    head["b"] = _SEALED_FORM
    start = _dumps(head, _Encoding())[:-1] + b","
    if cipher is not None:
        body = sealing.lock(body, cipher, record_context(session_id) + start)
    return start + b'"p":"' + binascii.b2a_base64(body, newline=False) + b'"}'


def _opened(
    raw: bytes | str, record: dict[str, Any], sealing: Sealing, session_id: str
) -> dict[str, Any]:
    """The whole record of a sealed one."""
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    payload = record.pop("p")
    at = raw.rfind(_PAYLOAD_AT)
    if type(payload) is not str or at < 0 or not raw.endswith(b'"}'):
        raise SerializationError("stored record has a malformed sealed payload")
    encoded = raw[at + len(_PAYLOAD_AT) : -2]
    # a2b_base64 skips what is not base64 and stops at padding: anything else in the
    # payload's place (a plain field repeated after it, which JSON reads as the last
    # word, unauthenticated) makes the record malformed.
    if len(encoded) % 4 or encoded.rstrip(b"=").translate(None, _BASE64_DIGITS):
        raise SerializationError("stored record has a malformed sealed payload")
    try:
        # Decoded from the record's bytes: a2b_base64 of bytes is twice as fast as
        # b64decode(validate=True) of the parsed str (what a long record costs to read).
        body = binascii.a2b_base64(encoded)
    except binascii.Error:
        raise SerializationError("stored record has a malformed sealed payload") from None
    if record.pop("b", None) != _SEALED_FORM:
        raise SerializationError("stored record has a malformed sealed form")
    key_id = record.pop("k", None)
    if key_id is not None:
        if type(key_id) is not str:
            raise SerializationError("stored record has a malformed key id")
        start = raw[: at + 1]
        body = sealing.unlock(key_id, body, record_context(session_id) + start)
    opened = sealing.unpack(record.pop("z", None), body)
    try:
        rest = loads(opened)
    except ValueError as exc:  # as deep as the writer allows, or not JSON
        rest = _deep(opened, exc)
    if type(rest) is not dict:
        raise SerializationError("stored record has a malformed sealed payload")
    rest.update(record)
    return rest


def record_id(raw: Entry | str) -> str | None:
    """The id of a stored record, sealed or not (None when it has none)."""
    if isinstance(raw, Message):
        return raw.id
    try:
        found = loads(raw).get("id")
    except (ValueError, AttributeError):
        return None
    return found if type(found) is str else None


def record_key_id(raw: bytes | str) -> str | bool | None:
    """The key id a stored record is encrypted with; None if plain or only
    compressed; False if it is not a record at all."""
    try:
        record = loads(raw)
    except ValueError:
        return False
    if type(record) is not dict:
        return False
    key_id = record.get("k") if "p" in record else None
    return key_id if type(key_id) is str else None


def is_sealed(raw: Entry | str) -> bool:
    """Whether record bytes are sealed (compressed and/or encrypted)."""
    if isinstance(raw, Message):
        return False
    if isinstance(raw, str):
        raw = raw.encode("utf-8", "surrogatepass")
    if _PAYLOAD_AT not in raw:
        return False
    try:
        record = loads(raw)
    except ValueError:
        return False
    return type(record) is dict and "p" in record


def _deep(raw: bytes | str, exc: ValueError) -> Any:
    """A record pydantic-core's parser refused: one nested deeper than its 200 levels
    (the writer allows MAX_DEPTH) is read with the stdlib parser; else not JSON."""
    if "recursion limit" in str(exc):
        try:
            return json.loads(raw)
        except (ValueError, RecursionError):
            pass
    raise SerializationError("stored record is not valid JSON") from None


def decode(
    raw: bytes | str, sealing: Sealing | None = None, session_id: str | None = None
) -> Message:
    """Decode record bytes to a message. Raises :class:`SerializationError` (and
    :class:`ConfigurationError` for a sealed record whose key ``sealing`` lacks)."""
    return from_record(parse(raw, sealing, session_id))


def from_record(record: dict[str, Any]) -> Message:
    """The message of a parsed record. Raises :class:`SerializationError`."""
    fast = _trusted_message(record)
    if fast is not None:
        return fast
    try:
        ts = record["ts"]
        if not isinstance(ts, int):
            raise SerializationError("stored record has a non-integer timestamp")
        fields: dict[str, Any] = {
            "id": record["id"],
            "role": record["role"],
            "content": record.get("content", ""),
            "created_at": _EPOCH + ts * _US,
        }
    except (KeyError, TypeError, OverflowError):
        raise SerializationError("stored record lacks id, role or timestamp") from None
    for key in ("name", "tool_call_id", "native", "tool_calls"):
        if key in record:
            fields[key] = record[key]
    if "meta" in record:
        fields["metadata"] = record["meta"]
    try:
        return Message.model_validate(fields)
    except ValidationError as exc:
        raise SerializationError(
            f"stored record does not describe a message ({plural(exc.error_count(), 'error')})"
        ) from None


# -- fast path --------------------------------------------------------------------------
# Reading is the hot path (a chain reads the whole history every turn). A record that
# came out of a JSON parser has only str keys and JSON values, so checking the types of
# the top-level fields is all the validation pydantic would do; when every check passes
# the model is built directly (a third of the cost), otherwise decode() falls back to
# full validation, which gives the precise error (and ignores keys it does not know,
# so a record from a newer writer still reads).

_MAX_US = (datetime(9999, 12, 31, tzinfo=timezone.utc) - _EPOCH) // _US
_set = object.__setattr__


M = TypeVar("M", bound=BaseModel)


def model_builder(
    cls: type[M], fields_set: frozenset[str] | None = None, *, shared: bool = False
) -> Callable[[dict[str, Any]], M]:
    """A constructor of ``cls`` from a dict holding *every* field, without validation:
    what ``model_construct`` does, minus its per-call walk over the fields (the cost
    of reading a long history). Only for values that came from a valid instance.

    ``fields_set`` is what the instance reports as explicitly set (default: all).
    ``shared=True`` gives every instance one fields-set object, one object fewer per
    instance for the garbage collector: allowed only when it names every field and
    the model takes no extra attributes, so pydantic can only ever add a name that is
    already in it (``model_copy`` copies it first). Models whose construction does
    more (post-init, private attributes, root models) get ``model_construct`` itself.
    """
    if shared and (fields_set is not None or cls.model_config.get("extra") == "allow"):
        raise ValueError(f"{cls.__name__}: a shared fields-set must name every field")
    if cls.__pydantic_post_init__ or cls.__private_attributes__ or cls.__pydantic_root_model__:
        return lambda values: cls.model_construct(
            None if fields_set is None else set(fields_set), **values
        )
    extra: Any = {} if cls.model_config.get("extra") == "allow" else None
    every = set(cls.model_fields)

    def build(values: dict[str, Any]) -> M:
        obj = _new(cls)
        _set(obj, "__dict__", values)
        if shared:
            _set(obj, "__pydantic_fields_set__", every)
        else:
            _set(obj, "__pydantic_fields_set__", set(fields_set or values))
        _set(obj, "__pydantic_extra__", None if extra is None else {})
        _set(obj, "__pydantic_private__", None)
        return obj

    return build


_new = object.__new__
_build_tool_call = model_builder(ToolCall)


def _trusted_tool_calls(raw: Any) -> list[ToolCall] | None:
    if type(raw) is not list:
        return None
    calls = []
    for item in raw:
        if type(item) is not dict or len(item) > 3:
            return None
        call_id = item.get("id")
        name = item.get("name")
        arguments = item.get("arguments", {})
        if (call_id is not None and type(call_id) is not str) or type(name) is not str:
            return None
        if type(arguments) is not dict or len(item) != 2 + ("id" in item):
            return None
        calls.append(_build_tool_call({"id": call_id, "name": name, "arguments": arguments}))
    return calls


# Every decoded Message shares one fields-set: Message is frozen, so pydantic never
# adds to it (model_copy copies it first), and a set per message would be one more
# object for the garbage collector to track per record (a tenth of a long read).
_build_message = model_builder(Message, shared=True)


def _trusted_message(record: dict[str, Any]) -> Message | None:
    try:
        mid = record["id"]
        role = record["role"]
        ts = record["ts"]
    except KeyError:
        return None
    if not (type(mid) is str and mid and type(role) is str and role and type(ts) is int):
        return None
    if not 0 <= ts <= _MAX_US:
        return None
    content = record.get("content", "")
    if type(content) is not str:
        if type(content) is not list:
            return None
        for part in content:
            if type(part) is not str and type(part) is not dict:
                return None
    name = call_id = native = None
    metadata: Any = {}
    tool_calls: list[ToolCall] | None = []
    if len(record) > 5 + ("tk" in record):  # beyond v, id, tk, role, content, ts
        get = record.get
        name = get("name")
        call_id = get("tool_call_id")
        if (name is not None and type(name) is not str) or (
            call_id is not None and type(call_id) is not str
        ):
            return None
        metadata = get("meta")
        if metadata is None:
            metadata = {}
        elif type(metadata) is not dict:
            return None
        native = get("native")
        if native is not None and type(native) is not dict:
            return None
        raw_calls = get("tool_calls")
        if raw_calls is not None:
            tool_calls = _trusted_tool_calls(raw_calls)
            if tool_calls is None:
                return None
    return _build_message(
        {
            "id": mid,
            "role": role,
            "content": content,
            "name": name,
            "tool_calls": tool_calls,
            "tool_call_id": call_id,
            "created_at": _EPOCH + ts * _US,
            "metadata": metadata,
            "native": native,
        }
    )


T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


def _sound(record: dict[str, Any]) -> bool:
    """Whether the fields every message needs (id, role, timestamp) are sound: a
    record that fails this is left to the full decode, which skips it."""
    mid, role, ts = record.get("id"), record.get("role"), record.get("ts")
    return (
        type(mid) is str
        and mid != ""
        and type(role) is str
        and role != ""
        and type(ts) is int
        and 0 <= ts <= _MAX_US
    )


@dataclass(frozen=True, slots=True)
class Conversion(Generic[T_co]):
    """How a read turns stored records into another message type (``into=``).

    ``from_message`` converts a decoded :class:`Message`; the optional
    ``from_record`` builds the result straight from a parsed record dict (see the
    module docs) whose id, role and timestamp are already checked, and returns
    ``None`` (or raises ValueError, TypeError, KeyError) for a record it leaves to
    ``from_message``. Both must agree: a record read either way gives equal results
    (the memory backend keeps decoded messages, so its reads use ``from_message``).
    """

    from_message: Callable[[Message], T_co]
    from_record: Callable[[dict[str, Any]], T_co | None] | None = None


# What a backend hands back for one stored message: the record bytes as stored, or
# the Message already decoded from them (the memory backend keeps those).
Entry = Message | bytes


class RecordDecoder:
    """Decodes the records of one read under the store's policy.

    A record that cannot be decoded is skipped, counted and reported by one WARNING
    per read (never with its content); with ``strict=True`` it raises instead.
    """

    def __init__(
        self, *, strict: bool, logger: logging.Logger, sealing: Sealing | None = None
    ) -> None:
        self.strict = strict
        self.sealing = sealing or _PLAIN
        self.skipped = 0
        self._logger = logger
        self._lock = threading.Lock()

    def decode_all(self, raws: Iterable[Entry | str], session_id: str) -> list[Message]:
        return self.convert_all(raws, session_id, None)

    def convert_all(
        self, entries: Iterable[Entry | str], session_id: str, into: Conversion[T] | None
    ) -> list[Any]:
        """The messages of ``entries`` (converted by ``into`` when given), oldest first."""
        out: list[Any] = []
        add = out.append
        build = into.from_record if into is not None else None
        convert = into.from_message if into is not None else None
        bad = 0
        first_error = ""
        sealing = self.sealing
        for entry in entries:
            if isinstance(entry, Message):
                add(entry if convert is None else convert(entry))
                continue
            try:
                record = parse(entry, sealing, session_id)
                if build is not None and _sound(record):
                    try:
                        built = build(record)
                    except (ValueError, TypeError, KeyError, AttributeError):
                        built = None  # the full decode below gives the precise answer
                    if built is not None:
                        add(built)
                        continue
                message = from_record(record)
            except SerializationError as exc:
                if self.strict:
                    raise SerializationError(f"session {session_id!r}: {exc}") from None
                bad += 1
                first_error = first_error or str(exc)
                continue
            add(message if convert is None else convert(message))
        if bad:
            with self._lock:
                self.skipped += bad
            self._logger.warning(
                "skipped %s in session %r (%s)",
                plural(bad, "undecodable record"),
                session_id,
                first_error,
            )
        return out
