"""The performance issues' targets, checked against the rows of one benchmark run.

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


ADAPTERS = tuple(PEERS)
LATENCY = " (+1 ms each way)"


def evaluate(rows: Iterable[Any], json_library: str) -> list[Target]:
    r = _Rows(rows)
    targets: list[Target] = []

    # -- issue 18: performance where users run it -----------------------------------------

    def append() -> tuple[str, bool]:
        parts, ok = [], True
        for ours in ADAPTERS:
            found = [r.get(f"append 1 at length {n}", ours, "ratio") for n in (10, 1000)]
            parts.append(f"{ours} {found[0]}× / {found[1]}×")
            ok = ok and all(ratio <= 1.3 for ratio in found)
        return "; ".join(parts), ok

    targets.append(_checked("adapters' append ≤ 1.3× raw (loopback, at 10 / 1,000)", append))

    def append_latency() -> tuple[str, bool]:
        parts, ok = [], True
        scenario = f"append 1 at length 10{LATENCY}"
        for ours, peer in PEERS.items():
            mine = r.get(scenario, ours, "median_us")
            for theirs in (peer, f"{peer} per request"):
                ratio = mine / r.get(scenario, theirs, "median_us")
                parts.append(f"{ours} {ratio:.2f}× {theirs}")
                ok = ok and ratio <= 0.6
        return "; ".join(parts), ok

    targets.append(
        _checked("adapters' append ≤ 0.6× each peer's time under 1 ms latency", append_latency)
    )

    def add_ten() -> tuple[str, bool]:
        parts, ok = [], True
        for ours in ADAPTERS:
            ratio = r.get("add 10 messages", ours, "ratio")
            trips = r.get("add 10 messages", ours, "round_trips")
            parts.append(f"{ours} {ratio}× ({trips:g} round trips)")
            ok = ok and ratio <= 1.5
        return "; ".join(parts), ok

    targets.append(_checked("adapters' add of 10 messages ≤ 1.5× raw", add_ten))

    def concurrent() -> tuple[str, bool]:
        scenario = r.scenarios("async ")[0]
        ours = r.get(scenario, "chatkeep_langchain", "messages_per_s")
        peer = r.get(scenario, "langchain_community", "messages_per_s")
        per_request = r.get(scenario, "langchain_community per request", "messages_per_s")
        raw = r.get(scenario, RAW, "messages_per_s")
        text = (
            f"{ours} messages/s: {ours / peer:.1f}× langchain_community ({peer}; per request "
            f"{per_request}: {ours / per_request:.1f}×), {ours / raw:.2f}× raw ({raw})"
        )
        return text, ours >= 3 * peer and ours >= 0.8 * raw

    targets.append(
        _checked(
            "async messages/s (chatkeep_langchain) ≥ 3× langchain_community, ≥ 0.8× raw", concurrent
        )
    )

    def size_vs_peer() -> tuple[str, bool]:
        scenario = r.scenarios("bytes per message")[0]
        parts, ok = [], True
        for ours, peer in PEERS.items():
            mine, theirs = r.get(scenario, ours, "bytes"), r.get(scenario, peer, "bytes")
            parts.append(f"{ours} {mine} B vs {theirs} B")
            ok = ok and mine <= theirs
        return "; ".join(parts), ok

    targets.append(_checked("bytes per message through each adapter ≤ its peer's", size_vs_peer))

    def server_cpu() -> tuple[str, bool]:
        scenario = "Redis CPU per op: append 1 at length 1000"
        raw = r.get(scenario, RAW, "command_us")
        parts, ok = [f"raw {raw} µs"], True
        for ours in (CORE, *ADAPTERS):
            mine = r.get(scenario, ours, "command_us")
            parts.append(f"{ours} {mine} µs ({mine / raw:.1f}×)")
            ok = ok and mine <= 3 * raw
        return "; ".join(parts), ok

    targets.append(_checked("Redis CPU per append (commandstats) ≤ 3× raw's", server_cpu))

    def turn_latency() -> tuple[str, bool]:
        scenario = f"LangChain RunnableWithMessageHistory turn{LATENCY}"
        mine = r.get(scenario, "chatkeep_langchain", "median_us")
        peer = r.get(scenario, "langchain_community", "median_us")
        per_request = r.get(scenario, "langchain_community per request", "median_us")
        text = (
            f"{mine / peer:.2f}× langchain_community ({mine:g} vs {peer:g} µs; per request "
            f"{per_request:g} µs: {mine / per_request:.2f}×)"
        )
        return text, mine <= peer / 3

    targets.append(
        _checked(
            "RunnableWithMessageHistory turn under 1 ms latency ≤ 1/3 of the peer's", turn_latency
        )
    )

    def budget() -> tuple[str, bool]:
        long = max(r.scenarios("read max_tokens=2000 at "), key=_size)
        if _size(long) < 5000:
            raise KeyError(long)
        short = "read max_tokens=2000 at 10"
        ratio = r.get(long, CORE, "median_us") / r.get(short, CORE, "median_us")
        raw = r.get(long, RAW, "median_us") / r.get(short, RAW, "median_us")
        # raw redis-py has no counts stored: it reads all 5,000 to count from the end.
        return f"{ratio:.2f}× (raw redis-py, reading all and counting: {raw:.2f}×)", ratio <= 1.5

    targets.append(_checked("max_tokens=2,000 read flat: at 5,000 within 1.5× of at 10", budget))

    # -- earlier rounds ---------------------------------------------------------------------

    def core_append() -> tuple[str, bool]:
        found = [
            (r.get(s, CORE, "ratio"), r.get(s, CORE, "round_trips"))
            for s in ("append 1 at length 10", "append 1 at length 1000")
        ]
        ok = all(ratio <= 1.15 and trips == 1 for ratio, trips in found)
        return " / ".join(f"{ratio}×, {trips:g} round trip" for ratio, trips in found), ok

    targets.append(_checked("core append ≤ 1.15× raw, 1 round trip (at 10 / 1,000)", core_append))

    def full_read() -> tuple[str, bool]:
        ratio = r.get("read all at 1000", CORE, "ratio")
        return f"{ratio}×", ratio <= 1.3

    targets.append(_checked("full read at 1,000 (core, Message objects) ≤ 1.3× raw", full_read))

    for ours, peer in PEERS.items():

        def faster(ours: str = ours, peer: str = peer) -> tuple[str, bool]:
            parts, ok = [], True
            for scenario in r.scenarios("read all at "):
                if "(" in scenario:
                    continue  # the latency rows are checked above
                mine, theirs = r.get(scenario, ours, "ratio"), r.get(scenario, peer, "ratio")
                if mine is None or theirs is None:
                    continue
                parts.append(f"{_size(scenario)}: {mine}× vs {theirs}×")
                ok = ok and mine < theirs
            if not parts:
                raise KeyError(ours)
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
