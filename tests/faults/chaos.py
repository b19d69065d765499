"""The chaos drill: writers in threads and processes over many sessions while Redis
(AOF, fsync always) is SIGKILLed and restarted, the connection is cut by a proxy,
and Redis refuses writes for a while (maxmemory). A checker then reads what Redis
holds and verifies the promise:

* every acknowledged append is there exactly once (or was removed by a ``clear``/
  ``replace`` acknowledged after the append started);
* each writer's appends to a session are in the order it made them;
* no destructive change replayed over a later write (that would show as a lost
  append: missing, and no destructive change acknowledged after it started);
* nothing refused (``JournalFullError``, an ``OOM`` refusal) was stored.

``make chaos`` runs a minute of it; ``tests/faults/test_chaos.py`` a short one with a
fixed seed. ``python -m tests.faults.chaos --seconds 60 [--seed N ...]`` prints
acked / stored / lost / duplicated / time degraded and exits 1 on a violation.

The writer threads of this process share one store that reaches Redis through the
proxy; each writer process has its own store (with a durable ``journal_path``) that
reaches Redis directly, so a proxy cut leaves them writing while this process
journals: its destructive changes then meet their later appends at replay.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from chatkeep import (
    BackendError,
    BackendUnavailableError,
    ConversationStore,
    JournalFullError,
    Message,
)

# One operation of a writer: (writer, seq, session, kind, started, ended, outcome).
# kind: "append" | "clear" | "replace"; outcome: "ok" | "refused" | "error:<Type>".
Op = tuple[int, int, str, str, float, float, str]

FAST = {"probe_interval": 0.05, "probe_max": 0.5}


@dataclass
class Figures:
    acked: int = 0
    """Appends acknowledged (returned without an exception)."""
    stored: int = 0
    """Messages Redis holds at the end."""
    lost: int = 0
    """Acknowledged appends missing, with no destructive change acknowledged after
    they started (a replay over a later write shows here)."""
    duplicated: int = 0
    disorder: int = 0
    """Appends found before an earlier append of the same writer to the same session
    (in the sessions that are never cleared or replaced)."""
    phantoms: int = 0
    """Refused writes that were stored anyway."""
    removed: int = 0
    """Acknowledged appends removed by a later clear/replace (allowed)."""
    refused: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    destructive: int = 0
    conflicts: int = 0
    replay_rejected: int = 0
    degraded_seconds: float = 0.0
    """Time a store was degraded (the longest of all stores)."""
    degraded_by_store: dict[str, float] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)
    samples: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.disorder or self.phantoms)

    def line(self) -> str:
        return (
            f"acked {self.acked} / stored {self.stored} / lost {self.lost} / duplicated "
            f"{self.duplicated} / disorder {self.disorder} / phantoms {self.phantoms} / "
            f"removed by clear-replace {self.removed} / refused {self.refused} / conflicts "
            f"{self.conflicts} / time degraded {self.degraded_seconds:.1f}s "
            f"{self.degraded_by_store}"
        )


# -- writers -------------------------------------------------------------------------------


def _classify(exc: BaseException) -> str:
    """ "refused": the write was not made (the journal is full, or Redis refused it,
    e.g. over maxmemory), so it must not be stored; anything else is reported."""
    if isinstance(exc, JournalFullError):
        return "refused"
    if isinstance(exc, BackendError) and not isinstance(exc, BackendUnavailableError):
        return "refused"
    return f"error:{type(exc).__name__}"


def volatile_of(sessions: list[str]) -> list[str]:
    """The sessions that clears and replaces go to (the first fifth)."""
    return sessions[: max(1, len(sessions) // 5)]


def write(
    store: ConversationStore,
    writer: int,
    sessions: list[str],
    until: float,
    seed: int,
    destroy: float,
    ops: list[Op],
) -> None:
    """Append ``<writer>:<seq>`` to random sessions until ``until`` (monotonic); with
    probability ``destroy`` clear or replace one of the first fifth of the sessions
    instead (the others only ever grow: every acknowledged append must be there)."""
    rng = random.Random(seed)
    volatile = volatile_of(sessions)
    seq = 0
    while time.monotonic() < until:
        roll = rng.random()
        kind = "append" if roll >= destroy else ("clear" if roll < destroy / 2 else "replace")
        sid = rng.choice(sessions if kind == "append" else volatile)
        text = f"{writer}:{seq}"
        started = time.monotonic()
        try:
            if kind == "append":
                store.append(sid, Message(role="user", content=text))
            elif kind == "clear":
                store.clear(sid)
            else:
                store.replace(sid, [Message(role="system", content=text)])
        except Exception as exc:
            outcome = _classify(exc)
            if outcome == "refused":
                time.sleep(0.002)
        else:
            outcome = "ok"
        ops.append((writer, seq, sid, kind, started, time.monotonic(), outcome))
        seq += 1


class Degraded:
    """Seconds a store spent degraded, sampled every few milliseconds."""

    def __init__(self, store: ConversationStore) -> None:
        self.store = store
        self.seconds = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(0.005):
            now = time.monotonic()
            if self.store.status().degraded:
                self.seconds += now - last
            last = now

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.seconds


def settle(store: ConversationStore, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while store.flush() or store.status().degraded:
        if time.monotonic() > deadline:
            raise TimeoutError(f"still degraded after {timeout}s: {store.status()}")
        time.sleep(0.05)


def run_writers(
    store: ConversationStore,
    writers: list[int],
    sessions: list[str],
    seconds: float,
    seed: int,
    destroy: float,
) -> list[Op]:
    ops: list[Op] = []
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(
            target=write, args=(store, w, sessions, until, seed * 7919 + w, destroy, ops)
        )
        for w in writers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ops


def worker(args: argparse.Namespace) -> None:
    """A writer process: its own store (durable journal), its writer threads."""
    store = ConversationStore.from_url(
        args.url, key_prefix=args.prefix, journal_path=args.journal, **FAST
    )
    degraded = Degraded(store)
    writers = list(range(args.first, args.first + args.threads))
    sessions = [f"s{i}" for i in range(args.sessions)]
    ops = run_writers(store, writers, sessions, args.seconds, args.seed, args.destroy)
    seconds = degraded.stop()
    settle(store)
    status = store.status()
    store.close()
    with open(args.log, "w") as out:
        for op in ops:
            out.write(json.dumps(op) + "\n")
        out.write(json.dumps({"status": status.model_dump(mode="json"), "degraded": seconds}))


# -- faults ----------------------------------------------------------------------------------


FAULTS = ("kill", "cut", "oom")


def inject(
    server: Any,
    proxy: Any,
    until: float,
    rng: random.Random,
    log: list[str],
    kinds: tuple[str, ...] = FAULTS,
) -> None:
    """Faults, one after another, until ``until`` (monotonic): SIGKILL and restart,
    a proxy cut (reset or black hole), a temporary maxmemory refusal."""
    start = time.monotonic()
    while True:
        time.sleep(rng.uniform(0.4, 1.2))
        kind = rng.choice(kinds)
        length = rng.uniform(0.3, 1.2)
        if time.monotonic() + length + 0.5 > until:
            return
        at = time.monotonic() - start
        if kind == "kill":
            server.kill()
            time.sleep(length)
            server.start()
        elif kind == "cut":
            blackhole = rng.random() < 0.3
            proxy.cut(blackhole=blackhole)
            time.sleep(length)
            proxy.restore()
            kind += " (black hole)" if blackhole else ""
        else:
            admin = server.client()
            try:
                admin.config_set("maxmemory-policy", "noeviction")
                admin.config_set("maxmemory", 1)
                time.sleep(length)
                admin.config_set("maxmemory", 0)
            except Exception as exc:  # a fault must not stop the drill
                log.append(f"oom failed: {exc}")
            finally:
                admin.close()
        log.append(f"{at:.1f}s {kind} {length:.1f}s")


# -- the checker ----------------------------------------------------------------------------


def check(ops: list[Op], held: dict[str, list[str]], figures: Figures, volatile: set[str]) -> None:
    """Fill ``figures`` from every writer's operations and what Redis holds. Order is
    judged in the sessions that only grow (``volatile`` ones are cleared/replaced:
    there a duplicate replayed after a clear shows as a message out of order)."""
    where: dict[str, tuple[str, int]] = {}
    for sid, texts in held.items():
        for at, text in enumerate(texts):
            if text in where:
                figures.duplicated += 1
                if figures.duplicated <= 5:
                    figures.samples.append(f"duplicated {text} in {sid}")
            else:  # order is judged on first copies (duplicates are counted above)
                where[text] = (sid, at)
    figures.stored = sum(len(t) for t in held.values())
    destroyed: dict[str, list[float]] = {}
    errors: Counter[str] = Counter()
    for _, _, sid, kind, _, ended, outcome in ops:
        if kind != "append" and outcome == "ok":
            destroyed.setdefault(sid, []).append(ended)
            figures.destructive += 1
    last: dict[tuple[int, str], tuple[int, str]] = {}
    for writer, seq, sid, kind, started, _, outcome in sorted(ops, key=lambda o: (o[0], o[1])):
        text = f"{writer}:{seq}"
        found = where.get(text)
        if outcome == "refused":
            figures.refused += 1
            if found is not None:
                figures.phantoms += 1
            continue
        if outcome != "ok":
            errors[outcome] += 1
            continue
        if kind != "append":
            continue  # a replace's own message may be a conflict, never applied
        figures.acked += 1
        if found is None or found[0] != sid:
            if any(t > started for t in destroyed.get(sid, ())):
                figures.removed += 1
            else:
                figures.lost += 1
                if figures.lost <= 5:
                    figures.samples.append(f"lost {text} of {sid}")
            continue
        if sid in volatile:
            continue
        before = last.get((writer, sid), (-1, ""))
        if found[1] < before[0]:
            figures.disorder += 1
            if figures.disorder <= 5:
                figures.samples.append(f"{text} stored before {before[1]} in {sid}")
        last[(writer, sid)] = (found[1], text)
    figures.errors = dict(errors)


# -- the drill ------------------------------------------------------------------------------


def drill(
    *,
    seconds: float,
    seed: int,
    threads: int = 8,
    processes: int = 2,
    process_threads: int = 4,
    sessions: int = 50,
    destroy: float = 0.005,
    faults: tuple[str, ...] = FAULTS,
    say: Any = print,
) -> Figures:
    from tests.support.faults import child_env
    from tests.support.servers import RedisServer, TcpProxy

    rng = random.Random(seed)
    figures = Figures()
    work = Path(tempfile.mkdtemp(prefix="chatkeep-chaos-"))
    server = RedisServer("--appendonly", "yes", "--appendfsync", "always").start()
    proxy = TcpProxy(server.port)
    prefix = f"chaos{seed}"
    names = [f"s{i}" for i in range(sessions)]
    children = []
    try:
        for p in range(processes):
            command = [
                sys.executable, "-m", "tests.faults.chaos", "worker",
                "--url", server.url, "--prefix", prefix,
                "--journal", str(work / f"journal-{p}.db"), "--log", str(work / f"ops-{p}.jsonl"),
                "--first", str(1000 * (p + 1)), "--threads", str(process_threads),
                "--sessions", str(sessions), "--seconds", str(seconds),
                "--seed", str(seed), "--destroy", str(destroy),
            ]  # fmt: skip
            children.append(
                subprocess.Popen(command, cwd=Path(__file__).resolve().parents[2], env=child_env())
            )
        store = ConversationStore.from_url(proxy.url, key_prefix=prefix, **FAST)
        degraded = Degraded(store)
        until = time.monotonic() + seconds
        injector = threading.Thread(
            target=inject, args=(server, proxy, until - 0.5, rng, figures.faults, faults)
        )
        injector.start()
        ops = run_writers(store, list(range(threads)), names, seconds, seed, destroy)
        injector.join()
        proxy.restore()
        if not server.running:
            server.start()
        server.wait_ready()
        figures.degraded_by_store["threads"] = round(degraded.stop(), 1)
        settle(store)
        status = store.status()
        figures.conflicts += status.conflicts
        figures.replay_rejected += status.replay_rejected
        store.close()
        for p, child in enumerate(children):
            if child.wait(timeout=seconds + 180) != 0:
                raise RuntimeError(f"writer process {p} failed ({child.returncode})")
            with open(work / f"ops-{p}.jsonl") as log:
                rows = [json.loads(line) for line in log]
            tail = rows.pop()
            ops += [tuple(row) for row in rows]
            figures.conflicts += tail["status"]["conflicts"]
            figures.replay_rejected += tail["status"]["replay_rejected"]
            figures.degraded_by_store[f"process {p}"] = round(tail["degraded"], 1)
        figures.degraded_seconds = max(figures.degraded_by_store.values())
        from tests.support.faults import stored

        held = {sid: stored(server.port, prefix, sid) for sid in names}
        check(ops, held, figures, set(volatile_of(names)))
        say(figures.line())
        say("faults: " + "; ".join(figures.faults))
        if figures.errors:
            say(f"errors: {figures.errors}")
        for sample in figures.samples:
            say("  " + sample)
        return figures
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
        proxy.close()
        server.cleanup()
        for leftover in work.iterdir():
            leftover.unlink()
        os.rmdir(work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.chaos", description=__doc__)
    parser.add_argument("mode", nargs="?", default="drill", choices=["drill", "worker"])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--process-threads", type=int, default=4)
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--destroy", type=float, default=0.005)
    parser.add_argument(
        "--faults", default=",".join(FAULTS), help="comma-separated: " + ", ".join(FAULTS)
    )
    # worker-only
    parser.add_argument("--url")
    parser.add_argument("--prefix")
    parser.add_argument("--journal")
    parser.add_argument("--log")
    parser.add_argument("--first", type=int, default=0)
    args = parser.parse_args(argv)
    if args.mode == "worker":
        worker(args)
        return 0
    figures = drill(
        seconds=args.seconds,
        seed=args.seed,
        threads=args.threads,
        processes=args.processes,
        process_threads=args.process_threads,
        sessions=args.sessions,
        destroy=args.destroy,
        faults=tuple(args.faults.split(",")),
    )
    print(json.dumps({k: v for k, v in asdict(figures).items() if k != "samples"}))
    return 0 if figures.ok else 1


if __name__ == "__main__":
    sys.exit(main())
