"""Long-term memory (MemoryStore) and result caches in the ``chatkeep`` command:
listed, shown, exported, imported, deleted; user memory purged with its owner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chatkeep import ConversationStore, MemoryStore, Message, ResultCache
from tests.cli.conftest import Invoke
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis_server


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def memory(redis_server: RedisServer, prefix: str) -> Any:
    with MemoryStore.from_url(redis_server.url, prefix=prefix, fallback="raise") as m:
        yield m


def test_memory_namespaces_listed_shown_exported_purged_and_imported(
    chatkeep: Invoke, memory: MemoryStore, store: ConversationStore, tmp_path: Path
) -> None:
    memory.put(("user", "u1"), "profile", {"name": "Ada", "avatar": b"\x00\xff"})
    memory.put(("user", "u1"), "mood", "curious", ttl=600)
    memory.put(("user", "u2"), "profile", {"name": "Bob"})
    memory.put(("knowledge", "a:b c"), "fact", [1, 2, 3], ttl=None)
    store.append("chat", [Message(role="user", content="hi")], owner="u1")

    listed = chatkeep("sessions", "--kind", "memory", "--json")
    assert listed.code == 0, listed.err
    rows = {r["id"]: (r["owner"], r["count"]) for r in json.loads(listed.out)}
    assert rows == {
        "user:u1": ("u1", 2),
        "user:u2": ("u2", 1),
        "knowledge:a%3Ab%20c": (None, 1),
    }
    table = chatkeep("sessions", "--kind", "memory", "--owner", "u1")
    assert "user:u1" in table.out and "user:u2" not in table.out and "2 values" in table.out
    assert "1 long-term memory namespace " in chatkeep("sessions", "--owner", "u1").out

    shown = json.loads(chatkeep("show", "user:u1", "--kind", "memory", "--json").out)
    values = {i["key"]: i["value"] for i in shown["items"]}
    assert values == {"profile": {"name": "Ada", "avatar": {"base64": "AP8="}}, "mood": "curious"}
    assert chatkeep("show", "knowledge:a%3Ab%20c", "--kind", "memory").code == 0
    assert chatkeep("show", "user:nobody", "--kind", "memory").code == 4

    exported = tmp_path / "u1.jsonl"
    assert chatkeep("export", "--owner", "u1", "-o", str(exported)).code == 0
    ids = sorted(line["id"] for line in _lines(exported) if line.get("kind") == "memory")
    assert ids == ["user:u1"]  # the owner's only; caches belong to no one

    purged = chatkeep("purge", "--owner", "u1", "--yes")
    assert purged.code == 0, purged.err
    assert "deleted 1 long-term memory namespace of owner 'u1'" in purged.out
    assert memory.get(("user", "u1"), "profile") is None
    assert memory.get(("user", "u2"), "profile") == {"name": "Bob"}

    imported = chatkeep("import", str(exported))
    assert imported.code == 0, imported.err
    assert memory.get(("user", "u1"), "profile") == {"name": "Ada", "avatar": b"\x00\xff"}
    mood_ttl = memory.ttl(("user", "u1"), "mood")
    assert mood_ttl is not None and 0 < mood_ttl <= 600  # what it had left
    assert store.messages("chat")[0].text == "hi"

    deleted = chatkeep("delete", "knowledge:a%3Ab%20c", "--kind", "memory", "--yes")
    assert deleted.code == 0, deleted.err
    assert memory.get(("knowledge", "a:b c"), "fact") is None


def test_caches_listed_shown_exported_cleared_and_imported(
    chatkeep: Invoke, redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    tools = ResultCache.from_url(
        redis_server.url, prefix=prefix, namespace="tools", ttl=3600, fallback="raise"
    )
    forever = ResultCache.from_url(
        redis_server.url, prefix=prefix, namespace="embeddings", ttl=None, fallback="raise"
    )
    tools.set({"tool": "weather", "city": "Paris"}, {"temp": 18})
    tools.set({"tool": "weather", "city": "Lyon"}, {"temp": 21, "raw": b"\x01"})
    forever.set("hello", [0.1, 0.2])

    rows = {
        r["id"]: r["count"]
        for r in json.loads(chatkeep("sessions", "--kind", "cache", "--json").out)
    }
    assert rows == {"tools": 2, "embeddings": 1}
    assert json.loads(chatkeep("sessions", "--kind", "cache", "--owner", "u1", "--json").out) == []
    shown = json.loads(chatkeep("show", "tools", "--kind", "cache", "--json").out)
    assert sorted(e["value"]["temp"] for e in shown["entries"]) == [18, 21]
    assert all(0 < e["expires_in_seconds"] <= 3600 for e in shown["entries"])

    exported = tmp_path / "caches.jsonl"
    done = chatkeep("export", "--kind", "cache", "-o", str(exported))
    assert done.code == 0, done.err
    assert [line.get("kind") for line in _lines(exported)[1:-1]] == ["cache", "cache"]

    assert chatkeep("delete", "tools", "--kind", "cache", "--yes").code == 0
    assert tools.get({"tool": "weather", "city": "Paris"}) is None
    assert forever.get("hello") == [0.1, 0.2]

    assert chatkeep("import", str(exported)).code == 0
    assert tools.get({"tool": "weather", "city": "Paris"}) == {"temp": 18}
    assert tools.get({"tool": "weather", "city": "Lyon"}) == {"temp": 21, "raw": b"\x01"}
    again = json.loads(chatkeep("show", "tools", "--kind", "cache", "--json").out)
    assert all(0 < e["expires_in_seconds"] <= 3600 for e in again["entries"])  # TTLs kept
    assert tools.clear() == 2  # the restored entries are indexed: clear() finds them
    tools.close()
    forever.close()


def test_unknown_kind_is_a_usage_error(chatkeep: Invoke) -> None:
    result = chatkeep("sessions", "--kind", "nope")
    assert result.code == 2
    assert "unknown kind 'nope'" in result.err and "memory" in result.err and "cache" in result.err
    bad = chatkeep("export", "--kind", "nope")
    assert bad.code == 2 and bad.out == ""


def test_listing_drops_registry_entries_of_emptied_namespaces(
    chatkeep: Invoke,
    memory: MemoryStore,
    redis_server: RedisServer,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chatkeep.cli import kinds

    memory.put(("agent", "a1"), "k", 1)
    memory.put(("agent", "a2"), "k", 2)
    memory.delete(("agent", "a1"), "k")
    raw = redis_server.client()
    registry = f"{prefix}:mem:namespaces"
    assert json.loads(chatkeep("sessions", "--kind", "memory", "--json").out)[0]["id"] == "agent:a2"
    assert raw.zcard(registry) == 2  # written a moment ago: kept (a write may be racing)
    monkeypatch.setattr(kinds, "_stale", lambda last_write_ms: True)
    assert len(json.loads(chatkeep("sessions", "--kind", "memory", "--json").out)) == 1
    assert raw.zrange(registry, 0, -1) == [b"agent:a2"]
    raw.close()


def test_a_bad_item_line_writes_nothing_and_the_rest_is_imported(
    chatkeep: Invoke, memory: MemoryStore, tmp_path: Path
) -> None:
    header = {"chatkeep_export": 1, "record_version": 1, "prefix": "x"}
    good = {"key": "a", "value": 1, "tagged": False, "ttl": None}
    too_big = {"key": "b", "value": "x" * 2_000_000, "tagged": False, "ttl": None}
    lines = [
        header,
        {"kind": "memory", "id": "user:u5", "owner": "u5", "data": {"items": [good, too_big]}},
        {"kind": "memory", "id": "user:u6", "owner": "u6", "data": {"items": [good]}},
        {"kind": "memory", "id": "user:u7", "owner": "u7", "data": "nope"},
        {"kind": "no-such-kind", "id": "x", "owner": None, "data": {}},
        {"chatkeep_export_end": {"sessions": 0, "messages": 0}},
    ]
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = chatkeep("import", str(path))
    assert result.code == 3, result.err
    assert "line 2: memory:" in result.err and "above the limit" in result.err, result.err
    assert "line 4: data: missing or not a JSON object" in result.err
    assert "line 5: kind 'no-such-kind' is unknown here" in result.err
    assert memory.get(("user", "u5"), "a") is None  # nothing of the bad line
    assert memory.get(("user", "u6"), "a") == 1
