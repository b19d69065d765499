"""Every code block of README.md and docs/**/*.md is a test (collected by Sybil through
the repository's root conftest.py).

- ``python``: run as written, alone (a fresh namespace: no block leans on another),
  with ``REDIS_URL`` naming a database of a throwaway redis-server that no other
  block uses, and no ``CHATKEEP_*`` variable of the test run. A block whose first line
  is a comment starting with ``# Fragment`` is deliberately partial (it names what it
  needs): it is compiled, not run.
- ``json``: parsed (JSON Lines when it has several lines).
- ``yaml``: parsed.
- ``bash``: every ``make TARGET`` names a Makefile target, every ``chatkeep[EXTRA]``
  an extra of pyproject.toml, and every ``chatkeep COMMAND`` a command of the CLI.
- ``text`` (layouts, sample output): nothing to run.

Any other language, or a block without one, fails: each block says what it is.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import sys
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from sybil import Document, Example, Region, Sybil
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

from tests.support.servers import RedisServer

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest depends on tomli before 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
FRAGMENT = "# Fragment"
# One database per Python block: blocks reuse session ids ("chat-42") freely, and a
# block's stores (and the connection chatkeep keeps per URL) never meet another's.
DATABASES = 1024

_FENCED = RawFencedCodeBlockLexer(
    info_pattern=re.compile(r"(?P<info>[^\n]*)\n"),
    mapping={"info": "info", "source": "source"},
)


class DocsRedis:
    """The throwaway redis-server of the documentation's blocks and the next free
    database number on it."""

    def __init__(self, server: RedisServer) -> None:
        self.server = server
        self.used = 0

    def next_url(self) -> str:
        self.used += 1
        assert self.used < DATABASES, "more Python blocks than databases: raise DATABASES"
        return f"redis://127.0.0.1:{self.server.port}/{self.used}"


def docs_redis_server() -> Iterator[DocsRedis]:
    server = RedisServer("--databases", str(DATABASES))
    server.start()
    try:
        yield DocsRedis(server)
    finally:
        server.cleanup()


@contextmanager
def block_environment(redis_url: str) -> Iterator[None]:
    """``REDIS_URL`` set for the block, no ``CHATKEEP_*`` variable, all restored after."""
    saved = dict(os.environ)
    for name in [n for n in os.environ if n.startswith("CHATKEEP_")]:
        del os.environ[name]
    os.environ["REDIS_URL"] = redis_url
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def run_python(example: Example) -> None:
    source: str = example.parsed
    path = f"{example.path}:{example.line}"
    if source.lstrip().startswith(FRAGMENT):
        compile(source, path, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
        return
    code = compile(source, path, "exec", dont_inherit=True)
    docs: DocsRedis = example.namespace["docs_redis"]
    namespace: dict[str, Any] = {"__name__": "__doc_block__"}
    with block_environment(docs.next_url()), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        exec(code, namespace)  # the documentation's own examples
    unexpected = [w for w in caught if not _documented(w)]
    assert not unexpected, f"the block warned: {[str(w.message) for w in unexpected]}"


def _documented(warning: warnings.WarningMessage) -> bool:
    """Warnings the pages tell readers to expect: constructing LangChain's
    RunnableWithMessageHistory (deprecated by langchain-core; see the LangChain page).
    ResourceWarnings come from the garbage collector at any time, not from the block."""
    return issubclass(warning.category, ResourceWarning) or str(warning.message).startswith(
        "RunnableWithMessageHistory is deprecated"
    )


def check_json(example: Example) -> None:
    source: str = example.parsed
    lines = [line for line in source.splitlines() if line.strip()]
    try:
        json.loads(source)
    except json.JSONDecodeError:
        for line in lines:  # JSON Lines
            json.loads(line)


def check_yaml(example: Example) -> None:
    yaml.safe_load(example.parsed)


def _makefile_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w-]*):", text, flags=re.MULTILINE))


def _extras() -> set[str]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return set(tomllib.load(file)["project"]["optional-dependencies"])


def _check_cli_line(words: list[str]) -> None:
    """``chatkeep [--url U] [--prefix P] COMMAND [SUBCOMMAND] [--option ...]``: the
    command exists and takes every option named."""
    import click

    from chatkeep.cli.app import cli

    command: click.Command = cli
    rest = words[1:]
    names: set[str] = set()
    while True:
        names |= {opt for param in command.params for opt in getattr(param, "opts", ())}
        names |= {"-h", "--help"}
        while rest and rest[0].startswith("-"):
            option = rest.pop(0).split("=", 1)[0]
            assert option in names, f"chatkeep: no option {option} here: {' '.join(words)}"
            param = next((p for p in command.params if option in getattr(p, "opts", ())), None)
            if param is not None and not getattr(param, "is_flag", False) and rest:
                rest.pop(0)
        if not isinstance(command, click.Group) or not rest:
            break
        assert rest[0] in command.commands, f"no chatkeep command {rest[0]!r}: {' '.join(words)}"
        command = command.commands[rest.pop(0)]
        names = set()
    for word in rest:
        if word.startswith("-"):
            option = word.split("=", 1)[0]
            assert option in names, f"chatkeep: no option {option} here: {' '.join(words)}"


def check_shell(example: Example) -> None:
    source: str = example.parsed
    for extra in re.findall(r"chatkeep\[([^\]]+)\]", source):
        unknown = set(extra.split(",")) - _extras()
        assert not unknown, f"no such extra in pyproject.toml: {sorted(unknown)}"
    for line in source.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        if words[0] == "make":
            for target in words[1:]:
                assert target in _makefile_targets(), f"no Makefile target {target!r}"
        if words[0] == "chatkeep":
            _check_cli_line(words)


def nothing_to_run(example: Example) -> None:
    return None


CHECKS = {
    "python": run_python,
    "json": check_json,
    "yaml": check_yaml,
    "bash": check_shell,
    "text": nothing_to_run,
}


def unknown_language(example: Example) -> None:
    raise AssertionError(
        f"code block with info {example.parsed!r}: say what it is "
        f"(one of {', '.join(sorted(CHECKS))})"
    )


def parse_blocks(document: Document) -> Iterable[Region]:
    for region in _FENCED(document):
        info = str(region.lexemes["info"]).strip()
        language = info.split()[0] if info else ""
        check = CHECKS.get(language)
        if check is None:
            region.parsed = info
            region.evaluator = unknown_language
        else:
            region.parsed = region.lexemes["source"]
            region.evaluator = check
        yield region


DOCS = Sybil(
    parsers=[parse_blocks],
    path=str(ROOT),
    patterns=["*.md"],
    fixtures=["docs_redis"],
)
collect_doc_file = DOCS.pytest()
