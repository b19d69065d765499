"""``RedisSaver``: a LangGraph checkpointer on plain Redis, through chatkeep."""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import logging
import random
import threading
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping, Sequence
from types import TracebackType
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from chatkeep import (
    UNSET,
    AsyncConversationStore,
    BackendUnavailableError,
    ChatkeepError,
    ConfigurationError,
    ConversationStore,
    InvalidArgumentError,
    StoreConfig,
    StoreStatus,
)
from chatkeep.backends.base import Unreachable
from chatkeep.backends.fallback import Fallback, Route

from ._layout import Delete, Dump, Entry, Load, MemoryCheckpoints, Op, Page, Policy, Prune
from ._redis import AsyncRedisCheckpoints, RedisCheckpoints, check_client

__all__ = ["RedisSaver"]

logger = logging.getLogger("chatkeep")

_LIST_PAGE = 100


def _is_async_client(client: Any) -> bool:
    import redis.asyncio as redis_async

    return isinstance(client, (redis_async.Redis, redis_async.RedisCluster))


def _redis_client_of(store: ConversationStore | AsyncConversationStore) -> Any:
    """The redis-py client behind a chatkeep store (None for ``memory://``)."""
    primary = store._primary
    return None if getattr(primary, "name", "") == "memory" else primary.client


def _check_serde(serde: SerializerProtocol | None) -> SerializerProtocol:
    if serde is None:
        return JsonPlusSerializer(pickle_fallback=False)
    if getattr(serde, "pickle_fallback", False):
        raise ConfigurationError(
            "chatkeep stores no pickle: use a serializer without pickle_fallback"
        )
    return serde


class RedisSaver(BaseCheckpointSaver[str]):
    """LangGraph checkpointer on plain Redis (standalone, Cluster, Sentinel) or memory.

    ::

        from chatkeep_langgraph import RedisSaver

        saver = RedisSaver("redis://localhost:6379/0", ttl=7 * 24 * 3600, keep_last=20)
        graph = builder.compile(checkpointer=saver)
        graph.invoke(inputs, {"configurable": {"thread_id": "chat-42"}})

    Where the connection comes from (no connection is made when the saver is made):

    * a URL (``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``,
      ``redis+sentinel://``, ``memory://``) and chatkeep options (``prefix``, ``ttl``,
      ``ttl_mode``, ``fallback``, timeouts...), defaulting to ``CHATKEEP_*`` /
      ``REDIS_URL``: a sync connection pool, and one async pool per event loop;
    * ``store=`` a :class:`chatkeep.ConversationStore` (or the async one): its
      configuration and its Redis connection;
    * ``client=`` a ``redis.Redis``/``RedisCluster`` and/or ``async_client=`` a
      ``redis.asyncio`` one (left open by :meth:`close`).

    Every checkpoint write is one atomic Lua script on the thread's keys (one hash
    tag); a channel that did not change is never written again; the whole thread
    expires after ``ttl`` seconds (refreshed by reads and writes in ``sliding`` mode);
    ``keep_last=N`` keeps the newest N checkpoints of each namespace of a thread.
    When Redis is unreachable (``fallback="memory"``, the default) calls are served
    by a local mirror and writes are journaled, then replayed once when Redis is back.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        store: ConversationStore | AsyncConversationStore | None = None,
        client: Any = None,
        async_client: Any = None,
        keep_last: int | None = None,
        serde: SerializerProtocol | None = None,
        on_state_change: Callable[[str, StoreStatus], None] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(serde=_check_serde(serde))
        if keep_last is not None and (
            isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1
        ):
            raise InvalidArgumentError("keep_last must be None or an int >= 1")
        if client is not None and _is_async_client(client):
            if async_client is not None:
                raise ConfigurationError("client and async_client are both asynchronous clients")
            client, async_client = None, client
        if store is not None:
            if not isinstance(store, (ConversationStore, AsyncConversationStore)):
                raise ConfigurationError(
                    "store must be a chatkeep ConversationStore or AsyncConversationStore"
                )
            if url is not None or options or client is not None or async_client is not None:
                raise ConfigurationError("pass either store=, or a URL/client and options")
            config = store.config
            if isinstance(store, ConversationStore):
                client = _redis_client_of(store)
            else:
                async_client = _redis_client_of(store)
        else:
            if url is not None:
                options["url"] = url
            if options.get("ttl") is UNSET:
                del options["ttl"]
            config = StoreConfig.from_env(**options)
        for given in (client, async_client):
            if given is not None:
                check_client(given)
        self.config = config
        self.policy = Policy(
            prefix=config.prefix,
            serde=self.serde,
            ttl_ms=0 if config.ttl is None else round(config.ttl * 1000),
            fixed=config.ttl_mode == "fixed",
            keep_last=keep_last or 0,
        )
        self._on_state_change = on_state_change
        self._lock = threading.Lock()
        self._client = client
        self._async_client = async_client
        self._built: ConversationStore | None = None
        self._per_loop: MutableMapping[
            asyncio.AbstractEventLoop, tuple[AsyncConversationStore, AsyncRedisCheckpoints]
        ] = weakref.WeakKeyDictionary()
        self._sync: RedisCheckpoints | MemoryCheckpoints | None = None
        self._async: AsyncRedisCheckpoints | None = None
        self._memory = (
            client is None
            and async_client is None
            and (
                config.scheme == "memory" or (store is not None and _redis_client_of(store) is None)
            )
        )
        self._fallback: Fallback | None = None
        self.mirror: MemoryCheckpoints | None = None
        if self._memory:
            self._sync = MemoryCheckpoints(
                ttl_ms=self.policy.ttl_ms, fixed=self.policy.fixed, keep_last=self.policy.keep_last
            )
        else:
            if client is not None:
                self._sync = RedisCheckpoints(client, self.policy)
            if async_client is not None:
                self._async = AsyncRedisCheckpoints(async_client, self.policy)
            if config.fallback == "memory":
                mirror = MemoryCheckpoints(
                    ttl_ms=self.policy.ttl_ms,
                    fixed=self.policy.fixed,
                    keep_last=self.policy.keep_last,
                    max_threads=config.mirror_sessions,
                )
                self.mirror = mirror
                self._fallback = Fallback(
                    mirror=cast(Any, mirror),
                    journal_size=config.journal_size,
                    probe_interval=config.probe_interval,
                    probe_max=config.probe_max,
                    logger=logger,
                    notify=self._notify,
                )
        # sync calls from an async-only client have no connection to use
        self._sync_ok = self._memory or client is not None or async_client is None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisSaver:
        return cls(url, **options)

    # -- backends ---------------------------------------------------------------------------

    def _sync_backend(self) -> RedisCheckpoints | MemoryCheckpoints:
        if self._sync is None:
            if not self._sync_ok:
                raise ConfigurationError(
                    "this RedisSaver was given only an async client: use the async methods "
                    "(ainvoke/astream), or pass client= too"
                )
            with self._lock:
                if self._sync is None:
                    self._built = ConversationStore(self.config)
                    made = _redis_client_of(self._built)
                    check_client(made)
                    self._sync = RedisCheckpoints(made, self.policy)
        return self._sync

    def _async_backend(self) -> AsyncRedisCheckpoints | None:
        """The async backend of the running loop, or None: then async calls run the
        sync path (memory: inline; a sync client only: in a worker thread)."""
        if self._async is not None:
            return self._async
        if self._memory or self._client is not None:
            return None
        loop = asyncio.get_running_loop()
        with self._lock:
            made = self._per_loop.get(loop)
            if made is None:
                store = AsyncConversationStore(self.config)
                client = _redis_client_of(store)
                check_client(client)
                made = (store, AsyncRedisCheckpoints(client, self.policy))
                self._per_loop[loop] = made
        return made[1]

    # -- the one place where calls meet the fallback ---------------------------------------

    def _unavailable(self, exc: Unreachable) -> BackendUnavailableError:
        return BackendUnavailableError(
            f"Redis at {self.config.safe_url} is unreachable ({exc}); fallback is off"
        )

    def _run(self, op: Op) -> Any:
        primary = self._sync_backend()
        fb = self._fallback
        if fb is None:
            try:
                return getattr(primary, op.kind)(op)
            except Unreachable as exc:
                raise self._unavailable(exc) from exc.cause
        route = fb.route()
        if route is not Route.LOCAL:
            try:
                if route is Route.PROBE:
                    self._replay(fb, primary)
                result = getattr(primary, op.kind)(op)
            except Unreachable as exc:
                fb.failed(exc)
            else:
                fb.succeeded(cast(Any, op), result)
                return result
        return fb.serve(cast(Any, op))

    @staticmethod
    def _replay(fb: Fallback, primary: Any) -> None:
        primary.ping()
        while (op := fb.next_pending()) is not None:
            try:
                getattr(primary, op.kind)(op)
            except ChatkeepError as exc:
                fb.rejected(op, exc)
            else:
                fb.replayed(op)

    async def _arun(self, op: Op) -> Any:
        primary = self._async_backend()
        if primary is None:
            if self._memory:
                return self._run(op)
            return await asyncio.to_thread(self._run, op)
        fb = self._fallback
        if fb is None:
            try:
                return await getattr(primary, op.kind)(op)
            except Unreachable as exc:
                raise self._unavailable(exc) from exc.cause
        route = fb.route()
        if route is not Route.LOCAL:
            try:
                if route is Route.PROBE:
                    await self._areplay(fb, primary)
                result = await getattr(primary, op.kind)(op)
            except Unreachable as exc:
                fb.failed(exc)
            else:
                fb.succeeded(cast(Any, op), result)
                return result
        return fb.serve(cast(Any, op))

    @staticmethod
    async def _areplay(fb: Fallback, primary: AsyncRedisCheckpoints) -> None:
        await primary.ping()
        while (op := fb.next_pending()) is not None:
            try:
                await getattr(primary, op.kind)(op)
            except ChatkeepError as exc:
                fb.rejected(op, exc)
            else:
                fb.replayed(op)

    def flush(self) -> int:
        """Try now to reach Redis and replay journaled writes; return how many remain."""
        fb = self._fallback
        if fb is None or fb.state == "closed":
            return 0
        if fb.route(force_probe=True) is Route.PROBE:
            try:
                self._replay(fb, self._sync_backend())
            except Unreachable as exc:
                fb.failed(exc)
        return fb.pending

    async def aflush(self) -> int:
        """Async twin of :meth:`flush`."""
        fb = self._fallback
        primary = self._async_backend()
        if primary is None:
            return await asyncio.to_thread(self.flush)
        if fb is None or fb.state == "closed":
            return 0
        if fb.route(force_probe=True) is Route.PROBE:
            try:
                await self._areplay(fb, primary)
            except Unreachable as exc:
                fb.failed(exc)
        return fb.pending

    def status(self) -> StoreStatus:
        """Where calls go now and what the fallback has been through (no I/O)."""
        name = "memory" if self._memory else "redis"
        fb = self._fallback
        if fb is None:
            return StoreStatus(backend=name, serving=name, degraded=False)
        degraded = fb.state != "closed"
        return StoreStatus(
            backend=name,
            serving="fallback" if degraded else name,
            degraded=degraded,
            circuit=cast(Any, fb.state),
            pending_replay=fb.pending,
            replayed=fb.replayed_count,
            journal_dropped=fb.dropped_count,
            replay_rejected=fb.rejected_count,
            outages=fb.outages,
            last_error=fb.last_error,
            degraded_since=fb.degraded_since,
        )

    def _notify(self, event: str) -> None:
        if self._on_state_change is not None:
            self._on_state_change(event, self.status())

    # -- BaseCheckpointSaver: reads ----------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        op = self.policy.page(config, count=1)
        entries: list[Entry] = self._run(op)
        return self._first(config, entries)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        op = self.policy.page(config, count=1)
        entries: list[Entry] = await self._arun(op)
        return self._first(config, entries)

    def _first(self, config: RunnableConfig, entries: list[Entry]) -> CheckpointTuple | None:
        if not entries:
            return None
        return self.policy.decode(config["configurable"]["thread_id"], entries[0])

    def _listing(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> tuple[Page, Callable[[Entry], CheckpointTuple | None]]:
        if config is None:
            raise InvalidArgumentError(
                "RedisSaver.list needs a config with a thread_id (plain Redis keeps no "
                "index of every thread to scan)"
            )
        if limit is not None and limit <= 0:
            limit = 0
        every_ns = config["configurable"].get("checkpoint_ns") is None
        count = limit if (limit and not filter and not every_ns) else _LIST_PAGE
        page = self.policy.page(config, before=before, count=count, default_ns=None)
        thread_id = config["configurable"]["thread_id"]

        def accept(entry: Entry) -> CheckpointTuple | None:
            if every_ns and not self.policy.keep(config, before, entry):
                return None
            found = self.policy.decode(thread_id, entry)
            if filter and not all(found.metadata.get(k) == v for k, v in filter.items()):
                return None
            return found

        return page, accept

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        page, accept = self._listing(config, filter, before, limit)
        left = limit
        while left is None or left > 0:
            entries: list[Entry] = self._run(page)
            for entry in entries:
                found = accept(entry)
                if found is not None:
                    yield found
                    if left is not None:
                        left -= 1
                        if left == 0:
                            return
            if len(entries) < page.count:
                return
            page = dataclasses.replace(page, hi=entries[-1][0])

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        page, accept = self._listing(config, filter, before, limit)
        left = limit
        while left is None or left > 0:
            entries: list[Entry] = await self._arun(page)
            for entry in entries:
                found = accept(entry)
                if found is not None:
                    yield found
                    if left is not None:
                        left -= 1
                        if left == 0:
                            return
            if len(entries) < page.count:
                return
            page = dataclasses.replace(page, hi=entries[-1][0])

    # -- BaseCheckpointSaver: writes ---------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        op, stored = self.policy.put(config, checkpoint, metadata, new_versions)
        self._run(op)
        return stored

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        op, stored = self.policy.put(config, checkpoint, metadata, new_versions)
        await self._arun(op)
        return stored

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        op = self.policy.writes(config, writes, task_id, task_path)
        if op.items:
            self._run(op)

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        op = self.policy.writes(config, writes, task_id, task_path)
        if op.items:
            await self._arun(op)

    def _delete(self, thread_id: Any) -> Delete:
        thread = self.policy.thread_id(thread_id)
        return Delete(thread, self.policy.keys(thread))

    def delete_thread(self, thread_id: str) -> None:
        self._run(self._delete(thread_id))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._arun(self._delete(thread_id))

    def _copy_ops(self, source_thread_id: Any, target_thread_id: Any) -> tuple[Dump, str]:
        source = self.policy.thread_id(source_thread_id)
        target = self.policy.thread_id(target_thread_id)
        return Dump(source, self.policy.keys(source)), target

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy every checkpoint and write of one thread into another (merged)."""
        dump, target = self._copy_ops(source_thread_id, target_thread_id)
        data = self._run(dump)
        if data:
            self._run(Load(target, self.policy.keys(target), data))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        dump, target = self._copy_ops(source_thread_id, target_thread_id)
        data = await self._arun(dump)
        if data:
            await self._arun(Load(target, self.policy.keys(target), data))

    def _prune_ops(self, thread_ids: Sequence[str], strategy: str) -> builtins.list[Prune | Delete]:
        if strategy not in ("keep_latest", "delete"):
            raise InvalidArgumentError("strategy must be 'keep_latest' or 'delete'")
        ops: builtins.list[Prune | Delete] = []
        for thread_id in thread_ids:
            thread = self.policy.thread_id(thread_id)
            keys = self.policy.keys(thread)
            ops.append(
                Prune(thread, keys, 1) if strategy == "keep_latest" else Delete(thread, keys)
            )
        return ops

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """``keep_latest``: keep the newest checkpoint of each namespace (and its writes,
        and the blobs it refers to); ``delete``: delete the threads."""
        for op in self._prune_ops(thread_ids, strategy):
            self._run(op)

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        for op in self._prune_ops(thread_ids, strategy):
            await self._arun(op)

    def get_next_version(self, current: str | None, channel: None) -> str:
        """``<counter>.<random>`` strings, like LangGraph's own savers."""
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:032}.{random.random():016}"

    # -- closing -----------------------------------------------------------------------------

    def close(self) -> None:
        """Close what this saver built (not clients or stores it was given)."""
        with self._lock:
            built, self._built = self._built, None
            if built is not None:
                self._sync = None
        if built is not None:
            built.close()

    async def aclose(self) -> None:
        """Close the async pool of the running loop (and the sync one)."""
        loop = asyncio.get_running_loop()
        with self._lock:
            made = self._per_loop.pop(loop, None)
        if made is not None:
            await made[0].aclose()
        self.close()

    def __enter__(self) -> RedisSaver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> RedisSaver:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return (
            f"RedisSaver(url={self.config.safe_url!r}, prefix={self.config.prefix!r}, "
            f"keep_last={self.policy.keep_last or None})"
        )
