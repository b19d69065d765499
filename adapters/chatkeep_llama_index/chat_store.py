"""``RedisChatStore``: a LlamaIndex ``BaseChatStore`` on chatkeep."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.llms import ChatMessage
from llama_index.core.storage.chat_store.base import BaseChatStore
from typing_extensions import Unpack

from chatkeep import AsyncConversationStore, ConversationStore, InvalidArgumentError, Message

from ._common import ARCHIVE_MARK, DEFAULT, ChatStoreOptions, StoreHandle, check_key
from ._stores import AsyncOps, Stores
from .convert import CONVERSION, from_chatkeep, to_chatkeep

__all__ = ["RedisChatStore"]


class RedisChatStore(StoreHandle, BaseChatStore):
    """Chat history for ``ChatMemoryBuffer`` and chat engines, kept in Redis by chatkeep.

    A drop-in for ``llama_index.storage.chat_store.redis.RedisChatStore``::

        chat_store = RedisChatStore(redis_url="redis://localhost:6379/0", ttl=3600)
        memory = ChatMemoryBuffer.from_defaults(chat_store=chat_store, chat_store_key="user1")

    plus ``store=``/``async_store=`` (existing chatkeep stores), ``key_prefix=``
    (chatkeep's namespace, default ``"chatkeep"``), ``owner=`` (sessions bound to one
    user), ``read_max_tokens=`` (``get_messages`` reads only the newest messages that
    fit, so a ``ChatMemoryBuffer``'s token limit is served from the tail),
    ``token_counter=`` and any :class:`chatkeep.StoreConfig` option (``fallback=``,
    ``max_messages=``, ``socket_timeout=``...).

    * Every key is one chatkeep session: appends are one atomic round trip, the TTL
      is the session's (sliding, default 7 days; ``ttl=None`` or ``0``: never), and
      when Redis is unreachable the store keeps answering from its in-memory mirror
      and replays the writes later.
    * Sync methods use one thread-safe connection pool (``ChatMemoryBuffer.aget`` reads
      in a worker thread). Async methods run on ``redis.asyncio``, one pool per event
      loop, sharing the sync side's fallback.
    * Constructing never connects. ``to_dict()`` carries no client and no password.
    """

    redis_url: str | None = Field(
        default=None, description="Where the history lives (credentials left out)."
    )
    ttl: float | None = Field(
        default=None, description="Session time-to-live in seconds; None: never expires."
    )
    key_prefix: str = Field(default="chatkeep", description="chatkeep key prefix (namespace).")
    owner: str | None = Field(default=None, description="Owner every session is bound to.")
    read_max_tokens: int | None = Field(
        default=None,
        description="get_messages returns only the newest messages whose stored token "
        "counts fit in this many tokens (None: the whole history).",
    )

    _stores: Stores = PrivateAttr()

    def __init__(
        self,
        redis_url: str | None = None,
        redis_client: Any = None,
        aredis_client: Any = None,
        ttl: float | None = DEFAULT,
        *,
        read_max_tokens: int | None = None,
        store: ConversationStore | None = None,
        async_store: AsyncConversationStore | None = None,
        key_prefix: str | None = None,
        owner: str | None = None,
        **options: Unpack[ChatStoreOptions],
    ) -> None:
        if read_max_tokens is not None and (
            isinstance(read_max_tokens, bool)
            or not isinstance(read_max_tokens, int)
            or read_max_tokens < 0
        ):
            raise InvalidArgumentError("read_max_tokens must be None or an int >= 0")
        super().__init__(
            redis_url,
            redis_client,
            aredis_client,
            ttl,
            store=store,
            async_store=async_store,
            key_prefix=key_prefix,
            owner=owner,
            **options,
        )
        self.read_max_tokens = read_max_tokens

    @classmethod
    def class_name(cls) -> str:
        return "RedisChatStore"

    # -- helpers ----------------------------------------------------------------------------

    @staticmethod
    def _records(messages: Sequence[ChatMessage]) -> list[Message]:
        return [to_chatkeep(message) for message in messages]

    @staticmethod
    def _chat(messages: Sequence[Message]) -> list[ChatMessage]:
        return [from_chatkeep(message) for message in messages]

    # -- BaseChatStore ------------------------------------------------------------------------

    def set_messages(self, key: str, messages: list[ChatMessage]) -> None:
        """Replace the history of ``key`` atomically (readers never see it empty in
        between). An empty list deletes the session."""
        check_key(key)
        records = self._records(messages)
        if records:
            self._stores.sync.replace(key, records, owner=self.owner)
        else:
            self._stores.sync.clear(key, owner=self.owner)

    def get_messages(self, key: str) -> list[ChatMessage]:
        """The history of ``key``, oldest first ([] when there is none); with
        ``read_max_tokens``, only its newest messages that fit (read from the tail)."""
        check_key(key)
        return self._stores.sync.messages(
            key, owner=self.owner, into=CONVERSION, max_tokens=self.read_max_tokens
        )

    def add_message(self, key: str, message: ChatMessage, idx: int | None = None) -> None:
        """Append ``message`` (one atomic round trip), or insert it before ``idx``
        (``list.insert`` semantics, atomic)."""
        check_key(key)
        record = to_chatkeep(message)
        if idx is None:
            self._stores.sync.append(key, record, owner=self.owner)
        else:
            self._stores.sync.insert(key, idx, record, owner=self.owner)

    def delete_messages(self, key: str) -> list[ChatMessage] | None:
        """Delete the session; return its messages, or None when there was none."""
        check_key(key)
        store = self._stores.sync
        messages = store.messages(key, owner=self.owner)
        existed = store.clear(key, owner=self.owner)
        return self._chat(messages) if existed or messages else None

    def delete_message(self, key: str, idx: int) -> ChatMessage | None:
        """Remove the message at ``idx`` (negative counts from the end), keeping the
        others' order; return it, or None when out of range or missing.

        One removal by position (``store.pop``). While Redis is unreachable the
        fallback removes it from what it holds and journals the removal of that
        message, replayed only if nobody changed the session meanwhile; a position in
        the part of a long session it does not hold raises
        :class:`chatkeep.IncompleteMirrorError` instead of guessing. Removing the last
        message deletes the session (while Redis answers; an emptied session is left
        out of :meth:`get_keys`).
        """
        check_key(key)
        store = self._stores.sync
        removed = store.pop(key, idx, owner=self.owner)
        if removed is None:
            return None
        if not self._stores.degraded:
            info = store.info(key, owner=self.owner)
            if info is not None and info.message_count == 0:
                store.clear(key, owner=self.owner)
        return from_chatkeep(removed)

    def delete_last_message(self, key: str) -> ChatMessage | None:
        """Remove and return the newest message (None when there is none)."""
        return self.delete_message(key, -1)

    def get_keys(self) -> list[str]:
        """This store's sessions (its prefix, and its owner if set), most recently
        active first. Read from chatkeep's session index: no ``KEYS``, no ``SCAN``."""
        sessions = self._stores.sync.sessions(owner=self.owner)
        return [s.id for s in sessions if s.message_count and ARCHIVE_MARK not in s.id]

    # -- async twins (native redis.asyncio) ---------------------------------------------------

    async def _aio(self) -> AsyncOps:
        return await self._stores.aio()

    async def aset_messages(self, key: str, messages: list[ChatMessage]) -> None:
        """Async :meth:`set_messages`."""
        check_key(key)
        records = self._records(messages)
        store = await self._aio()
        if records:
            await store.replace(key, records, owner=self.owner)
        else:
            await store.clear(key, owner=self.owner)

    async def aget_messages(self, key: str) -> list[ChatMessage]:
        """Async :meth:`get_messages`."""
        check_key(key)
        return await (await self._aio()).messages(
            key, owner=self.owner, into=CONVERSION, max_tokens=self.read_max_tokens
        )

    async def async_add_message(
        self, key: str, message: ChatMessage, idx: int | None = None
    ) -> None:
        """Async :meth:`add_message`."""
        check_key(key)
        record = to_chatkeep(message)
        store = await self._aio()
        if idx is None:
            await store.append(key, record, owner=self.owner)
        else:
            await store.insert(key, idx, record, owner=self.owner)

    async def adelete_messages(self, key: str) -> list[ChatMessage] | None:
        """Async :meth:`delete_messages`."""
        check_key(key)
        store = await self._aio()
        messages = await store.messages(key, owner=self.owner)
        existed = await store.clear(key, owner=self.owner)
        return self._chat(messages) if existed or messages else None

    async def adelete_message(self, key: str, idx: int) -> ChatMessage | None:
        """Async :meth:`delete_message`."""
        check_key(key)
        store = await self._aio()
        removed = await store.pop(key, idx, owner=self.owner)
        if removed is None:
            return None
        if not self._stores.degraded:
            info = await store.info(key, owner=self.owner)
            if info is not None and info.message_count == 0:
                await store.clear(key, owner=self.owner)
        return from_chatkeep(removed)

    async def adelete_last_message(self, key: str) -> ChatMessage | None:
        """Async :meth:`delete_last_message`."""
        return await self.adelete_message(key, -1)

    async def aget_keys(self) -> list[str]:
        """Async :meth:`get_keys`."""
        sessions = await (await self._aio()).sessions(owner=self.owner)
        return [s.id for s in sessions if s.message_count and ARCHIVE_MARK not in s.id]
