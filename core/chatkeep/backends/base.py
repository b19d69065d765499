"""What every backend shares (internal)."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Protocol, TypeVar

from ..ops import (
    Append,
    Clear,
    Info,
    Insert,
    Pop,
    PopResult,
    Read,
    ReadResult,
    Replace,
    SessionInfo,
    Sessions,
    Ttl,
    WriteResult,
)

__all__ = ["AsyncBackend", "Backend", "Unreachable", "now_ms"]

T = TypeVar("T")

# Listing keeps index entries up to this long past their recorded expiry: an entry's
# score may trail the real expiry by at most this much (see RedisIndex).
INDEX_SLACK_MS = 60_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class Unreachable(Exception):
    """The backend could not be reached (connection refused or lost, timeout,
    failover in progress). The store turns this into the fallback or into
    :class:`chatkeep.BackendUnavailableError`; it never reaches users."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.cause = cause


class Backend(Protocol):
    name: str

    def append(self, op: Append) -> WriteResult: ...
    def replace(self, op: Replace) -> WriteResult: ...
    def insert(self, op: Insert) -> WriteResult: ...
    def pop(self, op: Pop) -> PopResult: ...
    def clear(self, op: Clear) -> bool: ...
    def read(self, op: Read) -> ReadResult: ...
    def ttl(self, op: Ttl) -> float | None: ...
    def info(self, op: Info) -> SessionInfo | None: ...
    def sessions(self, op: Sessions) -> list[SessionInfo]: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


class AsyncBackend(Protocol):
    name: str

    def append(self, op: Append) -> Awaitable[WriteResult]: ...
    def replace(self, op: Replace) -> Awaitable[WriteResult]: ...
    def insert(self, op: Insert) -> Awaitable[WriteResult]: ...
    def pop(self, op: Pop) -> Awaitable[PopResult]: ...
    def clear(self, op: Clear) -> Awaitable[bool]: ...
    def read(self, op: Read) -> Awaitable[ReadResult]: ...
    def ttl(self, op: Ttl) -> Awaitable[float | None]: ...
    def info(self, op: Info) -> Awaitable[SessionInfo | None]: ...
    def sessions(self, op: Sessions) -> Awaitable[list[SessionInfo]]: ...
    def ping(self) -> Awaitable[None]: ...
    def close(self) -> Awaitable[None]: ...
