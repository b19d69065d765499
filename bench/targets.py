"""The performance issue's targets, checked against the rows of one benchmark run.

Each target names what it compares, the figure this run measured and whether it was
met; a target whose rows the run did not produce (``--quick`` skips 5,000-message
reads) says so instead of guessing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

CORE = "chatkeep store"
RAW = "raw redis-py"
PEERS = {"chatkeep_langchain": "langchain_community", "chatkeep_llama_index": "llama-index redis"}


@dataclass
class Target:
    name: str
    measured: str
    met: bool | None  # None: not measured in this run


class _Rows:
    def __init__(self, rows: Iterable[Any]) -> None:
        self.by = {(_get(r, "scenario"), _get(r, "subject")): r for r in rows}

    def get(self, scenario: str, subject: str, field: str) -> Any:
        row = self.by.get((scenario, subject))
        if row is None:
            return None
        if field in ("median_us", "p99_us", "ratio", "round_trips"):
            return _get(row, field)
        return _get(row, "extra").get(field)

    def scenarios(self, prefix: str) -> list[str]:
        return sorted({s for s, _ in self.by if s.startswith(prefix)}, key=_size)


def _get(row: Any, field: str) -> Any:
    return row[field] if isinstance(row, dict) else getattr(row, field)


def _size(scenario: str) -> int:
    digits = "".join(c for c in scenario.rsplit(" at ", maxsplit=1)[-1] if c.isdigit())
    return int(digits or 0)


def _checked(name: str, build: Callable[[], tuple[str, bool]]) -> Target:
    try:
        measured, met = build()
    except (TypeError, KeyError, ZeroDivisionError, StopIteration):
        return Target(name, "not measured in this run", None)
    return Target(name, measured, met)


def evaluate(rows: Iterable[Any], json_library: str) -> list[Target]:
    r = _Rows(rows)
    targets: list[Target] = []

    def append() -> tuple[str, bool]:
        found = [
            (r.get(s, CORE, "ratio"), r.get(s, CORE, "round_trips"))
            for s in ("append 1 at length 10", "append 1 at length 1000")
        ]
        ok = all(ratio <= 1.15 and trips == 1 for ratio, trips in found)
        return " / ".join(f"{ratio}×, {trips:g} round trip" for ratio, trips in found), ok

    targets.append(_checked("append ≤ 1.15× raw, 1 round trip (at 10 / 1,000)", append))

    def add_ten() -> tuple[str, bool]:
        ratio, trips = (
            r.get("add 10 messages", CORE, "ratio"),
            r.get("add 10 messages", CORE, "round_trips"),
        )
        return f"{ratio}×, {trips:g} round trip", ratio <= 1.3 and trips == 1

    targets.append(_checked("add_messages(10) ≤ 1.3× raw, 1 round trip", add_ten))

    def full_read() -> tuple[str, bool]:
        ratio = r.get("read all at 1000", CORE, "ratio")
        return f"{ratio}×", ratio <= 1.3

    def beats_raw() -> tuple[str, bool]:
        if json_library != "orjson":
            raise KeyError("the fast extra is not installed")
        ratio = r.get("read all at 1000", CORE, "ratio")
        return f"{ratio}×", ratio < 1.0

    targets.append(_checked("full read at 1,000 (core, Message objects) ≤ 1.3× raw", full_read))
    targets.append(_checked("the same with the fast extra: faster than raw", beats_raw))

    for ours, peer in PEERS.items():

        def faster(ours: str = ours, peer: str = peer) -> tuple[str, bool]:
            parts, ok = [], True
            for scenario in r.scenarios("read all at "):
                mine, theirs = r.get(scenario, ours, "ratio"), r.get(scenario, peer, "ratio")
                if mine is None or theirs is None:
                    continue
                parts.append(f"{_size(scenario)}: {mine}× vs {theirs}×")
                ok = ok and mine < theirs
            if not parts:
                raise KeyError(scenario)
            return "; ".join(parts), ok

        targets.append(_checked(f"full reads through {ours} faster than {peer}", faster))

    def tail() -> tuple[str, bool]:
        long = max(r.scenarios("read last 20 at "), key=_size)
        if _size(long) < 5000:
            raise KeyError(long)
        ratio = r.get(long, CORE, "median_us") / r.get("read last 20 at 10", CORE, "median_us")
        raw = r.get(long, RAW, "median_us") / r.get("read last 20 at 10", RAW, "median_us")
        # A session of 10 gives 10 messages, one of 5,000 gives 20: raw redis-py's own
        # ratio shows what the extra ten cost, apart from the history's length.
        return f"{ratio:.2f}× (raw redis-py: {raw:.2f}×)", ratio <= 1.5

    targets.append(_checked("last 20 at 5,000 within 1.5× of last 20 at 10", tail))

    def budget() -> tuple[str, bool]:
        long = max(r.scenarios("read max_tokens=2000 at "), key=_size)
        if _size(long) < 5000:
            raise KeyError(long)
        short = "read max_tokens=2000 at 10"
        ratio = r.get(long, CORE, "median_us") / r.get(short, CORE, "median_us")
        raw = r.get(long, RAW, "median_us") / r.get(short, RAW, "median_us")
        # raw redis-py has no counts stored: it reads all 5,000 to count from the end.
        return f"{ratio:.2f}× (raw redis-py, reading all and counting: {raw:.2f}×)", ratio <= 1.5

    targets.append(
        _checked("max_tokens=2,000 at 5,000 within 1.5× of max_tokens=2,000 at 10", budget)
    )

    def turn() -> tuple[str, bool]:
        scenario = "LangChain RunnableWithMessageHistory turn"
        ours = r.get(scenario, "chatkeep_langchain", "round_trips")
        theirs = r.get(scenario, "langchain_community", "round_trips")
        time = r.get(scenario, "chatkeep_langchain", "ratio")
        text = f"{ours:g} vs {theirs:g} round trips, {time}× its time"
        return text, ours == 2 and theirs >= 3 * ours and time < 1

    targets.append(
        _checked("LangChain turn: 2 round trips, ≥ 3× fewer and faster than the peer", turn)
    )

    def concurrent() -> tuple[str, bool]:
        scenario = r.scenarios("async ")[0]
        ours = r.get(scenario, "chatkeep_langchain", "messages_per_s")
        theirs = r.get(scenario, "langchain_community", "messages_per_s")
        return f"{ours} vs {theirs} messages/s ({ours / theirs:.1f}×)", ours >= 3 * theirs

    targets.append(_checked("async sessions: ≥ 3× the peer's messages/s", concurrent))

    def outage() -> tuple[str, bool]:
        parts, ok = [], True
        for scenario in r.scenarios("during an outage"):
            median = r.get(scenario, CORE, "median_us")
            read = r.get(scenario, CORE, "read_last_20_median_us")
            first = r.get(scenario, CORE, "first_call_s")
            how = scenario.split("(")[1].split(",")[0]
            parts.append(f"{how}: {median} µs append, {read} µs read, first call {first} s")
            ok = ok and median <= 50 and read <= 50 and first <= 1.0
        if not parts:
            raise KeyError("outage")
        return "; ".join(parts), ok

    targets.append(_checked("outage: median call ≤ 50 µs, first call ≤ 1 s", outage))

    def recovery() -> tuple[str, bool]:
        scenario = r.scenarios("recovery:")[0]
        back = r.get(scenario, CORE, "back_after_s")
        lost = r.get(scenario, CORE, "lost")
        duplicated = r.get(scenario, CORE, "duplicated")
        acked = r.get(scenario, CORE, "acked")
        text = f"back {back} s after Redis returned; {acked} acked, {lost} lost, {duplicated} twice"
        return text, back <= 2.0 and lost == 0 and duplicated == 0

    targets.append(
        _checked("recovery: 50 writers, 1 s outage: back ≤ 2 s, nothing lost or twice", recovery)
    )

    def size() -> tuple[str, bool]:
        scenario = r.scenarios("bytes per message")[0]
        ratio = r.get(scenario, CORE, "ratio")
        return f"{ratio}× ({r.get(scenario, CORE, 'bytes')} bytes)", ratio <= 1.15

    targets.append(_checked("bytes per message ≤ 1.15× raw JSON (core)", size))
    return targets


def render(targets: list[Target]) -> str:
    lines = ["| target | measured | |", "|---|---|---|"]
    for target in targets:
        verdict = {True: "met", False: "missed", None: "—"}[target.met]
        lines.append(f"| {target.name} | {target.measured} | {verdict} |")
    return "\n".join(lines) + "\n"
