"""The chatkeep exception tree.

Every error chatkeep raises derives from :class:`ChatkeepError`, and also from the
builtin a caller would naturally catch::

    ChatkeepError
    ├── ConfigurationError      (ValueError)       bad option, URL, scheme or client
    ├── InvalidArgumentError    (ValueError)       bad argument to a store method
    │   ├── InvalidSessionId                       empty, too long or non-str id/owner
    │   └── InvalidMessageError                    not a Message, or does not validate
    ├── SerializationError      (ValueError)       cannot encode, or cannot decode a record
    │   ├── MessageTooLargeError                   above ``max_message_bytes``
    │   └── ValueTooLargeError                     memory/cache value above the limit
    ├── SessionOwnershipError   (PermissionError)  session owned by someone else
    ├── LockTimeoutError        (TimeoutError)     a session lock was not acquired in time
    └── BackendError                               refused: WRONGTYPE, NOAUTH, OOM, ...
        ├── ConflictError                          a journaled change met a later write
        └── BackendUnavailableError (ConnectionError)  unreachable, and not served locally
            ├── JournalFullError                   the fallback journal cannot keep a write
            └── IncompleteMirrorError              the mirror holds only part of a session

Warnings: :class:`FallbackWarning` (a ``UserWarning``), once per process, the first
time calls are served from the fallback (or a store never reached Redis).

Driver exceptions are translated at one boundary (:func:`chatkeep.redis.translate`)
and kept as ``__cause__``. Messages never include message content or credentials.
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "BackendUnavailableError",
    "ChatkeepError",
    "ConfigurationError",
    "ConflictError",
    "FallbackWarning",
    "IncompleteMirrorError",
    "InvalidArgumentError",
    "InvalidMessageError",
    "InvalidSessionId",
    "JournalFullError",
    "LockTimeoutError",
    "MessageTooLargeError",
    "SerializationError",
    "SessionOwnershipError",
    "ValueTooLargeError",
]


class ChatkeepError(Exception):
    """Root of every exception raised by chatkeep."""


class ConfigurationError(ChatkeepError, ValueError):
    """An option, URL or client given to chatkeep is not usable."""


class InvalidArgumentError(ChatkeepError, ValueError):
    """An argument to a store method is not valid."""


class InvalidSessionId(InvalidArgumentError):
    """A session id (or owner) is not a string of 1..512 characters."""


class InvalidMessageError(InvalidArgumentError):
    """Something passed as a message is not a :class:`chatkeep.Message` or does not validate."""


class SerializationError(ChatkeepError, ValueError):
    """A value cannot be encoded to a record, or a stored record cannot be decoded."""


class MessageTooLargeError(SerializationError):
    """An encoded message is larger than ``max_message_bytes``; nothing was written."""

    def __init__(self, size: int, limit: int, index: int) -> None:
        super().__init__(
            f"message {index} encodes to {size} bytes, above max_message_bytes={limit}; "
            "nothing was written"
        )
        self.size = size
        self.limit = limit
        self.index = index


class ValueTooLargeError(SerializationError):
    """An encoded memory or cache value is larger than the limit; nothing was written."""

    def __init__(self, size: int, limit: int, what: str) -> None:
        super().__init__(
            f"{what} encodes to {size} bytes, above the limit of {limit} bytes "
            "(max_message_bytes); nothing was written"
        )
        self.size = size
        self.limit = limit


class LockTimeoutError(ChatkeepError, TimeoutError):
    """A session lock could not be acquired within ``blocking_timeout``."""

    def __init__(self, session_id: str, waited: float) -> None:
        super().__init__(f"session {session_id!r} stayed locked for {waited:g}s")
        self.session_id = session_id


class SessionOwnershipError(ChatkeepError, PermissionError):
    """The session belongs to a different owner than the one given."""

    def __init__(self, session_id: str) -> None:
        # The owner names are left out on purpose: they identify users.
        super().__init__(f"session {session_id!r} belongs to a different owner")
        self.session_id = session_id


class BackendError(ChatkeepError):
    """The backend answered with an error that is not about reachability."""

    code: str | None = None
    """The server's error code (``OOM``, ``WRONGTYPE``, ``NOPERM``...), when known."""


class ConflictError(BackendError):
    """A change made during an outage (``replace``, ``clear``, ``pop``, ``insert``) met
    a session that another writer changed since: it was not applied. Reported to the
    ``on_conflict`` hook at replay; never raised by a call."""

    def __init__(self, session_id: str) -> None:
        super().__init__(
            f"session {session_id!r} changed since this process last saw it; "
            "the change made during the outage was not applied"
        )
        self.session_id = session_id


class BackendUnavailableError(BackendError, ConnectionError):
    """The backend cannot be reached and the call could not be served locally: the
    fallback is off (``fallback="raise"``), or one of the subclasses below."""


class JournalFullError(BackendUnavailableError):
    """Redis is unreachable and the fallback journal is full (by count or by bytes):
    the write was not made, so it cannot be lost later."""


class IncompleteMirrorError(BackendUnavailableError):
    """Redis is unreachable and the local mirror holds only the newest part of the
    session, so an operation by position cannot be carried out without guessing."""


class FallbackWarning(UserWarning):
    """Calls are being served from the in-memory fallback (Redis is unreachable), or a
    store has never reached Redis. Emitted once per process through ``warnings``."""
