"""LangGraph checkpointers side by side: a 20-step agent conversation.

Each step is one ``graph.invoke`` of a small agent (fake chat model, a tool call every
third step, so some steps run three nodes). Measured per checkpointer:

* median and p90 latency of a step (the whole invoke, checkpoint writes included);
* bytes the thread holds at the end: ``MEMORY USAGE`` of the thread's keys for
  chatkeep's ``RedisSaver``; the serialized bytes kept by ``InMemorySaver``; the
  database file for ``SqliteSaver`` (``langgraph-checkpoint-sqlite``, if installed).

Redis: ``--url`` (or ``REDIS_URL``) if it answers, else a throwaway ``redis-server``
on a free port (never the one on 6379). Run::

    python bench/langgraph_bench.py            # 20 steps, 5 threads per saver
    python bench/langgraph_bench.py --steps 50 --threads 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver

from chatkeep_langgraph import RedisSaver

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from examples.langgraph_agent import build as build_agent


def _model(messages: list[BaseMessage]) -> AIMessage:
    last = messages[-1]
    if isinstance(last, HumanMessage) and "weather" in str(last.content):
        return AIMessage(
            content="",
            tool_calls=[{"id": f"c{len(messages)}", "name": "weather", "args": {"city": "Paris"}}],
        )
    return AIMessage(content="An answer of a typical length, " * 6 + f"(turn {len(messages)})")


def build(checkpointer: Any) -> Any:
    """The agent of examples/langgraph_agent.py, with a model that writes answers of a
    typical length."""
    return build_agent(checkpointer, chat_model=_model)


def conversation(graph: Any, thread_id: str, steps: int) -> list[float]:
    config = {"configurable": {"thread_id": thread_id}}
    timings = []
    for i in range(steps):
        text = (
            f"What is the weather in Paris? ({i})" if i % 3 == 2 else f"Question number {i}, " * 5
        )
        started = time.perf_counter()
        graph.invoke({"messages": [HumanMessage(text)]}, config)
        timings.append(time.perf_counter() - started)
    return timings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_url(wanted: str | None) -> tuple[str, Callable[[], None]]:
    if wanted:
        try:
            client = redis.Redis.from_url(wanted, socket_connect_timeout=0.5)
            client.ping()
            client.close()
            return wanted, lambda: None
        except (redis.RedisError, OSError):
            print(f"no Redis at {wanted}; starting a throwaway redis-server", file=sys.stderr)
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("needs a Redis: pass --url or put redis-server on the PATH")
    port = _free_port()
    folder = tempfile.mkdtemp(prefix="lg-bench-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", folder],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)

    def stop() -> None:
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)

    return url, stop


def _summary(
    name: str, timings: list[float], bytes_per_thread: float, checkpoints: int
) -> dict[str, Any]:
    ordered = sorted(timings)
    return {
        "saver": name,
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1] * 1000, 3),
        "bytes_per_thread": round(bytes_per_thread),
        "checkpoints_per_thread": checkpoints,
    }


def run(steps: int, threads: int, url: str) -> list[dict[str, Any]]:
    results = []

    # chatkeep RedisSaver
    prefix = f"lgbench{uuid.uuid4().hex[:6]}"
    saver = RedisSaver(url, key_prefix=prefix, fallback="raise")
    graph = build(saver)
    conversation(graph, "warmup", 3)
    timings: list[float] = []
    for t in range(threads):
        timings += conversation(graph, f"t{t}", steps)
    raw = redis.Redis.from_url(url)
    sizes = []
    for t in range(threads):
        keys = saver.policy.keys(f"t{t}")
        sizes.append(sum(raw.memory_usage(k) or 0 for k in keys))
    count = int(raw.zcard(saver.policy.keys("t0")[0]))
    for t in [*range(threads), "warmup"]:
        saver.delete_thread(f"t{t}" if t != "warmup" else "warmup")
    raw.close()
    saver.close()
    results.append(_summary("chatkeep RedisSaver", timings, statistics.mean(sizes), count))

    # keep_last bounds growth
    saver = RedisSaver(url, key_prefix=prefix, fallback="raise", keep_last=10)
    graph = build(saver)
    timings = []
    for t in range(threads):
        timings += conversation(graph, f"k{t}", steps)
    raw = redis.Redis.from_url(url)
    sizes = [
        sum(raw.memory_usage(k) or 0 for k in saver.policy.keys(f"k{t}")) for t in range(threads)
    ]
    count = int(raw.zcard(saver.policy.keys("k0")[0]))
    for t in range(threads):
        saver.delete_thread(f"k{t}")
    raw.close()
    saver.close()
    results.append(
        _summary("chatkeep RedisSaver keep_last=10", timings, statistics.mean(sizes), count)
    )

    # LangGraph's InMemorySaver
    memory = InMemorySaver()
    graph = build(memory)
    conversation(graph, "warmup", 3)
    timings = []
    for t in range(threads):
        timings += conversation(graph, f"t{t}", steps)
    size = sum(len(c[0][1]) + len(c[1][1]) for c in memory.storage["t0"][""].values())
    size += sum(len(v[1]) for k, v in memory.blobs.items() if k[0] == "t0")
    size += sum(
        len(w[2][1]) for k, ws in memory.writes.items() if k[0] == "t0" for w in ws.values()
    )
    results.append(
        _summary("InMemorySaver (serialized bytes)", timings, size, len(memory.storage["t0"][""]))
    )

    # SqliteSaver, if installed
    try:
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver
    except ImportError:
        print("langgraph-checkpoint-sqlite is not installed: SqliteSaver skipped", file=sys.stderr)
    else:
        folder = Path(tempfile.mkdtemp(prefix="lg-bench-sqlite-"))
        try:
            for t in range(threads):
                conn = sqlite3.connect(folder / f"t{t}.db", check_same_thread=False)
                sqlite = SqliteSaver(conn)
                graph = build(sqlite)
                if t == 0:
                    conversation(graph, "warmup", 3)
                    conn.execute("DELETE FROM checkpoints")
                    conn.execute("DELETE FROM writes")
                    conn.commit()
                    conn.execute("VACUUM")
                timings_t = conversation(graph, f"t{t}", steps)
                timings = timings_t if t == 0 else timings + timings_t
                conn.close()
            sizes = [os.path.getsize(folder / f"t{t}.db") for t in range(threads)]
            conn = sqlite3.connect(folder / "t0.db")
            count = conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
            conn.close()
            results.append(
                _summary("SqliteSaver (file, default sync)", timings, statistics.mean(sizes), count)
            )
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=5)
    parser.add_argument("--url", default=os.environ.get("REDIS_URL"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    url, stop = redis_url(args.url)
    try:
        results = run(args.steps, args.threads, url)
    finally:
        stop()
    print(
        f"{args.steps}-step agent conversation, {args.threads} threads per saver, "
        "median of all steps"
    )
    print(f"{'saver':36} {'median ms':>10} {'p90 ms':>8} {'bytes/thread':>13} {'checkpoints':>12}")
    for r in results:
        print(
            f"{r['saver']:36} {r['median_ms']:>10.3f} {r['p90_ms']:>8.3f} "
            f"{r['bytes_per_thread']:>13,} {r['checkpoints_per_thread']:>12}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
