"""Redis twins of the checkpoint backend (internal): they only move bytes.

Every operation on a thread is one shipped Lua script over the thread's four keys
(one hash tag, so one Cluster slot): one round trip, atomic. Driver errors are
translated at one boundary with the core's :func:`chatkeep.backends.redis.translate`
(reachability problems become ``Unreachable``, for the fallback).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis import exceptions as rex

from chatkeep.backends.base import Unreachable
from chatkeep.backends.redis import translate
from chatkeep.errors import ConfigurationError

from ._layout import Delete, Dump, Entry, Load, Page, Policy, Prune, Put, ThreadData, Writes

__all__ = ["SCRIPTS", "AsyncRedisCheckpoints", "RedisCheckpoints", "check_client"]


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    text: bytes
    sha: str


def _load_scripts() -> dict[str, Script]:
    folder = resources.files("chatkeep_langgraph").joinpath("lua")
    common = folder.joinpath("common.lua").read_bytes()
    scripts = {}
    for name in ("page", "put", "writes", "prune", "dump", "load"):
        text = common + b"\n" + folder.joinpath(f"{name}.lua").read_bytes()
        scripts[name] = Script(name, text, hashlib.sha1(text, usedforsecurity=False).hexdigest())
    return scripts


SCRIPTS = _load_scripts()


@contextmanager
def _translated(thread: str | None = None) -> Iterator[None]:
    try:
        yield
    except (rex.RedisError, rex.RedisClusterException) as exc:
        raise translate(exc, thread) from exc
    except (OSError, ConnectionError, TimeoutError) as exc:
        raise Unreachable(exc) from exc


def check_client(client: Any) -> None:
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


def _ttl(p: Policy) -> list[Any]:
    return [p.ttl_ms, 1 if p.fixed else 0]


def _page_args(p: Policy, op: Page) -> list[Any]:
    return [b"(" + op.hi, b"[" + op.lo, op.count, *_ttl(p)]


def _put_args(p: Policy, op: Put) -> list[Any]:
    args: list[Any] = [*_ttl(p), op.member, op.record, op.ns_prefix, p.keep_last, len(op.blobs)]
    for name, value in op.blobs:
        args += (name, value)
    return args


def _writes_args(p: Policy, op: Writes) -> list[Any]:
    args: list[Any] = [*_ttl(p), len(op.items)]
    for prefix, member, replace in op.items:
        args += (prefix, member, b"1" if replace else b"0")
    return args


def _load_args(p: Policy, data: ThreadData) -> list[Any]:
    args: list[Any] = [*_ttl(p), len(data.index), *data.index, len(data.records)]
    for name, value in data.records.items():
        args += (name, value)
    args.append(len(data.blobs))
    for name, value in data.blobs.items():
        args += (name, value)
    args += (len(data.writes), *data.writes)
    return args


def _pairs(flat: Sequence[bytes]) -> dict[bytes, bytes]:
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def _dump_result(reply: Sequence[Any]) -> ThreadData:
    index, records, blobs, writes = reply
    return ThreadData(list(index), _pairs(records), _pairs(blobs), list(writes))


def _page_result(reply: Sequence[Any]) -> list[Entry]:
    return [(m, rec, list(blobs), list(writes)) for m, rec, blobs, writes in reply]


class RedisCheckpoints:
    """Synchronous backend on ``redis.Redis`` or ``redis.RedisCluster``."""

    name = "redis"

    def __init__(self, client: Any, policy: Policy) -> None:
        self.client = client
        self.p = policy

    def _eval(self, script: Script, keys: Sequence[str], args: Sequence[Any], thread: str) -> Any:
        with _translated(thread):
            try:
                return self.client.evalsha(script.sha, len(keys), *keys, *args)
            except rex.NoScriptError:
                return self.client.eval(script.text, len(keys), *keys, *args)

    def page(self, op: Page) -> list[Entry]:
        return _page_result(self._eval(SCRIPTS["page"], op.keys, _page_args(self.p, op), op.thread))

    def put(self, op: Put) -> int:
        return int(self._eval(SCRIPTS["put"], op.keys, _put_args(self.p, op), op.thread))

    def writes(self, op: Writes) -> int:
        return int(self._eval(SCRIPTS["writes"], op.keys, _writes_args(self.p, op), op.thread))

    def prune(self, op: Prune) -> int:
        return int(self._eval(SCRIPTS["prune"], op.keys, [op.keep], op.thread))

    def dump(self, op: Dump) -> ThreadData:
        return _dump_result(self._eval(SCRIPTS["dump"], op.keys, [], op.thread))

    def load(self, op: Load) -> int:
        return int(self._eval(SCRIPTS["load"], op.keys, _load_args(self.p, op.data), op.thread))

    def delete(self, op: Delete) -> int:
        with _translated(op.thread):
            return int(self.client.delete(*op.keys))

    def ping(self) -> None:
        with _translated():
            self.client.ping()


class AsyncRedisCheckpoints:
    """Asynchronous twin on ``redis.asyncio`` (one per event loop)."""

    name = "redis"

    def __init__(self, client: Any, policy: Policy) -> None:
        self.client = client
        self.p = policy

    async def _eval(
        self, script: Script, keys: Sequence[str], args: Sequence[Any], thread: str
    ) -> Any:
        with _translated(thread):
            try:
                return await self.client.evalsha(script.sha, len(keys), *keys, *args)
            except rex.NoScriptError:
                return await self.client.eval(script.text, len(keys), *keys, *args)

    async def page(self, op: Page) -> list[Entry]:
        reply = await self._eval(SCRIPTS["page"], op.keys, _page_args(self.p, op), op.thread)
        return _page_result(reply)

    async def put(self, op: Put) -> int:
        return int(await self._eval(SCRIPTS["put"], op.keys, _put_args(self.p, op), op.thread))

    async def writes(self, op: Writes) -> int:
        reply = await self._eval(SCRIPTS["writes"], op.keys, _writes_args(self.p, op), op.thread)
        return int(reply)

    async def prune(self, op: Prune) -> int:
        return int(await self._eval(SCRIPTS["prune"], op.keys, [op.keep], op.thread))

    async def dump(self, op: Dump) -> ThreadData:
        return _dump_result(await self._eval(SCRIPTS["dump"], op.keys, [], op.thread))

    async def load(self, op: Load) -> int:
        reply = await self._eval(SCRIPTS["load"], op.keys, _load_args(self.p, op.data), op.thread)
        return int(reply)

    async def delete(self, op: Delete) -> int:
        with _translated(op.thread):
            return int(await self.client.delete(*op.keys))

    async def ping(self) -> None:
        with _translated():
            await self.client.ping()
