"""Semantic search: one namespace of N items x D dims, p50 per search (a LangGraph store,
and chatkeep's own ``MemoryStore(embed=...)``).

``RedisStore`` (chatkeep, exact cosine over the namespace on plain Redis: one round
trip to list the namespace's keys, one to read its items and vectors, one to slide the
TTL of what is returned; scoring in this process) next to LangGraph's ``InMemoryStore``
(everything in process memory, no I/O). The embedding function is a fake that returns
a fixed pseudo-random unit vector per text, so only the stores are measured (the query
embedding is cached after the first call).

Redis: ``--url`` (or ``REDIS_URL``) if it answers, else a throwaway ``redis-server`` on a
free port (never the one on 6379). Run::

    python bench/langgraph_search_bench.py                  # 1,000 items x 1,536 dims
    python bench/langgraph_search_bench.py --items 5000 --json out.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from chatkeep import MemoryStore
from chatkeep_langgraph import RedisStore

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.langgraph_bench import redis_url


def fake_embed(dims: int) -> Callable[[Sequence[str]], list[list[float]]]:
    cache: dict[str, list[float]] = {}

    def one(text: str) -> list[float]:
        if text not in cache:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")
            rng = random.Random(seed)
            vector = [rng.gauss(0, 1) for _ in range(dims)]
            norm = sum(x * x for x in vector) ** 0.5
            cache[text] = [x / norm for x in vector]
        return cache[text]

    def embed(texts: Sequence[str]) -> list[list[float]]:
        return [one(t) for t in texts]

    return embed


def measure(store: BaseStore | MemoryStore, items: int, searches: int) -> dict[str, float]:
    ns = ("memories", "user-1")
    started = time.perf_counter()
    for i in range(items):
        store.put(ns, f"m{i}", {"text": f"memory number {i} about topic {i % 37}"})
    put_s = time.perf_counter() - started
    queries = [f"what about topic {i % 37}?" for i in range(searches)]
    store.search(ns, query=queries[0], limit=5)  # warm up (scripts loaded, query embedded)
    timings = []
    for query in queries:
        t0 = time.perf_counter()
        found = store.search(ns, query=query, limit=5)
        timings.append((time.perf_counter() - t0) * 1000)
        assert len(found) == min(5, items) and found[0].score is not None
    timings.sort()
    return {
        "p50_ms": statistics.median(timings),
        "p95_ms": timings[max(0, int(len(timings) * 0.95) - 1)],
        "put_ms_per_item": put_s * 1000 / items,
    }


def run(items: int, dims: int, searches: int, url: str) -> list[dict[str, Any]]:
    index: Any = {"dims": dims, "embed": fake_embed(dims), "fields": ["text"]}
    results = []
    for name, make in [
        ("chatkeep RedisStore (redis)", lambda: RedisStore(url, key_prefix=_prefix(), index=index)),
        ("chatkeep RedisStore (memory://)", lambda: RedisStore("memory://", index=index)),
        (
            "chatkeep MemoryStore (redis)",
            lambda: MemoryStore.from_url(url, key_prefix=_prefix(), embed=index["embed"]),
        ),
        ("LangGraph InMemoryStore", lambda: InMemoryStore(index=index)),
    ]:
        store = make()
        try:
            results.append({"store": name, **measure(store, items, searches)})
        finally:
            if isinstance(store, (RedisStore, MemoryStore)):
                store.close()
    return results


def _prefix() -> str:
    return f"bench{uuid.uuid4().hex[:8]}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--dims", type=int, default=1536)
    parser.add_argument("--searches", type=int, default=50)
    parser.add_argument("--url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    url, stop = redis_url(args.url)
    try:
        results = run(args.items, args.dims, args.searches, url)
    finally:
        stop()
    print(f"semantic search, {args.items} items x {args.dims} dims, {args.searches} searches")
    print(f"{'store':34} {'p50 ms':>8} {'p95 ms':>8} {'put ms/item':>12}")
    for r in results:
        print(
            f"{r['store']:34} {r['p50_ms']:>8.2f} {r['p95_ms']:>8.2f} {r['put_ms_per_item']:>12.3f}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
