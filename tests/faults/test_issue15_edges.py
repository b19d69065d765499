"""Edges of session metadata, token budgets, search and the langchain-redis drop-in,
found by a red team on real servers; each failed on the first version of these
features."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from chatkeep import ConversationStore, Message
from chatkeep.errors import ChatkeepError
from tests.support.faults import FAST, ROOT, child_env, settle, stored
from tests.support.servers import RedisServer, TcpProxy

pytestmark = pytest.mark.redis_server


def _raw(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10)


# -- update_session: nothing partial is written ---------------------------------------


def test_an_update_with_thousands_of_context_keys_is_all_or_nothing(
    redis_server: RedisServer, prefix: str
) -> None:
    """update_session with ~5,000 context keys (well under max_message_bytes) fails in
    update.lua (Lua unpack limit) AFTER its HDEL ran: the title and a removed key are
    gone although the call raised; it should be all-or-nothing (and succeed, as on
    memory://)."""
    store = ConversationStore.from_url(redis_server.url, prefix=prefix, fallback="raise")
    store.update_session("s", title="keep me", context={"old": 1})
    context: dict[str, object] = {f"k{i}": 1 for i in range(5000)}
    context["old"] = None
    try:
        store.update_session("s", title=None, context=context)
    except ChatkeepError:
        info = store.info("s")
        assert info is not None
        # the call raised: nothing of it may have been applied
        assert (info.title, info.context) == ("keep me", {"old": 1})
    else:
        info = store.info("s")
        assert info is not None and len(info.context) == 5000
    finally:
        store.close()


# -- update_session in an outage ------------------------------------------------------


def test_a_title_redis_cannot_take_is_refused_before_it_blocks_the_journal(
    proxy: TcpProxy, fresh_redis_server: RedisServer, prefix: str
) -> None:
    """A title with a lone surrogate is accepted by the fallback mirror during an
    outage, journaled, then its replay raises UnicodeEncodeError for ever: the store
    stays degraded and later writes of OTHER sessions never reach Redis. The title
    should be refused up front (InvalidArgumentError), as Redis can never take it."""
    store = ConversationStore.from_url(proxy.url, prefix=prefix, **FAST)
    store.append("warm", [Message(role="user", content="hi")])
    proxy.cut()
    with contextlib.suppress(ChatkeepError):  # refused up front: what should happen
        store.update_session("bad", title="caf\ud800")
    store.append("other", [Message(role="user", content="must reach Redis")])
    proxy.restore()
    try:
        with contextlib.suppress(AssertionError, UnicodeError):
            settle(store, timeout=5)
        assert [
            m.text
            for m in ConversationStore.from_url(fresh_redis_server.url, prefix=prefix).messages(
                "other"
            )
        ] == ["must reach Redis"]
        assert not store.status().degraded
    finally:
        store.close()


def test_an_outage_update_never_overwrites_a_later_status(
    proxy: TcpProxy, fresh_redis_server: RedisServer, prefix: str
) -> None:
    """docs/store.md: an outage update is "replayed later, last writer wins". A status set by
    process A during its outage is replayed AFTER process B set a newer status, and the
    older one wins. The later write should be kept (or the replay reported as a
    conflict, as replace/insert/pop/clear do with their version)."""
    a = ConversationStore.from_url(proxy.url, prefix=prefix, **FAST)
    b = ConversationStore.from_url(fresh_redis_server.url, prefix=prefix)
    a.append("s", [Message(role="user", content="hello")])
    proxy.cut()
    a.update_session("s", status="active")  # journaled by A
    time.sleep(0.05)
    b.update_session("s", status="archived")  # later, on Redis
    proxy.restore()
    try:
        settle(a)
        info = b.info("s")
        assert info is not None and info.status == "archived"
    finally:
        a.close()
        b.close()


def test_an_outage_update_returns_the_metadata_the_mirror_has_seen(
    proxy: TcpProxy, fresh_redis_server: RedisServer, prefix: str
) -> None:
    """docs/store.md: during an outage the update is served by the mirror "which knows the
    metadata it has seen". After store.info() showed the title/status/context another
    process set, an outage
    update_session(context=...) returns title=None, status=None and only the new
    context key: it should return the title, status and merged context it has seen."""
    store = ConversationStore.from_url(proxy.url, prefix=prefix, **FAST)
    other = ConversationStore.from_url(fresh_redis_server.url, prefix=prefix)
    other.update_session("s", title="Trip", status="active", context={"a": 1})
    other.close()
    store.append("s", [Message(role="user", content="hello")])
    seen = store.info("s")  # this process has seen the metadata
    assert seen is not None and seen.title == "Trip"
    proxy.cut()
    try:
        info = store.update_session("s", context={"b": 2})
        assert store.status().degraded
        assert (info.title, info.status, info.context) == ("Trip", "active", {"a": 1, "b": 2})
    finally:
        proxy.restore()
        store.close()


OLD_REPLAYER = """
import sys
from chatkeep import ConversationStore
url, prefix, journal = sys.argv[1:4]
store = ConversationStore.from_url(url, prefix=prefix, journal_path=journal,
                                   probe_interval=0.05, probe_max=0.2)
try:
    for _ in range(200):
        if not store.flush() and not store.status().degraded:
            break
except Exception as exc:  # it cannot read the entry: it must keep it, not act on it
    print("refused", type(exc).__name__)
print("left", store.status().pending_replay)
"""


def _previous_release(tmp_path: Path) -> Path | None:
    """The core package as it was before update_session (its parent commit), unpacked
    under ``tmp_path``; None when git's history does not reach it."""
    git = ["git", "-C", str(ROOT)]
    found = subprocess.run(
        [*git, "log", "--diff-filter=A", "--format=%H", "--",
         "core/chatkeep/sessions/lua/update.lua"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    commits = found.stdout.split()
    if found.returncode != 0 or not commits:
        return None
    archive = subprocess.run(
        [*git, "archive", f"{commits[-1]}^", "core"], capture_output=True, check=False
    )
    if archive.returncode != 0:  # a shallow clone: the parent is not there
        return None
    old = tmp_path / "old"
    old.mkdir()
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    return old


def test_a_journaled_update_met_by_the_previous_release_is_kept_not_read_as_a_clear(
    durable_redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    """A durable journal (journal_path=, shared by the processes of a host, replayed by
    "any later process") holding an outage update_session is met by the release before
    update_session existed (a rolling deploy or a rollback): its decode read any
    unknown kind as Clear, and deleted the whole session, messages included. Updates
    are journaled so that such a reader fails to decode them and keeps them; the
    current release then replays the update."""
    server = durable_redis_server
    journal = str(tmp_path / "journal.db")
    store = ConversationStore.from_url(server.url, prefix=prefix, journal_path=journal, **FAST)
    store.append("s", [Message(role="user", content=f"m{i}") for i in range(3)])
    server.stop()
    store.update_session("s", title="Trip")
    assert store.status().pending_replay == 1
    store.close()
    server.start()
    server.wait_ready()
    # What makes an older reader fail instead of clearing: no "s" (session) field.
    with contextlib.closing(sqlite3.connect(journal)) as db:
        (entry,) = [json.loads(row[0]) for row in db.execute("SELECT op FROM entries")]
    assert entry["k"] == "update" and "s" not in entry and entry["u"] == "s"

    old = _previous_release(tmp_path)
    if old is not None:  # the history reaches it (not a shallow clone): run it
        env = child_env()
        env["PYTHONPATH"] = str(old / "core")
        child = subprocess.run(
            [sys.executable, "-c", OLD_REPLAYER, server.url, prefix, journal],
            capture_output=True, text=True, env=env, timeout=120, check=False,
            cwd=str(tmp_path),
        )  # fmt: skip
        assert child.returncode == 0, child.stderr
    assert stored(server.port, prefix, "s") == ["m0", "m1", "m2"]
    current = ConversationStore.from_url(server.url, prefix=prefix, journal_path=journal)
    assert current.flush() == 0
    info = current.info("s")
    assert info is not None and (info.title, info.message_count) == ("Trip", 3)
    current.close()


# -- token budgets --------------------------------------------------------------------


def test_a_budget_read_keeps_the_system_message_of_records_without_counts(
    redis_server: RedisServer, prefix: str
) -> None:
    """Sessions written before this release have records without "tk". budget.lua (and
    tokens.record_role) only recognise a leading system record WITH "tk", so
    messages(max_tokens=N) on an upgraded session silently drops its system prompt
    although it fits; keep_system should keep it (counted as a quarter of its length,
    as the other old records are)."""
    store = ConversationStore.from_url(redis_server.url, prefix=prefix, fallback="raise")
    questions = [Message(role="user", content=f"question {i} " * 5) for i in range(6)]
    store.append("old", [Message(role="system", content="You are terse."), *questions])
    client = _raw(redis_server)
    key = f"{prefix}:{{old}}:m"
    old = [re.sub(rb',"tk":\d+', b"", r) for r in client.lrange(key, 0, -1)]
    assert all(b'"tk"' not in r for r in old)
    client.delete(key)
    client.rpush(key, *old)
    try:
        got = store.messages("old", max_tokens=60)
        assert got and got[0].role == "system"
        assert got[0].text == "You are terse."
    finally:
        store.close()
        client.close()


# -- update_session: bad input and TTL edges ------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda s: s.update_session("u", title="caf\ud800"), id="title"),
        pytest.param(lambda s: s.update_session("u", status="on\ud800"), id="status"),
        pytest.param(lambda s: s.update_session("u", context={"k\ud800": 1}), id="context-key"),
        pytest.param(lambda s: s.search("u", "\ud800"), id="search-query"),
    ],
)
def test_lone_surrogates_are_invalid_arguments_on_redis(
    redis_server: RedisServer, prefix: str, call: object
) -> None:
    """A title, status, context key or search query holding a lone surrogate raises a
    bare UnicodeEncodeError from redis-py on Redis (memory:// accepts the same call):
    it should be refused up front with InvalidArgumentError on every backend."""
    from chatkeep.errors import InvalidArgumentError

    store = ConversationStore.from_url(redis_server.url, prefix=prefix, fallback="raise")
    try:
        with pytest.raises(InvalidArgumentError):
            call(store)  # type: ignore[operator]
    finally:
        store.close()


def test_an_update_whose_fixed_ttl_is_already_past_returns_its_info(
    redis_server: RedisServer, prefix: str
) -> None:
    """ttl_mode="fixed": update_session(sid, ttl=1) on a session created more than 1 s
    ago sets an expiry in the past; Redis drops the keys and _update hits
    `assert info is not None` (a bare AssertionError; with python -O it returns None).
    It should return a SessionInfo (or raise a chatkeep error), as memory:// does."""
    store = ConversationStore.from_url(
        redis_server.url, prefix=prefix, ttl=60, ttl_mode="fixed", fallback="raise"
    )
    store.append("f", [Message(role="user", content="x")])
    time.sleep(1.1)
    try:
        try:
            info = store.update_session("f", ttl=1, title="t")
        except ChatkeepError:
            return
        assert info is not None and info.id == "f"
    finally:
        store.close()


# -- CLI export/import carrying "meta" ------------------------------------------------


def test_export_and_import_keep_a_session_that_has_only_metadata(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    """`chatkeep sessions`/`show` list a session made by update_session alone (a new
    chat with a title, status, owner and context, no message yet), but `chatkeep
    export` writes "meta" only on a session's first message line, so such a session is
    silently left out (the summary says nothing) and an export/import round trip loses
    it. It should be exported (e.g. a line with "meta" and no record) and restored."""
    pytest.importorskip("click")
    from tests.cli.conftest import invoke_cli

    store = ConversationStore.from_url(redis_server.url, prefix=prefix, fallback="raise")
    store.update_session("new-chat", title="Draft: trip", status="active", owner="u1",
                         context={"topic": "travel"})  # fmt: skip
    path = tmp_path / "all.jsonl"
    base = ["--url", redis_server.url, "--prefix", prefix]
    try:
        assert invoke_cli([*base, "export", "-o", str(path)]).code == 0
        assert "new-chat" in path.read_text()
        store.clear("new-chat")
        assert invoke_cli([*base, "import", str(path)]).code == 0
        info = store.info("new-chat")
        assert info is not None and (info.title, info.owner) == ("Draft: trip", "u1")
    finally:
        store.close()


@pytest.mark.parametrize("command", [["sessions"], ["show", "t"]])
def test_the_cli_prints_no_escape_sequences_from_titles_and_statuses(
    redis_server: RedisServer, prefix: str, command: list[str]
) -> None:
    """Titles and statuses are free text (often written from user or model output).
    `chatkeep sessions` and `chatkeep show` print them with their ESC bytes, so a
    title like "\\x1b]0;...\\x1b[2J" re-titles or clears the operator's terminal and a
    newline forges table rows; control characters should be escaped or replaced
    (the --json output escapes them already)."""
    pytest.importorskip("click")
    from tests.cli.conftest import invoke_cli

    store = ConversationStore.from_url(redis_server.url, prefix=prefix, fallback="raise")
    store.update_session("t", title="hi\x1b]0;owned\x1b\\\x1b[2J\nFAKE", status="a\x1b[31mb")
    store.close()
    result = invoke_cli(["--url", redis_server.url, "--prefix", prefix, *command])
    assert result.code == 0, result.err
    assert "\x1b" not in result.out


def test_an_empty_budget_read_leaves_the_mirror_the_sessions_length(
    proxy: TcpProxy, fresh_redis_server: RedisServer, prefix: str
) -> None:
    """A budget read that returns nothing (newest message over the budget) makes the
    mirror hold the session as complete with 0 messages, ignoring the length Redis
    sent: during an outage info() says 0 messages, pop() returns None and append()
    returns 1 for a 5-message session. The mirror should keep the length it learned
    (info 5, append -> 6, pop of a message it does not hold refused), as after a
    last=k read."""
    other = ConversationStore.from_url(fresh_redis_server.url, prefix=prefix)
    other.append("s", [Message(role="user", content=f"long message {i} " * 5) for i in range(5)])
    other.close()
    store = ConversationStore.from_url(proxy.url, prefix=prefix, **FAST)
    assert store.messages("s", max_tokens=3) == []
    proxy.cut()
    try:
        info = store.info("s")
        assert store.status().degraded
        assert info is not None and info.message_count == 5
        assert store.append("s", [Message(role="user", content="x")]) == 6
    finally:
        proxy.restore()
        store.close()


def test_an_outage_update_does_not_bring_back_a_session_deleted_meanwhile(
    proxy: TcpProxy, fresh_redis_server: RedisServer, prefix: str
) -> None:
    """Process A sets a title during its outage; meanwhile the session is deleted on
    Redis (the user deleted the chat, or `chatkeep purge --owner` for an erasure
    request). A's replay has no version check (unlike replace/insert/pop/clear) and
    update.lua creates missing sessions, so the deleted session comes back with its
    owner, title and context. The replay should be refused as a conflict."""
    a = ConversationStore.from_url(proxy.url, prefix=prefix, **FAST)
    b = ConversationStore.from_url(fresh_redis_server.url, prefix=prefix)
    a.append("s", [Message(role="user", content="my diagnosis is ...")], owner="u1")
    proxy.cut()
    a.update_session("s", title="Diagnosis", context={"topic": "health"}, owner="u1")
    assert b.clear("s", owner="u1")  # deleted on Redis after A's update
    proxy.restore()
    try:
        settle(a)
        assert b.info("s") is None
    finally:
        a.close()
        b.close()


# -- the langchain-redis drop-in ------------------------------------------------------


def test_len_of_a_history_works_on_a_decode_responses_client(
    redis_server: RedisServer, prefix: str
) -> None:
    """langchain-redis users pass `redis_client=Redis.from_url(url,
    decode_responses=True)`; appends and reads work on it, but `len(history)` (and
    store.info/sessions/recent) now read the session hash with HGETALL, whose binary
    idempotency ring ("k") cannot be decoded: UnicodeDecodeError. It used HMGET of the
    text fields before; len() should return the message count on such a client."""
    from langchain_core.messages import AIMessage, HumanMessage

    from chatkeep_langchain import RedisChatMessageHistory

    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    history = RedisChatMessageHistory(f"{prefix}-s", redis_client=client, key_prefix=prefix)
    history.add_messages([HumanMessage("héllo"), AIMessage("wörld")])
    try:
        assert [m.content for m in history.messages] == ["héllo", "wörld"]
        assert len(history) == 2
    finally:
        client.close()
