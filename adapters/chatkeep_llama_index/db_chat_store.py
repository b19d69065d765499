"""``RedisDBChatStore``: an ``AsyncDBChatStore`` for LlamaIndex's ``Memory``, on chatkeep.

Layout: every key is two chatkeep sessions with the same TTL and fallback:

* ``<key>``: the **active** messages (the FIFO queue ``Memory`` reads on every turn),
  a plain chatkeep session, so ``RedisChatStore``, LangChain or chatkeep itself read
  the live window of the conversation as is;
* ``<key>\\x00archived``: the **archived** messages, oldest first. (Keys containing
  NUL are refused, so no key can name another key's archive.)

Why two sessions and not a status per record: ``Memory`` reads and counts the active
queue on every ``put``/``get``; as its own session that is one ``LRANGE`` of the
active part, never of the whole history, and counting is ``LLEN``. Archiving the
oldest ``n`` copies them to the archive first (one append with an idempotency key),
then removes them from the head of the active list one atomic ``pop`` each, checking
each popped id. A crash in between never loses a message: at worst it is briefly in
both lists, and readers count it as active (the archive view leaves out ids that are
still active) until the next archive call completes the move.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from llama_index.core.base.llms.types import ChatMessage
from llama_index.core.bridge.pydantic import Field, PrivateAttr
from llama_index.core.storage.chat_store.base_db import AsyncDBChatStore, MessageStatus
from typing_extensions import Unpack

from chatkeep import AsyncConversationStore, ConversationStore, IncompleteMirrorError, Message

from ._common import ARCHIVE_MARK, DEFAULT, ChatStoreOptions, StoreHandle, check_key
from ._stores import AsyncOps, Stores
from .convert import CONVERSION, from_chatkeep, to_chatkeep

__all__ = ["RedisDBChatStore"]

_TOUCHED_KEYS = 10_000  # keys whose archive refresh time is remembered


def _created(message: Message) -> datetime:
    return message.created_at


def _status(value: object, *, allow_none: bool) -> MessageStatus | None:
    if value is None:
        if allow_none:
            return None
        raise ValueError("status must be 'active' or 'archived'")
    return MessageStatus(value)


def _count(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be None or an int >= 0")
    return value


class RedisDBChatStore(StoreHandle, AsyncDBChatStore):
    """Active and archived chat messages in Redis, for ``llama_index.core.memory.Memory``::

        memory = Memory.from_defaults(
            session_id="user-42",
            chat_store=RedisDBChatStore(redis_url="redis://localhost:6379/0"),
            token_limit=40_000,
        )

    Same arguments as :class:`RedisChatStore` (``redis_url``, ``redis_client``,
    ``aredis_client``, ``ttl``, ``store=``, ``async_store=``, ``key_prefix=``,
    ``owner=``, chatkeep store options). Messages beyond ``Memory``'s token limit are
    archived, not lost; both parts of a conversation share its TTL (the archive is
    refreshed along with the active part) and the in-memory fallback.

    ``delete_message(key, idx)`` takes the position of the message in
    ``get_messages(key, status=None)`` (archived first, then active, oldest first);
    SQL stores take a row id there, which Redis lists do not have.
    """

    redis_url: str | None = Field(default=None, description="Redis URL (no credentials).")
    ttl: float | None = Field(default=None, description="Session TTL in seconds; None: never.")
    key_prefix: str = Field(default="chatkeep", description="chatkeep key prefix (namespace).")
    owner: str | None = Field(default=None, description="Owner every session is bound to.")

    _stores: Stores = PrivateAttr()
    _touched: OrderedDict[str, float] = PrivateAttr(default_factory=OrderedDict)
    _touch_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

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
        # Spelled out (not inherited) so that type checkers see these arguments rather
        # than the pydantic fields.
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

    @classmethod
    def class_name(cls) -> str:
        return "RedisDBChatStore"

    # -- the chatkeep stores ----------------------------------------------------------------

    @staticmethod
    def archive_session_id(key: str) -> str:
        """The chatkeep session id holding the archived messages of ``key``."""
        return key + ARCHIVE_MARK

    # -- helpers ----------------------------------------------------------------------------

    def _sid(self, key: str, status: MessageStatus) -> str:
        check_key(key)
        return key if status is MessageStatus.ACTIVE else key + ARCHIVE_MARK

    async def _aio(self) -> AsyncOps:
        return await self._stores.aio()

    async def _touch(self, store: AsyncOps, key: str) -> None:
        """Refresh the archive's sliding TTL now and then, so that both halves of a
        conversation live as long as its activity (at most one read per interval)."""
        config = self._stores.config
        if config.ttl is None or config.ttl_mode != "sliding":
            return
        interval = min(max(config.ttl / 20, 1.0), 3600.0)
        now = time.monotonic()
        with self._touch_lock:
            last = self._touched.get(key)
            if last is not None and now - last < interval:
                return
            self._touched[key] = now
            self._touched.move_to_end(key)
            while len(self._touched) > _TOUCHED_KEYS:
                self._touched.popitem(last=False)
        await store.messages(key + ARCHIVE_MARK, last=1, owner=self.owner)

    async def _parts(self, store: AsyncOps, key: str) -> tuple[list[Message], list[Message]]:
        """(archived, active) as stored; archived may still hold ids being moved."""
        check_key(key)
        archived = await store.messages(key + ARCHIVE_MARK, owner=self.owner)
        active = await store.messages(key, owner=self.owner)
        return archived, active

    @staticmethod
    def _archived_view(archived: list[Message], active: list[Message]) -> list[Message]:
        """Archived messages in time order (as SQL orders them), leaving out ids that
        are still active (an unfinished move)."""
        live = {m.id for m in active}
        return sorted((m for m in archived if m.id not in live), key=_created)

    @staticmethod
    def _merge(archived: list[Message], active: list[Message]) -> list[Message]:
        # Chronological, as SQL orders by timestamp; a stable sort keeps ties in order,
        # archived first.
        return sorted([*archived, *active], key=_created)

    async def _remove(
        self, store: AsyncOps, sid: str, items: list[Message], at: int, *, from_end: bool
    ) -> Message | None:
        """Remove ``items[at]`` (as read from session ``sid``) by position, counted from
        the end when ``from_end`` (a position the fallback holds even when it holds only
        the newest part of a session), checking that it is still that message (else it
        is put back and None returned)."""
        index = at - len(items) if from_end else at
        removed = await store.pop(sid, index, owner=self.owner)
        if removed is None:
            return None
        if removed.id != items[at].id:  # changed meanwhile: put it back, report nothing
            if index == -1:
                await store.append(sid, removed, owner=self.owner)
            else:
                await store.insert(
                    sid, index + 1 if index < 0 else index, removed, owner=self.owner
                )
            return None
        return removed

    async def _held_whole(self, store: AsyncOps, *parts: tuple[str, list[Message]]) -> bool:
        """Whether the lists read of these sessions are whole (while Redis is
        unreachable, the fallback may hold only the newest part of a long session)."""
        if not self._stores.degraded:
            return True
        for sid, items in parts:
            info = await store.info(sid, owner=self.owner)
            if info is not None and info.message_count > len(items):
                return False
        return True

    @staticmethod
    def _incomplete(key: str) -> IncompleteMirrorError:
        return IncompleteMirrorError(
            f"Redis is unreachable and this process holds only the newest part of the "
            f"messages of key {key!r}; a removal at that position would have to guess"
        )

    async def _drop_if_empty(self, store: AsyncOps, sid: str) -> None:
        """Delete an emptied session (not while Redis is unreachable: a journaled
        deletion is housekeeping that could only conflict; it stays out of the lists)."""
        if self._stores.degraded:
            return
        info = await store.info(sid, owner=self.owner)
        if info is not None and info.message_count == 0:
            await store.clear(sid, owner=self.owner)

    @staticmethod
    def _chat(messages: Sequence[Message]) -> list[ChatMessage]:
        return [from_chatkeep(m) for m in messages]

    # -- AsyncDBChatStore -------------------------------------------------------------------

    async def get_messages(
        self,
        key: str,
        status: MessageStatus | None = MessageStatus.ACTIVE,
        limit: int | None = None,
        offset: int | None = None,
    ) -> list[ChatMessage]:
        """Messages of ``key`` with ``status`` (None: both), oldest first, after
        skipping ``offset`` and keeping at most ``limit``."""
        wanted = _status(status, allow_none=True)
        limit, offset = _count(limit, "limit"), _count(offset, "offset")
        store = await self._aio()
        start = offset or 0
        end = None if limit is None else start + limit
        if wanted is MessageStatus.ACTIVE:  # the read of every turn: straight into ChatMessage
            sid = self._sid(key, wanted)
            chats = await store.messages(sid, owner=self.owner, into=CONVERSION)
            await self._touch(store, key)
            return chats[start:end]
        archived, active = await self._parts(store, key)
        archived = self._archived_view(archived, active)
        messages = archived if wanted is MessageStatus.ARCHIVED else self._merge(archived, active)
        return self._chat(messages[start:end])

    async def count_messages(
        self, key: str, status: MessageStatus | None = MessageStatus.ACTIVE
    ) -> int:
        """How many messages ``key`` has with ``status`` (None: both)."""
        wanted = _status(status, allow_none=True)
        store = await self._aio()
        active_info = await store.info(self._sid(key, MessageStatus.ACTIVE), owner=self.owner)
        active = active_info.message_count if active_info else 0
        if wanted is MessageStatus.ACTIVE:
            return active
        archive_info = await store.info(key + ARCHIVE_MARK, owner=self.owner)
        archived = archive_info.message_count if archive_info else 0
        if archived and active:  # leave out ids still being moved (normally none)
            archived = len(self._archived_view(*await self._parts(store, key)))
        return archived if wanted is MessageStatus.ARCHIVED else archived + active

    async def add_message(
        self, key: str, message: ChatMessage, status: MessageStatus = MessageStatus.ACTIVE
    ) -> None:
        """Append one message with ``status`` (one atomic round trip)."""
        await self.add_messages(key, [message], status)

    async def add_messages(
        self,
        key: str,
        messages: list[ChatMessage],
        status: MessageStatus = MessageStatus.ACTIVE,
    ) -> None:
        """Append messages with ``status`` in one atomic round trip."""
        wanted = _status(status, allow_none=False)
        assert wanted is not None
        sid = self._sid(key, wanted)
        records = [to_chatkeep(m) for m in messages]
        if not records:
            return
        store = await self._aio()
        await store.append(sid, records, owner=self.owner)
        if wanted is MessageStatus.ACTIVE:
            await self._touch(store, key)

    async def set_messages(
        self,
        key: str,
        messages: list[ChatMessage],
        status: MessageStatus = MessageStatus.ACTIVE,
    ) -> None:
        """Make ``messages`` (with ``status``) all that ``key`` holds, as the SQL
        store does: the list of that status is replaced atomically, the other cleared."""
        wanted = _status(status, allow_none=False)
        assert wanted is not None
        other = MessageStatus.ARCHIVED if wanted is MessageStatus.ACTIVE else MessageStatus.ACTIVE
        sid, other_sid = self._sid(key, wanted), self._sid(key, other)
        records = [to_chatkeep(m) for m in messages]
        store = await self._aio()
        if records:
            await store.replace(sid, records, owner=self.owner)
        else:
            await store.clear(sid, owner=self.owner)
        await store.clear(other_sid, owner=self.owner)

    async def delete_message(self, key: str, idx: int) -> ChatMessage | None:
        """Remove the message at position ``idx`` of ``get_messages(key, status=None)``
        (negative counts from the end) and return it; None when out of range.

        A removal by position through the store, in an outage too (the fallback
        journals the removal of that message); while Redis is unreachable, a position
        the fallback cannot place (it holds only the newest part of a long
        conversation) raises :class:`chatkeep.IncompleteMirrorError`."""
        if isinstance(idx, bool) or not isinstance(idx, int):
            raise ValueError("idx must be an int")
        store = await self._aio()
        archived, active = await self._parts(store, key)
        merged = self._merge(self._archived_view(archived, active), active)
        # From the start, a position counts every older message: all must be held.
        # From the end, the newest ones are enough.
        inside = -len(merged) <= idx < len(merged)
        if (idx >= 0 or not inside) and not await self._held_whole(
            store, (key, active), (key + ARCHIVE_MARK, archived)
        ):
            raise self._incomplete(key)
        if not inside:
            return None
        target = merged[idx]
        in_active = {id(m): i for i, m in enumerate(active)}
        if id(target) in in_active:
            sid, items, at = key, active, in_active[id(target)]
        else:
            sid, items = key + ARCHIVE_MARK, archived
            at = next(i for i, m in enumerate(archived) if m is target)
        removed = await self._remove(store, sid, items, at, from_end=idx < 0)
        if removed is None:
            return None
        if sid == key:  # a copy left in the archive by an unfinished move goes too
            for i, m in enumerate(archived):
                if m.id == target.id:
                    await self._remove(store, key + ARCHIVE_MARK, archived, i, from_end=True)
                    await self._drop_if_empty(store, key + ARCHIVE_MARK)
                    break
        await self._drop_if_empty(store, sid)
        return from_chatkeep(removed)

    async def delete_messages(self, key: str, status: MessageStatus | None = None) -> None:
        """Delete the messages of ``key`` with ``status`` (None: all of them)."""
        wanted = _status(status, allow_none=True)
        store = await self._aio()
        if wanted in (None, MessageStatus.ACTIVE):
            await store.clear(self._sid(key, MessageStatus.ACTIVE), owner=self.owner)
        if wanted in (None, MessageStatus.ARCHIVED):
            await store.clear(self._sid(key, MessageStatus.ARCHIVED), owner=self.owner)

    async def delete_oldest_messages(self, key: str, n: int) -> list[ChatMessage]:
        """Remove the ``n`` oldest active messages and return them."""
        if _count(n, "n") == 0:
            return []
        sid = self._sid(key, MessageStatus.ACTIVE)
        store = await self._aio()
        # Removals from the head, one position at a time (while Redis is unreachable,
        # the fallback refuses the head of a session it holds only in part).
        removed: list[Message] = []
        for _ in range(n):
            message = await store.pop(sid, 0, owner=self.owner)
            if message is None:
                break
            removed.append(message)
        if removed:
            await self._drop_if_empty(store, sid)
        return self._chat(removed)

    async def archive_oldest_messages(self, key: str, n: int) -> list[ChatMessage]:
        """Move the ``n`` oldest active messages to the archive and return them."""
        if _count(n, "n") == 0:
            return []
        sid, archive = self._sid(key, MessageStatus.ACTIVE), key + ARCHIVE_MARK
        store = await self._aio()
        active = await store.messages(sid, owner=self.owner)
        batch = active[:n]
        if not batch:
            return []
        if not await self._held_whole(store, (sid, active)):
            raise self._incomplete(key)  # the oldest are not held: copy nothing
        # 1. Copy to the archive (skipping what an unfinished earlier move copied).
        tail = await store.messages(archive, last=len(batch), owner=self.owner)
        have = {m.id for m in tail}
        copy = [m for m in batch if m.id not in have]
        if copy:
            token = hashlib.blake2b("\n".join(m.id for m in copy).encode(), digest_size=16).digest()
            await store.append(archive, copy, owner=self.owner, idempotency_key=token)
        # 2. Remove them from the head of the active list, checking each one.
        moved: list[Message] = []
        for expected in batch:
            popped = await store.pop(sid, 0, owner=self.owner)
            if popped is None:
                break
            if popped.id != expected.id:  # the head changed meanwhile: put it back
                await store.insert(sid, 0, popped, owner=self.owner)
                break
            moved.append(popped)
        if moved:
            await self._drop_if_empty(store, sid)
        return self._chat(moved)

    async def get_keys(self) -> list[str]:
        """Keys with active or archived messages (this prefix and owner), most recently
        active first; read from chatkeep's session index, never ``KEYS``/``SCAN``."""
        store = await self._aio()
        keys: dict[str, None] = {}
        for info in await store.sessions(owner=self.owner):
            if not info.message_count:
                continue  # emptied while Redis was unreachable
            sid = info.id
            keys[sid[: -len(ARCHIVE_MARK)] if sid.endswith(ARCHIVE_MARK) else sid] = None
        return list(keys)
