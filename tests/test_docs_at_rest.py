"""Every Python block of docs/security-at-rest.md runs as written, on a real Redis
and on memory://."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import RedisServer

DOC = Path(__file__).resolve().parents[1] / "docs" / "security-at-rest.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def _run(code: str, url: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATKEEP_")}
    env.pop("REDIS_URL", None)
    if url is not None:
        env["REDIS_URL"] = url
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
        check=False,
    )  # fmt: skip


def test_the_page_has_blocks() -> None:
    assert len(BLOCKS) == 3


@pytest.mark.parametrize("block", range(len(BLOCKS)))
def test_block_runs_without_redis(block: int) -> None:
    done = _run(BLOCKS[block], None)
    assert done.returncode == 0, done.stderr


@pytest.mark.redis_server
@pytest.mark.parametrize("block", range(len(BLOCKS)))
def test_block_runs_on_redis(block: int, redis_server: RedisServer) -> None:
    done = _run(BLOCKS[block], redis_server.url)
    assert done.returncode == 0, done.stderr
    if "card ends" in BLOCKS[block]:
        assert done.stdout.splitlines() == ["my card ends in 4242"] * 2
