"""Throwaway redis-server processes and a TCP proxy for fault injection.

Tests never touch a server they did not start: each server here listens on a free
loopback port, keeps nothing on disk, and is stopped when the test session ends.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any, Protocol, TypeVar

import pytest
from bench.proxy import Proxy
from bench.servers import RedisServer as Launcher
from bench.servers import free_port, wait_for_port

__all__ = [
    "REDIS_SERVER",
    "Deployment",
    "RedisServer",
    "TcpProxy",
    "free_port",
    "require_binary",
    "started",
    "wait_for_port",
]

REDIS_SERVER = shutil.which("redis-server")


class Deployment(Protocol):
    def start(self) -> Any: ...
    def cleanup(self) -> None: ...


D = TypeVar("D", bound=Deployment)


def started(deployment: D) -> Iterator[D]:
    """For a fixture: ``deployment`` started, and cleaned up (stopped, its files
    removed) when the test is done (``yield from started(RedisServer())``)."""
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.cleanup()


def require_binary(path: str | None, name: str) -> str:
    """The binary's path; in CI a missing binary fails the test, elsewhere it skips."""
    if path:
        return path
    message = f"{name} is not installed"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{message} (CI=true: a missing server binary is a failure)")
    pytest.skip(message)


class RedisServer(Launcher):
    """One redis-server on a free port (``bench.servers``' launcher); in CI a missing
    binary fails the test. ``stop()``/``start()`` keep the port."""

    def __init__(self, *extra_args: str, port: int | None = None) -> None:
        binary = require_binary(REDIS_SERVER, "redis-server")
        super().__init__(*extra_args, port=port, binary=binary)

    def stop(self) -> None:
        """SIGKILL the server (no shutdown save): what an OOM killer or a crash does."""
        Launcher.kill(self)

    def restart(self) -> RedisServer:
        """SIGKILL and start again on the same port (with AOF: with the same data)."""
        self.stop()
        self.start()
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


TcpProxy = Proxy
"""Forwards a loopback port to a server; ``cut()`` drops every connection and refuses
new ones (or black-holes them), ``drop_replies()`` swallows the server's replies,
``restore()`` lets traffic through again (the benchmark's proxy, without delay)."""
