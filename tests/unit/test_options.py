"""Store options as constructors take them (issue 17, "Consistent, typed, obvious"):
one name for the key prefix, CHATKEEP_* applied by every constructor, an unknown
option naming the closest valid one (mypy's view of them: tests/adapters/test_options.py)."""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import pytest

from chatkeep import (
    AsyncConversationStore,
    AsyncMemoryStore,
    AsyncResultCache,
    BackendOptions,
    ConfigurationError,
    ConversationStore,
    MemoryStore,
    ResultCache,
    StoreConfig,
    StoreOptions,
)

CORE_STORES: list[Any] = [
    ConversationStore,
    AsyncConversationStore,
    MemoryStore,
    AsyncMemoryStore,
    ResultCache,
    AsyncResultCache,
]


@pytest.fixture(autouse=True)
def _no_chatkeep_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CHATKEEP_") or name == "REDIS_URL":
            monkeypatch.delenv(name)


@pytest.mark.parametrize("cls", CORE_STORES, ids=lambda c: c.__name__)
def test_key_prefix_is_the_name_everywhere(cls: Any) -> None:
    assert cls(url="memory://", key_prefix="app").config.prefix == "app"
    assert cls.from_url("memory://", key_prefix="app").config.key_prefix == "app"
    assert StoreConfig(key_prefix="app").prefix == "app"
    assert StoreConfig.create(key_prefix="app").replace(key_prefix="b").prefix == "b"


@pytest.mark.parametrize("cls", CORE_STORES, ids=lambda c: c.__name__)
def test_prefix_is_a_deprecated_alias_pointing_at_the_caller(cls: Any) -> None:
    with pytest.warns(DeprecationWarning, match="prefix= is deprecated, use key_prefix=") as got:
        store = cls.from_url("memory://", prefix="old")
    assert store.config.prefix == "old"
    assert [Path(w.filename).name for w in got] == [Path(__file__).name]


@pytest.mark.parametrize("cls", CORE_STORES, ids=lambda c: c.__name__)
def test_both_names_at_once_is_an_error(cls: Any) -> None:
    with pytest.raises(ConfigurationError, match="key_prefix or prefix"):
        cls.from_url("memory://", key_prefix="a", prefix="b")
    with pytest.raises(ConfigurationError, match="key_prefix or prefix"):
        StoreConfig.create(key_prefix="a", prefix="b")


@pytest.mark.parametrize(
    ("cls", "given", "meant"),
    [
        (ConversationStore, "fallbak", "fallback"),
        (ConversationStore, "key_prefx", "key_prefix"),
        (ConversationStore, "on_state_chnge", "on_state_change"),
        (MemoryStore, "tls", "ttls"),
        (ResultCache, "namespce", "namespace"),
        (ResultCache, "max_mesages", "max_messages"),
    ],
)
def test_an_unknown_option_names_the_closest_valid_one(cls: Any, given: str, meant: str) -> None:
    with pytest.raises(ConfigurationError, match=f"did you mean '{meant}'") as raised:
        cls.from_url("memory://", **{given: 1})
    assert cls.__name__ in str(raised.value) and repr(given) in str(raised.value)


def test_an_option_with_no_close_match_points_at_the_config() -> None:
    with pytest.raises(ConfigurationError, match=r"no option 'zzz' \(see chatkeep.StoreConfig\)"):
        ConversationStore.from_url("memory://", zzz=1)


@pytest.mark.parametrize("cls", CORE_STORES, ids=lambda c: c.__name__)
def test_chatkeep_variables_apply_to_every_constructor(
    cls: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHATKEEP_PREFIX", "from-env")
    monkeypatch.setenv("CHATKEEP_MAX_MESSAGES", "7")
    monkeypatch.setenv("CHATKEEP_SOCKET_TIMEOUT", "0.3")
    for store in (cls.from_url("memory://"), cls(url="memory://")):
        assert store.config.prefix == "from-env"
        assert store.config.max_messages == 7 and store.config.socket_timeout == 0.3
    # keyword arguments win over the environment; a given config is taken as it is
    assert cls.from_url("memory://", key_prefix="kw").config.prefix == "kw"
    given = StoreConfig(url="memory://")
    assert cls(given).config == given


def test_the_url_comes_from_the_environment_when_not_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REDIS_URL", "memory://")
    assert ConversationStore().config.url == "memory://"
    monkeypatch.setenv("CHATKEEP_URL", "memory://?x")
    assert MemoryStore().config.url == "memory://?x"


def test_the_url_is_given_once() -> None:
    with pytest.raises(ConfigurationError, match="give the URL once"):
        ConversationStore.from_url("memory://", url="memory://")
    assert ConversationStore.from_url(url="memory://").config.url == "memory://"


def test_typed_options_are_the_config_fields() -> None:
    fields = set(StoreConfig.model_fields)
    assert set(StoreOptions.__optional_keys__) == fields | {"key_prefix"}
    assert set(BackendOptions.__optional_keys__) == fields - {"url", "prefix", "ttl"}


def test_a_config_says_its_options_in_the_same_words() -> None:
    config = StoreConfig(key_prefix="p")
    assert config.key_prefix == config.prefix == "p"
    assert "key_prefix" not in config.model_dump()  # serialized as before: "prefix"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        StoreConfig(prefix="p")  # the config's own field: no warning
