"""``RedisChatMessageHistory``: LangChain chat history on a chatkeep store."""

from __future__ import annotations

import difflib
import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import Any, cast

from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.messages import BaseMessage, FunctionMessage, SystemMessage, ToolMessage
from langchain_core.runnables.config import run_in_executor
from langchain_core.runnables.utils import ConfigurableFieldSpec
from typing_extensions import Unpack

from chatkeep import (
    UNSET,
    AsyncConversationStore,
    BackendOptions,
    ConfigurationError,
    ConflictError,
    ConversationStore,
    Conversion,
    InvalidArgumentError,
    Message,
    StoreConfig,
    StoreStatus,
    TokenCounter,
)
from chatkeep.redis import (
    AsyncClosing,
    Closing,
    KeySchema,
    keywords_of,
    plural,
    store_options,
    validate_id,
)

from ._stores import Backing, shared_backing
from .convert import CONVERSION, from_chatkeep, to_chatkeep

__all__ = [
    "BuiltStoreOptions",
    "HistoryFactory",
    "HistoryFactoryOptions",
    "HistoryOptions",
    "RedisChatMessageHistory",
    "history_factory",
    "store_prefix",
]

STORE_HOOKS = ("on_state_change", "on_conflict", "token_counter")
"""Keywords of the store a history builds that are not StoreConfig fields."""


class BuiltStoreOptions(BackendOptions, total=False):
    """Options of the store a history or factory builds: the store options (``prefix``
    is the older name of ``key_prefix``) and the store's own keywords."""

    prefix: str
    on_state_change: Callable[[str, StoreStatus], None] | None
    on_conflict: Callable[[ConflictError], None] | None
    token_counter: TokenCounter | None


class HistoryOptions(BuiltStoreOptions, total=False):
    """The keywords :class:`RedisChatMessageHistory` takes besides its own: the built
    store's options, and langchain-redis's constructor arguments (for a drop-in swap)."""

    redis_url: str
    redis_client: Any
    index_name: str | None
    overwrite_index: bool


class HistoryFactoryOptions(BuiltStoreOptions, total=False):
    """What :func:`history_factory` takes besides the store (see :class:`HistoryFactory`)."""

    async_store: AsyncConversationStore | None
    url: str | None
    client: Any
    async_client: Any
    key_prefix: str | None
    ttl: float | None
    owner: str | None
    window: int | None
    max_tokens: int | None
    snapshot: bool
    history_class: type[RedisChatMessageHistory]
    session_field: str
    owner_field: str | None


def store_prefix(key_prefix: str | None) -> str | None:
    """The chatkeep prefix for a ``langchain_community``-style ``key_prefix``.

    chatkeep writes ``<prefix>:{<session>}:m``, so the separator is its own: a
    trailing ``:`` is dropped (``"message_store:"`` -> ``"message_store"``). None
    or an empty prefix means the store's default (``chatkeep``, or
    ``CHATKEEP_PREFIX``). Characters a chatkeep prefix cannot hold (braces,
    whitespace, glob characters) raise :class:`chatkeep.ConfigurationError`.
    """
    if key_prefix is None:
        return None
    if not isinstance(key_prefix, str):
        raise ConfigurationError(f"key_prefix must be a str, not {type(key_prefix).__name__}")
    prefix = key_prefix.rstrip(":")
    if not prefix:
        return None
    KeySchema(prefix)  # validates, raising ConfigurationError with the rule
    return prefix


def _store_arguments(
    options: dict[str, Any], key_prefix: str | None, *, what: str, accepted: frozenset[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(StoreConfig options, hooks of the built store) from a history's or factory's
    options: names checked (the closest valid one suggested), ``prefix`` taken as the
    deprecated name of ``key_prefix``, not both."""
    hooks = {name: options.pop(name) for name in STORE_HOOKS if name in options}
    if key_prefix is not None:
        options["key_prefix"] = key_prefix
    return store_options(options, what=what, accepted=accepted | set(STORE_HOOKS)), hooks


def _config(url: str | None, ttl: Any, options: dict[str, Any]) -> StoreConfig:
    overrides = dict(options)
    if url is not None:
        overrides["url"] = url
    if ttl is not UNSET:
        overrides["ttl"] = ttl
    return StoreConfig.from_env(**overrides)


def _check_window(window: object) -> int | None:
    if window is None:
        return None
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise InvalidArgumentError("window must be None or an int >= 1")
    return window


def _check_max_tokens(max_tokens: object, window: int | None) -> int | None:
    if max_tokens is None:
        return None
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 0:
        raise InvalidArgumentError("max_tokens must be None or an int >= 0")
    if window is not None:
        raise ConfigurationError("give window or max_tokens, not both")
    return max_tokens


LANGCHAIN_REDIS_ARGUMENTS = ("redis_url", "redis_client", "index_name", "overwrite_index")
"""Keywords only ``langchain_redis.RedisChatMessageHistory`` takes: any of them makes a
history take langchain-redis's meaning of the shared ones (see :func:`langchain_redis`)."""
_IGNORED_NAMES = ("index_name", "overwrite_index")
_LANGCHAIN_REDIS_PREFIX = "chat"


class LangchainRedisArguments:
    """What langchain-redis's constructor arguments mean for a chatkeep history."""

    def __init__(
        self, url: str | None, key_prefix: str | None, ttl: Any, options: dict[str, Any]
    ) -> None:
        redis_url = options.pop("redis_url", None)
        self.client: Any = options.pop("redis_client", None)
        ignored = [name for name in _IGNORED_NAMES if options.pop(name, None) is not None]
        ignored += sorted(
            name
            for name in options
            if name not in StoreConfig.model_fields and name not in STORE_HOOKS
        )
        for name in ignored:
            options.pop(name, None)
        if ignored:
            warnings.warn(
                "chatkeep_langchain.RedisChatMessageHistory ignores langchain-redis's "
                f"{', '.join(ignored)}: chatkeep needs no search index (RediSearch) and "
                "builds its own Redis connection",
                UserWarning,
                stacklevel=3,
            )
        if redis_url is not None and url is not None:
            raise ConfigurationError("give url or redis_url, not both")
        self.url = url if redis_url is None else redis_url
        # langchain-redis's default prefix, "chat:" (chatkeep keys: chat:{<session>}:m)
        self.key_prefix = _LANGCHAIN_REDIS_PREFIX if key_prefix is None else key_prefix
        # langchain-redis expires a message `ttl` seconds after it is written when ttl
        # is truthy: None and 0 never expire; a negative ttl deletes each message as it
        # is written, which chatkeep refuses when a history writes.
        self.refused_ttl: Any = None
        if ttl is UNSET or ttl is None or ttl == 0:
            self.ttl: Any = None
        elif not isinstance(ttl, bool) and isinstance(ttl, (int, float)) and ttl < 0:
            self.ttl, self.refused_ttl = None, ttl
        else:
            self.ttl = ttl
        # langchain-redis raises when Redis is unreachable: so does the drop-in, unless
        # fallback="memory" asks for chatkeep's fallback
        options.setdefault("fallback", "raise")


def _given(
    store: Any,
    async_store: Any,
    *,
    builders: tuple[object, ...],
    checked: dict[str, Any],
    hooks: dict[str, Any],
    builder: str,
) -> Backing:
    """The backing of given stores: a URL, a client or a store option would configure
    a store that is not built (an error, not ignored); a key prefix must be theirs."""
    prefix = checked.pop("key_prefix", None)
    if any(given is not None for given in builders) or checked or hooks:
        raise ConfigurationError(
            f"url, client and store options apply when the {builder}; "
            "a given store keeps its own configuration"
        )
    backing = Backing(store=store, async_store=async_store)
    if prefix is not None and prefix != backing.prefix:
        raise ConfigurationError(
            f"key_prefix {prefix!r} differs from the given store's prefix {backing.prefix!r}"
        )
    return backing


class RedisChatMessageHistory(BaseChatMessageHistory):
    """Chat message history in Redis, through a chatkeep store.

    Drop-in for ``langchain_community.chat_message_histories.RedisChatMessageHistory``:
    the first four arguments are the same (``session_id, url, key_prefix, ttl``)::

        from chatkeep_langchain import RedisChatMessageHistory

        history = RedisChatMessageHistory("s1", "redis://localhost:6379/0", ttl=3600)

    Where the stores come from (no connection is made until the first call, so a
    history can always be constructed, even when Redis is down):

    * ``url`` (and store options such as ``connect_timeout``, ``max_messages``,
      ``fallback``, and the store's ``on_state_change``, ``on_conflict`` and
      ``token_counter``): stores built from the URL, shared process-wide by every
      history of the same configuration and hooks (one pool, one fallback mirror).
      ``url=None`` reads ``CHATKEEP_URL``/``REDIS_URL``, else
      ``redis://localhost:6379/0``; other options not given come from ``CHATKEEP_*``.
      A misspelled option is a :class:`chatkeep.ConfigurationError` naming the
      closest valid one (and a mypy error: the options are typed).
    * ``client`` / ``async_client``: stores on your ``redis.Redis`` /
      ``redis.asyncio.Redis`` clients (pass the same client object every time).
    * ``store`` / ``async_store``: your :class:`chatkeep.ConversationStore` and/or
      :class:`chatkeep.AsyncConversationStore`.

    Sync methods use the sync store; ``aget_messages``, ``aadd_messages`` and
    ``aclear`` await the async store on ``redis.asyncio`` (no threads). With only a
    sync store given, async methods run it in an executor thread (as LangChain's
    default does), or directly for ``memory://``; with only an async store, the sync
    methods raise :class:`chatkeep.ConfigurationError`.

    ``ttl`` (seconds): not given -> the store's TTL (chatkeep's default, 7 days,
    sliding: every read and write restarts it); ``None`` -> the session never expires
    (``langchain_community``'s default); a number -> that TTL. With a given ``store``
    the TTL is set per session on each write.

    ``window=k`` reads only the newest ``k`` messages (from the tail of the Redis
    list), then drops tool/function results at its start whose call fell outside
    the window, so a model never receives an orphan tool message. ``max_tokens=N``
    reads the newest messages whose token counts (taken by the store's
    ``token_counter`` when they were written) fit in N, with a leading system message
    kept when it fits, and drops orphan tool results the same way.

    Designed to be subclassed; override these hooks rather than the methods:

    * :meth:`session_key`: map LangChain's ``session_id`` (and ``owner``) to the
      chatkeep session id and owner (a custom key/owner scheme);
    * :meth:`to_record` / :meth:`from_record`: convert one message, return None to
      skip it (filter what is stored or what is read);
    * :meth:`record_metadata`: neutral metadata stored with each message;
    * :meth:`filter_messages`: last look at what a read returns.

    A subclass that overrides ``__init__`` must accept and pass on ``**kwargs``
    (:func:`history_factory` passes private arguments through them).
    """

    def __init__(
        self,
        session_id: str,
        url: str | None = None,
        key_prefix: str | None = None,
        ttl: float | None = UNSET,
        *,
        store: ConversationStore | AsyncConversationStore | None = None,
        async_store: AsyncConversationStore | None = None,
        client: Any = None,
        async_client: Any = None,
        owner: str | None = None,
        window: int | None = None,
        max_tokens: int | None = None,
        snapshot: bool = False,
        **store_options: Unpack[HistoryOptions],
    ) -> None:
        options: dict[str, Any] = dict(store_options)
        backing: Backing | None = options.pop("_backing", None)
        self._refused_ttl: Any = None
        if any(name in options for name in LANGCHAIN_REDIS_ARGUMENTS):
            given = LangchainRedisArguments(url, key_prefix, ttl, options)
            if client is not None and given.client is not None:
                raise ConfigurationError("give client or redis_client, not both")
            url, key_prefix, ttl = given.url, given.key_prefix, given.ttl
            client = client if given.client is None else given.client
            self._refused_ttl = given.refused_ttl
        self.session_id: str = validate_id(session_id)
        self.window: int | None = _check_window(window)
        self.max_tokens: int | None = _check_max_tokens(max_tokens, self.window)
        self.snapshot: bool = bool(snapshot)
        self._append_ttl: Any = UNSET
        checked, hooks = _store_arguments(
            options,
            store_prefix(key_prefix),
            what=type(self).__name__,
            accepted=keywords_of(type(self)),
        )
        if (
            ttl is not UNSET
            and ttl is not None
            and (isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0)
        ):
            raise ConfigurationError("ttl must be a positive number of seconds, or None")

        if backing is not None:
            self._backing = backing
            self._append_ttl = ttl
        elif store is not None or async_store is not None:
            self._backing = _given(
                store,
                async_store,
                builders=(url, client, async_client),
                checked=checked,
                hooks=hooks,
                builder="history builds its store",
            )
            self._append_ttl = ttl
        else:
            config = _config(url, ttl, checked)
            self._backing = shared_backing(config, client, async_client, hooks)

        self._sid, self._owner = self.session_key(self.session_id, owner)
        self._sid = validate_id(self._sid)
        if self._owner is not None:
            self._owner = validate_id(self._owner, "owner")
        self._snapshot: list[BaseMessage] | None = None
        super().__init__()

    # -- hooks for subclasses -----------------------------------------------------------

    def session_key(self, session_id: str, owner: str | None) -> tuple[str, str | None]:
        """The chatkeep (session id, owner) of this history. Default: as given.

        Override for a custom scheme, e.g. ``"u42/chat7"`` -> ``("u42/chat7", "u42")``
        to bind every conversation to its user.
        """
        return session_id, owner

    def record_metadata(self, message: BaseMessage) -> dict[str, Any]:
        """Neutral metadata stored with ``message`` (record ``meta``). Default: none."""
        return {}

    def to_record(self, message: BaseMessage) -> Message | None:
        """The chatkeep record of ``message``, or None to not store it."""
        return to_chatkeep(message, metadata=self.record_metadata(message))

    def from_record(self, record: Message) -> BaseMessage | None:
        """The LangChain message of a stored record, or None to leave it out."""
        return from_chatkeep(record)

    def filter_messages(self, messages: list[BaseMessage]) -> list[BaseMessage]:
        """What a read returns, given the converted messages. Default: all of them."""
        return messages

    # -- identity -------------------------------------------------------------------------

    @property
    def owner(self) -> str | None:
        """The owner this history reads and writes as (None: unchecked)."""
        return self._owner

    @property
    def store_session_id(self) -> str:
        """The chatkeep session id (after :meth:`session_key`)."""
        return self._sid

    @property
    def key(self) -> str:
        """The Redis key of the message list (``<prefix>:{<session>}:m``)."""
        return KeySchema(self._backing.prefix).session(self._sid)[0]

    @property
    def store(self) -> ConversationStore | None:
        """The synchronous store (None if this history has only an async one)."""
        return self._backing.sync_store()

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(session_id={self.session_id!r}, "
            f"prefix={self._backing.prefix!r}, window={self.window!r})"
        )

    # -- internals ----------------------------------------------------------------------

    def _sync_store(self) -> ConversationStore:
        store = self._backing.sync_store()
        if store is None:
            raise ConfigurationError(
                "this history has only an AsyncConversationStore: use aget_messages(), "
                "aadd_messages() and aclear(), or give it a sync store too"
            )
        return store

    def _records(self, messages: Sequence[BaseMessage]) -> list[Message]:
        if self._refused_ttl is not None:
            raise ConfigurationError(
                f"ttl={self._refused_ttl!r}: a negative ttl would delete each message as it "
                "is written (langchain-redis's EXPIRE); chatkeep refuses to write it"
            )
        if isinstance(messages, BaseMessage):
            messages = [messages]
        records = []
        for message in messages:
            record = self.to_record(message)
            if record is not None:
                records.append(record)
        return records

    def _conversion(self) -> Conversion[BaseMessage | None]:
        # Records go straight into LangChain messages, unless a subclass reads them
        # its own way (from_record overridden): then through chatkeep Messages.
        if type(self).from_record is RedisChatMessageHistory.from_record:
            return CONVERSION
        return Conversion(self.from_record)

    def _finish(self, converted: Sequence[BaseMessage | None]) -> list[BaseMessage]:
        messages = [message for message in converted if message is not None]
        if self.window is not None or self.max_tokens is not None:
            # a tail: no tool result whose call was left out (a kept system message stays)
            kept = 1 if messages and isinstance(messages[0], SystemMessage) else 0
            start = kept
            while start < len(messages) and isinstance(
                messages[start], (ToolMessage, FunctionMessage)
            ):
                start += 1
            messages = messages[:kept] + messages[start:]
        messages = self.filter_messages(messages)
        if self.snapshot:
            self._snapshot = list(messages)
        return messages

    def _read_sync(self) -> list[BaseMessage | None]:
        return self._sync_store().messages(
            self._sid,
            last=self.window,
            max_tokens=self.max_tokens,
            owner=self._owner,
            into=self._conversion(),
        )

    def _append_sync(self, records: list[Message]) -> None:
        self._sync_store().append(self._sid, records, owner=self._owner, ttl=self._append_ttl)

    def _clear_sync(self) -> None:
        self._sync_store().clear(self._sid, owner=self._owner)

    # -- BaseChatMessageHistory -----------------------------------------------------------

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        """The messages, oldest first (the newest ``window`` when a window is set).

        With ``snapshot=True`` the first read is kept and returned again until this
        history writes or clears (one Redis read per turn, see :func:`history_factory`).
        """
        if self._snapshot is not None:
            return list(self._snapshot)
        return self._finish(self._read_sync())

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Append messages in one atomic round trip (nothing is written if any fails
        to encode, e.g. a value JSON cannot hold)."""
        records = self._records(messages)
        if not records:
            return
        self._snapshot = None
        self._append_sync(records)

    def clear(self) -> None:
        """Delete the session (its messages and metadata)."""
        self._snapshot = None
        self._clear_sync()

    async def aget_messages(self) -> list[BaseMessage]:
        """Async :attr:`messages`, awaited on the async store (``redis.asyncio``)."""
        if self._snapshot is not None:
            return list(self._snapshot)
        astore = self._backing.async_store()
        if astore is not None:
            converted = await astore.messages(
                self._sid,
                last=self.window,
                max_tokens=self.max_tokens,
                owner=self._owner,
                into=self._conversion(),
            )
        elif self._backing.async_mode == "inline":
            converted = self._read_sync()
        else:
            converted = await run_in_executor(None, self._read_sync)
        return self._finish(converted)

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        """Async :meth:`add_messages` (one round trip per batch)."""
        records = self._records(messages)
        if not records:
            return
        self._snapshot = None
        astore = self._backing.async_store()
        if astore is not None:
            await astore.append(self._sid, records, owner=self._owner, ttl=self._append_ttl)
        elif self._backing.async_mode == "inline":
            self._append_sync(records)
        else:
            await run_in_executor(None, self._append_sync, records)

    async def aclear(self) -> None:
        """Async :meth:`clear`."""
        self._snapshot = None
        astore = self._backing.async_store()
        if astore is not None:
            await astore.clear(self._sid, owner=self._owner)
        elif self._backing.async_mode == "inline":
            self._clear_sync()
        else:
            await run_in_executor(None, self._clear_sync)

    # -- langchain-redis's methods -------------------------------------------------------

    @property
    def id(self) -> str:
        """The session id (langchain-redis's ``id``)."""
        return self.session_id

    @property
    def redis_client(self) -> Any:
        """The ``redis.Redis`` client of the sync store (None for ``memory://`` or an
        async-only history), as langchain-redis exposes it."""
        store = self._backing.sync_store()
        connection = None if store is None else store.connection
        return None if connection is None else connection.client

    def __len__(self) -> int:
        """The number of messages in the session (one round trip, no TTL refresh)."""
        info = self._sync_store().info(self._sid, owner=self._owner)
        return 0 if info is None else info.message_count

    def __bool__(self) -> bool:
        # A history is an object, not a container to test: ``if history`` stays True
        # (and costs no round trip) although it has a length.
        return True

    def delete(self) -> None:
        """Delete the session: its messages and metadata (as :meth:`clear`).

        langchain-redis's ``delete()`` also drops its RediSearch index together with
        every session under its ``key_prefix``; chatkeep has no index, and deletes
        only this history's session (``chatkeep purge`` removes many)."""
        self.clear()

    async def adelete(self) -> None:
        """Async :meth:`delete`."""
        await self.aclear()

    def search_messages(self, query: str, limit: int = 10) -> list[dict[str, Any]]:
        """Messages of this session whose text (or tool-call arguments) contains
        ``query``, case-insensitively, newest first, at most ``limit``, as
        langchain-redis returns them: dicts with ``type``, ``content`` and
        ``additional_kwargs`` (and ``tool_call_id``/``status`` for tool messages).

        A substring match on plain Redis (``store.search``: one server-side script
        over the newest 2,000 messages at most), where langchain-redis runs a
        RediSearch full-text query (words, stemming, ordered by relevance). An empty
        or non-str query, or a limit below 1, finds nothing, as there."""
        if not isinstance(query, str) or not query or _no_limit(limit):
            return []
        found = self._sync_store().search(self._sid, query, limit=limit, owner=self._owner)
        return self._search_results(found)

    async def asearch_messages(self, query: str, limit: int = 10) -> list[dict[str, Any]]:
        """Async :meth:`search_messages`, awaited on the async store."""
        if not isinstance(query, str) or not query or _no_limit(limit):
            return []
        astore = self._backing.async_store()
        if astore is not None:
            found = await astore.search(self._sid, query, limit=limit, owner=self._owner)
        elif self._backing.async_mode == "inline":
            found = self._sync_store().search(self._sid, query, limit=limit, owner=self._owner)
        else:
            return await run_in_executor(None, self.search_messages, query, limit)
        return self._search_results(found)

    def _search_results(self, found: list[Message]) -> list[dict[str, Any]]:
        results = []
        for record in found:
            message = self.from_record(record)
            if message is not None:
                results.append(search_result(message))
        return results


def _no_limit(limit: object) -> bool:
    return isinstance(limit, int) and not isinstance(limit, bool) and limit < 1


def search_result(message: BaseMessage) -> dict[str, Any]:
    """A message as langchain-redis's ``search_messages`` returns it (its stored
    ``data``): ``content``, ``additional_kwargs``, ``type``; for a tool message also
    ``tool_call_id`` and ``status``."""
    result: dict[str, Any] = {
        "content": message.content,
        "additional_kwargs": message.additional_kwargs,
        "type": message.type,
    }
    if isinstance(message, ToolMessage):
        result["tool_call_id"] = message.tool_call_id
        result["status"] = message.status
    return result


class HistoryFactory(Closing, AsyncClosing):
    """``get_session_history`` for ``RunnableWithMessageHistory``, on one pool.

    Call it with a session id to get a :class:`RedisChatMessageHistory` (or
    ``history_class``) on the factory's stores. Every history it makes shares them:
    one connection pool and one fallback mirror for all sessions and turns.

    Histories it makes use ``snapshot=True`` by default: ``RunnableWithMessageHistory``
    makes a new history per turn and, when it has no ``history_messages_key``, reads
    the history a second time at the end of the turn only to count the messages it
    prepended; the snapshot answers that from the first read (and counts right even if
    another writer appended meanwhile). A turn then costs one read and one append.

    ``RunnableWithMessageHistory``'s ``history_factory_config``: by default the factory
    takes one field, ``session_id``. ``session_field="conversation_id"`` names the
    configurable field that holds the session id, ``owner_field="user_id"`` the one
    that holds the owner each history is bound to (a session written by one owner is
    refused to another: :class:`chatkeep.SessionOwnershipError`). The factory's
    :attr:`history_factory_config` is the matching list of ``ConfigurableFieldSpec``;
    LangChain calls the factory with those fields as keywords.
    """

    def __init__(
        self,
        store: ConversationStore | AsyncConversationStore | None = None,
        *,
        async_store: AsyncConversationStore | None = None,
        url: str | None = None,
        client: Any = None,
        async_client: Any = None,
        key_prefix: str | None = None,
        ttl: float | None = UNSET,
        owner: str | None = None,
        window: int | None = None,
        max_tokens: int | None = None,
        snapshot: bool = True,
        history_class: type[RedisChatMessageHistory] = RedisChatMessageHistory,
        session_field: str = "session_id",
        owner_field: str | None = None,
        **store_options: Unpack[BuiltStoreOptions],
    ) -> None:
        if not isinstance(history_class, type) or not issubclass(
            history_class, RedisChatMessageHistory
        ):
            raise ConfigurationError("history_class must be a RedisChatMessageHistory subclass")
        self.history_class = history_class
        self.session_field, self.owner_field = _fields(session_field, owner_field, owner)
        checked, hooks = _store_arguments(
            dict(store_options),
            store_prefix(key_prefix),
            what="history_factory",
            accepted=keywords_of(type(self)),
        )
        if store is not None or async_store is not None:
            self._backing = _given(
                store,
                async_store,
                builders=(url, client, async_client),
                checked=checked,
                hooks=hooks,
                builder="factory builds its stores",
            )
            history_ttl = ttl
        else:
            config = _config(url, ttl, checked)
            self._backing = Backing(
                config=config, client=client, async_client=async_client, hooks=hooks
            )
            history_ttl = UNSET
        self._options: dict[str, Any] = {
            "ttl": history_ttl,
            "owner": owner,
            "window": _check_window(window),
            "max_tokens": _check_max_tokens(max_tokens, window),
            "snapshot": snapshot,
        }
        # RunnableWithMessageHistory compares its configurable fields with the names
        # of the factory's parameters: this instance's signature names its fields.
        names = [self.session_field] + ([self.owner_field] if self.owner_field else [])
        self._fields = tuple(names)
        self.__signature__ = inspect.Signature(
            [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names]
        )

    def __call__(self, *args: str, **fields: str) -> RedisChatMessageHistory:
        """A history on the factory's stores (no I/O): ``factory(session_id)``, or the
        configured fields as keywords (``factory(user_id=..., conversation_id=...)``)."""
        names = self._fields
        if len(args) > len(names):
            raise ConfigurationError(
                f"history_factory takes {plural(len(names), 'field')} "
                f"({', '.join(names)}), got {plural(len(args), 'positional argument')}"
            )
        values = dict(zip(names, args, strict=False))
        for name, value in fields.items():
            if name not in names:
                raise ConfigurationError(_unknown_field(name, names))
            if name in values:
                raise ConfigurationError(f"history_factory got {name!r} twice")
            values[name] = value
        missing = [name for name in names if name not in values]
        if missing:
            raise ConfigurationError(
                "history_factory needs " + ", ".join(repr(name) for name in missing)
            )
        options = dict(self._options)
        if self.owner_field is not None:
            options["owner"] = values[self.owner_field]
        make = cast(Any, self.history_class)  # _backing is private, outside HistoryOptions
        history: RedisChatMessageHistory = make(
            values[self.session_field], _backing=self._backing, **options
        )
        return history

    @property
    def history_factory_config(self) -> list[ConfigurableFieldSpec]:
        """The ``history_factory_config`` of ``RunnableWithMessageHistory`` for this
        factory's fields (the session field, and the owner field if one is set)."""
        specs = [
            ConfigurableFieldSpec(
                id=self.session_field,
                annotation=str,
                name="Session ID",
                description="The chatkeep session of the conversation.",
                default="",
                is_shared=True,
            )
        ]
        if self.owner_field is not None:
            specs.append(
                ConfigurableFieldSpec(
                    id=self.owner_field,
                    annotation=str,
                    name="Owner",
                    description="The user the conversation belongs to.",
                    default="",
                    is_shared=True,
                )
            )
        return specs

    @property
    def store(self) -> ConversationStore | None:
        """The synchronous store (built on first use; None if there is only an async one)."""
        return self._backing.sync_store()

    @property
    def async_store(self) -> AsyncConversationStore | None:
        """The asynchronous store of the running loop (None when async calls use the
        sync store: ``memory://``, or only a sync store/client was given)."""
        return self._backing.async_store()

    def close(self) -> None:
        """Close the sync store the factory built (given stores stay open)."""
        self._backing.close()

    async def aclose(self) -> None:
        """Close the stores the factory built for the running loop, and the sync one."""
        await self._backing.aclose()


def history_factory(
    store: ConversationStore | AsyncConversationStore | None = None,
    **options: Unpack[HistoryFactoryOptions],
) -> HistoryFactory:
    """``get_session_history`` for ``RunnableWithMessageHistory`` (see :class:`HistoryFactory`).

    ::

        store = ConversationStore.from_url("redis://localhost:6379/0")
        chain = RunnableWithMessageHistory(
            prompt | model, history_factory(store, window=20),
            input_messages_key="input", history_messages_key="history",
        )

    ``options``: ``async_store``, or ``url``/``client``/``async_client``, store options
    (``key_prefix``, ``fallback``, timeouts...) and the store's ``on_state_change``,
    ``on_conflict`` and ``token_counter`` when the factory should build its stores;
    ``ttl``, ``owner``, ``window``, ``max_tokens``, ``snapshot`` and ``history_class``
    for the histories; ``session_field`` and ``owner_field`` for
    ``history_factory_config`` (see ``docs/langchain-history-factory.md``).
    """
    return HistoryFactory(store, **options)


def _fields(session_field: object, owner_field: object, owner: object) -> tuple[str, str | None]:
    if not isinstance(session_field, str) or not session_field.isidentifier():
        raise ConfigurationError("session_field must be a field name (a Python identifier)")
    if owner_field is None:
        return session_field, None
    if not isinstance(owner_field, str) or not owner_field.isidentifier():
        raise ConfigurationError("owner_field must be None or a field name")
    if owner_field == session_field:
        raise ConfigurationError("session_field and owner_field must differ")
    if owner is not None:
        raise ConfigurationError("give owner (one for every history) or owner_field, not both")
    return session_field, owner_field


def _unknown_field(name: str, names: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f" (it takes {', '.join(names)})"
    return f"history_factory takes no field {name!r}{hint}"
