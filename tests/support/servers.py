"""Throwaway redis-server processes and a TCP proxy for fault injection.

Tests never touch a server they did not start: each server here listens on a free
loopback port, keeps nothing on disk, and is stopped when the test session ends.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, TypeVar

import pytest
import redis

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class RedisServer:
    """One redis-server on a free port. ``stop()``/``start()`` keep the port."""

    def __init__(self, *extra_args: str, port: int | None = None) -> None:
        self.binary = require_binary(REDIS_SERVER, "redis-server")
        self.port = port or free_port()
        self.extra_args = list(extra_args)
        self.dir = Path(tempfile.mkdtemp(prefix="chatkeep-redis-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.dir),
            "--daemonize",
            "no",
            "--logfile",
            str(self.dir / "redis.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(self.port)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """SIGKILL the server (no shutdown save): what an OOM killer or a crash does."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    kill = stop

    def restart(self) -> RedisServer:
        """SIGKILL and start again on the same port (with AOF: with the same data)."""
        self.stop()
        return self.start()

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, **options: Any) -> redis.Redis:
        """A plain redis-py client of this server (the caller closes it)."""
        options.setdefault("socket_timeout", 10)
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Until the server answers PING (after a restart with AOF it says LOADING)."""
        deadline = time.monotonic() + timeout
        client = self.client(socket_timeout=1)
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.01)
        finally:
            client.close()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


class TcpProxy:
    """Forwards a loopback port to a server; ``cut()`` drops every connection and
    refuses new ones (or black-holes them), ``restore()`` lets traffic through again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.1)
        self._open = True
        self._blackhole = False
        self._drop_replies = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._running = True
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept_loop(self) -> None:
        while self._running:
            try:
                client, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            if not self._open:
                if self._blackhole:
                    with self._lock:
                        self._conns.append(client)  # accept and never answer
                else:
                    client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=1)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for src, dst, replies in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, replies), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, replies: bool) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if replies and self._drop_replies:
                    continue  # the server acted, the client never hears of it
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def cut(self, *, blackhole: bool = False) -> None:
        self._open = False
        self._blackhole = blackhole
        with self._lock:
            conns, self._conns = self._conns, []
        for sock in conns:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def drop_replies(self) -> None:
        """Forward requests but swallow the server's replies (an ambiguous timeout)."""
        self._drop_replies = True

    def restore(self) -> None:
        self._open = True
        self._blackhole = False
        self._drop_replies = False

    def close(self) -> None:
        self._running = False
        self.cut()
        self._listener.close()
        self._thread.join(timeout=2)
