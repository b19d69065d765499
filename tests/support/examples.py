"""Running the scripts in examples/ as a user would: a child Python, ``REDIS_URL`` set."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_example(
    name: str,
    redis_url: str,
    *args: str,
    python_options: Sequence[str] = (),
    timeout: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``python [python_options] examples/<name> [args]`` with ``REDIS_URL=redis_url``
    and no ``CHATKEEP_*`` settings of the test run leaking in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATKEEP_")}
    env["REDIS_URL"] = redis_url
    return subprocess.run(
        [sys.executable, *python_options, str(EXAMPLES / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
