"""A loopback TCP proxy for the benchmark: added latency, or an outage.

``Proxy(target_port, delay=0.00025)`` forwards a local port to a server and holds
every chunk ``delay`` seconds in each direction (so a round trip gains twice that),
keeping order and pipelining: chunks sent back to back arrive back to back, each
``delay`` late. ``cut()`` drops every connection and refuses new ones (or, with
``blackhole=True``, accepts and never answers); ``drop_replies()`` forwards requests
and swallows the replies; ``restore()`` lets traffic through. The tests' fault
injection uses this proxy too (tests/support/servers.py).

``delayed(target_port, delay)`` runs the proxy in a child process
(``python -m bench.proxy PORT DELAY``), so forwarding never competes with the
benchmark for the GIL. Threads, not asyncio: an event loop's timers wait on epoll,
whose timeout is whole milliseconds, and 0.25 ms would become 1 ms;
a thread sleeps, then spins the last 0.15 ms.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from bench.servers import free_port

ROOT = Path(__file__).resolve().parents[1]


class Proxy:
    def __init__(
        self, target_port: int, delay: float = 0.0, target_host: str = "127.0.0.1"
    ) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.delay = delay
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
                        self._conns.append(client)  # accepted, never answered
                else:
                    client.close()
                continue
            try:
                upstream = socket.create_connection((self.target_host, self.target_port), timeout=1)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            for sock in (client, upstream):
                # Without it the kernel may hold a small write back for the previous
                # one's ACK (Nagle): the delay must be the only one added.
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns += [client, upstream]
            for src, dst, replies in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(src, dst, replies), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, replies: bool) -> None:
        # Each chunk leaves ``delay`` after it was read. The reader itself waits: a
        # hand-off to a sender thread cost about 0.1 ms per chunk on a busy machine.
        # A chunk that arrived while the previous one waited leaves right after it:
        # Redis clients send a request (or a pipeline) and wait for its reply.
        delay = self.delay
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if replies and self._drop_replies:
                    continue  # the server acted, the client never hears of it
                if delay > 0:
                    _wait_until(time.monotonic() + delay)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            _close(src, dst)

    def cut(self, *, blackhole: bool = False) -> None:
        self._open = False
        self._blackhole = blackhole
        with self._lock:
            conns, self._conns = self._conns, []
        _close(*conns)

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


# A sleeping thread wakes up to ~0.1 ms late on a busy machine: sleep until this
# long before the deadline, then spin (a few dozen microseconds of CPU per chunk).
_SPIN = 0.00015


def _wait_until(due: float) -> None:
    if (wait := due - time.monotonic() - _SPIN) > 0:
        time.sleep(wait)
    while time.monotonic() < due:
        pass


def _close(*socks: socket.socket) -> None:
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@contextlib.contextmanager
def delayed(target_url: str, delay: float) -> Iterator[str]:
    """The URL of a proxy to the Redis of ``target_url`` adding ``delay`` seconds each
    way, run in a child process for the duration of the block."""
    target = urlsplit(target_url)
    host, port = target.hostname or "127.0.0.1", target.port or 6379
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.proxy", host, str(port), repr(delay)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline())
        userinfo = target.netloc.rpartition("@")[0]
        netloc = f"{userinfo}@127.0.0.1:{port}" if userinfo else f"127.0.0.1:{port}"
        yield target._replace(netloc=netloc).geturl()
    finally:
        assert child.stdin is not None
        child.stdin.close()  # the child exits when its stdin closes
        try:
            child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def added_round_trip_us(direct_url: str, proxied_url: str, pings: int = 200) -> float:
    """What the proxy adds to a PING round trip, measured (median, microseconds)."""
    import statistics

    import redis

    medians = []
    for url in (direct_url, proxied_url):
        client = redis.Redis.from_url(url)
        client.ping()
        samples = []
        for _ in range(pings):
            start = time.perf_counter_ns()
            client.ping()
            samples.append(time.perf_counter_ns() - start)
        client.close()
        medians.append(statistics.median(samples) / 1000)
    return round(medians[1] - medians[0], 1)


def _main() -> None:
    proxy = Proxy(int(sys.argv[2]), float(sys.argv[3]), target_host=sys.argv[1])
    print(proxy.port, flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin (or dies)
    proxy.close()


if __name__ == "__main__":
    _main()
