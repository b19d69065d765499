"""The documentation's test harness (tests/support/docs.py) fails what it should: a
block that raises or warns, a fragment that is not Python, an undeclared language,
shell lines naming a Makefile target, an extra or a CLI command that does not exist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.docs import DOCS


def evaluate(tmp_path: Path, markdown: str, docs_redis: Any) -> list[Any]:
    """Evaluate every block of ``markdown``; the outcome of each (None or the error)."""
    page = tmp_path / "page.md"
    page.write_text(markdown)
    document = DOCS.parse(page)
    document.namespace["docs_redis"] = docs_redis
    outcomes: list[Any] = []
    for example in document:
        try:
            example.evaluate()
            outcomes.append(None)
        except BaseException as error:
            outcomes.append(error)
    return outcomes


def fence(info: str, body: str) -> str:
    return f"```{info}\n{body}\n```\n\n"


@pytest.mark.redis_server
def test_python_blocks_run_alone_with_a_database_of_their_own(
    tmp_path: Path, docs_redis: Any
) -> None:
    seen = tmp_path / "urls"
    record = (
        f"import os\nwith open({str(seen)!r}, 'a') as f: print(os.environ['REDIS_URL'], file=f)"
    )
    outcomes = evaluate(
        tmp_path,
        fence("python", "x = 1\n" + record)
        + fence("python", "assert 'x' not in globals()\n" + record)
        + fence("python", "raise RuntimeError('broken example')")
        + fence("python", "import warnings\nwarnings.warn('surprise')"),
        docs_redis,
    )
    assert outcomes[:2] == [None, None]
    assert isinstance(outcomes[2], RuntimeError)
    assert isinstance(outcomes[3], AssertionError) and "surprise" in str(outcomes[3])
    first, second = seen.read_text().split()
    assert first != second and first.startswith("redis://127.0.0.1:")


def test_fragments_are_compiled_not_run(tmp_path: Path) -> None:
    outcomes = evaluate(
        tmp_path,
        fence("python", "# Fragment: needs `store`\nawait store.aclose()")
        + fence("python", "# Fragment: broken\ndef f(:\n    pass"),
        docs_redis=None,
    )
    assert outcomes[0] is None
    assert isinstance(outcomes[1], SyntaxError)


def test_other_blocks_are_checked(tmp_path: Path) -> None:
    outcomes = evaluate(
        tmp_path,
        fence("", "a block that says nothing of itself")
        + fence("toml", "x = 1")
        + fence("json", '{"a": 1}\n{"b": 2}')
        + fence("json", '{"a": 1')
        + fence("yaml", "a: [1, 2]")
        + fence("yaml", "a: [1, 2")
        + fence("text", "anything at all")
        + fence("bash", 'make demo test\npip install "chatkeep[langchain,cli]"')
        + fence("bash", "make no-such-target")
        + fence("bash", 'pip install "chatkeep[no-such-extra]"')
        + fence("bash", "chatkeep --url redis://h:6379/0 sessions --owner u1 --json")
        + fence("bash", "chatkeep journal replay --path /tmp/j.db")
        + fence("bash", "chatkeep no-such-command")
        + fence("bash", "chatkeep sessions --no-such-option"),
        docs_redis=None,
    )
    failed = [i for i, outcome in enumerate(outcomes) if outcome is not None]
    assert failed == [0, 1, 3, 5, 8, 9, 12, 13]
