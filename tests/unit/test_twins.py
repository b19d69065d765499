"""Sync and asyncio twins offer the same public methods with the same signatures."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

import chatkeep

PAIRS = [
    ("ConversationStore", "AsyncConversationStore"),
    ("MemoryStore", "AsyncMemoryStore"),
    ("ResultCache", "AsyncResultCache"),
    ("SessionLock", "AsyncSessionLock"),
    ("Subscription", "AsyncSubscription"),
]
# Names that differ by design between the twins.
SYNC_ONLY = {"close", "__enter__", "__exit__", "__iter__"}
ASYNC_ONLY = {"aclose", "__aenter__", "__aexit__", "__aiter__", "start"}


def public(cls: type) -> dict[str, Any]:
    return {
        name: member
        for name, member in inspect.getmembers(cls)
        if callable(member) and (not name.startswith("_") or name in SYNC_ONLY | ASYNC_ONLY)
    }


@pytest.mark.parametrize(("sync_name", "async_name"), PAIRS)
def test_twins_have_the_same_methods_and_signatures(sync_name: str, async_name: str) -> None:
    sync_cls, async_cls = getattr(chatkeep, sync_name), getattr(chatkeep, async_name)
    sync_methods, async_methods = public(sync_cls), public(async_cls)
    assert set(sync_methods) - SYNC_ONLY == set(async_methods) - ASYNC_ONLY - {"close"}
    for name in set(sync_methods) - SYNC_ONLY:
        if name in ("from_url", "from_env"):
            continue
        sync_sig = inspect.signature(sync_methods[name])
        async_sig = inspect.signature(async_methods[name])
        assert sync_sig.parameters == async_sig.parameters, name


# Methods that do no I/O (or hand back an object that does): not awaited in either twin.
NO_IO = {"status", "metrics", "key", "lock", "subscribe", "cached", "from_url", "from_env"}


@pytest.mark.parametrize(("sync_name", "async_name"), PAIRS)
def test_the_async_twin_awaits_every_operation(sync_name: str, async_name: str) -> None:
    sync_cls, async_cls = getattr(chatkeep, sync_name), getattr(chatkeep, async_name)
    checked = 0
    for name, member in public(async_cls).items():
        if name.startswith("_") or name in NO_IO or not hasattr(sync_cls, name):
            continue
        assert inspect.iscoroutinefunction(member), f"{async_name}.{name} is not awaited"
        assert not inspect.iscoroutinefunction(getattr(sync_cls, name)), f"{sync_name}.{name}"
        checked += 1
    assert checked
