"""Compression and encryption at rest: the contract on every backend of the matrix
(memory, fakeredis, real Redis, Cluster, Sentinel, TLS, ACL; sync and async, see
conftest.py). docs/security-at-rest.md describes what is checked here."""

from __future__ import annotations

from typing import Any

import pytest

from chatkeep import ConfigurationError, Message, SerializationError, ToolCall
from tests.contract.conftest import Harness
from tests.support.messages import msg, texts

K1 = bytes(range(32))
K2 = bytes(range(100, 132))
SECRET = "the launch code is swordfish"
BIG = ("a long tool output line about the weather in Paris\n" * 400)[:20_000]

MODES: dict[str, dict[str, Any]] = {
    "plain": {},
    "zlib": {"compression": "zlib", "compression_threshold": 64},
    "zstd": {"compression": "zstd", "compression_threshold": 64},
    "encrypted": {"encryption_keys": {"k1": K1}},
    "both": {"compression": "zstd", "compression_threshold": 64, "encryption_keys": {"k1": K1}},
}


def _conversation() -> list[Message]:
    return [
        Message(role="system", content="be brief"),
        msg(SECRET),
        Message(
            role="assistant",
            content="",
            tool_calls=[ToolCall(id="c1", name="weather", arguments={"city": "Paris"})],
        ),
        Message(role="tool", content=BIG, tool_call_id="c1", name="weather"),
        Message(
            role="assistant",
            content=[{"type": "text", "text": "sunny "}, "and warm"],
            metadata={"raw": b"\x00\x01", "usage": {"in": 3}},
            native={"type": "ai"},
        ),
    ]


def _records(harness: Harness, sid: str) -> list[bytes]:
    return list(harness.client().lrange(f"{harness.prefix}:{{{sid}}}:m", 0, -1))


def _shared(harness: Harness) -> None:
    if harness.backend == "memory":
        pytest.skip("memory:// stores do not share sessions with each other")


@pytest.mark.parametrize("mode", list(MODES))
def test_every_mode_reads_back_what_it_wrote(make_store: Any, mode: str) -> None:
    store = make_store(**MODES[mode])
    written = _conversation()
    assert store.append("s", written) == 5
    assert store.messages("s") == written
    assert store.messages("s", last=2) == written[-2:]
    assert store.messages("s", max_tokens=20) == [written[0], written[-1]]
    assert store.search("s", "SWORDFISH") == [written[1]]
    assert store.search("s", "weather in paris") == [written[3]]
    assert store.search("s", '"city":"paris"') == [written[2]]
    assert store.search("s", "sunny and") == [written[4]]
    assert store.search("s", "absent") == []
    info = store.info("s")
    assert info.messages_by_role == {"system": 1, "user": 1, "assistant": 2, "tool": 1}
    assert store.pop("s", -1) == written[-1]
    assert store.pop("s", 1) == written[1]
    assert store.messages("s") == [written[0], written[2], written[3]]
    store.replace("s", written[:2])
    store.insert("s", 1, [written[2]])
    assert store.messages("s") == [written[0], written[2], written[1]]
    assert store.status().skipped_records == 0


def test_token_counts_and_roles_stay_readable_by_the_scripts(make_store: Any) -> None:
    plain = make_store()
    sealed = make_store(**MODES["both"])
    plain.append("p", _conversation())
    sealed.append("s", _conversation())
    assert sealed.info("s").tokens == plain.info("p").tokens
    for budget in (5, 30, 5_000, 6_000):
        assert texts(sealed.messages("s", max_tokens=budget)) == texts(
            plain.messages("p", max_tokens=budget)
        )


@pytest.mark.parametrize("mode", ["encrypted", "both", "zstd"])
def test_what_redis_holds_keeps_only_the_scripts_fields_plain(
    harness: Harness, make_store: Any, mode: str
) -> None:
    _shared(harness)
    store = make_store(**MODES[mode])
    written = _conversation()
    store.append("s", written)
    raw = _records(harness, "s")
    assert len(raw) == 5
    for record, message in zip(raw, written, strict=True):
        assert record.startswith(b'{"v":1,"id":"' + message.id.encode() + b'","tk":')
        assert b'"role":"' + message.role.encode() + b'"' in record
    if mode == "zstd":
        assert b'"z":"zstd"' in raw[3] and b'"p":"' in raw[3]
        assert SECRET.encode() in raw[1]  # small: below the threshold, plain
        assert len(raw[3]) < len(BIG) / 4
    else:
        for record in raw:
            assert b'"k":"k1"' in record
        assert SECRET.encode() not in b"".join(raw)
        assert b"weather" not in b"".join(raw)


@pytest.mark.parametrize("writer", list(MODES))
@pytest.mark.parametrize("reader", ["plain", "zlib", "both"])
def test_stores_with_other_settings_read_each_others_records(
    harness: Harness, make_store: Any, writer: str, reader: str
) -> None:
    _shared(harness)
    wrote = make_store(**MODES[writer])
    written = _conversation()
    wrote.append("s", written)
    reading = make_store(**MODES[reader])
    if "encryption_keys" in MODES[writer] and "encryption_keys" not in MODES[reader]:
        with pytest.raises(ConfigurationError, match="k1"):
            reading.messages("s")
        return
    assert reading.messages("s") == written
    assert reading.search("s", "swordfish") == [written[1]]


def test_mixed_records_in_one_session(harness: Harness, make_store: Any) -> None:
    _shared(harness)
    stores = {mode: make_store(**options) for mode, options in MODES.items()}
    written = []
    for mode, one in stores.items():
        batch = [msg(f"{mode} short"), msg(f"{mode} long " + "x" * 500, "assistant")]
        one.append("s", batch)
        written += batch
    both = stores["both"]
    assert both.messages("s") == written
    assert texts(both.search("s", "LONG", limit=3)) == texts(written[9::-2][:3])
    assert texts(both.search("s", "short")) == [f"{m} short" for m in reversed(list(MODES))]
    assert both.info("s").message_count == 10
    assert both.pop("s", 2) == written[2]
    assert both.messages("s") == written[:2] + written[3:]


def test_key_rotation(harness: Harness, make_store: Any) -> None:
    _shared(harness)
    old = make_store(encryption_keys={"k1": K1})
    old.append("s", [msg("under k1")])
    rotated = make_store(encryption_keys={"k2": K2, "k1": K1})
    rotated.append("s", [msg("under k2")])
    assert texts(rotated.messages("s")) == ["under k1", "under k2"]
    with pytest.raises(ConfigurationError, match="'k2'"):
        old.messages("s")
    new_only = make_store(encryption_keys={"k2": K2})
    with pytest.raises(ConfigurationError, match="'k1'"):
        new_only.messages("s")
    assert b'"k":"k2"' in _records(harness, "s")[1]


def test_a_key_provider_is_asked_for_keys_it_has_not_given(
    harness: Harness, make_store: Any
) -> None:
    _shared(harness)
    answers = [{"k1": K1}]
    asked = []

    def provider() -> dict[str, bytes]:
        asked.append(1)
        return answers[-1]

    store = make_store(encryption_keys=provider)
    store.append("s", [msg("one")])
    make_store(encryption_keys={"k2": K2}).append("s", [msg("two")])
    answers.append({"k1": K1, "k2": K2})
    assert texts(store.messages("s")) == ["one", "two"]
    assert len(asked) == 2


def test_a_wrong_key_skips_and_counts_the_record(harness: Harness, make_store: Any) -> None:
    _shared(harness)
    make_store(encryption_keys={"k1": K1}).append("s", [msg("secret one")])
    make_store().append("s", [msg("plain two")])
    wrong = make_store(encryption_keys={"k1": K2})
    assert texts(wrong.messages("s")) == ["plain two"]
    assert wrong.status().skipped_records == 1
    strict = make_store(encryption_keys={"k1": K2}, strict=True)
    with pytest.raises(SerializationError, match="authentication"):
        strict.messages("s")


@pytest.mark.parametrize("where", ["payload", "token count", "role", "key id"])
def test_a_tampered_record_is_skipped(harness: Harness, make_store: Any, where: str) -> None:
    _shared(harness)
    store = make_store(**MODES["both"])
    store.append("s", [msg("first " * 50), msg("second " * 50)])
    client = harness.client()
    key = f"{harness.prefix}:{{s}}:m"
    record = client.lindex(key, 0)
    if where == "payload":
        at = record.index(b'"p":"') + 10
        changed = record[:at] + (b"A" if record[at : at + 1] != b"A" else b"B") + record[at + 1 :]
    elif where == "token count":
        changed = record.replace(b'"tk":', b'"tk":1', 1)
    elif where == "role":
        changed = record.replace(b'"role":"user"', b'"role":"system"', 1)
    else:
        changed = record.replace(b'"k":"k1"', b'"k":"k2"', 1)
        store = make_store(**{**MODES["both"], "encryption_keys": {"k1": K1, "k2": K1}})
    assert changed != record
    client.lset(key, 0, changed)
    assert texts(store.messages("s")) == ["second " * 50]
    assert store.status().skipped_records == 1


def test_a_session_moved_to_another_id_does_not_decrypt(harness: Harness, make_store: Any) -> None:
    _shared(harness)
    store = make_store(encryption_keys={"k1": K1})
    store.append("alice", [msg(SECRET)])
    store.append("mallory", [msg("mine")])
    client = harness.client()
    for suffix in ("m", "h"):
        source = f"{harness.prefix}:{{alice}}:{suffix}"
        target = f"{harness.prefix}:{{mallory}}:{suffix}"
        if harness.backend == "cluster":  # other slots: RENAME cannot, a copy does the same
            dumped = client.dump(source)
            client.delete(target)
            client.restore(target, 0, dumped)
            client.delete(source)
        else:
            client.rename(source, target)
    assert store.messages("mallory") == []
    assert store.status().skipped_records == 1
    assert store.search("mallory", "swordfish") == []


@pytest.mark.parametrize("mode", list(MODES))
def test_memory_values_in_every_mode(make_memory_store: Any, mode: str) -> None:
    memory = make_memory_store(**MODES[mode])
    value = {"note": SECRET, "big": BIG, "raw": b"\x00\xff"}
    memory.put(("u1", "notes"), "a", value)
    memory.mput(("u1", "notes"), {"b": [1, 2], "c": "x" * 300})
    assert memory.get(("u1", "notes"), "a") == value
    assert memory.mget(("u1", "notes"), ["b", "c", "zz"], default=0) == [[1, 2], "x" * 300, 0]
    assert memory.list(("u1", "notes")) == ["a", "b", "c"]


def test_memory_values_are_sealed_and_bound_to_their_key(
    harness: Harness, make_memory_store: Any
) -> None:
    _shared(harness)
    memory = make_memory_store(**MODES["both"])
    memory.put(("u1", "notes"), "a", {"note": SECRET})
    memory.put(("u1", "notes"), "b", {"note": "other"})
    client = harness.client()
    key_a = f"{harness.prefix}:mem:{{u1:notes}}:v:a"
    key_b = f"{harness.prefix}:mem:{{u1:notes}}:v:b"
    assert SECRET.encode() not in client.hget(key_a, "d")
    with pytest.raises(ConfigurationError, match="k1"):
        make_memory_store().get(("u1", "notes"), "a")
    client.hset(key_b, "d", client.hget(key_a, "d"))  # a's value under b's key
    with pytest.raises(SerializationError, match="authentication"):
        memory.get(("u1", "notes"), "b")
    with pytest.raises(SerializationError, match="authentication"):
        make_memory_store(encryption_keys={"k1": K2}).get(("u1", "notes"), "a")


@pytest.mark.parametrize("mode", list(MODES))
def test_cache_values_in_every_mode(make_cache: Any, mode: str) -> None:
    cache = make_cache(**MODES[mode])
    cache.set({"q": 1}, {"answer": BIG})
    assert cache.get({"q": 1}) == {"answer": BIG}
    assert cache.get_or_compute({"q": 2}, lambda: [SECRET]) == [SECRET]
    assert cache.get({"q": 2}) == [SECRET]
