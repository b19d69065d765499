"""A 100,000-message export and import stay within a fixed memory bound.

Each command runs as its own process (the real ``chatkeep`` entry point) that reports
its peak RSS (``ru_maxrss``). Growth is the peak of the 100,000-message run minus the
peak of the same command on a one-message file, so imports, connection pools and
interpreter start-up cancel out. 100,000 messages of ~300 bytes make a ~43 MiB file;
an import that merely kept the file's lines in a list measured ~24 MiB of growth, and
one that kept Message objects would grow far more. The streaming commands measured
~0 MiB; the bound is 10 MiB.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis

from chatkeep import ConversationStore, Message
from tests.support.servers import RedisServer

pytestmark = [pytest.mark.redis_server, pytest.mark.slow]

SESSIONS = 50
PER_SESSION = 2_000
TOTAL = SESSIONS * PER_SESSION
RSS_GROWTH_BOUND_KIB = 10 * 1024  # 10 MiB

_WRAPPER = (
    "import resource, sys\n"
    "from chatkeep.cli import main\n"
    "code = main(sys.argv[1:])\n"
    "print('MAXRSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def run(*args: str) -> tuple[int, float, str]:
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0, proc.stderr
    rss = next(
        int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("MAXRSS")
    )
    return rss, elapsed, proc.stderr


def test_100k_messages_export_import_with_bounded_memory(
    redis_server: RedisServer, prefix: str, tmp_path: Path
) -> None:
    source, target, small = f"{prefix}src", f"{prefix}dst", f"{prefix}small"
    text = "lorem ipsum dolor sit amet " * 11  # ~300 characters
    with ConversationStore.from_url(redis_server.url, key_prefix=source, fallback="raise") as store:
        for s in range(SESSIONS):
            for start in range(0, PER_SESSION, 1000):
                store.append(
                    f"session-{s}",
                    [
                        Message(role="user" if i % 2 else "assistant", content=f"{i} {text}")
                        for i in range(start, start + 1000)
                    ],
                    owner=f"user-{s % 7}",
                )
    with ConversationStore.from_url(redis_server.url, key_prefix=small, fallback="raise") as store:
        store.append("one", Message(role="user", content=text))

    url = ["--url", redis_server.url]
    big_file, small_file = tmp_path / "big.jsonl", tmp_path / "small.jsonl"
    small_export, _, _ = run(*url, "--prefix", small, "export", "-o", str(small_file))
    big_export, export_seconds, log = run(*url, "--prefix", source, "export", "-o", str(big_file))
    assert f"exported {SESSIONS} sessions, {TOTAL} messages" in log
    small_import, _, _ = run(*url, "--prefix", f"{small}2", "import", str(small_file))
    big_import, import_seconds, log = run(*url, "--prefix", target, "import", str(big_file))
    assert f"imported {TOTAL} messages into {SESSIONS} sessions" in log

    figures = {
        "file_mib": round(big_file.stat().st_size / 2**20, 1),
        "export_msgs_per_s": round(TOTAL / export_seconds),
        "import_msgs_per_s": round(TOTAL / import_seconds),
        "export_rss_growth_mib": round((big_export - small_export) / 1024, 1),
        "import_rss_growth_mib": round((big_import - small_import) / 1024, 1),
    }
    print(json.dumps(figures))
    assert big_export - small_export < RSS_GROWTH_BOUND_KIB, figures
    assert big_import - small_import < RSS_GROWTH_BOUND_KIB, figures

    # The copy equals the original, record for record.
    client = redis.Redis.from_url(redis_server.url)
    for s in range(SESSIONS):
        sid = f"session-{s}"
        assert client.lrange(f"{target}:{{{sid}}}:m", 0, -1) == client.lrange(
            f"{source}:{{{sid}}}:m", 0, -1
        )
        assert client.hget(f"{target}:{{{sid}}}:h", "o") == f"user-{s % 7}".encode()
