"""Issue 14, "Also": data that made a session unreadable or a call lie, on real servers.

(a) a poison record (real bytes and a dict shaped like the bytes tag); records that
    cannot be decoded are skipped and counted by messages(), pop() and recent()
    (strict=True: SerializationError), never a raw binascii.Error;
(b) an invalid TTL raises InvalidArgumentError and writes nothing;
(c) one depth limit: what a write accepts, a read decodes (200-250 levels too);
(d) one bad hash field or wrong-typed key does not break everyone's listing; a
    wrong-typed index is a clear BackendError;
(e) a large insert is linear (Redis's own command statistics) and does not starve
    other clients.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from chatkeep import (
    BackendError,
    ConversationStore,
    InvalidArgumentError,
    Message,
    SerializationError,
    codec,
)
from tests.support.faults import raw_records
from tests.support.messages import msg
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis_server

POISON = {"raw": b"\x89PNG", "api_response": {"$b64": "abc"}}


@pytest.fixture
def store(redis_server: RedisServer, prefix: str) -> Iterator[ConversationStore]:
    made = ConversationStore.from_url(redis_server.url, key_prefix=prefix, probe_interval=60)
    yield made
    made.close()


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis_server.client()
    yield client
    client.close()


def keys_of(admin: redis.Redis, prefix: str) -> list[bytes]:
    return sorted(admin.scan_iter(match=f"{prefix}:*", count=1000))


# -- (a) poison records ---------------------------------------------------------------------


def test_a_poison_record_round_trips_through_redis(
    store: ConversationStore, redis_server: RedisServer, prefix: str
) -> None:
    poison = Message(role="tool", content="ok", tool_call_id="c1", native={"artifact": POISON})
    lookalike = msg("u", metadata={"u": {"$b64": "aGk="}})
    both = msg("b", metadata={"u": {"$b64": "aGk="}, "real": b"hi"})
    store.append("s", [msg("before"), poison, lookalike, both])
    assert store.messages("s") == [store.messages("s")[0], poison, lookalike, both]
    assert store.messages("s")[2].metadata == {"u": {"$b64": "aGk="}}  # not b"hi"
    assert [r.title for r in store.recent()] == ["before"]
    assert store.pop("s") == both
    assert store.pop("s") == lookalike
    assert store.pop("s") == poison
    assert store.status().skipped_records == 0
    # What Redis holds is what any reader (another process, the CLI) decodes.
    assert [codec.decode(r).text for r in raw_records(redis_server.port, prefix, "s")] == ["before"]


BAD_RECORDS = [
    # tagged by this version, base64 broken
    b'{"v":1,"id":"bad1","role":"user","content":"x","ts":1,"meta":{"x":{"$b64":"abc"}},"b":2}',
    # forged escape
    b'{"v":1,"id":"bad2","role":"user","content":"x","ts":1,"meta":{"x":{"$esc":5}},"b":2}',
    b"\x80 not json",
]
# The poison record as the first format wrote it: readable now.
LEGACY = (
    b'{"v":1,"id":"old","role":"tool","content":"legacy","ts":1,'
    b'"native":{"raw":{"$b64":"iVBORw=="},"api_response":{"$b64":"abc"}},"b":1}'
)


def test_undecodable_records_are_skipped_and_counted_by_every_read(
    store: ConversationStore, admin: redis.Redis, prefix: str
) -> None:
    store.append("s", [msg("hello")])
    key = f"{prefix}:{{s}}:m"
    admin.rpush(key, LEGACY, *BAD_RECORDS)
    store.append("t", [msg("other session")])
    admin.lpush(f"{prefix}:{{t}}:m", BAD_RECORDS[0])  # first record of t: its title
    found = store.messages("s")
    assert [m.text for m in found] == ["hello", "legacy"]
    assert found[1].native == {"raw": b"\x89PNG", "api_response": {"$b64": "abc"}}
    assert store.status().skipped_records == 3
    assert {r.id: r.title for r in store.recent()} == {"s": "hello", "t": "other session"}
    assert store.status().skipped_records == 3 + 3 + 1  # the heads of s and of t
    assert store.pop("s") is None  # the last record (not JSON) is removed, skipped
    assert store.status().skipped_records == 8
    assert [m.text for m in store.messages("s")] == ["hello", "legacy"]


def test_strict_reads_raise_serialization_error(
    redis_server: RedisServer, admin: redis.Redis, prefix: str
) -> None:
    strict = ConversationStore.from_url(redis_server.url, key_prefix=prefix, strict=True)
    strict.append("s", [msg("hello")])
    admin.rpush(f"{prefix}:{{s}}:m", BAD_RECORDS[0])
    admin.lpush(f"{prefix}:{{s}}:m", BAD_RECORDS[1])
    with pytest.raises(SerializationError):
        strict.messages("s")
    with pytest.raises(SerializationError):
        strict.recent()
    with pytest.raises(SerializationError):
        strict.pop("s")
    strict.close()


def test_the_mirror_serves_a_session_with_bad_records_in_an_outage(prefix: str) -> None:
    with RedisServer() as server:
        store = ConversationStore.from_url(server.url, key_prefix=prefix, probe_interval=60)
        store.append("s", [msg("hello")])
        admin = server.client()
        admin.rpush(f"{prefix}:{{s}}:m", *BAD_RECORDS, LEGACY)
        admin.close()
        assert [m.text for m in store.messages("s")] == ["hello", "legacy"]
        server.kill()
        assert [m.text for m in store.messages("s")] == ["hello", "legacy"]
        popped = store.pop("s")
        assert popped is not None and popped.text == "legacy"
        assert [r.title for r in store.recent()] == ["hello"]
        store._closed = True
        journal = store.connection.circuit.journal  # type: ignore[union-attr]
        journal.remove([e.id for run in journal.batch(9, 9, 2**40) for e in run])


# -- (b) an invalid TTL writes nothing ----------------------------------------------------------


BAD_TTLS = [1e16, math.inf, -math.inf, math.nan, 0, -1, True, "60", 100 * 365 * 24 * 3600 + 1]


@pytest.mark.parametrize("ttl", BAD_TTLS, ids=repr)
def test_an_invalid_ttl_raises_and_writes_nothing(
    store: ConversationStore, admin: redis.Redis, prefix: str, ttl: Any
) -> None:
    with pytest.raises(InvalidArgumentError):
        store.append("new", [msg("x")], ttl=ttl)
    with pytest.raises(InvalidArgumentError):
        store.replace("new", [msg("x")], ttl=ttl)
    assert keys_of(admin, prefix) == []  # no message, no session hash, no index entry
    store.append("old", [msg("kept")])
    meta = f"{prefix}:{{old}}:h"
    before = (admin.hgetall(meta), admin.lrange(f"{prefix}:{{old}}:m", 0, -1))
    pttl = admin.pttl(meta)
    with pytest.raises(InvalidArgumentError):
        store.append("old", [msg("refused")], ttl=ttl)
    assert (admin.hgetall(meta), admin.lrange(f"{prefix}:{{old}}:m", 0, -1)) == before
    assert 0 < admin.pttl(meta) <= pttl
    store.append("old", [msg("later")])  # and later appends neither raise nor lose TTL
    assert [m.text for m in store.messages("old")] == ["kept", "later"]
    assert admin.pttl(meta) > 0


# -- (c) one depth limit -----------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


@pytest.mark.parametrize("depth", [200, 225, 250])
def test_metadata_200_to_250_deep_is_written_and_read_back(
    store: ConversationStore, depth: int
) -> None:
    """The issue: written, then skipped on every read. Now it reads back exactly."""
    message = msg("deep", metadata={"m": nested(depth)})
    store.append("s", [message])
    assert store.messages("s") == [message]
    assert store.status().skipped_records == 0


@pytest.mark.parametrize("extra", [1, 50])
def test_metadata_deeper_than_the_limit_is_refused_and_writes_nothing(
    store: ConversationStore, admin: redis.Redis, prefix: str, extra: int
) -> None:
    too_deep = codec.MAX_DEPTH - 2 + extra  # the record and "meta" are two levels
    with pytest.raises(SerializationError, match="deeper"):
        store.append("s", [msg("deep", metadata={"m": nested(too_deep)})])
    assert keys_of(admin, prefix) == []


def test_the_deepest_metadata_a_write_accepts_reads_back(store: ConversationStore) -> None:
    message = msg("deep", metadata={"m": nested(codec.MAX_DEPTH - 2)})
    store.append("s", [message])
    assert store.messages("s") == [message]
    assert store.status().skipped_records == 0


# -- (d) bad hashes and wrong-typed keys ---------------------------------------------------------


def redis_cli(port: int, *args: str) -> None:
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli is not installed")
    subprocess.run([cli, "-p", str(port), *args], check=True, capture_output=True)


@pytest.mark.parametrize("field", ["c", "u", "w"])
def test_one_bad_hash_field_does_not_break_listing(
    store: ConversationStore, redis_server: RedisServer, prefix: str, field: str
) -> None:
    for sid in ("a", "bad", "z"):
        store.append(sid, [msg(f"hello {sid}")], owner="o")
    redis_cli(redis_server.port, "HSET", f"{prefix}:{{bad}}:h", field, "abc")
    info = store.info("bad")
    assert info is not None and info.message_count == 1 and info.owner == "o"
    listed = {i.id for i in store.sessions()}
    assert {"a", "z"} <= listed
    assert {"a", "z"} <= {i.id for i in store.sessions(owner="o")}
    assert {"a", "z"} <= {r.id for r in store.recent()}
    assert [m.text for m in store.messages("bad")] == ["hello bad"]
    assert store.append("bad", [msg("still works")]) == 2


def test_wrong_typed_session_keys_are_skipped_and_counted(
    store: ConversationStore, admin: redis.Redis, prefix: str
) -> None:
    for sid in ("a", "hash", "list", "z"):
        store.append(sid, [msg(f"hello {sid}")])
    admin.delete(f"{prefix}:{{hash}}:h")
    admin.set(f"{prefix}:{{hash}}:h", "not a hash")
    admin.delete(f"{prefix}:{{list}}:m")
    admin.set(f"{prefix}:{{list}}:m", "not a list")
    skipped = store.status().skipped_records
    assert {"a", "z"} <= {i.id for i in store.sessions()}
    assert {"a", "z"} <= {r.id for r in store.recent()}
    assert store.status().skipped_records > skipped


@pytest.mark.parametrize("owner", [None, "o"])
def test_a_wrong_typed_index_is_a_clear_backend_error(
    store: ConversationStore, admin: redis.Redis, prefix: str, owner: str | None
) -> None:
    store.append("s", [msg("x")], owner="o")
    index = f"{prefix}:idx" if owner is None else f"{prefix}:own:o"
    admin.delete(index)
    admin.set(index, "oops")
    for call in (lambda: store.sessions(owner=owner), lambda: store.recent(owner=owner)):
        with pytest.raises(BackendError) as info:
            call()
        assert info.value.code == "WRONGTYPE"
        assert "index" in str(info.value)
    assert [m.text for m in store.messages("s")] == ["x"]  # the session itself still reads


# -- (e) a large insert is linear -----------------------------------------------------------


def script_usec(admin: redis.Redis) -> int:
    stats = admin.info("commandstats")
    return sum(int(v["usec"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))


def timed(admin: redis.Redis, call: Any) -> int:
    admin.config_resetstat()
    call()
    return script_usec(admin)


@pytest.mark.slow
def test_a_large_insert_is_linear_and_does_not_starve_other_clients(prefix: str) -> None:
    """20,000 messages inserted at index 5: Redis's time for it is within a small factor
    of an append of the same messages (a quadratic insert took 4.9 s of server time),
    grows linearly (4x the messages: not 16x the time), and a PING sent meanwhile
    is answered promptly."""
    with RedisServer() as server:
        store = ConversationStore.from_url(server.url, key_prefix=prefix, max_message_bytes=4096)
        admin = server.client()
        batches = {n: [msg(f"{n}:{i}") for i in range(n)] for n in (5_000, 20_000)}
        store.append("s", [msg(f"head {i}") for i in range(10)])
        costs: dict[str, int] = {}
        for n, batch in batches.items():
            costs[f"append {n}"] = timed(admin, lambda b=batch: store.append("a", b))
            costs[f"insert {n}"] = timed(admin, lambda b=batch: store.insert("s", 5, b))
        # and at index 5 of a session that is already long: the tail moves once
        costs["insert into long"] = timed(admin, lambda: store.insert("s", 5, batches[20_000]))
        assert store.info("s").message_count == 10 + 5_000 + 2 * 20_000  # type: ignore[union-attr]
        head = [m.text for m in store.messages("s", last=None)[:7]]
        assert head == ["head 0", "head 1", "head 2", "head 3", "head 4", "20000:0", "20000:1"]
        print(f"\nscript usec: {json.dumps(costs)}")
        assert costs["insert 20000"] < 10 * costs["append 20000"], costs
        assert costs["insert into long"] < 20 * costs["append 20000"], costs
        assert costs["insert 20000"] < 8 * costs["insert 5000"], costs  # linear: ~4x

        # A PING from another client while the big insert runs.
        waits: list[float] = []
        stop = threading.Event()

        def ping() -> None:
            client = server.client()
            while not stop.is_set():
                started = time.monotonic()
                client.ping()
                waits.append(time.monotonic() - started)
                time.sleep(0.005)
            client.close()

        pinger = threading.Thread(target=ping)
        pinger.start()
        store.insert("s", 5, batches[20_000])
        stop.set()
        pinger.join()
        assert max(waits) < 1.0, f"a PING waited {max(waits):.2f}s behind the insert"
        store.close()
        admin.close()
