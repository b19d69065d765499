"""The key layout: every key chatkeep writes, for every feature, named here.

Keys that one script touches together share a hash tag ``{...}``, so the script runs
on one Redis Cluster slot; ``<prefix>`` is written as is (no braces)::

    conversations
    <prefix>:{<sid>}:m               LIST    encoded messages, oldest first
    <prefix>:{<sid>}:h               HASH    created/updated, owner, TTL, version, idempotency ring
    <prefix>:{<sid>}:lock            STRING  the session lock's token (store.lock)
    <prefix>:{<sid>}:ch              channel appended records (store.subscribe)
    <prefix>:idx                     ZSET    sid -> expires_at (ms), the session index
    <prefix>:own:<owner>             ZSET    sid -> expires_at (ms), sessions of one owner
    long-term memory (MemoryStore)
    <prefix>:mem:{<ns>}:i            ZSET    key -> expires_at (ms; inf = never)
    <prefix>:mem:{<ns>}:v:<key>      HASH    d value, b bytes tagged, t TTL, c created, u updated
    <prefix>:mem:namespaces          ZSET    <ns> -> last write (ms): what the CLI lists
    result cache (ResultCache)
    <prefix>:cache:<ns>:{<digest>}       STRING  flag byte + JSON value
    <prefix>:cache:<ns>:{<digest>}:lock  STRING  token of the one computing it
    <prefix>:cache:<ns>:idx              ZSET    digest -> expires_at (ms), for clear();
                                                 expires with its longest-lived entry
    <prefix>:cache:namespaces            ZSET    <ns> -> last write (ms): what the CLI lists
    LangGraph checkpoints (chatkeep_langgraph.RedisSaver)
    <prefix>:lg:{<thread>}:i         ZSET    "<ns>:<checkpoint id>"
    <prefix>:lg:{<thread>}:c         HASH    checkpoint records
    <prefix>:lg:{<thread>}:b         HASH    channel values
    <prefix>:lg:{<thread>}:w         ZSET    pending writes
    <prefix>:lg:run:{<run>}          ZSET    "<thread>\n<ns>:<checkpoint id>" of one run
                                             (delete_for_runs), expires with the thread TTL
    <prefix>:lg:threads              ZSET    thread -> last write (ms), list(None, ...)
    <prefix>:lg:own:{<owner>}        ZSET    thread -> last write (ms), threads of one owner

Ids are percent-encoded with nothing kept but ``A-Z a-z 0-9 _ . - ~``. That is
injective (``%`` itself is encoded) and leaves no ``{}``, ``*``, ``?``, ``[``, ``:``
or whitespace that could reach another session's keys or a pattern.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import quote, unquote

from .errors import ConfigurationError, InvalidArgumentError, InvalidSessionId

__all__ = [
    "MAX_ID_LENGTH",
    "KeySchema",
    "Keys",
    "escape_id",
    "memory_owner",
    "unescape_id",
    "utf8_text",
    "validate_id",
]

MAX_ID_LENGTH = 512
_SAFE_ID = re.compile(r"[A-Za-z0-9_.~-]+")
_PREFIX = re.compile(r"[A-Za-z0-9_.:/@#$&+=!-]{1,256}")


def validate_id(value: object, what: str = "session id") -> str:
    """Return ``value`` if it is a usable id, else raise :class:`InvalidSessionId`."""
    if not isinstance(value, str):
        raise InvalidSessionId(f"{what} must be a str, not {type(value).__name__}")
    if not 1 <= len(value) <= MAX_ID_LENGTH:
        raise InvalidSessionId(f"{what} must have 1..{MAX_ID_LENGTH} characters, got {len(value)}")
    return utf8_text(value, what, InvalidSessionId)


def utf8_text(
    text: str, what: str, error: type[InvalidArgumentError] = InvalidArgumentError
) -> str:
    """``text`` if Redis can take it (UTF-8: no lone surrogates), else ``error``."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise error(f"{what} is not valid Unicode (lone surrogate)") from None
    return text


@lru_cache(maxsize=65536)
def escape_id(value: str) -> str:
    """Percent-encode an id for use inside a key (injective, pattern- and tag-safe)."""
    if _SAFE_ID.fullmatch(value):
        return value
    return quote(value, safe="", errors="strict")


def unescape_id(value: str) -> str:
    """Inverse of :func:`escape_id`."""
    return unquote(value, errors="strict")


def memory_owner(namespace: tuple[str, ...]) -> str | None:
    """Whose a long-term memory namespace is: ``("user", <id>, ...)`` belongs to
    ``<id>`` (user context), any other to no one. What ``chatkeep purge --owner``
    deletes, whichever store wrote the namespace (MemoryStore, LangGraph's store)."""
    return namespace[1] if len(namespace) >= 2 and namespace[0] == "user" else None


class KeySchema:
    """Builds the Redis keys of one prefix (every feature's)."""

    __slots__ = ("index", "prefix")

    def __init__(self, prefix: str) -> None:
        if not isinstance(prefix, str) or not _PREFIX.fullmatch(prefix):
            raise ConfigurationError(
                "prefix must be 1..256 characters from letters, digits and _ . : / @ # $ & + = ! - "
                "(no braces, no whitespace, no glob characters)"
            )
        self.prefix = prefix
        self.index = f"{prefix}:idx"

    def session(self, session_id: str) -> tuple[str, str]:
        """(messages list key, metadata hash key) of one session."""
        tag = f"{self.prefix}:{{{escape_id(session_id)}}}"
        return f"{tag}:m", f"{tag}:h"

    def owner_index(self, owner: str) -> str:
        return f"{self.prefix}:own:{escape_id(owner)}"

    def lock(self, session_id: str) -> str:
        return f"{self.prefix}:{{{escape_id(session_id)}}}:lock"

    def channel(self, session_id: str) -> str:
        return f"{self.prefix}:{{{escape_id(session_id)}}}:ch"

    # long-term memory: ``ns`` is the escaped namespace (parts joined by ':')

    def memory_index(self, ns: str) -> str:
        return f"{self.prefix}:mem:{{{ns}}}:i"

    def memory_value(self, ns: str, key: str) -> str:
        return f"{self.prefix}:mem:{{{ns}}}:v:{escape_id(key)}"

    def memory_namespaces(self) -> str:
        """Every namespace written (escaped) -> its last write (ms), for the CLI."""
        return f"{self.prefix}:mem:namespaces"

    # result cache

    def cache_entry(self, namespace: str, digest: str) -> tuple[str, str]:
        """(entry key, its lock key) of one cached result."""
        entry = f"{self.prefix}:cache:{escape_id(namespace)}:{{{digest}}}"
        return entry, f"{entry}:lock"

    def cache_index(self, namespace: str) -> str:
        return f"{self.prefix}:cache:{escape_id(namespace)}:idx"

    def cache_namespaces(self) -> str:
        """Every cache namespace written (escaped) -> its last write (ms), for the CLI."""
        return f"{self.prefix}:cache:namespaces"

    # LangGraph checkpoints

    def checkpoints(self, thread: str) -> tuple[str, str, str, str]:
        """(index, records, blobs, writes) keys of one checkpoint thread."""
        tag = f"{self.prefix}:lg:{{{escape_id(thread)}}}"
        return f"{tag}:i", f"{tag}:c", f"{tag}:b", f"{tag}:w"

    def checkpoint_threads(self, owner: str = "") -> str:
        """Index of every checkpoint thread, or of one owner's (``list(None, ...)``)."""
        if owner:
            return f"{self.prefix}:lg:own:{{{escape_id(owner)}}}"
        return f"{self.prefix}:lg:threads"

    def checkpoint_run(self, run: str) -> str:
        """The checkpoints of one run id, by thread (``delete_for_runs``)."""
        return f"{self.prefix}:lg:run:{{{escape_id(run)}}}"


Keys = KeySchema
