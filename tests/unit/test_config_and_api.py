"""Configuration, the public API and the exception tree."""

from __future__ import annotations

import base64

import pytest

import chatkeep
from chatkeep import (
    AsyncConversationStore,
    BackendError,
    BackendUnavailableError,
    ChatkeepError,
    ConfigurationError,
    ConversationStore,
    InvalidArgumentError,
    InvalidMessageError,
    InvalidSessionId,
    MessageTooLargeError,
    SerializationError,
    SessionOwnershipError,
    StoreConfig,
)


def test_public_api_is_pinned() -> None:
    assert sorted(chatkeep.__all__) == sorted(
        [
            "DEFAULT_CACHE_TTL",
            "DEFAULT_MEMORY_TTLS",
            "DEFAULT_TTL",
            "RECORD_VERSION",
            "UNSET",
            "AsyncConversationStore",
            "AsyncMemoryStore",
            "AsyncResultCache",
            "AsyncSessionLock",
            "AsyncSubscription",
            "BackendError",
            "BackendOptions",
            "BackendUnavailableError",
            "ChatkeepError",
            "ConfigurationError",
            "ConflictError",
            "ContentPart",
            "Conversion",
            "ConversationStore",
            "FallbackWarning",
            "IncompleteMirrorError",
            "InvalidArgumentError",
            "InvalidMessageError",
            "InvalidSessionId",
            "JournalFullError",
            "KeyRing",
            "LockTimeoutError",
            "MemoryHit",
            "MemoryStore",
            "Message",
            "MessageTooLargeError",
            "Namespace",
            "ResultCache",
            "RecentConversation",
            "Role",
            "Sealing",
            "SerializationError",
            "SessionInfo",
            "SessionLock",
            "SessionOwnershipError",
            "StoreConfig",
            "StoreOptions",
            "StoreStatus",
            "Subscription",
            "TokenCounter",
            "ToolCall",
            "ValueTooLargeError",
            "__version__",
            "decode_record",
            "encode_record",
            "estimate_tokens",
            "model_builder",
        ]
    )
    for name in chatkeep.__all__:
        assert hasattr(chatkeep, name)


def test_exception_tree_subclasses_the_builtins_users_catch() -> None:
    assert issubclass(ConfigurationError, (ChatkeepError, ValueError))
    assert issubclass(InvalidSessionId, InvalidArgumentError)
    assert issubclass(InvalidMessageError, ValueError)
    assert issubclass(MessageTooLargeError, SerializationError)
    assert issubclass(SerializationError, ValueError)
    assert issubclass(SessionOwnershipError, PermissionError)
    assert issubclass(BackendUnavailableError, (BackendError, ConnectionError))
    for cls in (
        ConfigurationError,
        InvalidArgumentError,
        SerializationError,
        SessionOwnershipError,
        BackendError,
    ):
        assert issubclass(cls, ChatkeepError)


def test_from_env_reads_every_field() -> None:
    env = {
        "CHATKEEP_URL": "redis://h:1/2",
        "CHATKEEP_PREFIX": "app",
        "CHATKEEP_TTL": "3600",
        "CHATKEEP_TTL_MODE": "fixed",
        "CHATKEEP_FALLBACK": "raise",
        "CHATKEEP_MAX_MESSAGES": "50",
        "CHATKEEP_MAX_MESSAGE_BYTES": "2048",
        "CHATKEEP_STRICT": "true",
        "CHATKEEP_CONNECT_TIMEOUT": "0.1",
        "CHATKEEP_SOCKET_TIMEOUT": "0.2",
        "CHATKEEP_MIRROR_SESSIONS": "10",
        "CHATKEEP_MIRROR_MESSAGES": "20",
        "CHATKEEP_JOURNAL_SIZE": "30",
        "CHATKEEP_JOURNAL_MAX_BYTES": "4096",
        "CHATKEEP_JOURNAL_PATH": "/tmp/chatkeep-journal.db",
        "CHATKEEP_MIRROR_MAX_BYTES": "8192",
        "CHATKEEP_REPLAY_WAIT": "0.5",
        "CHATKEEP_RESTORE_LOST_SESSIONS": "true",
        "CHATKEEP_PROBE_INTERVAL": "1",
        "CHATKEEP_PROBE_MAX": "9",
        "CHATKEEP_MAX_CONNECTIONS": "7",
        "CHATKEEP_POOL_TIMEOUT": "2.5",
        "CHATKEEP_PUBLISH": "true",
        "CHATKEEP_COMPRESSION": "zlib",
        "CHATKEEP_COMPRESSION_THRESHOLD": "512",
        "CHATKEEP_ENCRYPTION_KEYS": f"k2:{base64.b64encode(bytes(32)).decode()},k1:{'ab' * 32}",
    }
    config = StoreConfig.from_env(env)
    assert set(env) == {f"CHATKEEP_{name.upper()}" for name in StoreConfig.model_fields}
    assert config.encryption_keys is not None and config.encryption_keys.ids == ["k2", "k1"]
    assert "ab" * 8 not in config.model_dump_json() and "AAAA" not in config.model_dump_json()
    assert config.model_dump(exclude={"encryption_keys"}) == {
        "url": "redis://h:1/2",
        "prefix": "app",
        "ttl": 3600.0,
        "ttl_mode": "fixed",
        "fallback": "raise",
        "max_messages": 50,
        "max_message_bytes": 2048,
        "strict": True,
        "connect_timeout": 0.1,
        "socket_timeout": 0.2,
        "mirror_sessions": 10,
        "mirror_messages": 20,
        "mirror_max_bytes": 8192,
        "journal_size": 30,
        "journal_max_bytes": 4096,
        "journal_path": "/tmp/chatkeep-journal.db",
        "replay_wait": 0.5,
        "restore_lost_sessions": True,
        "probe_interval": 1.0,
        "probe_max": 9.0,
        "max_connections": 7,
        "pool_timeout": 2.5,
        "publish": True,
        "compression": "zlib",
        "compression_threshold": 512,
    }


def test_from_env_falls_back_to_redis_url_and_understands_none() -> None:
    config = StoreConfig.from_env({"REDIS_URL": "redis://r:6/0", "CHATKEEP_TTL": "none"})
    assert config.url == "redis://r:6/0" and config.ttl is None
    assert StoreConfig.from_env({}, prefix="x").prefix == "x"


@pytest.mark.parametrize(
    "options",
    [
        {"ttl": -1},
        {"ttl": 0},
        {"ttl_mode": "forever"},
        {"fallback": "ignore"},
        {"key_prefix": "has{brace}"},
        {"key_prefix": "has space"},
        {"key_prefix": ""},
        {"url": "localhost:6379"},
        {"max_message_bytes": 0},
        {"unknown_option": 1},
    ],
)
def test_bad_configuration_raises_configuration_error(options: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        StoreConfig.create(**options)
    with pytest.raises(ConfigurationError):
        ConversationStore(**options)


def test_unknown_scheme_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="unknown URL scheme"):
        ConversationStore.from_url("mongodb://localhost")


@pytest.mark.parametrize(
    "url",
    [
        "redis+cluster://127.0.0.1:7000,127.0.0.1:7001/1",
        "redis+cluster://127.0.0.1:7000?db=2",
        "redis+cluster://127.0.0.1:notaport",
        "redis+cluster://127.0.0.1:7000,,127.0.0.1:7001",
        "redis+cluster://127.0.0.1:7000/?socket_timeout=soon",
        "redis+sentinel://127.0.0.1:26379",
        "redis+sentinel://127.0.0.1:26379/",
        "redis+sentinel://127.0.0.1:x/svc",
        "redis+sentinel://127.0.0.1:26379/svc?db=zero",
    ],
)
def test_bad_cluster_and_sentinel_urls_are_configuration_errors(url: str) -> None:
    for make in (ConversationStore.from_url, AsyncConversationStore.from_url):
        with pytest.raises(ConfigurationError):
            make(url)


def test_credentials_never_show(caplog: pytest.LogCaptureFixture) -> None:
    config = StoreConfig.create(url="redis://admin:hunter2@db.internal:6379/0")
    assert "hunter2" not in repr(config)
    assert "hunter2" not in config.model_dump_json()
    assert config.safe_url == "redis://***@db.internal:6379/0"
    store = ConversationStore(config)
    assert "hunter2" not in repr(store) + str(store.status())


def test_wrong_client_kind_is_a_configuration_error() -> None:
    import redis.asyncio

    with pytest.raises(ConfigurationError):
        ConversationStore(client=redis.asyncio.Redis())
    with pytest.raises(ConfigurationError):
        AsyncConversationStore(client=object())
