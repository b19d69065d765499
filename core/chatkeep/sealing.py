"""Compression and encryption at rest: opt-in, per store (docs/security-at-rest.md).

A :class:`Sealing` says how a store writes what it keeps: ``compression`` ("zlib",
stdlib; or "zstd", the ``zstd`` extra) for payloads of at least ``threshold`` bytes,
and ``keys`` (a :class:`KeyRing`: AES-256-GCM, the ``crypto`` extra) to encrypt every
payload. Compression comes first, then encryption. Reading never depends on the
reader's settings: each stored item says itself how it was written (a conversation
record by its ``"z"``/``"k"``/``"p"`` fields, see :mod:`chatkeep.codec`; a value by
the envelope below), so stores with different settings read each other's items and
items written before stay readable. Only a key the reader lacks stops a read
(:class:`ConfigurationError`); an item that fails authentication (tampered, moved to
another session or key, or encrypted under another key with the same id) is an
undecodable item (:class:`SerializationError`).

The associated data of every encryption binds the item to where it belongs: the key
family (``conversation``, ``memory``, ``cache``), the session id (or namespace and
key) and the item's own plain header, so a record copied or renamed into another
session, or whose plain fields were edited, does not decrypt.

Value envelope (memory and cache values; nothing server-side reads them)::

    b"\\x00ck1" + method (b"-" none, b"z" zlib, b"s" zstd) + len(key id) (1 byte)
    + key id + (nonce (12) + ciphertext + tag (16) | the payload as stored)

JSON never starts with a NUL byte, so the first byte says that an item is sealed.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import os
import re
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ConfigurationError, SerializationError

try:  # the crypto extra
    from cryptography.exceptions import InvalidTag
except ImportError:  # pragma: no cover - without it nothing is encrypted here

    class InvalidTag(Exception):  # type: ignore[no-redef]
        """Stands in for cryptography's (never raised without it)."""


__all__ = [
    "COMPRESSIONS",
    "DEFAULT_THRESHOLD",
    "KeyProvider",
    "KeyRing",
    "MAX_OPENED",
    "Sealing",
    "VECTOR_FAMILY",
    "is_sealed_value",
    "value_form",
    "key_from_text",
]

COMPRESSIONS = ("zlib", "zstd")
DEFAULT_THRESHOLD = 1024
"""Bytes of payload from which a store with compression compresses."""
MAX_OPENED = 256 * 1024 * 1024
"""Bytes a stored payload may decompress to, at most (a corrupted or hostile payload
cannot make a read allocate more)."""
PROVIDER_REFRESH = 60.0
"""Seconds a key provider's answer serves writes before it is asked again."""

Compression = Literal["zlib", "zstd"]
KeyProvider = Callable[[], Mapping[str, "bytes | str"]]
"""Returns the keys by id (the first one writes); asked when first needed, when a
stored item names a key id it did not return, and every :data:`PROVIDER_REFRESH`
seconds for writes."""

_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_NONCE = 12
_VALUE_MARK = b"\x00ck1"
_METHODS = {None: b"-", "zlib": b"z", "zstd": b"s"}
_NAMES = {v: k for k, v in _METHODS.items()}


VECTOR_FAMILY = "memory-vector"
"""What a sealed embedding of a MemoryStore value is bound to (with namespace and key)."""


def value_form(tagged: bool) -> str:
    """How a value's JSON is read back (``bytes`` tagged or plain ``json``): bound into
    its encryption with its place, so flipping the flag stored beside it fails."""
    return "bytes" if tagged else "json"


def is_sealed_value(data: bytes) -> bool:
    """Whether ``data`` is in the sealed value envelope (else it is stored as is)."""
    return data[:4] == _VALUE_MARK


def key_from_text(text: str) -> bytes:
    """A 32-byte key from its base64 (standard or URL-safe) or 64-digit hex form."""
    text = text.strip()
    if len(text) == 64 and re.fullmatch(r"[0-9a-fA-F]{64}", text):
        return bytes.fromhex(text)
    try:
        key = base64.b64decode(text.replace("-", "+").replace("_", "/"), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(
            "an encryption key must be 32 bytes, or their base64 or hex text"
        ) from None
    return key


def _aead(key_id: object, key: object) -> Any:
    if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
        raise ConfigurationError("encryption key ids must be 1..64 characters of A-Z a-z 0-9 . _ -")
    if isinstance(key, str):
        key = key_from_text(key)
    if not isinstance(key, (bytes, bytearray)) or len(key) != 32:
        raise ConfigurationError(
            f"encryption key {key_id!r} must be 32 bytes (AES-256), or their base64 or hex"
        )
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:  # pragma: no cover - the crypto extra is installed in tests
        raise ConfigurationError(
            "encryption at rest needs the 'cryptography' package: pip install 'chatkeep[crypto]'"
        ) from None
    return AESGCM(bytes(key))


class KeyRing:
    """Encryption keys by id: the first writes, every one reads (rotation: put the new
    key first, keep the old ones until ``chatkeep rekey`` has re-encrypted their
    items). Made from a mapping ``{"k2": key, "k1": old}`` (keys: 32 bytes, or their
    base64/hex text) or from a :data:`KeyProvider` callable. Never shows a key."""

    def __init__(self, source: Mapping[str, bytes | str] | KeyProvider) -> None:
        self._lock = threading.Lock()
        self._provider: KeyProvider | None = None
        self._asked = 0.0
        self._fingerprint = b""
        if isinstance(source, Mapping):
            self._ring = self._checked(source)
            # Rings of the same keys are equal (twin stores compare configurations).
            digest = hashlib.sha256()
            for key_id, key in source.items():
                raw = key_from_text(key) if isinstance(key, str) else bytes(key)
                digest.update(key_id.encode() + b"\x00" + raw)
            self._fingerprint = digest.digest()
        elif callable(source):
            self._provider = source
            self._ring = {}
        else:
            raise ConfigurationError(
                "encryption_keys must be a mapping of key id to key, or a callable returning one"
            )

    @staticmethod
    def _checked(keys: Mapping[str, bytes | str]) -> dict[str, Any]:
        if not isinstance(keys, Mapping) or not keys:
            raise ConfigurationError("encryption_keys must name at least one key")
        return {key_id: _aead(key_id, key) for key_id, key in keys.items()}

    @classmethod
    def from_text(cls, text: str) -> KeyRing:
        """From ``"k2:<base64>,k1:<base64>"`` (what ``CHATKEEP_ENCRYPTION_KEYS`` holds)."""
        keys: dict[str, bytes | str] = {}
        for part in text.split(","):
            key_id, colon, key = part.strip().partition(":")
            if not colon:
                raise ConfigurationError(
                    "CHATKEEP_ENCRYPTION_KEYS must look like 'k2:<base64 key>,k1:<base64 key>'"
                )
            keys[key_id.strip()] = key
        return cls(keys)

    def _ask(self) -> dict[str, Any]:
        assert self._provider is not None
        with self._lock:
            try:
                answer = self._provider()
            except ConfigurationError:
                raise
            except Exception as exc:
                raise ConfigurationError(
                    f"the encryption key provider failed: {type(exc).__name__}"
                ) from exc
            self._ring = self._checked(answer)
            self._asked = time.monotonic()
            return self._ring

    def writer(self) -> tuple[str, Any]:
        """The id and cipher of the writing key."""
        ring = self._ring
        if self._provider is not None and (
            not ring or time.monotonic() - self._asked > PROVIDER_REFRESH
        ):
            ring = self._ask()
        key_id = next(iter(ring))
        return key_id, ring[key_id]

    def reader(self, key_id: str) -> Any:
        """The cipher of ``key_id``; :class:`ConfigurationError` when it is not here."""
        cipher = self._ring.get(key_id)
        if cipher is None and self._provider is not None:
            cipher = self._ask().get(key_id)
        if cipher is None:
            raise ConfigurationError(
                f"an item was encrypted with key {key_id!r}, which this store does not have "
                f"(encryption_keys names {', '.join(map(repr, self._ring)) or 'no key'})"
            )
        return cipher

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, KeyRing):
            return NotImplemented
        if self._provider is not None or other._provider is not None:
            return self._provider is other._provider
        return self._fingerprint == other._fingerprint

    def __hash__(self) -> int:
        return hash(self._fingerprint if self._provider is None else id(self._provider))

    @property
    def ids(self) -> list[str]:
        """The key ids known now (the writing one first)."""
        return list(self._ring)

    def __repr__(self) -> str:
        if self._provider is not None:
            return "KeyRing(<provider>)"
        return f"KeyRing(ids={self.ids!r})"


ZLIB_LEVEL = 1
"""zlib's fastest level: on chat text it compresses within a tenth of level 6, at
half its cost or less (zstd is both smaller and faster)."""
ZSTD_LEVEL = 3

_local = threading.local()  # zstd contexts are not for concurrent use: one per thread


def _compress(method: str, data: bytes) -> bytes:
    if method == "zlib":
        return zlib.compress(data, ZLIB_LEVEL)
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = _zstd().ZstdCompressor(level=ZSTD_LEVEL)
    packed: bytes = compressor.compress(data)
    return packed


def _decompress(method: str, data: bytes) -> bytes:
    if method == "zlib":
        inflater = zlib.decompressobj()
        try:
            out = inflater.decompress(data, MAX_OPENED)
        except zlib.error:
            raise SerializationError("stored item does not decompress") from None
        if inflater.unconsumed_tail or not inflater.eof:
            raise SerializationError("stored item does not decompress (cut, or too large)")
        return out
    zstandard = _zstd()
    decompressor = getattr(_local, "decompressor", None)
    if decompressor is None:
        decompressor = _local.decompressor = zstandard.ZstdDecompressor()
    try:
        if zstandard.frame_content_size(data) > MAX_OPENED:
            raise SerializationError("stored item decompresses to more than chatkeep opens")
        out = decompressor.decompress(data, max_output_size=MAX_OPENED)
    except zstandard.ZstdError:
        raise SerializationError("stored item does not decompress") from None
    return bytes(out)


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError:
        raise ConfigurationError(
            "zstd compression needs the 'zstandard' package: pip install 'chatkeep[zstd]'"
        ) from None
    return zstandard


@dataclass(frozen=True)
class Sealing:
    """How a store writes its items (see the module's docs). ``Sealing()`` writes
    plain items and reads every form but encrypted ones."""

    compression: Compression | None = None
    threshold: int = DEFAULT_THRESHOLD
    keys: KeyRing | None = None

    def __post_init__(self) -> None:
        if self.compression is not None and self.compression not in COMPRESSIONS:
            raise ConfigurationError(f"compression must be one of {COMPRESSIONS} or None")
        if self.compression == "zstd":
            _zstd()

    @property
    def active(self) -> bool:
        """Whether this store writes anything other than plain items."""
        return self.compression is not None or self.keys is not None

    def applies(self, size: int) -> bool:
        """Whether a payload of ``size`` bytes is written sealed."""
        return self.keys is not None or (self.compression is not None and size >= self.threshold)

    def pack(self, payload: bytes) -> tuple[str | None, bytes]:
        """(compression method or None, payload compressed when that pays)."""
        if self.compression is None or len(payload) < self.threshold:
            return None, payload
        packed = _compress(self.compression, payload)
        if len(packed) >= len(payload):
            return None, payload
        return self.compression, packed

    @staticmethod
    def lock(body: bytes, cipher: Any, associated: bytes) -> bytes:
        """``body`` encrypted under ``cipher`` (a fresh random nonce + ciphertext + tag)."""
        nonce = os.urandom(_NONCE)
        sealed: bytes = cipher.encrypt(nonce, body, associated)
        return nonce + sealed

    def unlock(self, key_id: str, body: bytes, associated: bytes) -> bytes:
        """The inverse of :meth:`lock`: :class:`ConfigurationError` without the key,
        :class:`SerializationError` when authentication fails."""
        if self.keys is None:
            raise ConfigurationError(
                f"an item was encrypted with key {key_id!r} and this store has no "
                "encryption_keys (set them, or CHATKEEP_ENCRYPTION_KEYS)"
            )
        cipher = self.keys.reader(key_id)
        try:
            plain: bytes = cipher.decrypt(body[:_NONCE], body[_NONCE:], associated)
        except (InvalidTag, ValueError):  # ValueError: a body too short for a nonce
            raise SerializationError(
                f"stored item failed authentication under key {key_id!r} "
                "(tampered, moved from elsewhere, or another key with that id)"
            ) from None
        return plain

    @staticmethod
    def unpack(method: object, body: bytes) -> bytes:
        """The inverse of :meth:`pack`."""
        if method is None:
            return body
        if method not in COMPRESSIONS:
            raise SerializationError(f"stored item has unknown compression {method!r}")
        return _decompress(str(method), body)

    # -- values (memory, cache) -----------------------------------------------------------

    def seal_value(self, data: bytes, family: str, *where: str) -> bytes:
        """``data`` (a value's JSON) as stored: as is, or in the sealed envelope."""
        if not self.applies(len(data)):
            return data
        method, body = self.pack(data)
        if self.keys is None:
            if method is None:
                return data
            return _VALUE_MARK + _METHODS[method] + b"\x00" + body
        key_id, cipher = self.keys.writer()
        kid = key_id.encode()
        header = _VALUE_MARK + _METHODS[method] + bytes([len(kid)]) + kid
        return header + self.lock(body, cipher, _context(family, where) + header)

    def open_value(self, data: bytes, family: str, *where: str) -> bytes:
        """A stored value's JSON (the inverse of :meth:`seal_value`)."""
        if data[:1] != b"\x00":
            return data
        if data[:4] != _VALUE_MARK or len(data) < 6 or data[4:5] not in _NAMES:
            raise SerializationError("stored value has an unknown sealed form")
        method = _NAMES[data[4:5]]
        size = data[5]
        header = data[: 6 + size]
        body = data[6 + size :]
        if size:
            key_id = header[6:].decode("ascii", "replace")
            body = self.unlock(key_id, body, _context(family, where) + header)
        return self.unpack(method, body)

    @staticmethod
    def value_key_id(data: bytes) -> str | None:
        """The key id a stored value is encrypted with (None: plain or only compressed)."""
        if data[:4] != _VALUE_MARK or len(data) < 6 or not data[5]:
            return None
        return data[6 : 6 + data[5]].decode("ascii", "replace")

    def __repr__(self) -> str:
        return (
            f"Sealing(compression={self.compression!r}, threshold={self.threshold}, "
            f"keys={self.keys!r})"
        )


def _context(family: str, where: tuple[str, ...]) -> bytes:
    return "\x00".join(("chatkeep", family, *where, "")).encode("utf-8", "surrogatepass")


@functools.lru_cache(maxsize=4096)
def record_context(session_id: str) -> bytes:
    """The associated data prefix of a conversation record of ``session_id``."""
    return _context("conversation", (session_id,))
