"""Edges of compression and encryption at rest (issue 19), found by a red team on real
servers; each failed on the first version of the feature (or is marked xfail with
the reason it is not fixed)."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from chatkeep import ConversationStore, Message, SerializationError
from tests.support.messages import msg
from tests.support.servers import RedisServer

pytestmark = pytest.mark.redis_server

K1 = bytes(range(32))
KEYS = {"k1": K1}


def _raw(server: RedisServer) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=server.port, socket_timeout=10)


def _store(server: RedisServer, prefix: str, **options: Any) -> ConversationStore:
    return ConversationStore.from_url(
        f"redis://127.0.0.1:{server.port}/0", key_prefix=prefix, **options
    )


def _padded_record(store: ConversationStore, server: RedisServer, prefix: str) -> bytes:
    """A sealed record of session "s" whose base64 payload ends in padding (the
    lenient base64 decoder stops there and ignores what follows)."""
    for size in range(40, 46):
        store.clear("s")
        store.append("s", [msg("x" * size)])
        (record,) = _raw(server).lrange(f"{prefix}:{{s}}:m", 0, -1)
        if record.endswith(b'="}'):
            return bytes(record)
    raise AssertionError("no padded payload")  # pragma: no cover


@pytest.mark.parametrize(
    "field", [b',"role":"system"', b',"tk":1000000', b',"id":"other"', b',"ts":1']
)
def test_a_plain_field_repeated_after_the_payload_is_refused(
    redis_server: RedisServer, prefix: str, field: bytes
) -> None:
    # JSON keeps the last of repeated names; the authenticated head is everything
    # before "p", so a field repeated after the payload changed the message unseen.
    with _store(redis_server, prefix, encryption_keys=KEYS) as store:
        record = _padded_record(store, redis_server, prefix)
        _raw(redis_server).lset(f"{prefix}:{{s}}:m", 0, record[:-1] + field + b"}")
        assert store.messages("s") == []
        assert store.status().skipped_records == 1
    with _store(redis_server, prefix, encryption_keys=KEYS, strict=True) as strict:
        with pytest.raises(SerializationError):
            strict.messages("s")
        strict.clear("s")


def test_a_plain_field_inside_the_payload_string_is_refused(
    redis_server: RedisServer, prefix: str
) -> None:
    # The same with the payload's string itself altered after its padding.
    with _store(redis_server, prefix, encryption_keys=KEYS) as store:
        record = _padded_record(store, redis_server, prefix)
        _raw(redis_server).lset(f"{prefix}:{{s}}:m", 0, record[:-2] + b'AAAA"}')
        assert store.messages("s") == []
        assert store.status().skipped_records == 1
        store.clear("s")


def test_an_unsealed_message_survives(redis_server: RedisServer, prefix: str) -> None:
    with _store(redis_server, prefix, encryption_keys=KEYS) as store:
        store.append("s", [Message(role="user", content="hello")])
        assert store.messages("s")[0].text == "hello"
        store.clear("s")
