"""Compression and encryption at rest through an outage: the fallback's durable
journal file (sqlite) and its mirror hold conversation records and memory values
sealed, and the replay writes them to Redis as they were sealed."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from chatkeep import ConversationStore, MemoryStore, SerializationError
from tests.support.faults import FAST, raw_records, until_recovered
from tests.support.messages import msg, texts
from tests.support.servers import RedisServer, TcpProxy

pytestmark = pytest.mark.redis_server

KEYS = {"k1": bytes(range(32))}
SECRET = "the launch code is swordfish"


def _journal_bytes(path: Path) -> bytes:
    """What the journal file holds, with every base64 string in its entries decoded
    (the journal writes records and values in base64)."""
    found = b"".join(file.read_bytes() for file in path.parent.glob(path.name + "*"))

    def walk(value: Any) -> None:
        nonlocal found
        if isinstance(value, str):
            try:
                found += base64.b64decode(value, validate=True)
            except ValueError:
                found += value.encode()
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)

    with sqlite3.connect(path) as db:
        for (op,) in db.execute("SELECT op FROM entries"):
            walk(json.loads(op))
    return found


@pytest.mark.parametrize("sealed", [True, False])
def test_what_the_journal_file_holds(
    proxy: TcpProxy, prefix: str, tmp_path: Path, sealed: bool
) -> None:
    journal = tmp_path / "journal.db"
    options: dict[str, Any] = dict(FAST, journal_path=str(journal))
    if sealed:
        options["encryption_keys"] = KEYS
    store = ConversationStore.from_url(proxy.url, key_prefix=prefix, **options)
    memory = MemoryStore.from_url(proxy.url, key_prefix=prefix, **options)
    proxy.cut()
    store.append("s", [msg(SECRET)])
    memory.put(("u1", "notes"), "a", {"note": SECRET})
    held = _journal_bytes(journal)
    assert held.count(b"swordfish") == (0 if sealed else 2)
    memory.close()
    store.close()


def test_the_durable_journal_keeps_records_and_values_sealed(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str, tmp_path: Path
) -> None:
    journal = tmp_path / "journal.db"
    options: dict[str, Any] = dict(FAST, journal_path=str(journal), encryption_keys=KEYS)
    store = ConversationStore.from_url(proxy.url, key_prefix=prefix, **options)
    memory = MemoryStore.from_url(proxy.url, key_prefix=prefix, **options)
    store.append("s", [msg("before")])
    proxy.cut()
    store.append("s", [msg(SECRET), msg("swordfish again " * 100, "assistant")])
    memory.put(("u1", "notes"), "a", {"note": SECRET})
    assert store.status().pending_replay >= 1
    assert texts(store.messages("s")) == ["before", SECRET, "swordfish again " * 100]
    assert texts(store.search("s", "SWORDFISH")) == ["swordfish again " * 100, SECRET]
    assert memory.get(("u1", "notes"), "a") == {"note": SECRET}
    assert b"swordfish" not in _journal_bytes(journal)
    proxy.restore()
    until_recovered(lambda: store.messages("s", last=1), store)
    until_recovered(lambda: memory.get(("u1", "notes"), "a"), memory)
    raw = raw_records(fresh_redis_server.port, prefix, "s")
    assert len(raw) == 3 and all(b'"k":"k1"' in record for record in raw)
    assert b"swordfish" not in b"".join(raw)
    reader = ConversationStore.from_url(
        fresh_redis_server.url, key_prefix=prefix, fallback="raise", encryption_keys=KEYS
    )
    assert texts(reader.messages("s")) == ["before", SECRET, "swordfish again " * 100]
    values = MemoryStore.from_url(
        fresh_redis_server.url, key_prefix=prefix, fallback="raise", encryption_keys=KEYS
    )
    assert values.get(("u1", "notes"), "a") == {"note": SECRET}
    for one in (reader, values, memory, store):
        one.close()


def test_a_journal_written_under_a_key_replays_for_a_process_with_the_keys(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str, tmp_path: Path
) -> None:
    journal = str(tmp_path / "journal.db")
    store = ConversationStore.from_url(
        proxy.url, key_prefix=prefix, journal_path=journal, encryption_keys=KEYS, **FAST
    )
    store.append("s", [msg("first")])
    proxy.cut()
    store.append("s", [msg(SECRET)])
    store.close()
    proxy.restore()
    # Replay carries records as they were sealed: a process without the keys replays
    # them unread, and only a reader with the key opens them.
    later = ConversationStore.from_url(proxy.url, key_prefix=prefix, journal_path=journal, **FAST)
    until_recovered(lambda: later.append("t", [msg("x")]), later)
    assert later.status().pending_replay == 0
    wrong = ConversationStore.from_url(
        fresh_redis_server.url, key_prefix=prefix, encryption_keys={"k1": bytes(32)}, strict=True
    )
    with pytest.raises(SerializationError):
        wrong.messages("s")
    right = ConversationStore.from_url(
        fresh_redis_server.url, key_prefix=prefix, encryption_keys=KEYS
    )
    assert texts(right.messages("s")) == ["first", SECRET]
    for one in (right, wrong, later):
        one.close()
