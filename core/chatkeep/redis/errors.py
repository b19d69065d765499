"""The one boundary where redis-py and socket exceptions become chatkeep's.

:func:`translate` decides, for every driver exception and every error reply:

* reachability (refused, reset, timed out, failover in progress, ``LOADING``,
  ``BUSY``...) -> :class:`Unreachable`, which the circuit turns into the fallback (or
  into :class:`chatkeep.BackendUnavailableError` when the fallback is off);
* a chatkeep script's own refusals (``CHATKEEP_OWNER``, ``CHATKEEP_CONFLICT``) -> their
  chatkeep errors;
* everything else Redis refused (WRONGTYPE, NOAUTH, OOM...) ->
  :class:`chatkeep.BackendError`, whose ``code`` is the server's error code, so the
  replay can tell a temporary refusal (``OOM``, ``MISCONF``...) from a write that is
  itself invalid.

Messages keep only the server's words: redis-py prefixes pipeline errors with the
command and its arguments, which may hold message content.
"""

from __future__ import annotations

from typing import Any

from redis import exceptions as rex

from ..errors import BackendError, ChatkeepError, ConflictError, SessionOwnershipError

__all__ = ["TEMPORARY_CODES", "Unreachable", "check", "is_temporary", "translate"]


class Unreachable(Exception):
    """Redis could not be reached (connection refused or lost, timeout, failover in
    progress). The circuit turns this into the fallback, or into
    :class:`chatkeep.BackendUnavailableError`; it never reaches users."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


OWNER_ERROR = "CHATKEEP_OWNER"
CONFLICT_ERROR = "CHATKEEP_CONFLICT"

# Refusals that say "not now" rather than "never": at replay they stop the replay
# and keep every journaled write for the next attempt.
TEMPORARY_CODES = frozenset({"OOM", "MISCONF", "NOPERM", "LOADING", "BUSY", "READONLY", "NOSCRIPT"})

# AuthenticationError and friends subclass ConnectionError but are configuration
# problems: checked first, and raised.
_CONFIG_ERRORS: tuple[type[BaseException], ...] = tuple(
    getattr(rex, name)
    for name in (
        "AuthenticationError",
        "AuthorizationError",
        "ExternalAuthProviderError",  # redis-py 7+
        "AuthenticationWrongNumberOfArgsError",
        "NoPermissionError",
    )
    if hasattr(rex, name)
)
_REACHABILITY_ERRORS: tuple[type[BaseException], ...] = (
    rex.ConnectionError,
    rex.TimeoutError,
    rex.ReadOnlyError,  # a replica that was just demoted, during failover
    rex.TryAgainError,
    rex.ClusterDownError,
    rex.ClusterError,  # MOVED/ASK/TRYAGAIN kept coming: the topology is in flux
    rex.SlotNotCoveredError,
    rex.BusyLoadingError,
    ConnectionError,
    TimeoutError,
    OSError,
)
# NOREPLICAS: min-replicas-to-write refused the write (replicas lagging): transient.
_TRANSIENT_PREFIXES = ("MASTERDOWN", "BUSY ", "LOADING", "CLUSTERDOWN", "TRYAGAIN", "NOREPLICAS")
# RedisClusterException is not a RedisError; these ones mean "no node answers (yet)".
_CLUSTER_UNREACHABLE = ("cannot be connected", "not covered", "could not agree")


def _words(exc: BaseException) -> str:
    return str(exc).rpartition(" of pipeline caused error: ")[2]


# redis-py strips the code from the message of these (and maps it to a class); newer
# versions keep it as ``status_code``.
_CLASS_CODES: tuple[tuple[str, str], ...] = (
    ("OutOfMemoryError", "OOM"),
    ("NoScriptError", "NOSCRIPT"),
    ("ReadOnlyError", "READONLY"),
    ("NoPermissionError", "NOPERM"),
    ("BusyLoadingError", "LOADING"),
    ("ExecAbortError", "EXECABORT"),
)


def _code(exc: BaseException, text: str) -> str | None:
    given = getattr(exc, "status_code", None)
    if isinstance(given, str) and given:
        return given
    for name, code in _CLASS_CODES:
        cls = getattr(rex, name, None)
        if cls is not None and isinstance(exc, cls):
            return code
    first = text.split(" ", 1)[0].split(":", 1)[0]
    return first if first.isupper() and first.isalpha() else None


def translate(exc: BaseException, session_id: str | None = None) -> BaseException:
    """The exception chatkeep raises for a driver exception or error reply (the
    caller keeps the cause)."""
    text = _words(exc)
    if isinstance(exc, rex.ResponseError):
        if OWNER_ERROR in text:
            return SessionOwnershipError(session_id or "?")
        if CONFLICT_ERROR in text:
            return ConflictError(session_id or "?")
    if isinstance(exc, _CONFIG_ERRORS):
        error = BackendError(
            f"Redis refused the credentials or command: {type(exc).__name__}: {text}"
        )
        error.code = "NOPERM" if isinstance(exc, rex.NoPermissionError) else "NOAUTH"
        return error
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return BackendError(f"TLS certificate verification failed: {text}")
    if isinstance(exc, rex.RedisClusterException) and "Cluster mode is not enabled" in text:
        return BackendError(
            f"not usable as a Redis Cluster: {text} (a redis+cluster:// URL needs cluster "
            "nodes, and an ACL user needs +cluster|slots and +command there)"
        )
    if isinstance(exc, _REACHABILITY_ERRORS) or text.startswith(_TRANSIENT_PREFIXES):
        return Unreachable(exc)
    if isinstance(exc, rex.RedisClusterException) and any(
        words in text for words in _CLUSTER_UNREACHABLE
    ):
        return Unreachable(exc)
    error = BackendError(f"Redis error: {type(exc).__name__}: {text}")
    error.code = _code(exc, text)
    return error


def check(replies: list[Any], session_id: str | None = None, wanted: int | None = None) -> None:
    """Raise the chatkeep error of the first error reply among the first ``wanted``."""
    for reply in replies if wanted is None else replies[:wanted]:
        if isinstance(reply, Exception):
            raise translate(reply, session_id) from reply


def is_reply_error(value: Any) -> bool:
    return isinstance(value, rex.ResponseError)


def is_temporary(error: BaseException) -> bool:
    """Whether a refusal at replay means "not now" (keep the write) rather than "this
    write is invalid" (drop and report it). A surprise (not chatkeep's) keeps it."""
    if isinstance(error, Unreachable):
        return True
    if isinstance(error, ConflictError):
        return False
    if isinstance(error, BackendError):
        return error.code in TEMPORARY_CODES
    return not isinstance(error, ChatkeepError)
