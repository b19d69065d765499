"""The ``chatkeep`` command sees LangGraph: checkpoint threads and store namespaces are
listed, shown, exported (by owner too), imported back exactly, and purged by owner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage

from chatkeep import ConfigurationError, ConversationStore, Message
from chatkeep_langgraph import RedisSaver, RedisStore
from tests.adapters.langgraph.helpers import agent_graph, thread
from tests.adapters.langgraph.test_upstream_sqlite_store import CharacterEmbeddings
from tests.cli.conftest import invoke_cli
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis_server

DIMS = 500


def _run(saver: RedisSaver, tid: str, user: str | None, text: str = "hi") -> None:
    configurable: dict[str, Any] = {"thread_id": tid}
    if user is not None:
        configurable["user_id"] = user
    graph = agent_graph(saver, replies=[f"re: {text}"])
    config = {"configurable": configurable, "metadata": {"run_id": f"run-{tid}-{text}"}}
    graph.invoke({"messages": [HumanMessage(text)]}, config)


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _state(saver: RedisSaver, tid: str) -> tuple[Any, Any, Any]:
    found = saver.get_tuple(thread(tid))
    assert found is not None
    return found.checkpoint, found.metadata, found.pending_writes


def test_threads_listed_shown_exported_by_owner_and_imported_back(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    saver = RedisSaver(redis_server.url, key_prefix=prefix, fallback="raise")
    store = ConversationStore.from_url(redis_server.url, key_prefix=prefix, fallback="raise")
    _run(saver, "t1", "u1", "first")
    _run(saver, "t1", "u1", "second")
    _run(saver, "t2", "u2")
    _run(saver, "t3", "u1")
    _run(saver, "t4", None)
    store.append("chat", [Message(role="user", content="hello")], owner="u1")
    base = ["--url", redis_server.url, "--prefix", prefix]

    listed = invoke_cli([*base, "sessions", "--kind", "langgraph-threads", "--json"])
    assert listed.code == 0, listed.err
    rows = {row["id"]: row for row in json.loads(listed.out)}
    assert set(rows) == {"t1", "t2", "t3", "t4"}
    assert (rows["t1"]["owner"], rows["t2"]["owner"], rows["t4"]["owner"]) == ("u1", "u2", None)
    assert rows["t1"]["count"] > rows["t3"]["count"] > 0 and rows["t1"]["expires_at"]
    mine = invoke_cli([*base, "sessions", "--kind", "langgraph-threads", "--owner", "u1"])
    assert "t1" in mine.out and "t3" in mine.out and "t2" not in mine.out, mine.out
    everything = invoke_cli([*base, "sessions", "--kind", "all", "--owner", "u1", "--json"])
    kinds = sorted((row["kind"], row["id"]) for row in json.loads(everything.out))
    assert kinds == [
        ("conversations", "chat"),
        ("langgraph-threads", "t1"),
        ("langgraph-threads", "t3"),
    ]

    shown = invoke_cli([*base, "show", "t1", "--kind", "langgraph-threads", "--json"])
    assert shown.code == 0, shown.err
    view = json.loads(shown.out)
    assert view["owner"] == "u1" and len(view["checkpoints"]) == rows["t1"]["count"]
    texts = [m["content"] for m in view["latest_values"]["messages"]]
    assert texts == ["first", "re: first", "second", "re: second"]
    text = invoke_cli([*base, "show", "t1", "--kind", "langgraph-threads"])
    assert text.code == 0 and "re: second" in text.out
    missing = invoke_cli([*base, "show", "nope", "--kind", "langgraph-threads"])
    assert missing.code == 4

    before = {tid: _state(saver, tid) for tid in ("t1", "t3")}
    exported = tmp_path / "u1.jsonl"
    done = invoke_cli([*base, "export", "--owner", "u1", "-o", str(exported)])
    assert done.code == 0, done.err
    assert "2 LangGraph threads" in done.err
    lines = _lines(exported)
    threads = sorted(line["id"] for line in lines if line.get("kind") == "langgraph-threads")
    assert threads == ["t1", "t3"]  # the owner's only
    assert any(line.get("session") == "chat" for line in lines)
    assert lines[-1]["chatkeep_export_end"]["data"] == {"langgraph-threads": 2}

    purged = invoke_cli([*base, "purge", "--owner", "u1", "--yes"])
    assert purged.code == 0, purged.err
    assert saver.get_tuple(thread("t1")) is None and store.info("chat") is None

    imported = invoke_cli([*base, "import", str(exported)])
    assert imported.code == 0, imported.err
    assert "2 LangGraph threads" in imported.err
    for tid in ("t1", "t3"):
        assert _state(saver, tid) == before[tid]
    assert [m.text for m in store.messages("chat")] == ["hello"]
    owned = {
        t.config["configurable"]["thread_id"] for t in saver.list(None, filter={"user_id": "u1"})
    }
    assert owned == {"t1", "t3"}
    # the restored thread goes on where it was
    _run(saver, "t1", "u1", "third")
    values = saver.get_tuple(thread("t1"))
    assert values is not None
    assert [m.content for m in values.checkpoint["channel_values"]["messages"]][-2:] == [
        "third",
        "re: third",
    ]
    # the run index came back too: delete_for_runs finds the restored checkpoints
    run_id = before["t3"][1].get("run_id")
    assert run_id is not None
    saver.delete_for_runs([run_id])
    assert saver.get_tuple(thread("t3")) is None

    # into another prefix: the same threads
    other = prefix + "copy"
    again = invoke_cli(["--url", redis_server.url, "--prefix", other, "import", str(exported)])
    assert again.code == 0, again.err
    with RedisSaver(redis_server.url, key_prefix=other, fallback="raise") as copy:
        assert _state(copy, "t1") == before["t1"]

    deleted = invoke_cli([*base, "delete", "t2", "--kind", "langgraph-threads", "--yes"])
    assert deleted.code == 0 and saver.get_tuple(thread("t2")) is None
    saver.close()
    store.close()


def test_store_namespaces_have_owners_and_follow_them(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    embeddings = CharacterEmbeddings(dims=DIMS)
    index: Any = {"dims": DIMS, "embed": embeddings, "fields": ["text"]}
    by_position = RedisStore(
        redis_server.url, key_prefix=prefix, fallback="raise", index=index, namespace_owner=1
    )
    fixed = RedisStore(redis_server.url, key_prefix=prefix, fallback="raise", owner="u1")
    anonymous = RedisStore(redis_server.url, key_prefix=prefix, fallback="raise")
    by_position.put(("memories", "u1"), "likes", {"text": "likes tea"})
    by_position.put(("memories", "u1"), "city", {"text": "lives in Lyon"}, ttl=60)
    by_position.put(("memories", "u2"), "likes", {"text": "likes coffee"})
    fixed.put(("prefs",), "lang", {"text": "fr"})
    anonymous.put(("shared",), "motd", {"text": "hello"})
    base = ["--url", redis_server.url, "--prefix", prefix]

    listed = invoke_cli([*base, "sessions", "--kind", "langgraph-store", "--json"])
    rows = {row["id"]: (row["owner"], row["count"]) for row in json.loads(listed.out)}
    assert rows == {
        "memories.u1": ("u1", 2),
        "memories.u2": ("u2", 1),
        "prefs": ("u1", 1),
        "shared": (None, 1),
    }
    footer = invoke_cli([*base, "sessions", "--owner", "u1"])
    assert "2 LangGraph store namespaces" in footer.out, footer.out
    shown = json.loads(
        invoke_cli([*base, "show", "memories.u1", "--kind", "langgraph-store", "--json"]).out
    )
    assert {i["key"]: i["value"] for i in shown["items"]} == {
        "likes": {"text": "likes tea"},
        "city": {"text": "lives in Lyon"},
    }
    assert all(i["embedded"] == ["text"] for i in shown["items"])

    exported = tmp_path / "u1.jsonl"
    assert invoke_cli([*base, "export", "--owner", "u1", "-o", str(exported)]).code == 0
    ids = sorted(line["id"] for line in _lines(exported) if line.get("kind") == "langgraph-store")
    assert ids == ["memories.u1", "prefs"]
    city_ttl = by_position.memory.ttl(("memories", "u1"), "city")
    assert city_ttl is not None and city_ttl <= 3600

    purged = invoke_cli([*base, "purge", "--owner", "u1", "--yes"])
    assert purged.code == 0, purged.err
    assert "deleted 2 LangGraph store namespaces of owner 'u1'" in purged.out
    assert by_position.get(("memories", "u1"), "likes") is None
    assert fixed.get(("prefs",), "lang") is None
    assert by_position.get(("memories", "u2"), "likes") is not None  # another owner's
    assert ("memories", "u1") not in by_position.list_namespaces()

    assert invoke_cli([*base, "import", str(exported)]).code == 0
    restored = by_position.get(("memories", "u1"), "likes")
    assert restored is not None and restored.value == {"text": "likes tea"}
    ttl = by_position.memory.ttl(("memories", "u1"), "city")
    assert ttl is not None and 0 < ttl <= 3600  # the TTL it had left, not the default
    hits = by_position.search(("memories",), query="likes tea", limit=1)
    assert hits[0].key == "likes" and hits[0].namespace == ("memories", "u1")
    assert hits[0].score is not None  # the embeddings came back
    again = invoke_cli([*base, "sessions", "--kind", "langgraph-store", "--owner", "u1", "--json"])
    assert sorted(row["id"] for row in json.loads(again.out)) == ["memories.u1", "prefs"]
    for one in (by_position, fixed, anonymous):
        one.close()


def test_store_owner_options_are_checked() -> None:
    with pytest.raises(ConfigurationError):
        RedisStore("memory://", owner="u1", namespace_owner=1)
    with pytest.raises(ConfigurationError):
        RedisStore("memory://", namespace_owner=-1)
    store = RedisStore("memory://", namespace_owner=lambda ns: ns[-1] if ns[0] == "users" else None)
    store.put(("users", "u9"), "k", {"a": 1})
    entry = store.memory.get(("langgraph-namespaces",), "users.u9")
    assert isinstance(entry.pop("at"), int)  # when it was registered (ms)
    assert entry == {"ns": ["users", "u9"], "owner": "u9"}
    store.close()
