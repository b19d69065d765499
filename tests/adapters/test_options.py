"""Store options in every adapter (issue 17, "Consistent, typed, obvious"): key_prefix
is the name everywhere (prefix= still taken, with a DeprecationWarning), CHATKEEP_*
variables apply, an unknown option names the closest valid one, and mypy flags a
misspelled option at every constructor."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chatkeep import ConfigurationError
from chatkeep_langchain import (
    RedisCache,
    RedisChatMessageHistory,
    close_shared_stores,
    history_factory,
)
from chatkeep_langchain import RedisStore as LangChainStore
from chatkeep_langgraph import RedisSaver
from chatkeep_langgraph import RedisStore as LangGraphStore
from chatkeep_llama_index import RedisChatStore, RedisDBChatStore

REPO = Path(__file__).resolve().parents[2]

# Each maker builds an adapter on memory:// with the given options and returns the
# key prefix of the chatkeep store underneath.
MAKERS: dict[str, Callable[..., str]] = {
    "langchain-history": lambda **o: (
        RedisChatMessageHistory("s1", "memory://", **o).store.config.prefix
    ),
    "langchain-factory": lambda **o: history_factory(url="memory://", **o).store.config.prefix,
    "langchain-store": lambda **o: LangChainStore(url="memory://", **o).store.config.prefix,
    "langchain-cache": lambda **o: RedisCache(url="memory://", **o).cache.config.prefix,
    "langgraph-saver": lambda **o: RedisSaver("memory://", **o).config.prefix,
    "langgraph-store": lambda **o: LangGraphStore("memory://", **o).memory.config.prefix,
    "llama-index-chat-store": lambda **o: (
        RedisChatStore(redis_url="memory://", **o).store.config.prefix
    ),
    "llama-index-db-chat-store": lambda **o: (
        RedisDBChatStore(redis_url="memory://", **o).store.config.prefix
    ),
}


@pytest.fixture(autouse=True)
def _clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("CHATKEEP_") or name == "REDIS_URL":
            monkeypatch.delenv(name)
    yield
    close_shared_stores()


@pytest.mark.parametrize("adapter", MAKERS)
def test_key_prefix_everywhere(adapter: str) -> None:
    assert MAKERS[adapter](key_prefix="app") == "app"


@pytest.mark.parametrize("adapter", MAKERS)
def test_prefix_still_works_with_a_deprecation_warning(adapter: str) -> None:
    with pytest.warns(DeprecationWarning, match="prefix= is deprecated, use key_prefix=") as got:
        assert MAKERS[adapter](prefix="old") == "old"
    assert {Path(w.filename).name for w in got} == {Path(__file__).name}


@pytest.mark.parametrize("adapter", MAKERS)
def test_key_prefix_and_prefix_together_is_an_error(adapter: str) -> None:
    with pytest.raises(ConfigurationError, match="key_prefix or prefix"):
        MAKERS[adapter](key_prefix="a", prefix="b")


@pytest.mark.parametrize("adapter", MAKERS)
def test_chatkeep_prefix_applies(adapter: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATKEEP_PREFIX", "from-env")
    assert MAKERS[adapter]() == "from-env"
    assert MAKERS[adapter](key_prefix="kw") == "kw"


@pytest.mark.parametrize(
    ("make", "given", "meant"),
    [
        (lambda **o: RedisChatMessageHistory("s1", "memory://", **o), "windw", "window"),
        (lambda **o: RedisChatMessageHistory("s1", "memory://", **o), "fallbak", "fallback"),
        (lambda **o: history_factory(url="memory://", **o), "max_token", "max_tokens"),
        (lambda **o: history_factory(url="memory://", **o), "owner_fild", "owner_field"),
        (lambda **o: RedisSaver("memory://", **o), "keep_lats", "keep_last"),
        (lambda **o: LangGraphStore("memory://", **o), "indx", "index"),
        (
            lambda **o: RedisChatStore(redis_url="memory://", **o),
            "read_max_token",
            "read_max_tokens",
        ),
        (lambda **o: RedisDBChatStore(redis_url="memory://", **o), "onwer", "owner"),
        (lambda **o: LangChainStore(url="memory://", **o), "tls", "ttls"),
        (lambda **o: RedisCache(url="memory://", **o), "lock_timout", "lock_timeout"),
    ],
)
def test_an_unknown_option_names_the_closest_one(
    make: Callable[..., Any], given: str, meant: str
) -> None:
    with pytest.raises(ConfigurationError, match=f"no option '{given}'; did you mean '{meant}'"):
        make(**{given: 1})


# -- mypy sees the options ----------------------------------------------------------------

MISSPELLED = """
from chatkeep import ConversationStore, MemoryStore, ResultCache
from chatkeep_langchain import RedisCache, RedisChatMessageHistory, history_factory
from chatkeep_langgraph import RedisSaver, RedisStore
from chatkeep_llama_index import RedisChatStore, RedisDBChatStore

ConversationStore.from_url("memory://", fallbak="raise")
ConversationStore(windw=3)
MemoryStore.from_url("memory://", key_prefx="x")
ResultCache(url="memory://", namespce="x")
RedisChatMessageHistory("s1", "memory://", windw=3)
history_factory(ConversationStore.from_url("memory://"), windw=3)
RedisCache(url="memory://", lock_timout=3.0)
RedisSaver("memory://", keep_lats=3)
RedisStore("memory://", socket_timout=1.0)
RedisChatStore(redis_url="memory://", fallbak="raise")
RedisDBChatStore(redis_url="memory://", max_mesages=3)
ConversationStore.from_url("memory://", max_messages="10")
"""

CORRECT = """
from chatkeep import ConversationStore, MemoryStore, ResultCache
from chatkeep_langchain import RedisCache, RedisChatMessageHistory, history_factory
from chatkeep_langgraph import RedisSaver, RedisStore
from chatkeep_llama_index import RedisChatStore, RedisDBChatStore

ConversationStore.from_url("memory://", fallback="raise", key_prefix="a", max_messages=10)
MemoryStore.from_url("memory://", key_prefix="x", ttls={"user": 60.0})
ResultCache(url="memory://", namespace="x", socket_timeout=0.2)
RedisChatMessageHistory("s1", "memory://", window=3, fallback="memory")
history_factory(url="memory://", window=3, on_state_change=lambda event, status: None)
RedisCache(url="memory://", lock_timeout=3.0, key_prefix="c")
RedisSaver("memory://", keep_last=3, key_prefix="g")
RedisStore("memory://", socket_timeout=1.0)
RedisChatStore(redis_url="memory://", fallback="raise", read_max_tokens=100)
RedisDBChatStore(redis_url="memory://", max_messages=3)
"""


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    snippet = tmp_path / "snippet.py"
    snippet.write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-error-summary", str(snippet)],
        capture_output=True,
        text=True,
        cwd=REPO,  # the repository's mypy configuration and cache
        timeout=600,
        check=False,
    )


@pytest.mark.slow
def test_mypy_flags_misspelled_options(tmp_path: Path) -> None:
    found = _mypy(tmp_path, MISSPELLED)
    errors = [line for line in found.stdout.splitlines() if ": error:" in line]
    flagged = {int(line.split(":")[1]) for line in errors}
    expected = {n for n, line in enumerate(MISSPELLED.splitlines(), 1) if line.endswith(")")}
    assert flagged == expected, found.stdout + found.stderr
    for meant in ("fallback", "window", "key_prefix", "keep_last", "lock_timeout"):
        assert f'did you mean "{meant}"' in found.stdout, found.stdout


@pytest.mark.slow
def test_mypy_accepts_the_right_options(tmp_path: Path) -> None:
    found = _mypy(tmp_path, CORRECT)
    assert found.returncode == 0, found.stdout + found.stderr


# -- docs/options.md runs as written ---------------------------------------------------------

OPTIONS_DOC = REPO / "docs" / "options.md"
DOC_BLOCKS = re.findall(r"```python\n(.*?)```", OPTIONS_DOC.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(DOC_BLOCKS)))
def test_options_doc_blocks(index: int, tmp_path: Path) -> None:
    code = DOC_BLOCKS[index]
    marker = code.startswith("# Fragment")  # the docs' mark of a block not meant to run
    compile(code, f"block {index}", "exec")  # every block is valid Python
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHATKEEP_")}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
    )
    if marker:  # the deliberately wrong block: refused at run time as the page says
        assert "did you mean 'window'?" in done.stderr, done.stderr
        return
    assert done.returncode == 0, done.stderr
    said = re.findall(r"^\s*print\(.*\)\s+# (.*)$", code, flags=re.M)
    assert done.stdout.splitlines() == said


@pytest.mark.slow
def test_options_doc_type_errors_are_what_mypy_says(tmp_path: Path) -> None:
    code = next(code for code in DOC_BLOCKS if code.startswith("# Fragment"))
    found = _mypy(tmp_path, code)
    for line in found.stdout.splitlines():
        if ": error:" in line:
            message = line.split(": error: ", 1)[1].split(";")[0]
            assert message in " ".join(code.split()), line
    assert found.stdout.count(": error:") == 2, found.stdout
