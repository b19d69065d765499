"""``chatkeep rekey``: every record of a prefix re-encrypted under the current key."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import redis

from chatkeep import (
    ConfigurationError,
    ConversationStore,
    MemoryStore,
    ResultCache,
    encode_record,
)
from chatkeep.cli.admin import Admin, RekeyResult
from chatkeep.config import StoreConfig
from tests.cli.conftest import Invoke, invoke_cli, seed
from tests.support.messages import msg

pytestmark = pytest.mark.redis_server

K1, K2 = bytes(range(32)), bytes(range(50, 82))
OLD_AND_NEW = f"k2:{base64.b64encode(K2).decode()},k1:{base64.b64encode(K1).decode()}"


def _key_ids(url: str, prefix: str, sessions: Any) -> list[bytes]:
    if "cluster" in url:
        first = url.split("://", 1)[1].split(",", maxsplit=1)[0]
        client: Any = redis.RedisCluster.from_url(f"redis://{first}")
    else:
        client = redis.Redis.from_url(url)
    found = []
    for sid in sessions:
        for record in client.lrange(f"{prefix}:{{{sid}}}:m", 0, -1):
            at = record.find(b'"k":"')
            found.append(record[at + 5 : record.index(b'"', at + 5)] if at > 0 else b"")
    client.close()
    return found


def _seed_mixed(url: str, prefix: str) -> dict[str, list[Any]]:
    with ConversationStore.from_url(url, key_prefix=prefix, fallback="raise") as plain:
        written = seed(plain)
    with ConversationStore.from_url(
        url, key_prefix=prefix, fallback="raise", encryption_keys={"k1": K1}, compression="zlib",
        compression_threshold=10,
    ) as old:  # fmt: skip
        for sid in written:
            extra = [msg(f"under k1 in {sid} " * 5)]
            old.append(sid, extra)
            written[sid] = written[sid] + extra
    return written


def test_rekey_rewrites_old_and_plain_records_under_the_current_key(
    chatkeep: Invoke, redis_server: Any, prefix: str
) -> None:
    written = _seed_mixed(redis_server.url, prefix)
    assert set(_key_ids(redis_server.url, prefix, written)) == {b"", b"k1"}
    result = chatkeep("rekey", env={"CHATKEEP_ENCRYPTION_KEYS": OLD_AND_NEW})
    assert result.code == 0, result.err
    count = sum(map(len, written.values()))
    rewrote = f"{count} records and 0 memory and cache values re-encrypted under key 'k2'"
    assert f"4 sessions: {rewrote}, 0 already" in result.err
    assert set(_key_ids(redis_server.url, prefix, written)) == {b"k2"}
    with ConversationStore.from_url(
        redis_server.url, key_prefix=prefix, encryption_keys={"k2": K2}, strict=True
    ) as new_only:
        for sid, messages in written.items():
            assert new_only.messages(sid) == messages
            info = new_only.info(sid)
            assert info is not None and info.message_count == len(messages)
    again = chatkeep("rekey", env={"CHATKEEP_ENCRYPTION_KEYS": OLD_AND_NEW})
    assert again.code == 0
    nothing = "0 records and 0 memory and cache values re-encrypted under key 'k2'"
    assert f"{nothing}, {count} already under it" in again.err


def test_rekey_without_keys_is_a_clear_error(chatkeep: Invoke) -> None:
    result = chatkeep("rekey")
    assert result.code == 2  # a configuration error, as for every command
    assert "CHATKEEP_ENCRYPTION_KEYS" in result.err


def test_records_under_a_key_not_given_are_left_and_reported(
    chatkeep: Invoke, redis_server: Any, prefix: str
) -> None:
    written = _seed_mixed(redis_server.url, prefix)
    new_only = f"k2:{base64.b64encode(K2).decode()}"
    result = chatkeep("rekey", env={"CHATKEEP_ENCRYPTION_KEYS": new_only})
    assert result.code == 3
    assert "4 unreadable" in result.err
    assert sorted(set(_key_ids(redis_server.url, prefix, written))) == [b"k1", b"k2"]


def test_rekey_resumes_from_a_cursor_and_reports_progress(redis_server: Any, prefix: str) -> None:
    with ConversationStore.from_url(
        redis_server.url, key_prefix=prefix, fallback="raise", encryption_keys={"k1": K1}
    ) as old:
        for i in range(300):
            old.append(f"s{i}", [msg(f"m{i}")])
    config = StoreConfig.create(url=redis_server.url, prefix=prefix, encryption_keys=OLD_AND_NEW)
    seen: list[RekeyResult] = []
    with Admin(config) as admin:
        result = admin.rekey(progress=lambda r: seen.append(RekeyResult(**vars(r))))
    assert (result.sessions, result.rewritten, result.cursor) == (300, 300, 0)
    assert [r.sessions for r in seen if r.cursor == 0][-1] == 300
    assert len(seen) > 300  # once per session, and once per page of the index


def test_rekey_on_a_cluster(redis_cluster: Any, prefix: str) -> None:
    url = redis_cluster.url
    written = _seed_mixed(url, prefix)
    with MemoryStore.from_url(url, key_prefix=prefix, encryption_keys={"k1": K1}) as memory:
        for i in range(20):  # spread over the nodes
            memory.put((f"u{i}",), "k", {"i": i})
    result = invoke_cli(
        ["--url", url, "--prefix", prefix, "rekey"],
        env={"CHATKEEP_ENCRYPTION_KEYS": OLD_AND_NEW},
    )
    assert result.code == 0, result.err
    assert set(_key_ids(url, prefix, written)) == {b"k2"}
    assert "and 20 memory and cache values re-encrypted" in result.err
    with ConversationStore.from_url(url, key_prefix=prefix, encryption_keys={"k2": K2}) as reader:
        assert {sid: reader.messages(sid) for sid in written} == written
    with MemoryStore.from_url(url, key_prefix=prefix, encryption_keys={"k2": K2}) as memory:
        assert [memory.get((f"u{i}",), "k") for i in range(20)] == [{"i": i} for i in range(20)]


def test_rekey_refuses_memory_urls() -> None:
    with pytest.raises(ConfigurationError):
        Admin(StoreConfig.create(url="memory://", encryption_keys=OLD_AND_NEW))


def test_show_export_and_import_of_sealed_sessions(
    chatkeep: Invoke, redis_server: Any, prefix: str, tmp_path: Any
) -> None:
    written = _seed_mixed(redis_server.url, prefix)
    keys = {"CHATKEEP_ENCRYPTION_KEYS": OLD_AND_NEW}
    shown = chatkeep("show", "chat-42", "--json", env=keys)
    assert shown.code == 0, shown.err
    assert "under k1 in chat-42" in shown.out and "Weather in [Paris]?" in shown.out
    without = chatkeep("show", "chat-42")
    assert without.code == 2 and "'k1'" in without.err  # the key is missing: said so
    exported = tmp_path / "all.jsonl"
    done = chatkeep("export", "-o", str(exported), env=keys)
    assert done.code == 0, done.err
    text = exported.read_text()
    assert text.count('"record":') == sum(map(len, written.values()))
    assert "under k1 in chat-42" in text and '"p":"' not in text  # opened, as plain records
    other = prefix + "x"
    imported = invoke_cli(
        ["--url", redis_server.url, "--prefix", other, "import", str(exported)],
        env={"CHATKEEP_ENCRYPTION_KEYS": f"k9:{base64.b64encode(K1).decode()}"},
    )
    assert imported.code == 0, imported.err
    assert set(_key_ids(redis_server.url, other, written)) == {b"k9"}
    with ConversationStore.from_url(
        redis_server.url, key_prefix=other, encryption_keys={"k9": K1}, strict=True
    ) as reader:
        assert {sid: reader.messages(sid) for sid in written} == written


def test_rekey_rewrites_memory_and_cache_values(
    chatkeep: Invoke, redis_server: Any, prefix: str
) -> None:
    old = {"url": redis_server.url, "key_prefix": prefix, "fallback": "raise"}
    with MemoryStore.from_url(**old) as plain, MemoryStore.from_url(
        **old, encryption_keys={"k1": K1}
    ) as under_k1:  # fmt: skip
        plain.put(("u1", "odd:{ns}"), "a b", {"note": "plain"})
        under_k1.put(("u1", "notes"), "k", {"note": "under k1", "raw": b"\x00"})
    with ResultCache.from_url(**old, namespace="tools") as cache:
        cache.set({"q": 1}, ["plain"], ttl=600)
    result = chatkeep("rekey", env={"CHATKEEP_ENCRYPTION_KEYS": OLD_AND_NEW})
    assert result.code == 0, result.err
    assert "0 records and 3 memory and cache values re-encrypted under key 'k2'" in result.err
    client = redis.Redis.from_url(redis_server.url)
    assert (
        590
        < client.ttl(f"{prefix}:cache:tools:{{{ResultCache(url='memory://').key({'q': 1})}}}")
        <= 600
    )
    for key in client.scan_iter(match=f"{prefix}:mem:*:v:*"):
        assert client.hget(key, "d")[:7] == b"\x00ck1-\x02k"
    client.close()
    new = {**old, "encryption_keys": {"k2": K2}}
    with MemoryStore.from_url(**new) as memory, ResultCache.from_url(**new, namespace="tools") as c:
        assert memory.get(("u1", "odd:{ns}"), "a b") == {"note": "plain"}
        assert memory.get(("u1", "notes"), "k") == {"note": "under k1", "raw": b"\x00"}
        assert c.get({"q": 1}) == ["plain"]
    again = chatkeep("rekey", env={"CHATKEEP_ENCRYPTION_KEYS": OLD_AND_NEW})
    assert (
        "0 records and 0 memory and cache values re-encrypted under key 'k2', 3 already"
        in again.err
    )


def test_a_record_written_before_token_counts_keeps_the_count_the_scripts_gave_it(
    chatkeep: Invoke, redis_server: Any, prefix: str
) -> None:
    old_record = encode_record(msg("written before token counts " * 10))  # no "tk"
    client = redis.Redis.from_url(redis_server.url)
    client.rpush(f"{prefix}:{{old}}:m", old_record)
    client.zadd(f"{prefix}:idx", {"old": "inf"})
    assert chatkeep("rekey", env={"CHATKEEP_ENCRYPTION_KEYS": OLD_AND_NEW}).code == 0
    (sealed,) = client.lrange(f"{prefix}:{{old}}:m", 0, -1)
    client.close()
    assert sealed.startswith(b'{"v":1,"id":"')
    assert f'"tk":{(len(old_record) + 3) // 4},"role":"user"'.encode() in sealed


def test_memory_and_cache_kinds_of_sealed_stores_are_shown_exported_and_imported(
    chatkeep: Invoke, redis_server: Any, prefix: str, tmp_path: Any
) -> None:
    sealed = {"url": redis_server.url, "key_prefix": prefix, "encryption_keys": {"k1": K1}}
    with MemoryStore.from_url(**sealed) as memory, ResultCache.from_url(
        **sealed, namespace="tools"
    ) as cache:  # fmt: skip
        memory.put(("user", "u1"), "profile", {"name": "Ada", "raw": b"\x00"})
        cache.set({"q": 1}, ["swordfish"])
    keys = {"CHATKEEP_ENCRYPTION_KEYS": f"k1:{base64.b64encode(K1).decode()}"}
    shown = chatkeep("show", "tools", "--kind", "cache", "--json", env=keys)
    assert shown.code == 0, shown.err
    assert "swordfish" in shown.out
    profile = chatkeep("show", "user:u1", "--kind", "memory", "--json", env=keys)
    assert profile.code == 0 and "Ada" in profile.out, profile.err
    exported = tmp_path / "kinds.jsonl"
    done = chatkeep("export", "--kind", "cache", "--kind", "memory", "-o", str(exported), env=keys)
    assert done.code == 0, done.err
    assert "swordfish" in exported.read_text()
    for kind, name in (("cache", "tools"), ("memory", "user:u1")):
        assert chatkeep("delete", name, "--kind", kind, "--yes", env=keys).code == 0
    assert chatkeep("import", str(exported), env=keys).code == 0
    client = redis.Redis.from_url(redis_server.url)
    stored = b"".join(
        client.get(k) or b"" for k in client.scan_iter(match=f"{prefix}:cache:*:{{*}}")
    )
    client.close()
    assert stored and b"swordfish" not in stored
    with MemoryStore.from_url(**sealed) as memory, ResultCache.from_url(
        **sealed, namespace="tools"
    ) as cache:  # fmt: skip
        assert memory.get(("user", "u1"), "profile") == {"name": "Ada", "raw": b"\x00"}
        assert cache.get({"q": 1}) == ["swordfish"]


def test_rekey_rewrites_embeddings_with_their_values(
    chatkeep: Invoke, redis_server: Any, prefix: str
) -> None:
    """A MemoryStore's embeddings are sealed with the values (field e): rekey moves
    them to the current key too, so the old key can be dropped and search still works."""

    def embed(texts: list[str]) -> list[list[float]]:
        return [[float("tea" in t), float("coffee" in t), 0.01] for t in texts]

    options: dict[str, Any] = {"url": redis_server.url, "key_prefix": prefix, "embed": embed}
    with MemoryStore.from_url(**options, encryption_keys={"k1": K1}) as memory:
        memory.put(("user", "u1"), "a", "green tea")
        memory.put(("user", "u1"), "b", "black coffee")
    result = chatkeep("rekey", env={"CHATKEEP_ENCRYPTION_KEYS": OLD_AND_NEW})
    assert result.code == 0, result.err
    client = redis.Redis.from_url(redis_server.url)
    try:
        for key in client.scan_iter(match=f"{prefix}:mem:*:v:*"):
            for field in (b"d", b"e"):
                stored = client.hget(key, field)
                assert stored[:4] == b"\x00ck1" and stored[6 : 6 + stored[5]] == b"k2", field
    finally:
        client.close()
    with MemoryStore.from_url(**options, encryption_keys={"k2": K2}) as memory:
        assert [hit.key for hit in memory.search(("user", "u1"), "tea", limit=1)] == ["a"]
