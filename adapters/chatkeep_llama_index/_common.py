"""What both LlamaIndex stores share (internal): construction arguments, public URL,
and the marker that keeps archive sessions of :class:`RedisDBChatStore` apart."""

from __future__ import annotations

from typing import Any, Final, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from typing_extensions import Unpack

from chatkeep import (
    AsyncConversationStore,
    BackendOptions,
    ConfigurationError,
    ConversationStore,
    InvalidSessionId,
    StoreStatus,
    TokenCounter,
)
from chatkeep.redis import AsyncClosing, Closing, keywords_of, store_options

from ._stores import Stores, describe_client, made_from_url

ARCHIVE_MARK: Final = "\x00archived"
"""Suffix of the chatkeep session that holds a key's archived messages
(:class:`RedisDBChatStore`). Keys containing NUL are refused, so no key can collide."""


class ChatStoreOptions(BackendOptions, total=False):
    """The chatkeep options both LlamaIndex stores take besides their own arguments
    (typed, so a misspelling is caught by mypy): ``url`` (another name of
    ``redis_url``), ``prefix`` (the older name of ``key_prefix``), ``token_counter`` and
    the :class:`chatkeep.StoreConfig` fields."""

    url: str
    prefix: str
    token_counter: TokenCounter | None


class _Default:
    def __repr__(self) -> str:
        return "<chatkeep default>"


DEFAULT: Final[Any] = _Default()
"""Default of ``ttl=``: the chatkeep default (7 days), or the given store's TTL."""


def public_url(url: str | None) -> str | None:
    """``url`` without credentials: no user info, no ``*password*`` query parameter.
    Works for multi-host URLs (``redis+cluster://u:p@h1:p1,h2:p2``) too."""
    if url is None:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode(
        [
            (k, v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
            if "password" not in k.lower()
        ]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def build_stores(
    *,
    redis_url: str | None,
    redis_client: Any,
    aredis_client: Any,
    ttl: Any,
    store: ConversationStore | None,
    async_store: Any,
    key_prefix: str | None,
    options: dict[str, Any],
    what: str = "RedisChatStore",
    accepted: frozenset[str] = frozenset(),
) -> tuple[Stores, str | None]:
    """The stores for an adapter's arguments, and the credential-free URL to show."""
    options = dict(options)
    counter = {"token_counter": options.pop("token_counter")} if "token_counter" in options else {}
    if key_prefix is not None:
        options["key_prefix"] = key_prefix
    options = store_options(options, what=what, accepted=accepted | {"token_counter"})
    key_prefix = options.pop("key_prefix", None)
    options.update(counter)
    given = store or async_store
    if given is not None:
        config = given.config
        if ttl is not DEFAULT and (ttl or None) != config.ttl:
            raise ConfigurationError(
                "ttl= differs from the given chatkeep store's ttl; configure it on the store"
            )
        if key_prefix is not None and key_prefix != config.prefix:
            raise ConfigurationError(
                "key_prefix= differs from the given chatkeep store's prefix; "
                "configure it on the store"
            )
    else:
        if ttl is not DEFAULT:
            # As in llama-index's RedisChatStore: a false ttl (None, 0) never expires.
            options["ttl"] = ttl if ttl else None
        if key_prefix is not None:
            options["key_prefix"] = key_prefix
    if "url" in options:
        if redis_url is not None:
            raise ConfigurationError("give redis_url= or url=, not both")
        redis_url = options.pop("url")
    stores = Stores(
        url=redis_url,
        redis_client=redis_client,
        aredis_client=aredis_client,
        store=store,
        async_store=async_store,
        options=options,
    )
    client = redis_client or aredis_client
    if client is not None:
        shown = describe_client(client)
    elif stores.config.scheme == "memory":
        shown = stores.config.url
    elif given is not None and not made_from_url(given):
        shown = None  # a store made with a client: its config's URL is not where it points
    else:
        shown = public_url(stores.config.url)
    return stores, shown


def check_key(key: object) -> None:
    """Refuse keys that could name an archive session (chatkeep checks the rest)."""
    if isinstance(key, str) and "\x00" in key:
        raise InvalidSessionId("chat store keys cannot contain NUL characters")


H = TypeVar("H", bound="StoreHandle")


class StoreHandle(Closing, AsyncClosing):
    """What both LlamaIndex stores share: the constructor and what they offer about
    their chatkeep stores (a mixin placed before the LlamaIndex base class)."""

    _stores: Stores

    def __init__(
        self,
        redis_url: str | None = None,
        redis_client: Any = None,
        aredis_client: Any = None,
        ttl: float | None = DEFAULT,
        *,
        store: ConversationStore | None = None,
        async_store: AsyncConversationStore | None = None,
        key_prefix: str | None = None,
        owner: str | None = None,
        **options: Unpack[ChatStoreOptions],
    ) -> None:
        stores, shown = build_stores(
            redis_url=redis_url,
            redis_client=redis_client,
            aredis_client=aredis_client,
            ttl=ttl,
            store=store,
            async_store=async_store,
            key_prefix=key_prefix,
            options=dict(options),
            what=type(self).__name__,
            accepted=keywords_of(type(self)),
        )
        # The pydantic base that follows this mixin in the MRO takes the fields.
        super().__init__(  # type: ignore[call-arg]
            redis_url=shown, ttl=stores.config.ttl, key_prefix=stores.config.prefix, owner=owner
        )
        self._stores = stores

    @property
    def store(self) -> ConversationStore:
        """The sync chatkeep store behind this chat store."""
        return self._stores.sync

    def status(self) -> StoreStatus:
        """Where calls go now (Redis or the in-memory fallback), pending replays..."""
        return self._stores.status()

    def flush(self) -> int:
        """Try now to replay writes journaled during an outage; return how many remain."""
        return self._stores.sync.flush()

    async def aflush(self) -> int:
        """Async :meth:`flush`."""
        return await (await self._stores.aio()).flush()

    def close(self) -> None:
        """Replay what can be replayed, then close the connections this store made."""
        self._stores.close()

    async def aclose(self) -> None:
        """Async :meth:`close`."""
        await self._stores.aclose()
