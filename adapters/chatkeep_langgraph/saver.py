"""``RedisSaver``: a LangGraph checkpointer on plain Redis, through chatkeep."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Sequence
from typing import Any, Concatenate, ParamSpec, TypeVar

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
from typing_extensions import Unpack

from chatkeep import (
    UNSET,
    AsyncConversationStore,
    BackendOptions,
    ConfigurationError,
    ConversationStore,
    InvalidArgumentError,
    StoreConfig,
    StoreStatus,
)
from chatkeep.redis import (
    NO_IO,
    AsyncClosing,
    Closing,
    Connection,
    FamilyStore,
    Flow,
    RedisBacked,
    async_method,
    connect,
    is_async_client,
    keywords_of,
    run,
    sync_method,
    unescape_id,
    validate_id,
)
from chatkeep.redis import store_options as store_options_of

from ._layout import (
    Delete,
    DropRuns,
    Dump,
    Entry,
    Forget,
    Load,
    MemoryCheckpoints,
    Page,
    Policy,
    Prune,
    Runs,
    Threads,
    Unindex,
)
from ._redis import RedisCheckpoints

__all__ = ["RedisSaver"]

T = TypeVar("T")
S = TypeVar("S")
P = ParamSpec("P")

_LIST_PAGE = 100


def _check_serde(serde: SerializerProtocol | None) -> SerializerProtocol:
    if serde is None:
        return JsonPlusSerializer(pickle_fallback=False)
    if getattr(serde, "pickle_fallback", False):
        raise ConfigurationError(
            "chatkeep stores no pickle: use a serializer without pickle_fallback"
        )
    return serde


def _check_client(client: Any) -> None:
    """Checkpoints are bytes: a client that decodes replies cannot carry them."""
    try:
        options = client.get_connection_kwargs()
    except Exception:  # not every client type has it; nothing to check then
        return
    if options.get("decode_responses"):
        raise ConfigurationError(
            "RedisSaver needs a Redis client made with decode_responses=False "
            "(checkpoints are stored as bytes)"
        )


def _ttl_config(options: dict[str, Any]) -> bool:
    """Read LangGraph's checkpointer TTL config (``ttl={"default_ttl": minutes,
    "refresh_on_read": bool}``, as langgraph-checkpoint-redis and -postgres take it)
    into chatkeep's ``ttl`` (seconds); return ``refresh_on_read`` (default True)."""
    ttl = options.get("ttl")
    if not isinstance(ttl, dict):
        return True
    unknown = set(ttl) - {"default_ttl", "refresh_on_read"}
    if unknown:
        raise ConfigurationError(f"unknown checkpoint TTL settings: {sorted(unknown)}")
    minutes = ttl.get("default_ttl")
    if minutes is not None and (
        isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0
    ):
        raise ConfigurationError("ttl['default_ttl'] must be a positive number of minutes")
    refresh = ttl.get("refresh_on_read", True)
    if not isinstance(refresh, bool):
        raise ConfigurationError("ttl['refresh_on_read'] must be a bool")
    options["ttl"] = None if minutes is None else float(minutes) * 60
    return refresh


def _twins(
    flow: Callable[Concatenate[S, P], Flow[T]],
) -> tuple[Callable[Concatenate[S, P], T], Callable[Concatenate[S, P], Coroutine[Any, Any, T]]]:
    """The sync method (``_put`` -> ``put``) and the async one (``aput``) of a flow."""
    awaited = async_method(flow)
    setattr(awaited, "__name__", "a" + flow.__name__.lstrip("_"))  # noqa: B010
    return sync_method(flow), awaited


class _Listing:
    """The pages of one ``list``/``alist`` call and what each yields."""

    def __init__(
        self,
        policy: Policy,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> None:
        assert config is not None
        self.policy = policy
        self.config = config
        self.filter = filter
        self.before = before
        self.left = None if limit is None else max(limit, 0)
        self.every_ns = config["configurable"].get("checkpoint_ns") is None
        count = self.left if (self.left and not filter and not self.every_ns) else _LIST_PAGE
        page = policy.page(config, before=before, count=count, default_ns=None)
        self.page: Page | None = None if self.left == 0 else page

    def take(self, entries: list[Entry]) -> list[CheckpointTuple]:
        """The checkpoints of one page that match; sets the next page (None: done)."""
        page = self.page
        assert page is not None
        found: list[CheckpointTuple] = []
        thread_id = self.config["configurable"]["thread_id"]
        for entry in entries:
            if self.every_ns and not self.policy.keep(self.config, self.before, entry):
                continue
            one = self.policy.decode(thread_id, entry)
            if self.filter and not all(one.metadata.get(k) == v for k, v in self.filter.items()):
                continue
            found.append(one)
            if self.left is not None:
                self.left -= 1
                if self.left == 0:
                    self.page = None
                    return found
        last = len(entries) < page.count
        self.page = None if last else dataclasses.replace(page, hi=entries[-1][0])
        return found


class _AllThreads:
    """``list(None, ...)``: the threads of the thread index, most recently written
    first (only the owner's when the filter names a ``user_id``), each listed as
    ``list(thread)`` lists it. Threads found gone (expired) leave the index."""

    def __init__(
        self,
        policy: Policy,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> None:
        self.policy = policy
        self.filter = filter
        self.before = before
        self.left = None if limit is None else max(limit, 0)
        owner = (filter or {}).get("user_id")
        self.owner = owner if isinstance(owner, str) and 0 < len(owner) <= 512 else ""
        self.offset = 0
        self.seen: set[str] = set()
        self.done = self.left == 0

    def threads(self) -> Threads:
        return Threads(self.owner, self.offset, _LIST_PAGE)

    def listing(self, thread_id: str) -> _Listing | None:
        if thread_id in self.seen:  # moved up the index while we listed
            return None
        self.seen.add(thread_id)
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        return _Listing(self.policy, config, self.filter, self.before, self.left)

    def took(self, found: list[CheckpointTuple]) -> list[CheckpointTuple]:
        if self.left is not None:
            self.left -= len(found)
            self.done = self.left <= 0
        return found

    def next_page(self, threads: list[str], gone: list[str]) -> Unindex | None:
        """Move past ``threads``; the write that drops ``gone`` from the index."""
        self.offset += len(threads) - len(gone)
        if len(threads) < _LIST_PAGE:
            self.done = True
        return Unindex(tuple(gone), self.owner) if gone else None


class SaverOptions(BackendOptions, total=False):
    """The store options :class:`RedisSaver` takes (typed, so a misspelling is caught by
    mypy): ``key_prefix`` (``prefix`` is its older name), ``ttl`` in seconds or
    LangGraph's checkpointer TTL config, and the rest of :class:`chatkeep.StoreConfig`."""

    key_prefix: str
    prefix: str
    ttl: float | dict[str, Any] | None


class RedisSaver(BaseCheckpointSaver[str], FamilyStore, Closing, AsyncClosing):
    """LangGraph checkpointer on plain Redis (standalone, Cluster, Sentinel) or memory.

    ::

        from chatkeep_langgraph import RedisSaver

        saver = RedisSaver("redis://localhost:6379/0", ttl=7 * 24 * 3600, keep_last=20)
        graph = builder.compile(checkpointer=saver)
        graph.invoke(inputs, {"configurable": {"thread_id": "chat-42"}})

    Where the connection comes from (no connection is made when the saver is made):

    * a URL (``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://``,
      ``redis+sentinel://``, ``memory://``) and chatkeep options (``key_prefix``, ``ttl``,
      ``ttl_mode``, ``fallback``, timeouts...), defaulting to ``CHATKEEP_*`` /
      ``REDIS_URL``;
    * ``store=`` a :class:`chatkeep.ConversationStore` (or the async one): its
      configuration and its connection (``store.connection``);
    * ``client=`` a ``redis.Redis``/``RedisCluster`` and/or ``async_client=`` a
      ``redis.asyncio`` one (left open by :meth:`close`). With only a sync client the
      async methods run in a worker thread; with only an asyncio client the sync
      methods raise :class:`chatkeep.ConfigurationError`.

    The connection is the process's one connection to that Redis
    (:func:`chatkeep.redis.connect`): a saver and the chatkeep stores of the same
    Redis share its clients (one asyncio client per event loop) and its one fallback
    circuit and journal.

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
        owner: str | None = None,
        serde: SerializerProtocol | None = None,
        on_state_change: Callable[[str, StoreStatus], None] | None = None,
        **store_options: Unpack[SaverOptions],
    ) -> None:
        super().__init__(serde=_check_serde(serde))
        options = store_options_of(
            store_options, what=type(self).__name__, accepted=keywords_of(type(self))
        )
        if keep_last is not None and (
            isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1
        ):
            raise InvalidArgumentError("keep_last must be None or an int >= 1")
        if client is not None and is_async_client(client):
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
            refresh_on_read = True
        else:
            if url is not None:
                options["url"] = url
            if options.get("ttl") is UNSET:
                del options["ttl"]
            refresh_on_read = _ttl_config(options)
            config = StoreConfig.from_env(**options)
            for given in (client, async_client):
                if given is not None:
                    _check_client(given)
        self.config = config
        if owner is not None:
            validate_id(owner, "owner")
        self.policy = Policy(
            prefix=config.prefix,
            serde=self.serde,
            keep_last=keep_last or 0,
            owner=owner or "",
            sealing=config.sealing,
        )
        # Everything is checked: take this saver's share of the process's connection.
        connection: Connection | None = None
        if store is not None:
            connection = store.connection
            if connection is not None:
                if connection.given and not connection.async_only:
                    _check_client(connection.client)
                connection.acquire()
        elif client is not None or async_client is not None or config.scheme != "memory":
            connection = connect(config, client=client, async_client=async_client)
        self._connection = connection
        ttl_ms = 0 if config.ttl is None else round(config.ttl * 1000)
        fixed = config.ttl_mode == "fixed"
        self._on_state_change = on_state_change
        self.refresh_on_read = refresh_on_read
        if connection is None:
            self._local = MemoryCheckpoints(
                ttl_ms=ttl_ms, fixed=fixed, refresh_on_read=refresh_on_read
            )
        else:
            self._family = RedisCheckpoints.attached(
                connection,
                prefix=config.prefix,
                ttl_ms=ttl_ms,
                fixed=fixed,
                refresh_on_read=refresh_on_read,
            )
            if connection.circuit is not None:
                connection.circuit.listen(self._notify)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisSaver:
        return cls(url, **options)

    # -- calls go through the circuit of this Redis (FamilyStore._call), driven here --------

    def _drive(self, flow: Flow[T]) -> T:
        connection = self._connection
        if connection is None:
            return run(flow, NO_IO)
        if connection.async_only:
            flow.close()
            raise ConfigurationError(
                "this RedisSaver was given only an async client: use the async methods "
                "(ainvoke/astream), or pass client= too"
            )
        return connection.run(flow)

    async def _adrive(self, flow: Flow[T]) -> T:
        connection = self._connection
        if connection is None:
            return run(flow, NO_IO)
        if connection.sync_only:  # given only a sync client: its calls, in a worker thread
            return await asyncio.to_thread(connection.run, flow)
        return await connection.arun(flow)

    def _notify(self, event: str) -> None:
        if self._on_state_change is not None:
            self._on_state_change(event, self.status())

    # -- BaseCheckpointSaver: each operation written once as a flow, driven by both twins -----

    def _get_tuple(self, config: RunnableConfig) -> Flow[CheckpointTuple | None]:
        """The config's checkpoint (or its thread's latest) with its pending writes."""
        entries = yield from self._call(self.policy.page(config, count=1))
        if not entries:
            return None
        return self.policy.decode(config["configurable"]["thread_id"], entries[0])

    def _put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> Flow[RunnableConfig]:
        """Store a checkpoint (one atomic script; only the channels in ``new_versions``)."""
        op, stored = self.policy.put(config, checkpoint, metadata, new_versions)
        yield from self._call(op)
        return stored

    def _put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> Flow[None]:
        """Store a task's pending writes (each (task, index) once)."""
        op = self.policy.writes(config, writes, task_id, task_path)
        if op.items:
            yield from self._call(op)

    def _delete_thread(self, thread_id: str) -> Flow[None]:
        """Delete every checkpoint and write of a thread."""
        yield from self._call(Delete(self.policy.thread_id(thread_id)))

    def _copy_thread(self, source_thread_id: str, target_thread_id: str) -> Flow[None]:
        """Copy every checkpoint and write of one thread into another (merged)."""
        source = self.policy.thread_id(source_thread_id)
        target = self.policy.thread_id(target_thread_id)
        data = yield from self._call(Dump(source))
        if data:
            yield from self._call(Load(target, data))

    def _prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> Flow[None]:
        """``keep_latest``: keep the newest checkpoint of each namespace (and its writes,
        and the blobs it refers to); ``delete``: delete the threads."""
        if strategy not in ("keep_latest", "delete"):
            raise InvalidArgumentError("strategy must be 'keep_latest' or 'delete'")
        for thread in [self.policy.thread_id(t) for t in thread_ids]:
            yield from self._call(Prune(thread, 1) if strategy == "keep_latest" else Delete(thread))

    def _delete_for_runs(self, run_ids: Sequence[str]) -> Flow[None]:
        """Delete every checkpoint whose metadata names one of ``run_ids`` (any thread,
        any namespace), with its pending writes and the channel values no other
        checkpoint refers to. Reads the run index written with the checkpoints (no
        scan): one round trip for the index, one per thread, one to drop the entries."""
        if isinstance(run_ids, (str, bytes)):
            raise InvalidArgumentError("run_ids must be a sequence of run ids")
        runs = tuple(dict.fromkeys(validate_id(str(run), "run id") for run in run_ids))
        if not runs:
            return
        listed: list[list[bytes]] = yield from self._call(Runs(runs))
        by_thread: dict[str, list[bytes]] = {}
        for entries in listed:
            for entry in entries:
                escaped, _, member = entry.partition(b"\n")
                by_thread.setdefault(unescape_id(escaped.decode()), []).append(member)
        for thread_id, members in by_thread.items():
            yield from self._call(Forget(thread_id, tuple(members)))
        yield from self._call(DropRuns(runs))

    get_tuple, aget_tuple = _twins(_get_tuple)
    put, aput = _twins(_put)
    put_writes, aput_writes = _twins(_put_writes)
    delete_thread, adelete_thread = _twins(_delete_thread)
    copy_thread, acopy_thread = _twins(_copy_thread)
    prune, aprune = _twins(_prune)
    delete_for_runs, adelete_for_runs = _twins(_delete_for_runs)
    flush, aflush = _twins(RedisBacked._flush)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        if config is None:
            yield from self._list_all(_AllThreads(self.policy, filter, before, limit))
            return
        listing = _Listing(self.policy, config, filter, before, limit)
        while listing.page is not None:
            yield from listing.take(self._drive(self._call(listing.page)))

    def _list_all(self, walk: _AllThreads) -> Iterator[CheckpointTuple]:
        while not walk.done:
            threads: list[str] = self._drive(self._call(walk.threads()))
            gone: list[str] = []
            for thread_id in threads:
                listing = walk.listing(thread_id)
                seen = False
                while listing is not None and listing.page is not None and not walk.done:
                    entries = self._drive(self._call(listing.page))
                    seen = seen or bool(entries)
                    yield from walk.took(listing.take(entries))
                if listing is not None and not seen and not walk.done:
                    gone.append(thread_id)
                if walk.done:
                    break
            unindex = walk.next_page(threads, gone)
            if unindex is not None:
                self._drive(self._call(unindex))

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        if config is None:
            async for found in self._alist_all(_AllThreads(self.policy, filter, before, limit)):
                yield found
            return
        listing = _Listing(self.policy, config, filter, before, limit)
        while listing.page is not None:
            for found in listing.take(await self._adrive(self._call(listing.page))):
                yield found

    async def _alist_all(self, walk: _AllThreads) -> AsyncIterator[CheckpointTuple]:
        while not walk.done:
            threads: list[str] = await self._adrive(self._call(walk.threads()))
            gone: list[str] = []
            for thread_id in threads:
                listing = walk.listing(thread_id)
                seen = False
                while listing is not None and listing.page is not None and not walk.done:
                    entries = await self._adrive(self._call(listing.page))
                    seen = seen or bool(entries)
                    for found in walk.took(listing.take(entries)):
                        yield found
                if listing is not None and not seen and not walk.done:
                    gone.append(thread_id)
                if walk.done:
                    break
            unindex = walk.next_page(threads, gone)
            if unindex is not None:
                await self._adrive(self._call(unindex))

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
        """Replay what can be replayed, then give back this saver's share of the
        connection (closed by the last user, if chatkeep made it; clients and stores
        it was given stay open). A closed saver refuses calls."""
        if self._closed:
            return
        connection = self._connection
        try:
            if connection is not None and not connection.async_only:
                self._drive(self._closing_flow())
        finally:
            if self._give_back() and connection is not None:
                connection.close()

    async def aclose(self) -> None:
        """Async twin of :meth:`close` (also closes the running loop's asyncio client
        when this saver was the connection's last user)."""
        if self._closed:
            return
        connection = self._connection
        try:
            await self._adrive(self._closing_flow())
        finally:
            if self._give_back() and connection is not None:
                await connection.aclose()

    def _give_back(self) -> bool:
        """Stop listening and release the connection: whether this was its last user."""
        connection = self._connection
        if connection is not None and connection.circuit is not None:
            connection.circuit.unlisten(self._notify)
        return self._release()[0]

    def __repr__(self) -> str:
        return (
            f"RedisSaver(url={self.config.safe_url!r}, prefix={self.config.prefix!r}, "
            f"keep_last={self.policy.keep_last or None})"
        )
