"""Every ``chatkeep`` command against a real redis-server: output and exit codes."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from chatkeep import ConversationStore, Message
from chatkeep.cli import app
from tests.cli.conftest import Invoke, invoke_cli, run_process, seed
from tests.support.servers import RedisServer, free_port

pytestmark = pytest.mark.redis_server

COMMANDS = [
    "sessions", "show", "export", "import", "delete", "purge", "stats", "doctor", "journal",
    "rekey",
]  # fmt: skip


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("chatkeep: error: "), err
    assert "Traceback" not in err
    return lines[0]


# -- help, arguments ----------------------------------------------------------------------


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_help_on_every_command(command: str | None) -> None:
    args = ["--help"] if command is None else [command, "--help"]
    result = invoke_cli(args)
    assert result.code == 0
    assert "Usage: chatkeep" in result.out
    if command is None:
        for name in COMMANDS:
            assert name in result.out
        assert "Exit codes" in result.out


def test_bad_arguments_are_one_line_and_exit_2() -> None:
    for args in (
        ["show"],
        ["sessions", "--limit", "0"],
        ["sessions", "--active-since", "soon"],
        ["import", "x.jsonl", "--ttl", "-5"],
        ["export", "--owner", "u", "--session", "s"],
        ["purge"],
        ["nonsense"],
    ):
        result = invoke_cli(["--url", "redis://127.0.0.1:1/0", *args])
        assert result.code == 2, (args, result)
        line = one_error_line(result.err)
        assert "--help" in line


def test_memory_url_is_refused() -> None:
    result = invoke_cli(["--url", "memory://", "sessions"])
    assert result.code == 2
    assert "needs a Redis URL" in one_error_line(result.err)


def test_version() -> None:
    result = invoke_cli(["--version"])
    assert result.code == 0 and "chatkeep" in result.out


def test_without_click_one_line_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(__import__("sys").modules, "click", None)
    result = invoke_cli(["sessions"])
    assert result.code == 1
    assert result.err.strip() == (
        'chatkeep: the command-line tool needs click and rich: pip install "chatkeep[cli]"'
    )


# -- unreachable server --------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["sessions"],
        ["show", "s1"],
        ["export", "-o", "-"],
        ["delete", "s1", "--yes"],
        ["purge", "--owner", "u1", "--yes"],
        ["stats"],
        ["doctor"],
    ],
    ids=lambda a: a[0],
)
def test_unreachable_server_is_one_line_and_nonzero(args: list[str]) -> None:
    url = f"redis://:s3cret@127.0.0.1:{free_port()}/0"
    result = invoke_cli(["--url", url, *args])
    assert result.code == 1
    line = one_error_line(result.err) if args[0] != "doctor" else result.out
    assert "127.0.0.1" in line and "s3cret" not in result.out + result.err
    if args[0] == "doctor":
        assert "connectivity" in result.out and "✗" in result.out


def test_unreachable_server_for_import(tmp_path: Path) -> None:
    from chatkeep import codec

    record = codec.encode(Message(role="user", content="x")).decode()
    path = tmp_path / "in.jsonl"
    path.write_text(f'{{"chatkeep_export":1}}\n{{"session":"s","owner":null,"record":{record}}}\n')
    result = invoke_cli(["--url", f"redis://127.0.0.1:{free_port()}/0", "import", str(path)])
    assert result.code == 1
    assert "cannot reach Redis" in one_error_line(result.err) or "unreachable" in result.err


def test_unreachable_server_as_a_real_process() -> None:
    proc = run_process(["--url", f"redis://127.0.0.1:{free_port()}/0", "sessions"])
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "unreachable" in one_error_line(proc.stderr)


def test_url_from_redis_url_env(
    redis_server: RedisServer, prefix: str, store: ConversationStore
) -> None:
    seed(store)
    env = {"REDIS_URL": redis_server.url, "CHATKEEP_URL": None, "CHATKEEP_PREFIX": prefix}
    result = invoke_cli(["sessions", "--json"], env=env)  # type: ignore[arg-type]
    assert result.code == 0, result.err
    assert {s["id"] for s in json.loads(result.out)} == {
        "chat-42",
        "chat 43 {odd} id",
        "u2-only",
        "anonymous",
    }


# -- sessions -------------------------------------------------------------------------------


def test_sessions_table_json_owner_limit(chatkeep: Invoke, store: ConversationStore) -> None:
    seed(store)
    result = chatkeep("sessions")
    assert result.code == 0, result.err
    for text in ("session", "owner", "messages", "created", "last active", "expires in"):
        assert text in result.out
    for sid in ("chat-42", "chat 43 {odd} id", "u2-only", "anonymous"):
        assert sid in result.out
    assert "4 sessions" in result.out
    assert "6d 23h" in result.out

    rows = json.loads(chatkeep("sessions", "--json").out)
    by_id = {r["id"]: r for r in rows}
    assert by_id["chat-42"]["owner"] == "u1" and by_id["chat-42"]["message_count"] == 5
    assert by_id["anonymous"]["owner"] is None
    assert 600_000 < by_id["u2-only"]["expires_in_seconds"] <= 604_800

    owned = json.loads(chatkeep("sessions", "--owner", "u1", "--json").out)
    assert sorted(r["id"] for r in owned) == ["chat 43 {odd} id", "chat-42"]
    assert "no sessions of owner 'nobody'" in chatkeep("sessions", "--owner", "nobody").out

    limited = chatkeep("sessions", "--limit", "2")
    assert "2 sessions (more exist; raise --limit above 2)" in limited.out


def test_sessions_active_since(
    chatkeep: Invoke, store: ConversationStore, redis_server: RedisServer, prefix: str
) -> None:
    seed(store)
    client = redis.Redis.from_url(redis_server.url)
    two_hours_ago = int((time.time() - 7200) * 1000)
    client.hset(f"{prefix}:{{u2-only}}:h", "u", two_hours_ago)
    recent = json.loads(chatkeep("sessions", "--active-since", "1h", "--json").out)
    assert "u2-only" not in {r["id"] for r in recent} and len(recent) == 3
    day = json.loads(chatkeep("sessions", "--active-since", "1d", "--json").out)
    assert "u2-only" in {r["id"] for r in day}


def test_sessions_and_show_carry_the_session_metadata(
    chatkeep: Invoke, store: ConversationStore
) -> None:
    seed(store)
    store.update_session("chat-42", title="Paris weather", status="archived", owner="u1",
                         context={"topic": "weather"})  # fmt: skip
    table = chatkeep("sessions")
    assert "status" in table.out and "title" in table.out
    assert "archived" in table.out and "Paris weather" in table.out
    archived = json.loads(chatkeep("sessions", "--status", "archived", "--json").out)
    assert [r["id"] for r in archived] == ["chat-42"]
    assert (archived[0]["title"], archived[0]["context"]) == ("Paris weather", {"topic": "weather"})
    assert "no sessions" in chatkeep("sessions", "--status", "active").out
    shown = chatkeep("show", "chat-42")
    assert "Paris weather" in shown.out and "[archived]" in shown.out
    data = json.loads(chatkeep("show", "chat-42", "--json").out)
    assert data["session"]["status"] == "archived"


# -- show -----------------------------------------------------------------------------------


def test_show_is_readable_and_summarises_tool_calls(
    chatkeep: Invoke, store: ConversationStore
) -> None:
    seed(store)
    result = chatkeep("show", "chat-42")
    assert result.code == 0, result.err
    out = result.out
    assert "session chat-42" in out and "owner u1" in out and "5 messages" in out
    assert "user: Weather in [Paris]?" in out  # brackets are text, not markup
    assert '→ weather(city="Paris") [c1]' in out
    assert "tool [result of c1]: 18°C" in out
    assert "assistant: It is 18°C. <image_url>" in out
    assert out.index("system: You are terse.") < out.index("user: Weather")

    last = chatkeep("show", "chat-42", "--last", "1")
    assert "… 4 earlier messages" in last.out and "Weather" not in last.out

    data = json.loads(chatkeep("show", "chat 43 {odd} id", "--json", "--last", "3").out)
    assert data["session"]["message_count"] == 7
    assert [r["content"] for r in data["messages"]] == ["m4", "m5", "m6"]
    assert all(r["v"] == 1 and r["role"] == "user" for r in data["messages"])


def test_show_missing_session_exits_4(chatkeep: Invoke) -> None:
    result = chatkeep("show", "nope")
    assert result.code == 4
    assert one_error_line(result.err) == "chatkeep: error: session 'nope' not found"


def test_show_and_export_do_not_refresh_the_ttl(
    chatkeep: Invoke, store: ConversationStore, redis_server: RedisServer, prefix: str
) -> None:
    store.append("short", [Message(role="user", content="x")], ttl=100)
    client = redis.Redis.from_url(redis_server.url)
    client.pexpire(f"{prefix}:{{short}}:h", 50_000)
    client.pexpire(f"{prefix}:{{short}}:m", 50_000)
    assert chatkeep("show", "short").code == 0
    assert chatkeep("export", "--session", "short").code == 0
    assert client.pttl(f"{prefix}:{{short}}:h") <= 50_000
    assert client.pttl(f"{prefix}:{{short}}:m") <= 50_000


# -- export / purge / import ------------------------------------------------------------------


def snapshot(store: ConversationStore) -> dict[str, tuple[str | None, list[Message]]]:
    return {info.id: (info.owner, store.messages(info.id)) for info in store.sessions()}


def test_export_purge_import_round_trip(
    chatkeep: Invoke, store: ConversationStore, tmp_path: Path
) -> None:
    seed(store)
    original = snapshot(store)
    path = tmp_path / "all.jsonl"

    exported = chatkeep("export", "-o", str(path))
    assert exported.code == 0, exported.err
    assert f"exported 4 sessions, 15 messages to {path}" in exported.err
    lines = path.read_bytes().splitlines()
    header, trailer = json.loads(lines[0]), json.loads(lines[-1])
    assert header["chatkeep_export"] == 1 and header["record_version"] == 1
    assert trailer == {"chatkeep_export_end": {"sessions": 4, "messages": 15}}
    assert len(lines) == 17
    assert not (tmp_path / "all.jsonl.partial").exists()

    purged = chatkeep("purge", "--owner", "u1", "--yes")
    assert purged.code == 0, purged.err
    assert purged.out.strip() == "deleted 2 sessions (12 messages) of owner 'u1'"
    assert chatkeep("purge", "--owner", "u2", "--yes").code == 0
    assert chatkeep("delete", "anonymous", "--yes").code == 0
    assert store.sessions() == []

    imported = chatkeep("import", str(path))
    assert imported.code == 0, imported.err
    assert "imported 15 messages into 4 sessions (0 already present, 0 bad lines)" in imported.err
    assert snapshot(store) == original

    again = chatkeep("import", str(path))
    assert again.code == 0
    assert "imported 0 messages into 0 sessions (15 already present, 0 bad lines)" in again.err
    assert snapshot(store) == original


def test_export_and_import_carry_the_session_metadata(
    chatkeep: Invoke, store: ConversationStore, tmp_path: Path
) -> None:
    """The first line of a session carries its title, status and context ("meta", a key
    older readers ignore); import restores them."""
    seed(store)
    store.update_session("chat-42", title="Paris weather", status="archived", owner="u1",
                         context={"topic": "weather", "n": [1, 2]})  # fmt: skip
    store.update_session("anonymous", context={"blob": b"\x00"})  # JSON cannot hold it
    path = tmp_path / "all.jsonl"
    exported = chatkeep("export", "-o", str(path))
    assert exported.code == 0
    assert "left out the context of 1 session: it holds values JSON cannot (bytes)" in exported.err
    lines = [json.loads(line) for line in path.read_bytes().splitlines()[1:-1]]
    metas = [(line["session"], line.get("meta")) for line in lines if "meta" in line]
    assert metas == [
        ("chat-42", {"title": "Paris weather", "status": "archived",
                     "context": {"topic": "weather", "n": [1, 2]}}),
    ]  # fmt: skip
    for sid in ("chat-42", "anonymous"):
        store.clear(sid)
    imported = chatkeep("import", str(path))
    assert imported.code == 0, imported.err
    info = store.info("chat-42")
    assert info is not None and info.owner == "u1" and info.message_count == 5
    assert (info.title, info.status, info.context) == (
        "Paris weather",
        "archived",
        {"topic": "weather", "n": [1, 2]},
    )


def test_import_adds_only_what_is_missing(
    chatkeep: Invoke, store: ConversationStore, tmp_path: Path
) -> None:
    seed(store)
    path = tmp_path / "one.jsonl"
    assert chatkeep("export", "--session", "chat 43 {odd} id", "-o", str(path)).code == 0
    store.pop("chat 43 {odd} id", -1)
    store.pop("chat 43 {odd} id", -1)
    result = chatkeep("import", str(path))
    assert "imported 2 messages into 1 session (5 already present" in result.err
    assert [m.text for m in store.messages("chat 43 {odd} id")] == [f"m{i}" for i in range(7)]


def test_export_filters_by_owner_and_session(chatkeep: Invoke, store: ConversationStore) -> None:
    seed(store)
    by_owner = chatkeep("export", "--owner", "u1")
    sessions = {json.loads(line)["session"] for line in by_owner.out.splitlines()[1:-1]}
    assert sessions == {"chat-42", "chat 43 {odd} id"}
    assert all(json.loads(line)["owner"] == "u1" for line in by_owner.out.splitlines()[1:-1])
    named = chatkeep("export", "--session", "u2-only", "--session", "ghost")
    assert named.code == 4
    assert {json.loads(line)["session"] for line in named.out.splitlines()[1:-1]} == {"u2-only"}
    assert "session 'ghost' not found" in named.err


def test_import_reports_bad_lines_and_imports_the_good_ones(
    chatkeep: Invoke, store: ConversationStore, tmp_path: Path
) -> None:
    good = [Message(role="user", content=f"ok {i}") for i in range(3)]

    def line(sid: object, record: object, owner: object = None) -> str:
        return json.dumps({"session": sid, "owner": owner, "record": record})

    from chatkeep import codec

    records = [json.loads(codec.encode(m)) for m in good]
    broken = dict(records[0], id="x1")
    del broken["role"]
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "\n".join(
            [
                '{"chatkeep_export": 1}',
                line("s1", records[0]),  # 2
                "{this is not json",  # 3
                line("s1", records[1]),  # 4
                line("s1", broken),  # 5
                line("", records[2]),  # 6
                line("s1", "not an object"),  # 7
                "[1, 2]",  # 8
                line("s1", records[2]),  # 9
                json.dumps({"chatkeep_export_end": {"sessions": 1, "messages": 3}}),
            ]
        )
        + "\n"
    )
    result = chatkeep("import", str(path))
    assert result.code == 3
    err = result.err
    assert "line 3: not valid JSON" in err
    assert "line 5: record: stored record lacks id, role or timestamp" in err
    assert "line 6: session must have 1..512 characters" in err
    assert "line 7: record: missing or not a JSON object" in err
    assert "line 8: not a JSON object" in err
    assert "imported 3 messages into 1 session (0 already present, 5 bad lines)" in err
    assert "cut short" not in err
    assert store.messages("s1") == good


def test_import_ownership_conflict_is_reported_per_line(
    chatkeep: Invoke, store: ConversationStore, tmp_path: Path
) -> None:
    store.append("taken", [Message(role="user", content="mine")], owner="alice")
    from chatkeep import codec

    record = json.loads(codec.encode(Message(role="user", content="theirs")))
    path = tmp_path / "conflict.jsonl"
    path.write_text(
        '{"chatkeep_export": 1}\n'
        + json.dumps({"session": "taken", "owner": "mallory", "record": record})
        + "\n"
    )
    result = chatkeep("import", str(path))
    assert result.code == 3
    assert "line 2: session 'taken' belongs to a different owner" in result.err
    assert "cut short" in result.err  # no trailer
    assert [m.text for m in store.messages("taken")] == ["mine"]


def test_import_with_ttl(chatkeep: Invoke, store: ConversationStore, tmp_path: Path) -> None:
    seed(store)
    path = tmp_path / "x.jsonl"
    chatkeep("export", "--session", "u2-only", "-o", str(path))
    store.clear("u2-only")
    assert chatkeep("import", str(path), "--ttl", "2h").code == 0
    ttl = store.ttl("u2-only")
    assert ttl is not None and 7000 < ttl <= 7200
    store.clear("u2-only")
    assert chatkeep("import", str(path), "--ttl", "none").code == 0
    assert store.ttl("u2-only") is None


def test_import_rejects_files_that_are_not_exports(chatkeep: Invoke, tmp_path: Path) -> None:
    missing = chatkeep("import", str(tmp_path / "nope.jsonl"))
    assert missing.code == 1
    assert "cannot read" in one_error_line(missing.err)
    for content, words in (
        ("", "empty"),
        ('{"hello": 1}\n', "not a chatkeep export"),
        ('{"chatkeep_export": 99}\n', "version 99 is not supported"),
    ):
        path = tmp_path / "bad.jsonl"
        path.write_text(content)
        result = chatkeep("import", str(path))
        assert result.code == 1
        assert words in one_error_line(result.err)


def test_export_to_an_unwritable_place(chatkeep: Invoke, tmp_path: Path) -> None:
    result = chatkeep("export", "-o", str(tmp_path / "no" / "such" / "dir.jsonl"))
    assert result.code == 1
    assert "cannot write" in one_error_line(result.err)


def test_import_from_stdin(chatkeep: Invoke, store: ConversationStore) -> None:
    seed(store)
    exported = chatkeep("export", "--session", "anonymous").out
    store.clear("anonymous")
    result = chatkeep("import", "-", input=exported)
    assert result.code == 0, result.err
    assert [m.text for m in store.messages("anonymous")] == ["who am I?"]


# -- delete / purge ---------------------------------------------------------------------------


def test_delete_asks_unless_yes(
    chatkeep: Invoke, store: ConversationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(store)
    refused = chatkeep("delete", "chat-42")  # no terminal, no --yes
    assert refused.code == 1
    assert "add --yes" in one_error_line(refused.err)
    assert store.info("chat-42") is not None

    monkeypatch.setattr(app, "_interactive", lambda: True)
    declined = chatkeep("delete", "chat-42", input="n\n")
    assert declined.code == 1
    assert "Delete session 'chat-42' (5 messages, owner u1)?" in declined.err
    assert "aborted; nothing was deleted" in declined.err
    assert store.info("chat-42") is not None

    accepted = chatkeep("delete", "chat-42", input="y\n")
    assert accepted.code == 0
    assert accepted.out.strip() == "deleted session 'chat-42' (5 messages)"
    assert store.info("chat-42") is None

    assert chatkeep("delete", "chat-42", "--yes").code == 4


def test_purge_removes_one_owner_only(
    chatkeep: Invoke, store: ConversationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(store)
    assert chatkeep("purge", "--owner", "u1").code == 1  # no confirmation
    assert len(store.sessions(owner="u1")) == 2
    monkeypatch.setattr(app, "_interactive", lambda: True)
    result = chatkeep("purge", "--owner", "u1", input="y\n")
    assert result.code == 0
    assert "Delete 2 sessions (12 messages) of owner 'u1'?" in result.err
    assert "deleted 2 sessions (12 messages) of owner 'u1'" in result.out
    assert store.sessions(owner="u1") == []
    assert {i.id for i in store.sessions()} == {"u2-only", "anonymous"}
    nothing = chatkeep("purge", "--owner", "u1", "--yes")
    assert nothing.code == 0 and "has no sessions; nothing deleted" in nothing.out


# -- stats ------------------------------------------------------------------------------------


def test_stats(chatkeep: Invoke, store: ConversationStore) -> None:
    seed(store)
    store.append("forever", [Message(role="user", content="x")], ttl=None)
    data = json.loads(chatkeep("stats", "--json").out)
    assert data["sessions"] == 5
    assert data["messages"] == 16
    assert data["largest_session"] == 7
    assert data["owners"] == 2 and data["sessions_without_owner"] == 2
    assert data["expires_in"]["<7d"] == 4 and data["expires_in"]["never"] == 1
    assert data["bytes_estimated"] > 1000
    assert data["fallback"]["mode"] == "memory"
    text = chatkeep("stats").out
    for words in ("sessions", "messages", "memory", "expires in", "fallback", "sampled"):
        assert words in text


# -- doctor -----------------------------------------------------------------------------------


def test_doctor_on_a_default_server(chatkeep: Invoke) -> None:
    result = chatkeep("doctor")
    assert result.code == 0, result.out
    assert "✓ connectivity" in result.out
    assert "✓ server: Redis 7" in result.out and "standalone" in result.out
    assert "✓ latency: PING round trip median" in result.out
    assert "✓ permissions: every command chatkeep sends is allowed (checked by ACL DRYRUN)" in (
        result.out
    )
    assert "! persistence: no persistence" in result.out
    assert "appendonly yes" in result.out
    assert chatkeep("doctor", "--strict").code == 3
    checks = {c["name"]: c for c in json.loads(chatkeep("doctor", "--json").out)}
    assert set(checks) == {
        "connectivity",
        "server",
        "latency",
        "permissions",
        "eviction",
        "persistence",
    }
    assert checks["eviction"]["status"] == "ok"


@pytest.fixture
def acl_user(redis_server: RedisServer):  # type: ignore[no-untyped-def]
    client = redis.Redis.from_url(redis_server.url)
    made: list[str] = []

    def make(name: str, *rules: str) -> str:
        client.acl_setuser(name, enabled=True, reset=True, passwords=["+pw"])
        client.execute_command("ACL", "SETUSER", name, *rules)
        made.append(name)
        return f"redis://{name}:pw@127.0.0.1:{redis_server.port}/0"

    yield make
    for name in made:
        client.acl_deluser(name)


def test_doctor_names_a_missing_permission(acl_user, prefix: str) -> None:  # type: ignore[no-untyped-def]
    url = acl_user("no_ltrim", "~*", "&*", "+@all", "-ltrim")  # LTRIM: inside the scripts
    result = invoke_cli(["--url", url, "--prefix", prefix, "doctor"])
    assert result.code == 1
    assert "✗ permissions: the user may not run: LTRIM (checked by ACL DRYRUN)" in result.out
    assert "ACL SETUSER <user>" in result.out


def test_doctor_for_a_least_privilege_user_tries_commands(
    acl_user, prefix: str, redis_server: RedisServer
) -> None:  # type: ignore[no-untyped-def]
    from chatkeep.cli.doctor import needed

    commands = {c.lower() for c in needed().every}
    keys = ("resetkeys", f"~{prefix}:*", "resetchannels", f"&{prefix}:*", "-@all")
    url = acl_user("least", *keys, *(f"+{c}" for c in commands))
    result = invoke_cli(["--url", url, "--prefix", prefix, "doctor"])
    assert "✓ permissions: every command chatkeep sends is allowed (checked by trying" in (
        result.out
    )
    assert "✓ server: Redis 7" in result.out  # INFO is one of the commands chatkeep sends
    assert "CONFIG GET not permitted" in result.out  # CONFIG is not
    assert result.code == 0
    # Without LTRIM (used inside the scripts) the probe finds it.
    url = acl_user("least2", *keys, *(f"+{c}" for c in commands - {"ltrim"}))
    result = invoke_cli(["--url", url, "--prefix", prefix, "doctor"])
    assert result.code == 1
    assert "may not run: LTRIM (checked by trying each command" in result.out
    # Without what only the chatkeep command needs, the app is fine: a warning.
    url = acl_user("least3", *keys, *(f"+{c}" for c in commands - {"zscan", "memory|usage"}))
    result = invoke_cli(["--url", url, "--prefix", prefix, "doctor"])
    assert "! permissions: the app's commands are allowed; the chatkeep command may not run: " in (
        result.out
    )
    assert "MEMORY|USAGE, ZSCAN" in result.out and result.code == 0
    # The probe left nothing behind.
    assert redis.Redis.from_url(redis_server.url).keys(f"{prefix}:*") == []


def test_doctor_checks_what_the_features_declare() -> None:
    """What the doctor checks is what the features declare (and acl_rules grants):
    every command, the CLI's own included, with an invocation it knows."""
    from chatkeep.cli.admin import CLI
    from chatkeep.cli.doctor import ProbeKeys, example, needed
    from chatkeep.redis import FEATURES, acl_rules

    wanted = needed()
    declared = {c for f in FEATURES.values() for c in f.commands}
    assert wanted.every == declared
    assert {"ZSCAN", "ZCARD", "MEMORY|USAGE"} <= wanted.cli <= CLI.commands
    assert "LTRIM" in wanted.scripted and "EVALSHA" in wanted.app
    assert {f"+{c.lower()}" for c in declared} <= set(acl_rules("p"))
    keys = ProbeKeys("p:{d}:m", "p:{d}:h", "p:{d}:lock", "p:{d}:ch")
    assert [c for c in sorted(declared) if example(c, keys) is None] == []


@pytest.mark.redis_server
def test_doctor_examples_are_valid_commands(redis_server: RedisServer) -> None:
    """Each invocation the doctor knows has the arity Redis wants (ACL DRYRUN checks it
    before permissions, so a wrong one would hide a refusal)."""
    from chatkeep.cli.doctor import ProbeKeys, example

    keys = ProbeKeys("p:{d}:m", "p:{d}:h", "p:{d}:lock", "p:{d}:ch")
    client = redis.Redis.from_url(redis_server.url)
    names = [
        "PING", "INFO", "EVAL", "EVALSHA", "EXISTS", "DEL", "PEXPIREAT", "PERSIST", "PTTL",
        "HMGET", "HSET", "HDEL", "LLEN", "LRANGE", "LINDEX", "LSET", "LREM", "LINSERT",
        "LTRIM", "LPOP", "RPOP", "RPUSH", "ZADD", "ZREM", "ZCARD", "ZSCAN", "ZRANGE",
        "ZREVRANGEBYSCORE", "ZREMRANGEBYSCORE", "MEMORY|USAGE", "PUBLISH", "SPUBLISH",
        "SUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "SUNSUBSCRIBE", "GET", "SET", "HGET",
        "HGETALL", "ZSCORE", "PEXPIRE", "ZRANGEBYLEX", "ZREVRANGEBYLEX", "ZREMRANGEBYLEX",
        "ZLEXCOUNT",
    ]  # fmt: skip
    for name in names:
        command = example(name, keys)
        assert command is not None, name
        assert client.execute_command("ACL", "DRYRUN", "default", *command) == b"OK", name
    client.close()


def test_doctor_warns_about_eviction_and_praises_aof(durable_redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(durable_redis_server.url)
    client.config_set("maxmemory", "1gb")
    client.config_set("maxmemory-policy", "allkeys-lru")
    result = invoke_cli(["--url", durable_redis_server.url, "doctor"])
    assert "! eviction: maxmemory-policy allkeys-lru (maxmemory 1073741824) can evict any key" in (
        result.out
    )
    assert "noeviction" in result.out
    assert "✓ persistence: AOF on (appendfsync always)" in result.out
    client.config_set("maxmemory-policy", "volatile-ttl")
    result = invoke_cli(["--url", durable_redis_server.url, "doctor", "--json"])
    eviction = next(c for c in json.loads(result.out) if c["name"] == "eviction")
    assert eviction["status"] == "warn" and "keys with a TTL" in eviction["summary"]


# -- purge progress (issue 17) ------------------------------------------------------------


def _purge_seed(store: ConversationStore, count: int) -> None:
    for i in range(count):
        store.append(f"p-{i}", [Message(role="user", content=f"m{i}")], owner="bulk")


def test_purge_shows_no_progress_when_scripted(chatkeep: Invoke, store: ConversationStore) -> None:
    _purge_seed(store, 30)
    result = chatkeep("purge", "--owner", "bulk", "--yes")
    assert result.code == 0, result.err
    assert result.out == "deleted 30 sessions (30 messages) of owner 'bulk'\n"
    assert result.err == ""


def test_purge_progress_on_request_goes_to_stderr(
    chatkeep: Invoke, store: ConversationStore
) -> None:
    _purge_seed(store, 30)
    result = chatkeep("purge", "--owner", "bulk", "--yes", "--progress")
    assert result.code == 0, result.err
    assert result.out == "deleted 30 sessions (30 messages) of owner 'bulk'\n"
    assert "purging" in result.err and "30/30 sessions" in result.err, result.err


def test_purge_progress_when_stdout_is_a_terminal(
    chatkeep: Invoke, store: ConversationStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _purge_seed(store, 5)
    monkeypatch.setattr(app, "_stdout_is_terminal", lambda: True)
    shown = chatkeep("purge", "--owner", "bulk", "--yes")
    assert shown.code == 0 and "5/5 sessions" in shown.err, shown.err
    _purge_seed(store, 5)
    hidden = chatkeep("purge", "--owner", "bulk", "--yes", "--no-progress")
    assert hidden.code == 0 and hidden.err == "", hidden.err


def test_purge_json_is_clean_json(chatkeep: Invoke, store: ConversationStore) -> None:
    _purge_seed(store, 3)
    result = chatkeep("purge", "--owner", "bulk", "--yes", "--json", "--progress")
    assert result.code == 0, result.err
    data = json.loads(result.out)
    assert data["owner"] == "bulk"
    assert data["sessions"] == 3 and data["messages"] == 3 and data["appeared"] == 0
    assert data["other"] == {}


# -- stats: the TTLs sessions have (issue 17) ----------------------------------------------


def test_stats_reports_the_ttls_sessions_have_not_the_cli_default(
    chatkeep: Invoke, store: ConversationStore
) -> None:
    hour = Message(role="user", content="x")
    for i in range(3):
        store.append(f"hour-{i}", [hour], ttl=3600)
    store.append("day", [hour], ttl=86400)
    store.append("forever", [hour], ttl=None)
    with ConversationStore.from_url(
        store.config.url, key_prefix=store.config.prefix, ttl=2 * 86400
    ) as other:
        other.append("app-default", [hour])  # the writer's default: not stored per session
    data = json.loads(chatkeep("stats", "--json").out)
    ttls = {row["ttl"]: row["sessions"] for row in data["ttls"]}
    assert ttls == {"1h": 3, "1d": 1, "2d": 1, "never": 1}, data["ttls"]
    assert "default_seconds" not in data.get("ttl", {})
    text = chatkeep("stats").out
    assert "1h: 3 sessions" in text and "2d: 1 session" in text and "never: 1 session" in text
    assert "7d" not in text.split("ttl", 1)[1].splitlines()[0]  # the CLI's default is not shown
