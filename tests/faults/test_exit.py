"""Issue 14, item 2: process exit must not lose the journal.

* ``journal_path``: a child process appends while Redis is down and exits (normally,
  or SIGKILLed right after a call returned); a second process with Redis up replays
  the file (by calling ``flush()``, or just by using a store), and Redis holds each
  message once.
* the default in-memory journal: a normal exit without ``close()`` tries to flush for
  a bounded time (Redis back before exit: the messages land) and otherwise logs an
  ERROR and emits a FallbackWarning with the count.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.faults import python, spawn, stored
from tests.support.servers import RedisServer, TcpProxy

pytestmark = pytest.mark.redis_server

CHILD = """
import gc, json, logging, sys, time
from chatkeep import ConversationStore, Message

url, prefix, journal, mode, count = sys.argv[1:6]
count = int(count)
if "log" in mode:
    logging.basicConfig(level=logging.WARNING, format="LOG %(levelname)s %(message)s")
options = {"key_prefix": prefix, "probe_interval": 0.05, "probe_max": 0.2}
if journal != "-":
    options["journal_path"] = journal
store = ConversationStore.from_url(url, **options)

def say(**fields):
    print(json.dumps(fields), flush=True)

if mode == "replay-flush":
    left = store.flush()
    say(left=left, status=store.status().model_dump(mode="json"))
    sys.exit(0)
if mode == "replay-use":
    store.append("other", Message(role="user", content="a later turn"))
    say(left=store.status().pending_replay, status=store.status().model_dump(mode="json"))
    sys.exit(0)

if "forever" in mode:
    i = 0
    while True:
        store.append("s", Message(role="user", content=f"m{i}"))
        say(acked=i)
        i += 1
for i in range(count):
    store.append("s", Message(role="user", content=f"m{i}"))
status = store.status()
say(pending=status.pending_replay, degraded=status.degraded, path=status.journal_path)
if "close" in mode:
    store.close()  # while Redis is down; the app keeps running, without the store
    del store
    gc.collect()
    say(closed=True)
if "wait" in mode:
    sys.stdin.readline()  # the parent lets Redis answer again, then says go
if "kill" in mode:
    time.sleep(60)  # the parent SIGKILLs us here, right after the calls returned
"""


def lines(stdout: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


@pytest.fixture
def down(fresh_redis_server: RedisServer) -> Iterator[RedisServer]:
    """A Redis that is down until the test starts it again."""
    fresh_redis_server.kill()
    yield fresh_redis_server


@pytest.fixture
def journal(tmp_path: Path) -> str:
    """Where the child's durable journal lives."""
    return str(tmp_path / "journal.db")


def replay_in_second_process(server: RedisServer, prefix: str, journal: str, how: str) -> dict:
    server.start()
    server.wait_ready()
    child = python(CHILD, server.url, prefix, journal, f"replay-{how}", "0")
    assert child.returncode == 0, child.stderr
    return lines(child.stdout)[-1]


@pytest.mark.parametrize("how", ["flush", "use"])
def test_a_durable_journal_survives_a_normal_exit(
    down: RedisServer, prefix: str, journal: str, how: str
) -> None:
    child = python(CHILD, down.url, prefix, journal, "plain", "100")
    assert child.returncode == 0, child.stderr
    assert lines(child.stdout) == [{"pending": 100, "degraded": True, "path": journal}]
    assert "exiting with" not in child.stderr  # nothing is lost: it is in the file
    result = replay_in_second_process(down, prefix, journal, how)
    assert result["left"] == 0, result
    assert stored(down.port, prefix, "s") == [f"m{i}" for i in range(100)]
    if how == "use":
        assert stored(down.port, prefix, "other") == ["a later turn"]


@pytest.mark.parametrize("how", ["flush", "use"])
def test_a_durable_journal_survives_sigkill_right_after_a_call_returned(
    down: RedisServer, prefix: str, journal: str, how: str
) -> None:
    child = spawn(CHILD, down.url, prefix, journal, "kill", "100")
    assert child.stdout is not None
    first = json.loads(child.stdout.readline())
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=10)  # reaped, pipes closed
    assert first == {"pending": 100, "degraded": True, "path": journal}
    result = replay_in_second_process(down, prefix, journal, how)
    assert result["left"] == 0, result
    assert stored(down.port, prefix, "s") == [f"m{i}" for i in range(100)]


def test_every_acknowledged_append_survives_a_sigkill_mid_stream(
    down: RedisServer, prefix: str, journal: str
) -> None:
    """A child appends as fast as it can and reports each acknowledged append; it is
    SIGKILLed at an arbitrary moment: every acknowledged append reaches Redis once
    (the one in flight may or may not), in order."""
    child = spawn(CHILD, down.url, prefix, journal, "forever", "0")
    assert child.stdout is not None
    acked = -1
    while acked < 150:
        acked = int(json.loads(child.stdout.readline())["acked"])  # type: ignore[call-overload]
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=10)
    # the acks the child printed before it died: still in the pipe, or already read
    # into this reader's buffer by readline() (communicate() would read the pipes
    # past that buffer and lose them)
    unread = child.stdout.read()
    child.communicate(timeout=10)  # closes the pipes
    acked = max([acked, *(int(ack["acked"]) for ack in lines(unread))])  # type: ignore[call-overload]
    result = replay_in_second_process(down, prefix, journal, "flush")
    assert result["left"] == 0, result
    held = stored(down.port, prefix, "s")
    assert held[: acked + 1] == [f"m{i}" for i in range(acked + 1)]
    assert held[acked + 1 :] in ([], [f"m{acked + 1}"]), held[acked + 1 :]


@pytest.mark.parametrize("close", [False, True])
def test_in_memory_journal_is_flushed_at_exit_when_redis_is_back(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str, close: bool
) -> None:
    """Normal exit without close() (or after a close() made while Redis was down):
    Redis answers again before the process exits, and the journal lands."""
    proxy.cut()
    mode = "wait-close" if close else "wait"
    child = spawn(CHILD, proxy.url, prefix, "-", mode, "20")
    assert child.stdout is not None and child.stdin is not None
    assert json.loads(child.stdout.readline()) == {"pending": 20, "degraded": True, "path": None}
    if close:
        assert json.loads(child.stdout.readline()) == {"closed": True}
    proxy.restore()
    started = time.monotonic()
    child.stdin.write("go\n")
    child.stdin.flush()
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr
    assert time.monotonic() - started < 15  # bounded (EXIT_FLUSH_SECONDS is 5)
    assert stored(fresh_redis_server.port, prefix, "s") == [f"m{i}" for i in range(20)]
    assert "exiting with" not in stderr, stderr


@pytest.mark.parametrize("blackhole", [False, True])
@pytest.mark.parametrize("mode", ["plain-log", "plain", "close-log"])
def test_in_memory_journal_lost_at_exit_is_reported_with_the_count(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str, blackhole: bool, mode: str
) -> None:
    """Redis is still down at exit: the process tries for a bounded time, then an ERROR
    (when logging is configured) and a FallbackWarning (always visible) give the count."""
    proxy.cut(blackhole=blackhole)
    started = time.monotonic()
    child = python(CHILD, proxy.url, prefix, "-", mode, "100", timeout=60)
    elapsed = time.monotonic() - started
    assert child.returncode == 0, child.stderr
    assert elapsed < 20, elapsed  # bounded, also against a black hole
    warnings = [line for line in child.stderr.splitlines() if "FallbackWarning" in line]
    assert any("exiting with 100 journaled writes" in line for line in warnings), child.stderr
    if mode.endswith("-log"):
        errors = [line for line in child.stderr.splitlines() if line.startswith("LOG ERROR")]
        assert any("exiting with 100 journaled writes" in line for line in errors), child.stderr
    assert stored(fresh_redis_server.port, prefix, "s") == []
