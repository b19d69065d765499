"""bench/langgraph_bench.py and bench/langgraph_search_bench.py run (tiny sizes) so
they cannot rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import RedisServer

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.redis_server
def test_langgraph_bench_runs(redis_server: RedisServer, tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "langgraph_bench.py"),
            "--steps",
            "3",
            "--threads",
            "1",
            "--url",
            redis_server.url,
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    names = [r["saver"] for r in json.loads(out.read_text())]
    assert names[:3] == [
        "chatkeep RedisSaver",
        "chatkeep RedisSaver keep_last=10",
        "InMemorySaver (serialized bytes)",
    ]


@pytest.mark.redis_server
def test_langgraph_search_bench_runs(redis_server: RedisServer, tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "langgraph_search_bench.py"),
            *("--items", "30", "--dims", "16", "--searches", "3"),
            *("--url", redis_server.url, "--json", str(out)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(out.read_text())
    assert [r["store"] for r in rows] == [
        "chatkeep RedisStore (redis)",
        "chatkeep RedisStore (memory://)",
        "chatkeep MemoryStore (redis)",
        "LangGraph InMemoryStore",
    ]
    assert all(r["p50_ms"] > 0 for r in rows)
