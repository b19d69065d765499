"""chatkeep benchmark: side by side with raw redis-py and the peers, in one run.

    python bench/run.py [--quick] [--redis-url URL] [--out bench/results]

Starts its own redis-server on a free port unless ``--redis-url`` is given. Every
scenario alternates the implementations op by op (in a shuffled order each round),
so machine noise hits all of them alike. Ratios are to raw redis-py from the same
run. Round trips are counted on the wire (packets sent by redis-py connections), not
estimated. Writes ``results.json`` and ``results.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import redis  # noqa: E402
import redis.asyncio.connection  # noqa: E402
import redis.connection  # noqa: E402

from bench import scenarios, targets  # noqa: E402
from bench.subjects import Subject, available, make_messages  # noqa: E402


@dataclass
class Row:
    scenario: str
    subject: str
    median_us: float | None = None
    p99_us: float | None = None
    ratio: float | None = None  # median / reference median (raw redis-py unless noted)
    round_trips: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class RoundTrips:
    """Counts packets sent by every redis-py connection, sync and async; while
    ``names`` is a Counter, also counts the commands in them by name."""

    sent = 0
    names: Counter[str] | None = None

    def __init__(self) -> None:
        self._patched: list[tuple[type, Callable[..., Any]]] = []

    def install(self) -> None:
        for cls in (
            redis.connection.AbstractConnection,
            redis.asyncio.connection.AbstractConnection,
        ):
            original = cls.send_packed_command
            self._patched.append((cls, original))
            if asyncio.iscoroutinefunction(original):

                async def counted_async(
                    self: Any, *args: Any, _o: Any = original, **kw: Any
                ) -> Any:
                    RoundTrips.sent += 1
                    if RoundTrips.names is not None:
                        RoundTrips.names.update(command_names(args[0]))
                    return await _o(self, *args, **kw)

                cls.send_packed_command = counted_async  # type: ignore[method-assign]
            else:

                def counted(self: Any, *args: Any, _o: Any = original, **kw: Any) -> Any:
                    RoundTrips.sent += 1
                    if RoundTrips.names is not None:
                        RoundTrips.names.update(command_names(args[0]))
                    return _o(self, *args, **kw)

                cls.send_packed_command = counted  # type: ignore[method-assign]

    @contextlib.contextmanager
    def counting(self) -> Iterator[list[int]]:
        box = [RoundTrips.sent]
        yield box
        box.append(RoundTrips.sent - box[0])


# Commands whose commandstats entry is per subcommand ("client|setinfo").
_CONTAINERS = {b"client", b"config", b"script", b"function", b"object", b"memory", b"command"}


def command_names(packed: Any) -> list[str]:
    """The names of the commands in one packet redis-py sends (RESP arrays of bulk
    strings), as ``INFO commandstats`` names them."""
    if isinstance(packed, str):
        packed = packed.encode()
    data = packed if isinstance(packed, bytes) else b"".join(bytes(part) for part in packed)
    names, at = [], 0
    while at < len(data):
        end = data.index(b"\r\n", at)
        count, at = int(data[at + 1 : end]), end + 2
        name = b""
        for index in range(count):
            end = data.index(b"\r\n", at)
            size, at = int(data[at + 1 : end]), end + 2
            arg, at = data[at : at + size].lower(), at + size + 2
            if index == 0:
                name = arg
            elif index == 1 and name in _CONTAINERS:
                name += b"|" + arg
        names.append(name.decode())
    return names


@dataclass
class ServerCost:
    command_us: float = 0.0
    cpu_us: float = 0.0
    sent: Counter[str] = field(default_factory=Counter)

    def commands_text(self, calls: int) -> str:
        return " ".join(f"{name}×{count / calls:g}" for name, count in sorted(self.sent.items()))


class ServerStats:
    """What a block of operations cost the Redis server: ``INFO commandstats`` time of
    the commands the clients sent and the server's CPU time (``INFO cpu``)."""

    def __init__(self, url: str) -> None:
        self.client = redis.Redis.from_url(url)

    def _read(self) -> tuple[dict[str, Any], float]:
        stats = self.client.info("commandstats")
        cpu = self.client.info("cpu")
        return stats, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    @contextlib.contextmanager
    def measuring(self) -> Iterator[ServerCost]:
        cost = ServerCost()
        stats_before, cpu_before = self._read()
        RoundTrips.names = cost.sent
        try:
            yield cost
        finally:
            RoundTrips.names = None
        stats_after, cpu_after = self._read()
        cost.cpu_us = (cpu_after - cpu_before) * 1e6
        for name, sent in cost.sent.items():
            after = stats_after.get(f"cmdstat_{name}")
            if after is None:
                continue
            before = stats_before.get(f"cmdstat_{name}", {"calls": 0, "usec": 0})
            calls = after["calls"] - before["calls"]
            usec = after["usec"] - before["usec"]
            # A command also run inside scripts is in the script's time already:
            # count only the share of the calls the clients sent.
            if calls > 0:
                cost.command_us += usec * min(1.0, sent / calls)

    def close(self) -> None:
        self.client.close()


def summarize(samples: list[int]) -> tuple[float, float]:
    ordered = sorted(samples)
    median = statistics.median(ordered) / 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000
    return median, p99


def alternate(
    ops: dict[str, Callable[[], Any]], rounds: int, warmup: int = 3
) -> dict[str, list[int]]:
    """Time ``rounds`` calls of every op, interleaved in a new random order each round."""
    names = list(ops)
    for _ in range(warmup):
        for name in names:
            ops[name]()
    samples: dict[str, list[int]] = {name: [] for name in names}
    rng = random.Random(42)
    clock = time.perf_counter_ns
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            op = ops[name]
            start = clock()
            op()
            samples[name].append(clock() - start)
    return samples


def measure(
    scenario: str,
    ops: dict[str, Callable[[], Any]],
    rounds: int,
    counter: RoundTrips,
    reference: str = "raw redis-py",
) -> list[Row]:
    samples = alternate(ops, rounds)
    rows = []
    ref = statistics.median(samples[reference]) / 1000 if reference in samples else None
    for name, op in ops.items():
        with counter.counting() as box:
            for _ in range(3):
                op()
        median, p99 = summarize(samples[name])
        rows.append(
            Row(
                scenario,
                name,
                round(median, 1),
                round(p99, 1),
                round(median / ref, 2) if ref else None,
                round(box[1] / 3, 2),
            )
        )
    return rows


def render(rows: list[Row], meta: dict[str, Any]) -> str:
    lines = [
        f"chatkeep benchmark ({meta['mode']}) — {meta['machine']}; Python {meta['python']}, "
        f"redis-py {meta['redis_py']}, redis-server {meta['redis_server']}, JSON: {meta['json']}",
        "",
        "Each implementation reuses one object per session (or one store), as its docs "
        "show; «per request» rows build a new one (so a new client) for every operation, "
        "as a RunnableWithMessageHistory get_session_history that builds one does. "
        "«(+N ms each way)» rows go through a proxy that delays every packet N ms in "
        "each direction. Redis CPU rows: commandstats time of the commands sent "
        "(command_us) and the server's CPU time (server_cpu_us) per operation, each "
        "implementation run alone; ops_per_core_s = 1e6 / server_cpu_us.",
        "",
        "| scenario | implementation | median µs | p99 µs | × ref | round trips | notes |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        notes = ", ".join(f"{k}={v}" for k, v in row.extra.items())
        lines.append(
            f"| {row.scenario} | {row.subject} | {_fmt(row.median_us)} | {_fmt(row.p99_us)} | "
            f"{_fmt(row.ratio)} | {_fmt(row.round_trips)} | {notes} |"
        )
    return "\n".join(lines) + "\n"


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few rounds; under a minute")
    parser.add_argument("--redis-url", help="use this server instead of starting one")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"), help="output folder")
    args = parser.parse_args(argv)

    from bench.servers import RedisServer

    server = None
    url = args.redis_url
    if url is None:
        server = RedisServer().start()
        url = server.url
    counter = RoundTrips()
    counter.install()
    try:
        client = redis.Redis.from_url(url)
        info = client.info("server")
        client.close()
        meta = {
            "mode": "quick" if args.quick else "full",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
            "python": platform.python_version(),
            "redis_py": redis.__version__,
            "redis_server": info.get("redis_version"),
            "json": __import__("chatkeep.codec").codec.JSON_LIBRARY,
        }
        stats = ServerStats(url)
        rows = scenarios.run_all(
            url, quick=args.quick, counter=counter, measure=measure, server_stats=stats
        )
        stats.close()
    finally:
        if server is not None:
            server.cleanup()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    checked = targets.evaluate(rows, meta["json"])
    (out / "results.json").write_text(
        json.dumps(
            {
                "meta": meta,
                "rows": [asdict(r) for r in rows],
                "targets": [asdict(t) for t in checked],
            },
            indent=1,
        )
    )
    table = render(rows, meta) + "\nTargets of the performance issue, in this run:\n\n"
    table += targets.render(checked)
    (out / "results.md").write_text(table)
    print(table)
    return 0


__all__ = ["Row", "RoundTrips", "Subject", "available", "main", "make_messages", "measure"]

if __name__ == "__main__":
    sys.exit(main())
