"""chatkeep.sealing and sealed records, without a server: keys, forms, limits."""

from __future__ import annotations

import base64
import logging
import os
import sys
import threading
import zlib

import pytest

from chatkeep import (
    AsyncConversationStore,
    ConfigurationError,
    ConversationStore,
    KeyRing,
    Message,
    Sealing,
    SerializationError,
    StoreConfig,
    codec,
)
from chatkeep import sealing as sealing_module

KEY = bytes(range(32))


def test_keys_are_bytes_base64_or_hex_and_never_shown() -> None:
    ring = KeyRing({"k3": KEY, "k2": base64.b64encode(KEY).decode(), "k1": KEY.hex()})
    assert ring.ids == ["k3", "k2", "k1"] and ring.writer()[0] == "k3"
    assert repr(ring) == "KeyRing(ids=['k3', 'k2', 'k1'])"
    assert base64.urlsafe_b64encode(KEY).decode() not in repr(StoreConfig(encryption_keys=ring))
    for bad in ({"k1": b"short"}, {"k1": "not base64!"}, {"bad id": KEY}, {}):
        with pytest.raises(ConfigurationError) as caught:
            KeyRing(bad)
        assert "short" not in str(caught.value) or "k1" in str(caught.value)
    with pytest.raises(ConfigurationError, match="k2:<base64 key>"):
        KeyRing.from_text("just-a-key")


def test_a_provider_that_fails_is_a_configuration_error() -> None:
    def provider() -> dict[str, bytes]:
        raise RuntimeError("vault down")

    with pytest.raises(ConfigurationError, match="provider failed: RuntimeError"):
        KeyRing(provider).writer()


def _record(text: str) -> bytes:
    return codec.encode(Message(id="m1", role="user", content=text), 3)


def test_small_records_stay_plain_and_incompressible_ones_too() -> None:
    zstd = Sealing("zstd", 100)
    small = _record("hi")
    assert codec.seal_record(small, zstd, "s") is small
    noise = _record(base64.b64encode(os.urandom(3000)).decode())
    assert codec.seal_record(noise, Sealing("zlib", 100), "s") is noise
    text = _record("hello world " * 100)
    sealed = codec.seal_record(text, zstd, "s")
    assert sealed.startswith(b'{"v":1,"id":"m1","tk":3,"role":"user","ts":')
    assert b'"z":"zstd","b":3,"p":"' in sealed and len(sealed) < len(text) / 3
    assert codec.decode(sealed, Sealing(), "s").text == "hello world " * 100


def test_a_sealed_record_is_of_a_form_older_readers_refuse() -> None:
    sealed = codec.seal_record(_record("secret"), Sealing(keys=KeyRing({"k1": KEY})), "s")
    assert b'"b":3' in sealed  # the "unsupported tagging" of every earlier chatkeep
    with pytest.raises(SerializationError, match="sealed"):
        codec.decode(sealed)  # a backend, which holds no keys, leaves it to its store


def test_decompression_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sealing_module, "MAX_OPENED", 1000)
    for method in ("zlib", "zstd"):
        sealed = codec.seal_record(_record("x" * 5000), Sealing(method, 10), "s")
        decoder = codec.RecordDecoder(strict=True, logger=logging.getLogger("t"))
        with pytest.raises(SerializationError, match="decompress"):
            decoder.decode_all([sealed], "s")


def test_values_round_trip_in_their_envelope() -> None:
    both = Sealing("zlib", 10, KeyRing({"k1": KEY}))
    data = b'{"note":"' + b"x" * 200 + b'"}'
    sealed = both.seal_value(data, "memory", "ns", "key")
    assert sealed.startswith(b"\x00ck1z\x02k1") and b"xxxx" not in sealed
    assert both.open_value(sealed, "memory", "ns", "key") == data
    with pytest.raises(SerializationError, match="authentication"):
        both.open_value(sealed, "memory", "ns", "other key")
    with pytest.raises(ConfigurationError, match="k1"):
        Sealing().open_value(sealed, "memory", "ns", "key")
    compressed = Sealing("zlib", 10).seal_value(data, "memory", "ns", "key")
    assert compressed[:6] == b"\x00ck1z\x00"
    assert zlib.decompress(compressed[6:]) == data
    assert Sealing().open_value(compressed, "memory", "ns", "key") == data
    assert Sealing().open_value(data, "memory", "ns", "key") is data


def test_rings_of_the_same_keys_are_equal_so_twins_accept_them() -> None:
    assert KeyRing({"k1": KEY}) == KeyRing({"k1": base64.b64encode(KEY).decode()})
    assert KeyRing({"k1": KEY}) != KeyRing({"k2": KEY})
    assert KeyRing({"k1": KEY}) != KeyRing({"k1": bytes(32)})
    provider = lambda: {"k1": KEY}  # noqa: E731
    assert KeyRing(provider) == KeyRing(provider) and KeyRing(provider) != KeyRing({"k1": KEY})
    sync = ConversationStore.from_url("memory://", encryption_keys={"k1": KEY})
    twin = AsyncConversationStore.from_url("memory://", twin=sync, encryption_keys={"k1": KEY})
    assert twin.config == sync.config
    sync.close()


def test_zstd_is_never_required(monkeypatch: pytest.MonkeyPatch) -> None:
    sealed = codec.seal_record(_record("zstd " * 300), Sealing("zstd", 10), "s")
    monkeypatch.setitem(sys.modules, "zstandard", None)  # as if not installed
    monkeypatch.setattr(sealing_module, "_local", threading.local())
    with pytest.raises(ConfigurationError, match=r"chatkeep\[zstd\]"):
        StoreConfig.create(compression="zstd")
    assert StoreConfig(compression="zlib").sealing.compression == "zlib"
    decoder = codec.RecordDecoder(strict=False, logger=logging.getLogger("t"))
    with pytest.raises(ConfigurationError, match=r"chatkeep\[zstd\]"):
        decoder.decode_all([sealed], "s")
