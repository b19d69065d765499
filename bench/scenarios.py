"""The benchmark's scenarios (see run.py for the harness)."""

from __future__ import annotations

import asyncio
import itertools
import random
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import redis

from bench.subjects import Subject, available, make_messages, run_async

POOL = make_messages(2000)


def _cycle() -> Callable[[], Any]:
    counter = itertools.count()
    return lambda: POOL[next(counter) % len(POOL)]


# Added latency each way (same-zone and cross-zone cloud Redis); --quick runs the last.
DELAYS_MS = (0.25, 1.0)


def run_all(
    url: str, *, quick: bool, counter: Any, measure: Callable[..., Any], server_stats: Any
) -> list[Any]:
    from bench.run import Row

    rounds = 60 if quick else 400
    rows: list[Row] = []
    run = int(time.time()) % 100000
    subjects = available(url, run=run)
    sections: list[tuple[str, Callable[[], list[Row]]]] = [
        ("per operation", lambda: _per_operation(subjects, rounds, quick, counter, measure)),
        ("LangChain turn", lambda: _langchain_turn(subjects, rounds, counter, measure)),
        ("LlamaIndex turn", lambda: _llama_turn(subjects, rounds, counter, measure)),
        ("LangGraph step", lambda: _langgraph_step(url, rounds, counter, measure)),
        ("bytes", lambda: _memory(url, subjects)),
        ("at rest", lambda: _at_rest(url, rounds, counter, measure)),
        ("Redis CPU", lambda: _server_cost(url, subjects, 50 if quick else 500, server_stats)),
        ("async", lambda: _concurrent(subjects, quick)),
        ("semantic search", lambda: _semantic_search(url, quick)),
    ]
    try:
        for name, section in sections:
            rows += _timed(name, section)
    finally:
        for subject in subjects:
            subject.close()
    for delay_ms in DELAYS_MS[-1:] if quick else DELAYS_MS:
        rows += _timed(
            f"+{delay_ms:g} ms each way",
            lambda d=delay_ms: _over_network(url, d, 5 if quick else 60, counter, measure, run),
        )
    rows += _timed("outage", lambda: _outage(quick))
    rows += _timed("recovery", _recovery)
    return rows


def _timed(name: str, section: Callable[[], list[Any]]) -> list[Any]:
    started = time.perf_counter()
    rows = section()
    print(f"  {name}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return rows


def _per_operation(
    subjects: list[Subject], rounds: int, quick: bool, counter: Any, measure: Callable[..., Any]
) -> list[Any]:
    rows: list[Any] = []
    for length in (10, 1000):
        for subject in subjects:
            if not subject.per_request:  # a per-request subject shares its twin's sessions
                subject.prefill(f"a{length}", POOL[:length])
        ops = {}
        for subject in subjects:
            next_message = _cycle()
            ops[subject.name] = lambda s=subject, n=next_message, L=length: s.add_one(f"a{L}", n())
        rows += measure(f"append 1 at length {length}", ops, rounds, counter)

    ops = {}
    for subject in subjects:
        batch = POOL[:10]
        ops[subject.name] = lambda s=subject, b=batch: s.add_many("batch", b)
    rows += measure("add 10 messages", ops, rounds, counter)

    for length in (10, 100, 1000, 5000):
        if quick and length == 5000:
            continue
        for subject in subjects:
            if not subject.per_request:
                subject.prefill(f"r{length}", (POOL * 3)[:length])
        ops = {s.name: (lambda s=s, L=length: s.read_all(f"r{L}")) for s in subjects}
        reads = max(10, rounds // (1 if length <= 100 else 4 if length <= 1000 else 10))
        rows += measure(f"read all at {length}", ops, reads, counter)

    tail_length = 1000 if quick else 5000
    for length in (10, tail_length):
        ops = {}
        for subject in subjects:
            if subject.read_last(f"r{length}", 20) is not None:
                ops[subject.name] = lambda s=subject, L=length: s.read_last(f"r{L}", 20)
        rows += measure(f"read last 20 at {length}", ops, rounds, counter)

    for length in (10, tail_length):
        scenario = f"read max_tokens=2000 at {length}"
        budget: list[Any] = []
        for subject in subjects:
            if subject.read_budget(f"r{length}", 2000) is None:
                continue
            # Each alone, not alternated: raw redis-py reads the whole session here,
            # and the garbage of 5,000 records slowed whichever call came next.
            op = {subject.name: lambda s=subject, L=length: s.read_budget(f"r{L}", 2000)}
            budget += measure(scenario, op, rounds, counter, reference=subject.name)
        reference = next(r.median_us for r in budget if r.subject == "raw redis-py")
        for row in budget:
            row.ratio = round(row.median_us / reference, 2)
            row.extra["measured"] = "alone"
        rows += budget
    return rows


def _over_network(
    url: str,
    delay_ms: float,
    rounds: int,
    counter: Any,
    measure: Callable[..., Any],
    run: int,
) -> list[Any]:
    """The rows where round trips dominate, through a proxy adding ``delay_ms`` each way."""
    from bench.proxy import added_round_trip_us, delayed
    from bench.run import Row

    label = f" (+{delay_ms:g} ms each way)"
    rows: list[Any] = []
    with delayed(url, delay_ms / 1000) as proxied:
        rows.append(
            Row(
                f"network{label}",
                "delay proxy",
                extra={"measured_added_round_trip_us": added_round_trip_us(url, proxied)},
            )
        )
        subjects = available(proxied, run=run + 1 + int(delay_ms * 1000))
        try:
            for subject in subjects:
                if not subject.per_request:
                    subject.prefill("a10", POOL[:10])
                    subject.prefill("r100", POOL[:100])
            ops = {}
            for subject in subjects:
                next_message = _cycle()
                ops[subject.name] = lambda s=subject, n=next_message: s.add_one("a10", n())
            rows += measure(f"append 1 at length 10{label}", ops, rounds, counter)
            ops = {s.name: (lambda s=s: s.add_many("batch", POOL[:10])) for s in subjects}
            rows += measure(f"add 10 messages{label}", ops, rounds, counter)
            ops = {s.name: (lambda s=s: s.read_all("r100")) for s in subjects}
            rows += measure(f"read all at 100{label}", ops, rounds, counter)
            rows += _langchain_turn(subjects, rounds * 4, counter, measure, label)
            rows += _llama_turn(subjects, rounds * 4, counter, measure, label)
        finally:
            for subject in subjects:
                subject.close()
        rows += _langgraph_step(proxied, rounds * 4, counter, measure, label)
    return rows


def _server_cost(url: str, subjects: list[Subject], calls: int, stats: Any) -> list[Any]:
    """Redis's own cost of each implementation's operations, each run alone: the
    commandstats time of the commands the client sent (a script's inner commands are
    inside its time, counted once) and the server process's CPU time (rusage: also
    the network I/O and parsing), per operation; and how many of them one Redis core
    would serve at that CPU cost."""
    from bench.run import Row

    rows = []
    operations: list[tuple[str, Callable[[Subject, int], Any]]] = [
        ("append 1 at length 1000", lambda s, i: s.add_one("a1000", POOL[i % len(POOL)])),
        ("add 10 messages", lambda s, i: s.add_many("batch", POOL[:10])),
        ("read all at 100", lambda s, i: s.read_all("r100")),
    ]
    for operation, op in operations:
        for subject in subjects:
            for i in range(5):  # warm: connections made, scripts loaded
                op(subject, i)
            with stats.measuring() as cost:
                for i in range(calls):
                    op(subject, i)
            command_us, cpu_us = cost.command_us / calls, cost.cpu_us / calls
            rows.append(
                Row(
                    f"Redis CPU per op: {operation}",
                    subject.name,
                    extra={
                        "command_us": round(command_us, 1),
                        "server_cpu_us": round(cpu_us, 1),
                        "ops_per_core_s": round(1e6 / cpu_us) if cpu_us else None,
                        "commands": cost.commands_text(calls),
                    },
                )
            )
    for operation, _ in operations:
        scenario = f"Redis CPU per op: {operation}"
        raw = next(r for r in rows if r.scenario == scenario and r.subject == "raw redis-py")
        for row in rows:
            if row.scenario == scenario and raw.extra["command_us"]:
                row.ratio = round(row.extra["command_us"] / raw.extra["command_us"], 2)
    return rows


def _langchain_turn(
    subjects: list[Subject], rounds: int, counter: Any, measure: Any, label: str = ""
) -> list[Any]:
    names = {s.name: s for s in subjects if s.framework == "langchain"}
    if not names:
        return []
    from langchain_core.chat_history import InMemoryChatMessageHistory
    from langchain_core.language_models import FakeListChatModel
    from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
    from langchain_core.runnables.history import RunnableWithMessageHistory

    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are terse."), MessagesPlaceholder("history"), ("human", "{input}")]
    )
    model = FakeListChatModel(responses=["ok, noted: " + POOL[1].text[:200]])
    memory: dict[str, InMemoryChatMessageHistory] = {}
    factories: dict[str, Callable[[str], Any]] = {
        "langchain in-memory": lambda sid: memory.setdefault(sid, InMemoryChatMessageHistory())
    }
    for name, subject in names.items():
        factories[name] = subject.history
    ops = {}
    for name, factory in factories.items():
        chain = RunnableWithMessageHistory(
            prompt | model,
            factory,
            input_messages_key="input",
            history_messages_key="history",
        )
        config = {"configurable": {"session_id": "turns-" + name.replace(" ", "-")}}
        question = POOL[0].text
        ops[name] = lambda c=chain, cfg=config, q=question: c.invoke({"input": q}, config=cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return measure(
            f"LangChain RunnableWithMessageHistory turn{label}",
            ops,
            max(20, rounds // 4),
            counter,
            reference="langchain_community",
        )


def _llama_turn(
    subjects: list[Subject], rounds: int, counter: Any, measure: Any, label: str = ""
) -> list[Any]:
    chosen = [s for s in subjects if s.framework == "llama-index"]
    if not chosen:
        return []
    from llama_index.core.chat_engine import SimpleChatEngine
    from llama_index.core.llms import MockLLM
    from llama_index.core.memory import ChatMemoryBuffer
    from llama_index.core.storage.chat_store import SimpleChatStore

    in_memory = SimpleChatStore()
    stores: dict[str, tuple[Callable[[], Any], str]] = {
        "llama-index in-memory": (lambda: in_memory, "turns-in-memory")
    }
    for subject in chosen:
        key = subject.chat_key(f"turns-{subject.per_request}")  # type: ignore[attr-defined]
        stores[subject.name] = (subject.chat_store, key)  # type: ignore[attr-defined]
    ops = {}
    for name, (store, key) in stores.items():

        def turn(store: Callable[[], Any] = store, key: str = key) -> Any:
            # What a web app does per request: memory and engine over the chat store
            # (the one store, or a new one per request).
            memory = ChatMemoryBuffer.from_defaults(
                chat_store=store(), chat_store_key=key, token_limit=3000
            )
            engine = SimpleChatEngine.from_defaults(llm=MockLLM(max_tokens=40), memory=memory)
            return engine.chat(POOL[0].text)

        ops[name] = turn
    reference = "llama-index redis" if "llama-index redis" in ops else next(iter(ops))
    return measure(
        f"LlamaIndex SimpleChatEngine turn{label}",
        ops,
        max(20, rounds // 4),
        counter,
        reference=reference,
    )


def _langgraph_step(
    url: str, rounds: int, counter: Any, measure: Any, label: str = ""
) -> list[Any]:
    """One step of a small LangGraph agent (bench/langgraph_bench.py's): chatkeep's
    RedisSaver against LangGraph's InMemorySaver (no I/O: the floor). No Redis
    checkpointer of another package runs on a plain redis-server (langgraph-checkpoint-
    redis needs the RedisJSON and RediSearch modules), so there is no Redis peer here."""
    try:
        from langchain_core.messages import HumanMessage
        from langgraph.checkpoint.memory import InMemorySaver

        from bench.langgraph_bench import build
        from chatkeep_langgraph import RedisSaver
    except ImportError as exc:
        print(f"  (skipping the LangGraph step: {exc.name} is not installed)")
        return []
    saver = RedisSaver(url, key_prefix=f"lgstep{uuid.uuid4().hex[:8]}")  # defaults: fallback on
    graphs = {
        "chatkeep RedisSaver": build(saver),
        "langgraph InMemorySaver": build(InMemorySaver()),
    }
    ops = {}
    for name, graph in graphs.items():
        steps = itertools.count()

        def step(graph: Any = graph, steps: Any = steps) -> Any:
            i = next(steps)
            text = f"What is the weather in Paris? ({i})" if i % 3 == 2 else f"Question {i}, " * 5
            config = {"configurable": {"thread_id": f"t{i // 20}"}}  # 20-step threads
            return graph.invoke({"messages": [HumanMessage(text)]}, config)

        ops[name] = step
    try:
        return measure(
            f"LangGraph agent step{label}",
            ops,
            max(20, rounds // 4),
            counter,
            reference="langgraph InMemorySaver",
        )
    finally:
        saver.close()


def _concurrent(subjects: list[Subject], quick: bool) -> list[Any]:
    from bench.run import Row

    sessions, per_session = (50, 10) if quick else (200, 20)
    rows = []
    rates: dict[str, float] = {}
    failures: dict[str, str] = {}
    for subject in subjects:

        async def scenario(s: Subject = subject) -> float:
            async def writer(n: int) -> None:
                for i in range(per_session):
                    await s.aadd_one(f"conc{n}", POOL[(n + i) % len(POOL)])

            await s.aadd_one("conc-warm", POOL[0])
            start = time.perf_counter()
            await asyncio.gather(*(writer(n) for n in range(sessions)))
            elapsed = time.perf_counter() - start
            await s.aclose()
            return sessions * per_session / elapsed

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                rates[subject.name] = run_async(scenario())
            except Exception as exc:  # a peer that cannot take the load: say so
                failures[subject.name] = f"{type(exc).__name__}: {exc}"
    ref = rates.get("raw redis-py")
    for name, rate in rates.items():
        rows.append(
            Row(
                f"async {sessions} sessions × {per_session} appends",
                name,
                extra={
                    "messages_per_s": round(rate),
                    "vs_raw": round(rate / ref, 2) if ref else None,
                },
            )
        )
    for name, failure in failures.items():
        rows.append(
            Row(
                f"async {sessions} sessions × {per_session} appends",
                name,
                extra={"failed": failure},
            )
        )
    return rows


def _semantic_search(url: str, quick: bool) -> list[Any]:
    """Exact semantic search over one namespace (bench/langgraph_search_bench.py):
    p50/p95 per search, ratio to LangGraph's InMemoryStore (everything in process)."""
    from bench.langgraph_search_bench import run as run_search
    from bench.run import Row

    items, dims, searches = (100, 64, 5) if quick else (1000, 1536, 30)
    found = run_search(items, dims, searches, url)
    reference = next(r["p50_ms"] for r in found if r["store"] == "LangGraph InMemoryStore")
    return [
        Row(
            f"semantic search {items} × {dims}",
            r["store"],
            median_us=round(r["p50_ms"] * 1000, 1),
            ratio=round(r["p50_ms"] / reference, 2),
            extra={
                "p95_ms": round(r["p95_ms"], 2),
                "put_ms_per_item": round(r["put_ms_per_item"], 3),
                "vs": "InMemoryStore",
            },
        )
        for r in found
    ]


def _memory(url: str, subjects: list[Subject]) -> list[Any]:
    from bench.run import Row

    client = redis.Redis.from_url(url)
    count = 1000
    sizes: dict[str, float] = {}
    for subject in subjects:
        if subject.per_request:
            continue  # the same records as its reused twin
        subject.prefill("mem", POOL[:count])
        total = sum(client.memory_usage(k, samples=0) or 0 for k in subject.keys("mem"))
        sizes[subject.name] = total / count
    client.close()
    ref = sizes.get("raw redis-py")
    return [
        Row(
            f"bytes per message in Redis ({count} messages)",
            name,
            ratio=round(size / ref, 2) if ref else None,
            extra={"bytes": round(size)},
        )
        for name, size in sizes.items()
    ]


AT_REST_KEY = bytes(range(32))
AT_REST_MODES: dict[str, dict[str, Any]] = {
    "plain": {},
    "zlib": {"compression": "zlib"},
    "zstd": {"compression": "zstd"},
    "encrypted": {"encryption_keys": {"k1": AT_REST_KEY}},
    "zstd+encrypted": {"compression": "zstd", "encryption_keys": {"k1": AT_REST_KEY}},
}


def _prose(size: int, rng: random.Random, vocabulary: list[str]) -> str:
    """Text of ``size`` characters: words of a 3,000-word vocabulary drawn by Zipf's
    law (as words of a language are), a number now and then. About as compressible as
    chat text and tool output; a repeated line would flatter compression."""
    weights = list(itertools.accumulate(1 / rank for rank in range(1, len(vocabulary) + 1)))
    parts: list[str] = []
    length = 0
    while length < size:
        if rng.random() < 0.05:
            word = str(rng.randint(0, 99999))
        else:
            word = rng.choices(vocabulary, cum_weights=weights)[0]
        parts.append(word)
        length += len(word) + 1
    return " ".join(parts)[:size]


def _at_rest(url: str, rounds: int, counter: Any, measure: Callable[..., Any]) -> list[Any]:
    """Compression and encryption at rest: append and read cost and bytes per message
    of 200-character and 20 KB messages, ratios to a plain store in the same run."""
    from bench.run import Row
    from chatkeep import ConversationStore, Message
    from chatkeep.redis import KeySchema

    rng = random.Random(11)
    letters = "etaoinshrdlcumwfgypbvkjxqz"
    vocabulary = [
        "".join(rng.choice(letters[: rng.randint(8, 26)]) for _ in range(rng.randint(2, 10)))
        for _ in range(3000)
    ]
    run = f"rest{int(time.time() * 1000) % 10**9}"
    client = redis.Redis.from_url(url)
    stores = {
        f"chatkeep {mode}": ConversationStore.from_url(url, key_prefix=run, **options)
        for mode, options in AT_REST_MODES.items()
    }
    rows: list[Any] = []
    try:
        for size in (200, 20_000):
            pool = [Message(role="tool", content=_prose(size, rng, vocabulary)) for _ in range(50)]
            kept = 20
            sizes: dict[str, float] = {}
            for name, store in stores.items():
                sid = f"r{size}-{name}"
                store.append(sid, pool[:kept])
                raw = client.lrange(KeySchema(run).session(sid)[0], 0, -1)
                sizes[name] = sum(map(len, raw)) / len(raw)
            ops = {}
            for name, store in stores.items():
                cycle = itertools.cycle(pool)
                ops[name] = lambda st=store, c=cycle, n=name, S=size: st.append(
                    f"a{S}-{n}", [next(c)], ttl=600
                )
            reference = "chatkeep plain"
            rows += measure(f"at rest: append 1 of {size} chars", ops, rounds, counter, reference)
            reads = {
                name: (lambda st=store, n=name, S=size: st.messages(f"r{S}-{n}"))
                for name, store in stores.items()
            }
            rows += measure(
                f"at rest: read {kept} of {size} chars", reads, max(10, rounds // 2), counter,
                reference,
            )  # fmt: skip
            plain = sizes[reference]
            rows += [
                Row(
                    f"at rest: record bytes per message of {size} chars",
                    name,
                    ratio=round(value / plain, 2),
                    extra={"bytes": round(value)},
                )
                for name, value in sizes.items()
            ]
    finally:
        for store in stores.values():
            store.close()
        client.close()
    return rows


def _outage(quick: bool) -> list[Any]:
    """Per-call latency with the circuit open, and the first call after the server dies."""
    from bench.proxy import Proxy
    from bench.run import Row
    from bench.servers import RedisServer
    from chatkeep import ConversationStore

    rows = []
    calls = 300 if quick else 3000
    with RedisServer() as server:
        for how in ("refused", "black-holed"):
            proxy = Proxy(server.port)  # a Redis of its own: its own circuit
            store = ConversationStore.from_url(proxy.url, key_prefix="outage", probe_interval=3600)
            store.append("s", POOL[:20])
            store.messages("s")
            if how == "refused":
                proxy.cut()
            else:
                proxy.cut(blackhole=True)
            start = time.perf_counter()
            store.append("s", [POOL[20]])
            first = time.perf_counter() - start
            appends, reads = [], []
            for i in range(calls):
                t0 = time.perf_counter_ns()
                store.append("s", [POOL[i % 100]])
                t1 = time.perf_counter_ns()
                store.messages("s", last=20)
                t2 = time.perf_counter_ns()
                appends.append(t1 - t0)
                reads.append(t2 - t1)
            appends.sort()
            reads.sort()
            rows.append(
                Row(
                    f"during an outage ({how}, circuit open)",
                    "chatkeep store",
                    median_us=round(appends[len(appends) // 2] / 1000, 1),
                    p99_us=round(appends[int(len(appends) * 0.99)] / 1000, 1),
                    extra={
                        "op": "append",
                        "read_last_20_median_us": round(reads[len(reads) // 2] / 1000, 1),
                        "first_call_s": round(first, 3),
                        "degraded": store.status().degraded,
                    },
                )
            )
            store._closed = True  # nothing to replay into a dead server
            proxy.restore()
            proxy.close()
    return rows


def _recovery() -> list[Any]:
    """50 writer threads appending at full speed over 100 sessions while Redis (AOF,
    fsync always) is SIGKILLed for 1 s: how long after Redis answers again the store is
    back on it, and whether every acknowledged append is in Redis exactly once."""
    import threading
    from collections import Counter

    from bench.run import Row
    from bench.servers import RedisServer
    from chatkeep import ConversationStore, JournalFullError, Message

    writers, sessions = 50, 100
    acked: list[tuple[str, str]] = []
    refused = 0
    stop = threading.Event()
    with RedisServer("--appendonly", "yes", "--appendfsync", "always") as server:
        store = ConversationStore.from_url(server.url, key_prefix="recovery")

        def write(w: int) -> None:
            nonlocal refused
            rng = random.Random(w)
            i = 0
            while not stop.is_set():
                sid, text = f"s{rng.randrange(sessions)}", f"{w}:{i}"
                try:
                    store.append(sid, [Message(role="user", content=text)])
                except JournalFullError:
                    refused += 1
                    continue
                acked.append((sid, text))
                i += 1

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        server.kill()
        time.sleep(1.0)
        server.start()
        server.wait_ready()
        returned = time.monotonic()
        while store.status().degraded and time.monotonic() - returned < 60:
            time.sleep(0.005)
        back = time.monotonic() - returned
        time.sleep(0.5)
        stop.set()
        for thread in threads:
            thread.join()
        store.flush()
        client = server.client()
        found: Counter[tuple[str, str]] = Counter()
        for n in range(sessions):
            sid = f"s{n}"
            for message in store.messages(sid):
                found[(sid, message.text)] += 1
        client.close()
        store.close()
    wanted = Counter(acked)
    lost = sum(1 for key in wanted if found[key] == 0)
    duplicated = sum(count - 1 for count in found.values() if count > 1)
    return [
        Row(
            "recovery: 50 writers, Redis SIGKILLed for 1 s",
            "chatkeep store",
            extra={
                "back_after_s": round(back, 2),
                "acked": len(acked),
                "lost": lost,
                "duplicated": duplicated,
                "refused": refused,
            },
        )
    ]
