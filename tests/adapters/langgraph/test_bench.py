"""bench/langgraph_bench.py runs (2 steps, 1 thread) so it cannot rot."""

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
