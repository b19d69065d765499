"""Redis going away mid-conversation, against real servers: stopped processes and a
TCP proxy that resets, black-holes or swallows replies."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis

from chatkeep import (
    AsyncConversationStore,
    BackendError,
    BackendUnavailableError,
    ConfigurationError,
    ConversationStore,
    Conversion,
    IncompleteMirrorError,
    JournalFullError,
    Message,
    SessionOwnershipError,
)
from tests.support.faults import FAST, stored, until_recovered
from tests.support.messages import msg
from tests.support.servers import RedisServer, TcpProxy

pytestmark = pytest.mark.redis_server


def test_server_stopped_mid_conversation(durable_redis_server: RedisServer, prefix: str) -> None:
    server = durable_redis_server
    store = ConversationStore.from_url(server.url, key_prefix=prefix, **FAST)
    for i in range(3):
        store.append("chat", [msg(f"q{i}"), msg(f"a{i}", "assistant")])
        assert len(store.messages("chat")) == 2 * (i + 1)

    server.stop()
    for i in range(3, 6):  # the conversation goes on, no exception reaches the caller
        history = store.messages("chat")
        assert [m.text for m in history][-2:] == [f"q{i - 1}", f"a{i - 1}"]
        store.append("chat", [msg(f"q{i}"), msg(f"a{i}", "assistant")])
    assert store.status().degraded
    assert store.status().pending_replay == 3
    assert [m.text for m in store.messages("chat", last=2)] == ["q5", "a5"]

    server.start()
    until_recovered(lambda: store.messages("chat"), store)
    expected = [t for i in range(6) for t in (f"q{i}", f"a{i}")]
    assert stored(server.port, prefix, "chat") == expected  # every message once, in order
    assert [m.text for m in store.messages("chat")] == expected
    status = store.status()
    assert (status.degraded, status.pending_replay, status.replayed, status.outages) == (
        False,
        0,
        3,
        1,
    )
    store.close()


def test_async_server_stopped_mid_conversation(
    durable_redis_server: RedisServer, prefix: str
) -> None:
    server = durable_redis_server

    async def scenario() -> None:
        store = AsyncConversationStore.from_url(server.url, key_prefix=prefix, **FAST)
        await store.append("chat", [msg("q0"), msg("a0", "assistant")])
        server.stop()
        assert [m.text for m in await store.messages("chat")] == ["q0", "a0"]
        await store.append("chat", [msg("q1"), msg("a1", "assistant")])
        assert [m.text for m in await store.messages("chat")] == ["q0", "a0", "q1", "a1"]
        assert store.status().degraded
        server.start()
        deadline = time.monotonic() + 10
        while store.status().degraded:
            assert time.monotonic() < deadline
            await store.messages("chat")
            await asyncio.sleep(0.02)
        assert stored(server.port, prefix, "chat") == ["q0", "a0", "q1", "a1"]
        await store.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("twin", ["sync", "async"])
def test_connection_cut_by_the_network(
    proxy: TcpProxy, fresh_redis_server: RedisServer, prefix: str, twin: str
) -> None:
    def run(store: Any, call: Any) -> None:
        call(store.append("s", [msg("before")]))
        proxy.cut()
        call(store.append("s", [msg("during")]))
        assert [m.text for m in call(store.messages("s"))] == ["before", "during"]
        proxy.restore()
        deadline = time.monotonic() + 10
        while store.status().degraded:
            assert time.monotonic() < deadline
            call(store.messages("s"))
            time.sleep(0.02)
        assert stored(fresh_redis_server.port, prefix, "s") == ["before", "during"]

    if twin == "sync":
        with ConversationStore.from_url(proxy.url, key_prefix=prefix, **FAST) as store:
            run(store, lambda value: value)
    else:
        loop = asyncio.new_event_loop()
        store = AsyncConversationStore.from_url(proxy.url, key_prefix=prefix, **FAST)
        run(store, loop.run_until_complete)
        loop.run_until_complete(store.aclose())
        loop.close()


def test_twins_share_one_mirror_journal_and_circuit(
    proxy: TcpProxy, fresh_redis_server: RedisServer, prefix: str
) -> None:
    """A sync store and its async twin (``twin=``): in an outage each sees what the
    other wrote, and every journaled write reaches Redis once, in order."""
    loop = asyncio.new_event_loop()
    store = ConversationStore.from_url(proxy.url, key_prefix=prefix, **FAST)
    twin = AsyncConversationStore.from_url(proxy.url, key_prefix=prefix, twin=store, **FAST)
    store.append("s", [msg("sync 1")])
    proxy.cut()
    store.append("s", [msg("sync 2")])  # journaled by the shared fallback
    assert [m.text for m in loop.run_until_complete(twin.messages("s"))] == ["sync 1", "sync 2"]
    loop.run_until_complete(twin.append("s", [msg("async 3")]))
    assert [m.text for m in store.messages("s")] == ["sync 1", "sync 2", "async 3"]
    assert twin.status().degraded and store.status().pending_replay == 2
    proxy.restore()
    until_recovered(lambda: loop.run_until_complete(twin.messages("s")), twin)
    assert not store.status().degraded  # one circuit
    assert stored(fresh_redis_server.port, prefix, "s") == ["sync 1", "sync 2", "async 3"]
    loop.run_until_complete(twin.aclose())
    store.close()
    loop.close()


def test_a_twin_needs_a_store_with_the_same_configuration(prefix: str) -> None:
    store = ConversationStore.from_url("redis://127.0.0.1:1/0", key_prefix=prefix)
    with pytest.raises(ConfigurationError, match="same configuration"):
        AsyncConversationStore.from_url("redis://127.0.0.1:1/0", key_prefix="other", twin=store)
    with pytest.raises(ConfigurationError, match="ConversationStore or AsyncConversationStore"):
        ConversationStore.from_url("redis://127.0.0.1:1/0", key_prefix=prefix, twin=object())
    store._closed = True


def test_black_holed_server_costs_one_timeout_then_nothing(proxy: TcpProxy, prefix: str) -> None:
    store = ConversationStore.from_url(proxy.url, key_prefix=prefix, probe_interval=60)
    store.append("s", [msg("a")])
    proxy.cut(blackhole=True)
    started = time.monotonic()
    store.append("s", [msg("b")])  # pays the connect/read timeout once
    first = time.monotonic() - started
    assert first < 3.0, f"a call blocked {first:.2f}s on a dead server"
    # With the circuit open Redis is not even tried.
    primary_calls = []
    family = store._family
    assert family is not None
    original = family.run

    def spy(op: Any) -> Any:
        primary_calls.append(op)
        return original(op)

    family.run = spy  # type: ignore[method-assign]
    for i in range(50):
        store.append("s", [msg(f"c{i}")])
    assert primary_calls == []
    assert len(store.messages("s")) == 52
    assert store.status().pending_replay == 51
    store._closed = True  # nothing to replay into a black hole at teardown


def test_lost_reply_is_replayed_exactly_once(
    proxy: TcpProxy, fresh_redis_server: RedisServer, prefix: str
) -> None:
    store = ConversationStore.from_url(proxy.url, key_prefix=prefix, **FAST)
    store.append("s", [msg("one")])
    proxy.drop_replies()  # Redis applies the next append; the client times out
    store.append("s", [msg("two")])
    assert store.status().degraded
    assert stored(fresh_redis_server.port, prefix, "s") == ["one", "two"]  # applied already
    proxy.cut()  # drop the stalled connections, then let traffic through again
    proxy.restore()
    until_recovered(store.flush, store)
    assert stored(fresh_redis_server.port, prefix, "s") == ["one", "two"]  # not twice
    assert store.status().replayed == 1
    store.close()


def test_transitions_are_logged_once_and_reported(
    fresh_redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    events: list[tuple[str, bool]] = []
    store = ConversationStore.from_url(
        fresh_redis_server.url,
        key_prefix=prefix,
        on_state_change=lambda event, status: events.append((event, status.degraded)),
        **FAST,
    )
    store.append("s", [msg("secret text")])
    with caplog.at_level(logging.WARNING, logger="chatkeep"):
        fresh_redis_server.stop()
        for _ in range(30):
            store.append("s", [msg("secret text")])
            store.messages("s")
        fresh_redis_server.start()
        until_recovered(lambda: store.messages("s"), store)
        for _ in range(5):
            store.messages("s")
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    # The server restarted empty: chatkeep says so once, between the two transitions.
    assert len(warnings) == 3, warnings
    assert "unreachable" in warnings[0] and "reachable again" in warnings[2]
    assert "restarted: it lost 1 of 1 session of prefix" in warnings[1]
    assert not any("secret" in w for w in warnings)
    assert events == [("degraded", True), ("recovered", False)]
    store.close()


def test_fallback_raise_raises_a_connection_error(
    fresh_redis_server: RedisServer, prefix: str
) -> None:
    store = ConversationStore.from_url(fresh_redis_server.url, key_prefix=prefix, fallback="raise")
    store.append("s", [msg("a")])
    fresh_redis_server.stop()
    with pytest.raises(BackendUnavailableError) as info:
        store.messages("s")
    assert isinstance(info.value, ConnectionError)
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    fresh_redis_server.start()
    assert [m.text for m in store.messages("s")] == []  # the restarted server kept nothing
    store.close()


def test_noauth_is_raised_not_hidden(prefix: str) -> None:
    with RedisServer("--requirepass", "s3cret") as server:
        store = ConversationStore.from_url(server.url, key_prefix=prefix)
        with pytest.raises(BackendError) as info:
            store.append("s", [msg("a")])
        assert "s3cret" not in str(info.value)
        assert store.status().degraded is False
        good = ConversationStore.from_url(
            f"redis://:s3cret@127.0.0.1:{server.port}/0", key_prefix=prefix
        )
        assert good.append("s", [msg("a")]) == 1
        assert "s3cret" not in repr(good) + str(good.status())
        good.close()
        store.close()


def test_out_of_memory_is_raised_not_hidden(fresh_redis_server: RedisServer, prefix: str) -> None:
    client = redis.Redis.from_url(fresh_redis_server.url)
    client.config_set("maxmemory", 1)
    client.config_set("maxmemory-policy", "noeviction")
    store = ConversationStore.from_url(fresh_redis_server.url, key_prefix=prefix)
    with pytest.raises(BackendError, match="maxmemory"):
        store.append("s", [msg("a")])
    assert store.status().degraded is False
    store.close()
    client.close()


def test_a_full_journal_refuses_the_write_instead_of_dropping_it_later(
    fresh_redis_server: RedisServer, prefix: str
) -> None:
    store = ConversationStore.from_url(
        fresh_redis_server.url, key_prefix=prefix, journal_size=3, probe_interval=60
    )
    store.append("s", [msg("a")])
    fresh_redis_server.stop()
    for i in range(3):
        store.append("s", [msg(f"o{i}")])
    for i in range(2):
        with pytest.raises(JournalFullError) as info:
            store.append("s", [msg(f"refused{i}")])
        assert isinstance(info.value, BackendUnavailableError)
    status = store.status()
    assert (status.pending_replay, status.journal_refused) == (3, 2)
    # Only what was acknowledged is in the conversation.
    assert [m.text for m in store.messages("s")] == ["a", "o0", "o1", "o2"]
    store._closed = True


def test_constructor_does_not_connect(prefix: str) -> None:
    from tests.support.servers import free_port

    dead = f"redis://127.0.0.1:{free_port()}/0"
    store = ConversationStore.from_url(dead, key_prefix=prefix)  # no exception, no I/O
    assert store.status().degraded is False
    assert store.append("s", [msg("a")]) == 1  # served by the fallback
    assert store.status().degraded is True
    store._closed = True


def test_default_timeouts_are_short() -> None:
    from chatkeep import StoreConfig

    config = StoreConfig()
    assert config.connect_timeout + config.socket_timeout <= 1.0


def test_a_tail_read_does_not_shrink_the_mirror(
    fresh_redis_server: RedisServer, prefix: str
) -> None:
    store = ConversationStore.from_url(fresh_redis_server.url, key_prefix=prefix, probe_interval=60)
    store.append("s", [msg(str(i)) for i in range(5)])
    assert [m.text for m in store.messages("s", last=1)] == ["4"]
    fresh_redis_server.stop()
    assert [m.text for m in store.messages("s")] == ["0", "1", "2", "3", "4"]
    store._closed = True


def test_outage_reads_return_what_redis_would(fresh_redis_server: RedisServer, prefix: str) -> None:
    import uuid

    store = ConversationStore.from_url(fresh_redis_server.url, key_prefix=prefix, probe_interval=60)
    ident = uuid.uuid4()
    store.append("s", [Message(role="user", content="x", metadata={"u": ident})])
    online = store.messages("s")
    fresh_redis_server.stop()
    store.append("s", [Message(role="user", content="y", metadata={"u": ident})])
    offline = store.messages("s")
    assert offline[0] == online[0]
    assert offline[1].metadata == {"u": str(ident)}
    store._closed = True


def test_the_mirror_learns_from_reads_and_serves_reads_into(
    fresh_redis_server: RedisServer, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A session this process only read (written by another one, with a corrupt
    record in it) is served from the mirror in an outage, converted the same way."""
    writer = ConversationStore.from_url(fresh_redis_server.url, key_prefix=prefix, fallback="raise")
    writer.append("s", [msg("a"), msg("b")])
    redis.Redis.from_url(fresh_redis_server.url).rpush(f"{prefix}:{{s}}:m", b"\x80 corrupt")
    writer.close()
    into = Conversion(lambda m: m.text.upper(), lambda record: record["content"].upper())
    reader = ConversationStore.from_url(
        fresh_redis_server.url, key_prefix=prefix, probe_interval=60
    )
    assert reader.messages("s", into=into) == ["A", "B"]
    fresh_redis_server.stop()
    with caplog.at_level(logging.WARNING, logger="chatkeep"):
        assert reader.messages("s", into=into) == ["A", "B"]
        assert [m.text for m in reader.messages("s")] == ["a", "b"]
    assert reader.status().degraded and reader.status().skipped_records == 3
    reader._closed = True


def test_a_plain_read_keeps_the_owner_the_mirror_checks(
    fresh_redis_server: RedisServer, prefix: str
) -> None:
    """A read without an owner right after a write is a plain LRANGE (nothing read
    about the owner); the mirror still knows the session's owner from this process,
    so in an outage the owner reads and anyone else is refused."""
    store = ConversationStore.from_url(
        fresh_redis_server.url, key_prefix=prefix, probe_interval=60, mirror_sessions=1
    )
    store.append("s", [msg("a")], owner="o")
    store.append("t", [msg("b")])  # the mirror (one session) lets "s" go; the read brings it back
    raw = redis.Redis.from_url(fresh_redis_server.url)
    raw.config_resetstat()
    assert [m.text for m in store.messages("s")] == ["a"]
    assert "cmdstat_evalsha" not in raw.info("commandstats")  # it was a plain LRANGE
    raw.close()
    fresh_redis_server.stop()
    assert [m.text for m in store.messages("s", owner="o")] == ["a"]
    with pytest.raises(SessionOwnershipError):
        store.messages("s", owner="x")
    assert store.status().degraded
    store._closed = True


def test_a_refused_probe_raises_and_probes_again_later(prefix: str) -> None:
    """Credentials rotated during an outage: the caller sees BackendError, the store
    stays degraded (still serving), and recovers once the password works again."""
    with RedisServer("--appendonly", "yes", "--appendfsync", "always") as server:
        store = ConversationStore.from_url(server.url, key_prefix=prefix, **FAST)
        store.append("s", [msg("before")])
        server.stop()
        store.append("s", [msg("during")])
        server.extra_args += ["--requirepass", "rotated"]
        server.start()
        time.sleep(0.1)
        with pytest.raises(BackendError):
            store.flush()
        assert store.status().degraded and store.status().circuit == "open"
        assert [m.text for m in store.messages("s")] == ["before", "during"]
        server.stop()
        server.extra_args = server.extra_args[:-2]
        server.start()
        until_recovered(store.flush, store)
        assert stored(server.port, prefix, "s") == ["before", "during"]
        store.close()


def replayed_after_pops(
    server: RedisServer, prefix: str, pops: Callable[[ConversationStore], None]
) -> list[str]:
    """a, b, c appended and read; Redis stopped: d appended, then ``pops(store)`` on the
    fallback; Redis started again: what it holds once the store replayed it all."""
    store = ConversationStore.from_url(server.url, key_prefix=prefix, **FAST)
    store.append("s", [msg("a"), msg("b"), msg("c")])
    store.messages("s")
    server.stop()
    store.append("s", [msg("d")])
    pops(store)
    server.start()
    until_recovered(store.flush, store)
    store.close()
    return stored(server.port, prefix, "s")


def test_a_pop_during_an_outage_replays_by_message_not_by_index(
    durable_redis_server: RedisServer, prefix: str
) -> None:
    def pops(store: ConversationStore) -> None:
        assert store.pop("s", 0).text == "a"
        assert store.pop("s", 99) is None  # nothing removed here: nothing to replay

    assert replayed_after_pops(durable_redis_server, prefix, pops) == ["b", "c", "d"]


def test_a_replayed_pop_of_a_message_already_gone_removes_nothing(
    fresh_redis_server: RedisServer, prefix: str
) -> None:
    # the server keeps nothing on disk: it comes back empty, a, b, c are gone
    assert replayed_after_pops(fresh_redis_server, prefix, lambda s: s.pop("s", 0)) == ["d"]


# -- token budgets in an outage ----------------------------------------------------------


def _words(message: Message) -> int:
    return len(message.text.split())


def _said(n: int, role: str = "user") -> Message:
    return msg(" ".join(["w"] * n), role)


def _lengths(messages: list[Message]) -> list[int]:
    return [len(m.text.split()) for m in messages]


def test_budget_reads_are_served_from_the_mirror(proxy: TcpProxy, prefix: str) -> None:
    store = ConversationStore.from_url(proxy.url, key_prefix=prefix, token_counter=_words, **FAST)
    store.append("s", [_said(3, "system"), _said(4), _said(2), _said(2)])
    proxy.cut()
    assert _lengths(store.messages("s", max_tokens=7)) == [3, 2, 2]
    assert store.append("s", _said(1)) == 5
    assert _lengths(store.messages("s", max_tokens=6)) == [3, 2, 1]
    assert store.status().degraded
    proxy.restore()
    until_recovered(lambda: store.messages("s", last=1), store)
    assert _lengths(store.messages("s", max_tokens=6)) == [3, 2, 1]
    store.close()


def test_a_partial_mirror_serves_the_tail_it_holds_without_guessing_the_system_message(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str
) -> None:
    """The mirror holds the newest 3 of 10 messages: a budget read in an outage returns
    what fits of those; the leading system message is not held, so it is not returned
    (and nothing older than what is held is made up)."""
    store = ConversationStore.from_url(
        proxy.url, key_prefix=prefix, token_counter=_words, mirror_messages=3, **FAST
    )
    store.append("s", [_said(5, "system"), *(_said(1) for _ in range(9))])
    proxy.cut()
    assert _lengths(store.messages("s", max_tokens=100)) == [1, 1, 1]
    assert _lengths(store.messages("s", max_tokens=2)) == [1, 1]
    store.close()


def test_a_budget_read_teaches_the_mirror_a_tail_not_a_whole_session(
    fresh_redis_server: RedisServer, proxy: TcpProxy, prefix: str
) -> None:
    other = ConversationStore.from_url(
        fresh_redis_server.url, key_prefix=prefix, fallback="raise", token_counter=_words
    )
    other.append("s", [_said(1) for _ in range(10)])
    store = ConversationStore.from_url(proxy.url, key_prefix=prefix, token_counter=_words, **FAST)
    assert len(store.messages("s", max_tokens=3)) == 3
    proxy.cut()
    with pytest.raises(IncompleteMirrorError):
        store.pop("s", 0)
    info = store.info("s")
    assert info is not None and info.message_count == 10
    store.close()
    other.close()


# -- session metadata in an outage ---------------------------------------------------------


@pytest.mark.parametrize("journal", ["memory", "sqlite"])
def test_metadata_updates_in_an_outage_are_served_and_replayed(
    fresh_redis_server: RedisServer,
    proxy: TcpProxy,
    prefix: str,
    tmp_path: Any,
    journal: str,
) -> None:
    options: dict[str, Any] = dict(FAST)
    if journal == "sqlite":
        options["journal_path"] = str(tmp_path / "journal.db")
    store = ConversationStore.from_url(proxy.url, key_prefix=prefix, **options)
    store.append("s", [msg("hello")])
    store.update_session("s", title="before", context={"topic": "x", "flow": "a"})
    proxy.cut()
    info = store.update_session("s", title="during", status="paused", context={"flow": None})
    assert (info.title, info.status, info.context) == ("during", "paused", {"topic": "x"})
    assert store.status().pending_replay == 1
    proxy.restore()
    until_recovered(lambda: store.messages("s", last=1), store)
    reader = ConversationStore.from_url(fresh_redis_server.url, key_prefix=prefix, fallback="raise")
    stored_info = reader.info("s")
    assert stored_info is not None
    assert (stored_info.title, stored_info.status, stored_info.context) == (
        "during",
        "paused",
        {"topic": "x"},
    )
    assert stored_info.message_count == 1
    reader.close()
    store.close()
