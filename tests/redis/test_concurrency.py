"""Many writers, one session: nothing lost, nothing doubled, each writer's order kept."""

from __future__ import annotations

import multiprocessing
import threading
from collections import defaultdict

import pytest
import redis

from chatkeep import ConversationStore, Message
from chatkeep.codec import decode
from tests.support.threads import in_threads

pytestmark = pytest.mark.redis_server

THREADS, PER_THREAD = 8, 100
PROCESSES, PER_PROCESS = 4, 250


def _process_writer(url: str, prefix: str, writer: int, start: threading.Event | None) -> None:
    with ConversationStore.from_url(url, key_prefix=prefix, fallback="raise") as store:
        for i in range(PER_PROCESS):
            store.append("shared", [Message(role="user", content=f"p{writer}-{i}")])


def _check(texts: list[str], writers: dict[str, int]) -> None:
    assert len(texts) == len(set(texts)), "a message was stored twice"
    by_writer: dict[str, list[int]] = defaultdict(list)
    for text in texts:
        writer, i = text.rsplit("-", 1)
        by_writer[writer].append(int(i))
    assert {w: len(v) for w, v in by_writer.items()} == writers
    for seq in by_writer.values():
        assert seq == sorted(seq), "a writer's messages are out of order"


def test_threads_and_processes_append_to_one_session(redis_server: object, prefix: str) -> None:
    url = redis_server.url  # type: ignore[attr-defined]
    store = ConversationStore.from_url(url, key_prefix=prefix, fallback="raise")
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_process_writer, args=(url, prefix, n, None))
        for n in range(PROCESSES)
    ]
    barrier = threading.Barrier(THREADS)

    def thread_writer(writer: int) -> None:
        barrier.wait()
        for i in range(PER_THREAD):
            store.append("shared", [Message(role="user", content=f"t{writer}-{i}")])

    for process in processes:
        process.start()
    in_threads(THREADS, thread_writer)
    for process in processes:
        process.join(timeout=120)
        assert process.exitcode == 0
    raw = redis.Redis.from_url(url)
    texts = [decode(r).text for r in raw.lrange(f"{prefix}:{{shared}}:m", 0, -1)]
    raw.close()
    expected = {f"t{n}": PER_THREAD for n in range(THREADS)}
    expected.update({f"p{n}": PER_PROCESS for n in range(PROCESSES)})
    _check(texts, expected)
    assert len(texts) == 1800
    assert store.info("shared").message_count == 1800
    store.close()


def test_threads_on_the_memory_backend() -> None:
    store = ConversationStore.from_url("memory://")

    def writer(n: int) -> None:
        for i in range(PER_THREAD):
            store.append("shared", [Message(role="user", content=f"t{n}-{i}")])

    in_threads(THREADS, writer)
    _check(
        [m.text for m in store.messages("shared")], {f"t{n}": PER_THREAD for n in range(THREADS)}
    )
