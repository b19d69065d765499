"""Helpers of the fault tests: what Redis really holds, waiting for a store to come
back from the fallback, and child Python processes with default warning filters."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import redis

from chatkeep import codec

ROOT = Path(__file__).resolve().parents[2]

# Probe settings of stores under test: a store notices Redis is back within 0.2 s.
FAST: dict[str, Any] = {"probe_interval": 0.05, "probe_max": 0.2}


def raw_records(port: int, prefix: str, sid: str) -> list[bytes]:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)
    try:
        found: list[Any] = client.lrange(f"{prefix}:{{{sid}}}:m", 0, -1)
        return [bytes(r) for r in found]
    finally:
        client.close()


def stored(port: int, prefix: str, sid: str) -> list[str]:
    """The texts of the messages Redis holds for ``sid`` (read past chatkeep)."""
    return [codec.decode(raw).text for raw in raw_records(port, prefix, sid)]


def settle(store: Any, timeout: float = 20.0) -> None:
    """Flush until the store is back on Redis with nothing left to replay."""
    deadline = time.monotonic() + timeout
    while True:
        left = store.flush()
        status = store.status()
        if not left and not status.degraded:
            return
        assert time.monotonic() < deadline, f"still degraded after {timeout}s: {status}"
        time.sleep(0.02)


def until_recovered(call: Callable[[], Any], store: Any, timeout: float = 10.0) -> None:
    """Call ``call`` until ``store`` is back on Redis (its status no longer degraded)."""
    deadline = time.monotonic() + timeout
    while store.status().degraded:
        assert time.monotonic() < deadline, "the store did not come back from the fallback"
        call()
        time.sleep(0.02)


async def asettle(store: Any, timeout: float = 20.0) -> None:
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        left = await store.flush()
        status = store.status()
        if not left and not status.degraded:
            return
        assert time.monotonic() < deadline, f"still degraded after {timeout}s: {status}"
        await asyncio.sleep(0.02)


def child_env(**extra: str) -> dict[str, str]:
    """The environment of a child Python: this checkout importable, the default warning
    filters (no PYTHONWARNINGS), no CHATKEEP_* settings leaking in."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "PYTHONWARNINGS" and not k.startswith("CHATKEEP_")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env.update(extra)
    return env


def python(
    code: str, *args: str, timeout: float = 60.0, options: Sequence[str] = (), **popen: Any
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a child Python (``args`` as sys.argv[1:], ``options`` before
    ``-c``, e.g. ``["-W", "ignore"]``)."""
    return subprocess.run(
        [sys.executable, *options, "-c", code, *args],
        check=False,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=child_env(),
        **popen,
    )


def spawn(code: str, *args: str, **popen: Any) -> subprocess.Popen[str]:
    """Start ``code`` in a child Python, its stdout and stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=child_env(),
        **popen,
    )
