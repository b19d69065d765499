"""The documentation is tested: every code block of README.md and docs/**/*.md is a
test item (tests/support/docs.py says how each kind of block is checked)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent


def _is_documentation(file_path: Path) -> bool:
    return file_path.suffix == ".md" and (
        file_path == ROOT / "README.md" or (ROOT / "docs") in file_path.parents
    )


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    if not _is_documentation(file_path):
        return None
    # Imported here: the redis-py floor run (make floor) collects no documentation
    # and does not install Sybil.
    from tests.support.docs import collect_doc_file

    return collect_doc_file(file_path, parent)


@pytest.fixture(scope="session")
def docs_redis() -> Iterator[Any]:
    """The documentation blocks' throwaway redis-server (one database per block)."""
    from tests.support.docs import docs_redis_server

    yield from docs_redis_server()
