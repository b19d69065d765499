"""``chatkeep journal show`` and ``chatkeep journal replay`` (issue 14): the writes a
durable journal (``journal_path``) holds, and replaying them once Redis is back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from chatkeep import ConversationStore, Message
from tests.cli.conftest import invoke_cli, run_process
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis_server

SECRET = "TOP-SECRET-CONTENT"


def stored(url: str, prefix: str, session_id: str) -> list[str]:
    with ConversationStore.from_url(url, key_prefix=prefix, fallback="raise") as store:
        return [m.text for m in store.messages(session_id)]


def journal_while_down(server: RedisServer, prefix: str, path: Path) -> None:
    """An application with ``journal_path`` writes while Redis is down, then exits."""
    store = ConversationStore.from_url(
        server.url, key_prefix=prefix, journal_path=str(path), probe_interval=60
    )
    store.append("s1", Message(role="user", content="a"))
    server.stop()
    store.append("s1", Message(role="user", content=f"b {SECRET}"))
    store.append("s2", [Message(role="user", content="c"), Message(role="ai", content="d")])
    store.close()  # Redis is still down: the writes stay in the file


def test_show_lists_what_waits_and_replay_sends_it(
    durable_redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    server = durable_redis_server
    path = tmp_path / "journal.db"
    journal_while_down(server, prefix, path)

    shown = invoke_cli(["journal", "show", "--path", str(path), "--json"])
    assert shown.code == 0, shown.err
    data = json.loads(shown.out)
    assert (data["writes"], data["bytes"] > 0) == (2, True)
    assert [(k["key"], k["writes"], k["family"], k["prefix"]) for k in data["keys"]] == [
        ("s1", 1, "sessions", prefix),
        ("s2", 1, "sessions", prefix),
    ]
    assert {k["redis"] for k in data["keys"]} == {server.url}
    table = invoke_cli(["journal", "show"], env={"CHATKEEP_JOURNAL_PATH": str(path)})
    assert table.code == 0 and "2 pending writes" in table.out and "s2" in table.out
    assert SECRET not in shown.out + table.out  # counts and sessions, never content

    down = invoke_cli(["--url", server.url, "journal", "replay", "--path", str(path)])
    assert down.code == 1
    assert "cannot reach Redis" in down.err and "2 journaled writes waiting" in down.err

    server.start()
    replayed = invoke_cli(["--url", server.url, "journal", "replay", "--path", str(path)])
    assert replayed.code == 0, replayed.err
    assert "replayed 2 writes" in replayed.out and "0 left" in replayed.out
    assert stored(server.url, prefix, "s1") == ["a", f"b {SECRET}"]
    assert stored(server.url, prefix, "s2") == ["c", "d"]
    assert "0 pending writes" in invoke_cli(["journal", "show", "--path", str(path)]).out
    again = invoke_cli(["--url", server.url, "journal", "replay", "--path", str(path)])
    assert again.code == 0 and "replayed 0 writes" in again.out
    assert stored(server.url, prefix, "s1") == ["a", f"b {SECRET}"]  # once


def test_replay_by_another_process_leaves_other_servers_writes(
    fresh_redis_server: RedisServer, redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    path = tmp_path / "journal.db"
    journal_while_down(fresh_redis_server, prefix, path)
    # Another Redis: nothing in the file is for it.
    other = invoke_cli(["--url", redis_server.url, "journal", "replay", "--path", str(path)])
    assert other.code == 0 and "replayed 0 writes" in other.out
    assert "2 writes in" in other.err and "other Redis servers" in other.err
    fresh_redis_server.start()  # empty: the appends made in the outage are replayed
    done = run_process(
        ["--url", fresh_redis_server.url, "journal", "replay"],
        env={**os.environ, "CHATKEEP_JOURNAL_PATH": str(path)},
    )
    assert done.returncode == 0, done.stderr
    assert "replayed 2 writes" in done.stdout
    assert stored(fresh_redis_server.url, prefix, "s1") == [f"b {SECRET}"]
    assert stored(fresh_redis_server.url, prefix, "s2") == ["c", "d"]


@pytest.mark.parametrize("command", ["show", "replay"])
def test_journal_help(command: str) -> None:
    result = invoke_cli(["journal", command, "--help"])
    assert (
        result.code == 0 and "--path FILE" in result.out and "CHATKEEP_JOURNAL_PATH" in result.out
    )


def test_journal_commands_say_what_is_wrong(tmp_path: Path) -> None:
    missing = invoke_cli(["journal", "show"], env={"CHATKEEP_JOURNAL_PATH": ""})
    assert missing.code == 2 and "--path" in missing.err
    nowhere = invoke_cli(["journal", "show", "--path", str(tmp_path / "nope.db")])
    assert nowhere.code == 2 and "no journal file" in nowhere.err
    other = tmp_path / "other.db"
    other.write_bytes(b"not a database at all" * 100)
    wrong = invoke_cli(["journal", "show", "--path", str(other)])
    assert wrong.code == 2 and "not a chatkeep journal" in wrong.err
    assert "Traceback" not in missing.err + nowhere.err + wrong.err
