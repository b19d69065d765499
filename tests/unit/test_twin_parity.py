"""Sync and asyncio twins offer the same public methods with the same signatures."""

from __future__ import annotations

import inspect

import pytest

from chatkeep import AsyncMemoryStore, AsyncResultCache, MemoryStore, ResultCache

ASYNC_ONLY = {"aclose"}


def public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, callable)
        if not name.startswith("_") and name not in ASYNC_ONLY
    }


@pytest.mark.parametrize(
    ("sync", "asynchronous"),
    [(MemoryStore, AsyncMemoryStore), (ResultCache, AsyncResultCache)],
    ids=["memory", "cache"],
)
def test_twins_have_the_same_methods_and_signatures(sync: type, asynchronous: type) -> None:
    ours, theirs = public(sync), public(asynchronous)
    assert sorted(ours) == sorted(theirs)
    for name, signature in ours.items():
        assert signature == theirs[name], name
    for name in ours:
        sync_member = getattr(sync, name)
        async_member = getattr(asynchronous, name)
        if name in ("cached", "key", "status", "from_url"):
            assert not inspect.iscoroutinefunction(async_member), name
        else:
            assert inspect.iscoroutinefunction(async_member), name
        assert not inspect.iscoroutinefunction(sync_member), name
