"""Store configuration: one validated object, also readable from ``CHATKEEP_*`` variables."""

from __future__ import annotations

import difflib
import math
import os
import sys
import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Literal, get_args
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_serializer,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict

from .errors import ConfigurationError, InvalidArgumentError
from .keys import KeySchema
from .sealing import DEFAULT_THRESHOLD, KeyProvider, KeyRing, Sealing

__all__ = [
    "DEFAULT_TTL",
    "BackendOptions",
    "StoreConfig",
    "StoreOptions",
    "config_from",
    "redact_url",
    "store_options",
    "ttl_ms",
]

DEFAULT_TTL = 7 * 24 * 3600.0
"""Seven days, in seconds."""

MAX_TTL = 100 * 365 * 24 * 3600.0
"""The longest TTL accepted (about a century, in seconds); ``None`` means never."""


def ttl_ms(value: object, what: str = "ttl") -> int:
    """A TTL argument in milliseconds: None -> 0 (never expires), else a positive, finite
    number of seconds up to :data:`MAX_TTL` (else :class:`InvalidArgumentError` naming
    ``what``)."""
    if value is None:
        return 0
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= MAX_TTL
    ):
        raise InvalidArgumentError(
            f"{what} must be a positive number of seconds up to {MAX_TTL:.0f}, or None"
        )
    return max(round(value * 1000), 1)


_NONE_WORDS = {"", "none", "null", "never", "off"}


_SECRET_QUERY = ("password", "sentinel_password")


def redact_url(url: str) -> str:
    """``url`` with user name, password and password query options replaced by ``***``.

    Works for multi-host URLs (``redis+cluster://u:pw@h1:p1,h2:p2``) too."""
    try:
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return "<unparseable url>"
    _, at, hosts = parts.netloc.rpartition("@")
    secret = any(key.lower() in _SECRET_QUERY for key, _ in query)
    if not at and not secret:
        return url
    netloc = f"***@{hosts}" if at else hosts
    if secret:
        query = [(k, "***" if k.lower() in _SECRET_QUERY else v) for k, v in query]
    return urlunsplit(
        (parts.scheme, netloc, parts.path, urlencode(query, safe="*/"), parts.fragment)
    )


class StoreConfig(BaseModel):
    """Everything a store needs to know. Every field can be set by ``CHATKEEP_<FIELD>``."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    url: str = Field(default="redis://localhost:6379/0", repr=False)
    """Where conversations live: ``redis://``, ``rediss://``, ``unix://`` or ``memory://``."""
    prefix: str = Field(default="chatkeep", validation_alias=AliasChoices("prefix", "key_prefix"))
    """First part of every key; one prefix is one namespace. Given as ``key_prefix``
    (or ``prefix``); read as :attr:`prefix` or :attr:`key_prefix`."""
    ttl: float | None = Field(default=DEFAULT_TTL, gt=0, le=MAX_TTL)
    """Session time-to-live in seconds; ``None`` means sessions never expire."""
    ttl_mode: Literal["sliding", "fixed"] = "sliding"
    """``sliding``: every read and write restarts the TTL. ``fixed``: counted from creation."""
    fallback: Literal["memory", "raise"] = "memory"
    """``memory``: serve from memory while Redis is unreachable. ``raise``: raise instead."""
    max_messages: int | None = Field(default=None, gt=0)
    """Keep only the newest N messages of a session (trimmed atomically on append)."""
    max_message_bytes: int = Field(default=1024 * 1024, gt=0)
    """Largest encoded message accepted; larger ones raise MessageTooLargeError."""
    strict: bool = False
    """Raise SerializationError on an undecodable stored record instead of skipping it."""
    connect_timeout: float = Field(default=0.25, gt=0)
    """Seconds to wait for a TCP connection to Redis."""
    socket_timeout: float = Field(default=0.5, gt=0)
    """Seconds to wait for a Redis reply."""
    mirror_sessions: int = Field(default=1000, ge=0)
    """Sessions kept in the local fallback mirror (least recently used are evicted)."""
    mirror_messages: int = Field(default=500, gt=0)
    """Newest messages per session kept in the local fallback mirror."""
    mirror_max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    """Bytes of records the local fallback mirror keeps (least recently used sessions
    are evicted first)."""
    journal_size: int = Field(default=100_000, gt=0)
    """Writes kept for replay while Redis is unreachable; when full, writes raise
    JournalFullError (nothing acknowledged is dropped)."""
    journal_max_bytes: int = Field(default=64 * 1024 * 1024, gt=0)
    """Bytes of writes kept for replay; when full, writes raise JournalFullError."""
    journal_path: str | None = None
    """A sqlite3 file that keeps journaled writes across process exits and crashes
    (replayed by any later process with the same path); None keeps them in memory."""
    replay_wait: float = Field(default=2.0, ge=0)
    """Seconds a call waits while another replays the journal, before it is served
    from the fallback instead."""
    restore_lost_sessions: bool = False
    """When Redis is found restarted without sessions this process wrote, write back
    what the mirror holds of them (appends only, never over newer data)."""
    probe_interval: float = Field(default=0.5, gt=0)
    """Seconds before the first retry of an unreachable Redis (doubles up to probe_max)."""
    probe_max: float = Field(default=15.0, gt=0)
    """Longest wait between two retries of an unreachable Redis."""
    max_connections: int = Field(default=100, gt=0)
    """Connections in the pool of a ``redis://`` client chatkeep makes; more callers wait."""
    pool_timeout: float = Field(default=1.0, gt=0)
    """Seconds a call waits for a free pooled connection when all are busy."""
    _sealing: Sealing = PrivateAttr()
    publish: bool = False
    """Publish appended messages for ``subscribe()`` (by the append script itself:
    PUBLISH, or SPUBLISH on Cluster). A store that subscribes publishes anyway."""

    @model_validator(mode="before")
    @classmethod
    def _one_prefix(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and "prefix" in data and "key_prefix" in data:
            raise ValueError("give key_prefix or prefix (its older name), not both")
        return data

    @property
    def key_prefix(self) -> str:
        """The key prefix (the same as :attr:`prefix`)."""
        return self.prefix

    compression: Literal["zlib", "zstd"] | None = None
    """Compress what is stored (messages, memory and cache values) of at least
    ``compression_threshold`` bytes: ``zlib`` (stdlib) or ``zstd`` (the ``zstd``
    extra). Readers need no setting: every stored item says how it was written."""
    compression_threshold: int = Field(default=DEFAULT_THRESHOLD, ge=0)
    """Bytes from which a payload is compressed (smaller ones stay plain)."""
    encryption_keys: KeyRing | None = Field(default=None, repr=False)
    """Encrypt what is stored with AES-256-GCM (the ``crypto`` extra): ``{"k2": key,
    "k1": old_key}`` (32-byte keys, or their base64/hex; the first writes, all read)
    or a callable returning such a mapping. ``CHATKEEP_ENCRYPTION_KEYS`` takes
    ``k2:<base64>,k1:<base64>``. See docs/security-at-rest.md."""

    @field_validator("encryption_keys", mode="before")
    @classmethod
    def _check_keys(cls, value: object) -> KeyRing | None:
        if value is None or isinstance(value, KeyRing):
            return value
        if isinstance(value, str):
            return KeyRing.from_text(value)
        if isinstance(value, Mapping) or callable(value):
            source: Mapping[str, bytes | str] | KeyProvider = value
            return KeyRing(source)
        raise ConfigurationError(
            "encryption_keys must be a mapping of key id to key, or a callable returning one"
        )

    @field_serializer("encryption_keys")
    def _serialize_keys(self, value: KeyRing | None, info: Any) -> Any:
        # Never written out: a JSON dump (logs, settings files) shows the key ids only.
        if value is None or info.mode != "json":
            return value
        return repr(value)

    @model_validator(mode="after")
    def _make_sealing(self) -> StoreConfig:
        self._sealing = Sealing(self.compression, self.compression_threshold, self.encryption_keys)
        return self

    @property
    def sealing(self) -> Sealing:
        """How this store writes what it keeps (compression, encryption)."""
        return self._sealing

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str) -> str:
        KeySchema(value)  # raises ConfigurationError with the rule
        return value

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if "://" not in value:
            raise ValueError("url must look like scheme://..., e.g. redis://localhost:6379/0")
        return value

    @field_serializer("url", when_used="json")
    def _serialize_url(self, value: str) -> str:
        # A config dumped to JSON (logs, settings files) never carries the password.
        return redact_url(value)

    @classmethod
    def create(cls, **options: Any) -> StoreConfig:
        """Build a config, turning validation failures into :class:`ConfigurationError`."""
        try:
            return cls(**options)
        except ValidationError as exc:
            raise ConfigurationError(_describe(exc)) from None

    def replace(self, **changes: Any) -> StoreConfig:
        """A copy with some fields changed (validated)."""
        current = self.model_dump()
        if "key_prefix" in changes:
            del current["prefix"]
        return StoreConfig.create(**{**current, **changes})

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> StoreConfig:
        """Read ``CHATKEEP_<FIELD>`` variables (``CHATKEEP_URL`` falls back to ``REDIS_URL``).

        ``CHATKEEP_TTL=none`` (or ``never``/``off``) means no expiry. Keyword
        arguments win over the environment.
        """
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            raw = env.get(f"CHATKEEP_{name.upper()}")
            if raw is None and name == "url":
                raw = env.get("REDIS_URL")
            if raw is None:
                continue
            if type(None) in get_args(field.annotation) and raw.strip().lower() in _NONE_WORDS:
                values[name] = None
            else:
                values[name] = raw.strip()
        if "key_prefix" in overrides:
            values.pop("prefix", None)
        values.update(overrides)
        return cls.create(**values)

    @property
    def scheme(self) -> str:
        return self.url.split("://", 1)[0].lower()

    @property
    def safe_url(self) -> str:
        """The URL with credentials replaced by ``***``."""
        return redact_url(self.url)

    def __repr_args__(self) -> Any:
        yield "url", self.safe_url
        for name, value in super().__repr_args__():
            if name != "url":
                yield name, value


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in error["loc"]) or "config"
        if error["type"] == "extra_forbidden":
            parts.append(unknown_option(where, OPTION_NAMES - {"prefix"}, "a StoreConfig"))
        else:
            parts.append(f"{where}: {error['msg']}")
    return "invalid chatkeep configuration: " + "; ".join(parts)


# -- options as constructors take them ------------------------------------------------------


class BackendOptions(TypedDict, total=False):
    """The :class:`StoreConfig` fields every store and adapter takes as keywords, apart
    from the URL, the key prefix and the TTL (which some constructors take their own
    way). Typed, so mypy and IDEs flag a misspelled option; see :class:`StoreConfig`
    for what each one does."""

    ttl_mode: Literal["sliding", "fixed"]
    fallback: Literal["memory", "raise"]
    max_messages: int | None
    max_message_bytes: int
    strict: bool
    connect_timeout: float
    socket_timeout: float
    mirror_sessions: int
    mirror_messages: int
    mirror_max_bytes: int
    journal_size: int
    journal_max_bytes: int
    journal_path: str | None
    replay_wait: float
    restore_lost_sessions: bool
    probe_interval: float
    probe_max: float
    max_connections: int
    pool_timeout: float
    publish: bool
    compression: Literal["zlib", "zstd"] | None
    compression_threshold: int
    encryption_keys: Any  # {"k2": key, "k1": old_key}, a callable returning one, or a KeyRing


class PrefixOptions(TypedDict, total=False):
    """The key prefix: ``key_prefix`` (``prefix`` is its older name, deprecated)."""

    key_prefix: str
    prefix: str


class StoreOptions(BackendOptions, PrefixOptions, total=False):
    """Every :class:`StoreConfig` field, as a store constructor takes them."""

    url: str
    ttl: float | None


OPTION_NAMES: frozenset[str] = frozenset(StoreConfig.model_fields) | {"key_prefix"}
"""Every name a store option can have (``prefix`` is the deprecated one)."""

_OWN_PACKAGES = frozenset(
    {"chatkeep", "chatkeep_langchain", "chatkeep_llama_index", "chatkeep_langgraph"}
)


def _caller_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first frame outside chatkeep
    (the user's call, however deep inside chatkeep the warning is raised)."""
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and (
        str(frame.f_globals.get("__name__", "")).partition(".")[0] in _OWN_PACKAGES
    ):
        frame = frame.f_back
        level += 1
    return level


def unknown_option(name: str, valid: Iterable[str], what: str) -> str:
    """Why ``name`` is refused, naming the closest valid option if one is close."""
    close = difflib.get_close_matches(name, sorted(valid), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else " (see chatkeep.StoreConfig)"
    return f"{what} takes no option {name!r}{hint}"


def store_options(
    options: Mapping[str, Any], *, what: str, accepted: Iterable[str] = ()
) -> dict[str, Any]:
    """A constructor's store options, checked: the key prefix is ``key_prefix``
    (``prefix`` is still taken, with a :class:`DeprecationWarning`, and given on as
    ``key_prefix``); both at once, or a name that is no store option, is a
    :class:`ConfigurationError` naming the closest valid option among the store options
    and ``accepted`` (the constructor's own keywords). ``what`` names the constructor.
    :class:`StoreConfig` (``create``, ``from_env``, ``replace``) takes the result."""
    checked = dict(options)
    if "prefix" in checked:
        if "key_prefix" in checked:
            raise ConfigurationError(
                f"{what}: give key_prefix or prefix (its older name), not both"
            )
        warnings.warn(
            f"{what}: prefix= is deprecated, use key_prefix= (the same value)",
            DeprecationWarning,
            stacklevel=_caller_stacklevel(),
        )
        checked["key_prefix"] = checked.pop("prefix")
    for name in checked:
        if name not in OPTION_NAMES:
            valid = (OPTION_NAMES - {"prefix"}) | set(accepted)
            raise ConfigurationError(unknown_option(name, valid, what))
    return checked


def config_from(
    config: StoreConfig | None,
    options: Mapping[str, Any],
    *,
    what: str,
    accepted: Iterable[str] = (),
) -> StoreConfig:
    """The one place where a constructor's arguments become its :class:`StoreConfig`:
    ``config`` with ``options`` changed, or, without one, the options over the
    ``CHATKEEP_*`` variables (:meth:`StoreConfig.from_env`). Options are checked by
    :func:`store_options`."""
    checked = store_options(options, what=what, accepted=accepted)
    if config is None:
        return StoreConfig.from_env(**checked)
    if not isinstance(config, StoreConfig):
        raise InvalidArgumentError("config must be a chatkeep.StoreConfig")
    return config.replace(**checked) if checked else config
