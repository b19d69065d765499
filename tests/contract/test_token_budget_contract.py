"""Token budgets: ``token_counter`` counts each message once at write time and
``messages(sid, max_tokens=N)`` returns the newest messages that fit. Every backend,
sync and async (see conftest.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from chatkeep import (
    ConfigurationError,
    InvalidArgumentError,
    InvalidMessageError,
    Message,
    ToolCall,
    estimate_tokens,
)
from tests.contract.conftest import Harness
from tests.support.messages import msg


def words(message: Message) -> int:
    """One token per word: budgets a test can work out by eye."""
    return len(message.text.split())


def said(n: int, role: str = "user") -> Message:
    return msg(" ".join(["w"] * n), role) if n else msg("", role)


def lengths(messages: list[Message]) -> list[int]:
    return [len(m.text.split()) for m in messages]


def test_the_newest_messages_that_fit_and_never_part_of_one(
    make_store: Callable[..., Any],
) -> None:
    store = make_store(token_counter=words)
    store.append("s", [said(n) for n in (5, 4, 3, 2, 1)])
    assert lengths(store.messages("s", max_tokens=3)) == [2, 1]
    assert lengths(store.messages("s", max_tokens=5)) == [2, 1]  # 3+2+1 = 6 > 5
    assert lengths(store.messages("s", max_tokens=6)) == [3, 2, 1]
    assert lengths(store.messages("s", max_tokens=15)) == [5, 4, 3, 2, 1]
    assert lengths(store.messages("s", max_tokens=1000)) == [5, 4, 3, 2, 1]
    assert store.messages("s", max_tokens=0) == []
    # the newest message alone is over the budget: nothing, never a part of it
    store.append("s", said(9))
    assert store.messages("s", max_tokens=8) == []


def test_a_leading_system_message_is_counted_first_and_kept(
    make_store: Callable[..., Any],
) -> None:
    store = make_store(token_counter=words)
    store.append("s", [said(3, "system"), said(4), said(2, "assistant"), said(2)])
    assert lengths(store.messages("s", max_tokens=7)) == [3, 2, 2]
    assert [m.role for m in store.messages("s", max_tokens=7)] == ["system", "assistant", "user"]
    assert lengths(store.messages("s", max_tokens=7, keep_system=False)) == [2, 2]
    assert lengths(store.messages("s", max_tokens=3)) == [3]  # room for the system only
    # a system message that does not fit leaves nothing (the budget is a hard limit)
    assert store.messages("s", max_tokens=2) == []
    assert lengths(store.messages("s", max_tokens=2, keep_system=False)) == [2]
    # the whole session fits: the system message once, in its place
    assert lengths(store.messages("s", max_tokens=100)) == [3, 4, 2, 2]


def test_only_a_leading_system_message_is_kept_apart(make_store: Callable[..., Any]) -> None:
    store = make_store(token_counter=words)
    store.append("s", [said(4), said(3, "system"), said(2)])
    assert lengths(store.messages("s", max_tokens=5)) == [3, 2]
    assert lengths(store.messages("s", max_tokens=4)) == [2]


def test_counts_are_taken_at_write_time(harness: Harness, make_store: Callable[..., Any]) -> None:
    """A reader with another counter reads the counts the writer stored."""
    if harness.backend == "memory":
        pytest.skip("memory:// stores share no data")
    writer = make_store(token_counter=words)
    writer.append("s", [said(3), said(3), said(3)])
    reader = make_store(token_counter=lambda m: 1000)
    assert lengths(reader.messages("s", max_tokens=6)) == [3, 3]


def test_the_default_counter_is_the_documented_estimate(make_store: Callable[..., Any]) -> None:
    store = make_store()
    long = msg("x" * 400)  # 100 tokens of text + 4
    call = Message(role="assistant", tool_calls=[ToolCall(name="f", arguments={"q": "y" * 40})])
    assert estimate_tokens(long) == 104
    assert estimate_tokens(call) > 4 + 10
    store.append("s", [long, call, msg("hi")])
    budget = estimate_tokens(call) + estimate_tokens(msg("hi"))
    assert [m.id for m in store.messages("s", max_tokens=budget)] == [
        call.id,
        store.messages("s")[-1].id,
    ]


def test_budget_reads_convert_like_other_reads(make_store: Callable[..., Any]) -> None:
    from chatkeep import Conversion

    store = make_store(token_counter=words)
    store.append("s", [said(2, "system"), said(2), said(2)])
    into: Conversion[str] = Conversion(
        from_message=lambda m: m.role, from_record=lambda r: str(r["role"])
    )
    assert store.messages("s", max_tokens=4, into=into) == ["system", "user"]


def test_bad_budgets_and_counters_raise_and_write_nothing(
    make_store: Callable[..., Any],
) -> None:
    store = make_store(token_counter=words)
    store.append("s", [said(1)])
    for bad in (-1, 1.5, "10", True):
        with pytest.raises(InvalidArgumentError):
            store.messages("s", max_tokens=bad)
    with pytest.raises(InvalidArgumentError):
        store.messages("s", max_tokens=10, last=2)
    with pytest.raises(ConfigurationError):
        make_store(token_counter="words")
    for counter, error in (
        (lambda m: -1, ConfigurationError),
        (lambda m: 2.5, ConfigurationError),
        (lambda m: 1 // 0, InvalidMessageError),
    ):
        broken = make_store(token_counter=counter)
        with pytest.raises(error):
            broken.append("s", [said(1), said(2)])
    assert lengths(store.messages("s")) == [1]


def test_records_written_without_counts_count_a_quarter_of_their_length(
    harness: Harness, make_store: Callable[..., Any]
) -> None:
    """Records from before token counts were kept: the same estimate on every backend."""
    if harness.backend == "memory":
        pytest.skip("memory:// holds no records written by another version")
    from chatkeep import codec

    store = make_store(token_counter=words)
    old = [codec.encode(said(n)) for n in (1, 1, 1)]
    raw = harness.client()
    raw.rpush(f"{harness.prefix}:{{s}}:m", *old)
    raw.hset(f"{harness.prefix}:{{s}}:h", mapping={"c": 1, "u": 1, "w": 3, "n": 3})
    quarter = (len(old[0]) + 3) // 4
    assert len(store.messages("s", max_tokens=2 * quarter)) == 2
    assert len(store.messages("s", max_tokens=2 * quarter - 1)) == 1


def test_a_budget_read_reads_only_the_tail_it_returns(
    harness: Harness, make_store: Callable[..., Any]
) -> None:
    """On Redis the script reads backwards from the newest record, a chunk of 64 at a
    time: what it reads grows with the answer, not with the session (MONITOR shows the
    commands a script runs)."""
    if harness.backend != "redis":
        pytest.skip("one real server is enough to watch what the script reads")
    store = make_store(token_counter=words)
    for _ in range(5):
        store.append("s", [said(1) for _ in range(1000)])
    raw = harness.client()
    seen: list[str] = []

    def watch() -> None:
        with raw.monitor() as monitor:
            ready.set()
            for event in monitor.listen():
                seen.append(event["command"])
                if event["command"] == "ECHO watched":
                    return

    ready = threading.Event()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert ready.wait(5)
    assert len(store.messages("s", max_tokens=20)) == 20
    harness.client().echo("watched")
    watcher.join(10)
    ranges = [c.split() for c in seen if c.upper().startswith("LRANGE")]
    assert ranges, seen
    assert all(int(r[2]) >= 5000 - 64 for r in ranges), ranges
