"""Every Python block of docs/langchain-history-factory.md runs as written: on the
session's throwaway redis-server (REDIS_URL set) and, for the blocks that do not need
Redis, on memory:// (REDIS_URL unset)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import RedisServer

DOC = Path(__file__).resolve().parents[3] / "docs" / "langchain-history-factory.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
NEEDS_REDIS = 'os.environ["REDIS_URL"]'


def run_block(code: str, redis_url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATKEEP_")}
    env.pop("REDIS_URL", None)
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def said_to_print(code: str) -> list[str]:
    """The ``# ...`` comment of every print(...) line: what the block says it prints
    (the printed line, then perhaps an explanation)."""
    return re.findall(r"^\s*print\(.*\)\s+# (.*)$", code, flags=re.MULTILINE)


def test_the_doc_has_blocks() -> None:
    assert len(BLOCKS) >= 5


@pytest.mark.redis_server
@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_block_runs_on_redis(index: int, redis_server: RedisServer) -> None:
    done = run_block(BLOCKS[index], redis_server.url)
    assert done.returncode == 0, done.stderr
    printed = done.stdout.splitlines()
    said = said_to_print(BLOCKS[index])
    assert len(printed) == len(said), (printed, said)
    for line, comment in zip(printed, said, strict=True):
        assert comment.startswith(line), (line, comment)


@pytest.mark.parametrize("index", [i for i, block in enumerate(BLOCKS) if NEEDS_REDIS not in block])
def test_block_runs_without_redis(index: int) -> None:
    done = run_block(BLOCKS[index], None)
    assert done.returncode == 0, done.stderr
