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


def _requested(file_path: Path, config: pytest.Config) -> bool:
    """Whether the run asked for this file (or a folder holding it): pytest offers every
    file of the root folder to this hook, even to a run of other paths only."""
    asked = [Path(config.rootpath, arg.split("::")[0]).resolve() for arg in config.args]
    return any(file_path == path or path in file_path.parents for path in asked)


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> Any:
    if not _is_documentation(file_path) or not _requested(file_path, parent.config):
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
